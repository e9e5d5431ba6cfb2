"""Classification metrics as pure numpy functions, one exact definition each.

Conventions shared by every function here:

* ``y_true`` is a 1-D array of class indices in ``[0, n_classes)``.
* ``y_pred`` is a 1-D array of predicted class indices in ``[0, n_classes]``: the extra value
  ``n_classes`` stands for "a class outside the task" (e.g. FU-LoRA's ``Other`` output on the
  four-plane zero-shot task). Such a prediction is always wrong: it is a
  miss for the true class and a false positive of no task class. This is exactly what
  scikit-learn does with a predicted label outside ``labels=range(k)``. The one exception is
  :func:`auc_ovr_hard`, FU-LoRA's AUC, which follows the authors' code: there such a
  prediction is a positive for every class (:func:`auc_ovr_hard_strict` keeps it a miss).
  :func:`confusion_matrix` is the exception: there ``y_pred`` must lie in ``[0, n_classes)``.
* ``proba`` is an ``(n, k)`` array of class probabilities in [0, 1]; rows need not sum to 1
  (the harness checks sums on the submission; a task scored on a subset of a submission's
  columns passes those columns only).

The functions re-implement scikit-learn's definitions in vectorised numpy (the tests check
equality with scikit-learn to 1e-9) because the bootstrap calls them thousands of times and
scikit-learn's per-call input validation would dominate the run time.

The binary metrics (:func:`f1`, :func:`precision`, :func:`recall`, :func:`specificity`,
:func:`auc`) score one ``positive`` class against all others: a sample is a true positive when
both ``y_true`` and ``y_pred`` equal ``positive``. Where a ratio's denominator is zero the metric
is undefined and returns None (scikit-learn's ``zero_division=np.nan``), so that a bootstrap
resample without positives is skipped rather than scored 0.
"""

from __future__ import annotations

import numpy as np

from fetal_bench.metrics._validation import as_labels, as_n_classes, as_proba, same_length

__all__ = [
    "accuracy",
    "auc",
    "auc_ovr_hard",
    "auc_ovr_hard_per_class",
    "auc_ovr_hard_strict",
    "auc_ovr_macro",
    "balanced_accuracy",
    "confusion_matrix",
    "ece",
    "f1",
    "f1_per_class",
    "macro_f1",
    "precision",
    "recall",
    "specificity",
    "weighted_f1",
]


def _labels_and_predictions(y_true: object, y_pred: object, n_classes: object) -> tuple[np.ndarray, np.ndarray, int]:
    k = as_n_classes(n_classes)
    truth = as_labels(y_true, "y_true", upper=k, what=f" (n_classes = {k})")
    predicted = as_labels(
        y_pred, "y_pred", upper=k + 1,
        what=f" (n_classes = {k}; the value {k} is allowed and means 'a class outside the task')",
    )
    same_length(truth, predicted, "y_true", "y_pred")
    return truth, predicted, k


