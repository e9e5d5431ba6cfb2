"""The mask-guided authors' 60 HC18 images (issue 24): the mapping from their names to HC18's,
checked against the image bytes of the shared HC18 copy, and the README recipe trains on them."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from fetal_bench.data.mask_guided_lists import MASK_GUIDED_README_IMAGES, pixel_digest
from fetal_bench.generators.training_images import trimester_of


def _gray(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def _csv_rows(hc18) -> list[dict]:
    with open(hc18 / "training_set_pixel_size_and_HC.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_list_holds_20_images_per_trimester_once_each():
    assert len(MASK_GUIDED_README_IMAGES) == 60
    assert [sum(e.trimester == t for e in MASK_GUIDED_README_IMAGES) for t in (1, 2, 3)] == [20, 20, 20]
    assert len({e.authors_name for e in MASK_GUIDED_README_IMAGES}) == 60
    assert len({e.hc18_name for e in MASK_GUIDED_README_IMAGES}) == 60
    examples = {e.authors_name: e.hc18_name for e in MASK_GUIDED_README_IMAGES}
    assert examples["314_HC"] == "247_HC" and examples["997_HC"] == "803_HC"  # issue 24's examples


def test_every_authors_image_is_the_hc18_image_it_is_mapped_to(shared_data):
    """The pinned digests of the authors' files (their repository at 200ae09) against the shared
    HC18 copy's pixels: image and outline, 60 of 60."""
    hc18 = shared_data / "hc18"
    if not (hc18 / "training_set").is_dir():
        pytest.skip("the shared data has no hc18/")
    training = hc18 / "training_set"
    matched = 0
    for entry in MASK_GUIDED_README_IMAGES:
        assert pixel_digest(_gray(training / f"{entry.hc18_name}.png")) == entry.image_sha256, entry
        assert pixel_digest(_gray(training / f"{entry.hc18_name}_Annotation.png")) == entry.outline_sha256, entry
        matched += 1
    assert matched == 60
    # No other HC18 image has those pixels, except the pair HC18 itself repeats (392_HC = 392_2HC).
    listed = {e.image_sha256 for e in MASK_GUIDED_README_IMAGES}
    others = [row["filename"][:-4] for row in _csv_rows(hc18)
              if row["filename"][:-4] not in {e.hc18_name for e in MASK_GUIDED_README_IMAGES}
              and pixel_digest(_gray(training / row["filename"])) in listed]
    assert others == ["392_HC"]


def test_their_names_are_csv_rows_and_their_folders_are_our_trimesters(shared_data):
    hc18 = shared_data / "hc18"
    if not (hc18 / "training_set").is_dir():
        pytest.skip("the shared data has no hc18/")
    rows = _csv_rows(hc18)
    by_name = {row["filename"][:-4]: row for row in rows}
    by_row = [e for e in MASK_GUIDED_README_IMAGES
              if rows[int(e.authors_name.split("_")[0]) - 1]["filename"][:-4] == e.hc18_name]
    assert len(by_row) == 50  # the 1-based CSV row rule; the other 10 are siblings in the same exam
    for entry in MASK_GUIDED_README_IMAGES:
        row_name = rows[int(entry.authors_name.split("_")[0]) - 1]["filename"][:-4]
        assert row_name.split("_")[0] == entry.hc18_name.split("_")[0], entry  # always the same exam
        hc = float(by_name[entry.hc18_name]["head circumference (mm)"])
        assert trimester_of(hc, (100.0, 260.0)) == entry.trimester - 1, (entry, hc)


def test_readme_recipe_trains_on_the_authors_60(hc18_real_build, tmp_path):
    from fetal_bench.generators import mask_guided

    data, _ = hc18_real_build
    config = mask_guided.train(data=data, output=tmp_path / "lora", base="tiny", max_steps=1)
    record = config["data"]
    assert record["n_images"] == 60 and record["split"] == "train+validation+test"
    names = sorted(e.hc18_name for e in MASK_GUIDED_README_IMAGES)
    assert record["image_ids_sha256"] == hashlib.sha256("\n".join(names).encode()).hexdigest()
    assert [(c["name"], c["n_images"]) for c in record["classes"]] == [("first", 20), ("second", 20), ("third", 20)]
    assert record["resize"] == "stretch" and record["selection"].startswith("the authors' list readme-hc18-60")
    sizes = record["classes"][0]["nominal_pixel_size_mm"]
    assert isinstance(sizes, list) and len(sizes) == 2 and sizes[0] != sizes[1]  # stretched: not a square pixel
    assert json.loads((tmp_path / "lora" / "generator_config.json").read_text())["data"]["n_images"] == 60
