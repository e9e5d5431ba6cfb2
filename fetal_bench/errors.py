"""One exception type for every problem a user can fix.

Each error says what is wrong *and* what to do about it; the CLI prints both and exits
non-zero, the library raises it so that callers can catch it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

Entry = TypeVar("Entry")


class FetalBenchError(Exception):
    """A problem with the user's input or environment, with the fix spelled out.

    ``problem`` names what is wrong (the file, the row, the value); ``fix`` tells the user
    what to do. ``str(err)`` renders both.
    """

    exit_code = 2

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\nFix: {fix}")


class DataError(FetalBenchError):
    """Raw or built dataset files are missing, malformed or inconsistent."""


class DownloadError(FetalBenchError):
    """A download failed, or its bytes do not match the published checksum."""


class UnsafeArchiveError(DownloadError):
    """An archive member would be written outside the extraction directory."""


class LockHeldError(FetalBenchError):
    """Another fetal-bench process holds the lock on an output path (it is writing it now)."""


def registry_entry(registry: Mapping[str, Entry], name: str, what: str, *, known: Iterable[str] | None = None,
                   listed_by: str | None = None) -> Entry:
    """``registry[name]``, or a :class:`FetalBenchError` naming the ``known`` names (default: the
    registry's, in its order) and the command that lists them: every registry's lookup."""
    try:
        return registry[name]
    except KeyError:
        names = ", ".join(registry if known is None else known)
        where = f" (see `{listed_by}`)" if listed_by else ""
        raise FetalBenchError(f"Unknown {what} {name!r}.", f"Use one of: {names}{where}.") from None
