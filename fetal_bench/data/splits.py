"""Split expressions, parsed: which splits ``"train[:10%]+validation"`` reads.

``datasets`` accepts, wherever a split is named, an *expression*: split names joined by ``+``,
each optionally sliced (``train[10:20]``, ``validation[:100%]``) and rounded (``test[:33%](pct1_dropremainder)``).
A guard that must keep some split out (calibration never fits on a split that is scored) has to
look at every split the expression reads, not at the string: ``"validation[:100%]"`` is not
``"validation"``, yet reads all of it. This module parses the grammar ``datasets`` parses
(``datasets.arrow_reader``'s, mirrored here so that a guard never depends on a private name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fetal_bench.errors import FetalBenchError

__all__ = ["SplitPart", "parse_split", "split_names"]

_NAME = r"\w+(?:\.\w+)*"  # datasets.naming._split_re
_PART = re.compile(
    rf"""(?P<name>{_NAME})
         (?:\[(?:(?P<start>-?[\d_]+%?))?:(?:(?P<stop>-?[\d_]+%?))?\])?
         (?:\((?P<rounding>[^)]*)\))?""",
    re.VERBOSE)
_PLUS = re.compile(r"\s*\+\s*")


@dataclass(frozen=True)
class SplitPart:
    """One ``+``-separated part of a split expression: the split it reads, and its slice."""

    name: str
    start: str | None = None  # as written: "10", "-5", "10%"; None: from the first row
    stop: str | None = None  # None: to the last row

    @property
    def whole(self) -> bool:
        return self.start is None and self.stop is None


def parse_split(expression: str) -> list[SplitPart]:
    """The parts of split ``expression``, or a :class:`FetalBenchError` saying it is not one."""
    text = str(expression).strip()
    parts = []
    for piece in _PLUS.split(text) if text else [""]:
        match = _PART.fullmatch(piece)
        if match is None:
            raise FetalBenchError(
                f"{str(expression)[:200]!r} is not a split expression (could not read {piece[:100]!r}).",
                "Name a split (train, validation, test), optionally sliced or combined: train[:50%], "
                "test[10:20], train+validation.")
        parts.append(SplitPart(match["name"], match["start"], match["stop"]))
    return parts


def split_names(expression: str) -> list[str]:
    """The splits ``expression`` reads, in order, each once: ``"train[:5]+test+train[5:]"`` ->
    ``["train", "test"]``."""
    return list(dict.fromkeys(part.name for part in parse_split(expression)))
