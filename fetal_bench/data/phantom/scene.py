"""The scene: echogenicity, attenuation and reflectors on the polar grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fetal_bench.data.phantom.draws import _noise, _uniform
from fetal_bench.data.phantom.fan import _PolarGrid, _binomial_energy, _blur, _upsample


@dataclass(frozen=True)
class _Patient:
    """Traits shared by the images of one simulated patient."""

    fetal_scale: float  # gestational size
    habitus: float  # maternal body habitus: scales attenuation and the abdominal wall
    contrast: float  # how well the patient images (higher: crisper structures)


def _draw_patient(rng: np.random.Generator) -> _Patient:
    return _Patient(
        fetal_scale=_uniform(rng, 0.85, 1.15),
        habitus=_uniform(rng, 0.7, 1.5),
        contrast=_uniform(rng, 0.75, 1.15),
    )


@dataclass(frozen=True)
class _EllipseShape:
    """An ellipse in image px; ``(c, s)`` = (cos, sin) of the ``a`` axis from +x towards +y."""

    cx: float
    cy: float
    a: float
    b: float
    c: float
    s: float

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        """A point given in the ellipse's own frame, in image coordinates."""
        return self.cx + self.c * u - self.s * v, self.cy + self.s * u + self.c * v


@dataclass(frozen=True)
class _Head(_EllipseShape):
    tau: float = 0.0
    pixel_size_mm: float = 1.0


def _ellipse_coords(x: np.ndarray, y: np.ndarray, e: _EllipseShape) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in the ellipse's frame, normalised by the semi-axes (inside: u^2 + v^2 <= 1)."""
    dx, dy = x - e.cx, y - e.cy
    return (e.c * dx + e.s * dy) / e.a, (e.c * dy - e.s * dx) / e.b


def _ellipse_inside(x: np.ndarray, y: np.ndarray, e: _EllipseShape) -> np.ndarray:
    u, v = _ellipse_coords(x, y, e)
    return u * u + v * v <= 1.0


def _ramp(value: np.ndarray, width: float) -> np.ndarray:
    """0 for value <= -width/2, 1 for value >= width/2, linear between: a soft edge."""
    return np.clip(value / width + 0.5, 0.0, 1.0)


_Region = tuple[slice, slice]
_Patch = tuple[_Region, np.ndarray]  # polar-grid window and the coverage (0..1) inside it
_EMPTY: _Region = (slice(0, 0), slice(0, 0))


