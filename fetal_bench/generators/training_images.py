"""Reading a real split for generator training: selection, letterboxing or stretching, prompts, trimesters.

The source is any dataset directory (or Hub id) that :func:`fetal_bench.data.open_dataset`
opens. Its image columns are read undecoded (PNG bytes) and decoded per training step, so a
split of any size costs the memory of the Arrow file mapping, not of its pixels.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fetal_bench._io import seeded_key
from fetal_bench.data.images import open_cell, open_gray, open_mask
from fetal_bench.errors import DataError, FetalBenchError

__all__ = [
    "TRIMESTERS",
    "Letterbox",
    "SourceInfo",
    "decode_gray",
    "image_size",
    "decode_mask",
    "bucket_crop",
    "kohya_bucket",
    "letterbox",
    "open_source",
    "stretch",
    "outline",
    "select_per_class",
    "trimester_of",
]

TRIMESTERS: tuple[str, ...] = ("first", "second", "third")


@dataclass
class SourceInfo:
    """Where training data came from, for the LoRA's config and the synthetic card."""

    path: str
    config: str | None
    split: str
    dataset: str | None = None  # the catalog name recorded in build_info.json
    fingerprint: str | None = None  # build_info.json's content fingerprint (local builds)
    build_info_sha256: str | None = None
    license: str | None = None
    label_names: list[str] | None = None
    features: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_source(data: str | os.PathLike, *, config: str | None, split: str):
    """Open ``split`` of ``data`` with image columns undecoded; return ``(dataset, SourceInfo)``."""
    import datasets

    from fetal_bench.data.loading import open_dataset

    from fetal_bench.data.catalog import CATALOG

    path = Path(data)
    text = str(data)
    hub_like = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not path.exists() and text not in CATALOG and not hub_like:
        raise DataError(
            f"Dataset {data} does not exist.",
            "Pass a directory made by `fetal-bench datasets build` (e.g. `fetal-bench datasets build "
            "phantom --out DIR`) or a Hub dataset id.",
        )
    dataset = open_dataset(data, config=config, split=split)
    casts = {name: datasets.Image(decode=False) for name, feature in dataset.features.items()
             if isinstance(feature, datasets.Image)}
    for name, feature in casts.items():
        dataset = dataset.cast_column(name, feature)
    info = SourceInfo(path=str(path.resolve()) if path.exists() else str(data), config=config, split=split)
    label = dataset.features.get("label")
    if isinstance(label, datasets.ClassLabel):
        info.label_names = list(label.names)
    info.features = {name: type(feature).__name__ for name, feature in dataset.features.items()}
    build_info = path / "build_info.json"
    if build_info.is_file():
        from fetal_bench._io import sha256_file

        record = json.loads(build_info.read_text(encoding="utf-8"))
        info.dataset = record.get("dataset")
        info.fingerprint = record.get("fingerprint")
        info.build_info_sha256 = sha256_file(build_info)
        info.license = _card_license(path / "README.md")
    else:
        # A Hub dataset: `datasets` fingerprints what it loaded (content hash of the cache files).
        info.fingerprint = getattr(dataset, "_fingerprint", None)
    return dataset, info


def _card_license(card: Path) -> str | None:
    if not card.is_file():
        return None
    import yaml

    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return None
    try:
        header = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return None
    value = header.get("license")
    return value if isinstance(value, str) else None


def select_per_class(
    ids: Sequence[str], classes: Sequence[int], n: int | None, seed: int
) -> list[int]:
    """Row indices: per class, the ``n`` rows whose ``sha256("<seed>:<id>")`` is smallest.

    Hashing ids (not shuffling a list) makes the choice independent of row order and of which
    other rows exist. ``n=None`` keeps every row. The result is ordered by class, then hash.
    """
    keyed = sorted(
        (int(c), seeded_key(seed, row_id), i)
        for i, (row_id, c) in enumerate(zip(ids, classes))
    )
    chosen: list[int] = []
    taken: dict[int, int] = {}
    for c, _, i in keyed:
        if n is None or taken.get(c, 0) < n:
            chosen.append(i)
            taken[c] = taken.get(c, 0) + 1
    return chosen


def trimester_of(hc_mm: float, bounds: Sequence[float]) -> int:
    """0, 1 or 2 (first/second/third trimester) from a head circumference and the two bounds."""
    first, second = float(bounds[0]), float(bounds[1])
    if not first < second:
        raise FetalBenchError(
            f"data.trimester_hc_mm {list(bounds)} must be two increasing bounds (mm).",
            "E.g. [100.0, 260.0].",
        )
    if hc_mm is None or not math.isfinite(float(hc_mm)):
        raise DataError(f"Head circumference {hc_mm!r} is not a number.", "Use a labelled split.")
    return 0 if hc_mm < first else (1 if hc_mm < second else 2)


def image_size(cell: dict | None, row_id: str) -> tuple[int, int]:
    """(width, height) of an undecoded Image cell, from its header (no pixel decoding)."""
    with open_cell(cell, row_id, "image") as image:
        return image.size


def decode_gray(cell: dict | None, row_id: str) -> np.ndarray:
    """An undecoded Image cell -> uint8 (H, W)."""
    return np.asarray(open_gray(cell, row_id), dtype=np.uint8)


def decode_mask(cell: dict | None, row_id: str) -> np.ndarray:
    """An undecoded mask cell -> bool (H, W) (any non-zero value is foreground)."""
    return np.asarray(open_mask(cell, row_id)) > 0


@dataclass(frozen=True)
class Letterbox:
    """How an (H, W) image was placed on a square canvas: x' = (x + 0.5) * scale - 0.5 + ox."""

    scale: float
    ox: float
    oy: float
    size: int


