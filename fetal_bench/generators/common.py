"""Pieces shared by the generators: configuration resolution, sampling set-up, image encoding."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.generators.config import (
    config_sha256,
    default_config,
    load_yaml,
    merge_config,
    read_generation_config,
)

__all__ = [
    "SamplingSetup",
    "apply_lora",
    "prune_none",
    "resolve_resolution",
    "resolve_train_config",
    "to_png",
]


def prune_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Drop None values recursively (unset command-line options), keep empty sub-mappings out."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            inner = prune_none(value)
            if inner:
                out[key] = inner
        elif value is not None:
            out[key] = value
    return out


def resolve_train_config(
    generator: str, generator_config: str | Path | Mapping | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults of ``generator`` <- a user YAML (path or mapping) <- command-line overrides."""
    config = default_config(generator)
    if generator_config is not None:
        user = dict(generator_config) if isinstance(generator_config, Mapping) else load_yaml(generator_config)
        config = merge_config(config, user)
    return merge_config(config, prune_none(overrides))


def resolve_resolution(config: dict[str, Any], base) -> int:
    """``data.resolution`` (``auto`` = the base's native size), checked against the VAE/UNet strides."""
    value = config["data"]["resolution"]
    resolution = base.native_resolution if value in (None, "auto") else int(value)
    multiple = base.vae_scale_factor * 2 ** (len(base.unet.config.block_out_channels) - 1)
    if resolution < multiple or resolution % multiple:
        raise FetalBenchError(
            f"data.resolution {resolution} is not a positive multiple of {multiple} for this base.",
            f"Use e.g. {base.native_resolution}.",
        )
    config["data"]["resolution"] = resolution
    return resolution


def to_png(array: np.ndarray) -> dict[str, Any]:
    """An Image cell (PNG bytes, fixed encoder settings) for a uint8 (H, W) array."""
    from fetal_bench.data.writer import encode_png

    return {"bytes": encode_png(array), "path": None}


class SamplingSetup:
    """Everything a sampler needs, resolved from the LoRA, a reproduction config and options.

    Precedence: explicit options > ``--config`` (a synthetic split's generation config) > the
    sampling defaults the LoRA was trained with.
    """

    def __init__(self, lora_record: dict[str, Any], generation: dict[str, Any] | None,
                 options: Mapping[str, Any]):
        sample = dict(lora_record["config"]["sample"])
        execution = dict(lora_record["config"].get("execution", {}))
        post = dict(lora_record["config"].get("postprocess", {}) or {})
        if generation:
            sample.update({k: v for k, v in generation.get("sample", {}).items() if k in sample or k == "classes"})
            execution.update(generation.get("execution", {}))
            post.update(generation.get("postprocess", {}) or {})
        for key in ("per_class", "seed", "steps", "guidance", "lora_scale", "scheduler", "negative_prompt", "classes"):
            if options.get(key) is not None:
                sample[key] = options[key]
        for key in ("batch_size", "shard_size"):
            if options.get(key) is not None:
                execution[key] = options[key]
        if int(sample["per_class"]) < 1:
            raise FetalBenchError(f"--per-class {sample['per_class']} must be >= 1.", "Pass e.g. --per-class 100.")
        if int(sample["steps"]) < 1:
            raise FetalBenchError(f"--steps {sample['steps']} must be >= 1.", "Pass e.g. --steps 20.")
        self.sample = sample
        self.execution = {"batch_size": int(execution.get("batch_size", 8)), "shard_size": int(execution.get("shard_size", 64))}
        self.postprocess = post


def load_generation(config: str | Path | None) -> dict[str, Any] | None:
    return None if config is None else read_generation_config(config)


def check_lora_matches(generation: dict[str, Any] | None, lora_record: dict[str, Any], lora_dir: Path) -> None:
    """A reproduction config names a LoRA by hash; refuse a different one."""
    if not generation:
        return
    wanted = generation.get("lora_sha256")
    if wanted and wanted != lora_record.get("lora_sha256"):
        raise FetalBenchError(
            f"The LoRA in {lora_dir} (sha256 {str(lora_record.get('lora_sha256'))[:16]}) is not the one the "
            f"config was made with (sha256 {str(wanted)[:16]}).",
            "Pass --lora with the directory of that LoRA (its generator_config.json lists lora_sha256).",
        )


def generation_sha256(generation: Mapping[str, Any]) -> str:
    """config_sha256 of a generation config, without where files happen to live on this machine.

    Paths (the LoRA directory, the training data directory, a local base's directory) are
    recorded but not hashed: the same LoRA, data and base weights (by hash) on another machine
    give the same config hash.
    """
    import copy

    hashed = copy.deepcopy({k: v for k, v in generation.items() if k not in ("lora_path", "base_model")})
    hashed.get("source", {}).pop("path", None)
    if hashed.get("base", {}).get("kind") == "local":
        hashed["base"].pop("id", None)
    return config_sha256(hashed)


def check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FetalBenchError(f"Output directory {output} already exists.",
                              "Choose another --output, delete it, or pass --overwrite.")


