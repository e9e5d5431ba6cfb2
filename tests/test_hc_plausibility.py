"""HC from a broken mask is bounded: an implausible ellipse counts as no ellipse (issue 13, item 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetal_bench.tasks.scoring import BootstrapConfig
from fetal_bench.tasks.segmentation import segmentation_per_image, segmentation_scores
from fetal_bench.geometry import Ellipse, ellipse_mask
from fetal_bench.metrics import segmentation as S
from fetal_bench.tasks import get_task


def _fragmented(shape=(96, 128)) -> np.ndarray:
    """What a briefly trained U-Net predicts: a thin straight fragment plus specks.

    The largest component is a 2-pixel line; its boundary points are almost collinear, so the
    least-squares ellipse through them is over 100,000 pixels long.
    """
    mask = np.zeros(shape, dtype=bool)
    mask[48:50, 20:108] = True
    mask[10:13, 10:13] = True
    mask[80:82, 115:118] = True
    return mask


def test_fragmented_mask_fits_an_absurd_ellipse_that_is_not_used():
    mask = _fragmented()
    ellipse = S.head_ellipse(mask)
    assert ellipse is not None and ellipse.a > 100_000  # the old metric measured HC from this
    assert S.ellipse_outside_fraction(ellipse, mask.shape) > 0.99
    assert S.usable_head_ellipse(mask) is None
    assert S.head_circumference_mm(mask, 0.1) is None
    assert S.hc_scores(mask, 170.0, 0.1) == {"hc_abs_diff_mm": 170.0, "hc_abs_diff_mm_median": 170.0,
                                             "hc_no_ellipse_rate": 1.0, "hc_diff_mm": -170.0,
                                             "hc_rel_diff_pct": 100.0}
    assert S.hc_abs_diff_mm(mask, 170.0, 0.1) == 170.0
    assert S.hc_diff_mm(mask, 170.0, 0.1) == -170.0  # measured as 0 mm


def test_a_plausible_head_keeps_its_measurement():
    ellipse = Ellipse(cx=200, cy=150, a=120, b=90, angle=0.2)
    mask = ellipse_mask((300, 400), ellipse)
    hc = S.head_circumference_mm(mask, 0.1)
    assert hc == pytest.approx(ellipse.perimeter * 0.1, rel=0.01)
    assert S.hc_scores(mask, hc + 3.0, 0.1) == pytest.approx(
        {"hc_abs_diff_mm": 3.0, "hc_abs_diff_mm_median": 3.0, "hc_no_ellipse_rate": 0.0, "hc_diff_mm": -3.0,
         "hc_rel_diff_pct": 300.0 / (hc + 3.0)})
    assert S.hc_diff_mm(mask, hc - 2.5, 0.1) == pytest.approx(2.5)  # signed: over-estimates are positive


def _outside_brute_force(ellipse: Ellipse, shape: tuple[int, int]) -> float:
    """Outside share from the pixel count of the whole ellipse on a canvas that holds it."""
    pad = int(math.ceil(ellipse.a)) + 2
    canvas = (shape[0] + 2 * pad, shape[1] + 2 * pad)
    moved = Ellipse(ellipse.cx + pad, ellipse.cy + pad, ellipse.a, ellipse.b, ellipse.angle)
    whole = ellipse_mask(canvas, moved)
    inside = whole[pad:pad + shape[0], pad:pad + shape[1]].sum()
    return 1.0 - inside / whole.sum()


@pytest.mark.parametrize("cx,usable", [(200.0, True), (340.0, True), (372.0, False)])
def test_an_ellipse_leaving_the_image_stops_counting_beyond_five_percent(cx, usable):
    shape = (300, 400)
    ellipse = Ellipse(cx=cx, cy=150, a=60, b=45, angle=0.0)
    fraction = S.ellipse_outside_fraction(ellipse, shape)
    # Analytic area vs pixel count differ by a fraction of a percent at this size.
    assert fraction == pytest.approx(_outside_brute_force(ellipse, shape), abs=0.005)
    assert (fraction <= S.MAX_ELLIPSE_OUTSIDE_FRACTION) is usable


def test_an_ellipse_entirely_elsewhere_is_all_outside():
    assert S.ellipse_outside_fraction(Ellipse(cx=-500, cy=-500, a=20, b=10, angle=0.3), (50, 60)) == 1.0


def test_scores_report_mean_median_and_no_ellipse_rate():
    task = get_task("phantom-head-seg")
    assert {"hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate", "hc_diff_mm"} <= set(task.metrics)
    shape = (96, 128)
    truth = ellipse_mask(shape, Ellipse(cx=64, cy=48, a=40, b=30, angle=0.1))
    good_hc = S.head_circumference_mm(truth, 0.5)
    preds = [truth, truth, np.zeros(shape, bool), _fragmented(shape)]
    hc_truth = np.array([good_hc + 1.0, good_hc + 2.0, 150.0, 160.0])
    per_image = segmentation_per_image(task, [truth] * 4, preds, np.full(4, 0.5), hc_truth)
    assert per_image["hc_no_ellipse_rate"].tolist() == [0.0, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(per_image["hc_abs_diff_mm"], [1.0, 2.0, 150.0, 160.0], atol=1e-9)
    np.testing.assert_allclose(per_image["hc_diff_mm"], [-1.0, -2.0, -150.0, -160.0], atol=1e-9)
    scores = segmentation_scores(task, per_image, np.arange(4), np.array(["a", "b", "c", "d"]),
                                 BootstrapConfig(n_resamples=50, seed=0))
    assert scores["hc_abs_diff_mm"]["value"] == pytest.approx(78.25)
    assert scores["hc_abs_diff_mm_median"]["value"] == pytest.approx(76.0)  # (2 + 150) / 2
    assert scores["hc_no_ellipse_rate"]["value"] == 0.5
    assert scores["hc_diff_mm"]["value"] == pytest.approx(-78.25)
    low, high = scores["hc_abs_diff_mm_median"]["ci95"]
    assert 1.0 <= low <= 76.0 <= high <= 160.0


def test_every_hc18_reference_ellipse_is_usable(shared_data):
    """The 5% rule never rejects a real head: HC18's own annotations keep <= 0.74% outside."""
    from PIL import Image
    from scipy import ndimage

    files = sorted((shared_data / "hc18" / "training_set").glob("*_Annotation.png"))
    assert len(files) == 999
    worst = 0.0
    for path in files:
        mask = ndimage.binary_fill_holes(np.asarray(Image.open(path)) > 127)
        ellipse = S.head_ellipse(mask)
        assert ellipse is not None, path.name
        worst = max(worst, S.ellipse_outside_fraction(ellipse, mask.shape))
    assert 0.007 < worst < 0.008  # 186_HC


def test_a_signed_metric_cannot_be_a_main_score():
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.tasks.base import SIGNED_METRICS, Task, TaskDataset

    assert SIGNED_METRICS == {"hc_diff_mm"}
    with pytest.raises(FetalBenchError, match="signed"):
        Task(name="t", version="1", dataset=TaskDataset("hc18", "v1.0"), eval_split="test", type="segmentation",
             labels=("background", "head"), metrics=("dice", "hc_diff_mm"), main_score="hc_diff_mm")
    assert get_task("hc18-head-seg").main_score == "hc_abs_diff_mm" and "hc_diff_mm" in get_task("hc18-head-seg").metrics
