"""Metric functions, bootstrap intervals and the metric registry.

Every metric is a pure function with one documented definition (``docs/metrics.md``). Only
numpy is imported here; scipy (surface distances, connected components) is imported inside
the functions that need it, and ``evaluate`` only by :func:`load_evaluate_metric`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_bench.metrics.bootstrap import bootstrap_ci, bootstrap_mean_ci, bootstrap_replicates
from fetal_bench.metrics.classification import (
    accuracy,
    auc,
    auc_ovr_hard,
    auc_ovr_macro,
    balanced_accuracy,
    confusion_matrix,
    ece,
    f1,
    f1_per_class,
    macro_f1,
    precision,
    recall,
    specificity,
    weighted_f1,
)
from fetal_bench.metrics.registry import METRICS, MetricSpec
from fetal_bench.metrics.segmentation import (
    assd_mm,
    dice,
    hc_abs_diff_mm,
    hc_abs_diff_mm_median,
    hc_diff_mm,
    hc_no_ellipse_rate,
    hc_rel_diff_pct,
    hd95_and_assd_mm,
    hd95_mm,
    head_circumference_mm,
    iou,
    surface_distances_mm,
)

if TYPE_CHECKING:
    import evaluate

__all__ = [
    "METRICS",
    "MetricSpec",
    "accuracy",
    "assd_mm",
    "auc",
    "auc_ovr_hard",
    "auc_ovr_macro",
    "balanced_accuracy",
    "bootstrap_ci",
    "bootstrap_mean_ci",
    "bootstrap_replicates",
    "confusion_matrix",
    "dice",
    "ece",
    "evaluate_module_path",
    "f1",
    "f1_per_class",
    "hc_abs_diff_mm",
    "hc_abs_diff_mm_median",
    "hc_diff_mm",
    "hc_no_ellipse_rate",
    "hc_rel_diff_pct",
    "hd95_and_assd_mm",
    "hd95_mm",
    "head_circumference_mm",
    "iou",
    "load_evaluate_metric",
    "macro_f1",
    "precision",
    "recall",
    "specificity",
    "surface_distances_mm",
    "weighted_f1",
]

_MODULE_DIR = Path(__file__).resolve().parent / "fetal_bench_metrics"


def evaluate_module_path() -> Path:
    """The ``evaluate`` module shipped with the package: one script, one config per registry metric."""
    return _MODULE_DIR / f"{_MODULE_DIR.name}.py"


def load_evaluate_metric(name: str, **kwargs: Any) -> "evaluate.EvaluationModule":
    """``evaluate.load`` of the package's module with ``config_name=name``: works offline (``HF_HUB_OFFLINE=1``).

    A local script path never reaches the Hub (unlike ``evaluate.load("accuracy")``); ``kwargs``
    go to ``evaluate.load`` (e.g. ``keep_in_memory=True``).
    """
    import evaluate

    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return evaluate.load(str(evaluate_module_path()), config_name=name, **kwargs)
