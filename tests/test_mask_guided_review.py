"""Mask-guided recipes by name and the reviewable check of generated pairs (issue 13, item 7).

Tiny random base and stand-in images (phantom heads drawn as a trained model would draw them),
as in tests/test_generators.py: what is tested is the machinery and its exact outcomes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fetal_bench.errors import FetalBenchError

NOTEBOOK_PROMPT = "a photo of standard maternal fetal ultrasound planes, fetal head"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _heads(phantom: Path, n: int):
    """(image, filled mask) of the first ``n`` phantom heads of the validation split."""
    from fetal_bench.generators.training_images import decode_gray, decode_mask, open_source

    dataset, _ = open_source(phantom, config="head", split="validation")
    return [(decode_gray(dataset[i]["image"], dataset[i]["id"]), decode_mask(dataset[i]["mask"], dataset[i]["id"]))
            for i in range(n)]


@pytest.fixture(scope="module")
def pair_folder(phantom, tmp_path_factory) -> Path:
    """Three pairs in the authors' layout: image/NAME.png and mask/NAME_Annotation.png (outline)."""
    from fetal_bench.generators.training_images import outline

    root = tmp_path_factory.mktemp("authors") / "head"
    for k, (image, mask) in enumerate(_heads(phantom, 3)):
        name = f"Patient{k:05d}_Plane3_1_of_1"
        (root / "image").mkdir(parents=True, exist_ok=True)
        (root / "mask").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / "image" / f"{name}.png")
        Image.fromarray((outline(mask.astype(np.uint8), 2) > 0).astype(np.uint8) * 255).save(
            root / "mask" / f"{name}_Annotation.png")
    return root


@pytest.fixture(scope="module")
def notebook_lora(pair_folder, tmp_path_factory) -> Path:
    from fetal_bench.generators import mask_guided

    lora = tmp_path_factory.mktemp("notebook") / "L"
    mask_guided.train(data=pair_folder, output=lora, recipe="notebook-es-head", base="tiny", max_steps=2)
    return lora


def test_both_recipes_by_name():
    from fetal_bench.generators.mask_guided import RECIPES, recipe_config

    assert set(RECIPES) == {"readme-hc18-trimesters", "notebook-es-head"}
    readme = recipe_config("readme-hc18-trimesters", "paper", None)
    notebook = recipe_config("notebook-es-head", "paper", None)
    assert (readme["data"]["classes"], readme["data"]["images_per_class"]) == ("trimester", 20)
    assert readme["data"]["prompt"] == "An ultrasound image of a fetal head, {trimester} trimester."
    assert (notebook["data"]["classes"], notebook["data"]["images_per_class"]) == ("single", None)
    assert notebook["data"]["prompt"] == NOTEBOOK_PROMPT and notebook["sample"]["per_class"] == 500
    # Both as the authors' dataset class ran: it never flips, whatever --random_flip says.
    assert readme["train"]["random_flip"] is False and notebook["train"]["random_flip"] is False
    for key in ("rank", "alpha"):
        assert readme["lora"][key] == notebook["lora"][key] == 128
    with pytest.raises(FetalBenchError, match="Unknown mask-guided recipe"):
        recipe_config("hc18", "paper", None)


def test_conditioned_variant_refuses_the_single_prompt_recipe(pair_folder, tmp_path):
    from fetal_bench.generators import mask_guided

    with pytest.raises(FetalBenchError, match="has no trimesters"):
        mask_guided.train(data=pair_folder, output=tmp_path / "L", variant="conditioned", recipe="notebook-es-head",
                          base="tiny", max_steps=1)


def test_notebook_recipe_trains_on_the_authors_folder_layout(notebook_lora, pair_folder):
    config = json.loads((notebook_lora / "generator_config.json").read_text())
    assert config["recipe"]["name"] == "notebook-es-head" and "sd_ft_runner.ipynb" in config["recipe"]["source"]
    data = config["data"]
    assert data["n_images"] == 3 and data["label_names"] == ["head"] and data["split"] == "pairs"
    assert data["classes"] == [{"label": 0, "name": "head", "prompt": NOTEBOOK_PROMPT, "n_images": 3,
                                "nominal_pixel_size_mm": None}]
    assert config["config"]["train"]["random_flip"] is False


