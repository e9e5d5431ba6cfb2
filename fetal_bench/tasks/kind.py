"""What every kind of task implements: the behaviour that differs between task types.

A :class:`~fetal_bench.tasks.Task` is declarative metadata; ``task.kind`` is the object that
knows how tasks of its type are scored, run and trained, as MTEB's ``AbsTaskClassification``
owns its evaluation. The harness, the training loop, the training data and ``fetal-bench
predict`` call these methods and never ask which type a task is. The two kinds are
:class:`~fetal_bench.tasks.classification.ClassificationKind` and
:class:`~fetal_bench.tasks.segmentation.SegmentationKind`; :mod:`fetal_bench.tasks.kinds`
lists them.

The objects the methods pass around (a kind's truth, submission, training targets and
objective) are the kind's own classes; callers hand them back to the same kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol

import numpy as np

from fetal_bench.tasks.scoring import BootstrapConfig, group_breakdown

if TYPE_CHECKING:  # typing only
    import torch

    from fetal_bench.models.registry import ModelInfo
    from fetal_bench.tasks.base import Task

__all__ = ["Objective", "TaskKind", "TrainingTargets"]


class TrainingTargets(Protocol):
    """What a model learns from in the rows of a training set (a kind's ``training_targets``).

    ``labels``: the model's classes; ``columns``: the columns a training row keeps;
    ``loader_columns``: the keywords of :func:`~fetal_bench.data.loading.make_dataloader` that
    read them.
    """

    labels: tuple[str, ...]
    columns: list[str]
    loader_columns: dict[str, str | None]

    def rows(self, dataset, what: str) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """(the dataset with its targets, the rows that have one, each row's class or None)."""

    def synthetic_rows(self, dataset) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """The same for a synthetic split, which must not bring classes the real data lacks."""

    def listed_rows(self, dataset, rows: np.ndarray, name: str) -> np.ndarray:
        """The rows named by a list of real rows (``TrainConfig.real_list``)."""


class Objective(Protocol):
    """What a training step minimises and a validation measures, for one model on one task.

    The trainer runs ``forward`` and ``validation_forward`` under its autocast and everything
    else outside it, and gathers ``validation_values`` across processes.
    """

    def forward(self, model, batch: dict, seed: int) -> torch.Tensor:
        """The logits the loss is computed on; ``seed`` fixes any random prompt of the batch."""

    def loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """The training loss of a batch."""

    def validation_forward(self, model, batch: dict, seed: int) -> tuple[torch.Tensor, ...]:
        """What a validation batch's values are computed from."""

    def validation_values(self, outputs: tuple[torch.Tensor, ...], batch: dict) -> dict[str, torch.Tensor]:
        """Per-image tensors of one validation batch."""

    def validation_scores(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """``loss`` and the validation metrics from every gathered per-image value."""


class TaskKind(ABC):
    """The behaviour shared by every task of one type. Stateless: one instance per kind; a kind
    that leaves out one of the abstract methods cannot be made."""

    name: ClassVar[str]
    # The columns of a result row that a protocol's summary table reports.
    protocol_scores: ClassVar[tuple[str, ...]]
    # The file type of the predictions `write_predictions` saves (a submission's usual form).
    predictions_suffix: ClassVar[str]

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"

    # -- scoring ------------------------------------------------------------------------------

    @abstractmethod
    def validation_metric(self, task: Task) -> str:
        """The validation score that picks a training run's best checkpoint."""

    @abstractmethod
    def ground_truth(self, task: Task, dataset):
        """The reference the evaluation split is scored against (ids, subjects, groups, ...)."""

    @abstractmethod
    def load_submission(self, task: Task, predictions: str | Path, truth):
        """A predictions file or directory, validated against ``truth`` (one error for every problem)."""

    @abstractmethod
    def write_predictions(self, path: str | Path, truth, submission) -> Path:
        """``submission`` as a predictions file that scores to the same numbers."""

    def per_image_values(self, task: Task, truth, submission) -> dict[str, np.ndarray]:
        """Per-image metric values (metric -> values over ``truth.ids``) for metrics that average
        per image; empty for a kind whose metrics are computed on the whole set."""
        return {}

    def score(self, task: Task, truth, submission, boot: BootstrapConfig, *,
              on_phase: Callable[[str], None] = lambda phase: None, per_image: dict | None = None) -> dict[str, Any]:
        """The result file's score blocks: ``scores``, ``groups`` and the kind's extras.

        ``on_phase(name)`` is called as each phase ends (the harness times them); ``per_image``:
        :meth:`per_image_values`, where the caller has them already.
        """
        rows_scorer = self._rows_scorer(task, truth, submission, boot, on_phase, per_image)
        body = {"scores": rows_scorer(np.arange(len(truth.ids))), **self._extra_blocks(task, truth, submission),
                "groups": group_breakdown(task, truth.groups, rows_scorer, truth.subjects)}
        on_phase("scores")
        return body

    @abstractmethod
    def statistic(self, task: Task, truth, submission, metric: str,
                  per_image: dict | None = None) -> Callable[[np.ndarray], float | None]:
        """``metric`` of ``submission`` as a function of row indices into ``truth``: what a paired
        bootstrap evaluates on each resample (the leaderboard's comparison of two submissions)."""

    @abstractmethod
    def _rows_scorer(self, task: Task, truth, submission, boot: BootstrapConfig, on_phase: Callable[[str], None],
                     per_image: dict | None = None):
        """A function of row indices giving every task metric with its interval on those rows
        (work done once for every row set, such as per-image values, is done here, unless the
        caller passes ``per_image``)."""

    def _extra_blocks(self, task: Task, truth, submission) -> dict[str, Any]:
        """Result blocks beside ``scores`` and ``groups`` (per-class F1, the confusion matrix)."""
        return {}

    # -- running a model ----------------------------------------------------------------------

    @abstractmethod
    def image_outputs(self, model, dataset, *, sizes: dict[str, tuple[int, int]] | None = None,
                      batch_size: int = 32, num_workers: int = 0, description: str | None = None,
                      ) -> dict[str, np.ndarray]:
        """What ``model`` makes of every image of ``dataset`` (class probabilities, or masks at
        ``sizes[id]``, else at each image's own size), keyed by row id."""

    @abstractmethod
    def predict(self, task: Task, model, model_name: str, dataset, truth, *, batch_size: int, num_workers: int,
                log: Callable[[str], None]):
        """``model``'s predictions for the rows of ``truth``, as a submission of this kind."""

    @abstractmethod
    def file_rows(self, model, files: list[Path], outputs: dict[str, np.ndarray], output: Path,
                  ) -> tuple[list[dict[str, Any]], Path | None]:
        """``fetal-bench predict``'s CSV rows for image ``files`` (outputs keyed by file index) and
        the directory of any files written beside the CSV."""

    # -- training -----------------------------------------------------------------------------

    def check_model(self, task: Task, info: ModelInfo) -> None:
        """Refuse a model that cannot learn this task."""
        from fetal_bench.errors import FetalBenchError

        if info.task_type != self.name:
            raise FetalBenchError(f"Model {info.name!r} is a {info.task_type} model; task {task.name!r} is not.",
                                  "Pick a model of the task's type (`fetal-bench models list`).")

    @abstractmethod
    def training_targets(self, task: Task, info: ModelInfo, train, *, exclude_labels=()) -> TrainingTargets:
        """What ``info``'s model learns from in the rows of ``train`` (and the other splits)."""

    @abstractmethod
    def objective(self, task: Task, info: ModelInfo, spec, *, box_jitter: tuple[float, float]) -> Objective:
        """The loss and validation of ``info``'s model (spec ``spec``) on ``task``."""
