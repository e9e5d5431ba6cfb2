"""The metrics fetal-bench reports: plain declarative data, read by the harness and the docs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["METRICS", "MetricSpec"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: its key in result files, what it needs, and how to read it.

    ``needs``: ``labels`` (predicted class indices), ``proba`` (class probabilities) or ``mask``.
    ``per_sample``: the score aggregates per-image values (``aggregate``: their ``mean``,
    bootstrapped with :func:`fetal_bench.metrics.bootstrap_mean_ci`, or their ``median``,
    bootstrapped with :func:`fetal_bench.metrics.bootstrap_ci`); otherwise it is computed on
    the whole set.
    ``interval``: how its 95% interval is read off the bootstrap replicates. ``percentile`` for
    statistics whose replicates centre on the estimate; ``bias_shifted`` for statistics that are
    biased under resampling (ECE sums absolute per-bin gaps, which grow with noise; a resample holds
    fewer distinct images, so its replicates sit above the estimate and the percentile interval can
    exclude it). See
    :func:`fetal_bench.metrics.bootstrap.bootstrap_ci`.
    """

    name: str
    task_type: Literal["classification", "segmentation"]
    needs: Literal["labels", "proba", "mask"]
    higher_is_better: bool
    per_sample: bool
    unit: str | None
    description: str
    aggregate: Literal["mean", "median"] = "mean"
    interval: Literal["percentile", "bias_shifted"] = "percentile"
    signed: bool = False  # 0 is best and neither sign is better (never a main score)

    @property
    def value_range(self) -> tuple[float, float]:
        """The values the metric can take: [0, 1] for unitless scores, [0, inf) for distances,
        the whole line for a signed difference. Intervals are kept inside it."""
        if self.signed:
            return (-math.inf, math.inf)
        return (0.0, 1.0) if self.unit is None else (0.0, math.inf)


_SPECS = (
    MetricSpec("accuracy", "classification", "labels", True, False, None,
               "Fraction of images whose predicted class is the true class."),
    MetricSpec("balanced_accuracy", "classification", "labels", True, False, None,
               "Mean recall over the classes present in the reference."),
    MetricSpec("macro_f1", "classification", "labels", True, False, None,
               "Unweighted mean F1 over the task's classes (0 for a class neither present nor predicted)."),
    MetricSpec("weighted_f1", "classification", "labels", True, False, None,
               "Mean F1 over the task's classes weighted by their number of reference images."),
    MetricSpec("auc_ovr_macro", "classification", "proba", True, False, None,
               "One-vs-rest ROC AUC of the class probabilities, averaged over the scoreable classes present."),
    MetricSpec("auc_ovr_hard", "classification", "labels", True, False, None,
               "FU-LoRA's AUC: one-vs-rest ROC AUC of the binarised argmax prediction, averaged over the classes present."),
    MetricSpec("ece", "classification", "proba", False, False, None,
               "Expected calibration error of the top-class confidence, 15 equal-width bins.",
               interval="bias_shifted"),
    MetricSpec("f1", "classification", "labels", True, False, None,
               "F1 of the task's positive class, 2TP/(2TP+FP+FN) (binary tasks)."),
    MetricSpec("precision", "classification", "labels", True, False, None,
               "Positive predictive value TP/(TP+FP) of the task's positive class (binary tasks)."),
    MetricSpec("recall", "classification", "labels", True, False, None,
               "Sensitivity TP/(TP+FN) of the task's positive class (binary tasks)."),
    MetricSpec("specificity", "classification", "labels", True, False, None,
               "True negative rate TN/(TN+FP) for the task's positive class (binary tasks)."),
    MetricSpec("auc", "classification", "proba", True, False, None,
               "ROC AUC of the positive class's probability (binary tasks); ties count one half."),
    MetricSpec("dice", "segmentation", "mask", True, True, None,
               "Dice overlap 2|P∩T|/(|P|+|T|), mean over images."),
    MetricSpec("iou", "segmentation", "mask", True, True, None,
               "Intersection over union |P∩T|/|P∪T|, mean over images."),
    MetricSpec("hd95_mm", "segmentation", "mask", False, True, "mm",
               "95th-percentile symmetric Hausdorff distance between mask boundaries (MONAI's definition), mean over images."),
    MetricSpec("assd_mm", "segmentation", "mask", False, True, "mm",
               "Average symmetric surface distance between mask boundaries, mean over images."),
    MetricSpec("hc_abs_diff_mm", "segmentation", "mask", False, True, "mm",
               "Absolute difference between the head circumference of an ellipse fitted to the predicted mask and the "
               "reference HC, mean over images; a prediction without a usable ellipse (none fits, or over 5% of it lies "
               "outside the image) measures 0 mm, so it costs the reference HC."),
    MetricSpec("hc_abs_diff_mm_median", "segmentation", "mask", False, True, "mm",
               "The same per-image HC absolute differences as hc_abs_diff_mm, median over images (robust to a few "
               "failed images).", aggregate="median"),
    MetricSpec("hc_no_ellipse_rate", "segmentation", "mask", False, True, None,
               "Share of images whose predicted mask gives no usable ellipse (empty, degenerate, or over 5% of the "
               "fitted ellipse outside the image): the images hc_abs_diff_mm charges the full reference HC."),
    # Signed: 0 is best and neither sign is better, so it is never a main score (tasks/base.py).
    MetricSpec("hc_diff_mm", "segmentation", "mask", False, True, "mm",
               "Signed head circumference difference HC(prediction) - reference HC, mean over images: the systematic "
               "over- (positive) or under-estimate that hc_abs_diff_mm hides; a prediction without a usable ellipse "
               "measures 0 mm. Reported, never ranked.", signed=True),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}
