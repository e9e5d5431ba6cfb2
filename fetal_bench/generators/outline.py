"""From a generated outline channel to a filled head mask, or a counted rejection.

The paper's method makes the diffusion model draw the skull outline in the blue channel; its
authors then corrected the masks by hand. Here the correction is a rule: fit an ellipse to the
outline pixels (:func:`fetal_bench.geometry.fit_ellipse`, as HC18 defines HC on an ellipse), and
accept it only if it is plausible as a fetal head outline; otherwise the sample is rejected
with a reason, and the reasons are counted in the synthetic split's card.

The checks, in order (thresholds in ``postprocess`` of ``configs/mask_guided.yaml``):

``no_outline``       fewer than ``min_outline_pixels`` pixels above ``outline_threshold``
``blob``             more than ``max_outline_fraction`` of the image is "outline"
``fit_failed``       the points determine no ellipse
``size``             semi-minor axis < ``min_axis`` or semi-major axis > ``max_axis`` (x side)
``aspect``           b / a < ``min_aspect`` (heads are roughly 0.7-0.9)
``outside``          more than ``max_outside`` of the filled ellipse lies outside the image
``poor_support``     fewer than ``min_support`` of the outline pixels lie within
                     ``fit_tolerance`` x side of the ellipse (a scribble, two heads, clutter)
``low_coverage``     the pixels near the ellipse cover fewer than ``min_coverage`` of 36
                     angular sectors (an arc, not a closed skull)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from fetal_bench.geometry import Ellipse, ellipse_mask, fit_ellipse

__all__ = ["REJECTION_REASONS", "OutlineResult", "ellipse_from_outline"]

REJECTION_REASONS = (
    "no_outline", "blob", "fit_failed", "size", "aspect", "outside", "poor_support", "low_coverage",
)
_SECTORS = 36


@dataclass(frozen=True)
class OutlineResult:
    ellipse: Ellipse | None
    reason: str | None  # None when accepted
    support: float | None = None
    coverage: float | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


def _frame(ellipse: Ellipse, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates in the ellipse's frame, scaled so the ellipse is the unit circle."""
    c, s = math.cos(ellipse.angle), math.sin(ellipse.angle)
    dx, dy = x - ellipse.cx, y - ellipse.cy
    return (dx * c + dy * s) / ellipse.a, (-dx * s + dy * c) / ellipse.b


def ellipse_from_outline(outline: np.ndarray, params: Mapping[str, Any]) -> OutlineResult:
    """Fit and vet an ellipse on a boolean outline image (H, W); see the module docstring."""
    height, width = outline.shape
    side = float(max(height, width))
    rows, cols = np.nonzero(outline)
    n = rows.size
    if n < int(params["min_outline_pixels"]):
        return OutlineResult(None, "no_outline")
    if n > float(params["max_outline_fraction"]) * height * width:
        return OutlineResult(None, "blob")
    x, y = cols.astype(np.float64), rows.astype(np.float64)
    try:
        ellipse = fit_ellipse(x, y)
    except ValueError:
        return OutlineResult(None, "fit_failed")
    if not all(math.isfinite(v) for v in (ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, ellipse.angle)):
        return OutlineResult(None, "fit_failed")
    if ellipse.b < float(params["min_axis"]) * side or ellipse.a > float(params["max_axis"]) * side:
        return OutlineResult(ellipse, "size")
    if ellipse.b / ellipse.a < float(params["min_aspect"]):
        return OutlineResult(ellipse, "aspect")
    inside = float(ellipse_mask((height, width), ellipse).sum())
    if 1.0 - inside / max(ellipse.area, 1e-9) > float(params["max_outside"]):
        return OutlineResult(ellipse, "outside")
    u, v = _frame(ellipse, x, y)
    radius = np.sqrt(u * u + v * v)
    # |r - 1| times the mean radius approximates the distance to the ellipse for the near-circular
    # shapes that pass the aspect check.
    near = np.abs(radius - 1.0) * math.sqrt(ellipse.a * ellipse.b) <= float(params["fit_tolerance"]) * side
    support = float(near.mean())
    if support < float(params["min_support"]):
        return OutlineResult(ellipse, "poor_support", support=support)
    sectors = np.floor((np.arctan2(v[near], u[near]) + math.pi) / (2 * math.pi) * _SECTORS).astype(int)
    coverage = len(set(np.clip(sectors, 0, _SECTORS - 1).tolist())) / _SECTORS
    if coverage < float(params["min_coverage"]):
        return OutlineResult(ellipse, "low_coverage", support=support, coverage=coverage)
    return OutlineResult(ellipse, None, support=support, coverage=coverage)
