"""Geometry: the fan (convex probe), its polar sample grid and the scan conversion."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from fetal_bench.data.phantom.constants import SITES, _DEFAULT_SIZE, _DESIGN_HEIGHT
from fetal_bench.data.phantom.seeds import _check_size
from fetal_bench.errors import FetalBenchError


@dataclass(frozen=True)
class _Site:
    """A simulated scanner + preset: what differs between acquisition sites."""

    apex_y: float  # probe's virtual apex, above the image (design px)
    r_near: float  # radius of the skin line (top arc of the fan)
    r_far: float  # imaging depth: radius of the bottom arc
    half_tan: float  # tan of the fan's half-angle
    zoom: float  # anatomy scale: a shallower depth setting shows anatomy larger
    gain: float  # overall display gain
    axial_passes: int  # speckle grain along the beam (binomial blur passes)
    lateral_passes: int  # speckle grain across beam lines (lines spread with depth)
    attenuation: float  # tissue attenuation per design px (before time-gain compensation)
    noise_floor: float  # electronic noise: lifts anechoic fluid, lowers contrast


_SITE_PROFILES: tuple[_Site, ...] = (
    _Site(
        apex_y=-36.0,
        r_near=40.0,
        r_far=158.0,
        half_tan=0.58,
        zoom=1.00,
        gain=1.00,
        axial_passes=1,
        lateral_passes=2,
        attenuation=0.0060,
        noise_floor=0.004,
    ),
    _Site(
        apex_y=-30.0,
        r_near=36.0,
        r_far=146.0,
        half_tan=0.52,
        zoom=1.12,
        gain=0.86,
        axial_passes=2,
        lateral_passes=3,
        attenuation=0.0050,
        noise_floor=0.006,
    ),
    _Site(
        apex_y=-40.0,
        r_near=44.0,
        r_far=167.0,
        half_tan=0.64,
        zoom=0.90,
        gain=1.12,
        axial_passes=2,
        lateral_passes=5,
        attenuation=0.0080,
        noise_floor=0.014,
    ),
)


@dataclass(frozen=True)
class _PolarGrid:
    """Beam-line samples of one site's fan at one image size, and how to scan-convert them."""

    height: int
    width: int
    unit: float  # image px per design px
    site: _Site
    apex_x: float
    apex_y: float
    r_near: float
    r_far: float
    half_tan: float
    dr: float  # radial step (image px)
    dt: float  # step in tan(angle) between beam lines
    x: np.ndarray  # (n_r, n_t) Cartesian position of each sample (image px)
    y: np.ndarray
    beam_x: np.ndarray  # (1, n_t) unit beam direction of each line
    beam_y: np.ndarray
    depth: np.ndarray  # (n_r, 1) distance below the skin line (image px)
    fan: np.ndarray  # (H, W) bool: pixel inside the field of view
    px_x: np.ndarray  # (H, W) pixel-centre coordinates
    px_y: np.ndarray
    rows: np.ndarray  # flat pixel indices inside the fan and their bilinear source
    i0: np.ndarray
    j0: np.ndarray
    wi: np.ndarray
    wj: np.ndarray


def _frozen(*arrays: np.ndarray) -> None:
    for array in arrays:
        array.setflags(write=False)


