"""The training data of mask-guided diffusion: head images with masks, and their classes.

Either a dataset of the ``hc18`` schema (``image, mask, head_circumference_mm, pixel_size_mm``)
or the authors' folder layout (``image/NAME.png`` + ``mask/NAME_Annotation.png``). Classes are
trimesters by head circumference (HC18 records no gestational age: HC < 100 mm is the first
trimester, 100 <= HC < 260 mm the second, HC >= 260 mm the third, the median HC at 14 and 28
weeks), or one class for every image (the notebook recipe).
"""

from __future__ import annotations

import collections
import hashlib
import io
import statistics
from pathlib import Path

import numpy as np

from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.generators.training_images import TRIMESTERS

__all__ = ["check_head_columns", "is_pair_folder", "nominal_pixel_sizes", "open_pair_folder", "row_classes",
           "trimesters"]


def check_head_columns(dataset, info, needed=("image", "mask", "head_circumference_mm", "pixel_size_mm")) -> None:
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise DataError(
            f"Dataset {info.path} (config {info.config!r}, split {info.split!r}) lacks {', '.join(missing)}: "
            "mask-guided training needs head images with masks, pixel sizes and head circumferences.",
            "Use an hc18-schema set: `--config head` of the phantom set, or hc18.",
        )


def trimesters(dataset, bounds) -> list[int]:
    from fetal_bench.generators.training_images import trimester_of

    values = dataset["head_circumference_mm"]
    ids = dataset["id"]
    out = []
    for row_id, hc in zip(ids, values):
        if hc is None:
            raise DataError(f"Row {row_id!r} has no head circumference.", "Use a labelled split (not challenge_test).")
        out.append(trimester_of(hc, bounds))
    return out


def is_pair_folder(data: str | Path) -> bool:
    """The authors' training layout: ``image/NAME.png`` and ``mask/NAME_Annotation.png``."""
    path = Path(data)
    return (path / "image").is_dir() and (path / "mask").is_dir()


_MAX_PAIR_FILE_BYTES = 64 * 1024 * 1024


def open_pair_folder(data: str | Path):
    """Read the authors' folder layout into a dataset (id, image, mask) and its SourceInfo.

    Each outline ``mask/NAME_Annotation.png`` (0/255) is filled into a 0/1 head mask, as HC18's
    are (the outline is redrawn from it for training). Every image needs its outline.
    """
    import datasets
    from PIL import Image
    from scipy import ndimage

    from fetal_bench._io import UnreadableFile, read_regular_file, sha256_bytes
    from fetal_bench.data.writer import encode_png
    from fetal_bench.generators.training_images import SourceInfo

    root = Path(data)
    images = sorted(root.joinpath("image").glob("*.png"))
    if not images:
        raise DataError(f"{root / 'image'} holds no PNG images.", "Pass the authors' folder: image/NAME.png + mask/NAME_Annotation.png.")
    ids, image_cells, mask_cells, digests = [], [], [], []
    for path in images:
        outline_path = root / "mask" / f"{path.stem}_Annotation.png"
        if not outline_path.is_file():
            raise DataError(f"{path.name} has no outline {outline_path}.", "Add mask/NAME_Annotation.png for every image.")
        try:
            raw_image = read_regular_file(path, max_bytes=_MAX_PAIR_FILE_BYTES)
            raw_outline = read_regular_file(outline_path, max_bytes=_MAX_PAIR_FILE_BYTES)
            with Image.open(io.BytesIO(raw_image)) as image, Image.open(io.BytesIO(raw_outline)) as outline:
                size, outline_size = image.size, outline.size
                filled = ndimage.binary_fill_holes(np.asarray(outline.convert("L")) > 127)
        except (UnreadableFile, OSError) as error:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"Cannot read the pair {path.name}: {error}", "Pass PNG images and outlines (regular files).") from None
        if size != outline_size:
            raise DataError(f"{path.name} is {size} but its outline is {outline_size}.", "Use outlines drawn on the image.")
        ids.append(path.stem)
        image_cells.append({"bytes": raw_image, "path": None})
        mask_cells.append({"bytes": encode_png(filled.astype(np.uint8)), "path": None})
        digests.append(f"{path.name}:{sha256_bytes(raw_image)}:{sha256_bytes(raw_outline)}")
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(decode=False),
                                  "mask": datasets.Image(decode=False)})
    dataset = datasets.Dataset.from_dict({"id": ids, "image": image_cells, "mask": mask_cells}, features=features)
    info = SourceInfo(path=str(root.resolve()), config=None, split="pairs", dataset="image-outline pair folder",
                      fingerprint=hashlib.sha256("\n".join(digests).encode()).hexdigest())
    info.features = {"id": "Value", "image": "Image", "mask": "Image"}
    return dataset, info


def _image_size(cell: dict) -> tuple[int, int]:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(cell["bytes"])) as image:  # reads the header only
        return image.height, image.width


def row_classes(dataset, cfg: dict) -> tuple[list[int], list[str]]:
    """Each row's class index and the class names: trimesters by HC, or one class for all."""
    rule = cfg["data"]["classes"]
    if rule == "single":
        return [0] * len(dataset), [str(cfg["data"]["class_name"])]
    if rule != "trimester":
        raise FetalBenchError(f"data.classes {rule!r} is not trimester or single.", "Use `trimester` or `single`.")
    return trimesters(dataset, cfg["data"]["trimester_hc_mm"]), list(TRIMESTERS)


def nominal_pixel_sizes(dataset, rows: list[int], classes: list[int], resolution: int,
                        resize: str = "letterbox") -> dict[int, float | list[float] | None]:
    """Per class: the median pixel size (mm) of its training images at the generation resolution;
    None where the data has no pixel size.

    ``letterbox``: one size, pixel_size * longer side / resolution. ``stretch``: the pixel is no
    longer square, so ``[row, column]`` sizes, pixel_size * (height, width) / resolution.
    """
    sizes: dict[int, list] = collections.defaultdict(list)
    has_size = "pixel_size_mm" in dataset.column_names
    for r in rows:
        value = dataset[r]["pixel_size_mm"] if has_size else None
        if value is not None:
            height, width = _image_size(dataset[r]["image"])
            if resize == "stretch":
                sizes[classes[r]].append((float(value) * height / resolution, float(value) * width / resolution))
            else:
                sizes[classes[r]].append(float(value) * max(height, width) / resolution)
    out: dict[int, float | list[float] | None] = {}
    for c in sorted(set(classes[r] for r in rows)):
        if not sizes[c]:
            out[c] = None
        elif resize == "stretch":
            out[c] = [statistics.median(v[0] for v in sizes[c]), statistics.median(v[1] for v in sizes[c])]
        else:
            out[c] = statistics.median(sizes[c])
    return out
