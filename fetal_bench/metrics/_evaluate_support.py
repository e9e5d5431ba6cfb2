"""What the one ``evaluate`` module (``fetal_bench_metrics/``) is made of, generated from the registry.

A metric's ``inputs`` (:data:`fetal_bench.metrics.registry.METRICS`) says which columns its
``compute`` takes and how they reach the metric function; its ``options`` which keywords a
caller may set. The computation is the very function the harness scores with, so an
``evaluate`` score and a fetal-bench result can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fetal_bench.metrics.registry import METRICS, MetricSpec

CITATION = """\
@misc{fetal_bench,
  title  = {fetal-bench: real and synthetic fetal ultrasound datasets and benchmark tasks},
  author = {fetal-bench developers},
  url    = {https://github.com/fetal-bench/fetal-bench}
}
"""

REFERENCE_URLS = ["https://github.com/fetal-bench/fetal-bench/blob/main/docs/metrics.md"]

#: inputs -> the compute arguments it documents (the columns; the options follow from the spec).
_COLUMNS = {
    "labels": ("predictions (list of int): predicted class index per sample.",
               "references (list of int): true class index per sample."),
    "proba": ("prediction_scores (list of lists of float): class probabilities per sample.",
              "references (list of int): true class index per sample."),
    "score": ("prediction_scores (list of float): the positive class's score per sample.",
              "references (list of int): true class index per sample."),
    "masks": ("predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.",
              "references (list of 2-D 0/1 arrays): reference masks, same shape as the predictions."),
    "masks_spacing": ("predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.",
                      "references (list of 2-D 0/1 arrays): reference masks, same shape as the predictions.",
                      "pixel_size_mm (list of float): isotropic pixel size of each image in mm."),
    "masks_hc": ("predictions (list of 2-D 0/1 arrays or nested lists): predicted masks.",
                 "references (list of float): reference head circumference of each image in mm.",
                 "pixel_size_mm (list of float): isotropic pixel size of each image in mm."),
}
_COLUMNS["hc_prediction"] = _COLUMNS["masks_hc"]  # the same columns as the other HC metrics
_OPTIONS = {
    "n_classes": "n_classes (int, optional): the number of classes; default one more than the largest label seen.",
    "positive": "positive (int, optional): the positive class index; default 1.",
    "n_bins": "n_bins (int, optional): equal-width confidence bins; default 15.",
}


def spec_of(config_name: str | None) -> MetricSpec:
    """The registry entry a module config names."""
    if config_name not in METRICS:
        raise ValueError(f"config_name {config_name!r} is not a fetal-bench metric; use one of: {', '.join(METRICS)}")
    return METRICS[config_name]


def inputs_description(spec: MetricSpec) -> str:
    lines = [*_COLUMNS[spec.inputs], *(_OPTIONS[option] for option in spec.options)]
    aggregate = f"the {spec.aggregate} over images" if spec.per_sample else "the score"
    return "Args:\n" + "".join(f"    {line}\n" for line in lines) + f"Returns:\n    {spec.name} (float or None): {aggregate}\n"


def _list_type() -> Any:
    import datasets

    # datasets >= 4 names the variable-length list feature `List`; older versions `Sequence`.
    return getattr(datasets, "List", None) or datasets.Sequence


def features(spec: MetricSpec) -> Any:
    """The ``datasets`` features of the compute columns (masks as nested lists of uint8: datasets
    cannot store 2-D arrays of varying shape)."""
    import datasets

    index, number = datasets.Value("int64"), datasets.Value("float64")
    mask = _list_type()(_list_type()(datasets.Value("uint8")))
    columns = {
        "labels": {"predictions": index, "references": index},
        "proba": {"prediction_scores": _list_type()(number), "references": index},
        "score": {"prediction_scores": number, "references": index},
        "masks": {"predictions": mask, "references": mask},
        "masks_spacing": {"predictions": mask, "references": mask, "pixel_size_mm": number},
        "masks_hc": {"predictions": mask, "references": number, "pixel_size_mm": number},
    }
    columns["hc_prediction"] = columns["masks_hc"]
    return datasets.Features(columns[spec.inputs])


def infer_n_classes(n_classes: int | None, *arrays: Sequence[int]) -> int:
    """``n_classes`` if given, else one more than the largest label seen."""
    if n_classes is not None:
        return n_classes
    return int(max(int(np.max(np.asarray(a))) for a in arrays if len(a))) + 1


def _per_image(spec: MetricSpec, function: Callable, predictions, references, pixel_size_mm) -> float:
    """The metric's aggregate (mean or median) of ``function`` over images, masks as arrays again."""
    masks = [np.asarray(p) for p in predictions]
    if spec.inputs == "hc_prediction":
        rows = [(mask,) for mask in masks]
    elif spec.inputs == "masks":
        rows = [(mask, np.asarray(r)) for mask, r in zip(masks, references)]
    else:  # masks_spacing (reference masks) or masks_hc (reference circumferences)
        rows = [(mask, np.asarray(r) if isinstance(r, list) else r, s)
                for mask, r, s in zip(masks, references, pixel_size_mm)]
    values = [function(*row) for row in rows]
    if not values:
        raise ValueError("no images to score")
    return float(np.median(values) if spec.aggregate == "median" else np.mean(values))


def compute(spec: MetricSpec, *, references, predictions=None, prediction_scores=None, pixel_size_mm=None,
            **options: Any) -> dict[str, float | None]:
    """``{name: score}`` through the registry metric's own function."""
    from fetal_bench import metrics

    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(f"{spec.name} takes no option(s) {unknown}; its options: {list(spec.options) or 'none'}")
    function = getattr(metrics, spec.name)
    if spec.per_sample:
        return {spec.name: _per_image(spec, function, predictions, references, pixel_size_mm)}
    if "n_classes" in spec.options:
        return {spec.name: function(references, predictions, infer_n_classes(options.get("n_classes"), predictions,
                                                                               references))}
    if spec.inputs == "proba":
        return {spec.name: function(references, np.asarray(prediction_scores, dtype=np.float64), **options)}
    scores = prediction_scores if spec.inputs == "score" else predictions
    return {spec.name: function(references, scores, **options)}
