"""`fetal-bench predict`: CSV for classifiers, masks beside it for segmenters."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fetal_bench.cli import cli
from fetal_bench.models import create_model, save_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


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
        result = CliRunner().invoke(cli, ["predict", "--model", "unet", "--random-init", "--output",
                                          str(tmp_path / "o.csv"), str(path)])
        assert result.exit_code == 2 and message in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no image here")
    result = CliRunner().invoke(cli, ["predict", "--model", "unet", "--random-init", "--output", str(tmp_path / "o.csv"),
                                      str(empty)])
    assert result.exit_code == 2 and f"Directory {empty} holds no PNG/TIFF/JPEG/BMP image." in result.output


@pytest.fixture()
def no_published_weights(monkeypatch, tmp_path):
    """An empty fetal-bench weights cache, offline, and no SonoNet path in the environment."""
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FETAL_BENCH_OFFLINE", "1")
    monkeypatch.delenv("FETAL_BENCH_SONONET16", raising=False)
    return tmp_path / "cache" / "weights"


@pytest.mark.parametrize("model_name", ["sononet16", "sononet16-planes", "sam"])
def test_a_pretrained_model_without_its_weights_is_refused(model_name, no_published_weights, image_files, tmp_path):
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", model_name, "--output", str(out), str(image_files[0])])
    assert result.exit_code == 2, result.output
    assert f"{model_name} predicts with its pretrained weights, which are not available" in result.output
    assert "Fix:" in result.output and "--random-init runs it untrained on purpose" in result.output
    if model_name.startswith("sononet16"):
        assert f"{no_published_weights}/SonoNet16.npz" in result.output.replace("\n", "")
    assert not out.exists()


@pytest.mark.parametrize("model_name", ["resnet18", "unet", "vit_lora", "fetalclip_lora"])
def test_a_model_without_checkpoint_has_nothing_trained_and_is_refused(model_name, no_published_weights, image_files,
                                                                        tmp_path):
    result = CliRunner().invoke(cli, ["predict", "--model", model_name, "--output", str(tmp_path / "p.csv"),
                                      str(image_files[0])])
    assert result.exit_code == 2, result.output
    assert f"Model {model_name!r} has no trained weights without --checkpoint" in result.output
    assert f"fetal-bench train {model_name} --task TASK --output DIR" in result.output


def test_random_init_is_an_explicit_choice(no_published_weights, image_files, tmp_path):
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", "sononet16", "--random-init", "--output", str(out),
                                      str(image_files[0])])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(out.open()))) == 1
    assert not no_published_weights.exists()  # nothing was fetched or cached


def test_a_directory_gives_its_images_sorted(image_files, tmp_path):
    folder = image_files[0].parent
    (folder / ".hidden.png").write_bytes(b"not read")
    (folder / "readme.txt").write_text("skipped")
    save_checkpoint(create_model("unet", image_size=(32, 48), base_channels=4, depth=2), tmp_path / "ckpt")
    out = tmp_path / "heads.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", "unet", "--checkpoint", str(tmp_path / "ckpt"),
                                      "--output", str(out), str(folder), str(image_files[0])])
    assert result.exit_code == 0, result.output
    files = [row["file"] for row in csv.DictReader(out.open())]
    assert files == [str(folder / name) for name in ("a.png", "b.tiff", "c.jpg", "d.png")] + [str(image_files[0])]


def test_sononet_predicts_with_its_published_weights_from_a_directory(shared_data, no_published_weights, monkeypatch,
                                                                      tmp_path):
    """No --checkpoint: SonoNet16.npz found through FETAL_BENCH_SONONET16; the 13 frames as named."""
    monkeypatch.setenv("FETAL_BENCH_SONONET16", str(shared_data / "sononet16" / "SonoNet16.npz"))
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", "--model", "sononet16", "--no-progress", "--output", str(out),
                                      str(shared_data / "sononet16" / "example_images")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    names = [row["file"].rsplit("/", 1)[-1] for row in rows]
    assert names == sorted(names) and len(names) == 13
    from test_sononet import EXPECTED

    assert {name.removesuffix(".tiff"): row["label"] for name, row in zip(names, rows)} == EXPECTED
