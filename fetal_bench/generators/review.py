"""A reviewable consistency check of generated image + outline pairs (mask-guided, paper variant).

The authors of the mask-guided method generated 500 pairs and kept 495 after correcting them by
hand (README of github.com/13204942/Diffusion-based_DA_Fetal_Ultrasound_Segmentation, commit
200ae09930581435d9febc67d160ce344c5b169c: "Synthesis 495"). fetal-bench does not drop pairs
silently instead: every pair gets automatic checks with reported thresholds, and every pair that
fails one is written, in the authors' own folder layout, for a person to look at and correct.

Checks, after the outline rules of :mod:`fetal_bench.generators.outline`:

``outline_leak``         the outline shows in the image channel: the median image value on the
                         outline pixels minus the median on a ring 3-6 px away, in gray levels,
                         above ``review.max_outline_leak`` (100). Real skulls are bright where
                         HC18's outline lies, but on 162 HC18 training images (every 5th
                         ``NNN_HC.png``, letterboxed to 512 px, outlined as the generator is
                         trained to draw it) this contrast is at most 56.5 (median 12); a drawn
                         line copied into the image stands far above.
``segmenter_disagrees``  with a head segmenter given (``review_model``/``review_checkpoint``, e.g.
                         the U-Net baseline trained on HC18), its mask of the generated image has
                         a Dice below ``review.min_segmenter_dice`` with the outline's ellipse.

Outputs, in ``REVIEW_DIR`` (default ``OUTPUT.review`` beside the dataset):

``review.csv``       one row per flagged pair: index, seed, class, reason, the measured values
``summary.json``     counts, acceptance rate, thresholds, the segmenter used
``rejected.png``     a contact sheet of flagged pairs (image with the outline in red and the
                     fitted ellipse in green, captioned by index and reason)
``image/``, ``mask/``  each flagged pair as ``<id>.png`` and ``<id>_Annotation.png`` (the outline,
                     0/255): the layout the authors trained and corrected in, ready to edit.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_bench.errors import FetalBenchError

__all__ = ["REVIEW_DEFAULTS", "Segmenter", "contact_sheet", "outline_leak", "save_pair", "write_report"]

REVIEW_DEFAULTS = {"max_outline_leak": 100.0, "min_segmenter_dice": 0.85, "contact_sheet_max": 64}
_TILE = 128
_RING = (3, 6)  # pixels: the ring the outline's image values are compared with


def outline_leak(image: np.ndarray, outline: np.ndarray) -> float | None:
    """Median of ``image`` on ``outline`` minus its median on a ring 3-6 px away (gray levels).

    None when there is no outline or no ring (the outline fills the image).
    """
    from scipy import ndimage

    if not outline.any():
        return None
    near = ndimage.binary_dilation(outline, iterations=_RING[0] - 1)
    ring = ndimage.binary_dilation(outline, iterations=_RING[1]) & ~near
    if not ring.any():
        return None
    values = image.astype(np.float64)
    return float(np.median(values[outline]) - np.median(values[ring]))


class Segmenter:
    """A registered segmentation model restored from a checkpoint, run on generated images."""

    def __init__(self, model: str, checkpoint: str | Path):
        import torch

        from fetal_bench.models import create_model, get_model_info

        path = Path(checkpoint)
        if not path.exists():
            raise FetalBenchError(f"Review checkpoint {path} does not exist.",
                                  "Pass a segmentation checkpoint from `fetal-bench train` (e.g. the U-Net on hc18).")
        if get_model_info(model).classifies:
            raise FetalBenchError(f"Review model {model!r} is a classifier.",
                                  "Pass a head segmenter, e.g. --review-model unet --review-checkpoint runs/unet.")
        self.model = create_model(model, checkpoint=path).eval()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.name = model
        self.checkpoint = str(path)

    def masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Boolean head masks at each image's size, as the harness makes them from this model."""
        import datasets

        from fetal_bench.data.writer import encode_png
        from fetal_bench.tasks.segmentation import SEGMENTATION

        table = datasets.Dataset.from_dict(
            {"id": [str(i) for i in range(len(images))],
             "image": [{"bytes": encode_png(np.asarray(image, dtype=np.uint8)), "path": None} for image in images]},
            features=datasets.Features({"id": datasets.Value("string"), "image": datasets.Image()}))
        masks = SEGMENTATION.image_outputs(self.model, table, batch_size=8)
        return [masks[str(i)] for i in range(len(images))]


