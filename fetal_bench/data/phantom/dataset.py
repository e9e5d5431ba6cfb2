"""The public API: features, the rows of each config, and single images."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from fetal_bench.data.phantom.anatomy import (
    _draw_head_ellipse, _paint_head, _paint_surroundings, _render_planes,
)
from fetal_bench.data.phantom.constants import (
    PLANE_CLASSES, SITES, _DEFAULT_SIZE, _IMAGES_PER_PATIENT, _IMAGES_PER_SUBJECT, _PATIENT_STREAM,
)
from fetal_bench.data.phantom.draws import _pick
from fetal_bench.data.phantom.fan import _polar_grid
from fetal_bench.data.phantom.scene import _Scene, _draw_patient, _ellipse_inside
from fetal_bench.data.phantom.seeds import (
    _check_seed, _check_size, _first_group_number, _png_bytes, _rng, _split_size,
)
from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import ellipse_perimeter

if TYPE_CHECKING:  # `datasets` is heavy; import it only where features are built
    import datasets


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
    from fetal_bench.data.schemas import head_biometry_features

    return head_biometry_features()


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
