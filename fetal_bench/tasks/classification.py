"""Classification tasks: a label per image. The kind owns everything that is specific to them.

* Truth: the task's labels of the evaluation rows (``label_map`` maps dataset classes onto them;
  rows of other classes are not scored).
* Submissions: a CSV or Parquet file keyed by row ``id`` with one probability column per task
  label (extra columns only where the task allows them), or a ``label`` column of class names.
* Prediction: softmax over a model's logits, reordered to the task's labels; written back as a
  submission CSV that scores to the same numbers.
* Scores: every task metric with a subject-resampled interval, per-class F1, the confusion
  matrix; FU-LoRA's rule that an argmax on an extra class is an error.
* Training: cross-entropy on the data's classes (remapped to model indices in memory), validated
  on accuracy, macro F1 and the positive class's F1; a classifier registered as trained on masks
  (the segmentation route to a frame label) learns the masks instead (:class:`MaskedLabelObjective`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.tasks.kind import TaskKind
from fetal_bench.tasks.scoring import BootstrapConfig, score_entry
from fetal_bench.tasks.segmentation import MaskObjective
from fetal_bench.tasks.submissions import (
    Problems, SubmissionError, check_csv_fields, check_ids, error_text, read_parquet, read_submission_file, short_id,
    text_ids,
)

if TYPE_CHECKING:  # typing only
    import datasets

    from fetal_bench.models.registry import ModelInfo
    from fetal_bench.tasks.base import Task

__all__ = ["CLASSIFICATION", "ClassificationKind", "ClassificationSubmission", "ClassificationTruth", "LabelObjective",
           "LabelTargets", "MaskedLabelObjective", "load_classification_submission", "restrict_to_labels"]

PROBABILITY_SUM_TOLERANCE = 1e-3  # the least |sum of a row's probabilities - 1| that is an error
#: Rounding one probability to 3 decimals moves it by at most this much: k rounded columns may
#: sum to 1 +- k times it, which the tolerance admits (a CSV written with "%.3f" is accepted).
ROUNDING_3_DECIMALS = 5e-4


def probability_sum_tolerance(n_columns: int) -> float:
    """How far a row's probabilities may sum from 1: 0.001, or what rounding each of
    ``n_columns`` probabilities to 3 decimals can add up to, whichever is larger."""
    return max(PROBABILITY_SUM_TOLERANCE, n_columns * ROUNDING_3_DECIMALS)
LABELS_ONLY = "the submission gives class labels, not probabilities"
TARGET_COLUMN = "target"  # a training row's model-space class index, added in memory


# --------------------------------------------------------------------------------------------
# truth
# --------------------------------------------------------------------------------------------


@dataclass
class ClassificationTruth:
    ids: list[str]
    y_true: np.ndarray  # task label index per row
    subjects: np.ndarray
    groups: dict[str, np.ndarray]
    dropped: int  # rows whose dataset label is not a task label


def classification_truth(task: Task, dataset) -> ClassificationTruth:
    from datasets import ClassLabel

    feature = dataset.features.get(task.label_column)
    if not isinstance(feature, ClassLabel):
        raise FetalBenchError(f"The evaluation data has no ClassLabel column {task.label_column!r}.",
                              f"Pass --data pointing at a build of {task.dataset.name!r}.")
    needed = ["id", task.label_column, task.subject_column, *[g for g in task.group_by if g in dataset.column_names]]
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise FetalBenchError(f"The evaluation data lacks columns {missing}.", f"Pass --data pointing at a build of {task.dataset.name!r}.")
    table = dataset.select_columns(needed).to_dict()
    mapping = task.label_map or {name: name for name in feature.names}
    index = {label: k for k, label in enumerate(task.labels)}
    keep, y_true = [], []
    for row, value in enumerate(table[task.label_column]):
        target = mapping.get(feature.int2str(value))
        if target is not None and target in index:
            keep.append(row)
            y_true.append(index[target])
    if not keep:
        raise FetalBenchError("No evaluation row has a label of this task.", "Check --data and --split.")
    pick = np.array(keep)
    return ClassificationTruth(
        ids=[table["id"][i] for i in keep],
        y_true=np.array(y_true, dtype=np.int64),
        subjects=np.asarray(table[task.subject_column], dtype=object)[pick],
        groups={g: np.asarray(table[g], dtype=object)[pick] for g in task.group_by if g in table},
        dropped=len(table["id"]) - len(keep),
    )


# --------------------------------------------------------------------------------------------
# submissions
# --------------------------------------------------------------------------------------------


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
    data = read_submission_file(path, "the CSV/Parquet predictions file")
    if suffix != ".csv":
        return read_parquet(path, data, fix="Write one row per id: `id` and one number per class (or `label`).").to_pandas()
    check_csv_fields(path, data)
    try:
        # Every cell as written: no "NA"/"nan"/"" -> NaN guessing, so an id `NA` stays `NA`
        # and a blank probability is reported as non-numeric rather than silently NaN.
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_filter=False)
    except Exception as error:  # pandas raises many parser errors; all mean "unreadable"
        raise SubmissionError(f"Cannot read {path}: {error_text(error)[:300]}",
                              "Write the predictions as UTF-8 CSV or Parquet.") from None


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
    problems = Problems(path)
    fix = _fix(labels, allowed_extra)
    if "id" not in table.columns:
        problems.add(f"no `id` column (columns: {[short_id(str(c)) for c in table.columns[:20]]})")
        problems.raise_if_any("The first column must be `id`, the dataset's row id.")
    ids = text_ids(table["id"])
    check_ids(ids, expected_ids, problems)

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
    proba, sums_off = _check_probabilities(table, columns, ids, problems, check_sums=not missing_columns)
    if sums_off:
        fix = ("Renormalise each row: divide its probabilities by their sum (probabilities rounded to 3 decimals are "
               "within the tolerance). " + fix)
    problems.raise_if_any(fix)
    predicted = proba.argmax(axis=1)
    return _align(ClassificationSubmission(columns, proba, predicted), ids, expected_ids)


def _check_probabilities(table, columns: Sequence[str], ids: list[str], problems: Problems, *,
                         check_sums: bool) -> tuple[np.ndarray, bool]:
    """The probabilities, and whether some row's sum is off by more than the tolerance."""
    import pandas as pd

    numeric = table[list(columns)].apply(pd.to_numeric, errors="coerce")
    proba = numeric.to_numpy(dtype=np.float64).reshape(len(ids), len(columns))
    problems.add_ids("NaN or non-numeric probabilities", [i for i, row in zip(ids, np.isnan(proba).any(axis=1)) if row])
    finite = np.nan_to_num(proba, nan=0.5)
    problems.add_ids("probabilities outside [0, 1]",
                     [i for i, row in zip(ids, ((finite < 0) | (finite > 1)).any(axis=1)) if row])
    off: list[str] = []
    if check_sums and columns:
        sums = finite.sum(axis=1)
        tolerance = probability_sum_tolerance(len(columns))
        off = [i for i, total in zip(ids, sums) if abs(total - 1.0) > tolerance + 1e-12]
        problems.add_ids(f"probabilities not summing to 1 (tolerance {tolerance:g})", off)
    return proba, bool(off)


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




