"""Shared pieces of the raw-data converters: locating files, reading CSVs, checking images."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fetal_bench._io import seeded_key
from fetal_bench.errors import DataError


def check_paths_apart(raw_dir: Path, out_dir: Path) -> None:
    """Refuse an output that is, contains or sits inside the raw directory.

    A build replaces its output directory as a whole (``--overwrite``), so ``--out`` equal to or
    above ``--raw`` would delete the raw download; one inside ``--raw`` would be read back as raw
    files. Both are compared after resolving symbolic links, before anything is written.
    """
    raw = raw_dir.resolve()
    out = out_dir.resolve()  # resolves the existing part of a path that does not exist yet
    if out == raw or out.is_relative_to(raw) or raw.is_relative_to(out):
        relation = "is" if out == raw else "is inside" if out.is_relative_to(raw) else "contains"
        raise DataError(
            f"The output directory {out_dir} {relation} the raw directory {raw_dir} "
            f"(resolved: {out} and {raw}); building there could delete or mix up the raw files.",
            "Pass an --out outside --raw (for example a sibling folder such as data/NAME next to raw/NAME).",
        )


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


MAX_CSV_BYTES = 256 * 1024 * 1024  # the largest official CSV (FETAL_PLANES_DB) is about 1 MB


def read_csv(path: Path, *, expected_header: Sequence[str], delimiter: str = ",") -> list[dict[str, str]]:
    """Read a CSV whose header must be exactly ``expected_header`` (cells whitespace-stripped).

    Values are whitespace-stripped too: the official FETAL_PLANES_DB CSV pads its last column.
    """
    from fetal_bench._io import UnreadableFile, read_regular_file

    try:
        text = read_regular_file(path, max_bytes=MAX_CSV_BYTES).decode("utf-8-sig")
    except UnreadableFile as error:
        raise DataError(f"{path} {error.reason}.", "Use the CSV file from the official download.") from None
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
    if not rows:
        # An empty table would build an empty dataset that `datasets` cannot even load.
        raise DataError(f"{path} has a header but no rows.", "Use the complete CSV from the official download.")
    return rows


# Bounds on one raw image: ultrasound frames are well under 1 MP and a few MB; anything far
# larger is a corrupt or hostile file, refused before it is decoded.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000


def read_image_bytes(path: Path, *, modes: Sequence[str] | None = None,
                     expected: str = "") -> tuple[bytes, tuple[int, int]]:
    """Read an image file, checking that it decodes completely; returns (bytes, (width, height)).

    The original bytes are kept (embedded as published, no re-encoding); decoding them once
    catches truncated or corrupt files at build time instead of at training time. Only a regular
    file of at most :data:`MAX_IMAGE_BYTES` and :data:`MAX_IMAGE_PIXELS` is decoded. ``modes``
    (PIL modes, e.g. ``("L",)``) are the ones the source format allows; ``expected`` describes
    them for the error message.
    """
    from PIL import Image, UnidentifiedImageError

    from fetal_bench._io import UnreadableFile, read_regular_file

    try:
        data = read_regular_file(path, max_bytes=MAX_IMAGE_BYTES)
    except UnreadableFile as error:
        raise DataError(f"Image file {path} {error.reason}.",
                        "Re-extract the official archive; every listed image is a regular PNG file.") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"Image file {path} claims {width}x{height} pixels, over the limit of "
                                f"{MAX_IMAGE_PIXELS:,}.", "Re-extract the official archive; the file is not an "
                                "ultrasound frame of the dataset.")
            if modes is not None and image.mode not in modes:
                raise DataError(f"Image file {path} is {image.mode} but {expected or 'the format'} is "
                                f"{' or '.join(modes)}.", "Use the unmodified file from the official download "
                                "(an edited or re-saved image changes its format).")
            image.load()
    except Image.DecompressionBombError as error:
        raise DataError(f"Image file {path} is too large to decode ({error}).",
                        "Re-extract the official archive; the file is not an ultrasound frame.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"Image file {path} is corrupt or not an image ({error}).",
            "Re-download and re-extract the official archive (fetal-bench datasets download verifies checksums).",
        ) from None
    return data, (width, height)


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
    return int.from_bytes(seeded_key(seed, key)[:8], "big") / 2**64


def hashed_split(seed: int, key: str, fractions: tuple[tuple[str, float], ...]) -> str:
    """The split of ``key`` under ``fractions`` ((name, share), ... summing to 1), by :func:`hash_fraction`."""
    u = hash_fraction(seed, key)
    cumulative = 0.0
    for split, fraction in fractions:
        cumulative += fraction
        if u < cumulative:
            return split
    return fractions[-1][0]  # u within rounding of 1


#: Plausible ranges of the physical quantities builds read from CSVs (inclusive, in mm). They
#: are wide (HC18's pixel sizes lie within 0.049-0.39 mm, its head circumferences within 44-346 mm),
#: but they keep out values that no ultrasound frame has and that the float32 columns could not
#: even store: 1e308 became inf, 1e-50 became 0.0, and 1e30 gave an HC error of 8.4e32 mm.
PIXEL_SIZE_MM = (1e-3, 10.0)
CIRCUMFERENCE_MM = (1.0, 2000.0)


def parse_positive_float(value: str, *, path: Path, line: int, column: str,
                         bounds: tuple[float, float] = (0.0, math.inf)) -> float:
    """A CSV cell that must be a finite positive number (a pixel size, a circumference in mm)
    within ``bounds`` (inclusive; the lower bound itself is excluded when it is 0), that a
    float32 column stores as the same finite, non-zero number."""
    import numpy as np

    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not math.isfinite(number) or number <= 0:
        raise DataError(f"{path}, line {line}: {column} = {value!r} is not a positive number.",
                        "Use the unmodified CSV from the official download.")
    low, high = bounds
    with np.errstate(over="ignore"):  # overflowing to inf is what is being checked
        stored = float(np.float32(number))
    if not low <= number <= high or not math.isfinite(stored) or stored == 0.0:
        raise DataError(f"{path}, line {line}: {column} = {value!r} is outside the plausible range "
                        f"[{low:g}, {high:g}].", "Use the unmodified CSV from the official download.")
    return number


@dataclass(frozen=True)
class Absent:
    """The files a CSV lists that are not in the raw directory (a partial copy)."""

    listed: int
    missing: tuple[Path, ...]

    @property
    def built(self) -> int:
        return self.listed - len(self.missing)


def split_absent(paths: Sequence[Path], *, what: str, fix: str) -> Absent:
    """Which listed ``paths`` are absent, refusing any that exists but is not a regular file.

    An absent file makes the build partial (it is left out and counted, see
    :func:`partial_record`); a directory, FIFO or device named like an image is refused, because
    it is not a download's missing part but something else in its place.
    """
    unreadable = [p for p in paths if (p.exists() or p.is_symlink()) and not p.is_file()]
    if unreadable:
        shown = ", ".join(str(p) for p in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        raise DataError(f"{len(unreadable)} {what} listed in the CSV are not regular files or are missing: {shown}{more}.",
                        fix)
    return Absent(len(paths), tuple(p for p in paths if not (p.exists() or p.is_symlink())))


def partial_record(absent: Absent, *, dataset: str, what: str, csv_name: str) -> tuple[str, dict]:
    """(the build warning, the ``build_info.json`` ``partial`` entry) of a build that left out the
    ``absent`` files: how many were listed, built and missing, the missing share, and that the
    build is a ``local`` revision (never a catalog one; a release refuses it)."""
    missing = len(absent.missing)
    share = missing / absent.listed if absent.listed else 0.0
    examples = ", ".join(p.name for p in absent.missing[:3])
    warning = (f"Partial raw directory: {absent.built} of the {absent.listed} {what} listed in {csv_name} were built; "
               f"{missing} ({share:.1%}) are missing (e.g. {examples}). This build is a local revision of {dataset}, "
               "not a published one.")
    record = {"what": what, "listed": absent.listed, "built": absent.built, "missing": missing,
              "missing_share": round(share, 6), "revision": "local", "missing_examples": [p.name for p in absent.missing[:10]]}
    return warning, record