def _counts(truth: np.ndarray, predicted: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, true support and predicted count for each of the k task classes."""
    true_positive = np.bincount(truth[truth == predicted], minlength=k)
    support = np.bincount(truth, minlength=k)
    # Column k (out-of-task predictions) is dropped: it is nobody's false positive.
    predicted_count = np.bincount(predicted, minlength=k + 1)[:k]
    return true_positive, support, predicted_count


def accuracy(y_true: object, y_pred: object) -> float:
    """Fraction of samples whose predicted class equals the true class.

    ``y_pred`` may hold any non-negative class index; one outside the task is simply wrong.
    """
    truth = as_labels(y_true, "y_true")
    predicted = as_labels(y_pred, "y_pred")
    same_length(truth, predicted, "y_true", "y_pred")
    return float(np.mean(truth == predicted))


def balanced_accuracy(y_true: object, y_pred: object, n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``.

    recall_c = TP_c / |{i : y_true_i = c}|; classes absent from ``y_true`` are left out of the
    mean (their recall is undefined), as scikit-learn's ``balanced_accuracy_score`` does.
    """
    truth, predicted, k = _labels_and_predictions(y_true, y_pred, n_classes)
    true_positive, support, _ = _counts(truth, predicted, k)
    present = support > 0
    return float(np.mean(true_positive[present] / support[present]))


def f1_per_class(y_true: object, y_pred: object, n_classes: int) -> np.ndarray:
    """F1 of each class c in ``range(n_classes)``: 2 TP_c / (2 TP_c + FP_c + FN_c).

    A class with no true and no predicted sample (0/0) scores 0, scikit-learn's
    ``zero_division=0`` convention. Returns a float64 array of shape (n_classes,).
    """
    truth, predicted, k = _labels_and_predictions(y_true, y_pred, n_classes)
    return _f1(*_counts(truth, predicted, k))


def _f1(true_positive: np.ndarray, support: np.ndarray, predicted_count: np.ndarray) -> np.ndarray:
    # 2TP + FP + FN = support + predicted count.
    denominator = support + predicted_count
    scores = np.zeros(true_positive.shape, dtype=np.float64)
    np.divide(2.0 * true_positive, denominator, out=scores, where=denominator > 0)
    return scores


def macro_f1(y_true: object, y_pred: object, n_classes: int) -> float:
    """Unweighted mean of :func:`f1_per_class` over all ``n_classes`` task classes.

    Classes absent from both ``y_true`` and ``y_pred`` count as 0 (scikit-learn's
    ``f1_score(average="macro", labels=range(k), zero_division=0)``).
    """
    return float(np.mean(f1_per_class(y_true, y_pred, n_classes)))


def weighted_f1(y_true: object, y_pred: object, n_classes: int) -> float:
    """Mean of :func:`f1_per_class` weighted by each class's number of true samples.

    Classes absent from ``y_true`` have weight 0 (scikit-learn's ``average="weighted"``).
    """
    truth, predicted, k = _labels_and_predictions(y_true, y_pred, n_classes)
    true_positive, support, predicted_count = _counts(truth, predicted, k)
    return float(np.dot(_f1(true_positive, support, predicted_count), support) / support.sum())


def confusion_matrix(y_true: object, y_pred: object, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with true class i and predicted class j, shape (k, k), int64.

    Rows are true classes, columns predictions (scikit-learn's layout). Here both arrays must
    lie in ``[0, n_classes)``; pass the number of submitted columns to keep out-of-task
    predictions visible as extra columns.
    """
    k = as_n_classes(n_classes)
    truth = as_labels(y_true, "y_true", upper=k, what=f" (n_classes = {k})")
    predicted = as_labels(y_pred, "y_pred", upper=k, what=f" (n_classes = {k})")
    same_length(truth, predicted, "y_true", "y_pred")
    return np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)


def _midranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values sharing the mean of their ranks."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts_group = np.empty(ordered.size, dtype=bool)
    starts_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], ordered.size)
    ranks = np.empty(ordered.size, dtype=np.float64)
    # Positions start+1 .. end (1-based) share their mean rank.
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic P(score+ > score-) + P(tie)/2."""
    n_positive = int(positive.sum())
    n_negative = positive.size - n_positive
    rank_sum = _midranks(scores)[positive].sum()
    return float((rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def auc_ovr_macro(y_true: object, proba: object) -> float | None:
    """One-vs-rest ROC AUC, unweighted mean over the scoreable classes.

    For each class c (column c of ``proba``) the binary AUC of ``y_true == c`` against the score
    ``proba[:, c]``; tied scores count one half (the trapezoidal ROC area, as scikit-learn).
    A class is scoreable when it has at least one positive and one negative sample, i.e. it is
    present in ``y_true`` but is not the only class present. Returns None when no class is
    scoreable (a single class present). With every class present this equals scikit-learn's
    ``roc_auc_score(y_true, proba, multi_class="ovr", average="macro")``.
    """
    scores = as_proba(proba)
    truth = as_labels(y_true, "y_true", upper=scores.shape[1], what=f" (proba has {scores.shape[1]} columns)")
    same_length(truth, scores, "y_true", "proba")
    support = np.bincount(truth, minlength=scores.shape[1])
    scoreable = np.flatnonzero((support > 0) & (support < truth.size))
    if scoreable.size == 0:
        return None
    return float(np.mean([_binary_auc(truth == c, scores[:, c]) for c in scoreable]))


def auc_ovr_hard_per_class(y_true: object, y_pred: object, n_classes: int, *,
                           outside: str = "positive") -> np.ndarray:
    """Per-class one-vs-rest ROC AUC of the binarised argmax prediction; NaN where not scoreable.

    For class c, sample i is a predicted positive when ``y_pred_i == c``; with a binary score the
    ROC AUC is (TPR_c + TNR_c) / 2. ``outside`` says what a prediction of a label *not among the
    classes present in* ``y_true`` (``n_classes`` = FU-LoRA's ``Other``, or a task class absent
    from this sample) is:

    * ``"positive"``: a positive for every class. This is FU-LoRA's ``roc_auc_score_multiclass``
      (``Replicate_All_Planes_Classification.ipynb``, github.com/13204942/FU-LoRA at 9b84b6f),
      which binarises each prediction with ``0 if x in other_class else 1``, ``other_class``
      being the true classes other than c.
    * ``"negative"``: a positive for no class (the sample is a miss of its true class only).
    """
    if outside not in ("positive", "negative"):
        raise ValueError(f"outside={outside!r}: use 'positive' or 'negative'.")
    truth, predicted, k = _labels_and_predictions(y_true, y_pred, n_classes)
    true_positive, support, predicted_count = _counts(truth, predicted, k)
    negatives = truth.size - support
    false_positive = predicted_count - true_positive
    if outside == "positive":
        present = np.append(support > 0, False)  # index k: a class outside the task is never present
        is_outside = ~present[predicted]
        outside_of_c = np.bincount(truth[is_outside], minlength=k)  # outside predictions on true c
        true_positive = true_positive + outside_of_c
        false_positive = false_positive + (int(is_outside.sum()) - outside_of_c)
    scoreable = (support > 0) & (negatives > 0)
    result = np.full(k, np.nan)
    tpr = true_positive[scoreable] / support[scoreable]
    tnr = 1.0 - false_positive[scoreable] / negatives[scoreable]
    result[scoreable] = (tpr + tnr) / 2.0
    return result


def _mean_or_none(values: np.ndarray) -> float | None:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else None


def auc_ovr_hard(y_true: object, y_pred: object, n_classes: int) -> float | None:
    """FU-LoRA's AUC, exactly as the authors compute it: one-vs-rest ROC AUC of the binarised
    argmax prediction, unweighted mean over the classes present in ``y_true``.

    A prediction of a label outside the classes present (``n_classes``, e.g. the classifiers'
    ``Other`` output) counts as a positive for **every** class, as in the authors'
    ``roc_auc_score_multiclass`` (see :func:`auc_ovr_hard_per_class`). Classes present but the
    only class present are not scoreable; None when no class is scoreable.
    """
    return _mean_or_none(auc_ovr_hard_per_class(y_true, y_pred, n_classes, outside="positive"))


def auc_ovr_hard_strict(y_true: object, y_pred: object, n_classes: int) -> float | None:
    """As :func:`auc_ovr_hard`, but a prediction outside the task is a positive for **no**
    class (only a miss of the true class): fetal-bench's stricter reading, which does not
    reward an ``Other`` prediction as a hit of every class. Not the paper's definition."""
    return _mean_or_none(auc_ovr_hard_per_class(y_true, y_pred, n_classes, outside="negative"))


def ece(y_true: object, proba: object, n_bins: int = 15) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins on the top-class confidence.

    Confidence of sample i: ``max_c proba[i, c]``; its prediction: the first column holding that
    maximum (``numpy.argmax``); correct when that column equals ``y_true_i`` (a column beyond the
    task's classes is never correct). Bin b covers ``(edges[b], edges[b+1]]`` with
    ``edges = numpy.linspace(0, 1, n_bins + 1)``: a confidence equal to an edge falls in the
    lower bin (Guo et al. 2017's reference code), and a confidence of exactly 0 falls in the
    first bin. ECE = sum over bins of (n_b / n) * |accuracy_b - mean confidence_b|; empty bins
    contribute nothing.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    scores = as_proba(proba)
    truth = as_labels(y_true, "y_true", upper=scores.shape[1], what=f" (proba has {scores.shape[1]} columns)")
    same_length(truth, scores, "y_true", "proba")
    confidence = scores.max(axis=1)
    correct = (scores.argmax(axis=1) == truth).astype(np.float64)
    inner_edges = np.linspace(0.0, 1.0, int(n_bins) + 1)[1:-1]
    # side="left" counts the inner edges strictly below the confidence: right-closed bins.
    bins = np.searchsorted(inner_edges, confidence, side="left")
    gap_per_bin = np.bincount(bins, weights=correct - confidence, minlength=int(n_bins))
    return float(np.abs(gap_per_bin).sum() / truth.size)


def _binary_counts(y_true: object, y_pred: object, positive: int) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of class ``positive`` against the rest."""
    if isinstance(positive, bool) or not isinstance(positive, (int, np.integer)) or positive < 0:
        raise ValueError(f"positive must be a non-negative class index, got {positive!r}")
    truth = as_labels(y_true, "y_true") == positive
    predicted = as_labels(y_pred, "y_pred") == positive
    same_length(truth, predicted, "y_true", "y_pred")
    true_positive = int(np.count_nonzero(truth & predicted))
    false_positive = int(np.count_nonzero(predicted)) - true_positive
    false_negative = int(np.count_nonzero(truth)) - true_positive
    return true_positive, false_positive, false_negative, truth.size - true_positive - false_positive - false_negative


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else numerator / denominator


def f1(y_true: object, y_pred: object, positive: int = 1) -> float | None:
    """F1 of the positive class: 2 TP / (2 TP + FP + FN); None when there is no positive at all
    (neither true nor predicted). scikit-learn's ``f1_score(pos_label=positive)``."""
    tp, fp, fn, _ = _binary_counts(y_true, y_pred, positive)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def precision(y_true: object, y_pred: object, positive: int = 1) -> float | None:
    """Positive predictive value TP / (TP + FP); None when nothing is predicted positive."""
    tp, fp, _, _ = _binary_counts(y_true, y_pred, positive)
    return _ratio(tp, tp + fp)


def recall(y_true: object, y_pred: object, positive: int = 1) -> float | None:
    """Sensitivity TP / (TP + FN); None when no sample is truly positive."""
    tp, _, fn, _ = _binary_counts(y_true, y_pred, positive)
    return _ratio(tp, tp + fn)


def specificity(y_true: object, y_pred: object, positive: int = 1) -> float | None:
    """True negative rate TN / (TN + FP); None when no sample is truly negative."""
    _, fp, _, tn = _binary_counts(y_true, y_pred, positive)
    return _ratio(tn, tn + fp)


def auc(y_true: object, scores: object, positive: int = 1) -> float | None:
    """ROC AUC of a score for the positive class (ties count one half); None when only one of
    positive/negative is present. ``scores`` is 1-D (e.g. the positive class's probability), any
    finite numbers. scikit-learn's ``roc_auc_score(y_true == positive, scores)``."""
    if isinstance(positive, bool) or not isinstance(positive, (int, np.integer)) or positive < 0:
        raise ValueError(f"positive must be a non-negative class index, got {positive!r}")
    values = np.asarray(scores)
    if values.ndim != 1 or values.dtype == bool or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"scores must be a 1-D array of numbers (one score per sample), got shape {values.shape}")
    values = values.astype(np.float64, copy=False)
    if not np.isfinite(values).all():
        raise ValueError("scores holds NaN or infinite values")
    truth = as_labels(y_true, "y_true") == positive
    same_length(truth, values, "y_true", "scores")
    if truth.all() or not truth.any():
        return None
    return _binary_auc(truth, values)
