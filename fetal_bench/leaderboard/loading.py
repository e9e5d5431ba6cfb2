"""Read a folder of result files: validate each one, keep the good, explain the bad.

A leaderboard is only as trustworthy as its inputs, and its inputs arrive by pull request. Every
``*.json`` file is therefore parsed strictly (no NaN/Infinity constants, no duplicate keys),
validated against the result schema that ``fetal-bench evaluate`` writes to, and checked for the
few things a schema cannot say (the main score is actually reported; a date that parses; the same
predictions not submitted twice). A file that fails is never ranked: it is returned as an
:class:`InvalidResult` with a reason, which the site lists.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetal_bench.evaluation.results import InvalidResultError, validate_result

# A result file is a few kB; a huge one is a mistake (or an attempt to bloat every page).
MAX_RESULT_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ResultEntry:
    """One valid result file.

    ``path`` is relative to the results folder (POSIX separators), ``raw`` the file's exact
    bytes (copied into the site unchanged, so its sha256 still matches), ``data`` the parsed
    and validated result.
    """

    path: str
    raw: bytes = field(repr=False)
    data: dict = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def name(self) -> str:
        return self.data["submission"]["name"]

    @property
    def main_score(self) -> str:
        return self.data["scores"]["main_score"]

    @property
    def created_at(self) -> _dt.datetime:
        return parse_timestamp(self.data["created_at"])


@dataclass(frozen=True)
class InvalidResult:
    """A file that is not shown in any ranking, and why. ``task`` is given where readable."""

    path: str
    reason: str
    task: str | None = None


@dataclass(frozen=True)
class LoadedResults:
    entries: tuple[ResultEntry, ...]
    invalid: tuple[InvalidResult, ...]


class _DuplicateKeyError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; they are not JSON and the schema forbids them.
    raise ValueError(f"the non-JSON constant {name} (scores that cannot be computed are null with a reason)")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    # With duplicate keys the last one silently wins in Python but maybe not in another reader:
    # two readers could see different scores in the same file.
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def parse_timestamp(text: str) -> _dt.datetime:
    """Parse an ISO 8601 date-time (``Z`` accepted); naive times are taken as UTC."""
    value = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def _task_of(data: Any) -> str | None:
    if isinstance(data, dict) and isinstance(data.get("task"), str) and data["task"]:
        return data["task"]
    return None


def parse_result_bytes(raw: bytes, source: str) -> dict:
    """Parse and validate one result file's bytes; raise :class:`InvalidResultError` with the reason."""
    if len(raw) > MAX_RESULT_BYTES:
        raise InvalidResultError(
            f"{source} is {len(raw):,} bytes, more than the {MAX_RESULT_BYTES:,} a result file may have.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidResultError(f"{source} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as error:
        raise InvalidResultError(
            f"{source} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).") from None
    except ValueError as error:  # our hooks: NaN/Infinity, duplicate keys
        raise InvalidResultError(f"{source} holds {error}.") from None
    if not isinstance(data, dict):
        raise InvalidResultError(f"{source} holds a JSON {_json_type(data)}, not an object.")
    validate_result(data, source=source)
    _check_semantics(data, source)
    return data


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _check_semantics(data: dict, source: str) -> None:
    """What the schema cannot express but ranking relies on."""
    main = data["scores"]["main_score"]
    if main == "main_score" or not isinstance(data["scores"].get(main), dict):
        raise InvalidResultError(f"{source} names {main!r} as its main score but reports no score of that name.")
    for column, block in data["groups"].items():
        for value, entry in block["values"].items():
            group_main = entry["scores"]["main_score"]
            if group_main == "main_score" or not isinstance(entry["scores"].get(group_main), dict):
                raise InvalidResultError(
                    f"{source} names {group_main!r} as the main score of group {column}={value} "
                    "but reports no such score.")
    try:
        parse_timestamp(data["created_at"])
    except ValueError:
        raise InvalidResultError(
            f"{source} has created_at {data['created_at']!r}, which is not an ISO 8601 date-time.") from None


def _result_files(results_dir: Path) -> list[Path]:
    """Every ``*.json`` under ``results_dir``, hidden files/folders skipped, in a fixed order."""
    found = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if f.endswith(".json") and not f.startswith(".")]
    # Sort on the relative POSIX path so the order (and so the site's bytes) is the same on every OS.
    return sorted(found, key=lambda p: p.relative_to(results_dir).as_posix())


def load_results(results_dir: str | os.PathLike) -> LoadedResults:
    """Read and check every result file under ``results_dir``.

    Returns the valid entries (in path order) and the invalid files with their reasons. Besides
    the schema, a file is rejected when it repeats the predictions (same ``submission.sha256``
    on the same task, task version and dataset) of an earlier file: the earliest ``created_at``
    keeps its place, so resubmitting someone's predictions under a new name does not create a
    second entry.
    """
    results_dir = Path(results_dir)
    entries: list[ResultEntry] = []
    invalid: list[InvalidResult] = []
    for path in _result_files(results_dir):
        rel = path.relative_to(results_dir).as_posix()
        try:
            raw = path.read_bytes()
        except OSError as error:
            invalid.append(InvalidResult(rel, f"cannot be read ({error.strerror or error})."))
            continue
        try:
            # "the file": the reason is shown next to the file's path, which need not be repeated.
            data = parse_result_bytes(raw, "the file")
        except InvalidResultError as error:
            task = None
            # Name the task where the file is readable, so that its page can list the failure;
            # an unreadable file already has its reason.
            with contextlib.suppress(Exception):
                task = _task_of(json.loads(raw.decode("utf-8")))
            invalid.append(InvalidResult(rel, error.problem, task))
            continue
        entries.append(ResultEntry(rel, raw, data))

    kept: list[ResultEntry] = []
    first_by_predictions: dict[tuple, ResultEntry] = {}
    for entry in sorted(entries, key=lambda e: (e.created_at, e.path)):
        # The same predictions scored on another dataset revision or split are a different
        # result (shown apart as not comparable), not a duplicate.
        dataset = entry.data["dataset"]
        sha = entry.data["submission"]["sha256"]
        key = (entry.task, entry.data["task_version"], dataset["name"], dataset.get("config"), dataset["split"],
               dataset["revision"], dataset["fingerprint"], sha)
        if key in first_by_predictions:
            original = first_by_predictions[key]
            invalid.append(InvalidResult(
                entry.path,
                f"its predictions (sha256 {sha[:12]}…) are those of {original.path} ({original.name!r}), "
                f"submitted earlier on the same task and data; each set of predictions is ranked once.",
                entry.task))
            continue
        first_by_predictions[key] = entry
        kept.append(entry)
    kept.sort(key=lambda e: e.path)
    invalid.sort(key=lambda i: i.path)
    return LoadedResults(tuple(kept), tuple(invalid))


__all__ = ["InvalidResult", "LoadedResults", "MAX_RESULT_BYTES", "ResultEntry", "load_results",
           "parse_result_bytes", "parse_timestamp"]