def save_pair(review_dir: Path, name: str, image: np.ndarray, outline: np.ndarray) -> None:
    """Write a flagged pair in the authors' layout: ``image/NAME.png``, ``mask/NAME_Annotation.png``."""
    from PIL import Image

    from fetal_bench._io import atomic_file

    for sub, file, array in (("image", f"{name}.png", image), ("mask", f"{name}_Annotation.png", outline * 255)):
        target = review_dir / sub / file
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target, "wb") as handle:
            Image.fromarray(np.asarray(array, dtype=np.uint8)).save(handle, format="PNG")


def _tile(image: np.ndarray, outline: np.ndarray, ellipse, caption: str):
    """An RGB tile: the image, the outline in red, the fitted ellipse in green, a caption."""
    from PIL import Image, ImageDraw

    from fetal_bench.geometry import ellipse_mask, mask_boundary

    rgb = np.repeat(np.asarray(image, dtype=np.uint8)[..., None], 3, axis=-1)
    rgb[outline] = (255, 0, 0)
    if ellipse is not None:
        rgb[mask_boundary(ellipse_mask(image.shape, ellipse))] = (0, 255, 0)
    tile = Image.fromarray(rgb).resize((_TILE, _TILE), Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, _TILE - 12, _TILE, _TILE), fill=(0, 0, 0))
    draw.text((2, _TILE - 12), caption[:24], fill=(255, 255, 0))
    return tile


