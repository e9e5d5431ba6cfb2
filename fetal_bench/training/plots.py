"""Loss and metric curves as a PNG: matplotlib when installed, else a small Pillow plot.

matplotlib is not a dependency of fetal-bench; Pillow is. The Pillow fallback draws the same two
panels (losses; validation metric) with axes, a few tick labels and a legend: enough to see
whether a run converged, which is all a training curve is for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]

Series = dict[str, Sequence[tuple[float, float]]]  # name -> [(x, y), ...]

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def plot_curves(path: str | os.PathLike, panels: Sequence[tuple[str, Series]], *, xlabel: str = "epoch",
                title: str = "") -> Path:
    """Draw one panel per ``(title, series)`` side by side into ``path`` (PNG, atomically)."""
    from fetal_bench._io import atomic_file

    path = Path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        image = _pillow(panels, xlabel, title)
        with atomic_file(path, "wb") as handle:
            image.save(handle, format="PNG")
        return path
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (panel_title, series) in zip(axes[0], panels):
        for name, points in series.items():
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        ax.set_title(panel_title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return path


def _pillow(panels: Sequence[tuple[str, Series]], xlabel: str, title: str):
    from PIL import Image, ImageDraw

    panel_w, panel_h, top = 460, 320, 24 if title else 4
    image = Image.new("RGB", (panel_w * len(panels), panel_h + top), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((8, 6), title, fill="black")
    for index, (panel_title, series) in enumerate(panels):
        _panel(draw, index * panel_w, top, panel_w, panel_h, panel_title, series, xlabel)
    return image


def _ticks(low: float, high: float, n: int = 4) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / n for i in range(n + 1)]


def _panel(draw, x0: int, y0: int, width: int, height: int, title: str, series: Series, xlabel: str) -> None:
    left, right, top, bottom = x0 + 56, x0 + width - 12, y0 + 22, y0 + height - 34
    draw.text((x0 + 56, y0 + 4), title, fill="black")
    points = [(x, y) for values in series.values() for x, y in values if y is not None and math.isfinite(y)]
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    draw.text(((left + right) // 2 - 16, bottom + 18), xlabel, fill=(60, 60, 60))
    if not points:
        draw.text((left + 10, top + 10), "no data", fill="gray")
        return
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - xmin) / (xmax - xmin) * (right - left), bottom - (y - ymin) / (ymax - ymin) * (bottom - top))

    for value in _ticks(ymin, ymax):
        _, py = to_px(xmin, value)
        draw.line([left - 4, py, left, py], fill=(120, 120, 120))
        draw.text((x0 + 4, py - 6), f"{value:.3g}", fill=(60, 60, 60))
    for value in _ticks(xmin, xmax):
        px, _ = to_px(value, ymin)
        draw.line([px, bottom, px, bottom + 4], fill=(120, 120, 120))
        draw.text((px - 8, bottom + 5), f"{value:.3g}", fill=(60, 60, 60))
    for k, (name, values) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        pixels = [to_px(x, y) for x, y in values if y is not None and math.isfinite(y)]
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        for px, py in pixels if len(pixels) < 40 else []:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.line([right - 110, top + 10 + 14 * k, right - 90, top + 10 + 14 * k], fill=colour, width=2)
        draw.text((right - 86, top + 4 + 14 * k), name, fill=(40, 40, 40))
