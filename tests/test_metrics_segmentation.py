"""Segmentation metrics against a brute-force independent implementation, plus edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from fetal_bench import metrics as M
from fetal_bench.geometry import Ellipse, ellipse_mask

PIXEL_SIZES = (0.07, 0.5, 1.0, 2.3)


def _blob(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A random irregular blob: thresholded smoothed noise, sometimes several pieces, often
    touching the image border."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=rng.uniform(1.5, 4))
    return noise > np.quantile(noise, rng.uniform(0.4, 0.85))


def _ellipse(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    e = Ellipse(cx=rng.uniform(0.3, 0.7) * w, cy=rng.uniform(0.3, 0.7) * h, a=rng.uniform(0.2, 0.45) * w,
                b=rng.uniform(0.15, 0.4) * h, angle=rng.uniform(-1.5, 1.5))
    return ellipse_mask(shape, e)


def _brute_force(pred: np.ndarray, truth: np.ndarray, pixel_size: float) -> tuple[float, float]:
    """HD95 and ASSD from scipy's binary erosion and all pairwise distances (no KD-tree)."""
    edge_p = pred & ~ndimage.binary_erosion(pred, border_value=0)
    edge_t = truth & ~ndimage.binary_erosion(truth, border_value=0)
    d = cdist(np.argwhere(edge_p) * pixel_size, np.argwhere(edge_t) * pixel_size)
    p_to_t, t_to_p = d.min(axis=1), d.min(axis=0)
    hd95 = max(np.percentile(p_to_t, 95), np.percentile(t_to_p, 95))
    assd = (p_to_t.sum() + t_to_p.sum()) / (p_to_t.size + t_to_p.size)
    return hd95, assd


def _pairs():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        shape = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        make = _blob if seed % 2 else _ellipse
        yield seed, make(rng, shape), make(rng, shape), PIXEL_SIZES[seed % len(PIXEL_SIZES)]


@pytest.mark.parametrize("seed,pred,truth,pixel_size", list(_pairs()))
def test_surface_distances_equal_brute_force(seed, pred, truth, pixel_size):
    hd95, assd = _brute_force(pred, truth, pixel_size)
    assert abs(M.hd95_mm(pred, truth, pixel_size) - hd95) < 1e-6
    assert abs(M.assd_mm(pred, truth, pixel_size) - assd) < 1e-6
    # Symmetric by definition.
    assert M.hd95_mm(truth, pred, pixel_size) == pytest.approx(M.hd95_mm(pred, truth, pixel_size), abs=1e-12)


@pytest.mark.parametrize("seed,pred,truth,pixel_size", list(_pairs()))
def test_overlap_equals_independent(seed, pred, truth, pixel_size):
    from sklearn.metrics import f1_score, jaccard_score

    assert abs(M.dice(pred, truth) - f1_score(truth.ravel(), pred.ravel())) < 1e-9
    assert abs(M.iou(pred, truth) - jaccard_score(truth.ravel(), pred.ravel())) < 1e-9


def test_inputs_may_be_0_1_numbers():
    rng = np.random.default_rng(3)
    pred, truth = _ellipse(rng, (40, 50)), _ellipse(rng, (40, 50))
    for dtype in (np.uint8, np.int64, np.float32):
        assert M.dice(pred.astype(dtype), truth.astype(dtype)) == M.dice(pred, truth)
        assert M.hd95_mm(pred.astype(dtype), truth, 0.3) == M.hd95_mm(pred, truth, 0.3)


def test_perfect_prediction_scores_one_and_zero_mm():
    truth = _ellipse(np.random.default_rng(0), (60, 80))
    assert M.dice(truth, truth) == 1.0
    assert M.iou(truth, truth) == 1.0
    assert M.hd95_mm(truth, truth, 0.2) == 0.0
    assert M.assd_mm(truth, truth, 0.2) == 0.0
    hc = M.head_circumference_mm(truth, 0.2)
    assert M.hc_abs_diff_mm(truth, hc, 0.2) == 0.0


