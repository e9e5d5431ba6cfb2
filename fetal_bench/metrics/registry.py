"""The metrics fetal-bench reports, and the task types they belong to: plain declarative data.

This is the one place that says what a metric is: its task type, what it is computed from,
which way is better, whether it is signed, its unit and the values it can take. Tasks, the
harness, the ``evaluate`` module and the leaderboard all read it from here (never a copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["LOWER_IS_BETTER", "MAX_MM", "MAX_PCT", "METRICS", "SIGNED_METRICS", "TASK_TYPES", "MetricSpec", "TaskType",
           "metrics_of"]

#: The one vocabulary of task types: a task's ``type``, a model's ``task_type``, a metric's.
TaskType = Literal["classification", "segmentation"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)

#: The largest distance in mm a score may hold (10 m: far beyond any fetal measurement, so only
#: a broken file reaches it).
MAX_MM = 10_000.0
#: The largest percentage a score may hold (100 times the reference: only a broken file reaches it).
MAX_PCT = 10_000.0

#: What the ``evaluate`` module's ``compute`` takes for a metric (:mod:`fetal_bench.metrics._evaluate_support`):
#: ``labels``: class indices; ``proba``: a probability row per sample; ``score``: one score per
#: sample; ``masks``: predicted and reference masks; ``masks_spacing``: the same and each image's
#: pixel size; ``masks_hc``: predicted masks, the reference head circumference and the pixel
#: size; ``hc_prediction``: the same columns, of which the metric reads the predicted masks only.
Inputs = Literal["labels", "proba", "score", "masks", "masks_spacing", "masks_hc", "hc_prediction"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: its key in result files, what it needs, and how to read it.

    ``needs``: ``labels`` (predicted class indices), ``proba`` (class probabilities) or ``mask``.
    ``per_sample``: the score aggregates per-image values (``aggregate``: their ``mean``,
    bootstrapped with :func:`fetal_bench.metrics.bootstrap_mean_ci`, or their ``median``,
    bootstrapped with :func:`fetal_bench.metrics.bootstrap_ci`); otherwise it is computed on
    the whole set. ``signed``: 0 is best and neither sign is better (reported to show a bias,
    never a main score or a ranking). ``inputs`` and ``options``: what the ``evaluate`` module
    passes to the metric function (``options``: its keyword arguments a caller may set).
    ``interval``: how its 95% interval is read off the bootstrap replicates. ``percentile`` for
    statistics whose replicates centre on the estimate; ``bias_shifted`` for statistics that are
    biased under resampling (ECE sums absolute per-bin gaps, which grow with noise; a resample
    holds fewer distinct images, so its replicates sit above the estimate and the percentile
    interval can exclude it). See :func:`fetal_bench.metrics.bootstrap.bootstrap_ci`.
    """

    name: str
    task_type: TaskType
    needs: Literal["labels", "proba", "mask"]
    higher_is_better: bool
    per_sample: bool
    unit: str | None
    description: str
    inputs: Inputs
    aggregate: Literal["mean", "median"] = "mean"
    signed: bool = False
    options: tuple[str, ...] = ()
    interval: Literal["percentile", "bias_shifted"] = "percentile"

    @property
    def lower_is_better(self) -> bool:
        """Smaller values rank first (a signed metric ranks nowhere: neither way is better)."""
        return not self.higher_is_better and not self.signed

    @property
    def binary(self) -> bool:
        """Scored for one positive class against the rest (a task with a ``positive_label``)."""
        return "positive" in self.options

    @property
    def bounds(self) -> tuple[float, float]:
        """The values the metric can take: [0, 1] unitless, [0, MAX_MM] a distance in mm,
        [-MAX_MM, MAX_MM] a signed difference in mm (an under-estimate is negative), [0, MAX_PCT]
        a percentage."""
        if self.unit == "mm":
            return (-MAX_MM if self.signed else 0.0, MAX_MM)
        if self.unit == "%":
            return (0.0, MAX_PCT)
        return (0.0, 1.0)


def _classification(name: str, needs: str, inputs: str, description: str, *, higher_is_better: bool = True,
                    options: tuple[str, ...] = (), interval: str = "percentile") -> MetricSpec:
    return MetricSpec(name, "classification", needs, higher_is_better, False, None, description, inputs,
                      options=options, interval=interval)


def _segmentation(name: str, inputs: str, description: str, *, higher_is_better: bool, unit: str | None = None,
                  aggregate: str = "mean", signed: bool = False) -> MetricSpec:
    return MetricSpec(name, "segmentation", "mask", higher_is_better, True, unit, description, inputs,
                      aggregate=aggregate, signed=signed)


