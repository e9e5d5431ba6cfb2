"""The training loop: resume after interruption, data mixing, time budget, CLI, outputs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks import get_task
from fetal_bench.training import TrainConfig, train
from fetal_bench.models import get_model_info
from fetal_bench.training.mixing import prepare_training_data

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")

_TINY_UNET = {"base_channels": 4, "depth": 2}


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
    snapshots = sorted((interrupted / "checkpoints").glob("step-*"))
    assert [p.name for p in snapshots] == ["step-00000008"]  # the last one only: keep_last=1
    state = json.loads((snapshots[0] / "state.json").read_text())["state"]
    assert state["global_step"] == 8 and state["epoch"] == 1 and state["batch_in_epoch"] == 2  # mid-epoch

    resumed = train(_unet_config(phantom_dir, interrupted))
    assert resumed.resumed and resumed.steps == 12 and resumed.epochs_completed == 2
    final_a = load_file(tmp_path / "straight" / "checkpoints" / "step-00000012" / "weights.safetensors")
    final_b = load_file(interrupted / "checkpoints" / "step-00000012" / "weights.safetensors")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    # The log holds each step once, however often the run was restarted.
    steps = [e["step"] for e in map(json.loads, (interrupted / "train_log.jsonl").read_text().splitlines()) if e["type"] == "step"]
    assert steps == sorted(set(steps))
    # A finished run is not trained again.
    again = train(_unet_config(phantom_dir, interrupted))
    assert again.steps == 12 and again.resumed


def test_an_adapter_model_resumes_from_small_snapshots_and_ends_identical(phantom_dir, tmp_path):
    """vit_lora's snapshots hold its adapters, head and buffers only; resuming rebuilds the frozen
    base from its source and still ends with the uninterrupted run's weights."""
    options = dict(model="vit_lora", task="phantom-planes", data=str(phantom_dir), image_size=(32, 32),
                   model_cfg={"variant": "tiny"}, epochs=1, batch_size=32, checkpoint_every_steps=2,
                   progress=False, patience=None, val_split=None, keep="last")
    straight = train(TrainConfig(output=str(tmp_path / "straight"), **options))
    interrupted = tmp_path / "interrupted"
    with pytest.raises(_Crash):
        train(TrainConfig(output=str(interrupted), **options), callbacks=[_crash_at(3)])
    (snapshot,) = (interrupted / "checkpoints").glob("step-*")
    saved = load_file(snapshot / "weights.safetensors")
    assert saved and all(".lora_" in name or name.startswith("head.") for name in saved), sorted(saved)[:5]
    resumed = train(TrainConfig(output=str(interrupted), **options))
    assert resumed.resumed and resumed.steps == straight.steps
    final = {}
    for run in (tmp_path / "straight", interrupted):
        (last,) = (run / "checkpoints").glob("step-*")
        final[run.name] = load_file(last / "weights.safetensors")
    assert final["straight"].keys() == final["interrupted"].keys()
    assert all(torch.equal(final["straight"][k], final["interrupted"][k]) for k in final["straight"])


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
    state_file = tmp_path / "run" / "checkpoints" / "step-00000003" / "state.json"
    assert json.loads(state_file.read_text())["state"]["global_step"] == 3


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


RESNET = get_model_info("resnet18")


def test_synthetic_mixing_follows_the_requested_share(phantom_dir, standin_dir):
    task = get_task("phantom-planes")
    real = prepare_training_data(task, RESNET, data=str(phantom_dir), val_split=None)
    assert (real.n_real, real.n_synthetic, real.training_data) == (240, 0, "real")
    half = prepare_training_data(task, RESNET, data=str(phantom_dir), synthetic=str(standin_dir), synthetic_ratio=0.5, val_split=None)
    assert half.n_real == 240 and half.n_synthetic == 240 and half.synthetic_share == 0.5 and half.training_data == "hybrid"
    assert len(half.train) == 480 and set(half.train.column_names) == {"id", "image", "target"}
    only = prepare_training_data(task, RESNET, data=str(phantom_dir), synthetic=str(standin_dir), synthetic_ratio=1.0, val_split=None)
    assert only.n_real == 0 and only.training_data == "synthetic"
    balanced = prepare_training_data(task, RESNET, data=str(phantom_dir), synthetic=str(standin_dir), real_per_class=5,
                                     synthetic_per_class=3, val_split=None)
    targets = balanced.train["target"]
    assert balanced.n_real == 20 and balanced.n_synthetic == 12
    assert all(targets.count(k) == 8 for k in range(4))
    few = prepare_training_data(get_task("phantom-head-seg"), get_model_info("unet"), data=str(phantom_dir), real_n=5, val_split=None)
    assert few.n_real == 5 and few.labels == ("background", "head")


