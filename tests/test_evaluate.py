"""`fetal-bench evaluate` end to end on the phantom tasks, and submission validation."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from datasets import Dataset, load_dataset
from PIL import Image
from sklearn import metrics as skm

from fetal_bench.cli import cli
from fetal_bench.errors import FetalBenchError
from fetal_bench.evaluation import evaluate, read_result, validate_result
from fetal_bench.evaluation.results import InvalidResultError
from fetal_bench.evaluation.submissions import SubmissionError
from fetal_bench.tasks import get_task

BOOT = 50  # resamples: enough to exercise the intervals, fast


@pytest.fixture(scope="session")
def planes_test(phantom):
    return load_dataset(str(phantom), "planes", split="test")


@pytest.fixture(scope="session")
def head_test(phantom):
    return load_dataset(str(phantom), "head", split="test")


def _proba_frame(ids, proba, labels):
    frame = pd.DataFrame(proba, columns=list(labels))
    frame.insert(0, "id", ids)
    return frame


def _perfect_proba(planes_test, labels):
    onehot = np.eye(len(labels))[np.asarray(planes_test["label"])]
    return _proba_frame(planes_test["id"], onehot, labels)


def _random_proba(n, k, seed):
    rng = np.random.default_rng(seed)
    raw = rng.random((n, k)) ** 3
    return raw / raw.sum(axis=1, keepdims=True)


def test_perfect_classification_scores_one(phantom, planes_test, tmp_path):
    task = get_task("phantom-planes")
    path = tmp_path / "perfect.csv"
    _perfect_proba(planes_test, task.labels).to_csv(path, index=False)
    result = evaluate("phantom-planes", predictions=path, data=phantom, output=tmp_path / "results", n_resamples=BOOT)
    scores = result["scores"]
    for metric in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "auc_ovr_macro", "auc_ovr_hard"):
        assert scores[metric]["value"] == pytest.approx(1.0)
        assert scores[metric]["ci95"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert scores["ece"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert set(result["groups"]["site"]["values"]) == {"site-a", "site-b", "site-c"}
    written = read_result(result["_path"])  # validates against the schema
    assert written["dataset"]["revision"] == "generator-v1" and len(written["dataset"]["fingerprint"]) == 64
    assert written["submission"]["sha256"] == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    assert written["n_subjects"] == len(set(planes_test["patient_id"]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_classification_equals_scikit_learn(phantom, planes_test, tmp_path, seed):
    task = get_task("phantom-planes")
    y = np.asarray(planes_test["label"])
    proba = _random_proba(len(y), len(task.labels), seed)
    path = tmp_path / "random.parquet"
    _proba_frame(planes_test["id"], proba, task.labels).to_parquet(path)
    result = evaluate("phantom-planes", predictions=path, data=phantom, n_resamples=BOOT)
    pred = proba.argmax(axis=1)
    s = result["scores"]
    assert s["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-9)
    assert s["balanced_accuracy"]["value"] == pytest.approx(skm.balanced_accuracy_score(y, pred), abs=1e-9)
    assert s["macro_f1"]["value"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-9)
    assert s["weighted_f1"]["value"] == pytest.approx(skm.f1_score(y, pred, average="weighted"), abs=1e-9)
    assert s["auc_ovr_macro"]["value"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-9)
    lo, hi = s["accuracy"]["ci95"]
    assert lo <= s["accuracy"]["value"] <= hi
    per_site = result["groups"]["site"]["values"]
    sites = np.asarray(planes_test["site"])
    for site, entry in per_site.items():
        rows = sites == site
        assert entry["scores"]["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y[rows], pred[rows]), abs=1e-9)
    worst, best = result["groups"]["site"]["worst"], result["groups"]["site"]["best"]
    assert per_site[worst]["scores"]["accuracy"]["value"] <= per_site[best]["scores"]["accuracy"]["value"]


def test_label_only_submission_reports_probability_metrics_as_null(phantom, planes_test, tmp_path):
    task = get_task("phantom-planes")
    path = tmp_path / "labels.csv"
    pd.DataFrame({"id": planes_test["id"], "label": [task.labels[v] for v in planes_test["label"]]}).to_csv(path, index=False)
    result = evaluate("phantom-planes", predictions=path, data=phantom, n_resamples=BOOT)
    assert result["scores"]["accuracy"]["value"] == 1.0
    assert result["scores"]["auc_ovr_macro"]["value"] is None and "labels" in result["scores"]["auc_ovr_macro"]["reason"]
    json.dumps(result, allow_nan=False)


def test_argmax_on_an_allowed_extra_class_counts_as_an_error(phantom, planes_test, tmp_path):
    task = dataclasses.replace(get_task("phantom-planes"), allowed_extra_labels=("Other",))
    frame = _perfect_proba(planes_test, task.labels)
    frame["Other"] = 0.0
    wrong = frame.index[:10]
    frame.loc[wrong, list(task.labels)] = 0.0
    frame.loc[wrong, "Other"] = 1.0
    path = tmp_path / "other.csv"
    frame.to_csv(path, index=False)
    result = evaluate(task, predictions=path, data=phantom, n_resamples=BOOT)
    assert result["scores"]["accuracy"]["value"] == pytest.approx(1 - 10 / len(frame))
    assert result["confusion_matrix"]["predicted_labels"][-1] == "Other"
    assert sum(row[-1] for row in result["confusion_matrix"]["matrix"]) == 10


def _expect_refusal(tmp_path, predictions, *fragments, task="phantom-planes", data=None):
    out = tmp_path / "results"
    with pytest.raises(SubmissionError) as error:
        evaluate(task, predictions=predictions, data=data, output=out, n_resamples=BOOT)
    for fragment in fragments:
        assert fragment in str(error.value)
    assert not out.exists()
    return str(error.value)


def test_bad_classification_submissions_are_refused_with_ids(phantom, planes_test, tmp_path):
    task = get_task("phantom-planes")
    good = _perfect_proba(planes_test, task.labels)
    ids = list(planes_test["id"])

    cases = {
        "missing": (good.iloc[3:], ["missing ids", ids[0]]),
        "extra": (pd.concat([good, good.iloc[:1].assign(id="not-a-row")]), ["extra ids", "not-a-row"]),
        "duplicate": (pd.concat([good, good.iloc[:2]]), ["duplicate ids", ids[0]]),
        "unknown": (good.rename(columns={"femur": "Femur!"}), ["unknown label columns ['Femur!']", "missing probability columns ['femur']"]),
        "nan": (good.assign(brain=np.where(np.arange(len(good)) == 5, np.nan, good["brain"])), ["NaN", ids[5]]),
        "range": (good.assign(brain=good["brain"] * 2 - 0.5), ["outside [0, 1]"]),
        # 4 columns: the tolerance admits 4 probabilities rounded to 3 decimals (4 x 0.0005).
        "sum": (good.assign(abdomen=good["abdomen"] + 0.2), ["not summing to 1", "tolerance 0.002", "Renormalise each row"]),
    }
    for name, (frame, fragments) in cases.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path, index=False)
        _expect_refusal(tmp_path, path, *fragments, data=phantom)
    # Many missing ids: the first few are listed with the count.
    path = tmp_path / "few.csv"
    good.iloc[:2].to_csv(path, index=False)
    message = _expect_refusal(tmp_path, path, f"missing ids (rows of the evaluation split with no prediction): {len(ids) - 2} (", data=phantom)
    assert "..." in message


def _mask_dir(tmp_path, head_test, transform=lambda mask, i: mask):
    directory = tmp_path / "masks"
    directory.mkdir(exist_ok=True)
    for i, (row_id, mask) in enumerate(zip(head_test["id"], head_test["mask"])):
        Image.fromarray((transform(np.asarray(mask), i) > 0).astype(np.uint8)).save(directory / f"{row_id}.png")
    return directory


def test_perfect_segmentation_scores_one_and_zero_mm(phantom, head_test, tmp_path):
    masks = _mask_dir(tmp_path, head_test)
    result = evaluate("phantom-head-seg", predictions=masks, data=phantom, output=tmp_path / "r", n_resamples=BOOT)
    s = result["scores"]
    assert s["dice"]["value"] == 1.0 and s["iou"]["value"] == 1.0
    assert s["hd95_mm"]["value"] == 0.0 and s["assd_mm"]["value"] == 0.0
    # HC is measured on an ellipse fitted to the mask's boundary-pixel centres and compared with the
    # analytic circumference: those centres lie ~half a pixel inside the edge, so a perfect mask
    # measures ~pi pixels short (docs/metrics.md) and that is all the error there is.
    pi_pixels_mm = np.pi * np.asarray(head_test["pixel_size_mm"], dtype=float)
    assert 0.5 * pi_pixels_mm.mean() < s["hc_abs_diff_mm"]["value"] < 1.3 * pi_pixels_mm.mean()
    read_result(result["_path"])


def test_perturbed_segmentation_scores_drop(phantom, head_test, tmp_path):
    from scipy.ndimage import binary_erosion

    masks = _mask_dir(tmp_path, head_test, lambda m, i: binary_erosion(m, iterations=1 + i % 3))
    result = evaluate("phantom-head-seg", predictions=masks, data=phantom, n_resamples=BOOT)
    s = result["scores"]
    assert 0.8 < s["dice"]["value"] < 1.0 and s["hd95_mm"]["value"] > 0 and s["hc_abs_diff_mm"]["value"] > 0
    lo, hi = s["dice"]["ci95"]
    assert lo <= s["dice"]["value"] <= hi


def test_parquet_mask_submission(phantom, head_test, tmp_path):
    rows = []
    for row_id, mask in zip(head_test["id"], head_test["mask"]):
        buffer = io.BytesIO()
        Image.fromarray((np.asarray(mask) * 255).astype(np.uint8)).save(buffer, format="PNG")
        rows.append({"id": row_id, "mask": buffer.getvalue()})
    path = tmp_path / "masks.parquet"
    pd.DataFrame(rows).to_parquet(path)
    result = evaluate("phantom-head-seg", predictions=path, data=phantom, n_resamples=BOOT)
    assert result["scores"]["dice"]["value"] == 1.0


def test_bad_segmentation_submissions_are_refused(phantom, head_test, tmp_path):
    masks = _mask_dir(tmp_path, head_test)
    ids = list(head_test["id"])
    (masks / f"{ids[0]}.png").unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / f"{ids[1]}.png")
    Image.fromarray(np.full(np.asarray(head_test[2]["mask"]).shape, 7, np.uint8)).save(masks / f"{ids[2]}.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(masks / "stranger.png")
    message = _expect_refusal(tmp_path, masks, "missing ids", ids[0], "native size", ids[1], "values other than 0/1",
                              ids[2], "extra ids", "stranger", task="phantom-head-seg", data=phantom)
    assert message.count("\n  - ") == 4  # every problem in one message


def test_validate_only_and_cli(phantom, planes_test, tmp_path):
    task = get_task("phantom-planes")
    path = tmp_path / "p.csv"
    _perfect_proba(planes_test, task.labels).to_csv(path, index=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
                                 "--validate-only"])
    assert result.exit_code == 0 and "Valid" in result.output
    result = runner.invoke(cli, ["evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
                                 "--output", str(tmp_path / "res"), "--bootstrap", "20", "--name", "oracle",
                                 "--training-data", "real"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "by site" in result.output
    written = read_result(tmp_path / "res" / "phantom-planes__oracle.json")
    assert written["submission"]["training_data"] == "real"
    pd.read_csv(path).iloc[1:].to_csv(path, index=False)
    result = runner.invoke(cli, ["evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
                                 "--validate-only"])
    assert result.exit_code == 2 and "missing ids" in result.output and "Fix:" in result.output


def test_paper_code_links_and_zero_shot_flag_are_recorded(phantom, planes_test, tmp_path):
    task = get_task("phantom-planes")
    path = tmp_path / "p.csv"
    _perfect_proba(planes_test, task.labels).to_csv(path, index=False)
    base = ["evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
            "--output", str(tmp_path / "res"), "--bootstrap", "20"]
    result = CliRunner().invoke(cli, [*base, "--name", "linked", "--paper-url", "https://arxiv.org/abs/2407.20072",
                                      "--code-url", "https://github.com/13204942/FU-LoRA", "--not-zero-shot"])
    assert result.exit_code == 0, result.output
    submission = read_result(tmp_path / "res" / "phantom-planes__linked.json")["submission"]
    assert submission["paper_url"] == "https://arxiv.org/abs/2407.20072"
    assert submission["code_url"] == "https://github.com/13204942/FU-LoRA"
    assert submission["zero_shot"] is False
    result = CliRunner().invoke(cli, [*base, "--name", "bad", "--paper-url", "javascript:alert(1)"])
    assert result.exit_code == 2 and "--paper-url must be an http(s) URL" in result.output
    assert not (tmp_path / "res" / "phantom-planes__bad.json").exists()


def test_tasks_are_validated_and_listed():
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.tasks import Task, TaskDataset

    with pytest.raises(FetalBenchError, match="no pinned revision"):
        Task(name="x", version="1", dataset=TaskDataset("hc18", ""), eval_split="test", type="segmentation",
             labels=("background", "head"), metrics=("dice",), main_score="dice")
    with pytest.raises(FetalBenchError, match="main_score"):
        Task(name="x", version="1", dataset=TaskDataset("hc18", "v1"), eval_split="test", type="segmentation",
             labels=("background", "head"), metrics=("dice",), main_score="iou")
    zero_shot = get_task("planes-africa-zero-shot")
    assert zero_shot.eval_split == "test" and zero_shot.group_by == ("country",) and "Other" in zero_shot.allowed_extra_labels
    assert get_task("planes-africa-zero-shot-all").eval_split == "train+test"
    result = CliRunner().invoke(cli, ["tasks", "list", "--json"])
    assert {t["name"] for t in json.loads(result.output)} >= {"planes-es", "hc18-head-seg", "phantom-head-seg"}


def test_result_schema_rejects_bad_files(tmp_path):
    with pytest.raises(InvalidResultError, match="required property"):
        validate_result({"task": "x"})
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": "1.0", "task": NaN}')
    with pytest.raises(InvalidResultError, match="is not a valid fetal-bench result"):
        read_result(path)


@pytest.mark.real_data
def test_hc18_head_seg_on_the_real_copy_with_perturbed_masks(hc18_real_build, tmp_path):
    """CI's end-to-end check on real data: perturbed true masks scored on the HC18 test subjects."""
    from scipy.ndimage import binary_dilation, binary_erosion

    out, _ = hc18_real_build
    test = load_dataset(str(out), split="test")
    directory = tmp_path / "preds"
    directory.mkdir()
    for i, (row_id, mask) in enumerate(zip(test["id"], test["mask"])):
        mask = np.asarray(mask) > 0
        mask = binary_dilation(mask, iterations=3) if i % 2 else binary_erosion(mask, iterations=3)
        Image.fromarray(mask.astype(np.uint8) * 255).save(directory / f"{row_id}.png")
    result = evaluate("hc18-head-seg", predictions=directory, data=out, output=tmp_path / "results", n_resamples=200)
    s = result["scores"]
    assert result["n_samples"] == len(test) and result["dataset"]["revision"] == "v1.0"  # the pinned content
    assert 0.95 < s["dice"]["value"] < 1.0
    # Three pixels of erosion/dilation at ~0.1-0.3 mm per pixel: distances of about a millimetre.
    assert 0.2 < s["hd95_mm"]["value"] < 3.0 and 0.2 < s["assd_mm"]["value"] < 3.0
    assert 0.5 < s["hc_abs_diff_mm"]["value"] < 10.0
    assert s["dice"]["ci95"][0] < s["dice"]["value"] < s["dice"]["ci95"][1]
    read_result(result["_path"])


