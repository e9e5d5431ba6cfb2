"""The run directory layer both trainers resume from: fingerprints, atomic snapshots, keep-last-N."""

from __future__ import annotations

import pytest
import torch

from fetal_bench.errors import FetalBenchError
from fetal_bench.training.rundir import RunDirectory, fingerprint


def _parts(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def test_fingerprint_is_order_free_and_keeps_the_recorded_formula():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    # Finished LoRA runs stored keys made with json.dumps(..., sort_keys=True): still the same.
    assert fingerprint({"x": "y"}) == "4cbc79264968ce7c85870d8b008a33412dd1fa4e07724bd9d35be4995771bb7e"


def test_save_restore_round_trip_with_rng(tmp_path):
    model, optimizer, scheduler = _parts(0)
    run = RunDirectory(tmp_path, fingerprint="run-a", keep_last=2)
    torch.manual_seed(123)
    run.save(5, weights=model, optimizer=optimizer, scheduler=scheduler, state={"epoch": 1}, rng=True)
    expected_draw = torch.rand(3)

    other, other_optimizer, other_scheduler = _parts(1)
    snapshot = run.latest()
    assert (snapshot.step, snapshot.state) == (5, {"epoch": 1})
    run.restore(snapshot, weights=other, optimizer=other_optimizer, scheduler=other_scheduler, rng=True)
    assert torch.equal(torch.rand(3), expected_draw)  # the RNG continues where it was saved
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert other_scheduler.state_dict() == scheduler.state_dict()
    saved_moments = optimizer.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(other_optimizer.state_dict()["state"][0]["exp_avg"], saved_moments)


def test_only_the_last_n_snapshots_are_kept_and_other_runs_are_ignored(tmp_path):
    model, optimizer, _ = _parts()
    run = RunDirectory(tmp_path, fingerprint="run-a", keep_last=2)
    for step in (2, 4, 6):
        run.save(step, weights=model, optimizer=optimizer)
    assert [p.name for p in sorted(run.checkpoints.iterdir())] == ["step-00000004", "step-00000006"]
    assert [s.step for s in run.snapshots()] == [6, 4]
    stranger = RunDirectory(tmp_path, fingerprint="run-b")
    assert stranger.latest() is None and stranger.snapshots() == []


def test_a_damaged_snapshot_falls_back_to_the_previous_one(tmp_path):
    model, optimizer, _ = _parts()
    run = RunDirectory(tmp_path, fingerprint="run-a", keep_last=3)
    run.save(2, weights=model, optimizer=optimizer, state={"at": 2})
    run.save(4, weights=model, optimizer=optimizer, state={"at": 4})
    (run.checkpoints / "step-00000004" / "state.json").write_text("{trunc", encoding="utf-8")
    assert (run.latest().step, run.latest().state) == (2, {"at": 2})


def test_a_crash_while_saving_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    model, optimizer, _ = _parts()
    run = RunDirectory(tmp_path, fingerprint="run-a", keep_last=1)
    run.save(2, weights=model, optimizer=optimizer)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        run.save(4, weights=model, optimizer=optimizer)
    assert [p.name for p in run.checkpoints.iterdir()] == ["step-00000002"]
    assert run.latest().step == 2


def test_trainable_tensors_are_saved_and_handed_back(tmp_path):
    model, optimizer, _ = _parts()
    run = RunDirectory(tmp_path, fingerprint="lora")
    run.save(1, weights={"lora.weight": model.weight}, optimizer=optimizer)
    received = {}
    run.restore(run.latest(), weights=received.update, optimizer=optimizer)
    assert list(received) == ["lora.weight"] and torch.equal(received["lora.weight"], model.weight.detach())


def test_a_malicious_trainer_state_is_refused_with_a_clean_error(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    model, optimizer, _ = _parts()
    run = RunDirectory(tmp_path, fingerprint="run-a")
    path = run.save(1, weights=model, optimizer=optimizer)
    torch.save({"optimizer": Payload()}, path / "trainer_state.pt")
    with pytest.raises(FetalBenchError, match="is not a trainer state fetal-bench wrote"):
        run.restore(run.latest(), weights=model, optimizer=optimizer)
