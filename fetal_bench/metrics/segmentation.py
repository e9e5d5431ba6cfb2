"""Segmentation metrics on one binary mask pair at the reference's native resolution.

Masks are 2-D boolean arrays or numeric arrays holding only 0 and 1; ``pred`` and ``truth``
must have the same shape (a prediction at another size is an error, never resized).
``pixel_size_mm`` is the isotropic pixel spacing in millimetres.

Surface distances follow MONAI's ``compute_hausdorff_distance`` / ``compute_average_surface_distance``
defaults (``distance_metric="euclidean"``, no sub-pixel edges), so that scores are comparable:

* The boundary of a mask is its foreground pixels with at least one 4-connected background
  neighbour, pixels outside the image counting as background (``mask & ~binary_erosion(mask)``
  with the cross structuring element, :func:`fetal_bench.geometry.mask_boundary`).
* The distance from a boundary pixel to the other mask is the Euclidean distance between its
  centre and the nearest boundary-pixel centre of the other mask, times ``pixel_size_mm``.

scipy imports happen inside the functions so that ``import fetal_bench.metrics`` stays cheap.
"""

from __future__ import annotations

import math

import numpy as np

from fetal_bench.geometry import Ellipse
from fetal_bench.metrics._validation import as_mask, as_positive, same_shape

__all__ = [
    "HC_METRICS",
    "MAX_ELLIPSE_OUTSIDE_FRACTION",
    "assd_mm",
    "dice",
    "ellipse_outside_fraction",
    "hc_abs_diff_mm",
    "hc_abs_diff_mm_median",
    "hc_no_ellipse_rate",
    "hc_scores",
    "hd95_mm",
    "head_circumference_mm",
    "head_ellipse",
    "iou",
    "surface_distances_mm",
    "usable_head_ellipse",
]


def _pair(pred: object, truth: object) -> tuple[np.ndarray, np.ndarray]:
    p = as_mask(pred, "pred")
    t = as_mask(truth, "truth")
    same_shape(p, t, "pred", "truth")
    return p, t


def dice(pred: object, truth: object) -> float:
    """Dice coefficient 2|P ∩ T| / (|P| + |T|) over foreground pixels.

    Both masks empty: 1.0 (the prediction is exactly right). One empty: 0.0.
    """
    p, t = _pair(pred, truth)
    total = np.count_nonzero(p) + np.count_nonzero(t)
    if total == 0:
        return 1.0
    return 2.0 * np.count_nonzero(p & t) / total


def iou(pred: object, truth: object) -> float:
    """Intersection over union |P ∩ T| / |P ∪ T| (Jaccard index).

    Both masks empty: 1.0. One empty: 0.0.
    """
    p, t = _pair(pred, truth)
    union = np.count_nonzero(p | t)
    if union == 0:
        return 1.0
    return np.count_nonzero(p & t) / union


def _boundary_coordinates(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) coordinates of the boundary pixels of p and of t, as float64 arrays (m, 2).

    Works on the bounding box of p | t padded by one background pixel: outside it everything is
    background, so the boundaries are those of the full image, at a fraction of the cost.
    """
    union = p | t
    rows = np.flatnonzero(union.any(axis=1))
    cols = np.flatnonzero(union.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out = []
    for mask in (p, t):
        padded = np.pad(mask[r0:r1, c0:c1], 1)
        centre = padded[1:-1, 1:-1]
        # Interior = the pixel and its four neighbours are foreground (erosion by the cross).
        interior = centre & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        coordinates = np.argwhere(centre & ~interior).astype(np.float64)
        coordinates += (r0, c0)
        out.append(coordinates)
    return out[0], out[1]


def surface_distances_mm(pred: object, truth: object, pixel_size_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Directed boundary distances in mm: (pred boundary -> truth boundary, truth -> pred).

    Element i of the first array is the distance from the i-th boundary pixel of ``pred`` (in
    row-major order) to the nearest boundary pixel of ``truth``. When either mask is empty
    both arrays are empty (the callers decide what an empty mask scores).
    """
    from scipy.spatial import cKDTree

    p, t = _pair(pred, truth)
    spacing = as_positive(pixel_size_mm, "pixel_size_mm")
    if not p.any() or not t.any():
        return np.empty(0), np.empty(0)
    boundary_p, boundary_t = _boundary_coordinates(p, t)
    boundary_p *= spacing
    boundary_t *= spacing
    # Exact nearest neighbours between the (sparse) boundary pixels: faster than a dense
    # distance transform of the image (benchmarks/bench_metrics.py), and the same numbers.
    p_to_t = cKDTree(boundary_t).query(boundary_p, k=1)[0]
    t_to_p = cKDTree(boundary_p).query(boundary_t, k=1)[0]
    return p_to_t, t_to_p


