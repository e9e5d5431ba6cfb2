"""Training data: the real split of a task, optionally subsampled, mixed with a synthetic split.

Everything here works on the Arrow tables without rewriting the image bytes: labels are
remapped into an extra in-memory column (``target``, the model's class index), subsets are
index mappings (``Dataset.select``), and real and synthetic rows are concatenated lazily.

Mixing rule (``synthetic_ratio`` = *r*, the synthetic share of the training set): all selected
real rows are kept and ``round(r / (1 - r) * n_real)`` synthetic rows are drawn (every synthetic
row when fewer exist; the share actually reached is recorded); ``r = 1`` trains on synthetic rows
only. Per-class caps (``real_per_class``, ``synthetic_per_class``) and row counts (``real_n``,
``synthetic_n``) are applied first; all draws are seeded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.tasks import Task

if TYPE_CHECKING:
    import datasets

__all__ = ["TARGET_COLUMN", "TrainingData", "open_training_split", "prepare_training_data"]

TARGET_COLUMN = "target"  # model-space class index, added in memory

#: Tasks whose training data must not be the task's own dataset (zero-shot protocols).
FOREIGN_TRAINING = {
    "planes-africa-zero-shot": "fetal-planes-es",
    "planes-africa-zero-shot-all": "fetal-planes-es",
}


@dataclass
class TrainingData:
    """What the training loop consumes, and what the checkpoint records about it."""

    train: datasets.Dataset
    validation: datasets.Dataset | None
    labels: tuple[str, ...]  # model classes (classification) or ("background", "head")
    label_column: str | None  # column make_dataloader reads labels from (classification)
    mask_column: str | None
    n_real: int
    n_synthetic: int
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def synthetic_share(self) -> float:
        total = self.n_real + self.n_synthetic
        return self.n_synthetic / total if total else 0.0

    @property
    def training_data(self) -> str:
        if self.n_synthetic == 0:
            return "real"
        return "synthetic" if self.n_real == 0 else "hybrid"


def open_training_split(source: str | os.PathLike | None, task: Task, split: str, config: str | None) -> tuple[datasets.Dataset, str]:
    """One split of ``source`` (None: the task's own dataset, refused for zero-shot tasks), and its name."""
    from fetal_bench.data.loading import open_dataset

    if source is None:
        if task.name in FOREIGN_TRAINING:
            raise FetalBenchError(
                f"Task {task.name!r} is zero-shot: its models may not train on {task.dataset.name!r}.",
                f"Pass --data with a build of {FOREIGN_TRAINING[task.name]!r} (`fetal-bench datasets build "
                f"{FOREIGN_TRAINING[task.name]} --raw DIR --out OUT`).")
        return _open_task_default(task, split)
    return open_dataset(source, config=config, split=split), os.fspath(source)


def _open_task_default(task: Task, split: str) -> tuple[datasets.Dataset, str]:
    """The task's own dataset: the phantom set built once into the cache, else the Hub copy."""
    from fetal_bench.data.catalog import CATALOG
    from fetal_bench.data.loading import open_dataset

    catalog = CATALOG.get(task.dataset.name)
    if catalog is not None and catalog.simulated:
        from fetal_bench.data.builders import cached_simulated_build

        # The harness opens the same build (one per revision, under the cache root).
        target = cached_simulated_build(catalog.name)
        return open_dataset(target, config=task.dataset.config, split=split), str(target)
    dataset = open_dataset(task.dataset.name, config=task.dataset.config, split=split, revision=task.dataset.revision)
    return dataset, f"{task.dataset.name}@{task.dataset.revision}"


def _config_for(source: str | os.PathLike | None, task: Task, config: str | None) -> str | None:
    if config is not None:
        return config
    # A zero-shot task's training data is another dataset, without the task's config.
    return None if task.name in FOREIGN_TRAINING else task.dataset.config


def _label_names(dataset: datasets.Dataset, column: str, what: str) -> list[str]:
    from datasets import ClassLabel

    feature = dataset.features.get(column)
    if not isinstance(feature, ClassLabel):
        raise DataError(f"The {what} data has no ClassLabel column {column!r} (columns: {dataset.column_names}).",
                        "Pass a dataset built by `fetal-bench datasets build` or `fetal-bench generate`.")
    return list(feature.names)


def _with_targets(dataset: datasets.Dataset, column: str, mapping: dict[str, int], what: str) -> tuple[datasets.Dataset, np.ndarray]:
    """Add the model-space class index; return the dataset and the kept row indices."""
    names = _label_names(dataset, column, what)
    lookup = [mapping.get(name, -1) for name in names]
    # Reads only this column; a missing label (None) maps to -1 and the row is dropped.
    targets = np.array([-1 if value is None else lookup[value] for value in dataset[column]], dtype=np.int64)
    from datasets import Value

    dataset = dataset.add_column(TARGET_COLUMN, targets.tolist(), feature=Value("int64"))
    return dataset, np.flatnonzero(targets >= 0)


def _cap_per_class(targets: np.ndarray, rows: np.ndarray, per_class: int | None, rng: np.random.Generator) -> np.ndarray:
    if per_class is None:
        return rows
    kept = []
    for cls in np.unique(targets[rows]):
        members = rows[targets[rows] == cls]
        kept.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(kept)) if kept else rows[:0]


