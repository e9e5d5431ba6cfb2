"""The real HC18 and African sets as v1.0: counts, geometry, loaders, `datasets info`, pinned content,
and the committed leaderboard baselines scored again from their committed predictions.

Each real set is built once per session (tests/conftest.py: about 25 s for HC18, 3 s for the
African set); everything here skips cleanly without FETAL_BENCH_SHARED_DATA.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from datasets import load_dataset

from fetal_bench.data.catalog import CATALOG
from fetal_bench.data.fingerprint import build_fingerprints, combined_fingerprint

pytestmark = pytest.mark.real_data

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "leaderboard" / "results"
PREDICTIONS = REPO / "leaderboard" / "predictions"

# HC18 v1.0, measured on the complete official training set (999 labelled images). A subject here
# is an exam (the NNN prefix of the file name), not a woman: HC18 has 551 women, no woman id.
HC18_ROWS = {"train": 676, "validation": 123, "test": 200}
HC18_EXAMS = {"train": 548, "validation": 94, "test": 164}
HC18_MASK_FRACTION = {"train": 0.305607, "validation": 0.287269, "test": 0.307849}  # mean head share of a frame
# The ellipse fitted to a filled mask's boundary reproduces the CSV's head circumference within
# 2.0 mm (1.16%) on all 999 images; the tolerance leaves room for a different ellipse fitter.
HC_TOLERANCE_MM = 2.5
HC_TOLERANCE_REL = 0.015


def test_hc18_counts_per_split(hc18_real_build):
    out, result = hc18_real_build
    ds = load_dataset(str(out))
    assert {split: len(ds[split]) for split in ds} == HC18_ROWS
    assert {split: len(set(ds[split]["subject_id"])) for split in ds} == HC18_EXAMS
    exams = [set(ds[split]["subject_id"]) for split in ds]
    assert sum(map(len, exams)) == len(set().union(*exams))  # no exam in two splits
    for split in ds:
        fraction = np.mean([np.asarray(mask).astype(bool).mean() for mask in ds[split]["mask"]])
        assert round(float(fraction), 6) == HC18_MASK_FRACTION[split]
    assert {s: v.num_subjects for s, v in result.configs["default"].items()} == HC18_EXAMS


def test_hc18_pixel_sizes_and_head_circumference_match_the_csv(hc18_real_build, shared_data):
    from fetal_bench.geometry import fit_ellipse, mask_boundary

    out, _ = hc18_real_build
    with open(shared_data / "hc18" / "training_set_pixel_size_and_HC.csv", newline="") as handle:
        table = {row["filename"].removesuffix(".png"): row for row in csv.DictReader(handle)}
    ds = load_dataset(str(out))
    seen = 0
    for split in ds:
        d = ds[split]
        for row_id, mask, pixel, hc in zip(d["id"], d["mask"], d["pixel_size_mm"], d["head_circumference_mm"]):
            reference = table[row_id]
            # Stored as float32: equal to the CSV's value at that precision, for every image.
            assert np.float32(pixel) == np.float32(reference["pixel size(mm)"]), row_id
            assert np.float32(hc) == np.float32(reference["head circumference (mm)"]), row_id
            rows, cols = np.nonzero(mask_boundary(np.asarray(mask).astype(bool)))
            measured = fit_ellipse(cols, rows).perimeter * float(reference["pixel size(mm)"])
            expected = float(reference["head circumference (mm)"])
            assert abs(measured - expected) <= min(HC_TOLERANCE_MM, HC_TOLERANCE_REL * expected), row_id
            seen += 1
    assert seen == len(table) == 999


def test_african_counts_as_the_readme_lists(africa_real_build):
    out, result = africa_real_build
    ds = load_dataset(str(out))
    assert {split: len(ds[split]) for split in ds} == {"train": 217, "test": 233}
    countries = Counter(c for split in ds for c in ds[split]["country"])
    assert countries == {"Algeria": 100, "Egypt": 100, "Malawi": 100, "Uganda": 75, "Ghana": 75}
    names = ds["train"].features["label"].names
    planes = Counter(names[k] for split in ds for k in ds[split]["label"])
    assert planes == {"Fetal abdomen": 125, "Fetal brain": 125, "Fetal femur": 125, "Fetal thorax": 75}
    thorax = Counter(c for split in ds for c, k in zip(ds[split]["country"], ds[split]["label"])
                     if names[k] == "Fetal thorax")
    assert set(thorax) == {"Algeria", "Egypt", "Malawi"}  # Uganda and Ghana have no thorax images
    per_split = {s: dict(v.label_counts) for s, v in result.configs["default"].items()}
    assert per_split == {
        "train": {"Fetal abdomen": 60, "Fetal brain": 60, "Fetal femur": 61, "Fetal thorax": 36},
        "test": {"Fetal abdomen": 65, "Fetal brain": 65, "Fetal femur": 64, "Fetal thorax": 39},
    }
    patients = {split: set(ds[split]["patient_id"]) for split in ds}
    assert not patients["train"] & patients["test"]
    assert (len(patients["train"]), len(patients["test"])) == (61, 66)


def test_one_loader_pass_over_each_real_build(hc18_real_build, africa_real_build):
    from fetal_bench.data import make_dataloader, open_dataset

    for directory, task, column in ((hc18_real_build[0], "segmentation", "masks"),
                                    (africa_real_build[0], "classification", "labels")):
        for split in open_dataset(directory):
            dataset = open_dataset(directory, split=split)
            loader = make_dataloader(dataset, task=task, image_size=(64, 96), batch_size=64)
            n = 0
            for batch in loader:
                assert tuple(batch["pixel_values"].shape[1:]) == (1, 64, 96)
                assert np.isfinite(batch["pixel_values"].numpy()).all()
                assert batch[column].shape[0] == batch["pixel_values"].shape[0]
                n += batch["pixel_values"].shape[0]
            assert n == len(dataset)


@pytest.mark.parametrize("which", ["hc18", "africa"])
def test_datasets_info_on_each_real_build(which, hc18_real_build, africa_real_build):
    from fetal_bench.cli import cli

    out = (hc18_real_build if which == "hc18" else africa_real_build)[0]
    run = CliRunner().invoke(cli, ["datasets", "info", "--json", str(out)])
    assert run.exit_code == 0, run.output
    report = json.loads(run.output)["default"]
    if which == "hc18":
        assert report["rows"] == HC18_ROWS and report["subjects"] == HC18_EXAMS
    else:
        assert report["rows"] == {"train": 217, "test": 233} and report["subjects"] == {"train": 61, "test": 66}
        assert report["groups"]["country"]["test"] == {"Algeria": 52, "Egypt": 52, "Ghana": 39, "Malawi": 51,
                                                       "Uganda": 39}
        # The official split has pixel-identical images under different patient ids, 22 of them
        # across train and test: a fact about the release that fine-tuned results must state.
        where = {row_id: split for split in ("train", "test")
                 for row_id in load_dataset(str(out), split=split)["id"]}
        groups = report["duplicate_images"]
        assert len(groups) == 47
        assert sum(1 for g in groups if len({where[i] for i in g}) > 1) == 22
    assert report["subject_overlap"] == {}


@pytest.mark.parametrize("name", ["hc18", "fetal-planes-africa"])
def test_real_builds_are_the_pinned_v1_content(name, hc18_real_build, africa_real_build):
    """A builder change that alters v1.0 content fails here instead of landing silently."""
    out = (hc18_real_build if name == "hc18" else africa_real_build)[0]
    pin = CATALOG[name].pin("v1.0")
    fingerprints = build_fingerprints(out)
    assert fingerprints == pin.splits
    assert combined_fingerprint(fingerprints) == pin.dataset
    assert {split: len(load_dataset(str(out), split=split)) for split in pin.splits} == pin.rows


def test_real_size_shift_build_is_its_pinned_content(hc18_size_shift_real_build):
    """The size-shift split of the complete official files: the catalog's pin, and the exam cut."""
    pin = CATALOG["hc18-size-shift"].pin("v1")
    fingerprints = build_fingerprints(hc18_size_shift_real_build)
    assert fingerprints == pin.splits
    assert combined_fingerprint(fingerprints) == pin.dataset
    rows = {split: load_dataset(str(hc18_size_shift_real_build), split=split) for split in pin.splits}
    assert {split: len(d) for split, d in rows.items()} == pin.rows == {"train": 485, "validation": 256, "test": 258}
    hc = {split: list(d["head_circumference_mm"]) for split, d in rows.items()}
    assert max(hc["train"] + hc["validation"]) == pytest.approx(198.7)
    assert (min(hc["test"]), max(hc["test"])) == (pytest.approx(159.9), pytest.approx(346.4))
    assert {int(s) for s in rows["test"]["subject_id"]} == set(range(600, 806))
    assert max(int(s) for split in ("train", "validation") for s in rows[split]["subject_id"]) == 599


