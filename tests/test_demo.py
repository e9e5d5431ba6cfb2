"""`fetal-bench demo`, the README's first command: every step runs and leaves what it promises;
two runs print the same scores; a rerun says what it does.

The baselines train for one epoch here instead of the demo's dozen so the test stays quick; every
other step is the demo's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.evaluation.results import read_result

_SCORE_LINE = re.compile(r"(\S+ on \S+: \S+ [0-9.]+ \[[0-9.]+, [0-9.]+\] after \d+ steps) "
                         r"\((trained in \d+ s|reused from an earlier run)\)")


@pytest.fixture()
def one_epoch_baselines(monkeypatch):
    import fetal_bench.demo as demo

    monkeypatch.setattr(demo, "DEMO_BASELINES", tuple(
        (model, task, cfg, size, 1, options) for model, task, cfg, size, _epochs, options in demo.DEMO_BASELINES))


def _scores(output: str) -> list[tuple[str, str]]:
    """The demo's score lines (the console may wrap them: whitespace is normalised first)."""
    return _SCORE_LINE.findall(re.sub(r"\s+", " ", output))


def test_demo_runs_every_step_and_reruns_predictably(one_epoch_baselines, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)], terminal_width=250)
    assert result.exit_code == 0, result.output
    for step in ("1. Build", "2. Check", "3. Stream", "4. Train", "5. Generate", "6. Build the leaderboard"):
        assert step in result.output
    first = _scores(result.output)
    assert [line.split(":")[0] for line, _how in first] == ["resnet18 on phantom-planes", "unet on phantom-head-seg"]
    assert all(how.startswith("trained in") for _line, how in first)

    summary = json.loads((out / "demo-summary.json").read_text())
    for where in summary["outputs"].values():
        assert Path(where).exists(), where
    results = sorted((out / "results").glob("*.json"))
    assert {read_result(path)["task"] for path in results} == {"phantom-planes", "phantom-head-seg"}
    assert set(summary["scores"]) == {"phantom-planes", "phantom-head-seg"}
    index = (out / "leaderboard" / "index.html").read_text()
    assert "phantom-planes" in index and "phantom-head-seg" in index
    # The synthetic split is scored with a random feature network: the output and JSON say so.
    quality = json.loads((out / "generators" / "synthetic-score" / "synthetic_quality.json").read_text())
    assert quality["untrained_features"] is True and quality["feature_extractor"]["trained"] is False
    assert quality["warnings"][0].startswith("UNTRAINED FEATURES: random-cnn")
    assert "random, untrained feature network" in re.sub(r"\s+", " ", result.output)

    # A rerun in the same folder says what it does, reuses the finished runs: the same scores.
    again = CliRunner().invoke(cli, ["demo", "--out", str(out)], terminal_width=250)
    assert again.exit_code == 0, again.output
    assert "finished training runs there are reused" in re.sub(r"\s+", " ", again.output)
    assert [line for line, _ in _scores(again.output)] == [line for line, _ in first]
    assert all(how == "reused from an earlier run" for _line, how in _scores(again.output))
    assert json.loads((out / "demo-summary.json").read_text())["scores"] == summary["scores"]
    assert sorted((out / "results").glob("*.json")) == results  # rebuilt, not accumulated

    # A folder the demo did not make is refused.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = CliRunner().invoke(cli, ["demo", "--out", str(foreign)])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_two_fresh_trainings_print_identical_scores(one_epoch_baselines, tmp_path):
    """The demo's step 4 twice from scratch, into separate folders: fixed steps, same numbers."""
    from fetal_bench.data.builders import build_dataset
    from fetal_bench.demo import train_and_score

    phantom = tmp_path / "phantom"
    build_dataset("phantom", phantom)
    printed = []
    for attempt in ("a", "b"):
        lines: list[str] = []
        scores = train_and_score(phantom, tmp_path / attempt / "runs", tmp_path / attempt / "results",
                                 log=lines.append)
        printed.append(([line for line, _how in _scores("\n".join(lines))], scores))
    assert printed[0] == printed[1]
    assert len(printed[0][0]) == 2


def test_overwrite_deletes_only_the_demos_outputs(tmp_path):
    from fetal_bench.demo import _prepare

    out = tmp_path / "demo"
    (out / "runs" / "x").mkdir(parents=True)
    (out / "demo-summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    _prepare(out, True, log=lambda message: None)
    assert sorted(p.name for p in out.iterdir()) == [".fetal-bench-demo", "notes.txt"]
