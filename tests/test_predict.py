"""`fetal-bench predict`: CSV for classifiers, masks beside it for segmenters."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fetal_bench.cli import cli
from fetal_bench.models import create_model, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.models.weights.PretrainedWeightsWarning")


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """Three gray images in three formats, of two sizes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for name, size in (("a.png", (60, 80)), ("b.tiff", (60, 80)), ("c.jpg", (45, 70))):
        pixels = (rng.random(size) * 255).astype(np.uint8)
        path = folder / name
        Image.fromarray(pixels).save(path)
        paths.append(path)
    rgb = folder / "d.png"
    Image.fromarray((rng.random((50, 50, 3)) * 255).astype(np.uint8), "RGB").save(rgb)
    return [*paths, rgb]


def test_classifier_writes_labels_scores_and_probabilities(image_files, tmp_path):
    labels = ["abdomen", "brain", "femur", "thorax"]
    save_checkpoint(create_model("resnet18", labels=labels, image_size=(32, 32), pretrained=False), tmp_path / "ckpt")
    out = tmp_path / "preds" / "planes.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", "resnet18", "--checkpoint", str(tmp_path / "ckpt"),
                                      "--output", str(out), *map(str, image_files)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "label", "score", *labels]
    assert [row["file"] for row in rows] == [str(p) for p in image_files]
    for row in rows:
        proba = [float(row[label]) for label in labels]
        assert abs(sum(proba) - 1) < 1e-4 and row["label"] == labels[int(np.argmax(proba))]
        assert float(row["score"]) == pytest.approx(max(proba), abs=1e-5)


@pytest.mark.parametrize("model_name", ["unet", "sam"])
def test_segmenter_writes_native_size_masks(model_name, image_files, tmp_path):
    cfg = {"image_size": (32, 48), "base_channels": 4, "depth": 2} if model_name == "unet" else \
        {"backend": "segment-anything", "variant": "tiny", "pretrained": False}
    save_checkpoint(create_model(model_name, **cfg), tmp_path / "ckpt")
    out = tmp_path / "heads.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", model_name, "--checkpoint", str(tmp_path / "ckpt"),
                                      "--output", str(out), *map(str, image_files)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [row["file"] for row in rows] == [str(p) for p in image_files]
    assert {"mask", "foreground_fraction", "ellipse_perimeter_px"} <= set(rows[0])
    for row, path in zip(rows, image_files):
        mask = Image.open(out.parent / row["mask"])
        assert mask.size == Image.open(path).size
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_unreadable_and_unsupported_files_are_clear_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    for path, message in ((text, "not a PNG/TIFF/JPEG"), (broken, "Cannot read image")):
        result = CliRunner().invoke(cli, ["predict", "--model", "unet", "--output", str(tmp_path / "o.csv"), str(path)])
        assert result.exit_code == 2 and message in result.output