def test_local_real_build_is_recognised_as_v1(africa_real_build, tmp_path):
    from fetal_bench.evaluation.data import load_eval_data
    from fetal_bench.tasks import get_task

    data = load_eval_data(get_task("planes-africa-zero-shot-all"), africa_real_build[0])
    pin = CATALOG["fetal-planes-africa"].pin("v1.0")
    assert data.revision == "v1.0" and data.notes == ()
    assert data.fingerprint == combined_fingerprint(pin.splits)  # train+test: both parts match
    assert data.source == f"local:{africa_real_build[0].name}"


def _committed(task: str, name: str) -> dict:
    return json.loads((RESULTS / f"{task}__{name}.json").read_text(encoding="utf-8"))


def _committed_results() -> list[tuple[str, str, str]]:
    """(task, name, predictions file) of every committed result: each names its predictions
    ``leaderboard/predictions/<name>.csv`` (classification) or ``.parquet`` (masks), so a new
    baseline is re-scored here as soon as it is committed."""
    found = []
    for path in sorted(RESULTS.glob("*.json")):
        task, _, name = path.stem.partition("__")
        files = [f"{name}{suffix}" for suffix in (".csv", ".parquet") if (PREDICTIONS / f"{name}{suffix}").is_file()]
        found.append((task, name, files[0] if files else f"{name}.csv"))
    return found