_SPECS = (
    _classification("accuracy", "labels", "labels",
                    "Fraction of images whose predicted class is the true class."),
    _classification("balanced_accuracy", "labels", "labels", "Mean recall over the classes present in the reference.",
                    options=("n_classes",)),
    _classification("macro_f1", "labels", "labels",
                    "Unweighted mean F1 over the task's classes (0 for a class neither present nor predicted).",
                    options=("n_classes",)),
    _classification("weighted_f1", "labels", "labels",
                    "Mean F1 over the task's classes weighted by their number of reference images.",
                    options=("n_classes",)),
    _classification("auc_ovr_macro", "proba", "proba",
                    "One-vs-rest ROC AUC of the class probabilities, averaged over the scoreable classes present."),
    _classification("auc_ovr_hard", "labels", "labels",
                    "FU-LoRA's AUC: one-vs-rest ROC AUC of the binarised argmax prediction, averaged over the classes "
                    "present.", options=("n_classes",)),
    _classification("ece", "proba", "proba", "Expected calibration error of the top-class confidence, 15 equal-width bins.",
                    higher_is_better=False, options=("n_bins",), interval="bias_shifted"),
    _classification("f1", "labels", "labels", "F1 of the task's positive class, 2TP/(2TP+FP+FN) (binary tasks).",
                    options=("positive",)),
    _classification("precision", "labels", "labels",
                    "Positive predictive value TP/(TP+FP) of the task's positive class (binary tasks).",
                    options=("positive",)),
    _classification("recall", "labels", "labels", "Sensitivity TP/(TP+FN) of the task's positive class (binary tasks).",
                    options=("positive",)),
    _classification("specificity", "labels", "labels",
                    "True negative rate TN/(TN+FP) for the task's positive class (binary tasks).",
                    options=("positive",)),
    _classification("auc", "proba", "score",
                    "ROC AUC of the positive class's probability (binary tasks); ties count one half.",
                    options=("positive",)),
    _segmentation("dice", "masks", "Dice overlap 2|P∩T|/(|P|+|T|), mean over images.", higher_is_better=True),
    _segmentation("iou", "masks", "Intersection over union |P∩T|/|P∪T|, mean over images.", higher_is_better=True),
    _segmentation("hd95_mm", "masks_spacing",
                  "95th-percentile symmetric Hausdorff distance between mask boundaries (MONAI's definition), mean "
                  "over images.", higher_is_better=False, unit="mm"),
    _segmentation("assd_mm", "masks_spacing",
                  "Average symmetric surface distance between mask boundaries, mean over images.",
                  higher_is_better=False, unit="mm"),
    _segmentation("hc_abs_diff_mm", "masks_hc",
                  "Absolute difference between the head circumference of an ellipse fitted to the predicted mask and "
                  "the reference HC, mean over images; a prediction without a usable ellipse (none fits, or over 5% of "
                  "it lies outside the image) measures 0 mm, so it costs the reference HC.",
                  higher_is_better=False, unit="mm"),
    _segmentation("hc_abs_diff_mm_median", "masks_hc",
                  "The same per-image HC absolute differences as hc_abs_diff_mm, median over images (robust to a few "
                  "failed images).", higher_is_better=False, unit="mm", aggregate="median"),
    _segmentation("hc_no_ellipse_rate", "hc_prediction",
                  "Share of images whose predicted mask gives no usable ellipse (empty, degenerate, or over 5% of the "
                  "fitted ellipse outside the image): the images hc_abs_diff_mm charges the full reference HC.",
                  higher_is_better=False),
    _segmentation("hc_diff_mm", "masks_hc",
                  "Signed head circumference difference HC(prediction) - reference HC, mean over images: the "
                  "systematic over- (positive) or under-estimate that hc_abs_diff_mm hides; a prediction without a "
                  "usable ellipse measures 0 mm. Reported, never ranked.",
                  higher_is_better=False, unit="mm", signed=True),
    _segmentation("hc_rel_diff_pct", "masks_hc",
                  "Absolute head circumference difference as a percentage of the reference HC, mean over images: "
                  "the error relative to head size, comparable between small and large heads; a prediction without "
                  "a usable ellipse measures 0 mm, so it costs 100%.",
                  higher_is_better=False, unit="%"),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

#: Metrics where smaller is better; every other unsigned metric is higher-is-better.
LOWER_IS_BETTER: frozenset[str] = frozenset(name for name, spec in METRICS.items() if spec.lower_is_better)
#: Signed metrics (0 is best, neither sign is better): reported to show a bias, never a main score.
SIGNED_METRICS: frozenset[str] = frozenset(name for name, spec in METRICS.items() if spec.signed)


_BY_TASK_TYPE: dict[str, list[MetricSpec]] = {task_type: [] for task_type in TASK_TYPES}
for _spec in _SPECS:
    _BY_TASK_TYPE[_spec.task_type].append(_spec)
del _spec


def metrics_of(task_type: str, *, binary: bool | None = False) -> tuple[str, ...]:
    """The metrics of ``task_type`` in registry order: those about one positive class when
    ``binary``, the others when not, all of them for ``binary=None``."""
    return tuple(spec.name for spec in _BY_TASK_TYPE[task_type] if binary is None or spec.binary is binary)
