"""Ellipse geometry shared by the HC18 converter, the phantom set and the HC metrics.

Head circumference in HC18 is defined on an ellipse: the sonographer's annotation is one, and
the challenge measures HC on an ellipse fitted to a predicted head. These helpers fit an
ellipse to points (direct least squares, optionally trimmed of outliers), find sub-pixel
boundary points of a probability map, rasterise an ellipse, and give its perimeter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in pixel coordinates: centre (cx = column, cy = row), semi-axes, rotation.

    ``angle`` is the rotation of the ``a`` axis from the +x (column) axis, in radians.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float

    @property
    def perimeter(self) -> float:
        return ellipse_perimeter(self.a, self.b)

    @property
    def area(self) -> float:
        return math.pi * self.a * self.b


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's second approximation (relative error < 1e-9 for HC18's axis ratios)."""
    h = ((a - b) / (a + b)) ** 2 if a + b > 0 else 0.0
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def scaled_ellipse(ellipse: Ellipse, sx: float, sy: float) -> Ellipse:
    """``ellipse`` after scaling columns by ``sx`` and rows by ``sy`` (an ellipse again: its
    semi-axes are the singular values of diag(sx, sy) @ R(angle) @ diag(a, b))."""
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    m = np.array([[sx * cos * ellipse.a, -sx * sin * ellipse.b], [sy * sin * ellipse.a, sy * cos * ellipse.b]])
    u, s, _ = np.linalg.svd(m)
    return Ellipse(cx=ellipse.cx * sx, cy=ellipse.cy * sy, a=float(s[0]), b=float(s[1]),
                   angle=float(math.atan2(u[1, 0], u[0, 0])))


def fit_ellipse(x: np.ndarray, y: np.ndarray) -> Ellipse:
    """Least-squares ellipse through points (x = column, y = row).

    Direct ellipse-specific fit (Fitzgibbon et al., 1999) in the numerically stable form of
    Halír & Flusser (1998); coordinates are centred and scaled first for conditioning.
    Raises ``ValueError`` when the points do not determine an ellipse.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 6:
        raise ValueError(f"an ellipse fit needs at least 6 points, got {x.size}")
    mx, my = x.mean(), y.mean()
    scale = max(x.std(), y.std(), 1e-12)
    xs, ys = (x - mx) / scale, (y - my) / scale
    d1 = np.column_stack([xs * xs, xs * ys, ys * ys])
    d2 = np.column_stack([xs, ys, np.ones_like(xs)])
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError as error:
        raise ValueError("degenerate points: no ellipse fits them") from error
    m = s1 + s2 @ t
    m = np.array([m[2] / 2, -m[1], m[0] / 2])
    eigenvalues, eigenvectors = np.linalg.eig(m)
    eigenvectors = np.real(eigenvectors)
    condition = 4 * eigenvectors[0] * eigenvectors[2] - eigenvectors[1] ** 2
    candidates = np.flatnonzero(condition > 0)
    if candidates.size == 0:
        raise ValueError("the points do not determine an ellipse")
    a1 = eigenvectors[:, candidates[0]]
    coefficients = np.concatenate([a1, t @ a1])
    return _conic_to_ellipse(coefficients, mx, my, scale)


def _conic_to_ellipse(coefficients: np.ndarray, mx: float, my: float, scale: float) -> Ellipse:
    a, b, c, d, e, f = coefficients
    denominator = b * b - 4 * a * c
    if denominator >= 0:
        raise ValueError("the fitted conic is not an ellipse")
    cx = (2 * c * d - b * e) / denominator
    cy = (2 * a * e - b * d) / denominator
    # Value of the conic at the centre gives the scale of the axes.
    f0 = a * cx * cx + b * cx * cy + c * cy * cy + d * cx + e * cy + f
    matrix = np.array([[a, b / 2], [b / 2, c]])
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    if np.any(eigenvalues * -f0 <= 0):
        raise ValueError("the fitted conic is not a real ellipse")
    axes = np.sqrt(-f0 / eigenvalues)
    major = int(np.argmax(axes))
    direction = eigenvectors[:, major]
    angle = math.atan2(direction[1], direction[0])
    # An axis direction and its opposite are the same ellipse: keep angle in (-pi/2, pi/2].
    if angle <= -math.pi / 2:
        angle += math.pi
    elif angle > math.pi / 2:
        angle -= math.pi
    return Ellipse(
        cx=float(cx * scale + mx),
        cy=float(cy * scale + my),
        a=float(axes[major] * scale),
        b=float(axes[1 - major] * scale),
        angle=float(angle),
    )


def ellipse_distances(ellipse: Ellipse, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance in pixels of points (x = column, y = row) from ``ellipse``, positive outside.

    Sampson's first-order approximation Q / |grad Q| of the implicit form
    Q = (u/a)^2 + (v/b)^2 - 1 in the ellipse's own axes: its relative error grows with the
    distance over the radius of curvature (under 1% for a point 2 pixels off a 200-pixel
    semi-axis), which is ample to tell a leak tens of pixels out from a clean contour, and it
    costs a few array operations for thousands of points.
    """
    dx = np.asarray(x, dtype=np.float64) - ellipse.cx
    dy = np.asarray(y, dtype=np.float64) - ellipse.cy
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    a2, b2 = ellipse.a * ellipse.a, ellipse.b * ellipse.b
    q = u * u / a2 + v * v / b2 - 1.0
    gradient = 2.0 * np.hypot(u / a2, v / b2)
    return q / np.maximum(gradient, 1e-12)


