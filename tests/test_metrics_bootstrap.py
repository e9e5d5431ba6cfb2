"""Bootstrap intervals: coverage of the point estimate, determinism, cluster resampling, fast path."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_bench import metrics as M
from fetal_bench.metrics.bootstrap import MAX_SKIPPED_FRACTION


def _mean_of(values):
    return lambda rows: float(values[rows].mean())


def test_interval_contains_the_point_estimate():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 3, 300))
    point = M.accuracy(y_true, y_pred)
    low, high = M.bootstrap_ci(lambda rows: M.accuracy(y_true[rows], y_pred[rows]), 300, n_resamples=500)
    assert low < point < high
    values = rng.normal(0.9, 0.05, 200)
    low, high = M.bootstrap_mean_ci(values, clusters=np.repeat(np.arange(50), 4))
    assert low < values.mean() < high


def test_deterministic_for_a_seed():
    values = np.random.default_rng(1).random(100)
    clusters = [f"patient-{i % 17}" for i in range(100)]
    first = M.bootstrap_ci(_mean_of(values), 100, clusters=clusters, n_resamples=200, seed=7)
    assert M.bootstrap_ci(_mean_of(values), 100, clusters=clusters, n_resamples=200, seed=7) == first
    assert M.bootstrap_ci(_mean_of(values), 100, clusters=clusters, n_resamples=200, seed=8) != first
    assert M.bootstrap_mean_ci(values, clusters=clusters, seed=3) == M.bootstrap_mean_ci(values, clusters=clusters, seed=3)


def test_narrower_with_more_data():
    rng = np.random.default_rng(2)
    small, large = rng.normal(size=50), rng.normal(size=5000)
    width_small = np.subtract(*M.bootstrap_mean_ci(small)[::-1])
    width_large = np.subtract(*M.bootstrap_mean_ci(large)[::-1])
    assert width_large < width_small / 5  # ~ sqrt(100) = 10 times narrower


def test_cluster_bootstrap_draws_whole_clusters():
    # Clusters of different sizes; every resample must take each drawn cluster's rows together,
    # each as many times as the cluster was drawn, and draw as many clusters as there are.
    sizes = [1, 2, 3, 5, 8]
    clusters = np.repeat(np.array(["a", "b", "c", "d", "e"]), sizes)
    rng = np.random.default_rng(0)
    clusters = clusters[rng.permutation(clusters.size)]  # rows of a cluster need not be adjacent
    seen = []

    def statistic(rows):
        seen.append(rows.copy())
        return float(rows.size)

    M.bootstrap_ci(statistic, clusters.size, clusters=clusters, n_resamples=300)
    assert len(seen) == 300
    for rows in seen:
        multiplicity = np.bincount(rows, minlength=clusters.size)
        draws = 0
        for key, size in zip("abcde", sizes):
            members = multiplicity[clusters == key]
            assert np.all(members == members[0]), "a cluster was split"
            draws += members[0]
        assert draws == len(sizes)


def test_cluster_bootstrap_contrived_means():
    # Two patients, one with ten perfect images, one with ten failures: resample means can only be
    # 0, 0.5 or 1 (whole patients), while an image bootstrap would give many other values.
    values = np.r_[np.ones(10), np.zeros(10)]
    clusters = ["p1"] * 10 + ["p2"] * 10
    means = []
    M.bootstrap_ci(lambda rows: means.append(values[rows].mean()) or values[rows].mean(), 20,
                   clusters=clusters, n_resamples=200)
    assert set(np.round(means, 12)) <= {0.0, 0.5, 1.0}
    assert M.bootstrap_mean_ci(values, clusters=clusters) == (0.0, 1.0)
    low, high = M.bootstrap_mean_ci(values)
    assert 0.2 < low < 0.5 < high < 0.8


@pytest.mark.parametrize("with_clusters", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_equals_generic_path_for_means(with_clusters, seed):
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 1.5, 157)
    clusters = rng.integers(0, 40, 157) if with_clusters else None
    generic = M.bootstrap_ci(_mean_of(values), values.size, clusters=clusters, n_resamples=400, seed=seed)
    fast = M.bootstrap_mean_ci(values, clusters=clusters, n_resamples=400, seed=seed)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=1e-12)


def test_row_order_does_not_change_the_interval():
    rng = np.random.default_rng(4)
    values = rng.random(60)
    clusters = rng.integers(0, 12, 60)
    order = rng.permutation(60)
    np.testing.assert_allclose(M.bootstrap_mean_ci(values, clusters=clusters),
                               M.bootstrap_mean_ci(values[order], clusters=clusters[order]), atol=1e-12)


def test_not_computable_resamples_are_skipped_up_to_the_limit():
    values = np.arange(50, dtype=float)
    counter = {"calls": 0}

    def sometimes_none(fraction):
        def statistic(rows):
            counter["calls"] += 1
            return None if counter["calls"] % round(1 / fraction) == 0 else float(values[rows].mean())
        return statistic

    counter["calls"] = 0
    assert M.bootstrap_ci(sometimes_none(0.05), 50, n_resamples=400)[0] is not None  # 5% skipped: fine
    counter["calls"] = 0
    assert M.bootstrap_ci(sometimes_none(0.25), 50, n_resamples=400) == (None, None)  # 25%: too many
    assert M.bootstrap_ci(lambda rows: float("nan"), 50, n_resamples=50) == (None, None)  # NaN counts as None
    assert MAX_SKIPPED_FRACTION == 0.10


def test_auc_bootstrap_with_rare_class_gives_an_interval_or_none():
    # Realistic use: the AUC is None on resamples holding a single class.
    y_true = np.r_[np.zeros(30, int), [1]]
    proba = np.c_[np.linspace(0.9, 0.1, 31), np.linspace(0.1, 0.9, 31)]
    result = M.bootstrap_ci(lambda rows: M.auc_ovr_macro(y_true[rows], proba[rows]), 31, n_resamples=300)
    # P(the single positive is never drawn) = (30/31)^31 ~ 36% > 10%: no interval.
    assert result == (None, None)


def test_fewer_than_two_clusters_gives_no_interval():
    values = np.random.default_rng(0).random(10)
    assert M.bootstrap_mean_ci(values, clusters=["only"] * 10) == (None, None)
    assert M.bootstrap_ci(_mean_of(values), 10, clusters=["only"] * 10) == (None, None)
    assert M.bootstrap_mean_ci(values[:1]) == (None, None)


def test_confidence_level_widens_the_interval():
    values = np.random.default_rng(0).normal(size=200)
    low90, high90 = M.bootstrap_mean_ci(values, confidence=0.90)
    low99, high99 = M.bootstrap_mean_ci(values, confidence=0.99)
    assert low99 < low90 < high90 < high99


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: M.bootstrap_ci(lambda r: 0.0, 3, clusters=["a", "b"]), "one key per sample"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 2, clusters=["a", None]), "missing key"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 2, clusters=[1.0, float("nan")]), "missing key"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 2, clusters=[[1], [2]]), "hashable"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 0), "positive integer"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 5, n_resamples=0), "n_resamples"),
        (lambda: M.bootstrap_ci(lambda r: 0.0, 5, confidence=1.0), "confidence"),
        (lambda: M.bootstrap_ci("mean", 5), "callable"),
        (lambda: M.bootstrap_mean_ci([]), "non-empty"),
        (lambda: M.bootstrap_mean_ci([1.0, np.nan]), "NaN"),
        (lambda: M.bootstrap_mean_ci(np.ones((2, 2))), "1-D"),
        (lambda: M.bootstrap_mean_ci([1.0, 2.0], confidence=0), "confidence"),
    ],
)
def test_invalid_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_evaluation_scores_each_image_once_and_resamples_only_the_scores(phantom, tmp_path, monkeypatch):
    """The bootstrap must resample per-image scores, never recompute a segmentation metric.

    Every segmentation metric validates its mask pair once per call (``_pair``; the HC metrics
    through ``hc_scores``), so counting those calls counts metric evaluations. The counts must
    not grow with the number of resamples (here x10): one call per metric and image, HD95 and
    ASSD sharing one.
    """
    from datasets import load_dataset
    from PIL import Image

    import fetal_bench.metrics.segmentation as segmentation
    from fetal_bench.evaluation import evaluate

    test = load_dataset(str(phantom), "head", split="test")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, (row_id, mask) in enumerate(zip(test["id"], test["mask"])):
        mask = np.asarray(mask) > 0
        if i % 2:  # off by a few pixels, so that surface distances are not all zero
            mask = np.roll(mask, 2 + i % 3, axis=1)
        Image.fromarray(mask.astype(np.uint8)).save(masks / f"{row_id}.png")

    def counted(name):
        original = getattr(segmentation, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)
        return wrapper

    for name in ("_pair", "hc_scores"):
        monkeypatch.setattr(segmentation, name, counted(name))
    seen = {}
    for n_resamples in (20, 200):
        calls = {"_pair": 0, "hc_scores": 0}
        result = evaluate("phantom-head-seg", predictions=masks, data=phantom, n_resamples=n_resamples)
        seen[n_resamples] = dict(calls)
    n_images = len(test)
    assert seen[20] == seen[200]
    # Once per image each: dice, iou and both surface distances (one hd95_and_assd_mm call).
    assert seen[20] == {"_pair": 3 * n_images, "hc_scores": n_images}
    assert result["scores"]["hd95_mm"]["ci95"][0] < result["scores"]["hd95_mm"]["ci95"][1]