def _empty_case(p: np.ndarray, t: np.ndarray, spacing: float) -> float | None:
    """The score of an empty mask pair, or None when both masks have foreground."""
    has_p, has_t = bool(p.any()), bool(t.any())
    if has_p and has_t:
        return None
    if not has_p and not has_t:
        return 0.0
    # One mask empty: the distance is unbounded; score the worst case, the diagonal of the field
    # of view (larger than any distance between two pixel centres of the image).
    return math.hypot(p.shape[0], p.shape[1]) * spacing


def hd95_mm(pred: object, truth: object, pixel_size_mm: float) -> float:
    """95th-percentile symmetric Hausdorff distance between the mask boundaries, in mm.

    ``max(q95(d(P->T)), q95(d(T->P)))``: the larger of the two directed 95th percentiles, each
    the linearly interpolated quantile (``numpy.quantile``'s default, ``torch.quantile``'s too)
    of the distances from one mask's boundary pixels to the other's (module docstring). This is
    MONAI's ``compute_hausdorff_distance(percentile=95)``.

    Both masks empty: 0.0. One empty: the image diagonal ``hypot(H, W) * pixel_size_mm``, a
    documented worst-case penalty.
    """
    p, t = _pair(pred, truth)
    spacing = as_positive(pixel_size_mm, "pixel_size_mm")
    special = _empty_case(p, t, spacing)
    if special is not None:
        return special
    p_to_t, t_to_p = surface_distances_mm(p, t, spacing)
    return float(max(np.quantile(p_to_t, 0.95), np.quantile(t_to_p, 0.95)))


def assd_mm(pred: object, truth: object, pixel_size_mm: float) -> float:
    """Average symmetric surface distance in mm.

    ``(sum d(P->T) + sum d(T->P)) / (|∂P| + |∂T|)``: the mean over the boundary pixels of both
    masks of the distance to the other mask's boundary (module docstring), MONAI's
    ``compute_average_surface_distance(symmetric=True)``. Same empty-mask scores as
    :func:`hd95_mm`: 0.0 when both are empty, the image diagonal in mm when one is.
    """
    p, t = _pair(pred, truth)
    spacing = as_positive(pixel_size_mm, "pixel_size_mm")
    special = _empty_case(p, t, spacing)
    if special is not None:
        return special
    p_to_t, t_to_p = surface_distances_mm(p, t, spacing)
    return float((p_to_t.sum() + t_to_p.sum()) / (p_to_t.size + t_to_p.size))


#: A fitted ellipse with more than this share of its area outside the image is no usable
#: ellipse. Every one of HC18's 999 reference ellipses keeps at most 0.74% of its area outside
#: the image (186_HC; tests/test_hc_plausibility.py checks all 999 on the shared copy); a fragmented
#: prediction's boundary can fit an ellipse thousands of times the image, which would make the
#: HC error unbounded (an 11,065,435 mm mean was seen on HC18's test split).
MAX_ELLIPSE_OUTSIDE_FRACTION = 0.05

#: The per-image HC keys :func:`hc_scores` fills: the absolute difference (averaged), the same
#: value (aggregated by the median) and whether no usable ellipse was found (averaged: a rate).
HC_METRICS = ("hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate")


def head_ellipse(mask: object) -> Ellipse | None:
    """The least-squares ellipse through the boundary of the mask's largest component, or None.

    1. The largest 8-connected foreground component (ties: the first in row-major order).
    2. Its boundary pixels (4-connected background neighbour, :func:`fetal_bench.geometry.mask_boundary`).
    3. The direct least-squares ellipse through their centres (:func:`fetal_bench.geometry.fit_ellipse`).

    None when there is no ellipse: an empty mask, fewer than 6 boundary pixels, points that
    determine no ellipse, or non-finite parameters. No plausibility check: see
    :func:`usable_head_ellipse`.
    """
    from scipy import ndimage

    from fetal_bench.geometry import fit_ellipse, mask_boundary

    m = as_mask(mask, "mask")
    if not m.any():
        return None
    components, count = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        m = components == int(np.argmax(sizes))
    rows, cols = np.nonzero(mask_boundary(m))
    if rows.size < 6:
        return None
    try:
        ellipse = fit_ellipse(cols, rows)
    except ValueError:
        return None
    values = (ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, ellipse.angle)
    if not all(math.isfinite(v) for v in values) or ellipse.b <= 0:
        return None
    return ellipse


