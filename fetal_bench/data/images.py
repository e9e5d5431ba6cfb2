"""The one decoder of stored images: an undecoded ``datasets`` Image cell -> a PIL image.

Every path that reads pixels from a built dataset (the training/evaluation loader, the decoded
cache, the generators' data) opens cells here, so they accept and refuse the same files: images
become 8-bit gray (RGB/palette files are gray data in a colour container); high-bit-depth images
are refused, because ``convert("L")`` would clip them rather than scale them; masks keep their
label values and must have their image's size.
"""

from __future__ import annotations

import io

from fetal_bench.errors import DataError


def open_cell(cell: dict | None, row_id: str, what: str):
    """An Image cell left undecoded (``{"bytes", "path"}``) -> a lazily decoded PIL image."""
    from PIL import Image

    if cell is None:
        raise DataError(
            f"Row {row_id!r} has no {what}.",
            f"Filter out rows without one, or pass {what}_column=None." if what == "mask" else "Rebuild the dataset.",
        )
    if cell.get("bytes") is not None:
        return Image.open(io.BytesIO(cell["bytes"]))
    if cell.get("path"):
        # HF datasets may reference files instead of embedding them (ours embed).
        return Image.open(cell["path"])
    raise DataError(f"Row {row_id!r}: the {what} has neither bytes nor a path.", "Rebuild the dataset.")


def open_gray(cell: dict | None, row_id: str):
    """The image of a cell as 8-bit gray (mode L); high bit depth is refused."""
    image = open_cell(cell, row_id, "image")
    if image.mode == "L":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        raise DataError(
            f"Row {row_id!r}: image mode {image.mode!r} (high bit depth) is not supported.",
            "Store 8-bit images (mode L) in the dataset.",
        )
    return image.convert("L")


def open_mask(cell: dict | None, row_id: str, image_size: tuple[int, int] | None = None):
    """The mask of a cell with its label values (L, P or 1-bit as stored); ``image_size``
    ((height, width) of its image), when given, must match."""
    mask = open_cell(cell, row_id, "mask")
    if image_size is not None and (mask.height, mask.width) != tuple(image_size):
        raise DataError(
            f"Row {row_id!r}: the mask is {mask.width}x{mask.height}, the image "
            f"{image_size[1]}x{image_size[0]}.",
            "Rebuild the dataset; a mask must have its image's size.",
        )
    # L/P hold label values as they are; "1" reads as bool (0/1) through numpy.
    return mask if mask.mode in ("L", "P", "1") else mask.convert("L")
