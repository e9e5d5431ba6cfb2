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
``seeds._png_bytes`` with uncompressed deflate blocks, because zlib/zlib-ng do not promise the
same compressed bytes across versions and platforms. So the same bytes come out on every run
and platform; Parquet compresses the shards anyway.
The modules, in the order an image is made: :mod:`.constants` (classes, sites, split sizes,
biometry ranges), :mod:`.seeds` (one random stream per image, argument checks, PNG bytes),
:mod:`.draws` (the only random draws), :mod:`.fan` (probe geometry and scan conversion),
:mod:`.scene` (echogenicity, shadows, speckle), :mod:`.anatomy` (what each class shows) and
:mod:`.dataset` (features, rows and single images: the public API, re-exported here).
"""

from fetal_bench.data.phantom.constants import PLANE_CLASSES, SITES, SPLIT_SIZES
from fetal_bench.data.phantom.dataset import (
    head_features, iter_head_examples, iter_planes_examples, planes_features, render_head_image, render_planes_image,
)

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
