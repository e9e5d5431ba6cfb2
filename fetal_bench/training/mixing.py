"""Training data: the real split of a task, optionally subsampled, mixed with a synthetic split.

Everything here works on the Arrow tables without rewriting the image bytes: subsets are index
mappings (``Dataset.select``) and real and synthetic rows are concatenated lazily. What a model
learns from in those rows (class indices, masks) is the task kind's business
(``task.kind.training_targets``); this module only chooses and mixes rows.

Mixing rule (``synthetic_ratio`` = *r*, the synthetic share of the training set): all selected
real rows are kept and ``round(r / (1 - r) * n_real)`` synthetic rows are drawn (every synthetic
row when fewer exist; the share actually reached is recorded); ``r = 1`` trains on synthetic rows
only. Per-class caps (``real_per_class``, ``synthetic_per_class``) and row counts (``real_n``,
``synthetic_n``) are applied first; all draws are seeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fetal_bench.data.provenance import dataset_record
from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks import Task

if TYPE_CHECKING:
    import datasets

    from fetal_bench.models.registry import ModelInfo
    from fetal_bench.tasks.kind import TrainingTargets

__all__ = ["FOREIGN_TRAINING", "TrainingData", "open_training_split", "prepare_training_data"]

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
    labels: tuple[str, ...]  # model classes (classification) or the task's ("background", "head")
    loader_columns: dict[str, str | None]  # make_dataloader's label_column / mask_column (the kind's targets)
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


def _cap_per_class(classes: np.ndarray | None, rows: np.ndarray, per_class: int | None,
                   rng: np.random.Generator) -> np.ndarray:
    """At most ``per_class`` rows of each class, drawn with ``rng``; rows without classes (masks)
    have no per-class cap."""
    if per_class is None or classes is None:
        return rows
    targets = classes
    kept = []
    for cls in np.unique(targets[rows]):
        members = rows[targets[rows] == cls]
        kept.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(kept)) if kept else rows[:0]


def _take(rows: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= len(rows):
        return rows
    return np.sort(rng.permutation(rows)[:n])


def prepare_training_data(task: Task, info: ModelInfo, *, data: str | os.PathLike | None = None,
                          data_config: str | None = None, train_split: str = "train", val_split: str | None = "validation",
                          exclude_labels: tuple[str, ...] = (), real_list: str | None = None,
                          real_per_class: int | None = None, real_n: int | None = None,
                          synthetic: str | os.PathLike | None = None, synthetic_config: str | None = None,
                          synthetic_ratio: float | None = None, synthetic_per_class: int | None = None,
                          synthetic_n: int | None = None, seed: int = 0) -> TrainingData:
    """Open, filter, subsample and mix the training (and validation) rows of ``task`` for model ``info``.

    ``real_list``: a named list of real rows (:data:`fetal_bench.data.fu_lora_lists.REAL_LISTS`,
    e.g. the FU-LoRA authors' hybrid subset) replaces the random per-class cap; every listed id
    must be in the training split with the listed class.
    """
    if synthetic_ratio is not None and not 0 <= synthetic_ratio <= 1:
        raise FetalBenchError(f"synthetic_ratio={synthetic_ratio} is outside [0, 1].",
                              "Give the synthetic share of the training set, e.g. 0.5.")
    if synthetic is None and (synthetic_ratio or synthetic_per_class or synthetic_n):
        raise FetalBenchError("A synthetic share/count was given without --synthetic DIR.",
                              "Pass --synthetic with a synthetic dataset (from `fetal-bench generate`).")
    rng = np.random.default_rng(seed)
    data_config = _config_for(data, task, data_config)
    train, train_source = open_training_split(data, task, train_split, data_config)
    validation = None
    if val_split is not None:
        validation, _ = open_training_split(data, task, val_split, data_config)
    # The data by name, revision and content fingerprint (never this machine's path: config.json is published).
    sources: dict[str, Any] = {"data": dataset_record(train_source, config=data_config, split=train_split, dataset=train),
                               "config": data_config, "train_split": train_split, "val_split": val_split}
    targets = task.kind.training_targets(task, info, train, exclude_labels=exclude_labels)
    train, rows, classes = targets.rows(train, "training")
    if real_list is not None:
        rows = targets.listed_rows(train, rows, real_list)
        sources["real_list"] = real_list
    rows = _take(_cap_per_class(classes, rows, real_per_class, rng), real_n, rng)
    if validation is not None:
        validation, val_rows, _ = targets.rows(validation, "validation")
        validation = validation.select(val_rows) if len(val_rows) != len(validation) else validation
    train = train.select(rows) if len(rows) != len(train) else train
    n_real, n_synthetic, columns = len(train), 0, targets.columns
    if synthetic is not None and synthetic_ratio != 0:
        syn = _synthetic_rows(synthetic, targets, task, rng, real_rows=n_real, data_config=data_config,
                              synthetic_config=synthetic_config, synthetic_ratio=synthetic_ratio,
                              synthetic_per_class=synthetic_per_class, synthetic_n=synthetic_n)
        n_synthetic = len(syn)
        if synthetic_ratio == 1:
            train, n_real = syn.select_columns(columns), 0
        else:
            train = _concatenate(train.select_columns(columns), syn.select_columns(columns))
        sources.update({"synthetic": dataset_record(synthetic, config=synthetic_config, split="train", content=False),
                        "synthetic_ratio_requested": synthetic_ratio})
    else:
        train = train.select_columns(columns)
    if len(train) == 0:
        raise FetalBenchError("No training rows are left after filtering and subsampling.",
                              "Check --data, the excluded classes and the per-class/row counts.")
    if validation is not None and len(validation) == 0:
        validation = None
    if validation is not None:
        validation = validation.select_columns(columns)
    return TrainingData(train=train, validation=validation, labels=targets.labels,
                        loader_columns=dict(targets.loader_columns), n_real=n_real, n_synthetic=n_synthetic,
                        sources=sources)


def _synthetic_rows(synthetic, targets: TrainingTargets, task: Task, rng: np.random.Generator, *, real_rows: int,
                    data_config, synthetic_config, synthetic_ratio, synthetic_per_class, synthetic_n) -> datasets.Dataset:
    """The synthetic rows drawn for ``real_rows`` real ones (with their targets)."""
    # A synthetic set built with the real set's configs (e.g. a phantom-like build) is read with
    # the same config; a single-config synthetic set (the generators' output) without.
    candidates = [synthetic_config] if synthetic_config is not None else [data_config, None] if data_config else [None]
    for position, candidate in enumerate(candidates):
        try:
            syn, _ = open_training_split(synthetic, task, "train", candidate)
            break
        except FetalBenchError:
            if position == len(candidates) - 1:
                raise
    syn, syn_rows, classes = targets.synthetic_rows(syn)
    syn_rows = _take(_cap_per_class(classes, syn_rows, synthetic_per_class, rng), synthetic_n, rng)
    if synthetic_ratio is not None and synthetic_ratio < 1:
        wanted = int(round(synthetic_ratio / (1 - synthetic_ratio) * real_rows))
        syn_rows = _take(syn_rows, wanted, rng)
    return syn.select(syn_rows)


def _concatenate(real: datasets.Dataset, synthetic: datasets.Dataset) -> datasets.Dataset:
    import datasets

    # Same columns, same features (ids stay unique: synthetic ids carry their generator prefix).
    if synthetic.features != real.features:
        synthetic = synthetic.cast(real.features)
    return datasets.concatenate_datasets([real, synthetic])