def test_pair_folder_errors_are_clear(tmp_path):
    from fetal_bench.generators.mask_guided import open_pair_folder

    (tmp_path / "image").mkdir()
    (tmp_path / "mask").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "image" / "a.png")
    with pytest.raises(FetalBenchError, match="has no outline"):
        open_pair_folder(tmp_path)
    (tmp_path / "mask" / "a_Annotation.png").write_bytes(b"not a png")
    with pytest.raises(FetalBenchError, match="Cannot read the pair a.png"):
        open_pair_folder(tmp_path)
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "mask" / "a_Annotation.png")
    with pytest.raises(FetalBenchError, match=r"a.png is \(8, 8\) but its outline is \(9, 8\)"):
        open_pair_folder(tmp_path)


def _stand_in(phantom: Path, resolution: int, *, garbage: set[int], leak: set[int]):
    """Generated images as a trained model would draw them, some broken on purpose."""
    from fetal_bench.generators.training_images import letterbox, outline

    heads = _heads(phantom, 8)

    def images(pipe, batch, **_):
        out = []
        for item in batch:
            image, mask = heads[item.index % len(heads)]
            image, _ = letterbox(image, resolution)
            mask, _ = letterbox(mask.astype(np.uint8), resolution, nearest=True)
            line = outline(mask, 1) > 0
            rgb = np.stack([image, image, line * 255], axis=-1).astype(np.float32) / 255.0
            if item.index in garbage:  # the blue channel is noise: no head outline
                rgb[..., 2] = np.random.default_rng(item.seed).random((resolution, resolution)) > 0.9
            if item.index in leak:  # the outline is copied into the image channel
                rgb[..., 0][line] = 1.0
            out.append(rgb)
        return np.stack(out)

    return images


