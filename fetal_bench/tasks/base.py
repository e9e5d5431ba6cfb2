"""Benchmark tasks as frozen, validated metadata objects (the MTEB pattern).

A task says which data is scored (dataset, pinned revision, config, split), how (type, labels,
metrics, main score), and how results are broken down (groups, the bootstrap unit). It holds
no code: its ``kind`` (:mod:`fetal_bench.tasks.classification`, :mod:`~fetal_bench.tasks.segmentation`)
is the object that trains, predicts and scores tasks of its type.

Metric metadata (type, direction, signed) comes from :data:`fetal_bench.metrics.METRICS` alone;
the names below are views of it, kept here because the leaderboard imports them from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Mapping

from fetal_bench.errors import FetalBenchError
from fetal_bench.metrics.registry import LOWER_IS_BETTER, METRICS, SIGNED_METRICS, TASK_TYPES, TaskType, metrics_of
from fetal_bench.metrics.segmentation import HC_BAND_GROUP, hc_band_labels, hc_bands_of

if TYPE_CHECKING:  # typing only: the kinds are looked up when asked for (Task.kind)
    from fetal_bench.tasks.kind import TaskKind

__all__ = ["BINARY_METRICS", "CLASSIFICATION_METRICS", "HC_BAND_GROUP", "LOWER_IS_BETTER", "SEGMENTATION_METRICS",
           "SIGNED_METRICS", "Task", "TaskDataset", "TaskType", "hc_band_labels", "hc_bands_of"]

CLASSIFICATION_METRICS = metrics_of("classification")
# Scored for a task's `positive_label` against the rest (binary tasks).
BINARY_METRICS = metrics_of("classification", binary=True)
SEGMENTATION_METRICS = metrics_of("segmentation")


@dataclass(frozen=True)
class TaskDataset:
    """Where a task's data comes from: a catalog name (or Hub id) at a pinned revision."""

    name: str
    revision: str
    config: str | None = None


@dataclass(frozen=True)
class Task:
    name: str
    version: str
    dataset: TaskDataset
    eval_split: str  # a `datasets` split expression: "test", or "train+test"
    type: TaskType
    labels: tuple[str, ...]  # the classes a submission is scored on (segmentation: background, foreground)
    metrics: tuple[str, ...]
    main_score: str
    group_by: tuple[str, ...] = ()
    subject_column: str = "patient_id"  # the bootstrap resamples these, never single images
    label_column: str = "label"
    mask_column: str = "mask"
    # Dataset ClassLabel name -> task label. Rows whose dataset label is missing here are not
    # scored (e.g. a task on a subset of planes). None: the dataset's names are the task's labels.
    label_map: Mapping[str, str] | None = None
    # Extra probability columns a submission may carry (FU-LoRA classifiers also output
    # "Other"): they are allowed, and an argmax on one of them counts as an error.
    allowed_extra_labels: tuple[str, ...] = ()
    # The class the binary metrics (f1, precision, recall, specificity, auc) are about.
    positive_label: str | None = None
    description: str = ""
    reference: str = ""
    train_data: str = ""  # what a submission may train on (the protocol), shown on the leaderboard
    # Head-size bands (segmentation with a reference head circumference): the band edges in mm of
    # reference HC, e.g. (150, 250) for HC < 150, 150-250 and >= 250 mm. The result's groups then
    # hold every metric per band, under HC_BAND_GROUP; () for none.
    hc_bands: tuple[float, ...] = ()
    higher_is_better: bool = field(init=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.version:
            problems.append("name and version are required")
        if not self.dataset.revision:
            problems.append(f"dataset {self.dataset.name!r} has no pinned revision")
        if self.type not in TASK_TYPES:
            problems.append(f"type {self.type!r} is not one of {', '.join(TASK_TYPES)}")
        known = metrics_of(self.type, binary=None) if self.type in TASK_TYPES else ()
        unknown = [m for m in self.metrics if m not in known]
        binary = [m for m in self.metrics if m in METRICS and METRICS[m].binary]
        if binary and self.positive_label is None:
            problems.append(f"metrics {binary} need a positive_label")
        if self.positive_label is not None and self.positive_label not in self.labels:
            problems.append(f"positive_label {self.positive_label!r} is not one of the labels")
        if unknown:
            problems.append(f"metrics {unknown} are not {self.type} metrics ({', '.join(known)})")
        if self.main_score not in self.metrics:
            problems.append(f"main_score {self.main_score!r} is not among its metrics")
        if self.main_score in SIGNED_METRICS:
            problems.append(f"main_score {self.main_score!r} is signed (0 is best), so it cannot rank submissions")
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            problems.append("labels must be at least two distinct names")
        if self.label_map is not None:
            stray = sorted(set(self.label_map.values()) - set(self.labels))
            if stray:
                problems.append(f"label_map targets {stray} are not task labels")
        overlap = set(self.allowed_extra_labels) & set(self.labels)
        if overlap:
            problems.append(f"allowed_extra_labels {sorted(overlap)} are also task labels")
        if self.hc_bands and (self.type != "segmentation" or list(self.hc_bands) != sorted(set(self.hc_bands))
                              or self.hc_bands[0] <= 0):
            problems.append(f"hc_bands {self.hc_bands} must be increasing positive edges (mm) of a segmentation task")
        if self.hc_bands and HC_BAND_GROUP in self.group_by:
            problems.append(f"group {HC_BAND_GROUP!r} is made from hc_bands; it is not a dataset column")
        if problems:
            raise FetalBenchError(f"Invalid task {self.name!r}: " + "; ".join(problems) + ".",
                                  "Fix the task definition in fetal_bench/tasks/registry.py.")
        object.__setattr__(self, "higher_is_better", self.main_score not in LOWER_IS_BETTER)

    @property
    def kind(self) -> TaskKind:
        """The object that knows how tasks of this type are trained, run and scored."""
        from fetal_bench.tasks.kinds import kind_of

        return kind_of(self.type)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["label_map"] = dict(self.label_map) if self.label_map is not None else None
        return data
