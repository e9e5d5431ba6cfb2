"""One strict merge for nested configurations (generator configs, protocol configs and overrides).

A setting a user writes must exist in the defaults: a typo (``trainng.lr``) that is silently
ignored runs the paper's defaults while the user believes otherwise, which costs hours of compute
and a wrong table. :func:`merge_strict` therefore refuses unknown keys, naming the key, the
closest known one and all the valid ones, and refuses a value whose shape contradicts the
default's (a mapping where a single value belongs, or the reverse).

Three kinds of place relax this, each given as key paths (tuples of keys from the top):

- ``open_paths``: mappings whose keys are data, not settings (class names in prompts, the names of
  a protocol's variants); any key is accepted there and everything below it is taken as given;
- ``extra_keys``: keys accepted at a path although the defaults do not set them (the training
  options a protocol's ``train`` section may add to those its YAML lists);
- ``replace_paths``: mappings that an override replaces as a whole instead of merging into (a
  profile's list of variants replaces the full run's list).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["dotted_to_nested", "merge_strict", "unknown_key_error"]

Path = tuple[str, ...]


def _dotted(path: Path) -> str:
    return ".".join(path)


def unknown_key_error(path: Path, known: Iterable[str], *, source: str = "") -> FetalBenchError:
    """The error for an unknown key at ``path``: the closest known key, then all of them."""
    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(path[-1], known, n=1, cutoff=0.6)
    hint = f"Did you mean {_dotted((*path[:-1], close[0]))!r}? " if close else ""
    where = _dotted(path[:-1]) or "the top level"
    return FetalBenchError(f"Unknown configuration key {_dotted(path)!r}{source}.",
                           f"{hint}Keys allowed at {where}: {', '.join(known) or '(none)'}.")


def _shape_error(path: Path, value: Any, wanted: str, source: str) -> FetalBenchError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."  # values may be large or user-written
    return FetalBenchError(f"Configuration key {_dotted(path)!r}{source} must be {wanted}, got {shown}.",
                           "Give the value in the shape of the default (see the shipped YAML).")


def merge_strict(base: Mapping[str, Any], override: Mapping[str, Any], *,
                 open_paths: Collection[Path] = (), extra_keys: Mapping[Path, Collection[str]] | None = None,
                 replace_paths: Collection[Path] = (), source: str = "", _path: Path = ()) -> dict[str, Any]:
    """``base`` updated with ``override``, recursively; neither argument is modified.

    Unknown keys and values whose shape contradicts the default raise :class:`FetalBenchError`
    (see the module docstring for ``open_paths``, ``extra_keys`` and ``replace_paths``).
    ``source`` says where the override came from (e.g. `` (in --set trainng.lr=0.1)``).
    """
    options = {"open_paths": open_paths, "extra_keys": extra_keys or {}, "replace_paths": replace_paths,
               "source": source}
    merged = copy.deepcopy(dict(base))
    is_open = _path in open_paths
    allowed = set(merged) | set(options["extra_keys"].get(_path, ()))
    for key, value in override.items():
        path = (*_path, str(key))
        if not is_open and key not in allowed:
            raise unknown_key_error(path, allowed, source=source)
        merged[key] = _merged_value(merged.get(key), value, path, is_open, options)
    return merged


def _merged_value(default: Any, value: Any, path: Path, in_open: bool, options: dict[str, Any]) -> Any:
    if path in options["replace_paths"] or default is None:
        return copy.deepcopy(value)
    if isinstance(default, Mapping):
        if isinstance(value, Mapping):
            # Below an open mapping, everything is data: merge without checking keys.
            open_paths = (*options["open_paths"], path) if in_open else options["open_paths"]
            return merge_strict(default, value, **{**options, "open_paths": open_paths}, _path=path)
        if value is None and path not in options["open_paths"]:
            return None  # a section can be switched off; a mapping of data (class prompts) cannot
        raise _shape_error(path, value, "a mapping of keys to values", options["source"])
    if isinstance(value, Mapping) and not in_open:
        raise _shape_error(path, value, "a single value, not a mapping", options["source"])
    return copy.deepcopy(value)


def dotted_to_nested(dotted: str, value: Any) -> dict[str, Any]:
    """``"train.lr", 0.1`` -> ``{"train": {"lr": 0.1}}``; empty parts are an error."""
    parts = dotted.split(".")
    if not all(parts):
        raise FetalBenchError(f"--set {dotted}: the key has an empty part.", "Write dotted keys like train.lr=0.1.")
    nested: Any = value
    for part in reversed(parts):
        nested = {part: nested}
    return nested
