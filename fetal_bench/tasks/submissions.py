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

MAX_TABLE_BYTES = 1024 * 1024 * 1024  # a predictions CSV/Parquet (12,400 rows of masks fit well below)
MAX_MASK_BYTES = 32 * 1024 * 1024  # one mask PNG (an 800x540 mask is a few kB)
#: What a Parquet submission may decode to. Parquet compresses and dictionary-encodes: a 10 kB
#: file can hold one 1 MB value repeated 4,000 times and decode to 4 GB. PNG masks do not
#: compress further, so a real submission decodes to about its file size.
MAX_DECODED_BYTES = 1024 * 1024 * 1024
MAX_ROWS = 1_000_000  # an evaluation split has at most a few tens of thousands of rows
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


def read_mask_entry(entry: Path, root: Path) -> bytes:
    """The bytes of one ``<id>.png`` entry of the submission folder ``root`` (resolved).

    A symbolic link is followed only to a file inside the folder: one pointing elsewhere
    (``/etc/shadow``, another team's masks, a file that changes between validation and scoring)
    would make the submission something other than the folder that was handed in.
    """
    if entry.is_symlink():
        target = entry.resolve()
        # A dangling link or one to a device is reported as such by read_regular_file below.
        if not target.is_relative_to(root) and target.is_file():
            raise UnreadableFile(entry, "is a symbolic link to a file outside the submission folder")
    return read_regular_file(entry, max_bytes=MAX_MASK_BYTES)


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
    root = path.resolve()
    for row_id, item in mask_files(path).items():
        try:
            data = read_mask_entry(item, root)
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


def error_text(error: BaseException) -> str:
    """A library's error message without the ``<_io.BytesIO object at 0x...>`` it quotes for
    in-memory data (it names nothing the user can find)."""
    import re

    return re.sub(r"<_?io\.\w+ object at 0x[0-9a-fA-F]+>", "the data", str(error))


def check_csv_fields(path: Path, data: bytes) -> None:
    """Every CSV row must have as many fields as the header.

    pandas reads a row with more fields than the header by moving its first fields into the
    index, so two stray commas shifted every column: the ids became probabilities and the error
    spoke of duplicate and missing ids instead of the row at fault.
    """
    import csv
    import io

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SubmissionError(f"{path} is not UTF-8 text (byte {error.start}).", "Save the CSV as UTF-8.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return  # reported as having no `id` column
        wrong = [(reader.line_num, len(row)) for row in reader if row and len(row) != len(header)]
    except csv.Error as error:
        raise SubmissionError(f"Cannot read {path} as CSV: {error} (line {reader.line_num}).",
                              "Write the predictions as UTF-8 CSV or Parquet.") from None
    if wrong:
        shown = ", ".join(f"line {line} has {count}" for line, count in wrong[:_SHOW])
        raise SubmissionError(
            f"Submission {path} is not valid for this task:\n  - {len(wrong)} row(s) do not have the header's "
            f"{len(header)} fields: {shown}{', ...' if len(wrong) > _SHOW else ''}",
            "Write exactly one value per header column on every row (a label with a comma must be quoted).")


def read_parquet(path: Path, data: bytes, *, columns: Sequence[str] | None = None, fix: str):
    """The Parquet ``data`` as a dense Arrow table, its decoded size bounded before it is decoded.

    The footer gives the row count and each column chunk's uncompressed size (bounded first); the
    rows are then read in batches with string and binary columns kept dictionary-encoded, and the
    size they decode to is summed from the dictionary's value lengths, so a repeated value costs
    its index, not its bytes, until the total is known to fit :data:`MAX_DECODED_BYTES`. Only
    flat columns (numbers, booleans, text, bytes) and the ``{bytes, path}`` struct of a
    ``datasets`` Image column are read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def refuse(problem: str):
        return SubmissionError(f"Cannot read {path} as Parquet: {problem}", fix)

    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        names = list(columns) if columns is not None else schema.names
        dictionary_paths = []
        for name in names:
            kind = schema.field(name).type
            if pa.types.is_struct(kind):
                children = {kind.field(i).name: kind.field(i).type for i in range(kind.num_fields)}
                if set(children) - {"bytes", "path"} or not all(map(_flat, children.values())):
                    raise refuse(f"column {short_id(name)!r} has type {str(kind)[:100]}.")
                dictionary_paths += [f"{name}.{child}" for child, t in children.items() if _textual(t)]
            elif not _flat(kind):
                raise refuse(f"column {short_id(name)!r} has type {str(kind)[:100]}, not numbers, text or bytes.")
            elif _textual(kind):
                dictionary_paths.append(name)
        parquet = pq.ParquetFile(pa.BufferReader(data), read_dictionary=dictionary_paths)
        meta = parquet.metadata
        if meta.num_rows > MAX_ROWS:
            raise refuse(f"it has {meta.num_rows:,} rows, over the limit of {MAX_ROWS:,}.")
        declared = sum(meta.row_group(g).column(c).total_uncompressed_size for g in range(meta.num_row_groups)
                       for c in range(meta.num_columns)
                       if meta.row_group(g).column(c).path_in_schema.split(".")[0] in names)
        if declared > MAX_DECODED_BYTES:
            raise refuse(f"its columns hold {declared:,} uncompressed bytes, over the limit of {MAX_DECODED_BYTES:,}.")
        batches, total = [], 0
        for batch in parquet.iter_batches(batch_size=1024, columns=names):
            total += sum(_decoded_bytes(column) for column in batch.columns)
            if total > MAX_DECODED_BYTES:
                raise refuse(f"it decodes to more than {MAX_DECODED_BYTES:,} bytes (a decompression bomb?).")
            batches.append(batch)
        table = pa.Table.from_batches(batches) if batches else parquet.read(columns=names)  # no rows: nothing to bound
        return pa.table({name: _dense(table.column(name).combine_chunks()) for name in table.column_names})
    except SubmissionError:
        raise
    except (pa.ArrowException, OSError, ValueError, KeyError) as error:
        raise refuse(error_text(error)[:300]) from None


def _flat(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):  # as the Arrow schema stored with a pyarrow-written file says
        kind = kind.value_type
    return (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind) or _textual(kind))


def _textual(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
            or pa.types.is_large_binary(kind))


def _decoded_bytes(array) -> int:
    """Bytes ``array`` takes once its dictionaries are decoded, computed without decoding them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        return sum(_decoded_bytes(chunk) for chunk in array.chunks)
    if pa.types.is_dictionary(array.type):
        indices = array.indices.to_numpy(zero_copy_only=False)
        if array.null_count:
            indices = indices[array.indices.is_valid().to_numpy(zero_copy_only=False)]
        lengths = pc.binary_length(array.dictionary).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        return int(lengths[indices.astype(np.int64)].sum()) + 8 * len(array) if len(indices) else 8 * len(array)
    if pa.types.is_struct(array.type):
        return sum(_decoded_bytes(array.field(i)) for i in range(array.type.num_fields)) + len(array)
    return array.nbytes


def _dense(array):
    """``array`` with its dictionaries decoded (after :func:`_decoded_bytes` has bounded that)."""
    import pyarrow as pa

    if pa.types.is_dictionary(array.type):
        return array.dictionary_decode()
    if pa.types.is_struct(array.type):
        fields = [array.type.field(i) for i in range(array.type.num_fields)]
        children = [_dense(array.field(i)) for i in range(len(fields))]
        return pa.StructArray.from_arrays(children, names=[f.name for f in fields], mask=array.is_null())
    return array