def write_classification_predictions(path, ids: list[str], submission: ClassificationSubmission) -> Path:
    """The model's class probabilities as a submission CSV (``id``, one column per class).

    Probabilities are written with ``repr`` precision so the file scores exactly as the model did.
    """
    import pandas as pd

    from fetal_bench._io import atomic_file

    if submission.proba is None:
        table = {"id": ids, "label": [submission.columns[k] for k in submission.predicted]}
    else:  # probabilities only: the format takes either them or labels, and the argmax is the label
        table = {"id": ids, **{column: submission.proba[:, k].astype(np.float64)
                               for k, column in enumerate(submission.columns)}}
    path = Path(path)
    with atomic_file(path, "w", newline="") as handle:
        pd.DataFrame(table).to_csv(handle, index=False, float_format="%.17g")
    return path


def restrict_to_labels(source, target, labels) -> Path:
    """A classification submission that never predicts outside ``labels``: the other probability
    columns dropped, the rest renormalised (so the argmax is over ``labels`` only).

    This is how a zero-shot table shows what an extra output (FU-LoRA's and SonoNet's "Other")
    costs: the same model, scored with and without the chance to answer "Other".
    """
    import pandas as pd

    from fetal_bench._io import atomic_file

    table = pd.read_csv(source, dtype={"id": str})
    labels = list(labels)
    missing = [label for label in labels if label not in table.columns]
    if missing:
        raise FetalBenchError(f"{source} has no probability column for {missing}.",
                              "Restrict a submission that has one probability column per task label.")
    proba = table[labels].to_numpy(dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    out = {"id": table["id"], **{label: proba[:, k] for k, label in enumerate(labels)}}
    target = Path(target)
    with atomic_file(target, "w", newline="") as handle:
        pd.DataFrame(out).to_csv(handle, index=False, float_format="%.17g")
    return target


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------


def _classification_statistic(metric: str, y_true, predicted, proba, task_proba, k: int,
                              positive: int | None = None) -> Callable[[np.ndarray], float | None]:
    """A function of row indices that computes ``metric`` on those rows.

    ``positive``: the task's positive class index, for the binary metrics.
    """
    from fetal_bench import metrics as M

    if metric in ("f1", "precision", "recall", "specificity"):
        function = getattr(M, metric)
        return lambda idx: function(y_true[idx], predicted[idx], positive)
    if metric == "auc":
        return lambda idx: M.auc(y_true[idx], task_proba[idx, positive], positive)
    if metric == "accuracy":
        return lambda idx: M.accuracy(y_true[idx], predicted[idx])
    if metric in ("balanced_accuracy", "macro_f1", "weighted_f1", "auc_ovr_hard"):
        function = getattr(M, metric)
        return lambda idx: function(y_true[idx], predicted[idx], k)
    if metric == "auc_ovr_macro":
        return lambda idx: M.auc_ovr_macro(y_true[idx], task_proba[idx])
    if metric == "ece":
        return lambda idx: M.ece(y_true[idx], proba[idx])
    raise KeyError(metric)


def classification_statistic(task: Task, metric: str, y_true: np.ndarray, predicted: np.ndarray,
                             proba: np.ndarray | None) -> Callable[[np.ndarray], float | None]:
    """``metric`` of a submission as a function of row indices (what a bootstrap resamples).

    ``predicted`` and ``proba`` are as in :func:`classification_scores`.
    """
    k = len(task.labels)
    positive = None if task.positive_label is None else task.labels.index(task.positive_label)
    return _classification_statistic(metric, y_true, np.minimum(predicted, k), proba,
                                     None if proba is None else proba[:, :k], k, positive)


def classification_scores(task: Task, y_true: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
                          subjects: np.ndarray, boot: BootstrapConfig) -> dict:
    """Every task metric with its interval, on the given rows.

    ``predicted`` indexes the submitted columns: the task's labels (0..k-1) and then allowed
    extras (k..), which are never correct. ``proba`` is over all submitted columns or None.
    """
    from fetal_bench import metrics as M

    k = len(task.labels)
    # The extras can only be wrong; they all map to index k so metric functions over k classes
    # count them as misses of the true class.
    predicted = np.minimum(predicted, k)
    task_proba = None if proba is None else proba[:, :k]
    positive = None if task.positive_label is None else task.labels.index(task.positive_label)
    scores: dict = {"main_score": task.main_score}
    everything = np.arange(len(y_true))
    for metric in task.metrics:
        if M.METRICS[metric].needs == "proba" and proba is None:
            scores[metric] = score_entry(None, reason=LABELS_ONLY)
            continue
        statistic = _classification_statistic(metric, y_true, predicted, proba, task_proba, k, positive)
        value = statistic(everything)
        if value is None:
            scores[metric] = score_entry(None, reason="not defined on these rows (e.g. a single class present, "
                                                      "or no positive sample)")
            continue
        spec = M.METRICS[metric]
        low, high = M.bootstrap_ci(statistic, len(y_true), clusters=subjects, n_resamples=boot.n_resamples,
                                   seed=boot.seed, confidence=boot.confidence, method=spec.interval, estimate=value)
        if low is not None:  # a shifted interval can leave the metric's range (an ECE below 0)
            low, high = max(low, spec.bounds[0]), min(high, spec.bounds[1])
        scores[metric] = score_entry(value, (low, high), None if low is not None else "too few subjects for an interval")
    return scores


def per_class_f1(task: Task, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from fetal_bench import metrics as M

    k = len(task.labels)
    values = M.f1_per_class(y_true, np.minimum(predicted, k), k)
    return {label: float(v) for label, v in zip(task.labels, values)}


def confusion(task: Task, y_true: np.ndarray, predicted: np.ndarray, columns: tuple[str, ...]) -> dict:
    from fetal_bench import metrics as M

    matrix = M.confusion_matrix(y_true, predicted, len(columns))
    return {"labels": list(task.labels), "predicted_labels": list(columns),
            "matrix": [[int(v) for v in row] for row in matrix[: len(task.labels)]]}


def _label_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive: int | None) -> dict[str, float]:
    """Quick validation scores of predicted labels; macro F1 with every class of the model, as the
    harness reports it, so the best epoch is chosen on the number the harness will report."""
    from fetal_bench import metrics as M

    scores = {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": M.macro_f1(y_true, y_pred, n_classes)}
    if positive is not None:
        scores["f1"] = M.f1(y_true, y_pred, positive) or 0.0  # undefined (no positive at all) counts as 0
    return scores


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _label_names(dataset: datasets.Dataset, column: str, what: str) -> list[str]:
    from datasets import ClassLabel

    feature = dataset.features.get(column)
    if not isinstance(feature, ClassLabel):
        raise DataError(f"The {what} data has no ClassLabel column {column!r} (columns: {dataset.column_names}).",
                        "Pass a dataset built by `fetal-bench datasets build` or `fetal-bench generate`.")
    return list(feature.names)


def _with_targets(dataset: datasets.Dataset, column: str, mapping: dict[str, int], what: str) -> tuple[datasets.Dataset, np.ndarray]:
    """Add the model-space class index; return the dataset and the kept row indices."""
    from datasets import Value

    names = _label_names(dataset, column, what)
    lookup = [mapping.get(name, -1) for name in names]
    # Reads only this column; a missing label (None) maps to -1 and the row is dropped.
    targets = np.array([-1 if value is None else lookup[value] for value in dataset[column]], dtype=np.int64)
    dataset = dataset.add_column(TARGET_COLUMN, targets.tolist(), feature=Value("int64"))
    return dataset, np.flatnonzero(targets >= 0)


class LabelTargets:
    """A classifier's training targets: the training data's classes, less the excluded ones, as
    model-space indices in the in-memory column ``target`` (and, for a classifier trained on
    masks, the task's masks beside them).

    Labels are remapped without rewriting any image bytes; a row whose class is excluded keeps
    no target and is dropped.
    """

    def __init__(self, task: Task, train: datasets.Dataset, *, exclude_labels: Sequence[str] = (),
                 with_masks: bool = False):
        self.task = task
        self.names = _label_names(train, task.label_column, "training")
        excluded = set(exclude_labels)
        unknown = excluded - set(self.names)
        if unknown:
            raise FetalBenchError(f"exclude_labels {sorted(unknown)} are not classes of the training data ({self.names}).",
                                  "Use class names of the training data.")
        self.excluded = excluded
        self.labels = tuple(name for name in self.names if name not in excluded)
        self.mapping = {name: i for i, name in enumerate(self.labels)}
        missing = [label for label in task.labels if label not in self.mapping]
        if missing:
            raise FetalBenchError(f"The training classes {list(self.labels)} do not cover task {task.name!r}'s labels {missing}.",
                                  "Train on data whose classes include the task's labels (or exclude fewer classes).")
        self.mask_column = task.mask_column if with_masks else None
        self.columns = ["id", "image", TARGET_COLUMN] + ([self.mask_column] if with_masks else [])
        # Trained on masks, a classifier's batches carry the masks alone: its frame label is
        # whether the mask has foreground (MaskedLabelObjective).
        self.loader_columns = ({"label_column": None, "mask_column": self.mask_column} if with_masks
                               else {"label_column": TARGET_COLUMN, "mask_column": None})

    def rows(self, dataset: datasets.Dataset, what: str) -> tuple[datasets.Dataset, np.ndarray, np.ndarray]:
        if self.mask_column is not None and self.mask_column not in dataset.column_names:
            raise DataError(f"The {what} data has no {self.mask_column!r} column, which this model learns from.",
                            f"Pass a build of {self.task.dataset.name!r} (it has masks), or another model.")
        dataset, rows = _with_targets(dataset, self.task.label_column, self.mapping, what)
        return dataset, rows, np.asarray(dataset[TARGET_COLUMN])

    def synthetic_rows(self, dataset: datasets.Dataset) -> tuple[datasets.Dataset, np.ndarray, np.ndarray]:
        names = _label_names(dataset, self.task.label_column, "synthetic")
        stray = sorted(set(names) - set(self.mapping) - self.excluded)
        if stray:
            raise FetalBenchError(f"Synthetic classes {stray} are not classes of the real training data ({list(self.labels)}).",
                                  "Generate the synthetic split with the real set's class names.")
        return self.rows(dataset, "synthetic")

    def listed_rows(self, dataset: datasets.Dataset, rows: np.ndarray, name: str) -> np.ndarray:
        """The rows of ``dataset`` named by list ``name``, checked: each listed id present, with its class."""
        from fetal_bench.data.fu_lora_lists import REAL_LISTS, hybrid_real_ids

        if name not in REAL_LISTS:
            raise FetalBenchError(f"Unknown real_list {name!r}.", f"Use one of: {', '.join(REAL_LISTS)}.")
        wanted = hybrid_real_ids()
        ids, labels, kept = dataset["id"], dataset[self.task.label_column], set(rows.tolist())
        found = {}
        for index, row_id in enumerate(ids):
            if row_id in wanted and index in kept:
                if self.names[labels[index]] != wanted[row_id]:
                    raise DataError(f"Row {row_id!r} is {self.names[labels[index]]!r} here but {wanted[row_id]!r} in {name}.",
                                    "Pass a build of fetal-planes-es (FETAL_PLANES_DB's labels).")
                found[row_id] = index
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise DataError(f"{len(missing)} of the {len(wanted)} images of {name} are not in the training split "
                            f"(e.g. {missing[:3]}).",
                            "Train on all official training rows of fetal-planes-es: train_split train+validation.")
        return np.sort(np.fromiter(found.values(), dtype=np.int64))


class LabelObjective:
    """A classifier learning the data's classes: cross-entropy; validated on accuracy, macro F1
    and, for a binary task, the F1 of its positive class."""

    def __init__(self, n_classes: int, positive: int | None):
        self.n_classes, self.positive = n_classes, positive

    def forward(self, model, batch: dict, seed: int):
        return model(batch["pixel_values"])

    def loss(self, logits, batch: dict):
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), batch["labels"])

    def validation_forward(self, model, batch: dict, seed: int) -> tuple:
        return (self.forward(model, batch, seed),)

    def validation_values(self, outputs: tuple, batch: dict) -> dict:
        import torch.nn.functional as F

        logits, labels = outputs[0].float(), batch["labels"]
        return {"loss": F.cross_entropy(logits, labels, reduction="none"), "predicted": logits.argmax(dim=1),
                "truth": labels}

    def validation_scores(self, values: dict) -> dict[str, float]:
        return {"loss": float(values["loss"].mean()),
                **_label_scores(values["truth"].numpy(), values["predicted"].numpy(), self.n_classes, self.positive)}