class _Scene:
    """Echogenicity (backscatter), attenuation and reflectivity sampled on the polar grid.

    Shapes are painted in order, each over the previous ones, as soft-edged coverages. A shape
    is evaluated only in the window of samples its bounding box can reach (for speed); the
    window includes the soft edge, so the result is the same as evaluating everywhere.
    """

    def __init__(self, grid: _PolarGrid, rng: np.random.Generator):
        self.grid = grid
        shape = grid.x.shape
        self.full: _Region = (slice(0, shape[0]), slice(0, shape[1]))
        # Soft tissue with a gentle, smooth inhomogeneity.
        texture = _upsample(_noise(rng, (6, 7)), shape)
        self.echo = (_uniform(rng, 0.45, 0.65) * (1.0 + 0.35 * texture)).astype(np.float32)
        self.attenuation = np.ones(shape, dtype=np.float32)  # relative to soft tissue
        self.reflect = np.zeros(shape, dtype=np.float32)  # fraction reflected per design px travelled

    def paint(
        self,
        patch: _Patch,
        echo: float | np.ndarray,
        *,
        attenuation: float | None = None,
        reflect: float | None = None,
    ) -> None:
        region, coverage = patch
        if coverage.size == 0:
            return
        if isinstance(echo, np.ndarray):
            echo = echo[region]
        keep = 1.0 - coverage
        self.echo[region] = self.echo[region] * keep + coverage * echo
        if attenuation is not None:
            self.attenuation[region] = self.attenuation[region] * keep + coverage * attenuation
        if reflect is not None:
            self.reflect[region] = np.maximum(self.reflect[region], coverage * reflect)

    def window(self, x0: float, x1: float, y0: float, y1: float) -> _Region:
        """The polar samples whose positions can fall in the Cartesian box [x0, x1] x [y0, y1]."""
        g = self.grid
        n_r, n_t = g.x.shape
        if y0 <= g.apex_y:  # reaches above the apex: every beam line may cross it
            return self.full
        corners = [(x - g.apex_x, y - g.apex_y) for x in (x0, x1) for y in (y0, y1)]
        tans = [dx / dy for dx, dy in corners]
        # Nearest point of the box to the apex, and the farthest corner.
        nx = min(max(g.apex_x, x0), x1) - g.apex_x
        ny = min(max(g.apex_y, y0), y1) - g.apex_y
        r_min = math.sqrt(nx * nx + ny * ny)
        r_max = max(math.sqrt(dx * dx + dy * dy) for dx, dy in corners)
        i0 = max(math.floor((r_min - g.r_near) / g.dr) - 1, 0)
        i1 = min(math.ceil((r_max - g.r_near) / g.dr) + 2, n_r)
        j0 = max(math.floor((min(tans) + g.half_tan) / g.dt) - 1, 0)
        j1 = min(math.ceil((max(tans) + g.half_tan) / g.dt) + 2, n_t)
        if i0 >= i1 or j0 >= j1:
            return _EMPTY
        return slice(i0, i1), slice(j0, j1)

    def _ellipse_window(self, e: _EllipseShape, margin: float) -> _Region:
        half_x = math.sqrt(e.a * e.a * e.c * e.c + e.b * e.b * e.s * e.s) + margin
        half_y = math.sqrt(e.a * e.a * e.s * e.s + e.b * e.b * e.c * e.c) + margin
        return self.window(e.cx - half_x, e.cx + half_x, e.cy - half_y, e.cy + half_y)

    # Shapes -----------------------------------------------------------------------------
    def ellipse(self, e: _EllipseShape, edge: float = 1.5) -> _Patch:
        """Coverage of a filled ellipse, soft over ~``edge`` px."""
        region = self._ellipse_window(e, edge + 1.0)
        u, v = _ellipse_coords(self.grid.x[region], self.grid.y[region], e)
        rho = np.sqrt(u * u + v * v)
        return region, _ramp((1.0 - rho) * (0.5 * (e.a + e.b)), edge)

    def rim(self, e: _EllipseShape, thickness: float, *, specular: bool = True) -> _Patch:
        """Coverage of a band just inside an ellipse's outline (a skull-like bone rim).

        With ``specular``, the rim is brightest where the beam hits it head-on and fades where
        the beam grazes it, as bone reflects specularly (the lateral skull "drop-out").
        """
        region = self._ellipse_window(e, 1.0)
        u, v = _ellipse_coords(self.grid.x[region], self.grid.y[region], e)
        rho = np.sqrt(u * u + v * v)
        half = 0.5 * thickness / (0.5 * (e.a + e.b))
        profile = np.clip(1.0 - np.abs(rho - (1.0 - half)) / half, 0.0, 1.0)
        if not specular:
            return region, profile
        # Outward normal in image axes (gradient of u^2 + v^2), against the beam direction.
        nu, nv = u / e.a, v / e.b
        gx, gy = e.c * nu - e.s * nv, e.s * nu + e.c * nv
        dot = gx * self.grid.beam_x[:, region[1]] + gy * self.grid.beam_y[:, region[1]]
        cos2 = dot * dot / (gx * gx + gy * gy + 1e-12)
        return region, profile * (0.2 + 0.8 * cos2)

    def capsule(self, x0: float, y0: float, x1: float, y1: float, radius: float, edge: float = 1.0) -> _Patch:
        """Coverage of a thick segment with round ends (bones, ribs, the falx, vessels)."""
        reach = radius + edge + 1.0
        region = self.window(
            min(x0, x1) - reach, max(x0, x1) + reach, min(y0, y1) - reach, max(y0, y1) + reach
        )
        px, py = self.grid.x[region] - x0, self.grid.y[region] - y0
        sx, sy = x1 - x0, y1 - y0
        length2 = sx * sx + sy * sy
        t = np.clip((px * sx + py * sy) / length2, 0.0, 1.0) if length2 > 0 else 0.0
        qx, qy = px - t * sx, py - t * sy
        return region, _ramp(radius - np.sqrt(qx * qx + qy * qy), edge)

    def disc(self, x: float, y: float, radius: float, edge: float = 1.0) -> _Patch:
        return self.capsule(x, y, x, y, radius, edge)

    def layer(self, depth_from: float, depth_to: float, edge: float) -> _Patch:
        """Coverage of the band of depths (below the skin line) [depth_from, depth_to]."""
        middle, half = 0.5 * (depth_from + depth_to), 0.5 * (depth_to - depth_from)
        return self.full, _ramp(half - np.abs(self.grid.depth - middle), edge)

    # Image formation ---------------------------------------------------------------------
    def render(self, rng: np.random.Generator, patient: _Patient) -> np.ndarray:
        """Beam physics, speckle, compression and scan conversion: the uint8 image."""
        grid, site = self.grid, self.grid.site
        step = grid.dr / grid.unit  # radial step in design px: physics is size-independent
        # Shadowing: what a line's earlier samples reflected never reaches the later ones.
        passed = np.cumprod(1.0 - np.minimum(self.reflect * step, 0.95), axis=0)
        transmission = np.concatenate([np.ones((1, passed.shape[1])), passed[:-1]], axis=0)
        # Attenuation accumulates along the beam (fluid barely attenuates: enhancement behind
        # it); time-gain compensation restores part of the loss with depth.
        path = np.cumsum(self.attenuation * step, axis=0)
        loss = 1.0 + site.attenuation * patient.habitus * path
        tgc = 1.0 + 0.9 * grid.depth / (grid.r_far - grid.r_near)
        envelope_mean = self.echo * transmission * tgc / (loss * loss) + site.noise_floor

        # Speckle: the magnitude of a complex field whose two parts are white noise blurred to
        # the resolution cell (Gaussian by the central limit theorem), so Rayleigh-distributed;
        # normalised analytically (no data-dependent sums) to E|z|^2 = 1.
        shape = grid.x.shape
        energy = 2.0 / 12.0 * _binomial_energy(site.axial_passes) * _binomial_energy(site.lateral_passes)
        parts = []
        for _ in range(2):
            noise = rng.random(shape, dtype=np.float32) - np.float32(0.5)
            parts.append(_blur(_blur(noise, site.axial_passes, 0), site.lateral_passes, 1))
        speckle = np.sqrt((parts[0] * parts[0] + parts[1] * parts[1]) / energy)

        # Square-root compression stands in for the scanner's log compression (exact maths).
        polar = 118.0 * site.gain * np.sqrt(envelope_mean * speckle)
        polar = np.minimum(polar, np.float32(255.0))

        flat_polar = polar.ravel()
        n_t = polar.shape[1]
        base = grid.i0 * n_t + grid.j0
        top = flat_polar[base] * (1.0 - grid.wj) + flat_polar[base + 1] * grid.wj
        bottom = flat_polar[base + n_t] * (1.0 - grid.wj) + flat_polar[base + n_t + 1] * grid.wj
        values = top * (1.0 - grid.wi) + bottom * grid.wi
        image = np.zeros(grid.height * grid.width, dtype=np.uint8)
        image[grid.rows] = np.floor(values + 0.5).astype(np.uint8)
        return image.reshape(grid.height, grid.width)