def contact_sheet(review_dir: Path, entries: Sequence[Mapping[str, Any]], limit: int) -> Path | None:
    """``rejected.png``: up to ``limit`` flagged pairs read back from ``image/`` and ``mask/``."""
    from PIL import Image

    from fetal_bench._io import atomic_file
    from fetal_bench.geometry import Ellipse

    shown = [e for e in entries if (review_dir / "image" / f"{e['name']}.png").is_file()][: max(0, int(limit))]
    if not shown:
        return None
    columns = min(8, len(shown))
    rows = -(-len(shown) // columns)
    sheet = Image.new("RGB", (columns * _TILE, rows * _TILE))
    for k, entry in enumerate(shown):
        image = np.asarray(Image.open(review_dir / "image" / f"{entry['name']}.png").convert("L"))
        outline = np.asarray(Image.open(review_dir / "mask" / f"{entry['name']}_Annotation.png")) > 127
        ellipse = Ellipse(**entry["ellipse"]) if entry.get("ellipse") else None
        sheet.paste(_tile(image, outline, ellipse, f"{entry['index']} {entry['reason']}"),
                    ((k % columns) * _TILE, (k // columns) * _TILE))
    path = review_dir / "rejected.png"
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    with atomic_file(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


_CSV_COLUMNS = ("index", "name", "seed", "label", "reason", "outline_leak", "segmenter_dice", "support", "coverage")


def write_report(review_dir: Path, flagged: Sequence[Mapping[str, Any]], *, attempted: int,
                 thresholds: Mapping[str, Any], segmenter: Segmenter | None) -> dict[str, Any]:
    """``review.csv``, ``rejected.png`` and ``summary.json``; returns the summary."""
    from fetal_bench._io import atomic_file, write_json_atomic

    review_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(flagged, key=lambda e: int(e["index"]))
    with atomic_file(review_dir / "review.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(_CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for entry in ordered:
            writer.writerow({k: ("" if entry.get(k) is None else entry[k]) for k in _CSV_COLUMNS})
    sheet = contact_sheet(review_dir, ordered, int(thresholds.get("contact_sheet_max", 64)))
    reasons: dict[str, int] = {}
    for entry in ordered:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    summary = {
        "attempted": attempted,
        "accepted": attempted - len(ordered),
        "flagged": len(ordered),
        "acceptance_rate": (attempted - len(ordered)) / attempted if attempted else None,
        "by_reason": dict(sorted(reasons.items())),
        "thresholds": {k: thresholds[k] for k in sorted(thresholds)},
        "segmenter": None if segmenter is None else {"model": segmenter.name, "checkpoint": segmenter.checkpoint},
        "contact_sheet": None if sheet is None else sheet.name,
        "how_to_correct": "Edit mask/<name>_Annotation.png (the outline, 0/255) for each pair in review.csv; "
                          "the folder is the layout the mask-guided authors trained on.",
    }
    write_json_atomic(review_dir / "summary.json", json.loads(json.dumps(summary)))
    return summary


def review_thresholds(lora_record: Mapping, generation_in: Mapping | None) -> dict[str, Any]:
    """The review thresholds: defaults <- the LoRA's config <- a reproduction config."""
    thresholds = dict(REVIEW_DEFAULTS)
    thresholds.update({k: v for k, v in (lora_record["config"].get("review") or {}).items() if k in REVIEW_DEFAULTS})
    thresholds.update({k: v for k, v in ((generation_in or {}).get("review") or {}).items() if k in REVIEW_DEFAULTS})
    return thresholds


def weights_sha256(checkpoint: Path) -> str | None:
    from fetal_bench._io import sha256_file

    weights = checkpoint / "model.safetensors" if checkpoint.is_dir() else checkpoint
    return sha256_file(weights) if weights.is_file() else None


def check_pairs(batch, images, post: Mapping, review: Mapping, segmenter, resolution: int) -> list[dict]:
    """Per generated RGB image: image, outline, fitted ellipse, mask, check values and the first
    failed check (None when every check passes), in the order of the module docstring."""
    from fetal_bench.geometry import ellipse_mask
    from fetal_bench.generators.outline import ellipse_from_outline
    from fetal_bench.metrics.segmentation import dice

    pairs = []
    for image in images:
        rgb = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        outline = rgb[..., 2] > int(post["outline_threshold"])
        fit = ellipse_from_outline(outline, post)
        leak = outline_leak(rgb[..., 0], outline)
        values = {"support": fit.support, "coverage": fit.coverage, "outline_leak": leak, "segmenter_dice": None}
        reason = fit.reason
        if reason is None and leak is not None and leak > float(review["max_outline_leak"]):
            reason = "outline_leak"
        pairs.append({"image": rgb[..., 0], "outline": outline.astype(np.uint8), "ellipse": fit.ellipse,
                      "mask": None if fit.ellipse is None else ellipse_mask((resolution, resolution), fit.ellipse),
                      "values": values, "reason": reason})
    todo = [p for p in pairs if p["reason"] is None] if segmenter is not None else []
    if todo:
        for pair, predicted in zip(todo, segmenter.masks([p["image"] for p in todo])):
            pair["values"]["segmenter_dice"] = float(dice(predicted, pair["mask"]))
            if pair["values"]["segmenter_dice"] < float(review["min_segmenter_dice"]):
                pair["reason"] = "segmenter_disagrees"
    return pairs


def review_note(review: Mapping, reasons: Mapping, by_class: Mapping, review_path: Path) -> str:
    rate = review["acceptance_rate"]
    return (f"Rejected (implausible outline or a failed check): {review['flagged']} of {review['attempted']}. "
            f"Automatic review: {review['accepted']} of {review['attempted']} pairs accepted "
            f"({rate:.1%}); thresholds: outline rules of fetal_bench.generators.outline, outline leak <= "
            f"{review['thresholds']['max_outline_leak']} gray levels"
            + (f", segmenter Dice >= {review['thresholds']['min_segmenter_dice']}" if review["segmenter"] else
               ", no segmenter check (none given)")
            + (f"; flagged by reason: {dict(sorted(reasons.items()))}, by class: {dict(sorted(by_class.items()))}; "
               f"flagged pairs, review.csv and the contact sheet rejected.png are in {review_path.name}/ for a person to "
               "correct" if reasons else "") + ".")