class MaskedLabelObjective(MaskObjective):
    """A classifier trained on the task's masks (the segmentation route to a frame label):
    the segmentation loss on its mask output, validated on Dice and on its frame labels, whose
    reference is "the mask has foreground" (positive = class 1, how acouslic-iqa defines usable)."""

    def __init__(self, spec, box_jitter: tuple[float, float], n_classes: int):
        super().__init__(spec, box_jitter)
        self.n_classes = n_classes

    def forward(self, model, batch: dict, seed: int):
        return model(batch["pixel_values"], output="mask")

    def validation_forward(self, model, batch: dict, seed: int) -> tuple:
        return self.forward(model, batch, seed), model(batch["pixel_values"])

    def validation_values(self, outputs: tuple, batch: dict) -> dict:
        values = super().validation_values(outputs[:1], batch)
        values["predicted"] = outputs[1].float().argmax(dim=1)
        values["truth"] = (batch["masks"] > 0).flatten(1).any(dim=1).long()
        return values

    def validation_scores(self, values: dict) -> dict[str, float]:
        return {**super().validation_scores(values),
                **_label_scores(values["truth"].numpy(), values["predicted"].numpy(), self.n_classes, 1)}


# --------------------------------------------------------------------------------------------
# the kind
# --------------------------------------------------------------------------------------------


