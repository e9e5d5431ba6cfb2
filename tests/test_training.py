"""The training loop: resume after interruption, data mixing, time budget, CLI, outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks import get_task
from fetal_bench.training import TrainConfig, train
from fetal_bench.training.data import prepare_training_data

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.models.weights.PretrainedWeightsWarning")

_TINY_UNET = {"base_channels": 4, "depth": 2}


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    from fetal_bench.data.builders import build_dataset

    target = tmp_path_factory.getbasetemp() / "phantom-shared"
    if not (target / "build_info.json").is_file():
        build_dataset("phantom", target, overwrite=True)
    return target


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory):
    """A second phantom draw standing in for a synthetic split (same features, other seed)."""
    from fetal_bench.data.builders.phantom import build_phantom

    target = tmp_path_factory.getbasetemp() / "phantom-standin"
    if not (target / "build_info.json").is_file():
        build_phantom(target, overwrite=True, seed=1)
    return target


def _unet_config(phantom_dir, output, **extra) -> TrainConfig:
    options = dict(model="unet", task="phantom-head-seg", data=str(phantom_dir), output=str(output), model_cfg=_TINY_UNET,
                   image_size=(32, 48), epochs=2, batch_size=16, checkpoint_every_steps=2, progress=False, patience=None)
    options.update(extra)
    return TrainConfig(**options)


class _Crash(RuntimeError):
    pass


def _crash_at(step: int):
    def callback(info):
        if info["step"] == step:
            raise _Crash(f"simulated crash at step {step}")

    return callback


def test_interrupted_run_resumes_from_its_last_checkpoint_and_ends_identical(phantom_dir, tmp_path):
    reference = train(_unet_config(phantom_dir, tmp_path / "straight"))
    assert reference.steps == 12 and not reference.resumed  # 96 rows / 16 = 6 steps x 2 epochs

    interrupted = tmp_path / "interrupted"
    with pytest.raises(_Crash):
        train(_unet_config(phantom_dir, interrupted), callbacks=[_crash_at(9)])
    state = json.loads((interrupted / "last" / "state.json").read_text())
    assert state["global_step"] == 8 and state["epoch"] == 1 and state["batch_in_epoch"] == 2  # mid-epoch

    resumed = train(_unet_config(phantom_dir, interrupted))
    assert resumed.resumed and resumed.steps == 12 and resumed.epochs_completed == 2
    final_a = load_file(tmp_path / "straight" / "last" / "model.safetensors")
    final_b = load_file(interrupted / "last" / "model.safetensors")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    # The log holds each step once, however often the run was restarted.
    steps = [e["step"] for e in map(json.loads, (interrupted / "train_log.jsonl").read_text().splitlines()) if e["type"] == "step"]
    assert steps == sorted(set(steps))
    # A finished run is not trained again.
    again = train(_unet_config(phantom_dir, interrupted))
    assert again.steps == 12 and again.resumed


def test_resuming_with_other_settings_is_refused(phantom_dir, tmp_path):
    with pytest.raises(_Crash):
        train(_unet_config(phantom_dir, tmp_path / "run"), callbacks=[_crash_at(3)])
    with pytest.raises(FetalBenchError, match="other settings"):
        train(_unet_config(phantom_dir, tmp_path / "run", lr=0.5))
    fresh = train(_unet_config(phantom_dir, tmp_path / "run", lr=0.5, max_steps=1, overwrite=True))
    assert fresh.steps == 1 and not fresh.resumed


def test_keyboard_interrupt_saves_state(phantom_dir, tmp_path):
    def interrupt(info):
        if info["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_unet_config(phantom_dir, tmp_path / "run", checkpoint_every_steps=100), callbacks=[interrupt])
    assert json.loads((tmp_path / "run" / "last" / "state.json").read_text())["global_step"] == 3


def test_outputs_log_curves_and_best_checkpoint(phantom_dir, tmp_path):
    result = train(_unet_config(phantom_dir, tmp_path / "run", epochs=2, checkpoint_every_steps=100, log_every_steps=2))
    out = tmp_path / "run"
    for name in ("model.safetensors", "config.json", "train_config.json", "train_log.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    entries = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {e["type"] for e in entries} == {"step", "epoch", "validation"}
    validations = [e for e in entries if e["type"] == "validation"]
    assert len(validations) == 2 and all(0 <= e["dice"] <= 1 for e in validations)
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["best_metric"]["name"] == "val_dice"
    assert training["best_metric"]["value"] == pytest.approx(max(e["dice"] for e in validations))
    assert result.best_metric == pytest.approx(training["best_metric"]["value"])
    assert training["n_train_real"] == 96 and training["epochs"] == 2
    from PIL import Image

    assert Image.open(out / "curves.png").size[0] > 400


def test_time_budget_stops_training(phantom_dir, tmp_path):
    result = train(_unet_config(phantom_dir, tmp_path / "run", max_minutes=1e-4, epochs=5))
    assert result.stopped_by == "max_minutes" and result.steps < 30
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.parametrize("off", [0, None])
def test_patience_zero_or_none_never_stops_early(phantom_dir, tmp_path, off):
    # No Dice gain can exceed min_delta=1, so every validation after the first counts as "no improvement".
    result = train(_unet_config(phantom_dir, tmp_path / "run", epochs=3, min_delta=1.0, patience=off))
    assert result.stopped_by != "early_stopping" and result.epochs_completed == 3


def test_patience_stops_after_that_many_validations_without_improvement(phantom_dir, tmp_path):
    result = train(_unet_config(phantom_dir, tmp_path / "run", epochs=5, min_delta=1.0, patience=2))
    assert result.stopped_by == "early_stopping" and result.epochs_completed == 3


def test_synthetic_mixing_follows_the_requested_share(phantom_dir, standin_dir):
    task = get_task("phantom-planes")
    real = prepare_training_data(task, data=str(phantom_dir), val_split=None)
    assert (real.n_real, real.n_synthetic, real.training_data) == (240, 0, "real")
    half = prepare_training_data(task, data=str(phantom_dir), synthetic=str(standin_dir), synthetic_ratio=0.5, val_split=None)
    assert half.n_real == 240 and half.n_synthetic == 240 and half.synthetic_share == 0.5 and half.training_data == "hybrid"
    assert len(half.train) == 480 and set(half.train.column_names) == {"id", "image", "target"}
    only = prepare_training_data(task, data=str(phantom_dir), synthetic=str(standin_dir), synthetic_ratio=1.0, val_split=None)
    assert only.n_real == 0 and only.training_data == "synthetic"
    balanced = prepare_training_data(task, data=str(phantom_dir), synthetic=str(standin_dir), real_per_class=5,
                                     synthetic_per_class=3, val_split=None)
    targets = balanced.train["target"]
    assert balanced.n_real == 20 and balanced.n_synthetic == 12
    assert all(targets.count(k) == 8 for k in range(4))
    few = prepare_training_data(get_task("phantom-head-seg"), data=str(phantom_dir), real_n=5, val_split=None)
    assert few.n_real == 5 and few.labels == ("background", "head")


def test_excluded_classes_and_zero_shot_rules(phantom_dir):
    task = get_task("phantom-planes")
    data = prepare_training_data(task, data=str(phantom_dir), val_split=None, exclude_labels=())
    assert data.labels == ("abdomen", "brain", "femur", "thorax")
    with pytest.raises(FetalBenchError, match="do not cover"):
        prepare_training_data(task, data=str(phantom_dir), val_split=None, exclude_labels=("brain",))
    with pytest.raises(FetalBenchError, match="not classes of the training data"):
        prepare_training_data(task, data=str(phantom_dir), val_split=None, exclude_labels=("cervix",))
    with pytest.raises(FetalBenchError, match="zero-shot"):
        prepare_training_data(get_task("planes-africa-zero-shot"), data=None)
    with pytest.raises(FetalBenchError, match="without --synthetic"):
        prepare_training_data(task, data=str(phantom_dir), synthetic_ratio=0.5)


def test_train_cli_writes_a_checkpoint(phantom_dir, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    out = tmp_path / "cli-run"
    args = ["train", "unet", "--task", "phantom-head-seg", "--data", str(phantom_dir), "--image-size", "32", "48",
            "--model-opt", "base_channels=4", "--model-opt", "depth=2", "--max-steps", "2", "--batch-size", "8",
            "--no-progress", "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Next: fetal-bench evaluate --task phantom-head-seg --model unet" in result.output
    assert json.loads((out / "config.json").read_text())["cfg"]["base_channels"] == 4
    again = CliRunner().invoke(cli, args[:-2] + ["--no-resume", "--output", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