def test_review_flags_pairs_and_writes_them_for_correction(notebook_lora, phantom, tmp_path, monkeypatch):
    from fetal_bench.generators import mask_guided, sampling
    from fetal_bench.generators.mask_guided import open_pair_folder

    monkeypatch.setattr(sampling, "pipeline_images", _stand_in(phantom, 64, garbage={1}, leak={3}))
    output = tmp_path / "S"
    mask_guided.sample(lora=notebook_lora, per_class=6, seed=7, output=output)
    import datasets

    ds = datasets.load_dataset(str(output), split="train")
    kept = sorted(int(i.rsplit("-", 1)[1]) for i in ds["id"])
    assert kept == [0, 2, 4, 5]
    assert ds.features["label"].names == ["head"] and set(ds["prompt"]) == {NOTEBOOK_PROMPT}
    assert set(ds["pixel_size_mm"]) == {None} and set(ds["head_circumference_mm"]) == {None}
    values = [json.loads(v) for v in ds["review"]]
    assert all(v["outline_leak"] <= 100.0 and v["segmenter_dice"] is None for v in values)

    review = output.with_name("S.review")
    summary = json.loads((review / "summary.json").read_text())
    assert (summary["attempted"], summary["accepted"], summary["flagged"]) == (6, 4, 2)
    assert summary["acceptance_rate"] == pytest.approx(4 / 6)
    assert summary["thresholds"]["max_outline_leak"] == 100.0 and summary["segmenter"] is None
    with open(review / "review.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["index"], r["reason"]) for r in rows][1] == ("3", "outline_leak")
    assert rows[0]["index"] == "1" and rows[0]["reason"] != "outline_leak"
    assert float(rows[1]["outline_leak"]) > 100.0
    with Image.open(review / "rejected.png") as sheet:
        assert sheet.size == (2 * 128, 128) and sheet.mode == "RGB"
    # The flagged pairs are in the authors' layout, ready to correct and read back.
    flagged, _ = open_pair_folder(review)
    assert sorted(flagged["id"]) == [r["name"] for r in rows]
    card = (output / "README.md").read_text()
    assert "Automatic review: 4 of 6 pairs accepted (66.7%)" in card and "S.review/" in card
    info = json.loads((output / "build_info.json").read_text())
    assert info["review"]["by_reason"]["outline_leak"] == 1 and info["generation"]["review"]["segmenter"] is None


def test_a_head_segmenter_checks_each_outline(notebook_lora, phantom, tmp_path, monkeypatch):
    from fetal_bench.generators import mask_guided, review, sampling
    from fetal_bench.models import create_model, get_model_info, save_checkpoint

    checkpoint = tmp_path / "unet"
    save_checkpoint(create_model("unet", **get_model_info("unet").tiny), checkpoint)
    monkeypatch.setattr(sampling, "pipeline_images", _stand_in(phantom, 64, garbage=set(), leak=set()))
    real_masks = review.Segmenter.masks
    seen = []

    def masks(self, images):
        predicted = real_masks(self, images)  # the real model runs (shapes, loading) ...
        seen.extend(p.shape for p in predicted)
        # ... but its untrained output is replaced: a perfect head for even seeds, nothing for odd.
        return [np.zeros_like(p) if k % 2 else None for k, p in enumerate(predicted)]

    monkeypatch.setattr(review.Segmenter, "masks", masks)
    import fetal_bench.metrics.segmentation as seg

    monkeypatch.setattr(seg, "dice", lambda p, t: 1.0 if p is None else 0.0)  # None stands for "agrees"
    output = tmp_path / "S"
    mask_guided.sample(lora=notebook_lora, per_class=4, seed=0, output=output, batch_size=4,
                       review_model="unet", review_checkpoint=checkpoint)
    assert seen == [(64, 64)] * 4
    summary = json.loads((output.with_name("S.review") / "summary.json").read_text())
    assert summary["by_reason"] == {"segmenter_disagrees": 2} and summary["segmenter"]["model"] == "unet"
    info = json.loads((output / "build_info.json").read_text())
    assert info["generation"]["review"]["segmenter"]["weights_sha256"]
    with pytest.raises(FetalBenchError, match="both --review-model and --review-checkpoint"):
        mask_guided.sample(lora=notebook_lora, per_class=1, output=tmp_path / "T", review_model="unet")


def test_outline_leak_measure():
    from fetal_bench.generators.review import outline_leak

    image = np.full((40, 40), 50, np.uint8)
    line = np.zeros((40, 40), bool)
    line[20, 5:35] = True
    assert outline_leak(image, line) == 0.0
    image[line] = 230
    assert outline_leak(image, line) == 180.0
    assert outline_leak(image, np.zeros_like(line)) is None


def test_cli_offers_the_recipes_and_the_review(pair_folder, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    runner = CliRunner()
    trained = runner.invoke(cli, ["generate", "mask-guided", "train", "--recipe", "notebook-es-head", "--data",
                                  str(pair_folder), "--base", "tiny", "--max-steps", "1", "--output", str(tmp_path / "L")])
    assert trained.exit_code == 0, trained.output
    config = json.loads((tmp_path / "L" / "generator_config.json").read_text())
    assert config["recipe"]["name"] == "notebook-es-head"
    sample_help = runner.invoke(cli, ["generate", "mask-guided", "sample", "--help"]).output
    assert "--review-model" in sample_help and "--review-checkpoint" in sample_help and "--review-dir" in sample_help
    bad = runner.invoke(cli, ["generate", "mask-guided", "train", "--recipe", "hc18", "--data", str(pair_folder),
                              "--output", str(tmp_path / "M")])
    assert bad.exit_code == 2 and "notebook-es-head" in bad.output


def test_real_hc18_skulls_do_not_count_as_outline_leak(shared_data):
    """The leak threshold (100 gray levels) leaves real heads alone: HC18 images with their own
    outline, drawn as the generator is trained to draw it, stay well below it."""
    from scipy import ndimage

    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.training_images import letterbox, outline
    from fetal_bench.generators.review import outline_leak

    threshold = default_config("mask-guided")["review"]["max_outline_leak"]
    files = sorted((shared_data / "hc18" / "training_set").glob("*_HC.png"))[::5]
    assert len(files) == 162
    leaks = []
    for path in files:
        image, _ = letterbox(np.asarray(Image.open(path).convert("L")), 512)
        drawn = np.asarray(Image.open(path.with_name(path.stem + "_Annotation.png"))) > 127
        mask, _ = letterbox(ndimage.binary_fill_holes(drawn).astype(np.uint8), 512, nearest=True)
        leaks.append(outline_leak(image, outline(mask, 3) > 0))
    assert max(leaks) < threshold
    assert max(leaks) == 56.5 and float(np.median(leaks)) == 12.0  # docs/generators.md quotes these