def test_both_empty():
    empty = np.zeros((30, 40), dtype=bool)
    assert M.dice(empty, empty) == 1.0
    assert M.iou(empty, empty) == 1.0
    assert M.hd95_mm(empty, empty, 0.5) == 0.0
    assert M.assd_mm(empty, empty, 0.5) == 0.0


@pytest.mark.parametrize("empty_side", ["pred", "truth"])
def test_one_empty_scores_the_image_diagonal(empty_side):
    full = _ellipse(np.random.default_rng(1), (30, 40))
    empty = np.zeros_like(full)
    pred, truth = (empty, full) if empty_side == "pred" else (full, empty)
    assert M.dice(pred, truth) == 0.0
    assert M.iou(pred, truth) == 0.0
    diagonal = math.hypot(30, 40) * 0.5  # 25 mm
    assert M.hd95_mm(pred, truth, 0.5) == pytest.approx(diagonal)
    assert M.assd_mm(pred, truth, 0.5) == pytest.approx(diagonal)
    # The penalty exceeds any distance the image allows.
    assert diagonal > math.hypot(29, 39) * 0.5
    p_to_t, t_to_p = M.surface_distances_mm(pred, truth, 0.5)
    assert p_to_t.size == 0 and t_to_p.size == 0


def test_boundary_uses_4_connectivity_and_image_border_counts_as_background():
    # A full image: every border pixel is a boundary pixel, inner pixels are not.
    full = np.ones((5, 6), dtype=bool)
    single = np.zeros((5, 6), dtype=bool)
    single[2, 3] = True
    p_to_t, t_to_p = M.surface_distances_mm(single, full, 1.0)
    assert p_to_t.tolist() == [2.0]  # (2,3) -> nearest border pixel (4,3) or (2,5): 2 px
    assert t_to_p.size == 2 * 5 + 2 * 6 - 4
    # Diagonal-only background contact does not make a pixel boundary (4-connectivity).
    plus = np.zeros((5, 5), dtype=bool)
    plus[1:4, 1:4] = True
    plus[1, 1] = False  # pixel (2,2) now touches background only diagonally
    p_to_t, _ = M.surface_distances_mm(plus, plus, 1.0)
    assert p_to_t.size == 7  # the 8 filled pixels minus the interior (2,2)


def test_pixel_size_scales_distances_linearly():
    rng = np.random.default_rng(5)
    pred, truth = _blob(rng, (40, 40)), _blob(rng, (40, 40))
    assert M.hd95_mm(pred, truth, 0.25) == pytest.approx(0.25 * M.hd95_mm(pred, truth, 1.0), rel=1e-12)
    assert M.assd_mm(pred, truth, 0.25) == pytest.approx(0.25 * M.assd_mm(pred, truth, 1.0), rel=1e-12)


@pytest.mark.parametrize("a,b,angle,pixel_size", [(200, 150, 0.3, 0.1), (120, 119, 0.0, 0.2), (250, 120, -1.1, 0.07),
                                                    (80, 50, 1.4, 0.5), (300, 220, 0.9, 0.15)])
def test_head_circumference_of_a_rasterised_ellipse(a, b, angle, pixel_size):
    ellipse = Ellipse(cx=401.3, cy=270.6, a=a, b=b, angle=angle)
    mask = ellipse_mask((540, 800), ellipse)
    analytic = ellipse.perimeter * pixel_size
    measured = M.head_circumference_mm(mask, pixel_size)
    assert abs(measured - analytic) / analytic < 0.01
    # Documented bias: boundary pixel centres lie about half a pixel inside the edge.
    assert measured < analytic


def test_head_circumference_ignores_smaller_components():
    ellipse = Ellipse(cx=200, cy=150, a=120, b=90, angle=0.2)
    mask = ellipse_mask((300, 400), ellipse)
    alone = M.head_circumference_mm(mask, 0.1)
    mask[5:20, 370:390] = True  # a speck far from the head
    assert M.head_circumference_mm(mask, 0.1) == alone


