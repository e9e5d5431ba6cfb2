"""One exception type for every problem a user can fix.

Each error says what is wrong *and* what to do about it; the CLI prints both and exits
non-zero, the library raises it so that callers can catch it.
"""

from __future__ import annotations


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
