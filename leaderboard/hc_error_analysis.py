"""Where an HC18 head segmenter's HC error comes from: the figures behind docs/baselines.md's
"What limits it" (issue 22). CPU, a few minutes each; nothing here is scored on the leaderboard.

    python leaderboard/hc_error_analysis.py pixels --data runs/reproduce/hc18-size-shift
    python leaderboard/hc_error_analysis.py worst --data runs/reproduce/hc18-size-shift \\
        --predictions leaderboard/predictions/unet-hc18-size-shift-cpu-160x240-18ep.parquet
    python leaderboard/hc_error_analysis.py calibration --data runs/reproduce/hc18-size-shift \\
        --checkpoint runs/reproduce/hc18-size-shift-unet

pixels: reference HC in pixels and the pixel size per split and head-size band (does a larger
head look larger to the network?). worst: each test image's HC error from a predictions file, the
worst first, and the mean relative error without the worst few (is the error bias, spread, or a
few failures?). calibration: the checkpoint's ellipse offset fitted on the train split three
ways (native pixels, the committed rule; a share of the head's size; millimetres), each scored on
the test split by head-size band.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np


def _bands(hc_mm: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(label, selector) of each non-empty head-size band, smallest first: the bands the HC18
    tasks report (``Task.hc_bands``), so these figures line up with the results' ``head_size``."""
    from fetal_bench.tasks import get_task
    from fetal_bench.tasks.base import hc_band_labels, hc_bands_of

    edges = get_task("hc18-head-seg").hc_bands
    of = np.asarray(hc_bands_of(edges, hc_mm))
    return [(label, of == label) for label in hc_band_labels(edges) if (of == label).any()]


def _rows(data: str, split: str):
    from fetal_bench.data import open_dataset

    return open_dataset(data, split=split)


def pixels(args) -> None:
    for split in args.splits:
        rows = _rows(args.data, split).remove_columns(["image", "mask"])
        hc = np.asarray(rows["head_circumference_mm"], dtype=float)
        spacing = np.asarray(rows["pixel_size_mm"], dtype=float)
        print(f"{split}: {len(hc)} images, reference HC {hc.min():.1f}-{hc.max():.1f} mm")
        for name, inside in _bands(hc):
            print(f"  {name}: {inside.sum()} images, median HC {np.median(hc[inside] / spacing[inside]):.0f} px, "
                  f"median pixel {np.median(spacing[inside]):.3f} mm")


def _band_line(hc: np.ndarray, error_mm: np.ndarray) -> str:
    relative = np.abs(error_mm) / hc * 100
    parts = [f"all {len(hc)}: {relative.mean():.2f}% of HC, abs {np.abs(error_mm).mean():.2f} mm, "
             f"signed {error_mm.mean():+.2f} mm"]
    for name, inside in _bands(hc):
        parts.append(f"{name} {inside.sum()}: {relative[inside].mean():.2f}%, signed {error_mm[inside].mean():+.2f} mm")
    return "; ".join(parts)


def worst(args) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    from fetal_bench.metrics.segmentation import head_circumference_mm

    table = pq.read_table(args.predictions, columns=["id", "mask"]).to_pydict()
    masks = dict(zip(table["id"], table["mask"]))
    found = []
    for row in _rows(args.data, args.split).remove_columns(["image", "mask"]):
        with Image.open(io.BytesIO(masks[row["id"]])) as image:
            measured = head_circumference_mm(np.asarray(image) > 0, float(row["pixel_size_mm"]))
        if measured is not None:
            found.append((row["id"], float(row["head_circumference_mm"]), measured - float(row["head_circumference_mm"])))
    hc = np.array([f[1] for f in found])
    error = np.array([f[2] for f in found])
    relative = np.sort(np.abs(error) / hc * 100)
    print(_band_line(hc, error))
    print(f"relative error: median {np.median(relative):.2f}%; mean without the worst 1, 3, 5, 10: "
          + ", ".join(f"{relative[:-k].mean():.2f}%" for k in (1, 3, 5, 10)))
    for row_id, reference, err in sorted(found, key=lambda f: -abs(f[2]) / f[1])[: args.n]:
        print(f"  {row_id}: reference {reference:.1f} mm, error {err:+.1f} mm ({err / reference * 100:+.1f}%)")


def calibration(args) -> None:
    from scipy.optimize import brentq

    from fetal_bench.geometry import Ellipse, ellipse_mask
    from fetal_bench.metrics.segmentation import head_circumference_mm
    from fetal_bench.models import create_model
    from fetal_bench.models.checkpoint import read_checkpoint
    from fetal_bench.models.seg_postprocess import head_ellipse_from_probability, split_probabilities

    model = create_model(read_checkpoint(args.checkpoint).model, checkpoint=args.checkpoint)
    model.model_cfg["postprocess"] = {"method": "ellipse", "offset_px": 0.0, "flip_average": True}
    fitted = {}
    for split in ("train", "test"):
        rows = _rows(args.data, split)
        probabilities = split_probabilities(model, rows, batch_size=8, log=print)
        fitted[split] = []
        for row in rows.remove_columns(["image", "mask"]):
            probability = probabilities[row["id"]]
            ellipse = head_ellipse_from_probability(probability)[1]
            if ellipse is not None:
                fitted[split].append((ellipse, probability.shape, float(row["pixel_size_mm"]),
                                      float(row["head_circumference_mm"])))

    def errors(split: str, widen: Callable[[Ellipse, float, float], Ellipse], value: float) -> tuple[np.ndarray, np.ndarray]:
        hc, error = [], []
        for ellipse, shape, spacing, reference in fitted[split]:
            measured = head_circumference_mm(ellipse_mask(shape, widen(ellipse, spacing, value)), spacing)
            if measured is not None:
                hc.append(reference)
                error.append(measured - reference)
        return np.array(hc), np.array(error)

    rules = {
        "native pixels (committed)": (lambda e, _, d: Ellipse(e.cx, e.cy, e.a + d, e.b + d, e.angle), (-10.0, 10.0)),
        "share of head size": (lambda e, _, s: Ellipse(e.cx, e.cy, e.a * (1 + s), e.b * (1 + s), e.angle), (-0.1, 0.1)),
        "millimetres": (lambda e, spacing, d: Ellipse(e.cx, e.cy, e.a + d / spacing, e.b + d / spacing, e.angle),
                        (-2.0, 2.0)),
    }
    print("no offset, test:", _band_line(*errors("test", rules["native pixels (committed)"][0], 0.0)))
    for name, (widen, bracket) in rules.items():
        value = brentq(lambda v, widen=widen: float(np.mean(errors("train", widen, v)[1])), *bracket, xtol=1e-5)
        print(f"{name}: {value:+.4f} fitted on train; test: {_band_line(*errors('test', widen, value))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("pixels")
    command.add_argument("--data", required=True)
    command.add_argument("--splits", nargs="+", default=["train", "test"])
    command.set_defaults(run=pixels)
    command = commands.add_parser("worst")
    command.add_argument("--data", required=True)
    command.add_argument("--predictions", required=True)
    command.add_argument("--split", default="test")
    command.add_argument("--n", type=int, default=10)
    command.set_defaults(run=worst)
    command = commands.add_parser("calibration")
    command.add_argument("--data", required=True)
    command.add_argument("--checkpoint", required=True)
    command.set_defaults(run=calibration)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