def letterbox(array: np.ndarray, size: int, *, nearest: bool = False) -> tuple[np.ndarray, Letterbox]:
    """Resize ``array`` (H, W) to fit a ``size`` square keeping its aspect ratio; pad with zeros.

    Ultrasound images have a black background, so black padding adds no structure a model
    could learn as anatomy. ``nearest`` for masks (values stay 0/1).
    """
    from PIL import Image

    height, width = array.shape
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resample = Image.NEAREST if nearest else Image.BICUBIC
    resized = np.asarray(Image.fromarray(array).resize((new_w, new_h), resample))
    canvas = np.zeros((size, size), dtype=array.dtype)
    ox, oy = (size - new_w) // 2, (size - new_h) // 2
    canvas[oy : oy + new_h, ox : ox + new_w] = resized
    # Use the realised scale per axis' mean so geometry maps exactly onto the resized pixels.
    realised = (new_w / width + new_h / height) / 2
    return canvas, Letterbox(realised, float(ox), float(oy), size)


def stretch(array: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
    """Resize ``array`` (H, W) to a ``size`` square without keeping the aspect ratio: the
    mask-guided authors' ``transforms.Resize((512, 512))``, bilinear, for image and outline alike
    (train_text_to_image_lora_head_femur.py:551-552 at commit 200ae09). A sample then has the
    geometry of its training images stretched to a square, and stretching it to any input size
    gives the same geometry as stretching a real image there. ``nearest`` for masks."""
    from PIL import Image

    resample = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(array).resize((size, size), resample))


def _round_to_steps(x: float, steps: int) -> int:
    x = int(x + 0.5)
    return x - x % steps


def kohya_bucket(width: int, height: int, *, resolution: int, steps: int = 64, no_upscale: bool = True,
                 min_size: int = 256, max_size: int = 1024) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((resized_w, resized_h), (bucket_w, bucket_h))`` of an image, by kohya's bucketing rule.

    kohya sd-scripts ``BucketManager.select_bucket`` (``library/train_util.py``) with
    ``max_reso = resolution x resolution``. ``no_upscale`` (the FU-LoRA config's
    ``bucket_no_upscale: true``): an image larger than the maximum area is shrunk, keeping its
    aspect ratio, to that area with one side on the step grid; a smaller one is not resized; the
    bucket is the resized size rounded down to the step (a centre crop, never padding). Without
    ``no_upscale`` the image is scaled to cover the predefined bucket (``min_size``..``max_size``
    in ``steps``, ``model_util.make_bucket_resolutions``) nearest in aspect ratio.
    """
    aspect = width / height
    max_area = resolution * resolution
    if no_upscale:
        if width * height > max_area:
            resized_w = math.sqrt(max_area * aspect)
            resized_h = max_area / resized_w
            by_w = _round_to_steps(resized_w, steps)
            by_w_h = _round_to_steps(by_w / aspect, steps)
            by_h = _round_to_steps(resized_h, steps)
            by_h_w = _round_to_steps(by_h * aspect, steps)
            if abs(by_w / by_w_h - aspect) < abs(by_h_w / by_h - aspect):
                resized = (by_w, int(by_w / aspect + 0.5))
            else:
                resized = (int(by_h * aspect + 0.5), by_h)
        else:
            resized = (width, height)
        bucket = (resized[0] - resized[0] % steps, resized[1] - resized[1] % steps)
        if min(bucket) < steps:
            raise DataError(f"A {width}x{height} image is too small for {steps}-pixel buckets.",
                            "Use larger images, or data.resize: letterbox.")
        return resized, bucket
    resos = set()
    side = int(math.sqrt(max_area) // steps) * steps
    resos.add((side, side))
    w = min_size
    while w <= max_size:
        h = min(max_size, int((max_area // w) // steps) * steps)
        if h >= min_size:
            resos.update({(w, h), (h, w)})
        w += steps
    resos_sorted = sorted(resos)
    bucket = (width, height) if (width, height) in resos else min(
        resos_sorted, key=lambda r: abs(r[0] / r[1] - aspect))
    scale = bucket[1] / height if aspect > bucket[0] / bucket[1] else bucket[0] / width
    return (int(width * scale + 0.5), int(height * scale + 0.5)), bucket


def bucket_crop(array: np.ndarray, resized: tuple[int, int], bucket: tuple[int, int]) -> np.ndarray:
    """Resize ``array`` (H, W) to ``resized`` (w, h) with an area filter, then centre-crop to ``bucket``
    (kohya's ``trim_and_resize_if_required`` with ``random_crop: false``)."""
    from PIL import Image

    height, width = array.shape
    if (width, height) != tuple(resized):
        # PIL's BOX filter averages the source area of each output pixel, as cv2.INTER_AREA does
        # when shrinking (kohya's filter); the two differ in rounding, not in kind.
        array = np.asarray(Image.fromarray(array).resize(tuple(resized), Image.BOX))
    top = (array.shape[0] - bucket[1]) // 2
    left = (array.shape[1] - bucket[0]) // 2
    return np.ascontiguousarray(array[top : top + bucket[1], left : left + bucket[0]])


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """uint8 (0/255) outline of a binary mask: its inner boundary, thickened to ``width`` pixels.

    Odd widths are exact (the boundary dilated by ``(width - 1) // 2`` pixels each way); an even
    width is drawn as the odd width below it.
    """
    from scipy.ndimage import binary_dilation

    from fetal_bench.geometry import mask_boundary

    edge = mask_boundary(mask.astype(bool))
    if width >= 3:
        edge = binary_dilation(edge, iterations=(width - 1) // 2)
    return edge.astype(np.uint8) * 255
