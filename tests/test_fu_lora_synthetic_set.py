"""The FU-LoRA authors' synthetic set (Zenodo 13228158) builds from a local copy: generated stand-in
images under the real file names of their synthetic_train_5000.csv."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fetal_bench.errors import DataError


@pytest.fixture
def raw(fu_lora_lists, tmp_path_factory):
    from fetal_bench.data.fu_lora_lists import synthetic_images

    root = tmp_path_factory.mktemp("zenodo13228158")
    folder = root / "synthetic_train_5000"  # the folder the authors' notebook reads (cell 25)
    folder.mkdir()
    for index, stem in enumerate(synthetic_images()):
        # 8x8 stand-ins whose first pixel encodes the row, so the test can check which file went where.
        pixels = np.full((8, 8), index % 251, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{stem}.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "unrelated.png")
    return root


def test_builds_from_the_published_names_with_provenance(raw, tmp_path):
    import datasets

    from fetal_bench.data.builders import build_dataset

    result = build_dataset("fu-lora-synthetic", tmp_path / "out", raw_dir=raw)
    split = result.configs["default"]["train"]
    assert split.num_examples == 5000
    assert split.label_counts == {"Fetal abdomen": 1000, "Fetal brain": 1000, "Fetal femur": 1000,
                                  "Fetal thorax": 1000, "Other": 1000}
    assert any("1 PNG files" in w for w in result.warnings)
    ds = datasets.load_dataset(str(tmp_path / "out"), split="train")
    row = ds[0]
    assert row["id"] == "00000-2671683618" and ds.features["label"].int2str(row["label"]) == "Fetal abdomen"
    assert np.asarray(row["image"])[0, 0] == 0 and np.asarray(ds[300]["image"])[0, 0] == 300 % 251
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["dataset"] == "fu-lora-synthetic"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "13228158" in card and "Wang" in card


def test_a_missing_image_is_a_clear_error(raw, tmp_path):
    from fetal_bench.data.builders import build_dataset

    victim = raw / "synthetic_train_5000" / "00001-2671683619.png"
    data = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(DataError, match="1 of the 5000 images.*00001-2671683619.png"):
            build_dataset("fu-lora-synthetic", tmp_path / "out", raw_dir=raw)
    finally:
        victim.write_bytes(data)
