"""The embedded ``phantom`` dataset: SIMULATED ultrasound-like images. This is NOT clinical data.

Every image here is drawn by this module from random numbers; no patient, scanner or clinical
image was involved, and no clinical conclusion may be drawn from anything trained or scored on
it. The set exists so that every fetal-bench command (build, train, evaluate, generate, the
leaderboard) runs anywhere, in seconds, with no download.

Two configs:

``planes``
    Four plane-like classes (:data:`PLANE_CLASSES`), four images per simulated patient (one per
    class, as in a screening session), each patient scanned at one of three simulated sites
    (:data:`SITES`) whose "scanner" differs in gain, speckle size, attenuation, imaging depth and
    field of view, so per-site breakdowns have something to show.
``head``
    HC18-like head images with the filled skull ellipse as the mask, a pixel size, and the
    head circumference: the perimeter of the mask ellipse (Ramanujan's second approximation,
    :func:`fetal_bench.geometry.ellipse_perimeter`) times the pixel size.

How an image is made, imitating the physics just enough to look and behave like B-mode:
an echogenicity map of anatomy-like shapes is sampled along the beam lines of a convex probe
(a polar grid); along each line, bright reflectors cast acoustic shadows (cumulative
transmission) and tissue attenuates with depth, partly compensated by time-gain; a complex
Gaussian field, blurred a little to give speckle its grain, supplies Rayleigh-distributed
multiplicative speckle; the envelope is compressed (square root), scan-converted to the
Cartesian image, and everything outside the fan-shaped field of view is black.

Determinism: an image depends only on (seed, config, split, index). Its pixels are computed
from ``numpy.random.Generator.random`` draws only (PCG64 + SeedSequence, whose streams numpy
keeps stable) with IEEE-exact operations only (+, -, *, /, sqrt, floor, comparisons; no exp,
log, sin or cos, whose last bit differs between maths libraries), and PNGs are written by
:func:`_png_bytes` with uncompressed deflate blocks, because zlib/zlib-ng do not promise the
same compressed bytes across versions and platforms. So the same bytes come out on every run
and platform; Parquet compresses the shards anyway.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import ellipse_perimeter

if TYPE_CHECKING:  # `datasets` is heavy; import it only where features are built
    import datasets

__all__ = [
    "PLANE_CLASSES",
    "SITES",
    "SPLIT_SIZES",
    "head_features",
    "iter_head_examples",
    "iter_planes_examples",
    "planes_features",
    "render_head_image",
    "render_planes_image",
]

PLANE_CLASSES: tuple[str, ...] = ("abdomen", "brain", "femur", "thorax")
SITES: tuple[str, ...] = ("site-a", "site-b", "site-c")
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "planes": {"train": 240, "validation": 60, "test": 120},
    "head": {"train": 96, "validation": 32, "test": 64},
}

_DEFAULT_SIZE = (128, 160)  # (H, W); all design lengths below are in pixels of this size
_DESIGN_HEIGHT = 128.0
_IMAGES_PER_PATIENT = 4  # planes: one image per class per patient (a screening session)
_IMAGES_PER_SUBJECT = 2  # head: like HC18's NNN_HC / NNN_2HC pairs
_SPLITS = ("train", "validation", "test")  # order fixes seed codes and id number ranges
_CONFIG_CODES = {"planes": 1, "head": 2}
_PATIENT_STREAM = 1 << 20  # seed-sequence offset that keeps patient draws apart from image draws

# Realistic head biometry at this image size (HC18 is 800 px wide at 0.05-0.33 mm; at 160 px
# wide that is 0.26-1.6 mm per pixel). HC spans mid-second to third trimester.
_HC_RANGE_MM = (100.0, 340.0)
_PIXEL_SIZE_RANGE_MM = (0.30, 1.30)
_HEAD_ASPECT_RANGE = (0.74, 0.88)  # b / a of fetal heads (cephalic index ~ 0.75-0.85)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def planes_features() -> datasets.Features:
    """Features of the ``planes`` config."""
    from datasets import ClassLabel, Features, Image, Value

    return Features(
        {
            "id": Value("string"),
            "image": Image(),
            "label": ClassLabel(names=list(PLANE_CLASSES)),
            "patient_id": Value("string"),
            "site": Value("string"),
        }
    )


def head_features() -> datasets.Features:
    """Features of the ``head`` config (the same columns as ``hc18``)."""
    from datasets import Features, Image, Value

    return Features(
        {
            "id": Value("string"),
            "image": Image(),
            "mask": Image(),
            "subject_id": Value("string"),
            "pixel_size_mm": Value("float32"),
            "head_circumference_mm": Value("float32"),
        }
    )


def iter_planes_examples(split: str, *, seed: int = 0) -> Iterator[dict]:
    """Rows of the ``planes`` config for ``split`` (train/validation/test), deterministically.

    Row ``index`` belongs to patient ``index // 4`` of the split and shows class ``index % 4``;
    patient numbers are disjoint between splits and each patient has one site.
    """
    n = _split_size("planes", split)
    _check_seed(seed)
    first_patient = _first_group_number("planes", split, _IMAGES_PER_PATIENT)
    patient = _draw_patient(_rng(seed, "planes", split, _PATIENT_STREAM))
    for index in range(n):
        local_patient, label = divmod(index, _IMAGES_PER_PATIENT)
        if label == 0 and index > 0:  # a new patient: new traits, shared by their images
            patient = _draw_patient(_rng(seed, "planes", split, _PATIENT_STREAM + local_patient))
        patient_number = first_patient + local_patient
        # Sites cycle over patients so every split holds all three in near-equal numbers.
        site = patient_number % len(SITES)
        image = _render_planes(
            label, _rng(seed, "planes", split, index), site=site, size=_DEFAULT_SIZE, patient=patient
        )
        yield {
            "id": f"phantom-planes-{split}-{index:04d}",
            "image": {"bytes": _png_bytes(image), "path": None},
            "label": label,
            "patient_id": f"phantom-patient-{patient_number:04d}",
            "site": SITES[site],
        }


def iter_head_examples(split: str, *, seed: int = 0) -> Iterator[dict]:
    """Rows of the ``head`` config for ``split``, deterministically; two images per subject."""
    n = _split_size("head", split)
    _check_seed(seed)
    first_subject = _first_group_number("head", split, _IMAGES_PER_SUBJECT)
    for index in range(n):
        image, mask, params = render_head_image(_rng(seed, "head", split, index), size=_DEFAULT_SIZE)
        yield {
            "id": f"phantom-head-{split}-{index:04d}",
            "image": {"bytes": _png_bytes(image), "path": None},
            "mask": {"bytes": _png_bytes(mask), "path": None},
            "subject_id": f"phantom-subject-{first_subject + index // _IMAGES_PER_SUBJECT:04d}",
            "pixel_size_mm": params["pixel_size_mm"],
            "head_circumference_mm": params["head_circumference_mm"],
        }


def render_planes_image(
    label: int, rng: np.random.Generator, *, site: int = 0, size: tuple[int, int] = _DEFAULT_SIZE
) -> np.ndarray:
    """One simulated plane image (uint8, ``size`` = (H, W)) of class ``PLANE_CLASSES[label]``.

    The patient traits (fetal size, maternal habitus) are drawn from ``rng`` too; the dataset
    rows share them between the images of one patient.
    """
    if not isinstance(label, (int, np.integer)) or not 0 <= int(label) < len(PLANE_CLASSES):
        raise FetalBenchError(
            f"Phantom plane label {label!r} is out of range.",
            f"Use an int in 0..{len(PLANE_CLASSES) - 1} ({', '.join(PLANE_CLASSES)}).",
        )
    return _render_planes(int(label), rng, site=site, size=size, patient=_draw_patient(rng))


def render_head_image(
    rng: np.random.Generator, *, size: tuple[int, int] = _DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One simulated head image, its filled skull mask and the ellipse behind both.

    Returns ``(image, mask, params)``: ``image`` uint8 (H, W); ``mask`` uint8 in {0, 1}, the
    pixels whose centres (x = column, y = row) lie inside the ellipse; ``params`` with ``cx``,
    ``cy`` (pixels), semi-axes ``a`` >= ``b`` (pixels), ``angle`` (radians, of the ``a`` axis
    from +x towards +y, as :class:`fetal_bench.geometry.Ellipse`), ``pixel_size_mm`` and
    ``head_circumference_mm`` (= ellipse perimeter in pixels x pixel size), and ``site`` (the
    index in :data:`SITES` whose scanner simulated it). The whole ellipse lies inside the image
    and inside the fan, below the maternal abdominal wall.
    """
    height, width = _check_size(size)
    site = _pick(rng, len(SITES))
    grid = _polar_grid(site, height, width)
    head = _draw_head_ellipse(rng, grid)
    patient = _draw_patient(rng)
    scene = _Scene(grid, rng)
    _paint_surroundings(scene, rng, head, patient)
    _paint_head(scene, rng, head, patient)
    image = scene.render(rng, patient)
    mask = _ellipse_inside(grid.px_x, grid.px_y, head).astype(np.uint8)
    perimeter_px = ellipse_perimeter(head.a, head.b)
    params = {
        "cx": head.cx,
        "cy": head.cy,
        "a": head.a,
        "b": head.b,
        "angle": 2.0 * math.atan(head.tau),  # metadata only; pixels use the exact (cos, sin)
        "pixel_size_mm": head.pixel_size_mm,
        "head_circumference_mm": perimeter_px * head.pixel_size_mm,
        "site": site,
    }
    return image, mask, params


