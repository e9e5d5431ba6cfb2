"""Result files: build, validate against the shipped JSON Schema, write atomically, read.

The schema (``result_schema.json`` beside this module) is the contract with the leaderboard:
every file fetal-bench writes is validated against it first, and the leaderboard validates
every file it reads.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fetal_bench import __version__
from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError

SCHEMA_VERSION = "1.0"


@lru_cache(maxsize=1)
def result_schema() -> dict:
    return json.loads(resources.files("fetal_bench.evaluation").joinpath("result_schema.json").read_text())


class InvalidResultError(FetalBenchError):
    """A result file does not follow the schema."""


def validate_result(result: dict, *, source: str = "result") -> None:
    """Raise :class:`InvalidResultError` naming the first schema violation (and its JSON path)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(result_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise InvalidResultError(
            f"{source} is not a valid fetal-bench result: at {where}: {first.message}"
            + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""),
            "Result files are written by `fetal-bench evaluate`; do not edit them by hand.",
        )
    _reject_non_finite(result, source)


def _reject_non_finite(value: Any, source: str, path: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidResultError(f"{source} holds a non-finite number at {path or '(top level)'}.",
                                 "Scores that cannot be computed are null with a reason.")
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, source, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_non_finite(item, source, f"{path}/{index}")


def score_entry(value: float | None, ci95: tuple[float | None, float | None] = (None, None),
                reason: str | None = None) -> dict:
    """One score as the schema wants it; NaN/inf become null with a reason."""
    def clean(x):
        if x is None:
            return None
        x = float(x)
        return x if math.isfinite(x) else None

    entry = {"value": clean(value), "ci95": [clean(ci95[0]), clean(ci95[1])]}
    if entry["value"] is None and reason is None:
        reason = "not computable on this data"
    if reason:
        entry["reason"] = reason
    return entry


def environment() -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for module in ("torch", "datasets", "numpy", "scikit-learn", "scipy"):
        try:
            from importlib.metadata import version

            env[module] = version(module)
        except Exception:  # a missing optional package is simply not reported
            pass
    try:
        import torch

        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:
        env["device"] = "unknown"
    return env


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def result_filename(result: dict) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in result["submission"]["name"])
    return f"{result['task']}__{safe}.json"


def write_result(result: dict, output: str | Path) -> Path:
    """Validate ``result`` and write it atomically; ``output`` is a directory or a .json path."""
    validate_result(result)
    output = Path(output)
    path = output if output.suffix == ".json" else output / result_filename(result)
    write_json_atomic(path, result)
    return path


def read_result(path: str | Path) -> dict:
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidResultError(f"{path} cannot be read as JSON ({error}).", "Re-run `fetal-bench evaluate`.") from None
    validate_result(result, source=str(path))
    return result


__all__ = ["SCHEMA_VERSION", "InvalidResultError", "read_result", "result_schema", "score_entry",
           "validate_result", "write_result", "environment", "now_iso", "__version__"]
