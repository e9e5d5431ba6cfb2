"""Published numbers shown beside a ranking as reference rows: never ranked, always explained.

A reader of a benchmark wants to see where the papers it builds on stand (Papers-with-Code shows
them in the same table). Those numbers were not produced by ``fetal-bench evaluate``: they come
without intervals, often on another test set or with another metric definition. So they live
apart from result files, as declarative data (``references.json`` beside this module), each with
its source and the reason it differs, and the site shows them in their own marked table.

The file is validated like a result file (schema, bounded size, scores in their metric's range),
and every string from it is escaped by the page builder like any other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fetal_bench._io import UnreadableFile, read_regular_file
from fetal_bench.errors import FetalBenchError
from fetal_bench.evaluation.results import TRAINING_DATA
from fetal_bench.leaderboard.html import safe_external_url
from fetal_bench.leaderboard.loading import metric_range

MAX_REFERENCES_BYTES = 1024 * 1024
TRAINING_KINDS = TRAINING_DATA

_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_URL = {"type": ["string", "null"], "maxLength": 2048, "pattern": "^https?://[^\\s<>\"'`]+$"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["references"],
    "additionalProperties": False,
    "properties": {
        "about": {"type": "string"},
        "references": {"type": "array", "maxItems": 500, "items": {
            "type": "object",
            "required": ["id", "task", "name", "citation", "source", "test_set", "training_data", "scores",
                         "why_different"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,79}$"},
                "task": {"type": "string", "minLength": 1, "maxLength": 200},
                "name": _TEXT, "citation": _TEXT, "short_citation": {"type": "string", "minLength": 1, "maxLength": 120}, "source": _TEXT, "test_set": _TEXT, "why_different": _TEXT,
                "paper_url": _URL, "code_url": _URL,
                "training_data": {"enum": list(TRAINING_KINDS)},
                "zero_shot": {"type": ["boolean", "null"]},
                "scores": {"type": "object", "minProperties": 1, "maxProperties": 30,
                           "additionalProperties": {"type": "number"}},
                "other_scores": {"type": "array", "maxItems": 20, "items": {
                    "type": "object", "required": ["label", "value"], "additionalProperties": False,
                    "properties": {"label": {"type": "string", "minLength": 1, "maxLength": 100},
                                   "value": {"type": "number"}}}},
            },
        }},
    },
}


@dataclass(frozen=True)
class Reference:
    """One published result: shown on its task's page, never ranked."""

    id: str
    task: str
    name: str
    citation: str
    source: str
    test_set: str
    training_data: str
    zero_shot: bool | None
    scores: dict[str, float]
    other_scores: tuple[tuple[str, float], ...]
    why_different: str
    paper_url: str | None = None
    code_url: str | None = None
    short_citation: str | None = None  # shown in the table; the full citation is the tooltip and in downloads


def default_references_path() -> Path:
    return Path(str(resources.files("fetal_bench.leaderboard").joinpath("references.json")))


def _problem(path: Path, text: str) -> FetalBenchError:
    return FetalBenchError(f"The reference results file {path} {text}",
                           "Fix the file: each entry needs the fields of fetal_bench/leaderboard/references.py's "
                           "SCHEMA, and every score a number in its metric's range.")


def _check_scores(path: Path, item: dict) -> None:
    for metric, value in item["scores"].items():
        low, high = metric_range(metric)
        if not low <= value <= high:
            raise _problem(path, f"gives {item['id']} a {metric} of {value!r}, outside [{low:g}, {high:g}] "
                                 "(write fractions, e.g. 0.824 for 82.4%).")
    for other in item.get("other_scores", []):
        if not -1e9 <= other["value"] <= 1e9:
            raise _problem(path, f"gives {item['id']} an out-of-range value for {other['label']!r}.")


def load_references(path: str | os.PathLike | None = None) -> tuple[Reference, ...]:
    """Read and validate the reference results (the shipped file by default); raise FetalBenchError if bad."""
    import jsonschema

    path = Path(path) if path is not None else default_references_path()
    try:
        data = json.loads(read_regular_file(path, max_bytes=MAX_REFERENCES_BYTES).decode("utf-8"))
    except UnreadableFile as error:
        raise _problem(path, f"cannot be read: it {error.reason}.") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise _problem(path, f"is not valid UTF-8 JSON ({error}).") from None
    errors = sorted(jsonschema.Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise _problem(path, f"is not valid at {where}: {errors[0].message}")
    seen: set[str] = set()
    references = []
    for item in data["references"]:
        if item["id"] in seen:
            raise _problem(path, f"lists the id {item['id']!r} twice.")
        seen.add(item["id"])
        _check_scores(path, item)
        references.append(Reference(
            id=item["id"], task=item["task"], name=item["name"], citation=item["citation"], source=item["source"],
            test_set=item["test_set"], training_data=item["training_data"], zero_shot=item.get("zero_shot"),
            scores=dict(item["scores"]),
            other_scores=tuple((o["label"], float(o["value"])) for o in item.get("other_scores", [])),
            why_different=item["why_different"], paper_url=safe_external_url(item.get("paper_url")),
            code_url=safe_external_url(item.get("code_url")), short_citation=item.get("short_citation")))
    return tuple(references)


__all__ = ["Reference", "SCHEMA", "default_references_path", "load_references"]
