"""Result files: build, validate against the shipped JSON Schema, write atomically, read.

The schema (``result_schema.json`` beside this module) is the contract with the leaderboard:
every file fetal-bench writes is validated against it first, and the leaderboard validates
every file it reads.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import platform
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fetal_bench import __version__
from fetal_bench._io import json_leaves, write_json_atomic
from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks.scoring import score_entry  # the schema's score entry, made by the kinds' scoring

SCHEMA_VERSION = "1.0"


# What a submission was trained on: the one list (the CLI's choices, the harness's check, the
# leaderboard's filters and the schema's enum all come from it).
TRAINING_DATA = ("real", "synthetic", "hybrid", "none")


@lru_cache(maxsize=1)
def result_schema() -> dict:
    schema = json.loads(resources.files("fetal_bench.evaluation").joinpath("result_schema.json").read_text())
    # The published file lists the same values (tests/test_evaluate.py keeps them equal); this
    # makes TRAINING_DATA the source of truth for validation.
    schema["properties"]["submission"]["properties"]["training_data"]["enum"] = [*TRAINING_DATA, None]
    return schema


class InvalidResultError(FetalBenchError):
    """A result file does not follow the schema."""


@lru_cache(maxsize=1)
def _compiled_schema():
    """The schema compiled to Python by fastjsonschema: ~100x faster than jsonschema on a valid
    file, which is what a leaderboard of thousands of results reads."""
    import fastjsonschema

    return fastjsonschema.compile(result_schema())


def validate_result(result: dict, *, source: str = "result") -> None:
    """Raise :class:`InvalidResultError` naming the first schema violation (and its JSON path).

    A file the compiled schema accepts is valid; anything else goes to jsonschema, which has
    the final word and names the problem (the two agree on every valid file: tests check both).
    """
    import fastjsonschema
    import jsonschema

    try:
        _compiled_schema()(result)
    except fastjsonschema.JsonSchemaException:
        pass
    else:
        _reject_non_finite(result, source)
        return
    validator = jsonschema.Draft202012Validator(result_schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)[:200] or "(top level)"
        # jsonschema quotes the offending value, which may be megabytes: keep its two ends.
        message = first.message if len(first.message) <= 300 else f"{first.message[:120]} … {first.message[-120:]}"
        raise InvalidResultError(
            f"{source} is not a valid fetal-bench result: at {where}: {message}"
            + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""),
            "Result files are written by `fetal-bench evaluate`; do not edit them by hand.",
        )
    _reject_non_finite(result, source)


def _reject_non_finite(value: Any, source: str) -> None:
    for path, item in json_leaves(value):
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidResultError(f"{source} holds a non-finite number at {path or '(top level)'}.",
                                     "Scores that cannot be computed are null with a reason.")


@lru_cache(maxsize=1)
def code_commit() -> dict:
    """The fetal-bench source that is running: ``{"commit": sha or None, "dirty": bool or None}``.

    From git when the package runs from a checkout (an editable install, CI), else from the
    install record pip keeps for a ``git+https://...`` install (``direct_url.json``). ``dirty``:
    files of the package differ from the commit, so the commit alone does not say what ran.
    """
    import subprocess

    package = Path(__file__).resolve().parents[1]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "."))
        if len(commit) == 40:
            return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        pass
    try:
        from importlib.metadata import distribution

        record = json.loads(distribution("fetal-bench").read_text("direct_url.json") or "{}")
        commit = record.get("vcs_info", {}).get("commit_id")
        if isinstance(commit, str) and len(commit) == 40:
            return {"commit": commit, "dirty": False}
    except Exception:  # no install record: nothing more to say
        pass
    return {"commit": None, "dirty": None}


def environment() -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "fetal_bench_commit": code_commit()["commit"], "fetal_bench_dirty": code_commit()["dirty"]}
    for module in ("torch", "datasets", "numpy", "scikit-learn", "scipy"):
        try:
            from importlib.metadata import version

            env[module] = version(module)
        except Exception:  # a missing optional package is simply not reported
            pass
    # The device a model ran on. Scoring predictions runs none: torch is then not imported just to
    # ask (seconds of start-up, and the light install has no torch at all).
    torch = sys.modules.get("torch")
    if torch is None:
        env["device"] = "none (no model was run)"
        return env
    try:
        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception:
        env["device"] = "unknown"
    return env


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


MAX_RESULT_BYTES = 16 * 1024 * 1024  # a real result file is a few kB; per-group tables stay far below
MAX_NAME_CHARS = 100  # a submission name is a leaderboard label, and part of a file name
_MAX_FILENAME_BYTES = 255  # the usual file-system limit on one path component


def result_filename(result: dict) -> str:
    return _filename(result["task"], result["submission"]["name"])


def _filename(task: str, name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    return f"{task}__{safe}.json"


def check_result_output(output: str | Path, task: str, name: str | None) -> Path | None:
    """Check, before any scoring, that a result for ``task`` named ``name`` can go to ``output``.

    Returns the result file's path (None when ``name`` is not known yet: a model run named by
    its checkpoint). Raises :class:`~fetal_bench.errors.FetalBenchError` for a name that is too
    long or holds control characters, an ``output`` below a regular file, or a ``.json`` output
    that is a directory, so that a long scoring run never ends in a write error.
    """
    output = Path(output)
    if name is not None:
        if not name.strip() or len(name) > MAX_NAME_CHARS or any(not c.isprintable() for c in name):
            raise FetalBenchError(
                f"The submission name ({len(name)} characters) must be 1 to {MAX_NAME_CHARS} printable characters.",
                "Pass a short --name, e.g. `unet-hc18-v2` (the leaderboard shows it, the file name holds it).")
    directory = output.parent if output.suffix == ".json" else output
    for ancestor in (directory, *directory.parents):
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise FetalBenchError(f"--output {output} is below {ancestor}, which is not a directory.",
                                      "Pass a directory (or a .json path inside one) for the result file.")
            break
    if output.suffix == ".json" and output.is_dir():
        raise FetalBenchError(f"--output {output} is a directory named like a .json file.",
                              "Pass the directory's parent, or another .json path.")
    if name is None:
        return None
    path = output if output.suffix == ".json" else output / _filename(task, name)
    if len(path.name.encode("utf-8")) > _MAX_FILENAME_BYTES:
        raise FetalBenchError(f"The result file name {path.name[:60]}... is longer than {_MAX_FILENAME_BYTES} bytes.",
                              "Pass a shorter --name.")
    if output.suffix != ".json":
        _refuse_name_collisions(path, task, name)
    return path


def _refuse_name_collisions(path: Path, task: str, name: str) -> None:
    """Refuse to write the result of submission ``name`` over another submission's result.

    A file name keeps only letters, digits, ``-``, ``_`` and ``.`` of the submission name, so
    "team A: v1" and "team A/ v1" both become ``TASK__team-A--v1.json``: the second would silently
    replace the first. Re-scoring the *same* name replaces its file (that is an update); another
    name that cleans to the same file, a file there that is not a result, or a file whose name
    differs only in case (one file on macOS and Windows) is refused.
    """
    fix = ("Pass another --name (names that differ only in characters other than letters, digits, '-', '_' and '.' "
           "share a file name), or move the existing file away if it is to be replaced.")
    if path.exists() or path.is_symlink():
        try:
            existing = read_result(path)
        except InvalidResultError as error:
            raise FetalBenchError(f"{path} already exists and is not a fetal-bench result ({error.problem[:300]}); "
                                  "it is not replaced.", fix) from None
        same = existing.get("task") == task and existing["submission"].get("name") == name
        if not same:
            raise FetalBenchError(
                f"{path} already holds the result of submission {existing['submission'].get('name')!r} "
                f"(task {existing.get('task')}); submission {name!r} would replace it, because both names give "
                "this file name.", fix)
    with contextlib.suppress(OSError):
        folded = path.name.casefold()
        for sibling in path.parent.iterdir():
            if sibling.name != path.name and sibling.name.casefold() == folded:
                raise FetalBenchError(
                    f"{sibling} differs from the result file {path.name} only in letter case: on a case-insensitive "
                    "file system (macOS, Windows) they are one file, and one result would replace the other.", fix)


def write_result(result: dict, output: str | Path) -> Path:
    """Validate ``result`` and write it atomically; ``output`` is a directory or a .json path.

    The write holds the result file's exclusive lock, so two runs writing the same file at the
    same time cannot both report it as theirs (the CLI takes the lock for the whole run).
    """
    from fetal_bench._io import exclusive_lock

    validate_result(result)
    path = check_result_output(output, result["task"], result["submission"]["name"])
    with exclusive_lock(path):
        write_json_atomic(path, result)
    return path


def read_result(path: str | Path) -> dict:
    from fetal_bench._io import UnreadableFile, read_regular_file

    path = Path(path)
    try:
        result = json.loads(read_regular_file(path, max_bytes=MAX_RESULT_BYTES).decode("utf-8"))
    except UnreadableFile as error:
        raise InvalidResultError(f"Result file {path} {error.reason}.", "Re-run `fetal-bench evaluate`.") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad JSON or UTF-8
        raise InvalidResultError(f"{path} cannot be read as JSON ({type(error).__name__}: {str(error)[:200]}).",
                                 "Re-run `fetal-bench evaluate`.") from None
    if not isinstance(result, dict):
        raise InvalidResultError(f"{path} holds a JSON {type(result).__name__}, not a result object.",
                                 "Re-run `fetal-bench evaluate`.")
    validate_result(result, source=str(path))
    return result


__all__ = ["SCHEMA_VERSION", "MAX_NAME_CHARS", "TRAINING_DATA", "InvalidResultError", "check_result_output", "read_result", "result_schema", "score_entry",
           "validate_result", "write_result", "code_commit", "environment", "now_iso", "__version__"]
