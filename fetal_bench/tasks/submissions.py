"""Reading and validating submissions before anything is scored: what both kinds share.

Each kind reads its own format (:mod:`~fetal_bench.tasks.classification`: a CSV or Parquet file
keyed by row ``id`` with one probability column per task label, or a ``label`` column;
:mod:`~fetal_bench.tasks.segmentation`: a directory of ``<id>.png`` masks, or a Parquet file with
``id`` and ``mask``) with the checks here. Every problem found is reported at once, in one
error that lists the offending ids (the first few and a count); nothing is scored then.

Submissions come from strangers: only regular files are opened (never a FIFO, a device or a
directory named like a mask), sizes are checked before reading, a mask's pixel count is
checked from its header before it is decoded, and ids are read as text (`NA` stays `NA`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_bench._io import UnreadableFile, read_regular_file, sha256_bytes, sha256_file
from fetal_bench.errors import FetalBenchError

PROBABILITY_SUM_TOLERANCE = 1e-3  # |sum of a row's probabilities - 1| above this is an error
MAX_TABLE_BYTES = 1024 * 1024 * 1024  # a predictions CSV/Parquet (12,400 rows of masks fit well below)
MAX_MASK_BYTES = 32 * 1024 * 1024  # one mask PNG (an 800x540 mask is a few kB)
_SHOW = 5  # ids shown per problem
_ID_CHARS = 60  # characters of one id shown in a message


class SubmissionError(FetalBenchError):
    """The submission does not match the task; the message lists every problem found."""


def ids_text(ids: Sequence) -> str:
    """``count (first, few, ...)``; each shown id cut short and its control characters made visible."""
    ids = [str(i) for i in ids]
    shown = ", ".join(short_id(i, 3 * _ID_CHARS) for i in ids[:_SHOW])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > _SHOW else ''})"


def short_id(text: str, limit: int = _ID_CHARS) -> str:
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


class Problems:
    """The problems found in one submission, raised together as one :class:`SubmissionError`."""

    def __init__(self, source: Path):
        self.source = source
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def add_ids(self, what: str, ids: Sequence) -> None:
        """One line for a whole kind of problem: what, how many, and the first few ids."""
        if ids:
            self.items.append(f"{what}: {ids_text(ids)}")

    def raise_if_any(self, fix: str) -> None:
        if self.items:
            raise SubmissionError(
                f"Submission {self.source} is not valid for this task:\n  - " + "\n  - ".join(self.items), fix)


def read_submission_file(path: Path, what: str) -> bytes:
    try:
        return read_regular_file(path, max_bytes=MAX_TABLE_BYTES)
    except UnreadableFile as error:
        raise SubmissionError(f"Predictions {path} {error.reason}.", f"Pass {what} with --predictions.") from None


def mask_files(directory: Path) -> dict[str, Path]:
    """``<id>.png`` entries of a mask directory by id: what is read and what is hashed."""
    return {entry.name[: -len(".png")]: entry for entry in sorted(directory.iterdir()) if entry.name.endswith(".png")}


def submission_sha256(path: str | Path) -> str:
    """sha256 of a predictions file, or of a mask directory's sorted (id, mask sha256) listing.

    Only the ``<id>.png`` regular files count, so the same masks hash the same whatever else
    (a README, a .DS_Store, sub-folders) sits in the directory.
    """
    path = Path(path)
    if path.is_file():  # a regular file (validated before): streamed, not held in memory
        return sha256_file(path)
    if not path.is_dir():
        raise SubmissionError(f"Predictions {path} are neither a regular file nor a directory.",
                              "Pass the predictions file or directory with --predictions.")
    digest = hashlib.sha256()
    for row_id, item in mask_files(path).items():
        try:
            data = read_regular_file(item, max_bytes=MAX_MASK_BYTES)
        except UnreadableFile:
            continue  # not a mask file (validation reports it before anything is scored)
        digest.update(f"{row_id}.png:{sha256_bytes(data)}\n".encode())
    return digest.hexdigest()


def check_ids(found: Sequence[str], expected: Sequence[str], problems: Problems) -> None:
    seen, duplicates = set(), []
    for row_id in found:
        if row_id in seen:
            duplicates.append(row_id)
        seen.add(row_id)
    if duplicates:
        problems.add(f"duplicate ids: {ids_text(sorted(set(duplicates)))}")
    expected_set = set(expected)
    missing = [i for i in expected if i not in seen]
    extra = sorted(seen - expected_set)
    if missing:
        problems.add(f"missing ids (rows of the evaluation split with no prediction): {ids_text(missing)}")
    if extra:
        problems.add(f"extra ids (not in the evaluation split): {ids_text(extra)}")


def text_ids(values) -> list[str]:
    """Ids as text; a missing id (a Parquet null) becomes "" and is reported as an extra id."""
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value) for value in values]
