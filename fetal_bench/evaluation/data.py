"""The ground truth a task is scored against: which rows, and where they came from."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fetal_bench.data.catalog import CATALOG
from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks.base import Task


@dataclass
class EvalData:
    dataset: object  # datasets.Dataset of the evaluation split
    source: str
    revision: str
    fingerprint: str | None
    split: str


def cache_dir() -> Path:
    """Where fetal-bench keeps what it can regenerate (e.g. the phantom set built on demand)."""
    return Path(os.environ.get("FETAL_BENCH_CACHE", Path.home() / ".cache" / "fetal-bench"))


def _local_revision(directory: Path, task: Task) -> tuple[str, str | None]:
    """A local build counts as the task's pinned revision only where that revision is generated
    in-process (phantom); otherwise it is 'local' (its fingerprint still identifies it)."""
    info_path = directory / "build_info.json"
    fingerprint = None
    if info_path.is_file():
        fingerprint = json.loads(info_path.read_text(encoding="utf-8")).get("fingerprint")
    catalog = CATALOG.get(task.dataset.name)
    if catalog is not None and catalog.hub_id is None and catalog.revision == task.dataset.revision:
        return task.dataset.revision, fingerprint
    return "local", fingerprint


def load_eval_data(task: Task, data: str | os.PathLike | None = None, split: str | None = None) -> EvalData:
    """The evaluation rows of ``task``: from ``data`` (a local build or a Hub id) or the catalog.

    Without ``data``, a published dataset is read from the Hub at the task's pinned revision,
    and the phantom set is built once into the fetal-bench cache.
    """
    from fetal_bench.data.loading import open_dataset

    split = split or task.eval_split
    config = task.dataset.config
    if data is None:
        catalog = CATALOG.get(task.dataset.name)
        if catalog is not None and catalog.hub_id is None:
            if catalog.name != "phantom":
                raise FetalBenchError(f"Dataset {catalog.name!r} is not published.", "Build it and pass --data DIR.")
            data = _phantom_build(catalog.revision)
        else:
            dataset = open_dataset(task.dataset.name, config=config, split=split, revision=task.dataset.revision)
            fingerprint = _hub_fingerprint(catalog.hub_id if catalog else task.dataset.name, task.dataset.revision)
            return EvalData(dataset, catalog.hub_id if catalog else task.dataset.name, task.dataset.revision, fingerprint, split)
    path = Path(data)
    if path.exists():
        dataset = open_dataset(path, config=config, split=split)
        revision, fingerprint = _local_revision(path, task)
        return EvalData(dataset, str(path), revision, fingerprint, split)
    dataset = open_dataset(str(data), config=config, split=split)
    return EvalData(dataset, str(data), task.dataset.revision, _hub_fingerprint(str(data), task.dataset.revision), split)


def _phantom_build(revision: str) -> Path:
    from fetal_bench.data.builders import build_dataset

    target = cache_dir() / f"phantom-{revision}"
    if not (target / "build_info.json").is_file():
        build_dataset("phantom", target, overwrite=True)
    return target


def _hub_fingerprint(repo_id: str, revision: str) -> str | None:
    """The published build's fingerprint (its build_info.json), from the Hub or its cache."""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(repo_id, "build_info.json", repo_type="dataset", revision=revision)
        return json.loads(Path(path).read_text(encoding="utf-8")).get("fingerprint")
    except Exception:  # offline with no cache, or a dataset not built by fetal-bench
        return None


@dataclass
class ClassificationTruth:
    ids: list[str]
    y_true: np.ndarray  # task label index per row
    subjects: np.ndarray
    groups: dict[str, np.ndarray]
    dropped: int  # rows whose dataset label is not a task label


def classification_truth(task: Task, dataset) -> ClassificationTruth:
    from datasets import ClassLabel

    feature = dataset.features.get(task.label_column)
    if not isinstance(feature, ClassLabel):
        raise FetalBenchError(f"The evaluation data has no ClassLabel column {task.label_column!r}.",
                              f"Pass --data pointing at a build of {task.dataset.name!r}.")
    needed = ["id", task.label_column, task.subject_column, *[g for g in task.group_by if g in dataset.column_names]]
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise FetalBenchError(f"The evaluation data lacks columns {missing}.", f"Pass --data pointing at a build of {task.dataset.name!r}.")
    table = dataset.select_columns(needed).to_dict()
    mapping = task.label_map or {name: name for name in feature.names}
    index = {label: k for k, label in enumerate(task.labels)}
    keep, y_true = [], []
    for row, value in enumerate(table[task.label_column]):
        target = mapping.get(feature.int2str(value))
        if target is not None and target in index:
            keep.append(row)
            y_true.append(index[target])
    if not keep:
        raise FetalBenchError("No evaluation row has a label of this task.", "Check --data and --split.")
    pick = np.array(keep)
    return ClassificationTruth(
        ids=[table["id"][i] for i in keep],
        y_true=np.array(y_true, dtype=np.int64),
        subjects=np.asarray(table[task.subject_column], dtype=object)[pick],
        groups={g: np.asarray(table[g], dtype=object)[pick] for g in task.group_by if g in table},
        dropped=len(table["id"]) - len(keep),
    )


@dataclass
class SegmentationTruth:
    ids: list[str]
    masks: list[np.ndarray]
    pixel_size_mm: np.ndarray
    head_circumference_mm: np.ndarray | None
    subjects: np.ndarray
    groups: dict[str, np.ndarray]

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {row_id: mask.shape for row_id, mask in zip(self.ids, self.masks)}


def segmentation_truth(task: Task, dataset) -> SegmentationTruth:
    needed = ["id", task.mask_column, task.subject_column, "pixel_size_mm"]
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise FetalBenchError(f"The evaluation data lacks columns {missing}.", f"Pass --data pointing at a build of {task.dataset.name!r}.")
    columns = needed + [c for c in ("head_circumference_mm", *task.group_by) if c in dataset.column_names]
    rows = dataset.select_columns(columns)
    masks, unlabelled = [], []
    for row_id, mask in zip(rows["id"], rows[task.mask_column]):
        if mask is None:
            unlabelled.append(row_id)
            continue
        masks.append(np.asarray(mask) > 0)
    if unlabelled:
        raise FetalBenchError(f"{len(unlabelled)} evaluation rows have no reference mask (e.g. {unlabelled[0]}).",
                              "Score a labelled split (train/validation/test), not challenge_test.")
    hc = rows["head_circumference_mm"] if "head_circumference_mm" in rows.column_names else None
    return SegmentationTruth(
        ids=list(rows["id"]),
        masks=masks,
        pixel_size_mm=np.asarray(rows["pixel_size_mm"], dtype=np.float64),
        head_circumference_mm=None if hc is None else np.asarray(hc, dtype=np.float64),
        subjects=np.asarray(rows[task.subject_column], dtype=object),
        groups={g: np.asarray(rows[g], dtype=object) for g in task.group_by if g in rows.column_names},
    )