@functools.lru_cache(maxsize=32)
def _polar_grid(site_index: int, height: int, width: int) -> _PolarGrid:
    """The polar sample grid of a site's fan and the bilinear scan-conversion map (cached)."""
    if not isinstance(site_index, (int, np.integer)) or not 0 <= site_index < len(SITES):
        raise FetalBenchError(
            f"Phantom site {site_index!r} is out of range.",
            f"Use an int in 0..{len(SITES) - 1} ({', '.join(SITES)}).",
        )
    site = _SITE_PROFILES[site_index]
    unit = height / _DESIGN_HEIGHT
    apex_x, apex_y = (width - 1) / 2.0, site.apex_y * unit
    r_near, r_far, half_tan = site.r_near * unit, site.r_far * unit, site.half_tan
    # Beam lines are equally spaced in tan(angle) (no trig needed); ~1 sample per pixel.
    n_r = int(math.ceil((r_far - r_near) / 0.9)) + 1
    n_t = int(math.ceil(2.0 * r_far * half_tan / math.sqrt(1.0 + half_tan * half_tan) / 1.0)) + 1
    dr = (r_far - r_near) / (n_r - 1)
    dt = 2.0 * half_tan / (n_t - 1)
    radius = r_near + dr * np.arange(n_r, dtype=np.float64)[:, None]
    tan = -half_tan + dt * np.arange(n_t, dtype=np.float64)[None, :]
    norm = np.sqrt(1.0 + tan * tan)
    beam_x, beam_y = tan / norm, 1.0 / norm
    x = apex_x + radius * beam_x
    y = apex_y + radius * beam_y

    px_y, px_x = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = px_x - apex_x, px_y - apex_y
    r = np.sqrt(dx * dx + dy * dy)
    fan = (dy > 0) & (r >= r_near) & (r <= r_far) & (np.abs(dx) <= half_tan * dy)
    flat = np.flatnonzero(fan.ravel())
    fi = (r.ravel()[flat] - r_near) / dr
    fj = (dx.ravel()[flat] / dy.ravel()[flat] + half_tan) / dt
    # Clipped: a pixel on the fan's edge may land a rounding error outside the sample grid.
    i0 = np.clip(np.floor(fi).astype(np.int64), 0, n_r - 2)
    j0 = np.clip(np.floor(fj).astype(np.int64), 0, n_t - 2)
    wi, wj = np.clip(fi - i0, 0.0, 1.0), np.clip(fj - j0, 0.0, 1.0)
    depth = radius - r_near
    # The per-image work runs in float32 (half the memory traffic; still exact IEEE arithmetic).
    x, y, beam_x, beam_y, depth, wi, wj = (
        v.astype(np.float32) for v in (x, y, beam_x, beam_y, depth, wi, wj)
    )
    _frozen(x, y, beam_x, beam_y, depth, fan, px_x, px_y, flat, i0, j0, wi, wj)
    return _PolarGrid(
        height,
        width,
        unit,
        site,
        apex_x,
        apex_y,
        r_near,
        r_far,
        half_tan,
        dr,
        dt,
        x,
        y,
        beam_x,
        beam_y,
        depth,
        fan,
        px_x,
        px_y,
        flat,
        i0,
        j0,
        wi,
        wj,
    )


def _fan_mask(site: int, size: tuple[int, int] = _DEFAULT_SIZE) -> np.ndarray:
    """(H, W) bool: the pixels inside a site's field of view (everything else is black)."""
    height, width = _check_size(size)
    return _polar_grid(site, height, width).fan.copy()


def _blur(field: np.ndarray, passes: int, axis: int) -> np.ndarray:
    """``passes`` times the [1, 2, 1] / 4 kernel along ``axis`` (0 or 1, edge-replicated).

    Shifted adds rather than scipy so the arithmetic order is fixed (no FMA contraction).
    """
    moved = field if axis == 0 else field.T
    for _ in range(passes):
        padded = np.concatenate([moved[:1], moved, moved[-1:]], axis=0)
        moved = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) * 0.25
    return moved if axis == 0 else moved.T


def _binomial_energy(passes: int) -> float:
    """Sum of squared weights of ``passes`` [1,2,1]/4 blurs: C(4p, 2p) / 16^p."""
    return math.comb(4 * passes, 2 * passes) / 16.0**passes


def _upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a small random field to ``shape`` (smooth low-frequency texture)."""
    ch, cw = coarse.shape
    fi = np.arange(shape[0], dtype=np.float64) * ((ch - 1) / (shape[0] - 1))
    fj = np.arange(shape[1], dtype=np.float64) * ((cw - 1) / (shape[1] - 1))
    i0 = np.minimum(np.floor(fi).astype(np.int64), ch - 2)
    j0 = np.minimum(np.floor(fj).astype(np.int64), cw - 2)
    wi = (fi - i0).astype(np.float32)[:, None]
    wj = (fj - j0).astype(np.float32)[None, :]
    coarse = coarse.astype(np.float32)
    across = coarse[:, j0] * (1.0 - wj) + coarse[:, j0 + 1] * wj  # (ch, W): cheap
    return across[i0] * (1.0 - wi) + across[i0 + 1] * wi