@pytest.mark.parametrize("case", ["empty", "tiny", "line"])
def test_head_circumference_none_without_an_ellipse(case):
    mask = np.zeros((50, 60), dtype=bool)
    if case == "tiny":
        mask[10:12, 10:12] = True  # 4 boundary pixels: fewer than the 6 an ellipse needs
    elif case == "line":
        mask[20, 5:50] = True  # collinear boundary points determine no ellipse
    assert M.head_circumference_mm(mask, 0.1) is None
    assert M.hc_abs_diff_mm(mask, 170.0, 0.1) == 170.0


def test_hc_abs_diff_is_absolute_difference():
    mask = ellipse_mask((300, 400), Ellipse(cx=200, cy=150, a=120, b=90, angle=0.2))
    hc = M.head_circumference_mm(mask, 0.1)
    assert M.hc_abs_diff_mm(mask, hc + 3.0, 0.1) == pytest.approx(3.0)
    assert M.hc_abs_diff_mm(mask, hc - 2.0, 0.1) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: M.dice(np.ones((3, 4)), np.ones((4, 3))), "same shape"),
        (lambda: M.dice(np.ones((3, 4, 1)), np.ones((3, 4, 1))), "2-D"),
        (lambda: M.dice(np.full((3, 4), 255), np.ones((3, 4))), "divided by 255"),
        (lambda: M.dice(np.full((3, 4), np.nan), np.ones((3, 4))), "only 0 and 1"),
        (lambda: M.dice(np.full((3, 4), "a"), np.ones((3, 4))), "dtype"),
        (lambda: M.iou(np.zeros((0, 4)), np.zeros((0, 4))), "empty shape"),
        (lambda: M.hd95_mm(np.ones((3, 4)), np.ones((3, 4)), 0), "positive"),
        (lambda: M.hd95_mm(np.ones((3, 4)), np.ones((3, 4)), -1.0), "positive"),
        (lambda: M.assd_mm(np.ones((3, 4)), np.ones((3, 4)), float("nan")), "positive"),
        (lambda: M.assd_mm(np.ones((3, 4)), np.ones((3, 4)), True), "positive"),
        (lambda: M.assd_mm(np.ones((3, 4)), np.ones((3, 4)), "0.1"), "positive"),
        (lambda: M.head_circumference_mm(np.ones((3, 4)), float("inf")), "positive"),
        (lambda: M.hc_abs_diff_mm(np.ones((3, 4)), 0.0, 0.1), "truth_hc_mm"),
        (lambda: M.hc_abs_diff_mm(np.ones((3, 4)), float("nan"), 0.1), "truth_hc_mm"),
    ],
)
def test_invalid_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_numpy_scalar_pixel_size_is_accepted():
    truth = _ellipse(np.random.default_rng(0), (30, 30))
    assert M.hd95_mm(truth, truth, np.float32(0.5)) == 0.0


def test_matches_monai_when_installed():
    """MONAI is a benchmark-only tool: where installed, our surface distances equal its defaults."""
    monai_metrics = pytest.importorskip("monai.metrics", reason="monai is in the dev extra: pip install -e \".[dev]\"")
    import torch

    for seed, pred, truth, pixel_size in list(_pairs())[:6]:
        p, t = torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None]
        hd = monai_metrics.compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=pixel_size)
        asd = monai_metrics.compute_average_surface_distance(p, t, include_background=True, symmetric=True,
                                                             spacing=pixel_size)
        # MONAI returns float32.
        assert M.hd95_mm(pred, truth, pixel_size) == pytest.approx(float(hd), rel=1e-5, abs=1e-5)
        assert M.assd_mm(pred, truth, pixel_size) == pytest.approx(float(asd), rel=1e-5, abs=1e-5)