def ellipse_outside_fraction(ellipse: Ellipse, shape: tuple[int, int]) -> float:
    """Share of the ellipse's analytic area whose pixels fall outside an image of ``shape``.

    Counted on the window of the image the ellipse's bounding box covers, so a huge ellipse
    costs no more than the image. Pixel counting makes it a little negative for small ellipses
    that lie inside (clipped to 0).
    """
    from fetal_bench.geometry import ellipse_mask

    height, width = shape
    area = ellipse.area
    if not math.isfinite(area) or area <= 0:
        return 1.0
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    half_w = math.hypot(ellipse.a * cos, ellipse.b * sin)
    half_h = math.hypot(ellipse.a * sin, ellipse.b * cos)
    c0, c1 = max(0, math.floor(ellipse.cx - half_w)), min(width, math.ceil(ellipse.cx + half_w) + 1)
    r0, r1 = max(0, math.floor(ellipse.cy - half_h)), min(height, math.ceil(ellipse.cy + half_h) + 1)
    if c0 >= c1 or r0 >= r1:
        return 1.0
    window = Ellipse(ellipse.cx - c0, ellipse.cy - r0, ellipse.a, ellipse.b, ellipse.angle)
    inside = float(np.count_nonzero(ellipse_mask((r1 - r0, c1 - c0), window)))
    return float(min(1.0, max(0.0, 1.0 - inside / area)))


def usable_head_ellipse(mask: object) -> Ellipse | None:
    """:func:`head_ellipse`, or None when it is implausible: more than
    :data:`MAX_ELLIPSE_OUTSIDE_FRACTION` of its area lies outside the image."""
    m = as_mask(mask, "mask")
    ellipse = head_ellipse(m)
    if ellipse is None or ellipse_outside_fraction(ellipse, m.shape) > MAX_ELLIPSE_OUTSIDE_FRACTION:
        return None
    return ellipse


def head_circumference_mm(mask: object, pixel_size_mm: float) -> float | None:
    """Head circumference in mm of the usable ellipse of the mask (:func:`usable_head_ellipse`).

    The ellipse's perimeter (Ramanujan's second approximation) times ``pixel_size_mm``.

    Returns None when there is no usable ellipse: an empty mask, fewer than 6 boundary pixels,
    points that determine no ellipse, or an ellipse with more than
    :data:`MAX_ELLIPSE_OUTSIDE_FRACTION` of its area outside the image. Because boundary pixel
    centres lie half a pixel inside the mask's edge, a rasterised ellipse measures about pi
    pixels short of its analytic perimeter; HC18's reference masks include the drawn outline,
    so there a perfect mask measures about 0.5 mm above the reference HC (docs/metrics.md).
    """
    spacing = as_positive(pixel_size_mm, "pixel_size_mm")
    ellipse = usable_head_ellipse(mask)
    if ellipse is None:
        return None
    perimeter = ellipse.perimeter * spacing
    return perimeter if math.isfinite(perimeter) and perimeter > 0 else None


def hc_scores(pred_mask: object, truth_hc_mm: float, pixel_size_mm: float) -> dict[str, float]:
    """The per-image values of :data:`HC_METRICS` for one prediction.

    ``hc_abs_diff_mm`` and ``hc_abs_diff_mm_median``: ``|HC(pred) - truth_hc_mm|``, HC as in
    :func:`head_circumference_mm`; without a usable ellipse the prediction is taken to measure
    0 mm, so the value is ``truth_hc_mm`` (finite: an empty mask and an absurd ellipse cost the
    same). ``hc_no_ellipse_rate``: 1.0 without a usable ellipse, else 0.0.
    """
    truth = as_positive(truth_hc_mm, "truth_hc_mm")
    predicted = head_circumference_mm(pred_mask, pixel_size_mm)
    difference = truth if predicted is None else abs(predicted - truth)
    return {"hc_abs_diff_mm": difference, "hc_abs_diff_mm_median": difference,
            "hc_no_ellipse_rate": 1.0 if predicted is None else 0.0}


def hc_abs_diff_mm(pred_mask: object, truth_hc_mm: float, pixel_size_mm: float) -> float:
    """|HC(pred_mask) - truth_hc_mm| in mm, HC as in :func:`head_circumference_mm`.

    When the prediction has no usable ellipse (empty or degenerate mask, or an ellipse mostly
    outside the image) the score is ``truth_hc_mm``: the prediction is taken to measure 0 mm, a
    finite penalty as large as that of any prediction up to twice the true circumference.
    """
    return hc_scores(pred_mask, truth_hc_mm, pixel_size_mm)["hc_abs_diff_mm"]


def hc_abs_diff_mm_median(pred_mask: object, truth_hc_mm: float, pixel_size_mm: float) -> float:
    """The per-image value of the ``hc_abs_diff_mm_median`` score: the same as
    :func:`hc_abs_diff_mm`; the score is its median over images, not its mean."""
    return hc_scores(pred_mask, truth_hc_mm, pixel_size_mm)["hc_abs_diff_mm_median"]


def hc_no_ellipse_rate(pred_mask: object) -> float:
    """The per-image value of the ``hc_no_ellipse_rate`` score: 1.0 when the prediction has no
    usable ellipse (:func:`usable_head_ellipse`), else 0.0; its mean over images is the rate."""
    return 1.0 if usable_head_ellipse(pred_mask) is None else 0.0

