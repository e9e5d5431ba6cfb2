"""One image decoder: the loader and the generators accept and refuse the same stored images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fetal_bench.data.images import open_gray, open_mask
from fetal_bench.errors import DataError
from fetal_bench.generators.training_images import decode_gray, decode_mask


def _cell(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def test_a_16_bit_image_is_refused_on_every_path_rather_than_clipped():
    deep = _cell(Image.fromarray(np.full((4, 6), 4000, dtype=np.uint16)))
    for decode in (open_gray, decode_gray):
        with pytest.raises(DataError, match=r"Row 'r1': image mode 'I;16' \(high bit depth\) is not supported"):
            decode(deep, "r1")


def test_colour_containers_become_gray_and_masks_keep_their_labels():
    rgb = _cell(Image.fromarray(np.full((4, 6, 3), 77, dtype=np.uint8)))
    assert np.asarray(open_gray(rgb, "r")).tolist() == [[77] * 6] * 4
    assert decode_gray(rgb, "r").dtype == np.uint8 and decode_gray(rgb, "r").shape == (4, 6)
    labels = np.zeros((4, 6), dtype=np.uint8)
    labels[1:3, 2:5] = 1
    mask = _cell(Image.fromarray(labels))
    assert np.array_equal(np.asarray(open_mask(mask, "r", (4, 6))), labels)
    assert decode_mask(mask, "r").sum() == 6


def test_a_missing_cell_or_a_mask_of_another_size_is_a_clear_error():
    with pytest.raises(DataError, match="Row 'r' has no mask"):
        decode_mask(None, "r")
    mask = _cell(Image.fromarray(np.zeros((5, 6), dtype=np.uint8)))
    with pytest.raises(DataError, match="the mask is 6x5, the image 6x4"):
        open_mask(mask, "r", (4, 6))