def fit_ellipse_robust(x: np.ndarray, y: np.ndarray, *, min_cutoff: float = 2.0, max_rounds: int = 10,
                       min_inliers: float = 0.5) -> Ellipse:
    """:func:`fit_ellipse` refitted on its inliers: points more than ``max(min_cutoff,
    3 * 1.4826 * MAD)`` pixels from the previous fit are dropped, for at most ``max_rounds`` refits.

    A head mask that leaks into a neighbouring structure adds a bump to its contour that pulls a
    plain least-squares fit outwards (by 10 mm of HC on some HC18 images); those points lie tens
    of pixels off the skull's ellipse while a clean contour's lie within a pixel, so a
    median-based cutoff removes the bump and keeps the skull. ``min_cutoff`` (pixels) keeps a
    clean contour's sub-pixel scatter from being trimmed, and the fit stops trimming rather than
    keep fewer than ``min_inliers`` of the points (then no single ellipse explains them).
    Raises ``ValueError`` as :func:`fit_ellipse` does.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    ellipse = fit_ellipse(x, y)
    keep = np.ones(x.size, dtype=bool)
    for _ in range(max_rounds):
        distance = np.abs(ellipse_distances(ellipse, x, y))
        mad = float(np.median(np.abs(distance - np.median(distance))))
        inliers = distance <= max(min_cutoff, 3 * 1.4826 * mad)
        if np.array_equal(inliers, keep) or inliers.sum() < max(6, min_inliers * x.size):
            break
        keep = inliers
        ellipse = fit_ellipse(x[keep], y[keep])
    return ellipse


def subpixel_boundary_points(probability: np.ndarray, region: np.ndarray,
                             level: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Points (x = column, y = row) where ``probability`` crosses ``level`` on the edge of ``region``.

    For every pair of 4-neighbouring pixels with one in ``region`` and one outside, the crossing
    is linearly interpolated between the two pixel centres (the vertices marching squares would
    place; their order is not needed for an ellipse fit). Where the two values do not straddle
    ``level`` (``region`` was filled or cut, not thresholded) the midpoint, the pixel edge, is
    used. Unlike boundary-pixel centres, which lie half a pixel inside a mask, these points lie
    on the level set itself, so an ellipse through them has no half-pixel inward bias.
    """
    p = np.asarray(probability, dtype=np.float64)
    r = np.asarray(region, dtype=bool)
    if p.shape != r.shape or p.ndim != 2:
        raise ValueError(f"probability {p.shape} and region {r.shape} must be the same 2-D shape")
    xs, ys = [], []
    for axis in (1, 0):
        first = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
        second = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
        rows, cols = np.nonzero(r[first] != r[second])
        p0, p1 = p[first][rows, cols], p[second][rows, cols]
        span = p1 - p0
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(np.abs(span) > 1e-12, (level - p0) / span, 0.5)
        t = np.where((t >= 0) & (t <= 1), t, 0.5)
        xs.append(cols + t if axis == 1 else cols.astype(np.float64))
        ys.append(rows.astype(np.float64) if axis == 1 else rows + t)
    return np.concatenate(xs), np.concatenate(ys)


def ellipse_mask(shape: tuple[int, int], ellipse: Ellipse) -> np.ndarray:
    """Boolean (rows, cols) mask of the pixels whose centres lie inside ``ellipse``."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    dx, dy = cols - ellipse.cx, rows - ellipse.cy
    cos, sin = math.cos(ellipse.angle), math.sin(ellipse.angle)
    u = (dx * cos + dy * sin) / ellipse.a
    v = (-dx * sin + dy * cos) / ellipse.b
    return u * u + v * v <= 1.0


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Boolean boundary of a binary mask: foreground pixels with a 4-connected background neighbour."""
    from scipy.ndimage import binary_erosion

    mask = np.asarray(mask, dtype=bool)
    return mask & ~binary_erosion(mask, border_value=0)
