"""HC error by head size: the relative HC error and the head-size bands of HC18 results (task 2.1),
and the hc18-size-shift split rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fetal_bench.data.builders.hc18 import size_shift_split, subject_split
from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import Ellipse, ellipse_mask
from fetal_bench.metrics import segmentation as S
from fetal_bench.tasks import get_task
from fetal_bench.tasks.base import HC_BAND_GROUP, SEGMENTATION_METRICS, hc_band_labels, hc_bands_of
from fetal_bench.tasks.scoring import BootstrapConfig
from fetal_bench.tasks.segmentation import SegmentationTruth


def test_band_labels_and_edges_go_to_the_band_above():
    assert hc_band_labels((150.0, 250.0)) == ["HC < 150 mm", "150-250 mm", "HC >= 250 mm"]
    assert hc_bands_of((150.0, 250.0), [44.3, 149.99, 150.0, 249.99, 250.0, 346.4]) == [
        "HC < 150 mm", "HC < 150 mm", "150-250 mm", "150-250 mm", "HC >= 250 mm", "HC >= 250 mm"]


@pytest.mark.parametrize("bands", [(250.0, 150.0), (150.0, 150.0), (0.0, 10.0)])
def test_a_task_refuses_bands_that_are_not_increasing_positive_edges(bands):
    with pytest.raises(FetalBenchError, match="hc_bands"):
        replace(get_task("hc18-head-seg"), hc_bands=bands)
    with pytest.raises(FetalBenchError, match="hc_bands"):
        replace(get_task("planes-es"), hc_bands=(150.0,))


def test_hc18_versions_say_what_each_reports():
    current, v2, v1 = get_task("hc18-head-seg"), get_task("hc18-head-seg", "2.0"), get_task("hc18-head-seg", "1.0")
    assert current.version == "2.1" and current.hc_bands == (150.0, 250.0)
    assert current.metrics == SEGMENTATION_METRICS and "hc_rel_diff_pct" in current.metrics
    # The earlier versions score what they scored: no relative error, no bands.
    for old in (v2, v1):
        assert "hc_rel_diff_pct" not in old.metrics and old.hc_bands == ()
        assert old.metrics == tuple(m for m in current.metrics if m != "hc_rel_diff_pct")
    assert (v2.main_score, v1.main_score) == ("hc_abs_diff_mm", "dice")
    assert "hc_rel_diff_pct" not in get_task("phantom-head-seg").metrics
    shift = get_task("hc18-size-shift")
    assert (shift.dataset.name, shift.dataset.revision, shift.eval_split) == ("hc18-size-shift", "v1", "test")
    assert shift.hc_bands == current.hc_bands and shift.main_score == "hc_abs_diff_mm"


def test_relative_hc_error_is_the_absolute_error_over_the_reference():
    shape = (96, 128)
    truth = ellipse_mask(shape, Ellipse(cx=64, cy=48, a=40, b=30, angle=0.1))
    hc = S.head_circumference_mm(truth, 0.5)
    scores = S.hc_scores(truth, hc + 4.0, 0.5)
    assert scores["hc_rel_diff_pct"] == pytest.approx(100 * 4.0 / (hc + 4.0))
    assert S.hc_rel_diff_pct(truth, hc - 4.0, 0.5) == pytest.approx(100 * 4.0 / (hc - 4.0))
    assert S.hc_rel_diff_pct(np.zeros(shape, bool), 170.0, 0.5) == 100.0  # no ellipse: measured as 0 mm


def _truth(task, masks, hc, subjects):
    ids = [f"img{i}" for i in range(len(masks))]
    groups = {HC_BAND_GROUP: np.asarray(hc_bands_of(task.hc_bands, hc), dtype=object)}
    truth = SegmentationTruth(ids=ids, shapes={i: m.shape for i, m in zip(ids, masks)},
                              pixel_size_mm=np.full(len(ids), 0.5), head_circumference_mm=np.asarray(hc),
                              subjects=np.asarray(subjects, dtype=object), groups=groups, cells=[])
    truth.__dict__["masks"] = list(masks)  # the cached property, without PNG cells
    return truth


def test_every_score_is_broken_down_by_head_size_with_intervals():
    """The bands are groups: each holds every task metric with its interval, resampling subjects."""
    shape = (96, 128)
    mask = ellipse_mask(shape, Ellipse(cx=64, cy=48, a=40, b=30, angle=0.1))
    measured = S.head_circumference_mm(mask, 0.5)
    # One predicted head against six ascending references, two per band.
    reference = measured + np.array([-5.0, -3.0, -1.5, 0.5, 1.0, 2.0])
    task = replace(get_task("hc18-head-seg"), hc_bands=(float(reference[1]) + 0.25, float(reference[3]) + 0.25))
    truth = _truth(task, [mask] * 6, reference, ["a", "b", "c", "d", "e", "f"])
    body = task.kind.score(task, truth, {i: mask for i in truth.ids}, BootstrapConfig(n_resamples=200, seed=0))
    block = body["groups"][HC_BAND_GROUP]
    low, mid, high = hc_band_labels(task.hc_bands)
    assert {k: (v["n_samples"], v["n_subjects"]) for k, v in block["values"].items()} == \
        {low: (2, 2), mid: (2, 2), high: (2, 2)}
    expected = {low: ([5.0, 3.0], [0, 1]), mid: ([1.5, -0.5], [2, 3]), high: ([-1.0, -2.0], [4, 5])}
    for label, (signed, rows) in expected.items():
        scores = block["values"][label]["scores"]
        assert scores["hc_diff_mm"]["value"] == pytest.approx(np.mean(signed), abs=1e-9)
        assert scores["hc_abs_diff_mm"]["value"] == pytest.approx(np.mean(np.abs(signed)), abs=1e-9)
        relative = 100 * np.abs(signed) / reference[rows]
        assert scores["hc_rel_diff_pct"]["value"] == pytest.approx(relative.mean(), rel=1e-9)
        for metric in ("hc_diff_mm", "hc_abs_diff_mm", "hc_rel_diff_pct", "dice"):
            low_ci, high_ci = scores[metric]["ci95"]
            assert low_ci <= scores[metric]["value"] <= high_ci
    # Ranked groups by the main score: the small heads err most (4 mm), the middle least (1 mm).
    assert (block["worst"], block["best"], block["gap"]) == (low, mid, pytest.approx(3.0))
    assert body["scores"]["hc_rel_diff_pct"]["value"] == pytest.approx(
        float(np.mean(100 * np.abs(measured - reference) / reference)))


def test_size_shift_split_cuts_at_exam_600_and_keeps_v1_train():
    for exam in ("000", "123", "599"):
        expected = "train" if subject_split(exam) == "train" else "validation"
        assert size_shift_split(exam) == expected
    for exam in ("600", "700", "805"):
        assert size_shift_split(exam) == "test"
    v1_train = [f"{n:03d}" for n in range(600) if subject_split(f"{n:03d}") == "train"]
    assert all(size_shift_split(exam) == "train" for exam in v1_train)


def _renumbered_raw(root, first_exam: int):
    """A generated HC18 raw directory whose exams are numbered from ``first_exam``."""
    import csv

    from fake_raw import make_hc18_raw

    make_hc18_raw(root, subjects=12, seed=5)
    csv_path = root / "training_set_pixel_size_and_HC.csv"
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows[1:]:
        new = f"{int(row[0][:3]) + first_exam:03d}{row[0][3:]}"
        for old_name, new_name in ((row[0], new), (row[0].replace(".png", "_Annotation.png"),
                                                   new.replace(".png", "_Annotation.png"))):
            (root / "training_set" / old_name).rename(root / "training_set" / new_name)
        row[0] = new
    with open(csv_path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_size_shift_build_splits_by_exam_number_and_is_local_unless_pinned(tmp_path):
    from datasets import load_dataset

    from fetal_bench.data.builders import build_dataset
    from fetal_bench.evaluation.data import load_eval_data

    _renumbered_raw(tmp_path / "raw", first_exam=594)  # exams 594-605
    out = tmp_path / "hc18-size-shift"
    result = build_dataset("hc18-size-shift", out, raw_dir=tmp_path / "raw")
    assert result is not None
    subjects = {split: set(load_dataset(str(out), split=split)["subject_id"]) for split in ("train", "validation",
                                                                                          "test")}
    assert subjects["test"] == {f"{n}" for n in range(600, 606)}
    assert subjects["train"] | subjects["validation"] == {f"{n}" for n in range(594, 600)}
    assert all(subject_split(s) == "train" for s in subjects["train"])
    build_info = (out / "build_info.json").read_text()
    assert '"dataset": "hc18-size-shift"' in build_info and "exam NNN (the subject_id column) goes to test" in build_info
    # Not the pinned content: scored as 'local', and the note names the splits that differ.
    data = load_eval_data(get_task("hc18-size-shift"), out)
    assert data.revision == "local" and "Not hc18-size-shift v1" in data.notes[0]


def test_size_shift_without_data_says_to_build_it(monkeypatch):
    from fetal_bench.evaluation.data import load_eval_data

    with pytest.raises(FetalBenchError) as error:
        load_eval_data(get_task("hc18-size-shift"))
    assert "datasets build hc18-size-shift" in error.value.fix


def test_the_result_page_shows_the_result_bands_smallest_first_with_intervals():
    import json
    from pathlib import Path

    from fetal_bench.leaderboard.result_page import _result_band_rows

    committed = Path(__file__).parent.parent / "leaderboard/results/hc18-head-seg__unet-hc18-cpu-160x240-18ep.json"
    data = json.loads(committed.read_text(encoding="utf-8"))
    rows = [str(row) for row in _result_band_rows(data)]
    assert [r.split("</th>")[0].rsplit(">", 1)[1] for r in rows] == ["HC &lt; 150 mm", "150-250 mm", "HC &gt;= 250 mm"]
    # HC < 150 mm: 37 images, 1.65 mm [1.24, 2.08], 2.02% [1.45, 2.67], -0.03 mm [-0.75, 0.78].
    assert ">37<" in rows[0] and "1.65" in rows[0] and "[1.24, 2.08]" in rows[0] and "2.02" in rows[0]
    assert "[1.45, 2.67]" in rows[0] and "0.03" in rows[0]
    assert _result_band_rows({"groups": {}}) == []
