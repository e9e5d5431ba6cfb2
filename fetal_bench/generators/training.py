"""LoRA fine-tuning of a Stable Diffusion UNet (and optionally its text encoder) under accelerate.

Shared by every generator: FU-LoRA (class prompts), the paper's mask-guided method (3-channel
[ultrasound, ultrasound, outline] images) and the mask-conditioned variant (an extra UNet input
channel holding the mask). A generator hands :func:`train_lora` a :class:`TrainingData` (how to
get example ``i``) and the merged configuration; this module does the rest:

* LoRA adapters from a peft :class:`~peft.LoraConfig` on the configured modules: module
  classes expand as kohya's "Standard" LoRA does (every Linear and 1x1 Conv2d inside each
  ``Transformer2DModel`` of the UNet and each ``CLIPAttention``/``CLIPMLP`` of the text
  encoder, see :func:`resolve_targets`), other names are peft suffixes (``to_q``...);
  initialised from the training seed; for the conditioned variant the UNet's ``conv_in`` gains input channels
  whose weights start at zero (so step 0 is the base model) and is trained in full.
* :class:`accelerate.Accelerator` with fp16/bf16 mixed precision on GPU (frozen weights in that
  precision, trainable ones in fp32), optional gradient checkpointing, 8-bit AdamW when
  bitsandbytes and CUDA are there (torch AdamW otherwise), gradient clipping, any diffusers LR
  schedule. Several processes (``accelerate launch``) each take a slice of every batch.
* Determinism and exact resumption: every random draw of a training step (which example, flip,
  prompt dropout, VAE posterior sample, noise, timestep) comes from a generator seeded by
  ``(seed, position in the example stream)``, never from global RNG state. A checkpoint then only
  needs the trainable weights, the optimizer and LR-schedule state and the step: a resumed run
  continues bit-for-bit as if never interrupted (on the same hardware). Checkpoints are written
  atomically every ``train.checkpoint_every`` steps; a rerun of the same configuration resumes
  from the newest one.
* Output: ``pytorch_lora_weights.safetensors`` in diffusers' naming (``pipe.load_lora_weights(DIR)``
  loads it), ``conv_in.safetensors`` for the conditioned variant, and ``generator_config.json``
  (written last, so its presence means the run finished) with the configuration and hashes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.training.rundir import RunDirectory, fingerprint

__all__ = [
    "CONFIG_FILE",
    "LORA_FILE",
    "CONV_IN_FILE",
    "TrainingData",
    "apply_lora",
    "resolve_targets",
    "encode_text",
    "split_lora_state_dict",
    "expand_conv_in",
    "read_lora_config",
    "train_lora",
]

LORA_FILE = "pytorch_lora_weights.safetensors"
CONV_IN_FILE = "conv_in.safetensors"
CONFIG_FILE = "generator_config.json"
ADAPTER = "fetal-bench"  # adapter name used when a LoRA is loaded for sampling
_SCHEMA_VERSION = 1
_KEEP_CHECKPOINTS = 2


@dataclass
class TrainingData:
    """What a generator trains on.

    ``get(i)`` returns example ``i`` as ``(pixels, prompt, condition)``: ``pixels`` uint8
    (3, R, R); ``prompt`` a string; ``condition`` None or a float32 (R, R) mask in [0, 1] for
    the conditioned variant. It is called once per use (decoding per step keeps memory flat).
    """

    n: int
    get: Callable[[int], tuple[np.ndarray, str, np.ndarray | None]]
    resolution: int
    extra_input_channels: int = 0
    #: Aspect-ratio buckets: example i's (width, height); ``get(i)`` returns that size. None =
    #: every example is ``resolution`` x ``resolution``.
    sizes: list[tuple[int, int]] | None = None


def _mix(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across runs and platforms, unlike hash())."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


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


def _lora_config(lora: dict, targets_key: str, model=None):
    from peft import LoraConfig

    targets = list(lora[targets_key])
    if not targets:
        raise FetalBenchError(f"lora.{targets_key} is empty.", "List the modules to adapt, e.g. [to_q, to_k, to_v, to_out.0].")
    if model is not None:
        targets = resolve_targets(model, targets)
    return LoraConfig(r=int(lora["rank"]), lora_alpha=float(lora["alpha"]), init_lora_weights=True,
                      target_modules=targets)


def _add_adapter(model, config, seed: int, adapter_name: str = "default") -> None:
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


def _freeze_skipped_layers(text_encoder, clip_skip: int | None) -> None:
    """Freeze the LoRA of CLIP layers that clip-skip leaves out of the embedding.

    They get no gradient (their output is never used), which DDP rejects as unused parameters;
    frozen, they are still saved (as initialised: lora_B = 0, no effect), like kohya's files.
    """
    import re

    if not clip_skip or clip_skip <= 1:
        return
    first_skipped = int(text_encoder.config.num_hidden_layers) - (int(clip_skip) - 1)
    for name, parameter in text_encoder.named_parameters():
        match = re.search(r"layers\.(\d+)\.", name)
        if "lora_" in name and match and int(match.group(1)) >= first_skipped:
            parameter.requires_grad_(False)


def _make_optimizer(groups: list[dict], train: dict, device) -> tuple[Any, str]:
    import torch

    name = str(train["optimizer"]).lower()
    kwargs = dict(betas=(float(train["adam_beta1"]), float(train["adam_beta2"])),
                  eps=float(train["adam_epsilon"]), weight_decay=float(train["weight_decay"]))
    if name not in ("adamw", "adamw8bit"):
        raise FetalBenchError(f"train.optimizer {name!r} is not supported.", "Use adamw or adamw8bit.")
    if name == "adamw8bit" and device.type == "cuda":
        try:
            import bitsandbytes as bnb  # optional: only on CUDA machines that have it

            return bnb.optim.AdamW8bit(groups, **kwargs), "bitsandbytes.AdamW8bit"
        except ImportError:
            pass
    return torch.optim.AdamW(groups, **kwargs), "torch.AdamW"


def _total_steps(train: dict, data: TrainingData, per_step: int, seed: int) -> int:
    if train.get("max_steps"):
        return int(train["max_steps"])
    if data.sizes is not None:
        return int(train["epochs"]) * len(_ExampleOrder(data, int(train["repeats"]), per_step, seed).plan(0))
    stream = int(train["epochs"]) * int(train["repeats"]) * data.n
    return max(1, math.ceil(stream / per_step))


class _ExampleOrder:
    """Which example fills each slot of each step, from ``(seed, epoch)`` alone.

    Without buckets (every example the same size) the ``repeats * n`` example stream of each
    epoch is one seeded permutation, cut into consecutive steps. With buckets (``data.sizes``) a
    step's examples must share a size, as in kohya: each epoch's permuted stream is grouped by
    bucket, cut into batches of ``per_step`` (a bucket's last batch is filled up from the same
    bucket), and the batches are put in a seeded order.
    """

    def __init__(self, data: TrainingData, repeats: int, per_step: int, seed: int):
        self.data, self.stream, self.per_step, self.seed = data, repeats * data.n, per_step, seed
        self._epoch: int | None = None
        self._order: list = []

    def _permutation(self, epoch: int) -> list[int]:
        import torch

        generator = torch.Generator().manual_seed(_mix(self.seed, "epoch", epoch))
        return torch.randperm(self.stream, generator=generator).tolist()

    def plan(self, epoch: int) -> list:
        if self._epoch != epoch:
            order = [p % self.data.n for p in self._permutation(epoch)]
            if self.data.sizes is not None:
                order = self._bucket_batches(order, epoch)
            self._epoch, self._order = epoch, order
        return self._order

    def _bucket_batches(self, order: list[int], epoch: int) -> list[list[int]]:
        import torch

        groups: dict[tuple[int, int], list[int]] = {}
        for example in order:
            groups.setdefault(tuple(self.data.sizes[example]), []).append(example)
        batches = []
        for size in sorted(groups):
            members = groups[size]
            for start in range(0, len(members), self.per_step):
                batch = members[start : start + self.per_step]
                batch += [members[k % len(members)] for k in range(self.per_step - len(batch))]
                batches.append(batch)
        shuffle = torch.randperm(len(batches), generator=torch.Generator().manual_seed(_mix(self.seed, "batches", epoch)))
        return [batches[i] for i in shuffle.tolist()]

    def at(self, step: int, first: int, count: int) -> list[tuple[int, int]]:
        """``(random-stream key, example)`` for slots ``first .. first + count`` of ``step``."""
        keys = [step * self.per_step + first + k for k in range(count)]
        if self.data.sizes is None:
            return [(key, self.plan(key // self.stream)[key % self.stream]) for key in keys]
        if not hasattr(self, "_n_batches"):
            self._n_batches = len(self.plan(0))  # the same every epoch: the buckets' sizes do not change
        batch = self.plan(step // self._n_batches)[step % self._n_batches]
        return [(key, batch[first + k]) for k, key in enumerate(keys)]


def _trainable_state(models: dict) -> dict:
    return {
        f"{prefix}.{name}": p.detach().float().cpu().contiguous()
        for prefix, model in models.items() if model is not None
        for name, p in model.named_parameters() if p.requires_grad
    }


def _restore_trainable(models: dict):
    """A loader for :meth:`RunDirectory.restore`: copy saved trainable tensors into ``models``."""

    def load(state: dict) -> None:
        import torch

        for prefix, model in models.items():
            if model is None:
                continue
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if p.requires_grad:
                        p.copy_(state[f"{prefix}.{name}"].to(p.dtype))

    return load


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


def _load_adapter(model, state_dict: dict, config, scale: float) -> None:
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


def _peft_configs_from_record(config: dict[str, Any], pipe) -> dict[str, Any]:
    """The LoraConfig of each adapted model, as training made them (from generator_config.json)."""
    lora = config["config"]["lora"]
    configs = {"unet": _lora_config(lora, "unet_targets", pipe.unet)}
    if lora.get("train_text_encoder"):
        configs["text_encoder"] = _lora_config(lora, "text_encoder_targets", pipe.text_encoder)
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


def apply_lora(pipe, lora_dir: str | Path, config: dict[str, Any], scale: float) -> None:
    """Load a trained LoRA (and conv_in, for the conditioned variant) into ``pipe`` at ``scale``.

    The adapters go in through peft directly (as in training), not ``pipe.load_lora_weights``:
    that path loads the text-encoder LoRA through transformers' ``load_adapter``, which refuses
    peft releases outside transformers' own range.
    """
    import torch
    from safetensors.torch import load_file

    if config.get("format") == "kohya":  # an external kohya file (e.g. the FU-LoRA authors' release)
        from fetal_bench.generators.kohya import apply_kohya_lora

        apply_kohya_lora(pipe, config["lora_file"], scale)
        return
    lora_dir = Path(lora_dir)
    extra = int(config.get("extra_input_channels", 0))
    if extra:
        expand_conv_in(pipe.unet, extra)
        state = load_file(str(lora_dir / CONV_IN_FILE))
        with torch.no_grad():
            pipe.unet.conv_in.weight.copy_(state["weight"])
            pipe.unet.conv_in.bias.copy_(state["bias"])
    parts = split_lora_state_dict(load_file(str(lora_dir / LORA_FILE)))
    configs = _peft_configs_from_record(config, pipe)
    for name, state_dict in parts.items():
        if name not in configs:
            raise FetalBenchError(
                f"{lora_dir / LORA_FILE} has {name} weights, but its {CONFIG_FILE} trained no {name} LoRA.",
                "Retrain: the directory's files do not belong together.",
            )
        _load_adapter(getattr(pipe, name), state_dict, configs[name], scale)


def train_lora(
    *,
    base,
    config: dict[str, Any],
    data: TrainingData,
    output: str | Path,
    record: dict[str, Any],
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a LoRA on ``data`` from ``base``; write it to ``output``; return its config record.

    ``record`` holds what the generator wants in ``generator_config.json`` besides what this
    function adds (base identity, data provenance, shape priors...). A finished ``output`` with
    the same configuration is returned as is; a different finished one is an error unless
    ``overwrite``; unfinished checkpoints of the same configuration are resumed.
    ``progress(step, total, loss)`` is called after every step (after its checkpoint).
    """
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    from fetal_bench.generators.config import config_sha256

    output = Path(output)
    train, lora = config["train"], config["lora"]
    key = fingerprint({"config": config_sha256(config), "base": record.get("base"), "data": record.get("data")})
    final = output / CONFIG_FILE
    if final.is_file():
        existing = json.loads(final.read_text())
        if existing.get("resume_key") == key and not overwrite:
            return existing
        if not overwrite:
            raise FetalBenchError(
                f"{output} already holds a LoRA trained with another configuration or data.",
                "Pick another --output, or pass --overwrite to replace it.",
            )
    if overwrite and output.exists():
        for name in (CONFIG_FILE, LORA_FILE, CONV_IN_FILE, "checkpoints"):
            target = output / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)

    cuda = torch.cuda.is_available()
    mixed = str(train.get("mixed_precision") or "no") if cuda else "no"
    # cpu=True where there is no CUDA, so that a launcher's CPU processes form one (gloo) group.
    accelerator = Accelerator(mixed_precision=mixed, cpu=not cuda)
    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed, torch.float32)
    seed = int(train["seed"])

    unet, vae, text_encoder = base.unet, base.vae, base.text_encoder
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    expand_conv_in(unet, data.extra_input_channels)
    unet_lora = _lora_config(lora, "unet_targets", unet)
    _add_adapter(unet, unet_lora, _mix(seed, "lora-init", "unet"))
    train_te = bool(lora.get("train_text_encoder"))
    te_lora = None
    if train_te:
        te_lora = _lora_config(lora, "text_encoder_targets", text_encoder)
        _add_adapter(text_encoder, te_lora, _mix(seed, "lora-init", "text_encoder"))
        _freeze_skipped_layers(text_encoder, train.get("clip_skip"))
    if data.extra_input_channels:
        unet.conv_in.requires_grad_(True)

    for module in (vae, unet, text_encoder):
        module.to(device)
        if weight_dtype != torch.float32:
            module.to(dtype=weight_dtype)
    # Trainable weights stay fp32 under mixed precision (fp16 weights cannot take small updates).
    for module in (unet, text_encoder):
        for p in module.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    if train.get("gradient_checkpointing"):
        unet.enable_gradient_checkpointing()
        if train_te:
            # transformers 5 renamed it (the old name warns); older versions only have the old one.
            enable = getattr(text_encoder, "activation_checkpointing_enable", None) or text_encoder.gradient_checkpointing_enable
            enable()
    unet.train()
    text_encoder.train(train_te)

    groups = [{"params": [p for p in unet.parameters() if p.requires_grad], "lr": float(train["unet_lr"])}]
    if train_te:
        groups.append({"params": [p for p in text_encoder.parameters() if p.requires_grad],
                       "lr": float(train["text_encoder_lr"])})
    optimizer, optimizer_name = _make_optimizer(groups, train, device)
    per_process = int(train["batch_size"])
    per_step = per_process * accelerator.num_processes
    total = _total_steps(train, data, per_step, seed)
    # accelerate's prepared scheduler steps once per process at every optimizer step, so its
    # horizon is counted in process-steps (as in diffusers' training scripts).
    lr_scheduler = get_scheduler(str(train["lr_scheduler"]), optimizer=optimizer,
                                 num_warmup_steps=int(train["warmup_steps"]) * accelerator.num_processes,
                                 num_training_steps=total * accelerator.num_processes)
    if train_te:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(unet, text_encoder, optimizer, lr_scheduler)
    else:
        unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    models = {"unet": accelerator.unwrap_model(unet),
              "text_encoder": accelerator.unwrap_model(text_encoder) if train_te else None}

    noise_scheduler = DDPMScheduler.from_config(base.scheduler_config)
    run = RunDirectory(output, fingerprint=key, keep_last=_KEEP_CHECKPOINTS)
    start = 0
    latest = run.latest()
    if latest is not None:
        run.restore(latest, weights=_restore_trainable(models), optimizer=optimizer, scheduler=lr_scheduler)
        start = latest.step

    order = _ExampleOrder(data, int(train["repeats"]), per_step, seed)

    clip_skip = train.get("clip_skip")
    dropout = float(train.get("prompt_dropout") or 0.0)
    random_flip = bool(train.get("random_flip"))
    scaling = float(base.vae.config.scaling_factor)
    factor = base.vae_scale_factor
    channels = int(base.vae.config.latent_channels)
    every = int(train.get("checkpoint_every") or 0)
    loss_value = float("nan")
    began = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)

    for step in range(start, total):
        slots = order.at(step, accelerator.process_index * per_process, per_process)
        pixels, prompts, conds, noise, steps_t, eps = [], [], [], [], [], []
        for position, example in slots:
            g = torch.Generator().manual_seed(_mix(seed, "sample", position))
            image, prompt, cond = data.get(example)
            x = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1.0)
            c = None if cond is None else torch.from_numpy(np.ascontiguousarray(cond, dtype=np.float32))[None]
            flip, drop = torch.rand(2, generator=g).tolist()
            if random_flip and flip < 0.5:
                x = x.flip(-1)
                c = None if c is None else c.flip(-1)
            if drop < dropout:
                prompt = ""
            latent_shape = (channels, image.shape[-2] // factor, image.shape[-1] // factor)
            eps.append(torch.randn(latent_shape, generator=g))
            noise.append(torch.randn(latent_shape, generator=g))
            steps_t.append(int(torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,), generator=g)))
            pixels.append(x)
            prompts.append(prompt)
            conds.append(c)
        x = torch.stack(pixels).to(device, dtype=weight_dtype)
        noise_t = torch.stack(noise).to(device)
        timesteps = torch.tensor(steps_t, device=device, dtype=torch.long)
        with torch.no_grad():
            posterior = vae.encode(x).latent_dist
            latents = (posterior.mean + posterior.std * torch.stack(eps).to(device, posterior.mean.dtype)) * scaling
        latents = latents.float()
        noisy = noise_scheduler.add_noise(latents, noise_t, timesteps)
        if data.extra_input_channels:
            masks = torch.stack(conds).to(device)
            small = F.interpolate(masks, size=noisy.shape[-2:], mode="area") * 2.0 - 1.0
            noisy = torch.cat([noisy, small], dim=1)
        ids = tokenize(base.tokenizer, prompts).to(device)
        with accelerator.autocast():
            if train_te:
                hidden = encode_text(text_encoder, ids, clip_skip)
            else:
                with torch.no_grad():
                    hidden = encode_text(text_encoder, ids, clip_skip)
            prediction = unet(noisy.to(weight_dtype), timesteps, hidden.to(weight_dtype)).sample
        if noise_scheduler.config.prediction_type == "v_prediction":
            target = noise_scheduler.get_velocity(latents, noise_t, timesteps)
        else:
            target = noise_t
        loss = F.mse_loss(prediction.float(), target.float())
        accelerator.backward(loss)
        if accelerator.sync_gradients and train.get("max_grad_norm"):
            params = [p for group in groups for p in group["params"]]
            accelerator.clip_grad_norm_(params, float(train["max_grad_norm"]))
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(accelerator.gather(loss.detach()[None]).mean())
        done = step + 1
        if every and done % every == 0 and done < total:
            if accelerator.is_main_process:
                run.save(done, weights=_trainable_state(models), optimizer=optimizer, scheduler=lr_scheduler)
            accelerator.wait_for_everyone()
        if progress is not None:
            progress(done, total, loss_value)

    accelerator.wait_for_everyone()
    result: dict[str, Any] = {}
    if accelerator.is_main_process:
        result = _save_final(output, models, unet_lora, te_lora, data, record, config, key,
                             training={
                                 "steps": total,
                                 "resumed_from_step": start or None,
                                 "examples": data.n,
                                 "batch_size_per_process": per_process,
                                 "num_processes": accelerator.num_processes,
                                 "optimizer": optimizer_name,
                                 "mixed_precision": mixed,
                                 "device": str(device),
                                 "final_loss": None if math.isnan(loss_value) else loss_value,
                                 "runtime_s": round(time.perf_counter() - began, 3),
                             })
        run.clear()
    accelerator.wait_for_everyone()
    if not result:
        result = json.loads(final.read_text())
    return result


