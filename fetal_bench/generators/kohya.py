"""kohya-format LoRA files (sd-scripts ``networks/lora.py``), e.g. the FU-LoRA authors' releases.

The FU-LoRA authors published their LoRAs on the Hub (``fangyijie/fu-lora``:
``fetal_ultrasound_v1.0.safetensors`` rank 128, ``v2.0`` rank 32, ``v3.0`` rank 8; README of
github.com/13204942/FU-LoRA at 9b84b6f) in kohya's layout: one module per key stem
``lora_unet_<module path with _>`` / ``lora_te_text_model_<...>`` holding ``.lora_down.weight``,
``.lora_up.weight`` and ``.alpha``. This module maps those stems onto the modules of a loaded
pipeline (by enumerating the model's own module names, so underscores inside names are never
guessed) and loads them through peft directly, as :func:`~fetal_bench.generators.common.apply_lora`
does for fetal-bench's own LoRAs (``pipe.load_lora_weights`` would route the text encoder
through transformers' ``load_adapter``, which refuses peft versions outside its own range).

The scale matches kohya's: output += multiplier * alpha / rank * up(down(x)); peft's
``lora_alpha / r`` scaling times :meth:`set_scale` is the same product.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["AUTHORS_HUB_REPO", "download_hub_lora", "is_kohya_state_dict", "kohya_to_peft", "apply_kohya_lora",
           "kohya_training_metadata", "repeats_from_metadata"]

AUTHORS_HUB_REPO = "fangyijie/fu-lora"
_PREFIXES = {"unet": ("lora_unet_",), "text_encoder": ("lora_te_text_model_", "lora_te_")}
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
_MAX_KEYS = 100_000  # a kohya SD 1.5 LoRA has a few thousand; more is not a LoRA file


def is_kohya_state_dict(state_dict: dict) -> bool:
    return bool(state_dict) and all(str(k).startswith(("lora_unet_", "lora_te_")) for k in state_dict)


def _stems(state_dict: dict) -> dict[str, dict[str, Any]]:
    if len(state_dict) > _MAX_KEYS:
        raise FetalBenchError(f"The LoRA file holds {len(state_dict)} tensors.", "Pass a kohya LoRA file.")
    stems: dict[str, dict[str, Any]] = {}
    for key, tensor in state_dict.items():
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise FetalBenchError(f"Key {key[:120]!r} is not a kohya LoRA weight "
                                  "(.lora_down.weight, .lora_up.weight or .alpha).",
                                  "Pass a kohya-format LoRA (sd-scripts networks/lora.py, 'Standard').")
        stems.setdefault(key[: -len(suffix)], {})[suffix] = tensor
    return stems


def _module_index(model, prefixes: tuple[str, ...], kinds: tuple[type, ...]) -> dict[str, tuple[str, Any]]:
    """kohya stem -> (module name, module) for every adaptable layer of ``model``."""
    index = {}
    for name, module in model.named_modules():
        if isinstance(module, kinds) and name:
            flat = name.replace(".", "_")
            for prefix in prefixes:
                index[prefix + flat] = (name, module)
                # transformers 5 flattened CLIPTextModel (no `text_model.`); kohya's names keep it.
                if flat.startswith("text_model_"):
                    index[prefix + flat[len("text_model_"):]] = (name, module)
    return index


def kohya_to_peft(state_dict: dict, models: dict[str, Any]) -> dict[str, tuple[dict, Any]]:
    """Per model (``unet``, ``text_encoder``): (peft-named state dict, LoraConfig) from a kohya dict.

    Every stem must land on a Linear or Conv2d of the given models; rank comes from
    ``lora_down``'s first dimension and alpha from ``.alpha`` (kohya's default alpha = rank when
    absent); modules whose rank or alpha differs from the most common one get peft
    ``rank_pattern``/``alpha_pattern`` entries.
    """
    import torch
    from peft import LoraConfig

    stems = _stems(state_dict)
    kinds = (torch.nn.Linear, torch.nn.Conv2d)
    indexes = {part: _module_index(model, _PREFIXES[part], kinds) for part, model in models.items()}
    found: dict[str, dict[str, tuple[Any, Any, float]]] = {part: {} for part in models}
    for stem, tensors in stems.items():
        part = "unet" if stem.startswith("lora_unet_") else "text_encoder"
        if part not in indexes or stem not in indexes[part]:
            raise FetalBenchError(f"The LoRA module {stem[:120]!r} has no matching layer in this base "
                                  f"({part}).", "Sample on the base the LoRA was trained for (SD 1.5 for FU-LoRA).")
        if ".lora_down.weight" not in tensors or ".lora_up.weight" not in tensors:
            raise FetalBenchError(f"LoRA module {stem[:120]!r} lacks lora_down or lora_up.", "The file is incomplete.")
        name, module = indexes[part][stem]
        down, up = tensors[".lora_down.weight"].float(), tensors[".lora_up.weight"].float()
        if isinstance(module, torch.nn.Conv2d) and down.dim() == 2:
            down, up = down[:, :, None, None], up[:, :, None, None]
        rank = int(down.shape[0])
        alpha = float(tensors[".alpha"]) if ".alpha" in tensors else float(rank)
        found[part][name] = (down, up, rank, alpha)
    converted = {}
    for part, modules in found.items():
        if not modules:
            continue
        rank = Counter(r for _, _, r, _ in modules.values()).most_common(1)[0][0]
        alpha = Counter(a for _, _, _, a in modules.values()).most_common(1)[0][0]
        config = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=sorted(modules),
            rank_pattern={f"^{re.escape(n)}$": r for n, (_, _, r, _) in modules.items() if r != rank},
            alpha_pattern={f"^{re.escape(n)}$": a for n, (_, _, _, a) in modules.items() if a != alpha})
        weights = {}
        for name, (down, up, _, _) in modules.items():
            weights[f"{name}.lora_A.weight"] = down.contiguous()
            weights[f"{name}.lora_B.weight"] = up.contiguous()
        converted[part] = (weights, config)
    return converted


def apply_kohya_lora(pipe, path: str | Path, scale: float) -> dict[str, int]:
    """Load the kohya LoRA at ``path`` into ``pipe`` at ``scale``; return modules adapted per model."""
    from safetensors.torch import load_file

    from fetal_bench.generators.lora import load_adapter

    state_dict = load_file(str(path))
    if not is_kohya_state_dict(state_dict):
        raise FetalBenchError(f"{path} is not a kohya-format LoRA (keys lora_unet_* / lora_te_*).",
                              "Pass a kohya LoRA file, or a LoRA directory written by `fetal-bench generate ... train`.")
    converted = kohya_to_peft(state_dict, {"unet": pipe.unet, "text_encoder": pipe.text_encoder})
    for part, (weights, config) in converted.items():
        load_adapter(getattr(pipe, part), weights, config, scale)
    return {part: len(weights) // 2 for part, (weights, _) in converted.items()}


def download_hub_lora(repo_id: str, weight_name: str | None, revision: str | None) -> tuple[Path, str]:
    """``(local file, resolved commit)`` of a LoRA file in a Hub model repository.

    Offline (``HF_HUB_OFFLINE=1``) without a cached copy, or without a network, this fails at
    once with a clear error instead of hanging.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    if not weight_name:
        raise FetalBenchError(f"--lora {repo_id} is a Hub repository: say which file.",
                              "Pass --weight-name, e.g. fetal_ultrasound_v1.0.safetensors for fangyijie/fu-lora.")
    if not weight_name.endswith(".safetensors") or "/" in weight_name or "\\" in weight_name or len(weight_name) > 200:
        raise FetalBenchError(f"--weight-name {weight_name[:200]!r} is not a .safetensors file name.",
                              "Only safetensors files are loaded (never pickles), e.g. fetal_ultrasound_v1.0.safetensors.")
    try:
        local = Path(hf_hub_download(repo_id, weight_name, revision=revision))
    except LocalEntryNotFoundError as error:
        raise FetalBenchError(f"{repo_id}/{weight_name} is not in the local Hub cache and the Hub cannot be "
                              f"reached (offline: {error.__class__.__name__}).",
                              "Connect to the network (unset HF_HUB_OFFLINE), or pass --lora with a local "
                              ".safetensors file.") from error
    except (EntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        raise FetalBenchError(f"Cannot download {weight_name} from {repo_id}: {str(error)[:300]}",
                              "Check the repository id, --weight-name and --lora-revision.") from error
    commit = local.parent.name if local.parent.parent.name == "snapshots" else (revision or "unknown")
    return local, commit



_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on a header


def kohya_training_metadata(path: str | Path) -> dict[str, Any] | None:
    """What kohya's trainer recorded about a LoRA's training, from the ``.safetensors`` header;
    None when the file carries no such record (``--no_metadata``, or not kohya's).

    sd-scripts' ``train_network.py`` (kohya-ss/sd-scripts at 48d368fa557731ad0488c07304dfeba8c07910eb)
    writes string metadata: ``ss_num_train_images``, ``ss_num_batches_per_epoch``,
    ``ss_num_epochs``, ``ss_max_train_steps`` (lines 1010-1017), ``ss_dataset_dirs`` (JSON: image
    folder -> ``n_repeats``, ``img_count``; lines 1141-1142, 1159) and, per save, ``ss_steps`` and
    ``ss_epoch`` (lines 1302-1303). Returns ``repeats_per_folder`` and ``images_per_folder`` (from
    ``ss_dataset_dirs``, or ``ss_datasets``' subsets), ``num_train_images``, ``batches_per_epoch``,
    ``epochs``, ``max_train_steps``, ``steps`` and ``epoch`` (None where absent). Only the header
    is read, never the tensors.
    """
    from fetal_bench._io import load_json

    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if not 0 < size <= _MAX_HEADER_BYTES:
            raise FetalBenchError(f"{path} is not a safetensors file (header size {size}).", "Pass a .safetensors file.")
        header = load_json(handle.read(size))
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not any(str(k).startswith("ss_") for k in metadata):
        return None

    def number(key: str) -> int | None:
        try:
            return int(str(metadata[key]))
        except (KeyError, ValueError):
            return None

    def parsed(key: str):
        try:
            return load_json(str(metadata[key]))
        except (KeyError, ValueError):
            return None

    repeats: dict[str, int] = {}
    images: dict[str, int] = {}
    dirs = parsed("ss_dataset_dirs")
    if isinstance(dirs, dict):
        for folder, entry in dirs.items():
            if isinstance(entry, dict) and "n_repeats" in entry:
                repeats[str(folder)] = int(entry["n_repeats"])
                images[str(folder)] = int(entry.get("img_count", 0))
    datasets = parsed("ss_datasets")
    if not repeats and isinstance(datasets, list):
        for dataset in datasets:
            for subset in (dataset.get("subsets") or []) if isinstance(dataset, dict) else []:
                if isinstance(subset, dict) and "num_repeats" in subset:
                    folder = str(subset.get("image_dir") or f"subset {len(repeats) + 1}")
                    repeats[folder] = int(subset["num_repeats"])
                    images[folder] = int(subset.get("img_count", 0))
    return {
        "repeats_per_folder": dict(sorted(repeats.items())),
        "images_per_folder": dict(sorted(images.items())),
        "num_train_images": number("ss_num_train_images"),
        "batches_per_epoch": number("ss_num_batches_per_epoch"),
        "epochs": number("ss_num_epochs"),
        "max_train_steps": number("ss_max_train_steps"),
        "steps": number("ss_steps"),
        "epoch": number("ss_epoch"),
        "source": "kohya sd-scripts ss_* metadata in the .safetensors header",
    }


def repeats_from_metadata(metadata: dict[str, Any] | None, where: str) -> int:
    """The one repeat count of a kohya run (every image folder's ``n_repeats``); an error when the
    header has none, or when folders differ (fetal-bench repeats every image alike)."""
    values = sorted(set((metadata or {}).get("repeats_per_folder", {}).values()))
    if not values:
        raise FetalBenchError(f"{where} records no repeat count (kohya's ss_dataset_dirs is absent).",
                              "Set train.repeats yourself, or pass a LoRA file kohya saved with its metadata.")
    if len(values) > 1:
        raise FetalBenchError(f"{where} repeats its image folders differently: {metadata['repeats_per_folder']}.",
                              "Set train.repeats yourself: fetal-bench repeats every image the same number of times.")
    return values[0]
