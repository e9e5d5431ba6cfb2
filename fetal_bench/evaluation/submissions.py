"""Loading and validating submissions before anything is scored.

A classification submission is a CSV or Parquet file keyed by row ``id`` with one probability
column per task label (extra columns only where the task allows them), or a ``label`` column
of class names. A segmentation submission is a directory of ``<id>.png`` masks, or a Parquet
file with ``id`` and ``mask`` (PNG bytes). Every problem found is reported at once, in one
error that lists the offending ids (the first few and a count); nothing is scored then.

Submissions come from strangers: only regular files are opened (never a FIFO, a device or a
directory named like a mask), sizes are checked before reading, a mask's pixel count is
checked from its header before it is decoded, and ids are read as text (`NA` stays `NA`).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fetal_bench._io import UnreadableFile, read_regular_file, sha256_bytes, sha256_file
from fetal_bench.errors import FetalBenchError

PROBABILITY_SUM_TOLERANCE = 1e-3  # |sum of a row's probabilities - 1| above this is an error
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


def _ids_text(ids: Sequence) -> str:
    """``count (first, few, ...)``; each shown id cut short and its control characters made visible."""
    ids = [str(i) for i in ids]
    shown = ", ".join(_short(i, 3 * _ID_CHARS) for i in ids[:_SHOW])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > _SHOW else ''})"


def _short(text: str, limit: int = _ID_CHARS) -> str:
    text = text if text.isprintable() else repr(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


class _Problems:
    def __init__(self, source: Path):
        self.source = source
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def add_ids(self, what: str, ids: Sequence) -> None:
        """One line for a whole kind of problem: what, how many, and the first few ids."""
        if ids:
            self.items.append(f"{what}: {_ids_text(ids)}")

    def raise_if_any(self, fix: str) -> None:
        if self.items:
            raise SubmissionError(
                f"Submission {self.source} is not valid for this task:\n  - " + "\n  - ".join(self.items), fix)


def _read_submission_file(path: Path, what: str) -> bytes:
    try:
        return read_regular_file(path, max_bytes=MAX_TABLE_BYTES)
    except UnreadableFile as error:
        raise SubmissionError(f"Predictions {path} {error.reason}.", f"Pass {what} with --predictions.") from None


def _mask_files(directory: Path) -> dict[str, Path]:
    """``<id>.png`` entries of a mask directory by id: what is read and what is hashed."""
    return {entry.name[: -len(".png")]: entry for entry in sorted(directory.iterdir()) if entry.name.endswith(".png")}


def _read_mask_entry(entry: Path, root: Path) -> bytes:
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
    for row_id, item in _mask_files(path).items():
        try:
            data = _read_mask_entry(item, root)
        except UnreadableFile:
            continue  # not a mask file (validation reports it before anything is scored)
        digest.update(f"{row_id}.png:{sha256_bytes(data)}\n".encode())
    return digest.hexdigest()


def _check_ids(found: Sequence[str], expected: Sequence[str], problems: _Problems) -> None:
    seen, duplicates = set(), []
    for row_id in found:
        if row_id in seen:
            duplicates.append(row_id)
        seen.add(row_id)
    if duplicates:
        problems.add(f"duplicate ids: {_ids_text(sorted(set(duplicates)))}")
    expected_set = set(expected)
    missing = [i for i in expected if i not in seen]
    extra = sorted(seen - expected_set)
    if missing:
        problems.add(f"missing ids (rows of the evaluation split with no prediction): {_ids_text(missing)}")
    if extra:
        problems.add(f"extra ids (not in the evaluation split): {_ids_text(extra)}")


@dataclass
class ClassificationSubmission:
    """Predictions aligned to the evaluation rows.

    ``columns`` are the submitted classes (the task's labels first, then allowed extras);
    ``proba`` is (n, len(columns)) or None for a label-only submission; ``predicted`` holds
    the index into ``columns`` of each row's predicted class.
    """

    columns: tuple[str, ...]
    proba: np.ndarray | None
    predicted: np.ndarray


def _read_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise SubmissionError(f"{path} is neither .csv nor .parquet.", "Save classification predictions as CSV or Parquet.")
    data = _read_submission_file(path, "the CSV/Parquet predictions file")
    if suffix != ".csv":
        return _read_parquet(path, data, fix="Write one row per id: `id` and one number per class (or `label`).").to_pandas()
    _check_csv_fields(path, data)
    try:
        # Every cell as written: no "NA"/"nan"/"" -> NaN guessing, so an id `NA` stays `NA`
        # and a blank probability is reported as non-numeric rather than silently NaN.
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False)
    except Exception as error:  # pandas raises many parser errors; all mean "unreadable"
        raise SubmissionError(f"Cannot read {path}: {_error_text(error)[:300]}",
                              "Write the predictions as UTF-8 CSV or Parquet.") from None


def _check_csv_fields(path: Path, data: bytes) -> None:
    """Every CSV row must have as many fields as the header.

    pandas reads a row with more fields than the header by moving its first fields into the
    index, so two stray commas shifted every column: the ids became probabilities and the error
    spoke of duplicate and missing ids instead of the row at fault.
    """
    import csv

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


def _error_text(error: BaseException) -> str:
    """A library's error message without the ``<_io.BytesIO object at 0x...>`` it quotes for
    in-memory data (it names nothing the user can find)."""
    import re

    return re.sub(r"<_?io\.\w+ object at 0x[0-9a-fA-F]+>", "the data", str(error))


def _read_parquet(path: Path, data: bytes, *, columns: Sequence[str] | None = None, fix: str):
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
                    raise refuse(f"column {_short(name)!r} has type {str(kind)[:100]}.")
                dictionary_paths += [f"{name}.{child}" for child, t in children.items() if _textual(t)]
            elif not _flat(kind):
                raise refuse(f"column {_short(name)!r} has type {str(kind)[:100]}, not numbers, text or bytes.")
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
        raise refuse(_error_text(error)[:300]) from None


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


def _text_ids(values) -> list[str]:
    """Ids as text; a missing id (a Parquet null) becomes "" and is reported as an extra id."""
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value) for value in values]


def load_classification_submission(
    path: str | Path,
    *,
    expected_ids: Sequence[str],
    labels: Sequence[str],
    allowed_extra: Sequence[str] = (),
) -> ClassificationSubmission:
    """Predictions aligned to ``expected_ids``; every problem (ids, columns, values) in one error."""
    path = Path(path)
    table = _read_table(path)
    problems = _Problems(path)
    fix = _fix(labels, allowed_extra)
    if "id" not in table.columns:
        problems.add(f"no `id` column (columns: {[_short(str(c)) for c in table.columns[:20]]})")
        problems.raise_if_any("The first column must be `id`, the dataset's row id.")
    ids = _text_ids(table["id"])
    _check_ids(ids, expected_ids, problems)

    other = [c for c in table.columns if c != "id"]
    known = set(labels) | set(allowed_extra)
    if "label" in other:
        if len(other) > 1:
            problems.add(f"a `label` column together with other columns {sorted(map(str, set(other) - {'label'}))}: "
                         "give either probabilities or labels")
        columns = tuple(labels) + tuple(allowed_extra)
        values = table["label"]
        problems.add_ids(f"labels that are not task classes ({', '.join(labels)})",
                         [i for i, v in zip(ids, values) if not isinstance(v, str) or v not in known])
        problems.raise_if_any(fix)
        index = {name: k for k, name in enumerate(columns)}
        predicted = np.array([index[v] for v in values], dtype=np.int64)
        return _align(ClassificationSubmission(columns, None, predicted), ids, expected_ids)

    unknown = [str(c) for c in other if c not in known]
    if unknown:
        problems.add(f"unknown label columns {unknown[:20]} (task labels: {list(labels)}"
                     + (f"; allowed extras: {list(allowed_extra)}" if allowed_extra else "") + ")")
    missing_columns = [c for c in labels if c not in table.columns]
    if missing_columns:
        problems.add(f"missing probability columns {missing_columns}")
    # The values of the columns that are there are checked even when others are missing or the
    # ids are wrong: one run of --validate-only reports every kind of problem.
    columns = tuple(c for c in labels if c in table.columns) + tuple(c for c in allowed_extra if c in table.columns)
    proba = _check_probabilities(table, columns, ids, problems, check_sums=not missing_columns)
    problems.raise_if_any(fix)
    predicted = proba.argmax(axis=1)
    return _align(ClassificationSubmission(columns, proba, predicted), ids, expected_ids)


def _check_probabilities(table, columns: Sequence[str], ids: list[str], problems: _Problems, *,
                         check_sums: bool) -> np.ndarray:
    import pandas as pd

    numeric = table[list(columns)].apply(pd.to_numeric, errors="coerce")
    proba = numeric.to_numpy(dtype=np.float64).reshape(len(ids), len(columns))
    problems.add_ids("NaN or non-numeric probabilities", [i for i, row in zip(ids, np.isnan(proba).any(axis=1)) if row])
    finite = np.nan_to_num(proba, nan=0.5)
    problems.add_ids("probabilities outside [0, 1]",
                     [i for i, row in zip(ids, ((finite < 0) | (finite > 1)).any(axis=1)) if row])
    if check_sums and columns:
        sums = finite.sum(axis=1)
        problems.add_ids(f"probabilities not summing to 1 (tolerance {PROBABILITY_SUM_TOLERANCE})",
                         [i for i, total in zip(ids, sums) if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE])
    return proba


def _fix(labels: Sequence[str], allowed_extra: Sequence[str]) -> str:
    extra = f" (optionally also {', '.join(allowed_extra)})" if allowed_extra else ""
    return (f"Write one row per evaluation id with columns `id` and one probability per class: "
            f"{', '.join(labels)}{extra}; or `id` and `label`. `fetal-bench evaluate --validate-only` checks a file.")


def _align(submission: ClassificationSubmission, ids: Sequence[str], expected_ids: Sequence[str]) -> ClassificationSubmission:
    position = {row_id: k for k, row_id in enumerate(ids)}
    order = np.array([position[row_id] for row_id in expected_ids], dtype=np.int64)
    return ClassificationSubmission(
        submission.columns,
        None if submission.proba is None else submission.proba[order],
        submission.predicted[order],
    )


def _decode_mask(data: object, expected_shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None, str]:
    """(mask, None, "") or (None, kind, detail); the size is checked from the header before decoding.

    Checking the header size against the ground truth first bounds the pixels ever decoded by the
    reference mask's, so a PNG claiming 400 megapixels costs nothing.
    """
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None, "not-bytes", type(data).__name__
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check below decides
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if (height, width) != tuple(expected_shape):
                    return None, "size", f"{width}x{height} (expected {expected_shape[1]}x{expected_shape[0]})"
                # Gray + alpha (LA) has one colour channel, RGB(A) three; alpha is ignored.
                colours = 1 if image.mode in ("LA", "La", "PA") else 3
                array = np.asarray(image)
    except Image.DecompressionBombError:
        return None, "size", f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels (expected {expected_shape[1]}x{expected_shape[0]})"
    except UnidentifiedImageError:
        return None, "unreadable", "not a PNG or other image file"
    except (OSError, ValueError, SyntaxError) as error:
        return None, "unreadable", _error_text(error)[:80]
    if array.ndim == 3:  # a multi-channel mask is accepted only when its colour channels agree
        if not (array[..., :colours] == array[..., :1]).all():
            return None, "colour", ""
        array = array[..., 0]
    if array.ndim != 2:
        return None, "unreadable", f"{array.ndim}-D pixel data"
    return array, None, ""


_MASK_PROBLEMS = {  # kind -> how the error line starts
    "file": "mask entries that are not regular files of at most "
            f"{MAX_MASK_BYTES // (1024 * 1024)} MB (only <id>.png files are read)",
    "not-bytes": "masks that are not PNG bytes",
    "unreadable": "masks that are not readable images",
    "colour": "colour masks (save a single-channel PNG)",
    "size": "masks not at the image's native size (they are never resized)",
    "values": "mask values other than 0/1 (or 0/255)",
}


def _read_mask_directory(path: Path, expected: set[str]) -> tuple[list[str], dict[str, object], list[str]]:
    """(ids listed, raw bytes of the expected ones, "id (reason)" for entries that cannot be read).

    Only entries whose id is expected are opened: extra ids are reported by name, unread.
    """
    entries = _mask_files(path)
    raw: dict[str, object] = {}
    bad_files = []
    root = path.resolve()
    for row_id, entry in entries.items():
        if row_id not in expected:
            continue
        try:
            raw[row_id] = _read_mask_entry(entry, root)
        except UnreadableFile as error:
            bad_files.append(f"{_short(row_id)} ({error.reason})")
    return list(entries), raw, bad_files


def _read_mask_parquet(path: Path) -> tuple[list[str], dict[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fix = "Write one row per id with the mask as PNG bytes (or a datasets Image column)."
    data = _read_submission_file(path, "the Parquet of masks")
    try:
        names = pq.ParquetFile(pa.BufferReader(data)).schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as error:
        raise SubmissionError(f"Cannot read {path} as Parquet: {_error_text(error)[:300]}", fix) from None
    if "id" not in names or "mask" not in names:
        raise SubmissionError(f"{path} needs columns `id` and `mask` (PNG bytes), has {[_short(n) for n in names[:20]]}.",
                              fix)
    table = _read_parquet(path, data, columns=["id", "mask"], fix=fix)  # other columns are never decoded
    ids = _text_ids(table.column("id").to_pylist())
    raw = {}
    for row_id, cell in zip(ids, table.column("mask").to_pylist()):
        raw[row_id] = cell.get("bytes") if isinstance(cell, dict) else cell
    return ids, raw


def load_segmentation_submission(
    path: str | Path,
    *,
    expected_ids: Sequence[str],
    expected_shapes: Mapping[str, tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Boolean masks by id, checked against the ground truth's ids and native sizes."""
    path = Path(path)
    problems = _Problems(path)
    found: dict[str, list[str]] = {kind: [] for kind in _MASK_PROBLEMS}
    if path.is_dir():
        ids, raw, found["file"] = _read_mask_directory(path, set(expected_ids))
    elif path.suffix.lower() in (".parquet", ".pq") and (path.exists() or path.is_symlink()):
        ids, raw = _read_mask_parquet(path)
    else:
        raise SubmissionError(f"Segmentation predictions {path} are neither a directory of PNG masks nor a Parquet file.",
                              "Pass a directory holding <id>.png for every evaluation id, or a Parquet with id + mask.")
    _check_ids(ids, expected_ids, problems)
    masks: dict[str, np.ndarray] = {}
    for row_id in expected_ids:
        if row_id not in raw:
            continue
        array, kind, detail = _decode_mask(raw[row_id], tuple(expected_shapes[row_id]))
        if array is None:
            found[kind].append(f"{_short(row_id)} ({detail})" if detail else row_id)
            continue
        values = np.unique(array)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            found["values"].append(f"{_short(row_id)} {values[:6].tolist()}")
            continue
        masks[row_id] = array > 0
    for kind, what in _MASK_PROBLEMS.items():
        problems.add_ids(what, found[kind])
    problems.raise_if_any("Save one single-channel PNG per id, at the image's own size, 0 = background and "
                          "1 (or 255) = head. `fetal-bench evaluate --validate-only` checks a submission.")
    return masks
