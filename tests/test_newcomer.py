"""A newcomer's second hour (issue 25): a build that says which release it is, predictions that
are a submission, rounded probabilities, errors that name the model to use, listings that fit
the terminal, a doctor that notes rather than warns, and no library progress bars in output."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.errors import FetalBenchError

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


def _run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


# ----------------------------------------------------------------------------------------------
# Which release a build is
# ----------------------------------------------------------------------------------------------


def test_datasets_build_and_info_say_the_shared_hc18_copy_is_v1(hc18_real_build, tmp_path, monkeypatch):
    built, result = hc18_real_build
    info = _run("datasets", "info", built)
    assert info.exit_code == 0, info.output
    assert "Content: matches hc18 v1.0 (content fingerprint " in info.output

    # `datasets build` on the same files: the session's build stands in for a second one (30 s).
    from fetal_bench.data import builders

    def build_again(name, out, **options):
        assert name == "hc18" and options["raw_dir"] is not None
        shutil.copytree(built, out)
        return result

    monkeypatch.setattr(builders, "build_dataset", build_again)
    out = _run("datasets", "build", "hc18", "--raw", tmp_path / "raw", "--out", tmp_path / "hc18")
    assert out.exit_code == 0, out.output
    assert "Content: matches hc18 v1.0" in out.output
    # One name per hash: the files-level hash is the files fingerprint, never "content".
    assert f"files fingerprint {result.fingerprint[:16]} (sha256 over the Parquet files)" in out.output
    card = (built / "README.md").read_text()
    assert "Content fingerprint (sha256 over the Parquet files)" not in card
    assert "Files fingerprint (sha256 over the Parquet files" in card


def test_a_build_that_is_not_the_release_names_the_split(tmp_path):
    from fake_raw import make_hc18_raw

    make_hc18_raw(tmp_path / "raw", subjects=12, seed=1)
    out = _run("datasets", "build", "hc18", "--raw", tmp_path / "raw", "--out", tmp_path / "hc18")
    assert out.exit_code == 0, out.output
    line = next(line for line in out.output.splitlines() if line.startswith("Content:"))
    assert line.startswith("Content: not hc18 v1.0: split 'train' has content fingerprint ")
    assert "676 rows" in line and "matches" not in line
    assert "Generating" not in out.output  # datasets' own bars stay out of our output


def test_datasets_progress_bars_do_not_leak_into_evaluate(phantom, tmp_path, capfd):
    import datasets

    copy = tmp_path / "phantom"
    shutil.copytree(phantom, copy)  # a build datasets has not prepared yet
    predictions = tmp_path / "p.csv"  # absent: the error comes after the data was opened
    from fetal_bench.evaluation import evaluate

    capfd.readouterr()
    with pytest.raises(FetalBenchError):
        evaluate("phantom-planes", predictions=predictions, data=copy, validate_only=True)
    captured = capfd.readouterr()
    assert "Generating" not in captured.out + captured.err
    assert datasets.is_progress_bar_enabled()  # restored for the caller


# ----------------------------------------------------------------------------------------------
# predict --task writes a submission; rounded probabilities are accepted
# ----------------------------------------------------------------------------------------------


def test_predict_task_output_is_a_submission_evaluate_takes_unchanged(phantom, tmp_path):
    from fetal_bench.models import create_model, save_checkpoint
    from fetal_bench.tasks import get_task

    task = get_task("phantom-planes")
    save_checkpoint(create_model("resnet18", labels=list(task.labels), pretrained=False, image_size=(32, 32)),
                    tmp_path / "r18")
    out = _run("predict", "--model", "resnet18", "--checkpoint", tmp_path / "r18", "--task", "phantom-planes",
               "--data", phantom, "--split", "test", "--output", tmp_path / "preds.csv")
    assert out.exit_code == 0, out.output
    assert "fetal-bench evaluate --task phantom-planes --predictions" in out.output
    table = pd.read_csv(tmp_path / "preds.csv", dtype={"id": str})
    assert list(table.columns) == ["id", *task.labels] and len(table) == 120

    scored = _run("evaluate", "--task", "phantom-planes", "--predictions", tmp_path / "preds.csv", "--data", phantom,
                  "--output", tmp_path / "results", "--bootstrap", "10")
    assert scored.exit_code == 0, scored.output
    by_model = _run("evaluate", "--task", "phantom-planes", "--model", "resnet18", "--checkpoint", tmp_path / "r18",
                    "--data", phantom, "--output", tmp_path / "results-model", "--bootstrap", "10")
    assert by_model.exit_code == 0, by_model.output
    (a,), (b,) = (tmp_path / "results").glob("*.json"), (tmp_path / "results-model").glob("*.json")
    assert json.loads(a.read_text())["scores"] == json.loads(b.read_text())["scores"]

    wrong = _run("predict", "--model", "resnet18", "--checkpoint", tmp_path / "r18", "--task", "phantom-head-seg",
                 "--data", phantom, "--output", tmp_path / "masks.csv")
    assert wrong.exit_code == 2 and "Pass --output masks.parquet" in wrong.output
    both = _run("predict", "--model", "resnet18", "--task", "phantom-planes", "--output", tmp_path / "x.csv", phantom)
    assert both.exit_code == 2 and "not both or neither" in both.output


def test_a_segmentation_task_prediction_is_a_parquet_submission(phantom, tmp_path):
    from fetal_bench.models import create_model, save_checkpoint

    save_checkpoint(create_model("unet", image_size=(32, 48), base_channels=4, depth=2), tmp_path / "unet")
    out = _run("predict", "--model", "unet", "--checkpoint", tmp_path / "unet", "--task", "phantom-head-seg",
               "--data", phantom, "--output", tmp_path / "masks.parquet")
    assert out.exit_code == 0, out.output
    scored = _run("evaluate", "--task", "phantom-head-seg", "--predictions", tmp_path / "masks.parquet", "--data",
                  phantom, "--validate-only")
    assert scored.exit_code == 0 and "Valid" in scored.output, scored.output


def _probabilities(ids, labels, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(len(labels)), size=len(ids))
    return pd.DataFrame({"id": ids, **{label: proba[:, k] for k, label in enumerate(labels)}})


def test_probabilities_rounded_to_three_decimals_are_accepted(tmp_path):
    from fetal_bench.tasks.classification import load_classification_submission, probability_sum_tolerance
    from fetal_bench.tasks.submissions import SubmissionError

    labels = [f"class {k}" for k in range(6)]
    ids = [f"r{i}" for i in range(2000)]
    table = _probabilities(ids, labels)
    path = tmp_path / "rounded.csv"
    table.to_csv(path, index=False, float_format="%.3f")
    sums = pd.read_csv(path)[labels].sum(axis=1)
    assert (abs(sums - 1) > 0.001).any()  # rounding alone moves some rows past 0.001
    assert probability_sum_tolerance(6) == 0.003 and probability_sum_tolerance(2) == 0.001
    submission = load_classification_submission(path, expected_ids=ids, labels=labels)
    assert submission.proba.shape == (2000, 6)

    off = table.assign(**{labels[0]: table[labels[0]] + 0.01})
    off.to_csv(path, index=False, float_format="%.3f")
    with pytest.raises(SubmissionError) as error:
        load_classification_submission(path, expected_ids=ids, labels=labels)
    assert "tolerance 0.003" in error.value.problem and error.value.fix.startswith("Renormalise each row")


def test_sononet16_on_the_zero_shot_task_names_sononet16_planes():
    from fetal_bench.models import create_model
    from fetal_bench.tasks import get_task
    from fetal_bench.tasks.classification import _task_columns

    model = create_model("sononet16", weights=None)
    with pytest.raises(FetalBenchError) as error:
        _task_columns(get_task("planes-africa-zero-shot"), model, "sononet16")
    assert error.value.fix.startswith("Use --model sononet16-planes:")
    # A model no registered one can replace keeps the plain advice.
    with pytest.raises(FetalBenchError) as other:
        _task_columns(get_task("phantom-planes"), model, "sononet16")
    assert "sononet16-planes" not in other.value.fix and "train the model" in other.value.fix.lower()


# ----------------------------------------------------------------------------------------------
# Listings that fit, a doctor that notes
# ----------------------------------------------------------------------------------------------


def _cell_words(command: str) -> set[str]:
    from fetal_bench.data.catalog import list_datasets
    from fetal_bench.models import list_models
    from fetal_bench.tasks import list_tasks

    if command == "tasks":
        texts = [f"{t.name} {t.dataset.name} {t.type} {t.main_score} {' '.join(t.group_by)}" for t in list_tasks()]
    elif command == "models":
        texts = [f"{m.name} {m.task_type} {m.description} {m.weights}" for m in list_models()]
    else:
        texts = [f"{d.name} {d.hub_id or ''} {d.license} {' '.join(s.filename for s in d.sources)}"
                 for d in list_datasets()]
    return {word.strip(",.;:()") for text in texts for word in text.split() if len(word.strip(",.;:()")) > 3}


@pytest.mark.parametrize("command", ["tasks", "models", "datasets"])
@pytest.mark.parametrize("columns", [80, 100])
def test_listings_fit_the_width_and_split_no_word(command, columns):
    out = _run(command, "list", env={"COLUMNS": str(columns)})
    assert out.exit_code == 0, out.output
    widest = max(len(line) for line in out.output.splitlines())
    assert widest <= columns, f"{command} list is {widest} wide"
    missing = sorted(word for word in _cell_words(command) if word not in out.output)
    assert missing == [], f"split or lost at {columns} columns: {missing[:10]}"


def test_piped_listings_without_columns_fit_100(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    for command in ("tasks", "models"):
        out = CliRunner().invoke(cli, [command, "list"])
        assert out.exit_code == 0 and max(map(len, out.output.splitlines())) <= 100


def test_doctor_notes_the_tested_pair_and_keeps_paths_whole(monkeypatch, tmp_path):
    from fetal_bench import doctor as doctor_module

    installed = doctor_module._installed_versions()
    monkeypatch.setattr(doctor_module, "_installed_versions",
                        lambda: {**installed, "transformers": "5.24.0", "peft": "0.21.2"})
    deep = tmp_path / ("a-long-folder-name-" * 4) / "fetal-bench-cache"
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(deep))
    out = _run("doctor", env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    assert "Note (fetal-bench is not affected): transformers 5.24.0 with peft 0.21.2" in out.output
    assert "Warning" not in out.output
    assert str(deep / "weights" / "SonoNet16.npz") in out.output  # whole, not cut with "…"
    assert "…" not in out.output


def test_a_cached_hub_dataset_is_found_by_huggingface_hub_itself(tmp_path, monkeypatch):
    """Offline, a Hub dataset in the cache at the task's revision loads; at another revision it
    does not: asked of huggingface_hub (try_to_load_from_cache), not by rebuilding its folder names."""
    import huggingface_hub.constants

    from fetal_bench.evaluation.scored_split import _cached, _hub_offline, require_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    storage = tmp_path / "datasets--fetal-bench--hc18"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (storage / "snapshots" / commit).mkdir(parents=True)
    (storage / "snapshots" / commit / "README.md").write_text("---\n---\n")
    (storage / "refs").mkdir()
    (storage / "refs" / "v1.0").write_text(commit)
    assert _hub_offline()  # conftest
    assert _cached("fetal-bench/hc18", "v1.0") and not _cached("fetal-bench/hc18", "v2.0")
    assert not _cached("fetal-bench/fetal-planes-es", "v1.0")
    require_hub("fetal-bench/hc18", "hc18", "v1.0")  # no error: datasets reads the cache
    with pytest.raises(FetalBenchError, match="offline mode is on"):
        require_hub("fetal-bench/hc18", "hc18", "v2.0")


def test_the_writer_takes_datasets_own_parquet_column_options():
    """data/writer.py asks datasets.arrow_writer for its column options (the committed builds stay
    byte-identical: test_real_data pins them); the copy kept for older datasets agrees with it."""
    import datasets

    from fetal_bench.data import writer
    from fetal_bench.data.schemas import head_biometry_features

    pytest.importorskip("datasets.arrow_writer").get_parquet_column_options  # noqa: B018 (datasets >= 5.2)
    for features in (head_biometry_features(),
                     datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                        "label": datasets.ClassLabel(names=["a", "b"]),
                                        "tags": datasets.Sequence(datasets.Value("string"))})):
        options = writer._column_options(features)
        assert options == writer._column_options_before_5_2(features)
        assert options["compression"]["image.bytes"] == "none" and options["column_encoding"]["image.bytes"] == "PLAIN"
        assert options["compression"]["id"] == "snappy" and "id" in options["use_dictionary"]
    assert writer.parquet_writer_options(head_biometry_features())["use_content_defined_chunking"] == \
        datasets.config.DEFAULT_CDC_OPTIONS


# ----------------------------------------------------------------------------------------------
# Progress that tells the truth, and shows when piped
# ----------------------------------------------------------------------------------------------


def test_the_training_bar_counts_the_steps_the_budget_leaves():
    from fetal_bench.training.schedule import Budget

    unbounded = Budget(None, n_val_batches=4)
    unbounded.stepped(6.0)
    assert unbounded.steps_in_budget(60.0, done=10, total=1680) == 1680
    budget = Budget(180.0, n_val_batches=4)  # --max-minutes 3
    assert budget.steps_in_budget(0.0, done=0, total=1680) == 1680  # no step timed yet
    budget.stepped(6.0)
    closing = budget.closing_s()
    assert budget.steps_in_budget(12.0, done=1, total=1680) == 2 + int((180.0 - 12.0 - closing) // 6.0)
    assert budget.steps_in_budget(179.0, done=29, total=1680) == 30  # spent: this step is the last
    assert budget.steps_in_budget(12.0, done=1, total=5) == 5  # never more than the epochs hold


def test_training_shows_a_validation_bar(phantom, tmp_path, capfd):
    from fetal_bench.training import TrainConfig, train

    train(TrainConfig(model="unet", task="phantom-head-seg", data=str(phantom), output=str(tmp_path / "run"),
                      model_cfg={"base_channels": 4, "depth": 2}, image_size=(32, 48), max_steps=1, batch_size=16,
                      progress=True, patience=None, max_minutes=30))
    err = capfd.readouterr().err
    assert "training unet" in err and "validating" in err


def test_piped_sampling_progress_prints_lines(capsys, monkeypatch):
    from fetal_bench.cli import generate

    monkeypatch.setattr(generate, "PLAIN_PROGRESS_EVERY_S", 0.0)
    context, update = generate._shard_progress()  # stderr is captured: not a terminal
    with context:
        update(0, 4)
        update(2, 4)
        update(4, 4)
    err = capsys.readouterr().err
    assert "shards: starting" in err and "shards: 2/4 (50%)" in err and "shards: 4/4 (100%)" in err