def _save_final(output: Path, models: dict, unet_lora, te_lora, data: TrainingData, record: dict,
                config: dict, key: str, training: dict) -> dict[str, Any]:
    import tempfile

    import diffusers
    import peft
    import torch
    import transformers
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from fetal_bench import __version__
    from fetal_bench._io import sha256_file, write_json_atomic
    from fetal_bench.generators.config import config_sha256

    unet = models["unet"]
    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
              "unet_lora_adapter_metadata": unet_lora.to_dict()}
    if models["text_encoder"] is not None:
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(models["text_encoder"]))
        layers["text_encoder_lora_adapter_metadata"] = te_lora.to_dict()
    # diffusers writes straight into its directory: write into a temporary one beside the
    # output and move the file in, so a crash never leaves a truncated weights file.
    with tempfile.TemporaryDirectory(dir=output, prefix=".lora-tmp-") as tmp:
        StableDiffusionPipeline.save_lora_weights(tmp, safe_serialization=True, **layers)
        canonical_safetensors(Path(tmp) / LORA_FILE)
        (Path(tmp) / LORA_FILE).replace(output / LORA_FILE)
    files = {LORA_FILE: sha256_file(output / LORA_FILE)}
    if data.extra_input_channels:
        conv = unet.conv_in
        with tempfile.TemporaryDirectory(dir=output, prefix=".conv-tmp-") as tmp:
            save_file({"weight": conv.weight.detach().float().cpu().contiguous(),
                       "bias": conv.bias.detach().float().cpu().contiguous()}, str(Path(tmp) / CONV_IN_FILE))
            canonical_safetensors(Path(tmp) / CONV_IN_FILE)
            (Path(tmp) / CONV_IN_FILE).replace(output / CONV_IN_FILE)
        files[CONV_IN_FILE] = sha256_file(output / CONV_IN_FILE)
    payload = {
        "schema_version": _SCHEMA_VERSION,
        "generator": config["generator"],
        "variant": config.get("variant"),
        "config_version": config["config_version"],
        "config": config,
        "config_sha256": config_sha256(config),
        "resume_key": key,
        **record,
        "resolution": data.resolution,
        "extra_input_channels": data.extra_input_channels,
        "lora_sha256": files[LORA_FILE],
        "files": files,
        "training": training,
        "software": {"fetal_bench": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
                     "peft": peft.__version__, "transformers": transformers.__version__},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(output / CONFIG_FILE, payload)
    return payload
