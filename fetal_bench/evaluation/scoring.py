"""Scores with bootstrap intervals, overall and per group, from aligned truth and predictions.

Intervals resample the bootstrap unit of the task (patients, subjects), never single images:
images of one patient are correlated, and treating them as independent would make intervals
too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from fetal_bench import metrics as M
from fetal_bench.evaluation.results import score_entry
from fetal_bench.tasks.base import LOWER_IS_BETTER, Task

LABELS_ONLY = "the submission gives class labels, not probabilities"


@dataclass
class BootstrapConfig:
    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95


def _classification_statistic(metric: str, y_true, predicted, proba, task_proba, k: int,
                              positive: int | None = None) -> Callable[[np.ndarray], float | None]:
    """A function of row indices that computes ``metric`` on those rows.

    ``positive``: the task's positive class index, for the binary metrics.
    """
    if metric in ("f1", "precision", "recall", "specificity"):
        function = getattr(M, metric)
        return lambda idx: function(y_true[idx], predicted[idx], positive)
    if metric == "auc":
        return lambda idx: M.auc(y_true[idx], task_proba[idx, positive], positive)
    if metric == "accuracy":
        return lambda idx: M.accuracy(y_true[idx], predicted[idx])
    if metric == "balanced_accuracy":
        return lambda idx: M.balanced_accuracy(y_true[idx], predicted[idx], k)
    if metric == "macro_f1":
        return lambda idx: M.macro_f1(y_true[idx], predicted[idx], k)
    if metric == "weighted_f1":
        return lambda idx: M.weighted_f1(y_true[idx], predicted[idx], k)
    if metric == "auc_ovr_hard":
        return lambda idx: M.auc_ovr_hard(y_true[idx], predicted[idx], k)
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


def segmentation_statistic(metric: str, per_image: np.ndarray) -> Callable[[np.ndarray], float | None]:
    """A per-image segmentation metric aggregated over row indices (mean, or median where the metric says)."""
    values = np.asarray(per_image, dtype=np.float64)
    if M.METRICS[metric].aggregate == "median":
        return lambda idx: float(np.median(values[idx]))
    return lambda idx: float(values[idx].mean())


def classification_scores(task: Task, y_true: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
                          subjects: np.ndarray, boot: BootstrapConfig) -> dict:
    """Every task metric with its interval, on the given rows.

    ``predicted`` indexes the submitted columns: the task's labels (0..k-1) and then allowed
    extras (k..), which are never correct. ``proba`` is over all submitted columns or None.
    """
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
            low, high = max(low, spec.value_range[0]), min(high, spec.value_range[1])
        scores[metric] = score_entry(value, (low, high), None if low is not None else "too few subjects for an interval")
    return scores


def per_class_f1(task: Task, y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    k = len(task.labels)
    values = M.f1_per_class(y_true, np.minimum(predicted, k), k)
    return {label: float(v) for label, v in zip(task.labels, values)}


def confusion(task: Task, y_true: np.ndarray, predicted: np.ndarray, columns: tuple[str, ...]) -> dict:
    matrix = M.confusion_matrix(y_true, predicted, len(columns))
    return {"labels": list(task.labels), "predicted_labels": list(columns),
            "matrix": [[int(v) for v in row] for row in matrix[: len(task.labels)]]}


PerImage = dict[str, np.ndarray]


def segmentation_per_image(task: Task, truth_masks, pred_masks, pixel_size_mm, hc_truth) -> PerImage:
    from fetal_bench.metrics.segmentation import HC_METRICS, hc_scores

    values: PerImage = {metric: np.empty(len(truth_masks)) for metric in task.metrics}
    for i, (truth, pred) in enumerate(zip(truth_masks, pred_masks)):
        spacing = float(pixel_size_mm[i])
        hc = None  # one ellipse fit serves every HC metric of the image
        surface = None  # one boundary search serves HD95 and ASSD
        for metric in task.metrics:
            if metric == "dice":
                values[metric][i] = M.dice(pred, truth)
            elif metric == "iou":
                values[metric][i] = M.iou(pred, truth)
            elif metric in ("hd95_mm", "assd_mm"):
                if surface is None:
                    surface = M.hd95_and_assd_mm(pred, truth, spacing)
                values[metric][i] = getattr(surface, metric)
            elif metric in HC_METRICS:
                if hc_truth is not None and hc is None:
                    hc = hc_scores(pred, float(hc_truth[i]), spacing)
                values[metric][i] = np.nan if hc_truth is None else hc[metric]
    return values


def segmentation_scores(task: Task, per_image: PerImage, rows: np.ndarray, subjects: np.ndarray, boot: BootstrapConfig) -> dict:
    scores: dict = {"main_score": task.main_score}
    for metric, values in per_image.items():
        subset = values[rows]
        if np.isnan(subset).any():
            scores[metric] = score_entry(None, reason="the evaluation data has no reference for this metric")
            continue
        if M.METRICS[metric].aggregate == "median":
            low, high = M.bootstrap_ci(lambda idx: float(np.median(subset[idx])), len(subset), clusters=subjects[rows],
                                       n_resamples=boot.n_resamples, seed=boot.seed, confidence=boot.confidence)
            scores[metric] = score_entry(float(np.median(subset)), (low, high))
            continue
        low, high = M.bootstrap_mean_ci(subset, clusters=subjects[rows], n_resamples=boot.n_resamples,
                                        seed=boot.seed, confidence=boot.confidence)
        scores[metric] = score_entry(float(subset.mean()), (low, high))
    return scores


def group_breakdown(task: Task, groups: dict[str, np.ndarray], score_rows: Callable[[np.ndarray], dict],
                    subjects: np.ndarray) -> dict:
    """Scores per value of each grouping column, plus the worst and best group and their gap."""
    out = {}
    for column, values in groups.items():
        entries = {}
        for value in sorted({str(v) for v in values}):
            rows = np.flatnonzero(np.array([str(v) == value for v in values]))
            entries[value] = {"n_samples": int(rows.size), "n_subjects": int(len(set(subjects[rows]))),
                              "scores": score_rows(rows)}
        main = {name: e["scores"][task.main_score]["value"] for name, e in entries.items()
                if e["scores"][task.main_score]["value"] is not None}
        worst = best = gap = None
        if main:
            lower_better = task.main_score in LOWER_IS_BETTER
            ordered = sorted(main, key=lambda name: main[name], reverse=lower_better)
            worst, best = ordered[0], ordered[-1]
            gap = abs(main[best] - main[worst])
        out[column] = {"values": entries, "worst": worst, "best": best, "gap": gap}
    return out
