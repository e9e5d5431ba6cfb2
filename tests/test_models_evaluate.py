"""Train -> checkpoint -> the evaluation harness, end to end, on the phantom set."""

from __future__ import annotations

import json

import pytest

from fetal_bench.evaluation import evaluate

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


@pytest.mark.parametrize(("task", "model", "cfg", "image_size", "main"), [
    ("phantom-planes", "resnet18", {"pretrained": False}, (32, 32), "accuracy"),
    ("phantom-head-seg", "unet", {"base_channels": 4, "depth": 2}, (32, 48), "dice"),
    ("phantom-head-seg", "sam", {"backend": "transformers", "variant": "tiny", "pretrained": False}, None, "dice"),
])
def test_trained_checkpoint_goes_straight_into_the_harness(task, model, cfg, image_size, main, phantom_dir, tmp_path):
    from fetal_bench.training import train

    checkpoint = tmp_path / "ckpt"
    train(model=model, task=task, data=str(phantom_dir), output=str(checkpoint), model_cfg=cfg, image_size=image_size,
          max_steps=2, batch_size=8, progress=False, run_name=f"{model}-smoke")
    result = evaluate(task, model=model, checkpoint=checkpoint, data=phantom_dir, output=tmp_path / "results",
                      n_resamples=20)
    assert result["scores"]["main_score"] == main
    assert 0 <= result["scores"][main]["value"] <= 1
    submission = result["submission"]
    assert submission["kind"] == "model" and submission["model"] == model
    assert submission["name"] == f"{model}-smoke" and submission["training_data"] == "real"
    written = json.loads((tmp_path / "results").glob("*.json").__next__().read_text())
    assert written["task"] == task


def test_evaluate_cli_with_a_trained_model(phantom_dir, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli
    from fetal_bench.training import train

    checkpoint = tmp_path / "ckpt"
    train(model="mobilenet_v2", task="phantom-planes", data=str(phantom_dir), output=str(checkpoint),
          model_cfg={"pretrained": False}, image_size=(32, 32), max_steps=1, batch_size=8, progress=False)
    result = CliRunner().invoke(cli, ["evaluate", "--task", "phantom-planes", "--model", "mobilenet_v2", "--checkpoint",
                                      str(checkpoint), "--data", str(phantom_dir), "--output", str(tmp_path / "res"),
                                      "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "res").glob("*.json"))


@pytest.mark.parametrize(("model", "message"), [
    ("sononet16-planes", "sononet16-planes predicts with its pretrained weights, which are not available"),
    ("resnet18", "Model 'resnet18' has no trained weights without --checkpoint"),
])
def test_evaluate_refuses_a_model_without_weights(model, message, phantom_dir, tmp_path, monkeypatch):
    """No checkpoint, no published weights: exit 2 and no result file, never random-weight scores."""
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FETAL_BENCH_OFFLINE", "1")
    monkeypatch.delenv("FETAL_BENCH_SONONET16", raising=False)
    result = CliRunner().invoke(cli, ["evaluate", "--task", "phantom-planes", "--model", model, "--data",
                                      str(phantom_dir), "--output", str(tmp_path / "res"), "--bootstrap", "20"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Fix:" in result.output
    assert not list(tmp_path.glob("res/*.json"))


def test_the_model_runner_reads_images_only_and_reports_its_phases(phantom_dir, tmp_path, monkeypatch):
    """Reference masks are read once, at native size, by the harness: the prediction loader
    must not decode and resize them again (it did, costing a second decode of every mask)."""
    import fetal_bench.data.loading as loading
    from fetal_bench.models import create_model, save_checkpoint

    checkpoint = tmp_path / "unet"
    save_checkpoint(create_model("unet", base_channels=4, depth=2, image_size=(32, 48)), checkpoint)
    seen = []
    real = loading.make_dataloader

    def spy(dataset, **kwargs):
        seen.append((kwargs["label_column"], kwargs["mask_column"]))
        return real(dataset, **kwargs)

    monkeypatch.setattr(loading, "make_dataloader", spy)
    result = evaluate("phantom-head-seg", model="unet", checkpoint=checkpoint, data=phantom_dir, n_resamples=20)
    assert seen == [(None, None)]
    phases = result["_phases_s"]
    assert list(phases) == ["data", "model_load", "truth", "predictions", "per_image_metrics", "scores",
                            "provenance", "result"]
    assert all(value >= 0 for value in phases.values()) and sum(phases.values()) <= result["runtime_s"] + 0.05


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_masks_from_logits_are_the_argmax(channels):
    """The fast comparison in mask_from_logits is the argmax exactly, ties included (the first
    maximum, background, wins a tie)."""
    import torch
    import torch.nn.functional as F

    from fetal_bench.models.seg_postprocess import mask_from_logits

    logits = torch.randn(channels, 12, 16, generator=torch.Generator().manual_seed(channels))
    if channels > 1:
        logits[1, :4] = logits[0, :4]  # ties
    full = F.interpolate(logits[None], size=(27, 40), mode="bilinear", align_corners=False)[0]
    expected = (full.argmax(dim=0) > 0) if channels > 1 else full[0] > 0
    mask = mask_from_logits(logits, (27, 40))
    assert mask.dtype == bool and mask.shape == (27, 40)
    assert (mask == expected.numpy()).all() and 0 < mask.sum() < mask.size
    if channels == 2:  # head tied with background everywhere: all background
        assert not mask_from_logits(logits[[0, 0]], (27, 40)).any()
