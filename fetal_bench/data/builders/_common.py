"""Shared pieces of the raw-data converters: locating files, reading CSVs, checking images."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Sequence

from fetal_bench.errors import DataError


def find_file(raw_dir: Path, name: str, *, dataset: str) -> Path:
    """Find ``name`` in ``raw_dir`` or one directory below it (archives often add a top folder)."""
    candidates = [raw_dir / name, *sorted(raw_dir.glob(f"*/{name}"))]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataError(
        f"{name} not found in {raw_dir} (nor in a sub-directory of it).",
        f"Point --raw at the extracted official {dataset} download, or run "
        f"`fetal-bench datasets download {dataset} --to DIR`.",
    )


def read_csv(path: Path, *, expected_header: Sequence[str], delimiter: str = ",") -> list[dict[str, str]]:
    """Read a CSV whose header must be exactly ``expected_header`` (cells whitespace-stripped).

    Values are whitespace-stripped too: the official FETAL_PLANES_DB CSV pads its last column.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text ({error}).", "Re-download the file; it may be corrupt.") from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [cell.strip() for cell in next(reader)]
    except StopIteration:
        raise DataError(f"{path} is empty.", "Re-download the file.") from None
    if header != list(expected_header):
        raise DataError(
            f"{path} has an unexpected header {header!r}; expected {list(expected_header)!r}.",
            "Use the unmodified CSV from the official download (delimiter "
            f"{delimiter!r}); an edited or re-saved spreadsheet changes the header.",
        )
    rows = []
    for line_number, cells in enumerate(reader, start=2):
        if not cells or all(not cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise DataError(
                f"{path}, line {line_number}: {len(cells)} fields, expected {len(header)}.",
                "Use the unmodified CSV from the official download.",
            )
        rows.append({key: value.strip() for key, value in zip(header, cells)})
    return rows


def read_image_bytes(path: Path) -> tuple[bytes, tuple[int, int]]:
    """Read an image file, checking that it decodes completely; returns (bytes, (width, height)).

    The original bytes are kept (embedded as published, no re-encoding); decoding them once
    catches truncated or corrupt files at build time instead of at training time.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"Image file missing: {path}.", "Re-extract the official archive; the file should be there.") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"Image file {path} is corrupt or not an image ({error}).",
            "Re-download and re-extract the official archive (fetal-bench datasets download verifies checksums).",
        ) from None
    return data, size


class SourceDigest:
    """Accumulates a checksum over the raw files a build reads, for the build record."""

    def __init__(self, name: str):
        self.name = name
        self._digest = hashlib.sha256()
        self.files = 0

    def add(self, relative_name: str, data: bytes) -> None:
        self._digest.update(f"{relative_name}:{hashlib.sha256(data).hexdigest()}\n".encode())
        self.files += 1

    def add_file(self, relative_name: str, path: Path) -> None:
        """Like :meth:`add`, streaming the file (raw stacks can be hundreds of MB)."""
        from fetal_bench._io import sha256_file

        self._digest.update(f"{relative_name}:{sha256_file(path)}\n".encode())
        self.files += 1

    def as_dict(self) -> dict:
        return {"name": self.name, "files": self.files, "sha256": self._digest.hexdigest()}


def hash_fraction(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key): the basis of every split rule here.

    It depends on nothing but the key, so an item's split is the same whether the build sees
    the full raw set or a partial copy, and across fetal-bench versions.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hashed_split(seed: int, key: str, fractions: tuple[tuple[str, float], ...]) -> str:
    """The split of ``key`` under ``fractions`` ((name, share), ... summing to 1), by :func:`hash_fraction`."""
    u = hash_fraction(seed, key)
    cumulative = 0.0
    for split, fraction in fractions:
        cumulative += fraction
        if u < cumulative:
            return split
    return fractions[-1][0]  # u within rounding of 1


def parse_positive_float(value: str, *, path: Path, line: int, column: str) -> float:
    """A CSV cell that must be a finite positive number (a pixel size, a circumference in mm)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise DataError(f"{path}, line {line}: {column} = {value!r} is not a positive number.",
                        "Use the unmodified CSV from the official download.")
    return number
