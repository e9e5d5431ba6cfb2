"""Ellipse geometry shared by the HC18 converter, the phantom set and the HC metrics.

Head circumference in HC18 is defined on an ellipse: the sonographer's annotation is one, and
the challenge measures HC on an ellipse fitted to a predicted head. These helpers fit an
ellipse to points (direct least squares), rasterise one, and give its perimeter.
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
