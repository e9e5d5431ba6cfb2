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


def _brute_force_distances(pred: np.ndarray, truth: np.ndarray, pixel_size) -> tuple[np.ndarray, np.ndarray]:
    """Directed boundary distances from scipy's binary erosion and all pairwise distances (no
    KD-tree, no crop, no look-ups); ``pixel_size`` a number or a (row, column) pair."""
    scale = np.broadcast_to(np.asarray(pixel_size, dtype=float), (2,))
    edge_p = pred & ~ndimage.binary_erosion(pred, border_value=0)
    edge_t = truth & ~ndimage.binary_erosion(truth, border_value=0)
    d = cdist(np.argwhere(edge_p) * scale, np.argwhere(edge_t) * scale)
    return d.min(axis=1), d.min(axis=0)


def _brute_force(pred: np.ndarray, truth: np.ndarray, pixel_size) -> tuple[float, float]:
    """HD95 and ASSD of two non-empty masks from :func:`_brute_force_distances`."""
    p_to_t, t_to_p = _brute_force_distances(pred, truth, pixel_size)
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


def _sparse(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Scattered single pixels and short runs: many one-pixel components, several on the frame."""
    mask = rng.random(shape) < rng.uniform(0.005, 0.05)
    mask[rng.integers(0, shape[0]), :: max(1, shape[1] // 5)] = True
    mask[:, 0] |= rng.random(shape[0]) < 0.2
    return mask


def _edge_hugging(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A blob cut by the frame on two or more sides (the frame counts as background)."""
    mask = _blob(rng, shape)
    mask[: rng.integers(1, 4)] = True
    mask[:, -int(rng.integers(1, 4)):] |= rng.random() < 0.7
    return mask


_MAKERS = {"blob": _blob, "ellipse": _ellipse, "sparse": _sparse, "edge": _edge_hugging}
_SPACINGS = (0.3, (0.1, 0.37), (2.0, 0.5), (1.0, 1.0), np.array([0.07, 0.07]), (0.25, 0.2500001))


def _random_pairs():
    """Random pairs of every kind, shape (one-pixel-wide images; widths at and around multiples
    of 64, where the packed rows change words) and spacing."""
    shapes = ((1, 40), (37, 1), (2, 2), (3, 50), (45, 61), (70, 64), (20, 65), (33, 128), (120, 90), (180, 260))
    kinds = list(_MAKERS)
    for seed in range(70):
        rng = np.random.default_rng(1000 + seed)
        shape = shapes[seed % len(shapes)]
        pred = _MAKERS[kinds[seed % 4]](rng, shape)
        truth = _MAKERS[kinds[(seed // 4) % 4]](rng, shape)
        if not pred.any():
            pred.flat[rng.integers(pred.size)] = True
        if not truth.any():
            truth.flat[rng.integers(truth.size)] = True
        yield pytest.param(pred, truth, _SPACINGS[seed % len(_SPACINGS)], id=f"{seed}-{shape[0]}x{shape[1]}")


@pytest.mark.parametrize("pred,truth,pixel_size", list(_random_pairs()))
def test_every_directed_distance_equals_brute_force(pred, truth, pixel_size):
    expected_p, expected_t = _brute_force_distances(pred, truth, pixel_size)
    p_to_t, t_to_p = M.surface_distances_mm(pred, truth, pixel_size)
    # Element by element, in row-major order of the boundary pixels.
    np.testing.assert_allclose(p_to_t, expected_p, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t_to_p, expected_t, rtol=0, atol=1e-9)
    hd95, assd = _brute_force(pred, truth, pixel_size)
    scores = M.hd95_and_assd_mm(pred, truth, pixel_size)
    assert scores == pytest.approx((hd95, assd), rel=0, abs=1e-9)
    assert (M.hd95_mm(pred, truth, pixel_size), M.assd_mm(pred, truth, pixel_size)) == tuple(scores)
    # Symmetric exactly: the same two distance sets, whichever mask is the prediction.
    assert tuple(M.hd95_and_assd_mm(truth, pred, pixel_size)) == tuple(scores)


def _pixels(shape, *points):
    mask = np.zeros(shape, dtype=bool)
    for point in points:
        mask[point] = True
    return mask


def test_known_distances_between_single_pixels():
    a, b = _pixels((8, 9), (2, 3)), _pixels((8, 9), (5, 7))
    assert M.hd95_and_assd_mm(a, b, 1.0) == (5.0, 5.0)  # a 3-4-5 triangle
    assert M.hd95_and_assd_mm(a, b, 0.5) == (2.5, 2.5)
    # Anisotropic: 3 rows of 0.5 mm and 4 columns of 2 mm.
    assert M.hd95_and_assd_mm(a, b, (0.5, 2.0)) == pytest.approx((math.hypot(1.5, 8.0),) * 2, abs=1e-12)
    assert M.hd95_and_assd_mm(a, a, (0.5, 2.0)) == (0.0, 0.0)


def test_known_percentile_and_mean_on_a_line_and_a_pixel():
    line, corner = np.zeros((3, 10), dtype=bool), _pixels((3, 10), (0, 0))
    line[0] = True  # ten boundary pixels at 0, 1, ..., 9 columns from the corner
    # q95 of 0..9 interpolates at 0.95 * 9 = 8.55; the pixel is on the line (0 the other way).
    # ASSD: (0 + 1 + ... + 9 + 0) / (10 + 1) = 45 / 11.
    assert M.hd95_and_assd_mm(line, corner, 0.5) == pytest.approx((8.55 * 0.5, 45 / 11 * 0.5), abs=1e-12)
    assert M.hd95_and_assd_mm(line, corner, (7.0, 0.5)) == pytest.approx((4.275, 45 / 22), abs=1e-12)
    assert M.hd95_and_assd_mm(line.T, corner.T, (0.2, 9.0)) == pytest.approx((0.2 * 8.55, 0.2 * 45 / 11), abs=1e-12)


def test_known_distances_between_two_squares():
    # Two 4x4 squares, the second two columns to the right: 12 boundary pixels each. From the
    # first: its left column (4 pixels) is 2 columns from the second's, its middle pixels of the
    # top and bottom rows (2 + 2) are 1 column away, the rest (4) lie on the second's boundary.
    first, second = np.zeros((8, 10), dtype=bool), np.zeros((8, 10), dtype=bool)
    first[2:6, 2:6] = True
    second[2:6, 4:8] = True
    p_to_t, t_to_p = M.surface_distances_mm(first, second, 1.0)
    assert sorted(p_to_t) == [0.0] * 4 + [1.0] * 4 + [2.0] * 4
    assert sorted(t_to_p) == sorted(p_to_t)
    # q95 of that sorted list interpolates between its last two values (both 2); mean 12/12.
    assert M.hd95_and_assd_mm(first, second, 0.25) == (0.5, 0.25)


def test_coarse_axis_neighbour_is_not_taken_for_the_fine_spacing():
    # With 0.5 mm rows and 2 mm columns the pixel beside it is 2 mm away; two rows down is 1 mm.
    query = _pixels((9, 9), (5, 5))
    assert M.hd95_mm(query, _pixels((9, 9), (5, 6)), (0.5, 2.0)) == 2.0
    assert M.hd95_mm(query, _pixels((9, 9), (4, 5)), (0.5, 2.0)) == 0.5
    two = _pixels((9, 9), (5, 6), (7, 5))
    assert M.surface_distances_mm(query, two, (0.5, 2.0))[0] == pytest.approx([1.0], abs=1e-12)
    assert M.surface_distances_mm(query, two, (2.0, 0.5))[0] == pytest.approx([0.5], abs=1e-12)


def test_frame_edge_pixels_are_boundary():
    # A mask that fills the image's top rows: its top row lies on the frame, so it is boundary.
    top = np.zeros((6, 5), dtype=bool)
    top[:2] = True
    p_to_t, _ = M.surface_distances_mm(top, top, 1.0)
    assert p_to_t.size == 10 and not p_to_t.any()
    inner = _pixels((6, 5), (4, 2))
    p_to_t, t_to_p = M.surface_distances_mm(inner, top, 1.0)
    assert p_to_t.tolist() == [3.0]  # (4,2) -> (1,2): the bottom row of the mask
    assert t_to_p.tolist() == [math.hypot(4, 2), math.hypot(4, 1), 4.0, math.hypot(4, 1), math.hypot(4, 2)] + \
        [math.hypot(3, 2), math.hypot(3, 1), 3.0, math.hypot(3, 1), math.hypot(3, 2)]


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


def test_one_empty_with_anisotropic_pixels_scores_the_physical_diagonal():
    full, empty = _ellipse(np.random.default_rng(1), (30, 40)), np.zeros((30, 40), dtype=bool)
    assert M.hd95_and_assd_mm(full, empty, (0.5, 0.25)) == (math.hypot(15, 10),) * 2
    assert M.hd95_and_assd_mm(empty, empty, (0.5, 0.25)) == (0.0, 0.0)


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
        (lambda: M.hd95_mm(np.ones((3, 4)), np.ones((3, 4)), (0.1, 0.2, 0.3)), "pair"),
        (lambda: M.hd95_mm(np.ones((3, 4)), np.ones((3, 4)), []), "pair"),
        (lambda: M.hd95_and_assd_mm(np.ones((3, 4)), np.ones((3, 4)), (0.1, -0.2)), r"pixel_size_mm\[1\]"),
        (lambda: M.hd95_and_assd_mm(np.ones((3, 4)), np.ones((3, 4)), (float("nan"), 0.2)), r"pixel_size_mm\[0\]"),
        (lambda: M.surface_distances_mm(np.ones((3, 4)), np.ones((3, 4)), ("0.1", 0.2)), "positive"),
        (lambda: M.hd95_and_assd_mm(np.ones((3, 4)), np.ones((4, 4)), 0.1), "same shape"),
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

    anisotropic = [(param.values[0], param.values[1], param.values[2]) for param in list(_random_pairs())[:14]
                   if not np.isscalar(param.values[2])]
    assert len(anisotropic) >= 8
    for pred, truth, pixel_size in [(pred, truth, px) for _, pred, truth, px in list(_pairs())[:6]] + anisotropic:
        p, t = torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None]
        hd = monai_metrics.compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=pixel_size)
        asd = monai_metrics.compute_average_surface_distance(p, t, include_background=True, symmetric=True,
                                                             spacing=pixel_size)
        # MONAI returns float32.
        assert M.hd95_mm(pred, truth, pixel_size) == pytest.approx(float(hd), rel=1e-5, abs=1e-5)
        assert M.assd_mm(pred, truth, pixel_size) == pytest.approx(float(asd), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name,pixel_size", [("000_HC", 0.069135804), ("010_HC", 0.079935165)])
def test_real_hc18_heads_equal_brute_force(shared_data, name, pixel_size):
    """Full-size HC18 reference masks against a shifted, eroded copy with a false-positive speck."""
    from PIL import Image

    outline = np.asarray(Image.open(shared_data / "hc18" / "training_set" / f"{name}_Annotation.png")) > 127
    truth = ndimage.binary_fill_holes(outline)
    pred = np.roll(ndimage.binary_erosion(truth, iterations=3), (4, -7), axis=(0, 1))
    pred[10:14, 20:25] = True
    p_to_t, t_to_p = M.surface_distances_mm(pred, truth, pixel_size)
    expected_p, expected_t = _brute_force_distances(pred, truth, pixel_size)
    np.testing.assert_allclose(p_to_t, expected_p, rtol=0, atol=1e-9)
    np.testing.assert_allclose(t_to_p, expected_t, rtol=0, atol=1e-9)
    assert M.hd95_and_assd_mm(pred, truth, pixel_size) == pytest.approx(_brute_force(pred, truth, pixel_size),
                                                                      rel=0, abs=1e-9)
