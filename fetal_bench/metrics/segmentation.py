"""Segmentation metrics on one binary mask pair at the reference's native resolution.

Masks are 2-D boolean arrays or numeric arrays holding only 0 and 1; ``pred`` and ``truth``
must have the same shape (a prediction at another size is an error, never resized).
``pixel_size_mm`` is the pixel spacing in millimetres: one number for square pixels (HC18's),
or, for the surface distances, a (row, column) pair.

Surface distances follow MONAI's ``compute_hausdorff_distance`` / ``compute_average_surface_distance``
defaults (``distance_metric="euclidean"``, no sub-pixel edges), so that scores are comparable:

* The boundary of a mask is its foreground pixels with at least one 4-connected background
  neighbour, pixels outside the image counting as background (``mask & ~binary_erosion(mask)``
  with the cross structuring element, :func:`fetal_bench.geometry.mask_boundary`).
* The distance from a boundary pixel to the other mask is the Euclidean distance between its
  centre and the nearest boundary-pixel centre of the other mask, rows and columns scaled by
  their pixel sizes.

How they are computed (the same numbers as MONAI's at a fraction of the cost,
benchmarks/bench_metrics.py): both boundaries are found once per pair, on the masks packed 64
pixels to a machine word; a boundary pixel that lies on the other boundary, or next to it along
the finer axis, has its distance by look-up; the others get theirs from an exact
nearest-pixel search over the other mask's boundary pixels, compiled with numba
(:mod:`fetal_bench.metrics._nearest`).
:func:`hd95_and_assd_mm` derives both scores from one such pass.

scipy and numba imports happen inside the functions so that ``import fetal_bench.metrics`` stays cheap.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from fetal_bench.geometry import Ellipse
from fetal_bench.metrics._validation import as_mask, as_positive, same_shape

__all__ = [
    "HC_BAND_GROUP",
    "HC_METRICS",
    "MAX_ELLIPSE_OUTSIDE_FRACTION",
    "SurfaceScores",
    "assd_mm",
    "dice",
    "ellipse_outside_fraction",
    "hc_abs_diff_mm",
    "hc_abs_diff_mm_median",
    "hc_band_labels",
    "hc_bands_of",
    "hc_diff_mm",
    "hc_rel_diff_pct",
    "hc_no_ellipse_rate",
    "hc_scores",
    "hd95_and_assd_mm",
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


class SurfaceScores(NamedTuple):
    """HD95 and ASSD of one mask pair in mm, from one pass over the two boundaries."""

    hd95_mm: float
    assd_mm: float


def _spacing(pixel_size_mm: object) -> tuple[float, float]:
    """(row, column) pixel spacing in mm from one number (square pixels) or a (row, column) pair."""
    if isinstance(pixel_size_mm, (tuple, list)) or (isinstance(pixel_size_mm, np.ndarray) and pixel_size_mm.ndim > 0):
        if len(pixel_size_mm) != 2:
            raise ValueError(f"pixel_size_mm must be one positive number or a (row, column) pair, got "
                             f"{len(pixel_size_mm)} values")
        return as_positive(pixel_size_mm[0], "pixel_size_mm[0]"), as_positive(pixel_size_mm[1], "pixel_size_mm[1]")
    size = as_positive(pixel_size_mm, "pixel_size_mm")
    return size, size


def _packed_pair(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Both masks as bits, p above t: 64 columns per little-endian uint64 word, bit i of word w
    holding column 64 w + i; each mask framed by a zero row above and below, every row followed
    by a zero word.

    Boundaries are then found by shifting whole words (1/8 of the bytes a boolean mask moves),
    for both masks at once; a shift by one row or column reads background beyond the image, as
    the definition wants, and never reaches the other mask.
    """
    height, width = p.shape
    bits = np.zeros((2 * (height + 2), -(-width // 64) + 1), dtype="<u8")
    as_bytes, row_bytes = bits.view(np.uint8), -(-width // 8)
    as_bytes[1:height + 1, :row_bytes] = np.packbits(p, axis=1, bitorder="little")
    as_bytes[height + 3:-1, :row_bytes] = np.packbits(t, axis=1, bitorder="little")
    return bits


def _from_left(bits: np.ndarray) -> np.ndarray:
    """Bit (r, c) of the result is bit (r, c - 1) of ``bits``: the left neighbour's value.

    Shifted as one flat run of words, each word's top bit crossing into the next word: what
    crosses into a row's first word comes from the previous row's zero word (background).
    """
    flat = bits.ravel()
    out = flat << 1
    out[1:] |= flat[:-1] >> 63
    return out.reshape(bits.shape)


def _from_right(bits: np.ndarray) -> np.ndarray:
    """Bit (r, c) of the result is bit (r, c + 1) of ``bits``: the right neighbour's value.

    A row's last real word reads its zero word; what the zero word receives from the next row
    lies beyond the image, where nothing is ever looked up.
    """
    flat = bits.ravel()
    out = flat >> 1
    out[:-1] |= flat[1:] << 63
    return out.reshape(bits.shape)


def _boundary_bits(bits: np.ndarray) -> np.ndarray:
    """Boundary pixels (module docstring) of :func:`_packed_pair` masks, framed the same way:
    foreground whose four neighbours are not all foreground (the frame is background)."""
    inner = bits[1:-1]
    interior = inner & bits[:-2] & bits[2:] & _from_left(inner) & _from_right(inner)
    edge = np.zeros_like(bits)
    edge[1:-1] = inner & ~interior
    return edge


def _near_bits(edge: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """``edge`` grown by one pixel along the finer axis (both for square pixels): the pixels at
    distance 0 or ``min(spacing)`` from it, no other grid offset being that close."""
    near = edge.copy()
    if spacing[0] == min(spacing):
        near[1:] |= edge[:-1]
        near[:-1] |= edge[1:]
    if spacing[1] == min(spacing):
        near |= _from_left(edge) | _from_right(edge)
    return near


class _Boundary(NamedTuple):
    """One mask's boundary in the :func:`_packed_pair` layout: the pair's boundary bits (and
    grown, :func:`_near_bits`), flattened; where this mask's half starts in them; and per
    boundary pixel, in row-major order, its word (counted from its half's start) and bit, and
    its row and column. The same word and bit from the other half's start look the pixel up in
    the other mask."""

    edge: np.ndarray
    near: np.ndarray
    start: int
    word: np.ndarray
    bit: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def found_in(self, other: _Boundary, bits: np.ndarray) -> np.ndarray:
        """Whether each boundary pixel's bit is set in ``bits`` (``other.edge`` or ``other.near``)."""
        return ((bits[other.start + self.word] >> self.bit) & 1).astype(bool)


def _boundaries(p: np.ndarray, t: np.ndarray, spacing: tuple[float, float]) -> tuple[_Boundary, _Boundary]:
    """The boundaries of two non-empty masks, found together in the :func:`_packed_pair` layout."""
    bits = _packed_pair(p, t)
    edge = _boundary_bits(bits)
    flat, near = edge.ravel(), _near_bits(edge, spacing).ravel()
    words = np.flatnonzero(flat != 0)  # (flatnonzero is fastest on booleans)
    # The words holding boundary pixels, unpacked: 64 0/1 flags each, in column order.
    flags = np.flatnonzero(np.unpackbits(flat[words].view(np.uint8), bitorder="little").view(bool))
    word, bit = words[flags >> 6], flags & 63
    rows, word_cols = np.divmod(word, edge.shape[1])
    half = len(edge) // 2 * edge.shape[1]  # where t's words start
    split = int(np.searchsorted(word, half))  # p's pixels come first, in row-major order
    rows[:split] -= 1  # the frame rows above each mask
    rows[split:] -= len(edge) // 2 + 1
    cols = word_cols * 64 + bit
    bit = bit.astype(np.uint64)
    return (_Boundary(flat, near, 0, word[:split], bit[:split], rows[:split], cols[:split]),
            _Boundary(flat, near, half, word[split:] - half, bit[split:], rows[split:], cols[split:]))


def _nearest_mm(query: _Boundary, target: _Boundary, spacing: tuple[float, float]) -> np.ndarray:
    """Distance in mm from each boundary pixel of ``query`` to the nearest of ``target``.

    Looked up in the target's bits first: a query pixel on the target's boundary is at 0, one
    next to it along the finer axis at the finer pixel size. Those are common in a good
    segmentation; the rest go to an exact search over the target's boundary pixels, row by row
    outwards (:mod:`fetal_bench.metrics._nearest`), which beats a dense distance transform of the
    image by an order of magnitude and a k-d tree by about four times here.
    """
    from fetal_bench.metrics._nearest import nearest_distances

    distances = np.where(query.found_in(target, target.edge), 0.0, min(spacing))
    search = ~query.found_in(target, target.near)
    if search.any():
        distances[search] = nearest_distances(query.rows[search], query.cols[search], target.rows, target.cols,
                                              float(spacing[0]), float(spacing[1]))
    return distances


def _directed_distances(p: np.ndarray, t: np.ndarray,
                        spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(p -> t, t -> p) boundary distances in mm of two validated non-empty masks."""
    boundary_p, boundary_t = _boundaries(p, t, spacing)
    return _nearest_mm(boundary_p, boundary_t, spacing), _nearest_mm(boundary_t, boundary_p, spacing)


def _quantile95(values: np.ndarray) -> float:
    """The linearly interpolated 95th percentile (``numpy.quantile``'s default method), by a
    partial sort: np.quantile's generality costs more than the search on small arrays."""
    position = 0.95 * (values.size - 1)
    low = math.floor(position)
    high = min(low + 1, values.size - 1)
    ordered = np.partition(values, (low, high)) if high > low else np.partition(values, low)
    return float(ordered[low] + (position - low) * (ordered[high] - ordered[low]))


def surface_distances_mm(pred: object, truth: object, pixel_size_mm: object) -> tuple[np.ndarray, np.ndarray]:
    """Directed boundary distances in mm: (pred boundary -> truth boundary, truth -> pred).

    Element i of the first array is the distance from the i-th boundary pixel of ``pred`` (in
    row-major order) to the nearest boundary pixel of ``truth``. ``pixel_size_mm`` is one number
    (square pixels) or a (row, column) pair. When either mask is empty both arrays are empty
    (the callers decide what an empty mask scores).
    """
    p, t = _pair(pred, truth)
    spacing = _spacing(pixel_size_mm)
    if not p.any() or not t.any():
        return np.empty(0), np.empty(0)
    return _directed_distances(p, t, spacing)


def _empty_case(has_p: bool, has_t: bool, shape: tuple[int, int], spacing: tuple[float, float]) -> float | None:
    """The score of a pair with an empty mask, or None when both masks have foreground."""
    if has_p and has_t:
        return None
    if not has_p and not has_t:
        return 0.0
    # One mask empty: the distance is unbounded; score the worst case, the diagonal of the field
    # of view (larger than any distance between two pixel centres of the image).
    return math.hypot(shape[0] * spacing[0], shape[1] * spacing[1])


def hd95_and_assd_mm(pred: object, truth: object, pixel_size_mm: object) -> SurfaceScores:
    """:func:`hd95_mm` and :func:`assd_mm` of one pair, each boundary found and searched once.

    The evaluation scores every image with this when a task asks for both; the two functions
    alone each cost about as much as this one.
    """
    p, t = _pair(pred, truth)
    spacing = _spacing(pixel_size_mm)
    special = _empty_case(bool(p.any()), bool(t.any()), p.shape, spacing)
    if special is not None:
        return SurfaceScores(special, special)
    p_to_t, t_to_p = _directed_distances(p, t, spacing)
    hd95 = max(_quantile95(p_to_t), _quantile95(t_to_p))
    assd = (float(p_to_t.sum()) + float(t_to_p.sum())) / (p_to_t.size + t_to_p.size)
    return SurfaceScores(hd95, assd)


def hd95_mm(pred: object, truth: object, pixel_size_mm: object) -> float:
    """95th-percentile symmetric Hausdorff distance between the mask boundaries, in mm.

    ``max(q95(d(P->T)), q95(d(T->P)))``: the larger of the two directed 95th percentiles, each
    the linearly interpolated quantile (``numpy.quantile``'s default, ``torch.quantile``'s too)
    of the distances from one mask's boundary pixels to the other's (module docstring). This is
    MONAI's ``compute_hausdorff_distance(percentile=95)``.

    ``pixel_size_mm``: one number (square pixels) or a (row, column) pair. Both masks empty:
    0.0. One empty: the image diagonal ``hypot(H * row size, W * column size)``, a documented
    worst-case penalty.
    """
    return hd95_and_assd_mm(pred, truth, pixel_size_mm).hd95_mm


def assd_mm(pred: object, truth: object, pixel_size_mm: object) -> float:
    """Average symmetric surface distance in mm.

    ``(sum d(P->T) + sum d(T->P)) / (|∂P| + |∂T|)``: the mean over the boundary pixels of both
    masks of the distance to the other mask's boundary (module docstring), MONAI's
    ``compute_average_surface_distance(symmetric=True)``. Same ``pixel_size_mm`` and empty-mask
    scores as :func:`hd95_mm`: 0.0 when both are empty, the image diagonal in mm when one is.
    """
    return hd95_and_assd_mm(pred, truth, pixel_size_mm).assd_mm


#: A fitted ellipse with more than this share of its area outside the image is no usable
#: ellipse. Every one of HC18's 999 reference ellipses keeps at most 0.74% of its area outside
#: the image (186_HC; tests/test_hc_plausibility.py checks all 999 on the shared copy); a fragmented
#: prediction's boundary can fit an ellipse thousands of times the image, which would make the
#: HC error unbounded (an 11,065,435 mm mean was seen on HC18's test split).
MAX_ELLIPSE_OUTSIDE_FRACTION = 0.05

#: The per-image HC keys :func:`hc_scores` fills: the absolute difference (averaged), the same
#: value (aggregated by the median), whether no usable ellipse was found (averaged: a rate) and
#: the signed difference (averaged: the systematic over- or under-estimate) and the absolute
#: difference as a percentage of the reference (averaged).
HC_METRICS = ("hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate", "hc_diff_mm", "hc_rel_diff_pct")


#: The group a task's ``hc_bands`` fill in its results.
HC_BAND_GROUP = "head_size"


def hc_band_labels(edges: tuple[float, ...]) -> list[str]:
    """The names of the bands that ``edges`` cut reference head circumferences into, smallest
    first: ``(150, 250)`` -> ``["HC < 150 mm", "150-250 mm", "HC >= 250 mm"]``."""
    shown = [f"{edge:g}" for edge in edges]
    if not shown:
        return []
    return ([f"HC < {shown[0]} mm"] + [f"{low}-{high} mm" for low, high in zip(shown, shown[1:])]
            + [f"HC >= {shown[-1]} mm"])


def hc_bands_of(edges: tuple[float, ...], reference_hc_mm) -> list[str]:
    """The band of each reference head circumference (a value on an edge goes to the band above it)."""
    labels = hc_band_labels(edges)
    return [labels[int(i)] for i in np.searchsorted(np.asarray(edges, dtype=np.float64),
                                                      np.asarray(reference_hc_mm, dtype=np.float64), side="right")]


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
    same). ``hc_no_ellipse_rate``: 1.0 without a usable ellipse, else 0.0. ``hc_diff_mm``: the
    signed ``HC(pred) - truth_hc_mm`` (``-truth_hc_mm`` without a usable ellipse, the same 0 mm).
    ``hc_rel_diff_pct``: ``100 |HC(pred) - truth_hc_mm| / truth_hc_mm`` (100 without a usable ellipse).
    """
    truth = as_positive(truth_hc_mm, "truth_hc_mm")
    predicted = head_circumference_mm(pred_mask, pixel_size_mm)
    signed = -truth if predicted is None else predicted - truth
    return {"hc_abs_diff_mm": abs(signed), "hc_abs_diff_mm_median": abs(signed),
            "hc_no_ellipse_rate": 1.0 if predicted is None else 0.0, "hc_diff_mm": signed,
            "hc_rel_diff_pct": 100.0 * abs(signed) / truth}


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


def hc_diff_mm(pred_mask: object, truth_hc_mm: float, pixel_size_mm: float) -> float:
    """The signed HC(pred_mask) - truth_hc_mm in mm, HC as in :func:`head_circumference_mm`;
    ``-truth_hc_mm`` without a usable ellipse. Its mean over images is the systematic bias of a
    method (positive: over-estimates), which the absolute difference hides; neither sign is
    better, so it is never a task's main score."""
    return hc_scores(pred_mask, truth_hc_mm, pixel_size_mm)["hc_diff_mm"]


def hc_rel_diff_pct(pred_mask: object, truth_hc_mm: float, pixel_size_mm: float) -> float:
    """``|HC(pred_mask) - truth_hc_mm|`` as a percentage of ``truth_hc_mm`` (100 without a usable
    ellipse): the HC error relative to head size, which the HC18 report bands compare."""
    return hc_scores(pred_mask, truth_hc_mm, pixel_size_mm)["hc_rel_diff_pct"]


def hc_no_ellipse_rate(pred_mask: object) -> float:
    """The per-image value of the ``hc_no_ellipse_rate`` score: 1.0 when the prediction has no
    usable ellipse (:func:`usable_head_ellipse`), else 0.0; its mean over images is the rate."""
    return 1.0 if usable_head_ellipse(pred_mask) is None else 0.0