class ClassificationKind(TaskKind):
    name = "classification"
    protocol_scores = ("accuracy", "macro_f1", "auc_ovr_hard", "auc_ovr_macro", "balanced_accuracy")
    predictions_suffix = ".csv"

    def validation_metric(self, task: Task) -> str:
        # The task's main score where validation computes it (F1 of binary tasks, macro F1),
        # else accuracy.
        return task.main_score if task.main_score in ("f1", "macro_f1") else "accuracy"

    # -- evaluation ---------------------------------------------------------------------------

    def ground_truth(self, task: Task, dataset) -> ClassificationTruth:
        return classification_truth(task, dataset)

    def load_submission(self, task: Task, predictions, truth: ClassificationTruth) -> ClassificationSubmission:
        return load_classification_submission(predictions, expected_ids=truth.ids, labels=task.labels,
                                              allowed_extra=task.allowed_extra_labels)

    def write_predictions(self, path, truth: ClassificationTruth, submission: ClassificationSubmission) -> Path:
        return write_classification_predictions(path, truth.ids, submission)

    def statistic(self, task: Task, truth: ClassificationTruth, submission: ClassificationSubmission, metric: str,
                  per_image: dict | None = None) -> Callable[[np.ndarray], float | None]:
        return classification_statistic(task, metric, truth.y_true, submission.predicted, submission.proba)

    def _rows_scorer(self, task: Task, truth: ClassificationTruth, submission: ClassificationSubmission,
                     boot: BootstrapConfig, on_phase, per_image: dict | None = None):
        y_true, predicted, proba = truth.y_true, submission.predicted, submission.proba

        def score_rows(rows: np.ndarray) -> dict:
            return classification_scores(task, y_true[rows], predicted[rows], None if proba is None else proba[rows],
                                         truth.subjects[rows], boot)

        return score_rows

    def _extra_blocks(self, task: Task, truth: ClassificationTruth, submission: ClassificationSubmission) -> dict:
        return {"per_class": {"f1": per_class_f1(task, truth.y_true, submission.predicted)},
                "confusion_matrix": confusion(task, truth.y_true, submission.predicted, submission.columns)}

    # -- running a model ----------------------------------------------------------------------

    def image_outputs(self, model, dataset, *, sizes=None, batch_size: int = 32, num_workers: int = 0,
                      description: str | None = None) -> dict[str, np.ndarray]:
        """Class probabilities (softmax over the model's labels) of every image, keyed by row id."""
        import torch

        from fetal_bench.tasks.inference import logits_batches

        outputs: dict[str, np.ndarray] = {}
        for batch, logits in logits_batches(model, dataset, batch_size=batch_size, num_workers=num_workers,
                                            description=description):
            outputs.update(zip(batch["id"], torch.softmax(logits.float(), dim=1).cpu().numpy()))
        return outputs

    def predict(self, task: Task, model, model_name: str, dataset, truth: ClassificationTruth, *,
                batch_size: int = 32, num_workers: int = 0,
                log: Callable[[str], None] = lambda message: None) -> ClassificationSubmission:
        """Class probabilities of ``model`` over the task's labels (and the allowed extras the
        model has), for the rows of ``truth`` in its order."""
        columns, order = _task_columns(task, model, model_name)
        outputs = self.image_outputs(model, dataset, batch_size=batch_size, num_workers=num_workers,
                                     description=f"{model_name}: predicting")
        proba = np.stack([outputs[row_id] for row_id in truth.ids])[:, order]
        proba = proba / proba.sum(axis=1, keepdims=True)  # columns the task ignores were dropped
        log(f"predicted {len(truth.ids)} rows with {model_name} on {next(model.parameters()).device}")
        return ClassificationSubmission(columns, proba, proba.argmax(axis=1))

    def file_rows(self, model, files: list[Path], outputs: dict[str, np.ndarray], output: Path,
                  ) -> tuple[list[dict[str, Any]], Path | None]:
        """``file, label, score`` and one probability column per class of the model."""
        labels = model.spec.labels
        rows = []
        for index, path in enumerate(files):
            proba = outputs[str(index)]
            best = int(proba.argmax())
            rows.append({"file": str(path), "label": labels[best], "score": float(proba[best]),
                         **{label: float(p) for label, p in zip(labels, proba)}})
        return rows, None

    # -- training -----------------------------------------------------------------------------

    def training_targets(self, task: Task, info: ModelInfo, train, *, exclude_labels=()) -> LabelTargets:
        return LabelTargets(task, train, exclude_labels=exclude_labels, with_masks=info.trains_on_masks)

    def objective(self, task: Task, info: ModelInfo, spec, *, box_jitter: tuple[float, float]):
        if info.trains_on_masks:
            return MaskedLabelObjective(spec, box_jitter, n_classes=len(spec.labels))
        positive = None if task.positive_label is None else list(spec.labels).index(task.positive_label)
        return LabelObjective(len(spec.labels), positive)


