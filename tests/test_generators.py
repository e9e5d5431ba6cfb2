"""Generators on CPU with the tiny random pipeline: FU-LoRA, mask-guided diffusion, scores.

Every command runs on the embedded phantom set and ``--base tiny`` (a UNet/VAE/CLIP of ~1M
parameters built in-process from configs), so the images are noise; what is tested is the
machinery: training, checkpoints and resumption, LoRA save/reload, sharded resumable sampling,
the synthetic dataset and its provenance, reproducibility, and the scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.errors import FetalBenchError

PROVENANCE = {"seed", "prompt", "generator", "generator_revision", "base_model", "lora_sha256", "scheduler",
              "steps", "guidance", "lora_scale", "config_sha256"}
HC18_COLUMNS = {"id", "image", "mask", "subject_id", "pixel_size_mm", "head_circumference_mm"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # The tiny models' ops are microseconds long; OpenMP threads only add synchronisation (and
    # on shared CI cores, waiting for descheduled threads costs 100x). Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def run_fails(*args: str) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    return result.output


def load(path: Path):
    import datasets

    return datasets.load_dataset(str(path), split="train")


def image_bytes(path: Path, column: str = "image") -> list[bytes]:
    import datasets

    ds = load(path).cast_column(column, datasets.Image(decode=False))
    return [cell["bytes"] for cell in ds[column]]


# ---------------------------------------------------------------------------------------------
# The tiny pipeline
# ---------------------------------------------------------------------------------------------


def test_tiny_tokenizer_tokenizes_every_prompt_word_as_one_token():
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    prompts = list(default_config("fu-lora")["data"]["class_prompts"].values())
    template = default_config("mask-guided")["data"]["prompt"]
    prompts += [template.format(trimester=t) for t in ("first", "second", "third")]
    for prompt in prompts:
        tokens = tokenizer.convert_ids_to_tokens(tokenizer(prompt).input_ids)
        words = prompt.lower().replace(",", " ,").replace(".", " .").split()
        assert tokens == ["<|startoftext|>", *[w + "</w>" for w in words], "<|endoftext|>"], prompt
    # Unknown words still tokenize (by letters), and different prompts give different ids.
    assert len(tokenizer("zebra").input_ids) > 3
    assert tokenizer(prompts[0]).input_ids != tokenizer(prompts[1]).input_ids


def test_tiny_base_is_deterministic():
    from fetal_bench.generators.tiny import build_tiny_components, tiny_identity

    state = torch.get_rng_state()
    first, second = tiny_identity(), tiny_identity(build_tiny_components())
    assert first == second
    assert torch.equal(state, torch.get_rng_state())  # building it does not touch the global RNG


# ---------------------------------------------------------------------------------------------
# FU-LoRA: the "Done when" commands
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fu_lora_run(phantom, tmp_path_factory):
    root = tmp_path_factory.mktemp("fu-lora")
    lora = root / "L"
    run("generate", "fu-lora", "train", "--data", phantom, "--config", "planes", "--base", "tiny",
        "--max-steps", "4", "--output", lora)
    for name in ("S", "S2"):
        run("generate", "fu-lora", "sample", "--lora", lora, "--per-class", "2", "--seed", "7", "--output", root / name)
    return root


def test_fu_lora_done_when(fu_lora_run, phantom):
    lora, s = fu_lora_run / "L", fu_lora_run / "S"
    assert (lora / "pytorch_lora_weights.safetensors").is_file()
    config = json.loads((lora / "generator_config.json").read_text())
    assert config["base"]["kind"] == "tiny" and config["training"]["steps"] == 4
    assert config["data"]["fingerprint"] == json.loads((phantom / "build_info.json").read_text())["fingerprint"]
    assert [c["prompt"] for c in config["data"]["classes"]] == [
        "a photo of fetal abdomen", "a photo of fetal brain", "a photo of fetal femur", "a photo of fetal thorax"]
    assert config["config"]["lora"]["rank"] == 128 and config["config"]["train"]["clip_skip"] == 2

    ds = load(s)
    assert {"label", "seed", "prompt", "generator"} <= set(ds.column_names)
    assert PROVENANCE <= set(ds.column_names)
    assert ds.features["label"].names == ["abdomen", "brain", "femur", "thorax"]
    assert len(ds) == 8 and sorted(ds["label"]) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds["seed"] == list(range(7, 15)) and len(set(ds["id"])) == 8
    row = ds[0]
    assert row["generator"] == "fu-lora" and row["scheduler"] == "euler" and row["steps"] == 20
    assert row["guidance"] == 7.0 and math.isclose(row["lora_scale"], 0.3, rel_tol=1e-6)
    assert row["lora_sha256"] == config["lora_sha256"] and row["base_model"].startswith("tiny@")
    assert row["prompt"] == "a photo of fetal abdomen" and row["image"].size == (64, 64)
    card = (s / "README.md").read_text()
    assert "NOT clinical data" in card and "fetal-bench:generation-config" in card and "lora_scale: 0.3" in card
    # Same seed, same everything: identical bytes.
    assert image_bytes(s) == image_bytes(fu_lora_run / "S2")
    assert load(fu_lora_run / "S2")["config_sha256"] == ds["config_sha256"]


def test_lora_reload_into_fresh_pipeline_gives_identical_tensors(fu_lora_run):
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    from fetal_bench._io import sha256_file
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.common import apply_lora
    from fetal_bench.generators.lora import ADAPTER

    lora = fu_lora_run / "L"
    saved = load_file(str(lora / "pytorch_lora_weights.safetensors"))
    assert any(k.startswith("text_encoder.") for k in saved) and any(k.startswith("unet.") for k in saved)
    config = json.loads((lora / "generator_config.json").read_text())
    outputs = []
    for _ in range(2):
        pipe = load_base("tiny").pipeline()
        apply_lora(pipe, lora, config, scale=1.0)  # through peft, whatever transformers' own gate says
        loaded = {f"unet.{k}": v for k, v in convert_state_dict_to_diffusers(
            get_peft_model_state_dict(pipe.unet, adapter_name=ADAPTER)).items()}
        loaded.update({f"text_encoder.{k}": v for k, v in convert_state_dict_to_diffusers(
            get_peft_model_state_dict(pipe.text_encoder, adapter_name=ADAPTER)).items()})
        assert set(loaded) == set(saved)
        assert all(torch.equal(loaded[k], saved[k]) for k in saved)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            x, t = torch.randn(1, 4, 16, 16, generator=g), torch.tensor([500])
            outputs.append(pipe.unet(x, t, torch.randn(1, 77, 32, generator=g)).sample)
    assert torch.equal(outputs[0], outputs[1])
    # The recorded hash is the file's sha256, and training again gives the same file.
    assert sha256_file(lora / "pytorch_lora_weights.safetensors") == json.loads(
        (lora / "generator_config.json").read_text())["lora_sha256"]


def test_training_resumes_from_checkpoint_exactly(fu_lora_run, phantom, tmp_path):
    from fetal_bench.generators import fu_lora

    class Interrupt(Exception):
        pass

    def stop_at_2(step, total, loss):
        if step == 2:
            raise Interrupt

    out = tmp_path / "L"
    overrides = {"train": {"checkpoint_every": 2}}
    with pytest.raises(Interrupt):
        fu_lora.train(data=phantom, config="planes", base="tiny", max_steps=4, output=out,
                      generator_config=overrides, progress=stop_at_2)
    assert (out / "checkpoints" / "step-00000002" / "state.json").is_file()
    assert not (out / "generator_config.json").exists()
    with pytest.raises(FetalBenchError, match="training did not finish"):
        fu_lora.sample(lora=out, per_class=1, seed=0, output=tmp_path / "S")
    steps = []
    result = fu_lora.train(data=phantom, config="planes", base="tiny", max_steps=4, output=out,
                           generator_config=overrides, progress=lambda s, t, l: steps.append(s))
    assert steps == [3, 4] and result["training"]["resumed_from_step"] == 2
    assert not (out / "checkpoints").exists()
    # Bit-identical to the uninterrupted run of the fixture (checkpointing changes nothing).
    uninterrupted = json.loads((fu_lora_run / "L" / "generator_config.json").read_text())
    assert result["lora_sha256"] == uninterrupted["lora_sha256"]
    # A finished run is not retrained; another configuration in the same directory is refused.
    assert fu_lora.train(data=phantom, config="planes", base="tiny", max_steps=4, output=out,
                         generator_config=overrides)["created_at"] == result["created_at"]
    with pytest.raises(FetalBenchError, match="another configuration"):
        fu_lora.train(data=phantom, config="planes", base="tiny", max_steps=3, output=out)


def test_interrupted_sampling_resumes_to_the_exact_count(fu_lora_run, tmp_path):
    from fetal_bench.generators import fu_lora

    class Interrupt(Exception):
        pass

    def stop_after_2(done, total):
        if done == 2:
            raise Interrupt

    lora, out, work = fu_lora_run / "L", tmp_path / "S", tmp_path / "work"
    options = dict(lora=lora, per_class=2, seed=11, steps=4, batch_size=2, shard_size=2, work_dir=work)
    with pytest.raises(Interrupt):
        fu_lora.sample(output=out, on_shard=stop_after_2, **options)
    assert sorted(p.name for p in work.glob("*.parquet")) == ["shard-00000.parquet", "shard-00001.parquet"]
    assert not out.exists()
    # A different run cannot reuse this work directory.
    with pytest.raises(FetalBenchError, match="different sampling run"):
        fu_lora.sample(output=out, **{**options, "seed": 12})
    progress = []
    fu_lora.sample(output=out, on_shard=lambda done, total: progress.append((done, total)), **options)
    assert progress == [(3, 4), (4, 4)]  # only the missing shards were made
    assert not work.exists()
    ds = load(out)
    assert len(ds) == 8 and len(set(ds["id"])) == 8 and ds["seed"] == list(range(11, 19))
    fu_lora.sample(output=tmp_path / "fresh", **{**options, "work_dir": tmp_path / "work2"})
    assert image_bytes(out) == image_bytes(tmp_path / "fresh")


def test_an_image_depends_on_its_seed_not_on_its_batch(fu_lora_run, tmp_path):
    from fetal_bench.generators import fu_lora

    common = dict(lora=fu_lora_run / "L", per_class=1, seed=21, steps=4)
    fu_lora.sample(output=tmp_path / "b4", batch_size=4, **common)
    fu_lora.sample(output=tmp_path / "b1", batch_size=1, **common)
    batched, single = load(tmp_path / "b4"), load(tmp_path / "b1")
    for a, b in zip(batched, single):
        assert a["seed"] == b["seed"]
        diff = np.abs(np.asarray(a["image"], dtype=int) - np.asarray(b["image"], dtype=int))
        # Only floating-point summation order differs between batch sizes: at most a stray
        # pixel off by one gray level, never a different image.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_config_reproduces_a_split_from_its_card(fu_lora_run, tmp_path):
    from fetal_bench.generators.config import read_generation_config

    s = fu_lora_run / "S"
    # The directory (build_info.json), its card and a YAML copy all give the same config...
    recorded = read_generation_config(s)
    (tmp_path / "config.yaml").write_text((s / "README.md").read_text().split("```yaml\n")[1].split("```")[0])
    assert read_generation_config(s / "README.md") == recorded == read_generation_config(tmp_path / "config.yaml")
    # ... which regenerates the split (the LoRA is found at its recorded path).
    run("generate", "fu-lora", "sample", "--config", s / "README.md", "--output", tmp_path / "again")
    assert image_bytes(tmp_path / "again") == image_bytes(s)
    assert load(tmp_path / "again")["config_sha256"] == load(s)["config_sha256"]
    assert load(tmp_path / "again")["id"] == load(s)["id"]


def test_sampling_options_are_recorded(fu_lora_run, tmp_path):
    out = tmp_path / "S"
    run("generate", "fu-lora", "sample", "--lora", fu_lora_run / "L", "--per-class", "1", "--seed", "3",
        "--steps", "3", "--guidance", "2.5", "--lora-scale", "0.8", "--scheduler", "ddim", "--class", "femur",
        "--output", out)
    ds = load(out)
    assert ds["label"] == [2] and ds["seed"] == [3]  # --class femur: one class, indices restart
    assert (ds[0]["scheduler"], ds[0]["steps"], ds[0]["guidance"]) == ("ddim", 3, 2.5)
    assert math.isclose(ds[0]["lora_scale"], 0.8, rel_tol=1e-6)
    assert ds[0]["config_sha256"] != load(fu_lora_run / "S")[0]["config_sha256"]


# ---------------------------------------------------------------------------------------------
# Mask-guided diffusion
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_lora(phantom, tmp_path_factory) -> Path:
    lora = tmp_path_factory.mktemp("mask-guided") / "L"
    run("generate", "mask-guided", "train", "--data", phantom, "--config", "head", "--base", "tiny",
        "--max-steps", "4", "--output", lora)
    return lora


def test_mask_guided_paper_done_when_commands_on_tiny(paper_lora, tmp_path):
    config = json.loads((paper_lora / "generator_config.json").read_text())
    assert config["generator"] == "mask-guided" and config["variant"] == "paper"
    # HC 100-340 mm in the phantom: second and third trimesters only (bounds 100/260 mm).
    assert [c["name"] for c in config["data"]["classes"]] == ["second", "third"]
    assert config["data"]["classes"][0]["prompt"] == "An ultrasound image of a fetal head, second trimester."
    assert config["config"]["sample"]["scheduler"] == "unipc" and config["config"]["sample"]["lora_scale"] == 0.9
    # The random tiny base cannot draw a skull outline (its VAE does not even reconstruct one),
    # so every sample is rejected: a clear error with the counts, and no dataset.
    output = run_fails("generate", "mask-guided", "sample", "--lora", paper_lora, "--per-class", "2", "--seed", "7",
                       "--output", tmp_path / "S")
    assert "All 4 samples were rejected" in output and "Fix:" in output
    assert not (tmp_path / "S").exists() and not (tmp_path / "S.work").exists()


def _outline_images(phantom: Path, resolution: int, garbage: set[int]):
    """Stand-in for the diffusion model: phantom heads as the trained model would draw them."""
    from fetal_bench.generators.training_images import decode_gray, decode_mask, letterbox, open_source, outline

    dataset, _ = open_source(phantom, config="head", split="validation")

    def images(pipe, batch, **_):
        out = []
        for item in batch:
            row = dataset[item.index % len(dataset)]
            image, _ = letterbox(decode_gray(row["image"], row["id"]), resolution)
            mask, _ = letterbox(decode_mask(row["mask"], row["id"]).astype(np.uint8), resolution, nearest=True)
            rgb = np.stack([image, image, outline(mask, 1)], axis=-1).astype(np.float32) / 255.0
            if item.index in garbage:  # a sample whose "outline" is noise
                rgb[..., 2] = np.random.default_rng(item.seed).random((resolution, resolution)) > 0.9
            out.append(rgb)
        return np.stack(out)

    return images


def test_mask_guided_paper_postprocessing_end_to_end(paper_lora, phantom, tmp_path, monkeypatch):
    from fetal_bench.generators import mask_guided, sampling

    monkeypatch.setattr(sampling, "pipeline_images", _outline_images(phantom, 64, garbage={1}))
    for name in ("S", "S2"):
        mask_guided.sample(lora=paper_lora, per_class=3, seed=7, output=tmp_path / name)
    ds = load(tmp_path / "S")
    assert HC18_COLUMNS | PROVENANCE | {"label", "ellipse"} <= set(ds.column_names)
    assert {"label", "seed", "prompt", "generator"} <= set(ds.column_names)
    assert len(ds) == 5 and 1 not in [int(i.rsplit("-", 1)[1]) for i in ds["id"]]  # sample 1 rejected
    assert ds.features["label"].names == ["first", "second", "third"] and sorted(set(ds["label"])) == [1, 2]
    info = json.loads((tmp_path / "S" / "build_info.json").read_text())
    assert info["rejected"]["count"] == 1 and info["rejected"]["samples"][0]["index"] == 1
    assert "Rejected (implausible outline" in (tmp_path / "S" / "README.md").read_text()
    from fetal_bench.geometry import Ellipse, ellipse_mask, ellipse_perimeter, scaled_ellipse

    # The LoRA learnt stretched images (the authors' geometry): its pixels are not square, so each
    # class records [row, column] sizes, the rows no single pixel size, and HC is measured in mm.
    lora_classes = json.loads((paper_lora / "generator_config.json").read_text())["data"]["classes"]
    sizes = {c["label"]: c["nominal_pixel_size_mm"] for c in lora_classes}
    for row in ds:
        mask = np.asarray(row["mask"])
        ellipse = Ellipse(**json.loads(row["ellipse"]))
        assert set(np.unique(mask)) <= {0, 1} and np.array_equal(mask, ellipse_mask(mask.shape, ellipse))
        sy, sx = sizes[row["label"]]
        in_mm = scaled_ellipse(ellipse, sx, sy)
        assert row["pixel_size_mm"] is None
        assert math.isclose(row["head_circumference_mm"], ellipse_perimeter(in_mm.a, in_mm.b), rel_tol=1e-5)
        assert row["subject_id"] == row["id"] and row["generator"] == "mask-guided"
    assert image_bytes(tmp_path / "S") == image_bytes(tmp_path / "S2")
    assert image_bytes(tmp_path / "S", "mask") == image_bytes(tmp_path / "S2", "mask")


def test_mask_conditioned_done_when_and_masks_are_honoured(phantom, tmp_path):
    from fetal_bench.geometry import Ellipse, ellipse_mask
    from fetal_bench.generators.training_images import trimester_of

    lora = tmp_path / "L"
    run("generate", "mask-guided", "train", "--data", phantom, "--config", "head", "--base", "tiny",
        "--max-steps", "4", "--variant", "conditioned", "--output", lora)
    config = json.loads((lora / "generator_config.json").read_text())
    assert config["generator"] == "mask-conditioned" and (lora / "conv_in.safetensors").is_file()
    prior = config["shape_prior"]
    assert set(prior["classes"]) == {"1", "2"} and sum(c["n"] for c in prior["classes"].values()) == 96
    for name in ("S", "S2"):
        run("generate", "mask-guided", "sample", "--lora", lora, "--per-class", "2", "--seed", "7",
            "--output", tmp_path / name)
    ds = load(tmp_path / "S")
    assert {"label", "seed", "prompt", "generator", "condition"} | HC18_COLUMNS <= set(ds.column_names)
    assert len(ds) == 4 and ds["seed"] == [7, 8, 9, 10]
    for row in ds:
        requested = json.loads(row["condition"])
        mask = np.asarray(row["mask"])
        assert np.array_equal(mask, ellipse_mask(mask.shape, Ellipse(**requested["ellipse"])))
        assert trimester_of(row["head_circumference_mm"], [100.0, 260.0]) == row["label"]
    assert image_bytes(tmp_path / "S") == image_bytes(tmp_path / "S2")
    assert image_bytes(tmp_path / "S", "mask") == image_bytes(tmp_path / "S2", "mask")
    # The card's YAML holds the shape prior exactly (floats round-trip), so `--config` redraws
    # the same masks (sampling from a card is tested on FU-LoRA above).
    from fetal_bench.generators.config import read_generation_config

    recorded = json.loads((tmp_path / "S" / "build_info.json").read_text())["generation"]
    assert read_generation_config(tmp_path / "S" / "README.md")["shape_prior"] == recorded["shape_prior"]


def test_outline_to_ellipse_accepts_heads_and_rejects_the_rest():
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.training_images import outline
    from fetal_bench.generators.outline import ellipse_from_outline
    from fetal_bench.geometry import Ellipse, ellipse_mask

    params = default_config("mask-guided")["postprocess"]
    truth = Ellipse(250.0, 240.0, 150.0, 120.0, 0.4)
    ring = outline(ellipse_mask((512, 512), truth), 3) > 0
    fit = ellipse_from_outline(ring, params)
    assert fit.accepted and abs(fit.ellipse.cx - truth.cx) < 2 and abs(fit.ellipse.a - truth.a) < 3
    assert ellipse_from_outline(np.zeros((512, 512), bool), params).reason == "no_outline"
    noise = np.random.default_rng(0).random((512, 512)) > 0.97
    assert ellipse_from_outline(noise, params).reason in {"poor_support", "fit_failed", "size", "aspect", "outside"}
    arc = ring.copy()
    arc[:, 250:] = False
    assert ellipse_from_outline(arc, params).reason in {"low_coverage", "poor_support"}
    assert ellipse_from_outline(np.ones((512, 512), bool), params).reason == "blob"


def test_shape_prior_draws_are_seeded_inside_and_in_trimester(phantom):
    from fetal_bench.generators import mask_guided
    from fetal_bench.generators.training_images import trimester_of
    from fetal_bench.generators.shape_prior import draw_ellipse
    from fetal_bench.geometry import ellipse_perimeter

    prior = mask_guided.fit_prior(phantom, config="head", split="train")
    for trimester in (1, 2):
        for seed in range(5):
            e, mm = draw_ellipse(prior, trimester, np.random.default_rng(seed), 256, prior["trimester_hc_mm"])
            again = draw_ellipse(prior, trimester, np.random.default_rng(seed), 256, prior["trimester_hc_mm"])
            assert (e, mm) == again
            assert 0 <= e.cx - e.a and e.cx + e.a <= 256 or 0 <= e.cx - e.b  # centre well inside
            assert trimester_of(ellipse_perimeter(e.a, e.b) * mm, prior["trimester_hc_mm"]) == trimester
    with pytest.raises(FetalBenchError, match="no masks of trimester 1"):
        draw_ellipse(prior, 0, np.random.default_rng(0), 256, prior["trimester_hc_mm"])


# ---------------------------------------------------------------------------------------------
# Scores and errors
# ---------------------------------------------------------------------------------------------


def test_score_command_writes_strict_json_and_a_grid(fu_lora_run, phantom, tmp_path):
    from PIL import Image

    out = tmp_path / "score"
    output = run("generate", "score", fu_lora_run / "S", "--real", phantom, "--features", "random-cnn",
                 "--output", out)
    assert "FID" in output
    text = (out / "synthetic_quality.json").read_text()
    result = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))
    assert result["kind"] == "synthetic-quality" and result["feature_extractor"]["name"] == "random-cnn"
    assert result["real"]["config"] == "planes"  # taken from the synthetic card
    assert result["synthetic"]["n"] == 8 and result["real"]["n"] == 240
    assert result["counts"]["synthetic"] == {"abdomen": 2, "brain": 2, "femur": 2, "thorax": 2}
    values = {key: result["scores"][key]["value"] for key in ("fid", "kid", "precision", "recall")}
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values()), values
    assert values["fid"] > 0  # 8 synthetic images are not the 240 real ones
    # Precision counts covered synthetic images (of 8), recall covered real ones (of 240).
    assert 0 <= values["precision"] <= 1 and (values["precision"] * 8).is_integer()
    assert 0 <= values["recall"] <= 1 and round(values["recall"] * 240, 6).is_integer()
    # Too few synthetic images per class for per-class scores: null with a reason, not NaN.
    assert result["per_class"]["brain"]["reason"].startswith("fewer than")
    assert any("UNTRAINED FEATURES" in w or "random CNN" in w for w in result["warnings"])  # score.py's wording
    with Image.open(out / "samples_grid.png") as grid:
        assert grid.width > 0
    again = json.loads((out / "synthetic_quality.json").read_text())
    assert again["scores"] == result["scores"]


def test_metric_definitions():
    from fetal_bench.generators.score import fid, kid, precision_recall

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    assert fid(a, b) < 0.3 and fid(a, a + 3) > 8 * 9 - 1
    assert abs(kid(a, b, subsets=20, subset_size=200)[0]) < 0.05
    p, r = precision_recall(a, b)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(a, a + 10)
    assert p == 0 and r == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "fu-lora", "sample", "--lora", "/does/not/exist", "--output", "x"], "does not exist"),
        (["generate", "fu-lora", "train", "--data", "PHANTOM", "--config", "head", "--base", "tiny",
          "--output", "x"], "has no ClassLabel `label` column"),
        (["generate", "mask-guided", "train", "--data", "PHANTOM", "--config", "planes", "--base", "tiny",
          "--output", "x"], "lacks mask, head_circumference_mm, pixel_size_mm"),
        (["generate", "fu-lora", "train", "--data", "PHANTOM", "--config", "nope", "--base", "tiny",
          "--output", "x"], "nope"),
        (["generate", "fu-lora", "train", "--data", "/does/not/exist", "--config", "planes", "--output", "x"],
         "does not exist"),
        (["generate", "fu-lora", "train", "--data", "PHANTOM", "--config", "planes", "--base", "./no/such/dir",
          "--output", "x"], "does not exist"),
        (["generate", "fu-lora", "train", "--data", "PHANTOM", "--config", "planes", "--base", "tiny",
          "--generator-config", "BADYAML", "--output", "x"], "Unknown configuration key 'train.learning_rate'"),
        (["generate", "score", "PHANTOM", "--real", "PHANTOM", "--features", "nope", "--output", "x"],
         "Unknown feature network"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, phantom, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text("train:\n  learning_rate: 0.1\n")
    args = [str(phantom) if a == "PHANTOM" else str(tmp_path / "bad.yaml") if a == "BADYAML" else a for a in args]
    output = run_fails(*args)
    assert message in output and "Fix:" in output


def test_sample_refuses_another_generators_lora(paper_lora, tmp_path):
    output = run_fails("generate", "fu-lora", "sample", "--lora", paper_lora, "--output", tmp_path / "S")
    assert "not fu-lora" in output


def test_generator_config_merge_is_strict():
    from fetal_bench.generators.config import default_config, merge_config

    defaults = default_config("fu-lora")
    with pytest.raises(FetalBenchError) as error:
        merge_config(defaults, {"trian": {"unet_lr": 1e-4}})
    assert error.value.problem == "Unknown configuration key 'trian'."
    assert error.value.fix.startswith("Did you mean 'train'? Keys allowed at the top level: base, config_version, data,")
    with pytest.raises(FetalBenchError, match="Unknown configuration key 'train.unet_rl'") as error:
        merge_config(defaults, {"train": {"unet_rl": 1e-4}})
    assert "Did you mean 'train.unet_lr'?" in error.value.fix
    with pytest.raises(FetalBenchError, match="'train' must be a mapping"):
        merge_config(defaults, {"train": 5})
    with pytest.raises(FetalBenchError, match="'data.class_prompts' must be a mapping"):
        merge_config(defaults, {"data": {"class_prompts": None}})
    with pytest.raises(FetalBenchError, match="'train.unet_lr' must be a single value"):
        merge_config(defaults, {"train": {"unet_lr": {"value": 1}}})
    # Class prompts are data: a new class is added, the others kept; the defaults are not modified.
    merged = merge_config(defaults, {"data": {"class_prompts": {"Fetal cervix": "a photo of fetal cervix"}},
                                     "train": {"unet_lr": 0.5}})
    assert merged["data"]["class_prompts"]["Fetal cervix"] == "a photo of fetal cervix"
    assert merged["data"]["class_prompts"]["brain"] == defaults["data"]["class_prompts"]["brain"]
    assert merged["train"]["unet_lr"] == 0.5 and defaults["train"]["unet_lr"] != 0.5
    assert "Fetal cervix" not in defaults["data"]["class_prompts"]


def test_generation_hash_ignores_where_files_live():
    from fetal_bench.generators.common import generation_sha256

    a = {"generator": "fu-lora", "lora_path": "/a/L", "source": {"path": "/a/data", "fingerprint": "f"},
         "base": {"kind": "local", "id": "/a/sd", "weights_sha256": "w"}, "execution": {"batch_size": 8}}
    b = {**a, "lora_path": "/b/L", "source": {"path": "/b/data", "fingerprint": "f"},
         "base": {"kind": "local", "id": "/b/sd", "weights_sha256": "w"}, "execution": {"batch_size": 2}}
    assert generation_sha256(a) == generation_sha256(b)
    assert generation_sha256(a) != generation_sha256({**a, "source": {"path": "/a/data", "fingerprint": "g"}})


def test_generators_demo_step(phantom, tmp_path, capsys):
    from fetal_bench.generators.tiny_split import run_generators_demo

    lines: list[str] = []
    outputs = run_generators_demo(phantom, tmp_path, log=lines.append, sample_steps=2)
    assert len(load(Path(outputs["synthetic split (load_dataset(DIR, split='train'))"]))) == 8
    assert Path(outputs["synthetic-quality result"]).is_file() and len(lines) == 3
    # Progress on stderr for both long parts: 4 training steps, then 8 images one shard each.
    err = capsys.readouterr().err
    assert "FU-LoRA training" in err and "4/4" in err
    assert "sampling" in err and "8/8" in err


def test_two_processes_split_the_shards_and_give_the_same_bytes(fu_lora_run, tmp_path):
    """`torchrun` with 2 CPU processes (accelerate's gloo group): same dataset as 1 process."""
    import os
    import shutil
    import subprocess
    import sys

    from fetal_bench.generators import fu_lora

    cli_path = shutil.which("fetal-bench", path=str(Path(sys.executable).parent))
    if cli_path is None:
        pytest.skip("the fetal-bench console script is not installed")
    args = ["--lora", str(fu_lora_run / "L"), "--per-class", "1", "--seed", "5", "--steps", "2",
            "--batch-size", "1", "--shard-size", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--no-python",
                           cli_path, "generate", "fu-lora", "sample", *args, "--output", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    notes = json.loads((tmp_path / "two" / "build_info.json").read_text())["notes"][0]
    assert "2 process(es)" in notes
    fu_lora.sample(lora=fu_lora_run / "L", per_class=1, seed=5, steps=2, batch_size=1, shard_size=1,
                   output=tmp_path / "one")
    assert load(tmp_path / "two")["id"] == load(tmp_path / "one")["id"]
    assert image_bytes(tmp_path / "two") == image_bytes(tmp_path / "one")


@pytest.mark.real_data
def test_real_hc18_outlines_pass_the_plausibility_rule_and_give_the_reference_hc(shared_data):
    """On real HC18 annotations: no false rejection, and the mask-guided HC matches the CSV."""
    import csv

    from PIL import Image
    from scipy.ndimage import binary_fill_holes

    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.training_images import letterbox, outline
    from fetal_bench.generators.outline import ellipse_from_outline
    from fetal_bench.geometry import ellipse_perimeter

    root = shared_data / "hc18"
    with open(root / "training_set_pixel_size_and_HC.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[::20]  # 38 images spread over the subjects
    params = default_config("mask-guided")["postprocess"]
    errors = []
    for row in rows:
        annotation = np.asarray(Image.open(root / "training_set" / row["filename"].replace(".png", "_Annotation.png")))
        mask = binary_fill_holes(annotation > 127)
        canvas, _ = letterbox(mask.astype(np.uint8), 512, nearest=True)
        fit = ellipse_from_outline(outline(canvas, 3) > 180, params)
        assert fit.accepted, (row["filename"], fit.reason)
        mm_per_px = float(row["pixel size(mm)"]) * max(mask.shape) / 512
        hc = ellipse_perimeter(fit.ellipse.a, fit.ellipse.b) * mm_per_px
        errors.append(abs(hc - float(row["head circumference (mm)"])) / float(row["head circumference (mm)"]))
    # Letterboxed to 512 px and read back through a 3-px outline: within 1 % of the reference.
    assert np.median(errors) < 0.01 and max(errors) < 0.02, errors


def test_lora_file_metadata_lists_target_modules_in_one_order():
    """peft keeps target modules as a set, iterated in a per-process order: written as it is, the
    same LoRA gave another file (and lora_sha256) in every process."""
    from peft import LoraConfig

    from fetal_bench.generators.training import _metadata

    names = [f"block.{i}.to_q" for i in range(20)] + ["proj_in", "to_k"]
    metadata = _metadata(LoraConfig(r=4, lora_alpha=4, target_modules=names))
    assert metadata["target_modules"] == sorted(names)


def test_lora_metadata_has_no_set_left_at_any_depth():
    from fetal_bench.generators.training import _sorted_sets

    value = {"target_modules": {"to_v", "to_k", "proj_in"}, "nested": {"exclude": frozenset({"b", "a"}), "n": [3, 1]}}
    assert _sorted_sets(value) == {"target_modules": ["proj_in", "to_k", "to_v"],
                                   "nested": {"exclude": ["a", "b"], "n": [3, 1]}}


def test_two_processes_with_different_hash_seeds_write_byte_identical_lora_files(phantom, tmp_path):
    """Issue 24: `fu-lora train` run twice, in processes whose PYTHONHASHSEED differ (so every
    set of strings iterates in another order), writes the same adapter file, byte for byte."""
    import hashlib
    import os
    import subprocess
    import sys

    digests = {}
    for seed in ("1", "2"):
        out = tmp_path / f"L{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", "import sys; from fetal_bench.cli import main; sys.exit(main())",
                        "generate", "fu-lora", "train", "--data", str(phantom),
                        "--config", "planes", "--base", "tiny", "--max-steps", "2", "--output", str(out)],
                       env=env, check=True, capture_output=True, text=True, timeout=900)
        weights = (out / "pytorch_lora_weights.safetensors").read_bytes()
        digests[seed] = hashlib.sha256(weights).hexdigest()
        header = json.loads(weights[8 : 8 + int.from_bytes(weights[:8], "little")])
        metadata = json.loads(header["__metadata__"]["lora_adapter_metadata"])  # diffusers: "unet.<key>", ...
        for part in ("unet", "text_encoder"):
            targets = metadata[f"{part}.target_modules"]
            assert len(targets) > 1 and targets == sorted(targets)
        assert json.loads((out / "generator_config.json").read_text())["lora_sha256"] == digests[seed]
    assert digests["1"] == digests["2"]
