"""LoRA adapters on a Stable Diffusion pipeline: what training and sampling share.

A trained LoRA directory holds ``pytorch_lora_weights.safetensors`` in diffusers' naming
(``pipe.load_lora_weights(DIR)`` loads it), ``conv_in.safetensors`` for the mask-conditioned
variant, and ``generator_config.json`` (written last, so its presence means the run finished).
Adapters are made and loaded through peft itself, never through transformers' or diffusers'
integrations, which gate on their own peft version ranges; their random initialisation comes
from a seed, not from global state. CLIP text embeddings follow kohya's clip-skip semantics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["ADAPTER", "CONFIG_FILE", "CONV_IN_FILE", "LORA_FILE", "add_adapter", "canonical_safetensors",
           "encode_text", "expand_conv_in", "load_adapter", "peft_configs_from_record", "peft_lora_config",
           "read_lora_config", "resolve_targets", "split_lora_state_dict", "tokenize"]

LORA_FILE = "pytorch_lora_weights.safetensors"


CONV_IN_FILE = "conv_in.safetensors"


CONFIG_FILE = "generator_config.json"


ADAPTER = "fetal-bench"  # adapter name used when a LoRA is loaded for sampling


def encode_text(text_encoder, input_ids, clip_skip: int | None):
    """CLIP embeddings of ``input_ids`` with kohya/A1111 clip-skip semantics.

    ``clip_skip`` None or 1 = the last layer (through the final layer norm, as CLIP does);
    2 = the penultimate layer through the final layer norm, and so on. (diffusers counts from 0:
    its ``clip_skip=1`` is this ``2``.) Applied to the negative prompt too, which diffusers'
    pipeline does not do, so sampling conditions the model the way it was trained.
    """
    if not clip_skip or clip_skip <= 1:
        return text_encoder(input_ids)[0]
    output = text_encoder(input_ids, output_hidden_states=True)
    hidden = output.hidden_states[-clip_skip]
    model = getattr(text_encoder, "module", text_encoder)  # under DDP the model is `.module`
    # transformers 5 flattened CLIPTextModel (no `.text_model`); older versions nest it.
    return getattr(model, "text_model", model).final_layer_norm(hidden)


def tokenize(tokenizer, prompts: list[str]):
    return tokenizer(
        prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids


def expand_conv_in(unet, extra: int) -> None:
    """Give the UNet ``extra`` more input channels; their weights start at zero (step 0 = base)."""
    import torch

    if extra <= 0:
        return
    old = unet.conv_in
    new = torch.nn.Conv2d(
        old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding,
        dtype=old.weight.dtype, device=old.weight.device,
    )
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    # Keep the config truthful, so saving/inspecting the UNet shows the real input width.
    unet.register_to_config(in_channels=old.in_channels + extra)


#: Module classes that hold kohya "Standard" LoRA targets (sd-scripts ``networks/lora.py``,
#: ``LoRANetwork.UNET_TARGET_REPLACE_MODULE`` / ``TEXT_ENCODER_TARGET_REPLACE_MODULE``): inside
#: them every ``Linear`` and every 1x1 ``Conv2d`` gets an adapter.
KOHYA_UNET_CONTAINERS = ("Transformer2DModel",)


KOHYA_TEXT_ENCODER_CONTAINERS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")


def resolve_targets(model, targets: list[str]) -> list[str]:
    """peft ``target_modules`` for ``model`` from a config's target list.

    An entry naming a module *class* of ``model`` (e.g. ``Transformer2DModel``, ``CLIPMLP``) is a
    container, as in kohya's LoRA: it expands to the full names of every ``Linear`` and 1x1
    ``Conv2d`` inside each such module (kohya's ``create_modules`` rule). Any other entry is a
    peft module-name suffix (e.g. ``to_q``) and is kept as is. Sorted, without duplicates.
    """
    import torch

    # kohya's container names count as containers even where this transformers version has no
    # such class (CLIPSdpaAttention is gone from transformers 5): they then match nothing.
    classes = {type(module).__name__ for module in model.modules()}
    known = classes | set(KOHYA_UNET_CONTAINERS) | set(KOHYA_TEXT_ENCODER_CONTAINERS)
    containers = [t for t in targets if t in known]
    names = [t for t in targets if t not in known]
    if containers:
        found = set()
        for name, module in model.named_modules():
            if type(module).__name__ not in containers:
                continue
            for child_name, child in module.named_modules():
                linear = type(child) is torch.nn.Linear
                conv_1x1 = type(child) is torch.nn.Conv2d and tuple(child.kernel_size) == (1, 1)
                if (linear or conv_1x1) and child_name:
                    found.add(f"{name}.{child_name}" if name else child_name)
        if not found:
            raise FetalBenchError(f"The modules {containers} hold no Linear or 1x1 Conv2d layer.",
                                  "List module names to adapt instead, e.g. [to_q, to_k, to_v, to_out.0].")
        names = sorted(found) + names
    return names


def peft_lora_config(lora: dict, targets_key: str, model=None):
    from peft import LoraConfig

    targets = list(lora[targets_key])
    if not targets:
        raise FetalBenchError(f"lora.{targets_key} is empty.", "List the modules to adapt, e.g. [to_q, to_k, to_v, to_out.0].")
    if model is not None:
        targets = resolve_targets(model, targets)
    return LoraConfig(r=int(lora["rank"]), lora_alpha=float(lora["alpha"]), init_lora_weights=True,
                      target_modules=targets)


def add_adapter(model, config, seed: int, adapter_name: str = "default") -> None:
    """Add a LoRA adapter whose random init (lora_A) comes from ``seed``, not global state.

    Through peft itself (``inject_adapter_in_model``), never through ``model.add_adapter``:
    transformers' and diffusers' integrations gate on their own peft version ranges (transformers
    5.24 refuses every peft below 0.22), so going through them ties training to one pairing.
    """
    import torch
    from peft import inject_adapter_in_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model, adapter_name=adapter_name)


def canonical_safetensors(path: Path) -> None:
    """Rewrite a safetensors file's JSON header with sorted keys, in place (atomically).

    The safetensors writer emits its header from a hash map whose order changes from run to
    run, so identical tensors give different file bytes; the data section is already in a
    fixed order. Sorting the header (offsets are relative to the data, so unchanged) makes the
    file's sha256 a function of its content, which is what ``lora_sha256`` promises.
    """
    from fetal_bench._io import atomic_file

    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8-byte alignment with spaces
    with atomic_file(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little") + text + raw[8 + size :])


def read_lora_config(lora_dir: str | Path) -> dict[str, Any]:
    """The ``generator_config.json`` of a trained LoRA directory (clear errors when it is not one)."""
    lora_dir = Path(lora_dir)
    if not lora_dir.is_dir():
        raise FetalBenchError(
            f"LoRA directory {lora_dir} does not exist.",
            "Pass the --output of `fetal-bench generate ... train`.",
        )
    path = lora_dir / CONFIG_FILE
    if not path.is_file():
        hint = " (training did not finish: rerun the same train command to resume)" if (lora_dir / "checkpoints").is_dir() else ""
        raise FetalBenchError(
            f"{lora_dir} holds no {CONFIG_FILE}{hint}.",
            "Pass the --output directory of a finished `fetal-bench generate ... train` run.",
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    weights = lora_dir / LORA_FILE
    if not weights.is_file():
        raise FetalBenchError(f"{lora_dir} has no {LORA_FILE}.", "Retrain: the directory is incomplete.")
    return config


def load_adapter(model, state_dict: dict, config, scale: float) -> None:
    """Inject ``config`` into ``model`` as the ``ADAPTER`` adapter, load ``state_dict`` (peft
    naming, no model prefix) into it and set its scale; every key must land."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict
    from peft.tuners.lora import LoraLayer

    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    outcome = set_peft_model_state_dict(model, state_dict, adapter_name=ADAPTER)
    unexpected = list(getattr(outcome, "unexpected_keys", []) or [])
    if unexpected:
        raise FetalBenchError(
            f"The LoRA file has {len(unexpected)} weights the model has no place for (e.g. {unexpected[0]}).",
            "Sample with the same --base (and generator) the LoRA was trained on.",
        )
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.set_scale(ADAPTER, float(scale))


def peft_configs_from_record(lora_record: dict[str, Any], pipe) -> dict[str, Any]:
    """The LoraConfig of each adapted model, as training made them (from generator_config.json)."""
    lora = lora_record["config"]["lora"]
    configs = {"unet": peft_lora_config(lora, "unet_targets", pipe.unet)}
    if lora.get("train_text_encoder"):
        configs["text_encoder"] = peft_lora_config(lora, "text_encoder_targets", pipe.text_encoder)
    return configs


def split_lora_state_dict(state_dict: dict) -> dict[str, dict]:
    """Split a diffusers-named LoRA state dict (``unet.….lora.down.weight``, ``text_encoder.…``)
    into peft-named state dicts per model (``….lora_A.weight``, no model prefix): the inverse of
    the ``convert_state_dict_to_diffusers`` renaming that saving applied."""
    # diffusers renames peft's lora_A/lora_B per layer kind: UNet attention to lora.down/up, CLIP
    # attention to lora_linear_layer.down/up, and leaves other layers (e.g. CLIP's MLP) as they are.
    renames = ((".lora.down.", ".lora_A."), (".lora.up.", ".lora_B."),
               (".lora_linear_layer.down.", ".lora_A."), (".lora_linear_layer.up.", ".lora_B."))
    parts: dict[str, dict] = {}
    for key, tensor in state_dict.items():
        prefix, _, rest = key.partition(".")
        for old, new in renames:
            rest = rest.replace(old, new)
        if prefix not in ("unet", "text_encoder") or not (".lora_A." in rest or ".lora_B." in rest):
            raise FetalBenchError(
                f"Unexpected key {key!r} in a LoRA file (expected unet.* or text_encoder.* LoRA weights).",
                "Pass a LoRA written by `fetal-bench generate ... train`.",
            )
        parts.setdefault(prefix, {})[rest] = tensor
    return parts