def open_lora(lora: str | Path | None, generation_in: dict | None, generators: tuple[str, ...]):
    """``(lora_dir, lora_record)``: from ``--lora`` or the reproduction config's ``lora_path``."""
    from fetal_bench.generators.lora import read_lora_config

    if lora is None:
        if not generation_in or not generation_in.get("lora_path"):
            raise FetalBenchError("No LoRA given.", "Pass --lora DIR (the --output of the train command).")
        lora = generation_in["lora_path"]
    lora_dir = Path(lora)
    lora_record = read_lora_config(lora_dir)
    if lora_record.get("generator") not in generators:
        raise FetalBenchError(
            f"{lora_dir} holds a {lora_record.get('generator')!r} LoRA, not {' or '.join(generators)}.",
            f"Sample it with the `sample` command of its own generator ({lora_record.get('generator')}).",
        )
    check_lora_matches(generation_in, lora_record, lora_dir)
    return lora_dir, lora_record


def prepare_pipeline(lora_dir: Path, lora_record: dict, sample: dict, *, base: str | None,
                     revision: str | None, generation_in: dict | None):
    """Load the base the LoRA was trained on (or ``base``), apply the LoRA; ``(model, pipe, state)``.

    A resolved base whose identity differs from the training base is refused unless ``--base``
    was given explicitly (then it is used, and recorded in every row).
    """
    import torch

    from fetal_bench.generators import sampling as smp
    from fetal_bench.generators.base import base_label, load_base, same_base
    from fetal_bench.tasks.inference import is_cuda
    trained = lora_record["base"]  # None: an external LoRA file, whose base is not recorded
    if base is not None:
        spec, rev = base, revision
    elif (generation_in or {}).get("base") or trained:
        recorded = (generation_in or {}).get("base") or trained
        spec = "tiny" if recorded.get("kind") == "tiny" else recorded["id"]
        rev = revision or (recorded.get("revision") if recorded.get("kind") == "hub" else None)
    else:
        spec, rev = lora_record["config"]["base"]["model"], revision
    model = load_base(spec, revision=rev, default=lora_record["config"]["base"])
    if base is None and trained is not None and not same_base(model.identity, trained):
        raise FetalBenchError(
            f"The base model resolved for sampling ({base_label(model.identity)}) is not the one the LoRA "
            f"was trained on ({base_label(trained)}).",
            "Pass --base explicitly to sample on another base anyway (it is recorded in every row).",
        )
    state = smp.process_state()
    pipe = model.pipeline()
    apply_lora(pipe, lora_dir, lora_record, float(sample["lora_scale"]))
    pipe.scheduler = smp.make_scheduler(str(sample["scheduler"]), model.scheduler_config)
    pipe.to(state.device)
    if is_cuda(state.device):
        # fp16 halves memory and doubles throughput on GPU; attention uses PyTorch SDPA (the
        # diffusers default processor).
        pipe.to(dtype=torch.float16)
    pipe.set_progress_bar_config(disable=True)
    return model, pipe, state


def apply_lora(pipe, lora_dir: str | Path, lora_record: dict[str, Any], scale: float) -> None:
    """Load a trained LoRA (and conv_in, for the conditioned variant) into ``pipe`` at ``scale``;
    ``lora_record``: its generator_config.json.

    The adapters go in through peft directly (as in training), not ``pipe.load_lora_weights``:
    that path loads the text-encoder LoRA through transformers' ``load_adapter``, which refuses
    peft releases outside transformers' own range.
    """
    import torch
    from safetensors.torch import load_file

    if lora_record.get("format") == "kohya":  # an external kohya file (e.g. the FU-LoRA authors' release)
        from fetal_bench.generators.kohya import apply_kohya_lora

        apply_kohya_lora(pipe, lora_record["lora_file"], scale)
        return
    from fetal_bench.generators.lora import (
        CONFIG_FILE,
        CONV_IN_FILE,
        LORA_FILE,
        expand_conv_in,
        load_adapter,
        peft_configs_from_record,
        split_lora_state_dict,
    )

    lora_dir = Path(lora_dir)
    extra = int(lora_record.get("extra_input_channels", 0))
    if extra:
        expand_conv_in(pipe.unet, extra)
        state = load_file(str(lora_dir / CONV_IN_FILE))
        with torch.no_grad():
            pipe.unet.conv_in.weight.copy_(state["weight"])
            pipe.unet.conv_in.bias.copy_(state["bias"])
    parts = split_lora_state_dict(load_file(str(lora_dir / LORA_FILE)))
    configs = peft_configs_from_record(lora_record, pipe)
    for name, state_dict in parts.items():
        if name not in configs:
            raise FetalBenchError(
                f"{lora_dir / LORA_FILE} has {name} weights, but its {CONFIG_FILE} trained no {name} LoRA.",
                "Retrain: the directory's files do not belong together.",
            )
        load_adapter(getattr(pipe, name), state_dict, configs[name], scale)

