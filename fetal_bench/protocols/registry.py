"""Protocol registry, config loading (profiles, dotted overrides) and the common driver."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fetal_bench._config import dotted_to_nested, merge_strict, unknown_key_error
from fetal_bench.errors import FetalBenchError, registry_entry

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "list_protocols", "load_config", "run_protocol"]

_CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    config: str  # file name in fetal_bench/protocols/configs
    runner: str  # "module:function"
    description: str
    reference: str


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("fu-lora-zero-shot", "1.2", "fu_lora_zero_shot.yaml", "fetal_bench.protocols.runners:run_fu_lora",
                 "Spanish -> African zero-shot plane classification: ES / ES+DA / HB / HB+DA x five ImageNet backbones, "
                 "SGD lr 1e-3 momentum 0.9, batch 24, 20 epochs, fp32, no gradient clipping, 224x224 stretched, no input "
                 "normalisation, the authors' HB list (settings and sources: docs/reproducibility.md).",
                 "Wang, Whelan, Silvestre, Curran. arXiv:2407.20072 (2024), Table 1."),
        Protocol("tian-pretrain-finetune", "1.0", "tian_pretrain_finetune.yaml", "fetal_bench.protocols.runners:run_tian",
                 "Pre-train on synthetic images, fine-tune on real ones; compared with real-only and synthetic-only.",
                 "Tian, Ucurum, Han, Young, Chatwin, Birch. arXiv:2501.15248 (2025)."),
        Protocol("synthetic-ratio-curve", "1.0", "synthetic_ratio_curve.yaml", "fetal_bench.protocols.runners:run_ratio_curve",
                 "Real-only and hybrid training at several synthetic shares: the task score against the synthetic share.",
                 "FU-LoRA's hybrid sets (arXiv:2407.20072) generalised to a sweep."),
        Protocol("sam-few-shot", "1.1", "sam_few_shot.yaml", "fetal_bench.protocols.runners:run_sam_few_shot",
                 "Few-shot head segmentation with box-prompted SAM (n in 5..500 real pairs, with/without synthetic pairs), "
                 "Adam 1e-5, fp32, no gradient clipping, Dice+CE, 20 epochs, batch 5, 256x256 stretched, box jitter 0-20 px, Dice over 5 jitter draws.",
                 "arXiv:2506.23664 (2025): 94.66% (Spanish) / 94.38% (African) Dice."),
    )
}


def list_protocols() -> list[Protocol]:
    return list(PROTOCOLS.values())


def get_protocol(name: str) -> Protocol:
    return registry_entry(PROTOCOLS, name, "protocol")


# Where a protocol config is not checked key by key against its YAML: variant and stage names are
# the protocol's own (their settings are checked against the training options below), and model
# options are checked by the model's builder.
_OPEN_PATHS = frozenset({("variants",), ("stages",), ("model_cfg",), ("train", "model_cfg"), ("finetune", "model_cfg")})
# A profile's variants (or stages) replace the full run's, rather than adding to them.
_PROFILE_REPLACES = frozenset({("variants",), ("stages",)})
# Fields of TrainConfig the runners set themselves, never from a config.
_RUNNER_FIELDS = frozenset({"output", "progress", "run_name"})


def _train_options() -> frozenset[str]:
    from dataclasses import fields

    from fetal_bench.training.config import TrainConfig

    return frozenset(f.name for f in fields(TrainConfig)) - _RUNNER_FIELDS


def _merge(config: dict[str, Any], update: dict[str, Any], *, source: str, replace=()) -> dict[str, Any]:
    """The strict merge every configuration uses; ``train`` may add any training option."""
    options = _train_options()
    return merge_strict(config, update, open_paths=_OPEN_PATHS, replace_paths=replace, source=source,
                        extra_keys={("train",): options, ("finetune",): options})


def _check_run_settings(config: dict[str, Any], source: str) -> None:
    """Each variant's or stage's settings are training options (a typo there is an error too)."""
    options = _train_options()
    for section in ("variants", "stages"):
        for name, settings in (config.get(section) or {}).items():
            if not isinstance(settings, dict):
                raise FetalBenchError(f"{section}.{name}{source} must be a mapping of training options, "
                                      f"got {str(settings)[:80]!r}.", "Write e.g. `{augment: none}`.")
            for key in settings:
                if key not in options:
                    raise unknown_key_error((section, str(name), str(key)), options, source=source)


def load_config(name: str, *, overrides: dict[str, Any] | None = None, config_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """The protocol's YAML, with ``overrides["profile"]`` applied first, then dotted overrides.

    Every key of a profile or an override must exist in the protocol's YAML (or be a training
    option, in ``train``): a misspelt ``--set trainng.lr=0.1`` is an error, not a silent no-op.
    """
    import yaml

    protocol = get_protocol(name)
    path = Path(config_file) if config_file is not None else _CONFIGS / protocol.config
    text = path.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise FetalBenchError(f"{path} is not a YAML mapping.", "Fix the protocol config.")
    overrides = dict(overrides or {})
    profile = overrides.pop("profile", None)
    profiles = config.pop("profiles", {}) or {}
    if profile is not None:
        if profile not in profiles:
            raise FetalBenchError(f"Protocol {name!r} has no profile {profile!r}.", f"Profiles: {', '.join(profiles) or 'none'}.")
        config = _merge(config, profiles[profile], source=f" (in profile {profile!r} of {path.name})",
                        replace=_PROFILE_REPLACES)
    for dotted, value in overrides.items():
        shown = json.dumps(value, default=str) if not isinstance(value, str) else value
        shown = shown if len(shown) <= 40 else shown[:37] + "..."  # as typed, bounded: values can be long
        # `--set variants={...}` replaces the list, as a profile does; `--set variants.ES.augment=x` edits one.
        config = _merge(config, dotted_to_nested(dotted, value), source=f" (in --set {dotted}={shown})",
                        replace=_PROFILE_REPLACES & {tuple(dotted.split("."))})
    _check_run_settings(config, f" (in {path.name}, profile and --set)")
    config["_source"] = {"file": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "profile": profile,
                         "overrides": overrides}
    return config


def run_protocol(name: str, output: str | os.PathLike, *, overrides: dict[str, Any] | None = None,
                 config_file: str | os.PathLike | None = None, dry_run: bool = False,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run protocol ``name`` into ``output``; return the summary (``rows``, ``_path``)."""
    from fetal_bench import __version__
    from fetal_bench._io import atomic_file, write_json_atomic
    from datetime import datetime, timezone

    protocol = get_protocol(name)
    config = load_config(name, overrides=overrides, config_file=config_file)
    output = Path(output)
    note = log or (lambda message: None)
    module_name, function_name = protocol.runner.split(":")
    runner = getattr(importlib.import_module(module_name), function_name)
    if not dry_run:
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output / "protocol_config.json", {"protocol": name, "version": protocol.version, "config": config})
    rows = runner(config, output, dry_run=dry_run, log=note)
    planned = config.pop("_planned", {})
    summary = {"protocol": name, "version": protocol.version, "reference": protocol.reference, "rows": rows,
               # every run's resolved training config (docs/reproducibility.md compares them with the authors')
               "train_configs": {run: entry["train_config"] for run, entry in sorted(planned.items())},
               "fetal_bench_version": __version__, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config_sha256": config["_source"]["sha256"]}
    if dry_run:
        return summary
    path = output / "summary.json"
    write_json_atomic(path, summary)
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with atomic_file(output / "summary.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    summary["_path"] = str(path)
    note(f"summary: {path}")
    return json.loads(json.dumps(summary))