# --------------------------------------------------------------------------------------------
# Seeds, validation, PNG
# --------------------------------------------------------------------------------------------


def _rng(seed: int, config: str, split: str, index: int) -> np.random.Generator:
    """The generator for one (seed, config, split, index); SeedSequence mixes the four."""
    entropy = [seed, _CONFIG_CODES[config], _SPLITS.index(split), index]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise FetalBenchError(f"Phantom seed {seed!r} is not a non-negative integer.", "Pass e.g. seed=0.")


def _split_size(config: str, split: str) -> int:
    sizes = SPLIT_SIZES[config]
    if split not in sizes:
        raise FetalBenchError(
            f"The phantom {config!r} config has no split {split!r}.", f"Use one of: {', '.join(sizes)}."
        )
    return sizes[split]


def _first_group_number(config: str, split: str, per_group: int) -> int:
    """Patients/subjects are numbered consecutively over the splits, so no two splits share one."""
    before = _SPLITS[: _SPLITS.index(split)]
    return sum(-(-SPLIT_SIZES[config][s] // per_group) for s in before)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise FetalBenchError(
            f"Phantom image size {size!r} is not (H, W).", "Pass e.g. size=(128, 160)."
        ) from None
    if height < 32 or width < 32 or height > 2048 or width > 2048:
        raise FetalBenchError(
            f"Phantom image size {size!r} is outside 32..2048 pixels.", "Pass e.g. size=(128, 160)."
        )
    return height, width


def _png_bytes(array: np.ndarray) -> bytes:
    """8-bit grayscale PNG of ``array`` with stored (uncompressed) deflate blocks.

    Written by hand rather than with Pillow because compressed deflate output depends on the
    zlib build (Pillow wheels bundle zlib-ng, which promises only the decompressed bytes); a
    stored block is the same bytes everywhere. Every row gets filter type 0 (none).
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape
    scanlines = np.zeros((height, width + 1), dtype=np.uint8)
    scanlines[:, 1:] = array
    raw = scanlines.tobytes()
    stream = [b"\x78\x01"]  # zlib header: deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0
    limit = 65535  # the most one stored block holds
    for start in range(0, len(raw), limit):
        block = raw[start : start + limit]
        final = 1 if start + limit >= len(raw) else 0
        stream.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    stream.append(struct.pack(">I", zlib.adler32(raw)))

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(stream))
        + png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# Random draws: only Generator.random() (see the module docstring), so pixels never depend on
# how numpy implements a distribution.
# --------------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(rng.random())


def _pick(rng: np.random.Generator, n: int) -> int:
    return min(int(float(rng.random()) * n), n - 1)


def _chance(rng: np.random.Generator, p: float) -> bool:
    return float(rng.random()) < p


def _rotation(rng: np.random.Generator, max_half_tan: float) -> tuple[float, float, float]:
    """(cos, sin, tau) of a random angle 2*atan(tau), |tau| <= max_half_tan, without trig.

    The rational parametrisation cos = (1 - t^2)/(1 + t^2), sin = 2t/(1 + t^2) is exact
    arithmetic, so rotated shapes land on the same pixels everywhere.
    """
    tau = _uniform(rng, -max_half_tan, max_half_tan)
    d = 1.0 + tau * tau
    return (1.0 - tau * tau) / d, 2.0 * tau / d, tau


def _direction(rng: np.random.Generator) -> tuple[float, float]:
    """A random unit vector, any direction."""
    c, s, _ = _rotation(rng, 1.0)
    return (-c, -s) if _chance(rng, 0.5) else (c, s)


def _noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean noise in [-1, 1] with a triangular density (sum of two uniforms)."""
    return rng.random(shape) + rng.random(shape) - 1.0


# --------------------------------------------------------------------------------------------
# Geometry: the fan (convex probe), its polar sample grid and the scan conversion
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# The scene: echogenicity, attenuation and reflectors on the polar grid
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Anatomy-like content
# --------------------------------------------------------------------------------------------


def _structure_centre(rng: np.random.Generator, grid: _PolarGrid) -> tuple[float, float]:
    """Where the structure of interest sits: mid-fan, as a sonographer centres it, with jitter."""
    unit = grid.unit
    mid = grid.apex_y + 0.5 * (grid.r_near + grid.r_far)
    return grid.apex_x + _uniform(rng, -14.0, 14.0) * unit, mid + _uniform(rng, -8.0, 10.0) * unit


def _paint_surroundings(
    scene: _Scene, rng: np.random.Generator, around: _EllipseShape, patient: _Patient
) -> None:
    """Amniotic fluid around the fetal part, other tissue, a placenta, the maternal wall."""
    grid, unit = scene.grid, scene.grid.unit
    # Amniotic fluid: an irregular pocket of overlapping ellipses around the fetal part.
    for _ in range(3):
        c, s, _ = _rotation(rng, 1.0)
        grow = _uniform(rng, 1.05, 1.6)
        pocket = _EllipseShape(
            around.cx + _uniform(rng, -0.4, 0.4) * around.a,
            around.cy + _uniform(rng, -0.3, 0.3) * around.b,
            around.a * grow + 4.0 * unit,
            around.b * grow + 3.0 * unit,
            c,
            s,
        )
        scene.paint(scene.ellipse(pocket, edge=5.0 * unit), _uniform(rng, 0.01, 0.04), attenuation=0.15)
    # Other tissue bulging into the fluid (uterine wall, another fetal part).
    for _ in range(_pick(rng, 3)):
        ux, uy = _direction(rng)
        reach = _uniform(rng, 1.5, 2.1)
        radius = _uniform(rng, 0.5, 1.0) * around.a
        c, s, _ = _rotation(rng, 1.0)
        blob = _EllipseShape(
            around.cx + ux * around.a * reach,
            around.cy + uy * around.b * reach,
            radius,
            radius * _uniform(rng, 0.5, 1.0),
            c,
            s,
        )
        scene.paint(scene.ellipse(blob, edge=4.0 * unit), _uniform(rng, 0.35, 0.8))
    # Placenta: a thick, homogeneous, fairly bright layer on the near or the far uterine wall.
    if _chance(rng, 0.4):
        c, s, _ = _rotation(rng, 0.2)
        radius = 110.0 * unit
        if _chance(rng, 0.6):
            cy = grid.apex_y + grid.r_near + _uniform(rng, 14.0, 26.0) * unit - radius
        else:
            cy = grid.apex_y + grid.r_far - _uniform(rng, 6.0, 16.0) * unit + radius
        layer = _EllipseShape(grid.apex_x + _uniform(rng, -50.0, 50.0) * unit, cy, radius * 1.5, radius, c, s)
        scene.paint(scene.ellipse(layer, edge=3.0 * unit), _uniform(rng, 0.65, 0.95))
    # Abdominal wall under the probe: echogenic fat and muscle with bright fascia lines,
    # thicker in a patient of larger habitus.
    wall = _uniform(rng, 6.0, 10.0) * patient.habitus * unit
    wall_texture = (0.85 * (1.0 + 0.25 * _upsample(_noise(rng, (5, 9)), grid.x.shape))).astype(np.float32)
    scene.paint(scene.layer(-10.0 * unit, wall, 2.0 * unit), wall_texture)
    for _ in range(2 + _pick(rng, 2)):
        at = _uniform(rng, 0.2, 1.0) * wall
        scene.paint(
            scene.layer(at - 0.7 * unit, at + 0.7 * unit, unit), _uniform(rng, 1.2, 1.9), reflect=0.015
        )


def _paint_limb_fragment(scene: _Scene, rng: np.random.Generator, near: _EllipseShape, scale: float) -> None:
    """A short bright bone of another limb in view: a distractor that every class may show."""
    ux, uy = _direction(rng)
    distance = _uniform(rng, 1.05, 1.35)
    x = near.cx + ux * near.a * distance
    y = near.cy + uy * near.b * distance
    dx, dy = _direction(rng)
    half = _uniform(rng, 4.0, 8.0) * scale
    scene.paint(
        scene.capsule(x - dx * half, y - dy * half, x + dx * half, y + dy * half, 1.3 * scale),
        _uniform(rng, 1.6, 2.6),
        reflect=0.12,
    )


def _paint_head(scene: _Scene, rng: np.random.Generator, head: _EllipseShape, patient: _Patient) -> None:
    """A transthalamic-like head: skull rim, midline, cavum septi pellucidi, thalami."""
    mean_axis = 0.5 * (head.a + head.b)
    scene.paint(scene.ellipse(head, edge=2.0), _uniform(rng, 0.16, 0.28), attenuation=0.7)
    # Thalami: two slightly darker ovals either side of the midline, just behind the centre.
    along = _uniform(rng, -0.12, 0.02) * head.a
    for side in (-1.0, 1.0):
        x, y = head.to_image(along, side * 0.16 * head.b)
        thalamus = _EllipseShape(x, y, 0.16 * head.a, 0.11 * head.b, head.c, head.s)
        scene.paint(scene.ellipse(thalamus, edge=2.0), 0.09)
    # Midline echo (falx) along the major axis, interrupted in front by the dark CSP box.
    x0, y0 = head.to_image(-0.86 * head.a, 0.0)
    x1, y1 = head.to_image(0.86 * head.a, 0.0)
    scene.paint(scene.capsule(x0, y0, x1, y1, 0.55 * scene.grid.unit), _uniform(rng, 0.8, 1.3))
    front = 1.0 if _chance(rng, 0.5) else -1.0
    x, y = head.to_image(front * 0.36 * head.a, 0.0)
    scene.paint(
        scene.ellipse(_EllipseShape(x, y, 0.13 * head.a, 0.06 * head.b, head.c, head.s), edge=1.5), 0.02
    )
    # Skull: a bright, shadow-casting rim whose outer edge is the head outline (as HC18 draws it).
    thickness = _uniform(rng, 0.075, 0.1) * mean_axis
    scene.paint(scene.rim(head, thickness), 3.2 * patient.contrast, reflect=0.05)


def _paint_spine(
    scene: _Scene, rng: np.random.Generator, body: _EllipseShape, scale: float, patient: _Patient
) -> None:
    """A vertebra at the back of the trunk: three bright ossification centres casting shadows."""
    cu, cv = _direction(rng)
    bx, by = body.to_image(0.74 * body.a * cu, 0.74 * body.b * cv)
    # Outward direction (image axes) from the body centre through the vertebra.
    ox, oy = bx - body.cx, by - body.cy
    norm = math.sqrt(ox * ox + oy * oy) or 1.0
    ox, oy = ox / norm, oy / norm
    radius = _uniform(rng, 1.8, 2.6) * scale
    spread = 3.2 * scale
    centres = [
        (bx, by),
        (bx + ox * spread - oy * spread, by + oy * spread + ox * spread),
        (bx + ox * spread + oy * spread, by + oy * spread - ox * spread),
    ]
    for x, y in centres:
        scene.paint(scene.disc(x, y, radius), 3.0 * patient.contrast, reflect=0.3)


def _trunk(
    rng: np.random.Generator,
    grid: _PolarGrid,
    scale: float,
    size: tuple[float, float],
    aspect: tuple[float, float],
) -> _EllipseShape:
    cx, cy = _structure_centre(rng, grid)
    a = _uniform(rng, *size) * scale
    c, s, _ = _rotation(rng, 1.0)
    return _EllipseShape(cx, cy, a, a * _uniform(rng, *aspect), c, s)


def _paint_abdomen(scene: _Scene, rng: np.random.Generator, scale: float, patient: _Patient) -> _EllipseShape:
    """Abdominal circumference plane: round trunk, dark stomach bubble, umbilical vein, spine."""
    body = _trunk(rng, scene.grid, scale, (26.0, 38.0), (0.86, 1.0))
    _paint_surroundings(scene, rng, body, patient)
    scene.paint(scene.ellipse(body, edge=2.0), _uniform(rng, 0.45, 0.65))  # liver and bowel
    scene.paint(scene.rim(body, 2.0 * scale), _uniform(rng, 1.0, 1.5), reflect=0.01)  # skin
    # Stomach: an anechoic bubble on one side; fluid barely attenuates, so it enhances below.
    su, sv = _direction(rng)
    x, y = body.to_image(0.3 * body.a * su, 0.3 * body.b * sv)
    radius = _uniform(rng, 0.2, 0.3) * body.a
    c, s, _ = _rotation(rng, 1.0)
    stomach = _EllipseShape(x, y, radius, radius * _uniform(rng, 0.6, 0.9), c, s)
    scene.paint(scene.ellipse(stomach, edge=1.5), 0.02, attenuation=0.15)
    # Umbilical vein: a short dark tube from the front wall towards the centre.
    x0, y0 = body.to_image(-0.8 * body.a * su, -0.8 * body.b * sv)
    x1, y1 = body.to_image(-0.15 * body.a * su + 0.1 * body.a * sv, -0.15 * body.b * sv - 0.1 * body.b * su)
    scene.paint(scene.capsule(x0, y0, x1, y1, 1.4 * scale), 0.04, attenuation=0.3)
    _paint_spine(scene, rng, body, scale, patient)
    return body


def _paint_thorax(scene: _Scene, rng: np.random.Generator, scale: float, patient: _Patient) -> _EllipseShape:
    """Four-chamber-like thorax: bright lungs, a heart with four dark chambers, rib shadows, spine."""
    body = _trunk(rng, scene.grid, scale, (26.0, 38.0), (0.88, 1.0))
    _paint_surroundings(scene, rng, body, patient)
    scene.paint(scene.ellipse(body, edge=2.0), _uniform(rng, 0.7, 0.95))  # lungs
    scene.paint(scene.rim(body, 2.0 * scale), _uniform(rng, 1.0, 1.5), reflect=0.01)
    # Heart: off-centre, darker than the lungs, with four anechoic chambers; the myocardium
    # left between them reads as the cross of the septa.
    hu, hv = _direction(rng)
    x, y = body.to_image(0.28 * body.a * hu, 0.28 * body.b * hv)
    h = _uniform(rng, 0.36, 0.46) * body.a
    c, s, _ = _rotation(rng, 1.0)
    heart = _EllipseShape(x, y, h, h * _uniform(rng, 0.8, 0.95), c, s)
    scene.paint(scene.ellipse(heart, edge=1.5), _uniform(rng, 0.3, 0.45))
    for qu, qv in ((-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)):
        px, py = heart.to_image(qu * 0.4 * heart.a, qv * 0.38 * heart.b)
        chamber = _EllipseShape(px, py, 0.36 * heart.a * _uniform(rng, 0.8, 1.1), 0.32 * heart.b, c, s)
        scene.paint(scene.ellipse(chamber, edge=1.2), 0.03, attenuation=0.2)
    # Ribs: short bright arcs on the chest wall, each casting a dark stripe behind it.
    for _ in range(2 + _pick(rng, 3)):
        ru, rv = _direction(rng)
        x, y = body.to_image(0.9 * body.a * ru, 0.9 * body.b * rv)
        # Tangent of the outline there (image axes): the derivative of (a cos, b sin).
        tx, ty = body.to_image(-body.a * rv, body.b * ru)
        tx, ty = tx - body.cx, ty - body.cy
        norm = math.sqrt(tx * tx + ty * ty) or 1.0
        half = _uniform(rng, 3.0, 5.0) * scale
        tx, ty = tx / norm * half, ty / norm * half
        scene.paint(
            scene.capsule(x - tx, y - ty, x + tx, y + ty, 1.2 * scale), 2.4 * patient.contrast, reflect=0.3
        )
    _paint_spine(scene, rng, body, scale, patient)
    return body


def _paint_femur(scene: _Scene, rng: np.random.Generator, scale: float, patient: _Patient) -> _EllipseShape:
    """Femur-length plane: a long bright bone bar in the thigh, with a dense shadow below it."""
    cx, cy = _structure_centre(rng, scene.grid)
    half = _uniform(rng, 17.0, 29.0) * scale
    c, s, _ = _rotation(rng, 0.35)  # femurs are measured close to horizontal
    thigh = _EllipseShape(
        cx, cy, half + _uniform(rng, 5.0, 9.0) * scale, _uniform(rng, 9.0, 14.0) * scale, c, s
    )
    _paint_surroundings(scene, rng, thigh, patient)
    scene.paint(scene.ellipse(thigh, edge=3.0), _uniform(rng, 0.4, 0.6))
    # A slightly bowed shaft: two segments meeting a little off the straight line.
    bow = _uniform(rng, -1.5, 1.5) * scale
    x0, y0 = thigh.to_image(-half, 0.0)
    xm, ym = thigh.to_image(0.0, bow)
    x1, y1 = thigh.to_image(half, 0.0)
    radius = _uniform(rng, 1.6, 2.4) * scale
    for (ax, ay), (bx, by) in (((x0, y0), (xm, ym)), ((xm, ym), (x1, y1))):
        scene.paint(scene.capsule(ax, ay, bx, by, radius), 3.2 * patient.contrast, reflect=0.45)
    return thigh


def _paint_brain(scene: _Scene, rng: np.random.Generator, scale: float, patient: _Patient) -> _EllipseShape:
    """Head plane: the same head as the ``head`` config, sized by the patient and the site."""
    cx, cy = _structure_centre(rng, scene.grid)
    a = _uniform(rng, 28.0, 40.0) * scale
    c, s, _ = _rotation(rng, 0.5)
    head = _EllipseShape(cx, cy, a, a * _uniform(rng, *_HEAD_ASPECT_RANGE), c, s)
    _paint_surroundings(scene, rng, head, patient)
    _paint_head(scene, rng, head, patient)
    return head


_PAINTERS: dict[int, Callable[[_Scene, np.random.Generator, float, _Patient], _EllipseShape]] = {
    PLANE_CLASSES.index("abdomen"): _paint_abdomen,
    PLANE_CLASSES.index("brain"): _paint_brain,
    PLANE_CLASSES.index("femur"): _paint_femur,
    PLANE_CLASSES.index("thorax"): _paint_thorax,
}


def _render_planes(
    label: int, rng: np.random.Generator, *, site: int, size: tuple[int, int], patient: _Patient
) -> np.ndarray:
    height, width = _check_size(size)
    grid = _polar_grid(site, height, width)
    scene = _Scene(grid, rng)
    scale = grid.unit * grid.site.zoom * patient.fetal_scale
    main = _PAINTERS[label](scene, rng, scale, patient)
    if _chance(rng, 0.35):
        _paint_limb_fragment(scene, rng, main, scale)
    return scene.render(rng, patient)


def _draw_head_ellipse(rng: np.random.Generator, grid: _PolarGrid) -> _Head:
    """A head ellipse with realistic HC and pixel size, wholly inside the image and the fan.

    HC and the semi-axis are drawn first and the pixel size follows from them, so HC spans its
    realistic range at any pixel size; draws that do not fit are redrawn.
    """
    unit, margin = grid.unit, 2.0
    # Points all round a unit circle from the rational parametrisation (exact, no trig).
    t = np.linspace(-1.0, 1.0, 33)
    circle_c = np.concatenate([(1 - t * t) / (1 + t * t), -(1 - t * t) / (1 + t * t)])
    circle_s = np.concatenate([2 * t / (1 + t * t), -2 * t / (1 + t * t)])
    side = math.sqrt(1.0 + grid.half_tan * grid.half_tan)
    for _ in range(1000):
        hc_target = _uniform(rng, *_HC_RANGE_MM)
        a = round(_uniform(rng, 22.0, 60.0) * unit, 3)
        b = round(a * _uniform(rng, *_HEAD_ASPECT_RANGE), 3)
        pixel_size = round(hc_target / ellipse_perimeter(a, b), 6)
        c, s, tau = _rotation(rng, 0.6)
        cx, cy = _structure_centre(rng, grid)
        cx, cy = round(cx, 3), round(cy, 3)
        if not _PIXEL_SIZE_RANGE_MM[0] <= pixel_size <= _PIXEL_SIZE_RANGE_MM[1]:
            continue
        x = cx + c * a * circle_c - s * b * circle_s
        y = cy + s * a * circle_c + c * b * circle_s
        dx, dy = x - grid.apex_x, y - grid.apex_y
        r = np.sqrt(dx * dx + dy * dy)
        inside = (
            (x >= margin)
            & (x <= grid.width - 1 - margin)
            & (y >= margin)
            & (y <= grid.height - 1 - margin)
            & (r >= grid.r_near + 10.0 * unit)
            & (r <= grid.r_far - margin)  # below the maternal wall
            & (np.abs(dx) <= grid.half_tan * dy - margin * side)
        )
        if inside.all():
            return _Head(cx, cy, a, b, c, s, tau=tau, pixel_size_mm=pixel_size)
    raise FetalBenchError(  # pragma: no cover - the size check keeps fits plentiful
        f"No head ellipse fits a {grid.height}x{grid.width} phantom image.",
        "Use a larger size, e.g. (128, 160).",
    )
