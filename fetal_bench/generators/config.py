"""Generator configurations: versioned YAML defaults with sources, user overrides, hashes.

Each generator has one YAML file in ``configs/`` holding the papers' defaults and, under
``sources``, where each default comes from. A run starts from that file, applies an optional
user YAML (``--generator-config``) and then command-line options; every key a user sets must
exist in the defaults (a typo is an error, not a silently ignored setting), except inside the
free-form mappings listed in :data:`_FREE_MAPPINGS`.

:func:`config_sha256` hashes a configuration canonically (sorted-key JSON) without the parts
that do not change what is generated (``execution``: batch and shard sizes; ``sources``), so two
runs that would produce the same data have the same hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from fetal_bench._config import merge_strict
from fetal_bench.errors import FetalBenchError

__all__ = [
    "CONFIG_FILES",
    "config_sha256",
    "default_config",
    "dump_yaml",
    "load_yaml",
    "merge_config",
    "read_generation_config",
]

#: Generator name -> its defaults file in ``fetal_bench/generators/configs``.
CONFIG_FILES: dict[str, str] = {
    "fu-lora": "fu_lora.yaml",
    "mask-guided": "mask_guided.yaml",
    "mask-conditioned": "mask_conditioned.yaml",
}

# Mappings whose keys are data (class names, setting paths), not settings.
_FREE_MAPPINGS = {("data", "class_prompts"), ("sources",)}
# Parts of a configuration that do not change what is generated.
_NOT_HASHED = ("execution", "sources")
# Marker before the generation config block in a synthetic dataset's card.
CARD_MARKER = "<!-- fetal-bench:generation-config -->"


def default_config(generator: str) -> dict[str, Any]:
    """The shipped defaults of ``generator`` (a fresh copy)."""
    if generator not in CONFIG_FILES:
        raise FetalBenchError(
            f"Unknown generator {generator!r}.", f"Use one of: {', '.join(sorted(CONFIG_FILES))}."
        )
    import yaml

    text = resources.files("fetal_bench.generators").joinpath("configs", CONFIG_FILES[generator]).read_text()
    return yaml.safe_load(text)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or anything but a mapping is a clear error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FetalBenchError(f"Configuration file {path} does not exist.", "Pass the path of a YAML file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FetalBenchError(f"{path} is not valid YAML: {error}", "Fix the syntax and retry.") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FetalBenchError(f"{path} holds a {type(data).__name__}, not a mapping.", "Write `key: value` pairs.")
    return data


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``override``, recursively; unknown keys are a :class:`FetalBenchError`.

    The strict merge every fetal-bench configuration shares (:func:`fetal_bench._config.merge_strict`).
    """
    return merge_strict(base, override, open_paths=_FREE_MAPPINGS)


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` without its execution settings and sources."""
    hashed = {key: value for key, value in config.items() if key not in _NOT_HASHED}
    text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def dump_yaml(config: Mapping[str, Any]) -> str:
    """YAML text of ``config`` (keys in insertion order, block style)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def sequence(dumper, data):
        # Lists of numbers/strings on one line ([0.5, 0.51, ...]): a covariance matrix stays readable.
        flat = all(not isinstance(item, (list, dict)) for item in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)

    Dumper.add_representer(list, sequence)
    return yaml.dump(json.loads(json.dumps(config, default=str)), Dumper=Dumper, sort_keys=False,
                     allow_unicode=True, default_flow_style=False, width=120)


def read_generation_config(source: str | Path) -> dict[str, Any]:
    """The generation config of a synthetic split, for ``sample --config``.

    ``source`` is a YAML file, a synthetic dataset directory (its ``build_info.json``), that
    directory's ``README.md`` card, or its ``build_info.json``.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "build_info.json"
        if not path.is_file():
            raise FetalBenchError(
                f"{source} is a directory without build_info.json.",
                "Pass a synthetic dataset directory written by `fetal-bench generate`, or a YAML file.",
            )
    if path.name == "build_info.json":
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise FetalBenchError(f"Cannot read {path}: {error}", "Rebuild the synthetic dataset.") from error
        if "generation" not in info:
            raise FetalBenchError(
                f"{path} records no generation config: it is not a synthetic split.",
                "Pass a directory written by `fetal-bench generate ... sample`.",
            )
        return info["generation"]
    if path.suffix.lower() == ".md":
        import yaml

        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        match = re.search(re.escape(CARD_MARKER) + r"\s*```yaml\n(.*?)```", text, flags=re.S)
        if not match:
            raise FetalBenchError(
                f"{path} holds no fetal-bench generation config block.",
                "Pass the README.md of a synthetic split written by `fetal-bench generate`.",
            )
        return yaml.safe_load(match.group(1))
    return load_yaml(path)