def _take(rows: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= len(rows):
        return rows
    return np.sort(rng.permutation(rows)[:n])


def prepare_training_data(
    task: Task,
    *,
    data: str | os.PathLike | None = None,
    config: str | None = None,
    train_split: str = "train",
    val_split: str | None = "validation",
    exclude_labels: Sequence[str] = (),
    real_list: str | None = None,
    real_per_class: int | None = None,
    real_n: int | None = None,
    synthetic: str | os.PathLike | None = None,
    synthetic_config: str | None = None,
    synthetic_ratio: float | None = None,
    synthetic_per_class: int | None = None,
    synthetic_n: int | None = None,
    seed: int = 0,
    with_masks: bool = False,
) -> TrainingData:
    """Open, filter, subsample and mix the training (and validation) rows for ``task``.

    ``with_masks``: a classification task's rows also keep the task's mask column (for a
    classifier trained on masks, e.g. ``unet-iqa``). ``real_list``: a named list of real rows
    (:data:`REAL_LISTS`, e.g. the FU-LoRA authors' hybrid subset) replaces the random per-class
    cap; every listed id must be in the training split with the listed class.
    """
    if synthetic_ratio is not None and not 0 <= synthetic_ratio <= 1:
        raise FetalBenchError(f"synthetic_ratio={synthetic_ratio} is outside [0, 1].",
                              "Give the synthetic share of the training set, e.g. 0.5.")
    if synthetic is None and (synthetic_ratio or synthetic_per_class or synthetic_n):
        raise FetalBenchError("A synthetic share/count was given without --synthetic DIR.",
                              "Pass --synthetic with a synthetic dataset (from `fetal-bench generate`).")
    rng = np.random.default_rng(seed)
    config = _config_for(data, task, config)
    train, train_source = open_training_split(data, task, train_split, config)
    validation = None
    if val_split is not None:
        validation, _ = open_training_split(data, task, val_split, config)
    classification = task.kind.has_labels
    sources: dict[str, Any] = {"data": train_source, "config": config, "train_split": train_split, "val_split": val_split}

    if classification:
        label_column = task.label_column
        names = _label_names(train, label_column, "training")
        excluded = set(exclude_labels)
        unknown = excluded - set(names)
        if unknown:
            raise FetalBenchError(f"exclude_labels {sorted(unknown)} are not classes of the training data ({names}).",
                                  "Use class names of the training data.")
        labels = tuple(name for name in names if name not in excluded)
        mapping = {name: i for i, name in enumerate(labels)}
        missing = [label for label in task.labels if label not in mapping]
        if missing:
            raise FetalBenchError(f"The training classes {list(labels)} do not cover task {task.name!r}'s labels {missing}.",
                                  "Train on data whose classes include the task's labels (or exclude fewer classes).")
        train, rows = _with_targets(train, label_column, mapping, "training")
        targets = np.asarray(train[TARGET_COLUMN])
        if real_list is not None:
            rows = _listed(train, rows, real_list, names, label_column)
            sources["real_list"] = real_list
        rows = _take(_cap_per_class(targets, rows, real_per_class, rng), real_n, rng)
        keep = ["id", "image", TARGET_COLUMN]
        if with_masks:
            for dataset, what in ((train, "training"), (validation, "validation")):
                if dataset is not None and task.mask_column not in dataset.column_names:
                    raise DataError(f"The {what} data has no {task.mask_column!r} column, which this model learns from.",
                                    f"Pass a build of {task.dataset.name!r} (it has masks), or another model.")
            keep.append(task.mask_column)
        if validation is not None:
            validation, val_rows = _with_targets(validation, label_column, mapping, "validation")
            validation = validation.select(val_rows)
    else:
        label_column = None
        labels = ("background", "head")
        for dataset, what in ((train, "training"), (validation, "validation")):
            if dataset is not None and task.mask_column not in dataset.column_names:
                raise DataError(f"The {what} data has no {task.mask_column!r} column.", "Pass a segmentation dataset.")
        rows = _take(np.arange(len(train)), real_n, rng)
        targets = None
        keep = ["id", "image", task.mask_column]
    train = train.select(rows) if len(rows) != len(train) else train
    n_real = len(train)

    n_synthetic = 0
    if synthetic is not None and synthetic_ratio != 0:
        # A synthetic set built with the real set's configs (e.g. a phantom-like build) is read
        # with the same config; a single-config synthetic set (the generators' output) without.
        candidates = [synthetic_config] if synthetic_config is not None else [config, None] if config else [None]
        for position, candidate in enumerate(candidates):
            try:
                syn, _ = open_training_split(synthetic, task, "train", candidate)
                break
            except FetalBenchError:
                if position == len(candidates) - 1:
                    raise
        if classification:
            syn_names = _label_names(syn, label_column, "synthetic")
            stray = sorted(set(syn_names) - set(mapping) - set(exclude_labels))
            if stray:
                raise FetalBenchError(f"Synthetic classes {stray} are not classes of the real training data ({list(labels)}).",
                                      "Generate the synthetic split with the real set's class names.")
            syn, syn_rows = _with_targets(syn, label_column, mapping, "synthetic")
            syn_rows = _cap_per_class(np.asarray(syn[TARGET_COLUMN]), syn_rows, synthetic_per_class, rng)
        else:
            if task.mask_column not in syn.column_names:
                raise DataError(f"The synthetic data has no {task.mask_column!r} column.", "Pass synthetic image/mask pairs.")
            syn_rows = np.arange(len(syn))
        syn_rows = _take(syn_rows, synthetic_n, rng)
        if synthetic_ratio is not None and synthetic_ratio < 1:
            wanted = int(round(synthetic_ratio / (1 - synthetic_ratio) * n_real))
            syn_rows = _take(syn_rows, wanted, rng)
        syn = syn.select(syn_rows)
        n_synthetic = len(syn)
        if synthetic_ratio == 1:
            train, n_real = syn.select_columns(keep), 0
        else:
            train = _concatenate(train.select_columns(keep), syn.select_columns(keep))
        sources.update({"synthetic": os.fspath(synthetic), "synthetic_ratio_requested": synthetic_ratio})
    else:
        train = train.select_columns(keep)
    if len(train) == 0:
        raise FetalBenchError("No training rows are left after filtering and subsampling.",
                              "Check --data, the excluded classes and the per-class/row counts.")
    if validation is not None and len(validation) == 0:
        validation = None
    if validation is not None:
        validation = validation.select_columns(keep)
    return TrainingData(train=train, validation=validation, labels=labels,
                        label_column=TARGET_COLUMN if classification else None,
                        mask_column=task.mask_column if with_masks or not classification else None,
                        n_real=n_real, n_synthetic=n_synthetic, sources=sources)


#: Named lists of real training rows: name -> (where it comes from, loader of {id: class name}).
REAL_LISTS = {
    "fu-lora-hb": "the FU-LoRA authors' spain_train_1150_balanced.csv (13204942/FU-LoRA@9b84b6f): "
                  "230 official-train images per class, their hybrid (HB) set's real part",
}


def _listed(train: datasets.Dataset, rows: np.ndarray, name: str, names: list[str], label_column: str) -> np.ndarray:
    """The rows of ``train`` named by list ``name``, checked: each listed id present, with its class."""
    if name not in REAL_LISTS:
        raise FetalBenchError(f"Unknown real_list {name!r}.", f"Use one of: {', '.join(REAL_LISTS)}.")
    from fetal_bench.generators.authors_lists import hybrid_real_ids

    wanted = hybrid_real_ids()
    ids = train["id"]
    labels = train[label_column]
    kept = set(rows.tolist())
    found = {}
    for index, row_id in enumerate(ids):
        if row_id in wanted and index in kept:
            if names[labels[index]] != wanted[row_id]:
                raise DataError(f"Row {row_id!r} is {names[labels[index]]!r} here but {wanted[row_id]!r} in {name}.",
                                "Pass a build of fetal-planes-es (FETAL_PLANES_DB's labels).")
            found[row_id] = index
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise DataError(f"{len(missing)} of the {len(wanted)} images of {name} are not in the training split "
                        f"(e.g. {missing[:3]}).",
                        "Train on all official training rows of fetal-planes-es: train_split train+validation.")
    return np.sort(np.fromiter(found.values(), dtype=np.int64))


def _concatenate(real: datasets.Dataset, synthetic: datasets.Dataset) -> datasets.Dataset:
    import datasets

    # Same columns, same features (ids stay unique: synthetic ids carry their generator prefix).
    if synthetic.features != real.features:
        synthetic = synthetic.cast(real.features)
    return datasets.concatenate_datasets([real, synthetic])
