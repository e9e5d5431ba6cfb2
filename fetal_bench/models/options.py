"""Builder options checked before a model is built.

Options come from outside: a checkpoint's ``config.json`` (possibly downloaded from the Hub) and
``--model-opt``. A wrong type (``"4"`` for a channel count, NaN) used to surface as a traceback
from deep inside torch, and a number that is merely large (``base_channels: 10**9``) as an
attempt to allocate 36 GB. Every option is therefore checked against its builder's type
annotation, and numbers that size a network against the bounds below, before anything is built.
"""

from __future__ import annotations

import collections.abc
import math
import os
import types
import typing
from pathlib import PurePath
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["OPTION_BOUNDS", "check_options"]

#: option -> (lowest, highest) value of the number, or of each number of a sequence. Generous:
#: they exclude only networks no machine could build (or a size nothing could be resized to).
OPTION_BOUNDS: dict[str, tuple[float, float]] = {
    "base_channels": (1, 1024),
    "depth": (1, 10),
    "image_size": (8, 8192),
    "channels": (1, 3),
    "lora_r": (0, 4096),
    "lora_rank": (0, 4096),
    "lora_alpha": (0, 1e6),
    "lora_dropout": (0, 1),
    "dropout": (0, 1),
    "min_foreground_fraction": (0, 1),
}
_MAX_ITEMS = 10_000  # elements of one sequence option (labels included)
_MAX_TEXT = 10_000  # characters of one text option


def check_options(model: str, builder, options: dict[str, Any]) -> None:
    """Raise :class:`FetalBenchError` for the first option of ``options`` that does not match
    ``builder``'s annotation or lies outside :data:`OPTION_BOUNDS`."""
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved checks nothing
        hints = {}
    fix = (f"Fix the option in the checkpoint's config.json (\"cfg\") or in --model-opt; `fetal-bench models list "
           f"--json` shows {model}'s defaults.")
    for name, value in options.items():
        hint = hints.get(name)
        if hint is not None and not _matches(value, hint):
            raise FetalBenchError(f"Model {model!r}: option {name} = {_shown(value)} is not {_describe(hint)}.", fix)
        low, high = OPTION_BOUNDS.get(name, (-math.inf, math.inf))
        numbers = value if isinstance(value, (list, tuple)) else [value]
        for number in numbers:
            if isinstance(number, (int, float)) and not isinstance(number, bool) and not low <= number <= high:
                raise FetalBenchError(
                    f"Model {model!r}: option {name} = {_shown(value)} is outside [{low:g}, {high:g}].", fix)


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str) and len(value) <= _MAX_TEXT
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return isinstance(value, (str, os.PathLike)) and len(os.fspath(value)) <= _MAX_TEXT
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)) or len(value) > _MAX_ITEMS:
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        item = args[0] if args else Any
        return all(_matches(v, item) for v in value)
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True  # a type this check does not know: the builder decides


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text",
             type(None): "null"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(arg) for arg in args))
    if hint in names:
        return names[hint]
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return "a path"
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_describe(args[0]) if args else 'values'}"
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return "an object"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    return str(hint)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."
