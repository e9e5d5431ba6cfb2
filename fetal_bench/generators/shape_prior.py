"""An ellipse prior for fetal head masks, fitted to real masks; draws for mask-conditioned sampling.

Each real mask is reduced to the ellipse fitted to its boundary, expressed on the square canvas
the generators work on (the image letterboxed: scaled to fit, centred), in units of the canvas
side so the prior does not depend on the resolution:

    z = [cx, cy, log a, log b, cos 2θ, sin 2θ, log s]

``(cx, cy)`` the centre, ``a >= b`` the semi-axes, ``θ`` the angle of ``a`` (as
:class:`fetal_bench.geometry.Ellipse`; doubled because an ellipse turned by π is the same
ellipse), ``s`` the millimetres one canvas side spans (pixel size x the image's longer side).
Per trimester (from the head circumference, see :func:`fetal_bench.generators.training_images.trimester_of`)
the prior is a Gaussian with the sample mean and covariance of ``z``.

A draw for trimester ``t`` samples ``z``, turns it back into an ellipse, and accepts it only if
the ellipse lies inside the canvas and its head circumference (perimeter x mm per pixel) falls
in trimester ``t``; draws use a :class:`numpy.random.Generator` seeded per image, so the mask of
image ``i`` depends only on its seed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import Ellipse, ellipse_perimeter, fit_ellipse, mask_boundary

__all__ = ["draw_ellipse", "ellipse_to_canvas", "fit_prior"]

_PARAMS = ["cx", "cy", "log_a", "log_b", "cos_2theta", "sin_2theta", "log_mm_per_side"]
_MAX_TRIES = 1000


def ellipse_to_canvas(ellipse: Ellipse, height: int, width: int) -> Ellipse:
    """An ellipse of an (H, W) image in canvas-side units after letterboxing to a square."""
    side = float(max(height, width))
    ox, oy = (side - width) / 2.0, (side - height) / 2.0
    return Ellipse((ellipse.cx + 0.5 + ox) / side, (ellipse.cy + 0.5 + oy) / side,
                   ellipse.a / side, ellipse.b / side, ellipse.angle)


def fit_prior(
    masks: Sequence[np.ndarray], pixel_sizes: Sequence[float], trimesters: Sequence[int],
    *, source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the per-trimester Gaussian prior to filled masks (bool (H, W)) and their pixel sizes."""
    by_class: dict[int, list[list[float]]] = {}
    skipped = 0
    for mask, pixel_size, trimester in zip(masks, pixel_sizes, trimesters):
        edge = mask_boundary(mask)
        rows, cols = np.nonzero(edge)
        try:
            fitted = fit_ellipse(cols, rows)
        except ValueError:
            skipped += 1
            continue
        e = ellipse_to_canvas(fitted, *mask.shape)
        mm_per_side = float(pixel_size) * max(mask.shape)
        by_class.setdefault(int(trimester), []).append([
            e.cx, e.cy, math.log(e.a), math.log(e.b), math.cos(2 * e.angle), math.sin(2 * e.angle),
            math.log(mm_per_side),
        ])
    if not by_class:
        raise FetalBenchError("No mask yielded an ellipse: cannot fit a shape prior.",
                              "Use a split with filled head masks (hc18 or the phantom `head` config).")
    classes = {}
    for trimester, rows in sorted(by_class.items()):
        z = np.asarray(rows, dtype=np.float64)
        mean = z.mean(axis=0)
        # One mask gives no spread: use a small isotropic one rather than a point mass.
        cov = np.cov(z, rowvar=False) if len(z) > 1 else np.eye(z.shape[1]) * 1e-4
        classes[str(trimester)] = {"n": int(len(z)), "mean": mean.tolist(), "cov": np.atleast_2d(cov).tolist()}
    return {"parameters": _PARAMS, "units": "canvas side (letterboxed square); s in mm per canvas side",
            "classes": classes, "masks_without_ellipse": skipped, "source": source or {}}


def draw_ellipse(
    prior: dict[str, Any], trimester: int, rng: np.random.Generator, resolution: int, bounds: Sequence[float],
) -> tuple[Ellipse, float]:
    """An ellipse (canvas pixels at ``resolution``) and the mm per pixel, drawn for ``trimester``."""
    from fetal_bench.generators.training_images import trimester_of

    entry = prior["classes"].get(str(trimester))
    if entry is None:
        raise FetalBenchError(
            f"The shape prior has no masks of trimester {trimester + 1}.",
            "Sample only the trimesters the prior was fitted on (see its `classes`), or fit it on more data.",
        )
    mean = np.asarray(entry["mean"], dtype=np.float64)
    cov = np.asarray(entry["cov"], dtype=np.float64) + np.eye(len(mean)) * 1e-10
    # Cholesky of the (symmetrised) covariance; numpy's multivariate_normal uses an SVD whose
    # signs can differ between LAPACK builds.
    cov = (cov + cov.T) / 2
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        chol = v @ np.diag(np.sqrt(np.clip(w, 0, None)))
    side = float(resolution)
    for _ in range(_MAX_TRIES):
        z = mean + chol @ rng.standard_normal(len(mean))
        angle = 0.5 * math.atan2(z[5], z[4])
        a, b = math.exp(z[2]), math.exp(z[3])
        if b > a:
            a, b, angle = b, a, angle + math.pi / 2
        if angle > math.pi / 2:
            angle -= math.pi
        c, s = math.cos(angle), math.sin(angle)
        half_x = math.sqrt((a * c) ** 2 + (b * s) ** 2)
        half_y = math.sqrt((a * s) ** 2 + (b * c) ** 2)
        cx, cy = z[0], z[1]
        if cx - half_x < 0 or cx + half_x > 1 or cy - half_y < 0 or cy + half_y > 1:
            continue
        mm_per_side = math.exp(z[6])
        hc = ellipse_perimeter(a, b) * mm_per_side
        if trimester_of(hc, bounds) != trimester:
            continue
        ellipse = Ellipse(cx * side - 0.5, cy * side - 0.5, a * side, b * side, angle)
        return ellipse, mm_per_side / side
    raise FetalBenchError(
        f"No ellipse of trimester {trimester + 1} inside the image was drawn in {_MAX_TRIES} tries.",
        "The prior does not fit this trimester's bounds; refit it (fit-prior) on data of that trimester.",
    )
