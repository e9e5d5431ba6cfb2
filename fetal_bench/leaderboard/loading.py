"""Read a folder of result files: validate each one, keep the good, explain the bad.

A leaderboard is only as trustworthy as its inputs, and its inputs arrive by pull request. Every
``*.json`` file is therefore parsed strictly (no NaN/Infinity constants, no duplicate keys),
validated against the result schema that ``fetal-bench evaluate`` writes to, and checked for the
few things a schema cannot say (the main score is actually reported; a date that parses; the same
predictions not submitted twice; every score inside its metric's range). A file that fails is
never ranked: it is returned as an :class:`InvalidResult` with a reason, which the site lists.

Nothing in one file can stop the others from loading: a file is read only if it is a regular
file of bounded size (a FIFO, a device or a huge file is refused before it is read), its JSON
nesting is bounded before it is parsed (deep nesting would exhaust Python's recursion limit), and
every number is bounded while it is parsed (a score of ``10**400`` cannot be formatted).
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from fetal_bench._io import UnreadableFile, json_leaves, read_regular_file
from fetal_bench.errors import FetalBenchError
from fetal_bench.evaluation.results import InvalidResultError, validate_result
from fetal_bench.metrics.registry import MAX_MM as METRIC_MAX_MM

# A result file is a few kB; a huge one is a mistake (or an attempt to bloat every page).
MAX_RESULT_BYTES = 5 * 1024 * 1024
# A result file nests about 7 levels deep (groups -> values -> group -> scores -> score -> ci95).
# Python's json parser recurses once per level, so a file nested thousands deep would end in a
# RecursionError; it is refused before parsing instead.
MAX_NESTING = 32
# Any number beyond this is a mistake, whatever it measures; it also keeps every number
# formattable as a float (int(10**400) cannot be converted).
MAX_ABS_NUMBER = 1e15
# Millimetre distances on a fetal ultrasound image are at most a few hundred mm; 10 m is surely wrong.
MAX_MM = METRIC_MAX_MM
# A metric the registry does not know has no known range; it is bounded only loosely.
UNKNOWN_METRIC_RANGE = (-1e9, 1e9)


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
    if isinstance(data, dict) and isinstance(data.get("task"), str) and 0 < len(data["task"]) <= 200:
        return data["task"]
    return None


def _too_large(text: str) -> ValueError:
    return ValueError(f"the number {text[:20]}{'…' if len(text) > 20 else ''}, beyond ±{MAX_ABS_NUMBER:g}")


def _finite_float(text: str) -> float:
    # 1e400 parses as inf, which no later check could format; moderate sizes are checked with
    # the file's task known (check_magnitudes), so the reason can be listed on its task's page.
    value = float(text)
    if not math.isfinite(value):
        raise _too_large(text)
    return value


def _bounded_int(text: str) -> int:
    # Checked on the text: converting 10**400 digits first would be slow and then overflow float().
    if len(text.lstrip("-")) > 16:
        raise _too_large(text)
    return int(text)


def check_magnitudes(value: Any, source: str) -> None:
    """No number beyond ±MAX_ABS_NUMBER anywhere (runtime, counts, gaps as well as scores)."""
    for path, item in json_leaves(value):
        if isinstance(item, (int, float)) and not isinstance(item, bool) and abs(item) > MAX_ABS_NUMBER:
            raise InvalidResultError(f"{source} holds the number {item:.6g} at {path or '(top level)'}, "
                                     f"beyond ±{MAX_ABS_NUMBER:g}.")


# The only characters that matter for nesting: brackets, quotes and escapes. Scanning for them
# alone keeps the pass linear (a regex for whole strings can backtrack quadratically on '"\\"\\"...').
_SPECIAL = re.compile(r'[\[\]{}"\\]')


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings ignored), without parsing."""
    depth = deepest = 0
    in_string = False
    escaped_at = -1  # index of the character a backslash escapes
    for match in _SPECIAL.finditer(text):
        index, char = match.start(), match.group()
        if index == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = index + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _parse_json(raw: bytes, source: str) -> Any:
    """Strict, bounded JSON: UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting and numbers."""
    if len(raw) > MAX_RESULT_BYTES:
        raise InvalidResultError(
            f"{source} is {len(raw):,} bytes, more than the {MAX_RESULT_BYTES:,} a result file may have.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidResultError(f"{source} is not UTF-8 text ({error.reason} at byte {error.start}).") from None
    depth = nesting_depth(text)
    if depth > MAX_NESTING:
        raise InvalidResultError(f"{source} nests arrays/objects {depth:,} levels deep; a result file needs "
                                 f"fewer than {MAX_NESTING}.")
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys,
                          parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as error:
        raise InvalidResultError(
            f"{source} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).") from None
    except ValueError as error:  # our hooks: NaN/Infinity, duplicate keys, numbers out of bounds
        raise InvalidResultError(f"{source} holds {error}.") from None


def parse_result_bytes(raw: bytes, source: str) -> dict:
    """Parse and validate one result file's bytes; raise :class:`InvalidResultError` with the reason."""
    data = _parse_json(raw, source)
    _check_parsed(data, source)
    return data


def _check_parsed(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        raise InvalidResultError(f"{source} holds a JSON {_json_type(data)}, not an object.")
    validate_result(data, source=source)
    _check_semantics(data, source)
    check_score_ranges(data, source)
    check_magnitudes(data, source)


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take (:attr:`MetricSpec.bounds`: [0, 1] unitless, [0, 10 m] a
    distance, [-10 m, 10 m] a signed difference); a metric the registry does not know: loosely."""
    from fetal_bench.metrics.registry import METRICS

    spec = METRICS.get(metric)
    if spec is None:
        return (0.0, MAX_MM) if metric.endswith("_mm") else UNKNOWN_METRIC_RANGE
    return spec.bounds


def _score_blocks(data: dict) -> Iterable[tuple[str, dict]]:
    """(where, scores) for the overall scores and every group's."""
    yield "scores", data["scores"]
    for column, block in data["groups"].items():
        for value, entry in block["values"].items():
            yield f"groups/{column}/{value}", entry["scores"]


def check_score_ranges(data: dict, source: str) -> None:
    """Every score value and interval end within its metric's range, and intervals ordered.

    An accuracy of -5 or 1e308 is a broken file, not the best result: ranked, it would lead.
    """
    for where, scores in _score_blocks(data):
        for metric, score in scores.items():
            if metric == "main_score":
                continue
            low, high = metric_range(metric)
            numbers = [("value", score["value"])] + [(f"ci95[{i}]", v) for i, v in enumerate(score["ci95"])]
            for label, number in numbers:
                if number is not None and not low <= number <= high:
                    raise InvalidResultError(
                        # The shortest exact form: 1.0000000000000002 is outside [0, 1], "1" would not be.
                        f"{source} has {where}/{metric} {label} = {float(number)!r}, outside the metric's range "
                        f"[{low:g}, {high:g}].")
            lo, hi = score["ci95"]
            if lo is not None and hi is not None and lo > hi:
                raise InvalidResultError(f"{source} has {where}/{metric} ci95 = [{lo:.6g}, {hi:.6g}], "
                                         "whose lower end is above its upper end.")


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


def find_result_files(results_dir: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every ``*.json`` under ``results_dir``, hidden ones skipped, sorted.

    Symbolic links to folders are not followed (a link loop would never end); whatever the
    walk lists is checked by the reader, so a FIFO or a device named ``x.json`` is reported, not read.
    """
    found = []
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in files if f.endswith(".json") and not f.startswith(".")]
    # Sort on the relative POSIX path so the order (and so the site's bytes) is the same on every OS.
    pairs = [(p.relative_to(results_dir).as_posix(), p) for p in found]
    return sorted(pairs, key=lambda pair: pair[0])


def _lenient_task(raw: bytes) -> str | None:
    """The task a file names, read leniently (NaN, duplicate keys and huge numbers allowed), so that
    a file refused by the strict parser is still listed on its task's page. Only tried on files
    small and shallow enough to parse safely."""
    if len(raw) > MAX_RESULT_BYTES:
        return None
    text = raw.decode("utf-8", errors="replace")
    if nesting_depth(text) > MAX_NESTING:
        return None
    try:
        return _task_of(json.loads(text))
    except ValueError:  # not JSON at all (or an integer too long to convert)
        return None


def _read_one(rel: str, path: Path) -> ResultEntry | InvalidResult:
    """One file as an entry, or as an invalid result with its reason; never raises for bad content."""
    if path.is_symlink():
        # A link could publish any file of the building machine in the site's results/ folder.
        return InvalidResult(rel, "is a symbolic link; a results folder holds the result files themselves.")
    try:
        raw = read_regular_file(path, max_bytes=MAX_RESULT_BYTES)
    except UnreadableFile as error:
        return InvalidResult(rel, f"cannot be read: it {error.reason}.")
    # "the file": the reason is shown next to the file's path, which need not be repeated.
    try:
        data = _parse_json(raw, "the file")
    except InvalidResultError as error:
        return InvalidResult(rel, error.problem, _lenient_task(raw))
    try:
        _check_parsed(data, "the file")
    except InvalidResultError as error:
        # Name the task where the file says one, so that its page can list the failure.
        return InvalidResult(rel, error.problem, _task_of(data))
    return ResultEntry(rel, raw, data)


def committed_times(folder: Path) -> dict[Path, int]:
    """When git first recorded each file under ``folder``: the position of the commit that added it
    in the history (0 for the first commit that touched the folder), by resolved path.

    The history of a repository is the one order of submission no result file can forge (a
    ``created_at`` is whatever its author typed). Empty where ``folder`` is not in a git
    repository or git is not installed.
    """
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=60,
                              check=True).stdout

    try:
        top = Path(git("rev-parse", "--show-toplevel").strip())
        # Per commit, children before parents: "\x01<hash>", then NUL-separated paths (relative to the top).
        log = git("log", "--topo-order", "--format=%x01%H", "--name-only", "--diff-filter=A", "--no-renames", "-z",
                  "--", ".")
    except (OSError, subprocess.SubprocessError):
        return {}
    added: dict[Path, int] = {}
    commit = 0  # how many commits back from the newest: the larger, the earlier
    for token in log.split("\0"):
        if token.startswith("\x01"):
            commit += 1
            continue
        token = token.lstrip("\n")
        if token:
            # Newest first: the last commit seen adding a path is the one that first added it.
            added[(top / token).resolve()] = commit
    # Commits within one second share a time, so the order, not the clock, says which came first.
    return {path: commit - back for path, back in added.items()}


def _order_key(entry: ResultEntry, folder_of: dict[str, int], times: dict[Path, int],
               paths: dict[str, Path]) -> tuple:
    # Folders first (each has its own history; the first given was submitted first), then the
    # commit that added the file, committed files before uncommitted ones.
    committed = times.get(paths[entry.path].resolve())
    return (folder_of[entry.path], committed is None, committed or 0)


def _refuse_repeats(entries: list[ResultEntry], folder_of: dict[str, int], times: dict[Path, int],
                    paths: dict[str, Path]) -> tuple[list[ResultEntry], list[InvalidResult]]:
    """One entry per set of predictions on the same task and data: the one submitted first.

    "First" is the order of the results folders, then the earliest git commit that added the
    file; never ``created_at``, which a copy can backdate. Where nothing tells two copies
    apart (neither committed, same folder), every copy is refused: better no entry than the
    wrong one.
    """
    by_key: dict[tuple, list[ResultEntry]] = collections.defaultdict(list)
    for entry in entries:
        # The same predictions scored on another dataset revision or split are a different
        # result (shown apart as not comparable), not a duplicate.
        dataset = entry.data["dataset"]
        sha = entry.data["submission"].get("predictions_sha256") or entry.data["submission"]["sha256"]
        by_key[(entry.task, entry.data["task_version"], dataset["name"], dataset.get("config"), dataset["split"],
                dataset["revision"], dataset["fingerprint"], sha)].append(entry)
    kept: list[ResultEntry] = []
    refused: list[InvalidResult] = []
    for key, group in by_key.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        group.sort(key=lambda e: (_order_key(e, folder_of, times, paths), e.path))
        first, second = (_order_key(e, folder_of, times, paths) for e in group[:2])
        sha = key[-1]
        if first == second:
            names = ", ".join(e.path for e in group)
            for entry in group:
                refused.append(InvalidResult(
                    entry.path, f"its predictions (sha256 {sha[:12]}…) are also those of {names}, and nothing shows "
                                "which was submitted first (none is committed); keep one file.", entry.task))
            continue
        kept.append(group[0])
        for entry in group[1:]:
            refused.append(InvalidResult(
                entry.path, f"its predictions (sha256 {sha[:12]}…) are those of {group[0].path} "
                            f"({group[0].name!r}), submitted first on the same task and data; each set of "
                            "predictions is ranked once.", entry.task))
    return kept, refused


def load_result_files(files: Iterable[tuple[str, Path]], *, folder_of: dict[str, int] | None = None,
                      committed: dict[Path, int] | None = None) -> LoadedResults:
    """Read and check the given ``(label, path)`` files as one leaderboard would (see :func:`load_results`).

    ``folder_of``: label -> index of the results folder it came from (earlier folders were
    submitted first); ``committed``: :func:`committed_times` of those folders.
    """
    files = list(files)
    paths = dict(files)
    folder_of = folder_of or {label: 0 for label, _ in files}
    entries: list[ResultEntry] = []
    invalid: list[InvalidResult] = []
    for rel, path in files:
        item = _read_one(rel, path)
        (entries if isinstance(item, ResultEntry) else invalid).append(item)
    kept, refused = _refuse_repeats(entries, folder_of, committed or {}, paths)
    kept.sort(key=lambda e: e.path)
    invalid = sorted(invalid + refused, key=lambda i: i.path)
    return LoadedResults(tuple(kept), tuple(invalid))


def _folder_labels(folders: Sequence[Path]) -> list[str]:
    """A distinct prefix per results folder (none when there is one folder)."""
    if len(folders) == 1:
        return [""]
    labels: list[str] = []
    for folder in folders:
        base = folder.resolve().name or "results"
        label, n = base, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label)
    return [f"{label}/" for label in labels]


def load_results(results_dirs: str | os.PathLike | Sequence[str | os.PathLike]) -> LoadedResults:
    """Read and check every result file under one or more results folders, merged.

    Returns the valid entries (in path order; with several folders each path starts with its
    folder's name) and the invalid files with their reasons. Besides the schema, a file is
    refused when it repeats the predictions of another on the same task, task version and data:
    the one submitted first keeps its place (see :func:`_refuse_repeats`).
    """
    if isinstance(results_dirs, (str, os.PathLike)):
        results_dirs = [results_dirs]
    folders = [Path(d) for d in results_dirs]
    if len({f.resolve() for f in folders}) != len(folders):
        raise FetalBenchError("The same results folder is given twice.", "Give each --results folder once.")
    files: list[tuple[str, Path]] = []
    folder_of: dict[str, int] = {}
    committed: dict[Path, int] = {}
    for index, (folder, prefix) in enumerate(zip(folders, _folder_labels(folders))):
        for rel, path in find_result_files(folder):
            files.append((prefix + rel, path))
            folder_of[prefix + rel] = index
        committed.update(committed_times(folder))
    return load_result_files(files, folder_of=folder_of, committed=committed)


__all__ = ["InvalidResult", "LoadedResults", "MAX_NESTING", "MAX_RESULT_BYTES", "ResultEntry", "check_score_ranges",
           "committed_times", "find_result_files", "load_result_files", "load_results", "metric_range",
           "nesting_depth", "parse_result_bytes", "parse_timestamp"]