def test_excluded_classes_and_zero_shot_rules(phantom_dir):
    task = get_task("phantom-planes")
    data = prepare_training_data(task, RESNET, data=str(phantom_dir), val_split=None, exclude_labels=())
    assert data.labels == ("abdomen", "brain", "femur", "thorax")
    with pytest.raises(FetalBenchError, match="do not cover"):
        prepare_training_data(task, RESNET, data=str(phantom_dir), val_split=None, exclude_labels=("brain",))
    with pytest.raises(FetalBenchError, match="not classes of the training data"):
        prepare_training_data(task, RESNET, data=str(phantom_dir), val_split=None, exclude_labels=("cervix",))
    with pytest.raises(FetalBenchError, match="zero-shot"):
        prepare_training_data(get_task("planes-africa-zero-shot"), RESNET, data=None)
    with pytest.raises(FetalBenchError, match="without --synthetic"):
        prepare_training_data(task, RESNET, data=str(phantom_dir), synthetic_ratio=0.5)


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


def test_validation_macro_f1_is_the_reported_metric():
    """Labels [0, 0], predictions [0, 1], 3 classes: 2/9 (every class counts, as the harness
    reports it), not 2/3 (the mean over the classes present), through the loop's validation."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    from fetal_bench.training.loop import validation_scores

    class Fixed(torch.nn.Module):
        spec = SimpleNamespace(labels=("a", "b", "c"), prompt=None)

        def forward(self, pixels):
            return torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])

    batch = {"pixel_values": torch.zeros(2, 1, 4, 4), "labels": torch.tensor([0, 0])}
    objective = get_task("phantom-planes").kind.objective(get_task("phantom-planes"), RESNET, Fixed.spec,
                                                          box_jitter=(0.0, 0.0))
    scores = validation_scores(Fixed(), [batch], objective, Accelerator(cpu=True), seed=0)
    assert scores["macro_f1"] == pytest.approx(2 / 9)
    assert scores["accuracy"] == 0.5


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_segmentation_training_learns(phantom_dir, tmp_path):
    """The tiny U-Net run: the loss falls and validation Dice beats predicting every pixel as head."""
    import numpy as np

    from fetal_bench.data.loading import make_dataloader, open_dataset

    # lr 1e-2: at the registered 1e-3 this 18-step run has not left the all-background mask yet.
    train(_unet_config(phantom_dir, tmp_path / "run", epochs=3, lr=1e-2, log_every_steps=1, checkpoint_every_steps=100))
    entries = _log(tmp_path / "run")
    losses = [e["loss"] for e in entries if e["type"] == "step"]
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])
    epochs = [e["train_loss"] for e in entries if e["type"] == "epoch"]
    assert epochs[-1] < epochs[0]
    masks = torch.cat([batch["masks"] for batch in make_dataloader(
        open_dataset(phantom_dir, config="head", split="validation"), mask_column="mask", image_size=(32, 48),
        batch_size=64)])
    share = (masks > 0).flatten(1).float().mean(dim=1)
    all_head_dice = float((2 * share / (1 + share)).mean())  # Dice of the all-foreground mask
    best = max(e["dice"] for e in entries if e["type"] == "validation")
    assert best > all_head_dice + 0.3, (best, all_head_dice)  # about 0.27 here


def test_classification_training_learns(phantom_dir, tmp_path):
    """A small ResNet-18 on the phantom planes: the loss falls and validation accuracy beats the
    largest class's share."""
    import numpy as np

    from fetal_bench.data.loading import open_dataset

    result = train(model="resnet18", task="phantom-planes", data=str(phantom_dir), output=str(tmp_path / "run"),
                   model_cfg={"pretrained": False}, image_size=(32, 32), epochs=3, batch_size=16, log_every_steps=1,
                   progress=False, patience=None, checkpoint_every_steps=100)
    entries = _log(tmp_path / "run")
    losses = [e["loss"] for e in entries if e["type"] == "step"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    labels = open_dataset(phantom_dir, config="planes", split="validation")["label"]
    majority = max(labels.count(k) for k in set(labels)) / len(labels)
    accuracy = max(e["accuracy"] for e in entries if e["type"] == "validation")
    assert accuracy > majority + 0.15, (accuracy, majority)
    assert result.metric == "accuracy" and result.best_metric == pytest.approx(accuracy)


def test_budget_keeps_room_for_the_closing_validation_and_saves():
    from fetal_bench.training.schedule import Budget

    budget = Budget(100.0, n_val_batches=4)
    assert budget.allows_step(99.0)  # nothing measured yet: the first step always runs
    budget.stepped(10.0)
    # Closing = 1.1 x (0.35 x 10 s x 4 batches) + 2 x 3 s (save guess) = 21.4 s; a step 10 s.
    assert budget.closing_s() == pytest.approx(21.4)
    assert budget.allows_step(68.6) and not budget.allows_step(68.7)
    budget.validated(5.0)
    budget.saved(1.0)
    assert budget.closing_s() == pytest.approx(7.5)
    assert budget.fits_closing(92.5) and not budget.fits_closing(92.6)
    assert budget.training_s == pytest.approx(92.5)
    assert Budget(None, 4).allows_step(1e9)


def test_the_summary_counts_a_cut_epoch_as_steps(phantom_dir, tmp_path):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    args = ["train", "unet", "--task", "phantom-head-seg", "--data", str(phantom_dir), "--image-size", "32", "48",
            "--model-opt", "base_channels=4", "--model-opt", "depth=2", "--max-steps", "2", "--batch-size", "16",
            "--no-progress", "--output", str(tmp_path / "run")]
    result = CliRunner().invoke(cli, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "0 full + 2 of 6 steps" in result.output and "(epoch 1, step 2)" in result.output


def test_recipes_fill_only_what_is_not_given(monkeypatch):
    from fetal_bench.training.config import resolve_config

    base = dict(model="unet", task="phantom-head-seg", output="unused")
    cpu = resolve_config(TrainConfig(**base, recipe="cpu"))
    assert (cpu.recipe, cpu.image_size, cpu.batch_size, cpu.model_cfg) == ("cpu", (128, 192), 8, {"base_channels": 16})
    mine = resolve_config(TrainConfig(**base, recipe="cpu", image_size=(64, 96), batch_size=4, model_cfg={"base_channels": 8}))
    assert (mine.image_size, mine.batch_size, mine.model_cfg) == ((64, 96), 4, {"base_channels": 8})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_config(TrainConfig(**base)).recipe == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = resolve_config(TrainConfig(**base))
    assert (gpu.recipe, gpu.image_size, gpu.model_cfg) == ("gpu", None, {})
    assert resolve_config(TrainConfig(model="resnet18", task="phantom-planes", output="unused")).recipe == "default"
    with pytest.raises(FetalBenchError, match="Model 'resnet18' has no recipe 'cpu'"):
        resolve_config(TrainConfig(model="resnet18", task="phantom-planes", output="unused", recipe="cpu"))


class _Payload:
    """A pickle that runs code when loaded: what a malicious trainer_state.pt would hold."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


@pytest.mark.parametrize("damage", ["malicious", "truncated", "wrong-content"])
def test_a_damaged_or_malicious_trainer_state_is_a_clean_error(damage, phantom_dir, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    with pytest.raises(_Crash):
        train(_unet_config(phantom_dir, out), callbacks=[_crash_at(3)])
    state = out / "checkpoints" / "step-00000002" / "trainer_state.pt"
    if damage == "malicious":
        torch.save({"optimizer": _Payload(), "rng": {}}, state)
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[:100])
    else:
        torch.save({"something": torch.zeros(2)}, state)
    args = ["train", "unet", "--task", "phantom-head-seg", "--data", str(phantom_dir), "--image-size", "32", "48",
            "--model-opt", "base_channels=4", "--model-opt", "depth=2", "--epochs", "2", "--batch-size", "16",
            "--checkpoint-every-steps", "2", "--no-progress", "--patience", "0", "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert f"Cannot resume: {state}" in result.output.replace("\n", "") and "--overwrite" in result.output
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_a_run_recorded_before_data_config_was_renamed_still_resumes(tmp_path):
    """TrainConfig.config became data_config: an earlier train_config.json reads as the same
    settings, and the snapshots it wrote keep their fingerprint."""
    from dataclasses import asdict

    from fetal_bench.training.config import RESUMABLE_CHANGES
    from fetal_bench.training.rundir import fingerprint
    from fetal_bench.training.run_files import run_directory

    current = TrainConfig(model="unet", task="phantom-head-seg", output=str(tmp_path / "run"), data_config="head")
    earlier = {("config" if key == "data_config" else key): value for key, value in asdict(current).items()}
    assert TrainConfig.from_dict(json.loads(json.dumps(earlier))) == TrainConfig.from_dict(current.to_dict())
    recorded = fingerprint({k: v for k, v in json.loads(json.dumps(earlier)).items() if k not in RESUMABLE_CHANGES})
    assert run_directory(tmp_path / "run", current).fingerprint == recorded


@pytest.mark.filterwarnings("ignore::fetal_bench.training.config.SlowPrecisionWarning")  # CPUs without bf16 units
def test_one_process_trains_in_fp32_then_bf16_then_fp32(phantom_dir, tmp_path):
    # accelerate keeps one precision per process; the trainer must still train another one next.
    precisions = []
    for index, precision in enumerate(["no", "bf16", "no"]):
        config = _unet_config(phantom_dir, tmp_path / f"run-{index}", mixed_precision=precision, max_steps=1,
                              checkpoint_every_steps=0)
        train(config)
        info = json.loads((tmp_path / f"run-{index}" / "config.json").read_text())["training"]
        precisions.append(info["mixed_precision"])
    assert precisions == ["no", "bf16", "no"]


def test_bf16_on_a_cpu_without_bf16_units_warns_that_it_is_slower(monkeypatch):
    from fetal_bench.training import config as training_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training_config, "cpu_bf16_units", lambda: False)
    with pytest.warns(training_config.SlowPrecisionWarning, match="--mixed-precision no"):
        assert training_config.mixed_precision("bf16") == "bf16"
    assert training_config.mixed_precision("auto") == "no"
    monkeypatch.setattr(training_config, "cpu_bf16_units", lambda: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert training_config.mixed_precision("bf16") == "bf16"
    # auto: bf16 where the CPU has the units, fp32 where it would be emulated.
    assert training_config.mixed_precision("auto") == "bf16"
    assert training_config.mixed_precision("no") == "no"


def test_the_cpu_bf16_units_are_read_from_the_cpu_flags(monkeypatch, tmp_path):
    import builtins

    from fetal_bench.training.config import cpu_bf16_units

    real_open = builtins.open
    for flags, expected in [("fpu sse avx2 avx512f", False), ("fpu avx512f avx512_bf16", True),
                            ("fpu amx_bf16 amx_tile", True)]:
        cpuinfo = tmp_path / f"cpuinfo-{expected}-{len(flags)}"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        monkeypatch.setattr(builtins, "open", lambda path, *a, _c=cpuinfo, **k:
                            real_open(_c if path == "/proc/cpuinfo" else path, *a, **k))
        assert cpu_bf16_units() is expected
    monkeypatch.setattr(builtins, "open", real_open)