def _task_columns(task: Task, model, model_name: str) -> tuple[tuple[str, ...], list[int]]:
    """The submitted columns (the task's labels, then the allowed extras the model has) and
    their indices among the model's labels; an error when the model cannot do the task."""
    model_labels = list(model.spec.labels)
    if model.spec.task_type != "classification":
        raise FetalBenchError(f"Model {model_name!r} is a {model.spec.task_type} model; task {task.name!r} is classification.",
                              "Pick a classifier (`fetal-bench models list`).")
    missing = [label for label in task.labels if label not in model_labels]
    stray = [label for label in model_labels if label not in task.labels and label not in task.allowed_extra_labels]
    if missing or stray:
        fitting = [name for name in _fixed_label_models_for(task) if name != model_name]
        fix = (f"Use --model {' or --model '.join(fitting)}: it predicts this task's labels as published (no training). "
               if fitting else "") + "Or train the model on a label set that covers the task's labels."
        raise FetalBenchError(
            f"Model {model_name!r} predicts {model_labels}; task {task.name!r} scores {list(task.labels)}"
            + (f" (missing {missing})" if missing else "") + (f" (unknown to the task: {stray})" if stray else "") + ".",
            fix)
    columns = tuple(task.labels) + tuple(label for label in task.allowed_extra_labels if label in model_labels)
    return columns, [model_labels.index(label) for label in columns]


def _fixed_label_models_for(task: Task) -> list[str]:
    """Registered models whose label set is part of the model (``fixed_labels``: SonoNet-16's 14
    planes pooled onto FETAL_PLANES' in ``sononet16-planes``) and fits ``task``: what an error
    names when a model's own labels do not. Each is built untrained to read its labels (only on
    that error path; nothing is fetched)."""
    from fetal_bench.models import create_model, list_models

    fitting = []
    for info in list_models(task_type="classification"):
        if not info.fixed_labels:
            continue
        labels = list(create_model(info.name, **info.random_init).spec.labels)
        if all(label in labels for label in task.labels) and \
                all(label in task.labels or label in task.allowed_extra_labels for label in labels):
            fitting.append(info.name)
    return fitting


CLASSIFICATION = ClassificationKind()