def test_the_training_data_kinds_are_one_list():
    """The published schema file, the CLI's choices and the leaderboard all follow TRAINING_DATA."""
    import json
    from importlib import resources

    from fetal_bench.cli.evaluate import evaluate as evaluate_cmd
    from fetal_bench.evaluation.results import TRAINING_DATA
    from fetal_bench.leaderboard.references import TRAINING_KINDS as reference_kinds
    from fetal_bench.leaderboard.scores import TRAINING_KINDS as page_kinds

    published = json.loads(resources.files("fetal_bench.evaluation").joinpath("result_schema.json").read_text())
    assert published["properties"]["submission"]["properties"]["training_data"]["enum"] == [*TRAINING_DATA, None]
    (option,) = [p for p in evaluate_cmd.params if p.name == "training_data"]
    assert tuple(option.type.choices) == TRAINING_DATA == reference_kinds == page_kinds


def test_segmentation_truth_reads_sizes_first_and_decodes_masks_when_scored(head_test, monkeypatch):
    """Sizes come from the PNG headers; the masks are decoded once, on first use (after a model
    has predicted), and equal the decoded column's."""
    from fetal_bench.data import images
    from fetal_bench.tasks.segmentation import segmentation_truth

    decoded = []
    real_open_mask = images.open_mask
    monkeypatch.setattr(images, "open_mask", lambda *a, **k: decoded.append(a[1]) or real_open_mask(*a, **k))
    task = get_task("phantom-head-seg")
    truth = segmentation_truth(task, head_test)
    expected = [np.asarray(mask) > 0 for mask in head_test["mask"]]
    assert truth.shapes == {row_id: mask.shape for row_id, mask in zip(head_test["id"], expected)}
    assert decoded == []
    assert all(np.array_equal(a, b) for a, b in zip(truth.masks, expected, strict=True))
    assert truth.masks is truth.masks and decoded == list(head_test["id"])

    as_lists = Dataset.from_dict({"id": ["a"], task.mask_column: [[[0, 1], [1, 1]]], task.subject_column: ["s"],
                                  "pixel_size_mm": [0.1]})
    with pytest.raises(FetalBenchError, match="holds List values, not images") as refused:
        segmentation_truth(task, as_lists)
    assert "datasets.Image column" in refused.value.fix
