"""Loading and validating submissions before anything is scored.

A classification submission is a CSV or Parquet file keyed by row ``id`` with one probability
column per task label (extra columns only where the task allows them), or a ``label`` column
of class names. A segmentation submission is a directory of ``<id>.png`` masks, or a Parquet
file with ``id`` and ``mask`` (PNG bytes). Every problem found is reported at once, in one
error that lists the offending ids (the first few and a count); nothing is scored then.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fetal_bench._io import sha256_file
from fetal_bench.errors import FetalBenchError

PROBABILITY_SUM_TOLERANCE = 1e-3  # |sum of a row's probabilities - 1| above this is an error
_SHOW = 5  # ids shown per problem


class SubmissionError(FetalBenchError):
    """The submission does not match the task; the message lists every problem found."""


def _ids_text(ids: Sequence) -> str:
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:_SHOW])
    return f"{len(ids)} ({shown}{', ...' if len(ids) > _SHOW else ''})"


class _Problems:
    def __init__(self, source: Path):
        self.source = source
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_if_any(self, fix: str) -> None:
        if self.items:
            raise SubmissionError(
                f"Submission {self.source} is not valid for this task:\n  - " + "\n  - ".join(self.items), fix)


def submission_sha256(path: str | Path) -> str:
    """sha256 of a predictions file, or of a directory's sorted (name, sha256) listing."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}:{sha256_file(item)}\n".encode())
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
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"id": str}, keep_default_na=True)
        if suffix in (".parquet", ".pq"):
            table = pd.read_parquet(path)
            if "id" in table:
                table["id"] = table["id"].astype(str)
            return table
    except Exception as error:  # pandas raises many parser errors; all mean "unreadable"
        raise SubmissionError(f"Cannot read {path}: {error}", "Write the predictions as UTF-8 CSV or Parquet.") from None
    raise SubmissionError(f"{path} is neither .csv nor .parquet.", "Save classification predictions as CSV or Parquet.")


def load_classification_submission(
    path: str | Path,
    *,
    expected_ids: Sequence[str],
    labels: Sequence[str],
    allowed_extra: Sequence[str] = (),
) -> ClassificationSubmission:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"Predictions file {path} does not exist.", "Pass the CSV/Parquet file with --predictions.")
    table = _read_table(path)
    problems = _Problems(path)
    if "id" not in table.columns:
        problems.add(f"no `id` column (columns: {list(table.columns)})")
        problems.raise_if_any("The first column must be `id`, the dataset's row id.")
    ids = [str(i) for i in table["id"]]
    _check_ids(ids, expected_ids, problems)

    other = [c for c in table.columns if c != "id"]
    known = set(labels) | set(allowed_extra)
    if "label" in other:
        if len(other) > 1:
            problems.add(f"a `label` column together with other columns {sorted(set(other) - {'label'})}: give either "
                         "probabilities or labels")
        columns = tuple(labels) + tuple(allowed_extra)
        values = table["label"]
        bad = [i for i, v in zip(ids, values) if not isinstance(v, str) or v not in known]
        if bad:
            problems.add(f"labels that are not task classes ({', '.join(labels)}): {_ids_text(bad)}")
        problems.raise_if_any(_fix(labels, allowed_extra))
        index = {name: k for k, name in enumerate(columns)}
        predicted = np.array([index[v] for v in values], dtype=np.int64)
        return _align(ClassificationSubmission(columns, None, predicted), ids, expected_ids)

    unknown = [c for c in other if c not in known]
    if unknown:
        problems.add(f"unknown label columns {unknown} (task labels: {list(labels)}"
                     + (f"; allowed extras: {list(allowed_extra)}" if allowed_extra else "") + ")")
    missing_columns = [c for c in labels if c not in table.columns]
    if missing_columns:
        problems.add(f"missing probability columns {missing_columns}")
    problems.raise_if_any(_fix(labels, allowed_extra))

    columns = tuple(labels) + tuple(c for c in allowed_extra if c in table.columns)
    import pandas as pd

    numeric = table[list(columns)].apply(pd.to_numeric, errors="coerce")
    proba = numeric.to_numpy(dtype=np.float64)
    not_numbers = [i for i, row in zip(ids, np.isnan(proba).any(axis=1)) if row]
    if not_numbers:
        problems.add(f"NaN or non-numeric probabilities: {_ids_text(not_numbers)}")
    finite = np.nan_to_num(proba, nan=0.5)
    out_of_range = [i for i, row in zip(ids, ((finite < 0) | (finite > 1)).any(axis=1)) if row]
    if out_of_range:
        problems.add(f"probabilities outside [0, 1]: {_ids_text(out_of_range)}")
    sums = finite.sum(axis=1)
    bad_sum = [i for i, s in zip(ids, sums) if abs(s - 1.0) > PROBABILITY_SUM_TOLERANCE]
    if bad_sum:
        problems.add(f"probabilities not summing to 1 (tolerance {PROBABILITY_SUM_TOLERANCE}): {_ids_text(bad_sum)}")
    problems.raise_if_any(_fix(labels, allowed_extra))
    predicted = proba.argmax(axis=1)
    return _align(ClassificationSubmission(columns, proba, predicted), ids, expected_ids)


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


