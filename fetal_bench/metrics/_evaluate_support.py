"""Shared pieces of the ``evaluate`` modules in ``evaluate_modules/``.

The module scripts stay a few lines each and compute through the same functions as the
harness, so an ``evaluate`` score and a fetal-bench result can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CITATION = """\
@misc{fetal_bench,
  title  = {fetal-bench: real and synthetic fetal ultrasound datasets and benchmark tasks},
  author = {fetal-bench developers},
  url    = {https://github.com/fetal-bench/fetal-bench}
}
"""

REFERENCE_URLS = ["https://github.com/fetal-bench/fetal-bench/blob/main/docs/metrics.md"]


def _list_type() -> Any:
    import datasets

    # datasets >= 4 names the variable-length list feature `List`; older versions `Sequence`.
    return getattr(datasets, "List", None) or datasets.Sequence


def label_features() -> Any:
    import datasets

    return datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


def proba_features() -> Any:
    import datasets

    return datasets.Features(
        {"prediction_scores": _list_type()(datasets.Value("float64")), "references": datasets.Value("int64")}
    )


def score_features() -> Any:
    """One score per sample (e.g. the positive class's probability) and the true class index."""
    import datasets

    return datasets.Features({"prediction_scores": datasets.Value("float64"), "references": datasets.Value("int64")})


def mask_features(*, pixel_size: bool, reference_is_hc: bool = False) -> Any:
    """Masks as nested lists of uint8 (datasets cannot store 2-D arrays of varying shape)."""
    import datasets

    mask = _list_type()(_list_type()(datasets.Value("uint8")))
    features = {"predictions": mask, "references": datasets.Value("float64") if reference_is_hc else mask}
    if pixel_size:
        features["pixel_size_mm"] = datasets.Value("float64")
    return datasets.Features(features)


def infer_n_classes(n_classes: int | None, *arrays: Sequence[int]) -> int:
    """``n_classes`` if given, else one more than the largest label seen."""
    if n_classes is not None:
        return n_classes
    return int(max(int(np.max(np.asarray(a))) for a in arrays if len(a))) + 1


def mean_over_images(function: Callable[..., float], *columns: Sequence[Any]) -> float:
    """Mean of ``function(*row)`` over images, masks converted back to arrays."""
    values = [function(*(np.asarray(item) if isinstance(item, list) else item for item in row)) for row in zip(*columns)]
    if not values:
        raise ValueError("no images to score")
    return float(np.mean(values))
