"""Anatomy-like content: what each plane class and the head show."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fetal_bench.data.phantom.constants import (
    PLANE_CLASSES, _HC_RANGE_MM, _HEAD_ASPECT_RANGE, _PIXEL_SIZE_RANGE_MM,
)
from fetal_bench.data.phantom.draws import _chance, _direction, _noise, _pick, _rotation, _uniform
from fetal_bench.data.phantom.fan import _PolarGrid, _polar_grid, _upsample
from fetal_bench.data.phantom.scene import _EllipseShape, _Head, _Patient, _Scene
from fetal_bench.data.phantom.seeds import _check_size
from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import ellipse_perimeter


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