def _decode_mask(data: bytes, row_id: str, problems: _Problems) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        problems.add(f"mask {row_id} is not a readable image ({error})")
        return None
    if array.ndim == 3:  # an RGB(A) mask is accepted only when its colour channels agree
        if not (array[..., :3] == array[..., :1]).all():
            problems.add(f"mask {row_id} is a colour image; save a single-channel PNG")
            return None
        array = array[..., 0]
    return array


def load_segmentation_submission(
    path: str | Path,
    *,
    expected_ids: Sequence[str],
    expected_shapes: Mapping[str, tuple[int, int]],
) -> dict[str, np.ndarray]:
    """Boolean masks by id, checked against the ground truth's ids and native sizes."""
    path = Path(path)
    problems = _Problems(path)
    raw: dict[str, bytes] = {}
    if path.is_dir():
        files = sorted(path.glob("*.png"))
        ids = [p.stem for p in files]
        for item, row_id in zip(files, ids):
            raw[row_id] = item.read_bytes()
    elif path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if "id" not in table.column_names or "mask" not in table.column_names:
            raise SubmissionError(f"{path} needs columns `id` and `mask` (PNG bytes), has {table.column_names}.",
                                  "Write one row per id with the mask as PNG bytes (or a datasets Image column).")
        ids = [str(i) for i in table.column("id").to_pylist()]
        for row_id, cell in zip(ids, table.column("mask").to_pylist()):
            raw[row_id] = cell["bytes"] if isinstance(cell, dict) else cell
    else:
        raise SubmissionError(f"Segmentation predictions {path} are neither a directory of PNG masks nor a Parquet file.",
                              "Pass a directory holding <id>.png for every evaluation id, or a Parquet with id + mask.")
    _check_ids(ids, expected_ids, problems)
    masks: dict[str, np.ndarray] = {}
    wrong_size, wrong_values = [], []
    for row_id in expected_ids:
        if row_id not in raw:
            continue
        array = _decode_mask(raw[row_id], row_id, problems)
        if array is None:
            continue
        if array.shape != tuple(expected_shapes[row_id]):
            wrong_size.append(f"{row_id} {array.shape[1]}x{array.shape[0]} (expected "
                              f"{expected_shapes[row_id][1]}x{expected_shapes[row_id][0]})")
            continue
        values = np.unique(array)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            wrong_values.append(f"{row_id} {values[:6].tolist()}")
            continue
        masks[row_id] = array > 0
    if wrong_size:
        problems.add(f"masks not at the image's native size (they are never resized): {_ids_text(wrong_size)}")
    if wrong_values:
        problems.add(f"mask values other than 0/1 (or 0/255): {_ids_text(wrong_values)}")
    problems.raise_if_any("Save one single-channel PNG per id, at the image's own size, 0 = background and "
                          "1 (or 255) = head. `fetal-bench evaluate --validate-only` checks a submission.")
    return masks
