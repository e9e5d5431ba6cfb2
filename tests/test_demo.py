"""`fetal-bench demo`, the README's first command: every step runs and leaves what it promises.

The baselines train for one epoch here instead of the demo's dozen so the test stays quick; every
other step is the demo's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.evaluation.results import read_result


@pytest.fixture()
def one_epoch_baselines(monkeypatch):
    import fetal_bench.demo as demo

    monkeypatch.setattr(demo, "DEMO_BASELINES", tuple(
        (model, task, cfg, size, 1) for model, task, cfg, size, _epochs in demo.DEMO_BASELINES))


def test_demo_runs_every_step(one_epoch_baselines, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for step in ("1. Build", "2. Check", "3. Stream", "4. Train", "5. Generate", "6. Build the leaderboard"):
        assert step in result.output

    summary = json.loads((out / "demo-summary.json").read_text())
    for where in summary["outputs"].values():
        assert Path(where).exists(), where
    results = sorted((out / "results").glob("*.json"))
    assert {read_result(path)["task"] for path in results} == {"phantom-planes", "phantom-head-seg"}
    assert set(summary["scores"]) == {"phantom-planes", "phantom-head-seg"}
    index = (out / "leaderboard" / "index.html").read_text()
    assert "phantom-planes" in index and "phantom-head-seg" in index

    # A second run into its own folder replaces it; a folder the demo did not make is refused.
    again = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert again.exit_code == 0, again.output
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = CliRunner().invoke(cli, ["demo", "--out", str(foreign)])
    assert refused.exit_code != 0 and "--overwrite" in refused.output
    assert (foreign / "notes.txt").read_text() == "keep me"
