"""Classification metrics: scikit-learn equality on random inputs, perfect scores, edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from fetal_bench import metrics as M

TOL = 1e-9


def _random_case(seed: int, k: int, n: int, *, absent: bool, out_of_task: bool):
    """Imbalanced labels (Dirichlet class frequencies), optionally a class absent from y_true and
    predictions outside the task (value k); probabilities with ties."""
    rng = np.random.default_rng(seed)
    frequencies = rng.dirichlet(np.full(k, 0.7))
    if absent:
        frequencies[rng.integers(k)] = 0
        frequencies /= frequencies.sum()
    y_true = rng.choice(k, size=n, p=frequencies)
    # Predictions right about 60% of the time, otherwise uniform (over k + 1 values if out_of_task).
    wrong = rng.integers(0, k + 1 if out_of_task else k, size=n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, wrong)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y_true]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba = np.round(proba, 2)  # creates ties, which the AUC must count one half
    proba = np.clip(proba, 0, 1)
    return y_true, y_pred, proba


CASES = [
    (seed, k, absent, out_of_task)
    for seed in range(3)
    for k in range(2, 7)
    for absent, out_of_task in ((False, False), (True, False), (False, True), (True, True))
    if not (absent and k == 2)  # k=2 with one class absent leaves a single class: covered below
]


@pytest.mark.parametrize("seed,k,absent,out_of_task", CASES)
def test_label_metrics_equal_sklearn(seed, k, absent, out_of_task):
    y_true, y_pred, _ = _random_case(seed, k, 60 + 37 * seed, absent=absent, out_of_task=out_of_task)
    labels = list(range(k))
    assert abs(M.accuracy(y_true, y_pred) - skm.accuracy_score(y_true, y_pred)) < TOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about predicted classes absent from y_true
        expected_balanced = skm.balanced_accuracy_score(y_true, y_pred)
    assert abs(M.balanced_accuracy(y_true, y_pred, k) - expected_balanced) < TOL
    per_class = skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose(M.f1_per_class(y_true, y_pred, k), per_class, rtol=0, atol=TOL)
    macro = skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    weighted = skm.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    assert abs(M.macro_f1(y_true, y_pred, k) - macro) < TOL
    assert abs(M.weighted_f1(y_true, y_pred, k) - weighted) < TOL
    if not out_of_task:
        np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred, k),
                                      skm.confusion_matrix(y_true, y_pred, labels=labels))


def _independent_auc(y_true, scores, k):
    """Per-class sklearn roc_auc_score on the scoreable classes, averaged."""
    values = [skm.roc_auc_score(y_true == c, scores[:, c]) for c in range(k)
              if 0 < np.sum(y_true == c) < y_true.size]
    return float(np.mean(values)) if values else None


@pytest.mark.parametrize("seed,k,absent,out_of_task", CASES)
def test_auc_equals_independent_computation(seed, k, absent, out_of_task):
    y_true, y_pred, proba = _random_case(seed, k, 80, absent=absent, out_of_task=out_of_task)
    assert abs(M.auc_ovr_macro(y_true, proba) - _independent_auc(y_true, proba, k)) < TOL
    one_hot = (y_pred[:, None] == np.arange(k)[None, :]).astype(float)
    assert abs(M.classification.auc_ovr_hard_strict(y_true, y_pred, k) - _independent_auc(y_true, one_hot, k)) < TOL
    if set(y_pred.tolist()) <= set(y_true.tolist()):  # every predicted label is a true class: readings agree
        assert abs(M.auc_ovr_hard(y_true, y_pred, k) - _independent_auc(y_true, one_hot, k)) < TOL


@pytest.mark.parametrize("seed,k", [(s, k) for s in range(3) for k in range(2, 7)])
def test_auc_equals_sklearn_multiclass_when_all_classes_present(seed, k):
    rng = np.random.default_rng(100 + seed)
    y_true = np.concatenate([np.arange(k), rng.integers(0, k, 50)])
    proba = rng.dirichlet(np.ones(k), size=y_true.size)
    expected = skm.roc_auc_score(y_true, proba[:, 1]) if k == 2 else \
        skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro")
    if k == 2:
        # Binary: both one-vs-rest AUCs equal the AUC of column 1, so their mean does too.
        expected = (skm.roc_auc_score(y_true == 0, proba[:, 0]) + expected) / 2
    assert abs(M.auc_ovr_macro(y_true, proba) - expected) < TOL


def _independent_ece(y_true, proba, n_bins):
    confidence, predicted = proba.max(axis=1), proba.argmax(axis=1)
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        inside = (confidence > edges[b]) & (confidence <= edges[b + 1])
        if b == 0:
            inside |= confidence == 0
        if inside.any():
            total += inside.sum() / len(y_true) * abs(np.mean(predicted[inside] == y_true[inside]) - confidence[inside].mean())
    return total


@pytest.mark.parametrize("seed,k,n_bins", [(s, k, b) for s in range(3) for k in (2, 4, 6) for b in (1, 10, 15)])
def test_ece_equals_independent_loop(seed, k, n_bins):
    _, _, proba = _random_case(seed, k, 200, absent=False, out_of_task=False)
    y_true = np.random.default_rng(seed).integers(0, k, 200)
    assert abs(M.ece(y_true, proba, n_bins=n_bins) - _independent_ece(y_true, proba, n_bins)) < TOL


def test_perfect_predictions_score_one():
    y = np.array([0, 1, 2, 3, 3, 2, 1, 0, 0])
    proba = np.eye(4)[y]
    assert M.accuracy(y, y) == 1.0
    assert M.balanced_accuracy(y, y, 4) == 1.0
    assert M.macro_f1(y, y, 4) == 1.0
    assert M.weighted_f1(y, y, 4) == 1.0
    np.testing.assert_array_equal(M.f1_per_class(y, y, 4), np.ones(4))
    assert M.auc_ovr_macro(y, proba) == 1.0
    assert M.auc_ovr_hard(y, y, 4) == 1.0
    assert M.ece(y, proba) == 0.0
    np.testing.assert_array_equal(M.confusion_matrix(y, y, 4), np.diag(np.bincount(y)))


def test_out_of_task_prediction_is_a_miss_and_no_false_positive():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 2, 1, 1])  # 2 = "Other", outside the 2-class task
    assert M.accuracy(y_true, y_pred) == 0.75
    np.testing.assert_allclose(M.f1_per_class(y_true, y_pred, 2), [2 / 3, 1.0])
    assert M.balanced_accuracy(y_true, y_pred, 2) == 0.75
    # Strict: class 0 TPR 1/2, TNR 1; class 1 TPR 1, TNR 1. The paper's: "Other" is a positive of
    # both classes, so class 0 TPR 1, TNR 1; class 1 TPR 1, TNR 1/2. Same mean, other parts.
    assert M.classification.auc_ovr_hard_strict(y_true, y_pred, 2) == pytest.approx((0.75 + 1.0) / 2)
    np.testing.assert_allclose(M.classification.auc_ovr_hard_per_class(y_true, y_pred, 2), [1.0, 0.75])
    assert M.auc_ovr_hard(y_true, y_pred, 2) == pytest.approx((1.0 + 0.75) / 2)
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix(y_true, y_pred, 2)
    assert M.confusion_matrix(y_true, y_pred, 3)[0, 2] == 1
    with pytest.raises(ValueError, match="outside"):
        M.macro_f1(y_true, np.array([0, 3, 1, 1]), 2)  # only k itself may stand for "outside"


def test_class_absent_from_subset():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    # Class 2 is neither present nor predicted: F1 0 (zero_division=0), left out of balanced accuracy.
    np.testing.assert_allclose(M.f1_per_class(y_true, y_pred, 3), [2 / 3, 0.8, 0.0])
    assert M.macro_f1(y_true, y_pred, 3) == pytest.approx((2 / 3 + 0.8) / 3)
    assert M.weighted_f1(y_true, y_pred, 3) == pytest.approx((2 / 3 + 0.8) / 2)
    assert M.balanced_accuracy(y_true, y_pred, 3) == pytest.approx(0.75)
    proba = np.array([[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3]])
    # Class 2 is skipped: the mean is over classes 0 and 1 only.
    expected = (skm.roc_auc_score(y_true == 0, proba[:, 0]) + skm.roc_auc_score(y_true == 1, proba[:, 1])) / 2
    assert M.auc_ovr_macro(y_true, proba) == pytest.approx(expected)


def test_single_class_present_gives_no_auc():
    y_true = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    assert M.auc_ovr_macro(y_true, proba) is None
    assert M.auc_ovr_hard(y_true, np.array([1, 0, 1]), 2) is None
    assert M.balanced_accuracy(y_true, np.array([1, 0, 1]), 2) == pytest.approx(2 / 3)


def test_auc_ties_count_one_half():
    y_true = np.array([0, 1, 0, 1])
    proba = np.array([[0.5, 0.5]] * 4)
    assert M.auc_ovr_macro(y_true, proba) == 0.5


def test_ece_edge_ties_fall_in_lower_bin():
    # n_bins=5: edges 0, .2, .4, ...; 0.4 sits on an edge and joins the (0.2, 0.4] bin.
    y_true = np.array([0, 0])
    proba = np.array([[0.4, 0.3, 0.3], [0.3, 0.35, 0.35]])  # first correct at 0.4, second wrong at 0.35
    # Lower bin: |mean correct (1 + 0)/2 - mean confidence (0.4 + 0.35)/2| * 2/2 = 0.125.
    assert M.ece(y_true, proba, n_bins=5) == pytest.approx(0.125)
    # (Were 0.4 in the upper bin: |1 - 0.4| / 2 + |0 - 0.35| / 2 = 0.475.)
    assert np.linspace(0, 1, 6)[2] == 0.4  # the tie is real, not a rounding accident


def test_ece_argmax_ties_take_first_column():
    # [0.5, 0.5] predicts column 0: wrong for class 1 (gap 0.5), right for class 0 (gap 0.5).
    assert M.ece(np.array([1]), np.array([[0.5, 0.5]])) == pytest.approx(0.5)
    assert M.ece(np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]])) == pytest.approx(0.0)


def test_ece_zero_confidence_row():
    # A row of zeros has confidence 0 (first bin) and predicts column 0.
    assert M.ece(np.array([0]), np.array([[0.0, 0.0]])) == 1.0
    assert M.ece(np.array([1]), np.array([[0.0, 0.0]])) == 0.0


def test_ece_extra_columns_are_never_correct():
    y_true = np.array([0, 1])
    proba = np.array([[0.2, 0.1, 0.7], [0.1, 0.8, 0.1]])  # column 2 = an extra class
    assert M.ece(y_true, proba, n_bins=10) == pytest.approx((0.7 + 0.2) / 2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: M.accuracy([0, 1], [0]), "same number"),
        (lambda: M.accuracy([], []), "empty"),
        (lambda: M.accuracy([[0, 1]], [[0, 1]]), "1-D"),
        (lambda: M.accuracy([0, np.nan], [0, 1]), "NaN"),
        (lambda: M.accuracy([0, 1.5], [0, 1]), "non-integer"),
        (lambda: M.accuracy([0, -1], [0, 1]), "negative"),
        (lambda: M.accuracy(["a", "b"], [0, 1]), "dtype"),
        (lambda: M.accuracy([True, False], [0, 1]), "dtype"),
        (lambda: M.macro_f1([0, 3], [0, 1], 3), "outside"),
        (lambda: M.macro_f1([0, 1], [0, 1], 0), "n_classes"),
        (lambda: M.macro_f1([0, 1], [0, 1], 2.0), "n_classes"),
        (lambda: M.balanced_accuracy([0, 1], [0, 5], 2), "outside"),
        (lambda: M.auc_ovr_macro([0, 1], [[0.5, 0.5]]), "same number"),
        (lambda: M.auc_ovr_macro([0, 1], [0.5, 0.5]), "2-D"),
        (lambda: M.auc_ovr_macro([0, 1], [[1.0], [0.0]]), "two class columns"),
        (lambda: M.auc_ovr_macro([0, 2], [[0.5, 0.5], [0.5, 0.5]]), "outside"),
        (lambda: M.auc_ovr_macro([0, 1], [[0.5, np.nan], [0.5, 0.5]]), "NaN"),
        (lambda: M.auc_ovr_macro([0, 1], [[1.5, -0.5], [0.5, 0.5]]), r"outside \[0, 1\]"),
        (lambda: M.ece([0, 1], [[0.5, 0.5], [0.5, 0.5]], n_bins=0), "n_bins"),
        (lambda: M.confusion_matrix([0, 1], [0, 2], 2), "outside"),
    ],
)
def test_invalid_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_integral_float_labels_are_accepted():
    assert M.accuracy(np.array([0.0, 1.0, 2.0]), np.array([0, 1, 1])) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------
# Binary metrics of a positive class (f1, precision, recall, specificity, auc)
# --------------------------------------------------------------------------------------------

BINARY_CASES = [(seed, k, positive) for seed in range(4) for k in (2, 3) for positive in range(k)]


@pytest.mark.parametrize("seed,k,positive", BINARY_CASES)
def test_binary_metrics_equal_sklearn(seed, k, positive):
    rng = np.random.default_rng(500 + seed)
    n = 50 + 31 * seed
    y_true = rng.choice(k, size=n, p=np.r_[0.15, np.full(k - 1, 0.85 / (k - 1))])  # imbalanced, as IQA frames
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, k, n))
    scores = np.round(np.clip(0.5 * (y_true == positive) + rng.normal(0.3, 0.25, n), 0, 1), 2)  # with ties
    truth, predicted = (y_true == positive).astype(int), (y_pred == positive).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {
            "f1": skm.f1_score(truth, predicted, zero_division=np.nan),
            "precision": skm.precision_score(truth, predicted, zero_division=np.nan),
            "recall": skm.recall_score(truth, predicted, zero_division=np.nan),
            "specificity": skm.recall_score(1 - truth, 1 - predicted, zero_division=np.nan),
        }
    for name, value in expected.items():
        assert abs(getattr(M, name)(y_true, y_pred, positive) - value) < TOL, name
    assert abs(M.auc(y_true, scores, positive) - skm.roc_auc_score(truth, scores)) < TOL


def test_binary_metrics_are_undefined_without_their_denominator():
    all_negative = np.zeros(5, dtype=int)
    assert M.f1(all_negative, all_negative) is None  # no positive true or predicted
    assert M.precision(all_negative, all_negative) is None and M.recall(all_negative, all_negative) is None
    assert M.specificity(all_negative, all_negative) == 1.0
    assert M.specificity(np.ones(3, dtype=int), np.array([1, 0, 1])) is None
    assert M.auc(np.ones(3, dtype=int), np.array([0.2, 0.5, 0.9])) is None
    assert M.f1([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="positive"):
        M.f1([0, 1], [0, 1], positive=-1)
    with pytest.raises(ValueError, match="1-D"):
        M.auc([0, 1], np.array([[0.1, 0.9], [0.8, 0.2]]))


# FU-LoRA's notebook (Replicate_All_Planes_Classification.ipynb, 13204942/FU-LoRA at 9b84b6f), cell
# 64: rows true, columns predicted, order (Other, abdomen, brain, femur, thorax); cells 69-70 print
# the per-class AUCs and their mean, 88.76.
_FU_LORA_CONFUSION = np.array([[0, 0, 0, 0, 0], [25, 37, 0, 2, 1], [1, 0, 64, 0, 0],
                               [11, 0, 0, 53, 0], [8, 0, 1, 1, 29]])


def _fu_lora_vectors():
    # Task classes abdomen, brain, femur, thorax = 0..3; "Other" (outside the task) = 4 = k.
    to_task = np.array([4, 0, 1, 2, 3])
    pairs = [(to_task[t], to_task[p]) for t in range(5) for p in range(5) for _ in range(_FU_LORA_CONFUSION[t, p])]
    y_true, y_pred = map(np.array, zip(*pairs))
    return y_true, y_pred


def test_auc_ovr_hard_is_the_papers_number():
    y_true, y_pred = _fu_lora_vectors()
    assert y_true.size == 233
    per_class = M.classification.auc_ovr_hard_per_class(y_true, y_pred, 4)
    np.testing.assert_allclose(per_class, [0.9173992673992675, 0.8660714285714286, 0.8905325443786982,
                                           0.8764208300290774], atol=1e-12)
    value = M.auc_ovr_hard(y_true, y_pred, 4)
    assert f"{value * 100:.2f}" == "88.76"
    # The strict reading (Other is nobody's positive) gives another number.
    strict = M.classification.auc_ovr_hard_strict(y_true, y_pred, 4)
    assert f"{strict * 100:.2f}" == "88.71"


def test_auc_ovr_hard_matches_the_authors_function_on_random_cases():
    # Their roc_auc_score_multiclass, re-stated with scikit-learn: positives of class c are the
    # predictions that are c or any label not among the true classes.
    for seed in range(20):
        y_true, y_pred, _ = _random_case(seed, 5, 80, absent=seed % 2 == 0, out_of_task=True)
        present = set(y_true.tolist())
        if len(present) < 2:
            continue
        expected = np.mean([skm.roc_auc_score(y_true == c, (y_pred == c) | ~np.isin(y_pred, list(present)))
                            for c in sorted(present)])
        assert abs(M.auc_ovr_hard(y_true, y_pred, 5) - expected) < TOL
