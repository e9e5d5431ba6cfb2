"""How numbers, metrics and dates read on the site (one place, so every page agrees)."""

from __future__ import annotations

import math
from typing import Any

# Display names: one per metric key, used on every page, chart, caption, tooltip and reason (the
# tests check that every metric of the registry has one). A metric not listed is shown by its key.
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "macro_f1": "Macro F1",
    "weighted_f1": "Weighted F1",
    "auc_ovr_macro": "AUC (OvR, macro)",
    "auc_ovr_hard": "AUC (OvR, hard)",
    "ece": "ECE",
    "dice": "Dice",
    "iou": "IoU",
    "hd95_mm": "HD95 (mm)",
    "assd_mm": "ASSD (mm)",
    "hc_abs_diff_mm": "HC abs. diff. (mm)",
    "hc_abs_diff_mm_median": "HC abs. diff., median (mm)",
    "hc_no_ellipse_rate": "No-ellipse rate",
    "hc_diff_mm": "HC signed diff. (mm)",
    "hc_rel_diff_pct": "HC abs. diff. (% of HC)",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "auc": "AUC",
}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def decimals(metric: str) -> int:
    """Millimetre metrics and percentages read best with 2 decimals, unit-interval scores with 3."""
    return 2 if metric.endswith(("_mm", "_pct")) else 3


def _showable(value: Any) -> bool:
    """A finite number of sane size. The loader already refuses others; this keeps one page from
    failing if a caller passes one anyway (int(10**400) cannot even be converted to float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value)) and abs(value) < 1e300
    except OverflowError:
        return False


def fmt_value(value: Any, metric: str) -> str:
    if not _showable(value):
        return "—"
    return f"{value:.{decimals(metric)}f}"


def fmt_ci(ci95: Any, metric: str) -> str:
    """``[0.88, 0.94]`` for unit scores (a decimal fewer than the value: an interval's ends are
    less certain), ``[2.38, 2.42]`` for millimetres (already at 2 decimals, fewer would hide it)."""
    if not isinstance(ci95, list) or len(ci95) != 2 or not all(_showable(v) for v in ci95):
        return ""
    places = decimals(metric) if metric.endswith(("_mm", "_pct")) else decimals(metric) - 1
    return f"[{ci95[0]:.{places}f}, {ci95[1]:.{places}f}]"


def fmt_score(score: Any, metric: str) -> str:
    """``0.912 [0.88, 0.94]``; ``—`` for a missing or null score."""
    if not isinstance(score, dict):
        return "—"
    text = fmt_value(score.get("value"), metric)
    ci = fmt_ci(score.get("ci95"), metric)
    return f"{text} {ci}" if ci and text != "—" else text


def fmt_share(share: Any) -> str:
    if not _showable(share):
        return "—"
    return f"{share * 100:.0f}%"


def fmt_date(created_at: str) -> str:
    """The date part of an ISO timestamp: a table column needs the day, the tooltip has the rest."""
    return created_at[:10]


def short_hash(value: str | None, n: int = 12) -> str:
    if not value:
        return "—"
    return value[:n]


__all__ = ["METRIC_LABELS", "decimals", "fmt_ci", "fmt_date", "fmt_score", "fmt_share", "fmt_value",
           "metric_label", "short_hash"]