COMMITTED = _committed_results()


def test_every_committed_result_has_its_predictions_and_the_known_ones_are_there():
    assert all((PREDICTIONS / predictions).is_file() for _, _, predictions in COMMITTED)
    names = {name for _, name, _ in COMMITTED}
    assert {"sononet16-planes", "sononet16-planes-task-labels", "sononet16-africa-ft", "resnet18-africa-scratch",
            "unet-hc18-cpu-160x240-18ep"} <= names


@pytest.mark.parametrize("task, name, predictions", COMMITTED, ids=[c[1] for c in COMMITTED])
def test_committed_results_score_again_from_their_predictions(task, name, predictions, request):
    """Re-scoring a committed baseline's predictions on a fresh build of the task's pinned revision
    gives its exact numbers."""
    from fetal_bench.evaluation import evaluate
    from fetal_bench.tasks import get_task

    committed = _committed(task, name)
    if task == "hc18-size-shift":
        build = request.getfixturevalue("hc18_size_shift_real_build")
    else:
        build = request.getfixturevalue("hc18_real_build" if task.startswith("hc18") else "africa_real_build")[0]
    again = evaluate(task, predictions=PREDICTIONS / predictions, data=build,
                     n_resamples=committed["bootstrap"]["n_resamples"], seed=committed["bootstrap"]["seed"])
    assert again["scores"] == committed["scores"]
    assert again["groups"] == committed["groups"]
    assert again.get("confusion_matrix") == committed.get("confusion_matrix")
    assert {k: again["dataset"][k] for k in ("revision", "fingerprint", "split")} == \
        {k: committed["dataset"][k] for k in ("revision", "fingerprint", "split")}
    assert committed["dataset"]["revision"] == get_task(task).dataset.revision
    assert committed["task_version"] == get_task(task).version
    # Results travel: names and hashes, never this machine's paths.
    for value in (committed["dataset"].get("source"), committed["submission"].get("checkpoint")):
        assert value is None or not value.startswith(("/", "~")) and ":\\" not in value
    assert committed["submission"]["command"].startswith("leaderboard/reproduce.sh ")
    # The result names its predictions by content, so the leaderboard can find and score them.
    from fetal_bench.evaluation.submissions import submission_sha256

    assert committed["submission"]["predictions_sha256"] == submission_sha256(PREDICTIONS / predictions)


def test_the_committed_board_is_verified_and_ranked(hc18_real_build, hc18_size_shift_real_build, africa_real_build,
                                                    tmp_path):
    """The build's own rule, on the committed files: every committed result is scored again from
    its committed predictions on fresh v1.0 builds and ranked; an edited number is refused."""
    import shutil

    from fetal_bench.cli import cli

    data = ["--data", f"hc18={hc18_real_build[0]}", "--data", f"hc18-size-shift={hc18_size_shift_real_build}",
            "--data", f"fetal-planes-africa={africa_real_build[0]}"]
    result = CliRunner().invoke(cli, ["leaderboard", "build", "--results", str(RESULTS), "--out",
                                      str(tmp_path / "site"), "--no-timestamp", *data])
    assert result.exit_code == 0, result.output
    ranked = sorted(line.split(":")[0] for line in result.output.splitlines() if line.endswith(": ranked"))
    assert ranked == sorted(p.name for p in RESULTS.glob("*.json"))
    zero_shot = (tmp_path / "site/tasks/planes-africa-zero-shot.html").read_text()
    assert "paired cluster bootstrap" in zero_shot
    hc18 = (tmp_path / "site/tasks/hc18-head-seg.html").read_text()
    assert "Ranked by HC abs. diff. (mm), lower is better" in hc18
    if any(RESULTS.glob("hc18-size-shift__*.json")):
        assert "Ranked by HC abs. diff. (mm), lower is better" in (tmp_path / "site/tasks/hc18-size-shift.html").read_text()

    board = tmp_path / "board"
    shutil.copytree(RESULTS.parent, board, ignore=shutil.ignore_patterns("site"))
    edited = board / "results" / "planes-africa-zero-shot__sononet16-planes-task-labels.json"
    text = edited.read_text()
    value = json.loads(text)["scores"]["accuracy"]["value"]
    edited.write_text(text.replace(f'"value": {value!r}', f'"value": {value + 0.01!r}', 1))
    result = CliRunner().invoke(cli, ["leaderboard", "check", str(board / "results"), *data])
    assert result.exit_code == 2, result.output
    assert "planes-africa-zero-shot__sononet16-planes-task-labels.json: refused (its scores are not what" in \
        result.output
    assert "planes-africa-zero-shot__sononet16-planes.json: ranked" in result.output


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*.json")))
def test_every_committed_point_estimate_lies_in_its_interval(name):
    from leaderboard_fixtures import estimates_outside_their_intervals

    assert estimates_outside_their_intervals(json.loads((RESULTS / name).read_text(encoding="utf-8"))) == []
