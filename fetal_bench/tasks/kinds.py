"""Task kinds: what differs between a classification and a segmentation task, in one place.

A :class:`~fetal_bench.tasks.Task` is declarative metadata; its ``type`` string names its kind,
and ``task.kind`` is the object that knows how that kind of task is trained and scored (as
MTEB's task classes own their evaluation): which metrics it may report, whether it learns from
labels or masks, which validation score picks a checkpoint, how its ground truth and submissions
are read, how a model's predictions are made and written, and how everything is scored.
Code elsewhere asks the kind instead of branching on the type string.

The evaluation steps import :mod:`fetal_bench.evaluation` lazily: a task registry lookup stays
cheap (no numpy-heavy or torch imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fetal_bench.tasks.base import Task

class TaskKind:
    """The behaviour shared by all tasks of one type. Stateless: one instance per kind."""

    name: ClassVar[str]
    # The columns of a result row that a protocol's summary table reports.
    protocol_scores: ClassVar[tuple[str, ...]]
    # True: learns from and is scored on a label per image; False: on a mask per image.
    has_labels: ClassVar[bool]
    # The file type of the predictions `write_predictions` saves (a submission's usual form).
    predictions_suffix: ClassVar[str]

    def known_metrics(self) -> tuple[str, ...]:
        raise NotImplementedError

    def validation_metric(self, task: Task) -> str:
        """The validation score that picks a training run's best checkpoint."""
        raise NotImplementedError

    def positive_index(self, task: Task, labels: tuple[str, ...] | list[str]) -> int | None:
        """Model-space index of the task's positive class (validation F1 of binary tasks)."""
        return None

    # -- evaluation ---------------------------------------------------------------------------

    def ground_truth(self, task: Task, dataset):
        raise NotImplementedError

    def load_submission(self, task: Task, predictions, truth):
        raise NotImplementedError

    def predict(self, task: Task, loaded, model_name: str, dataset, truth, *, batch_size: int, num_workers: int,
                log: Callable[[str], None]):
        raise NotImplementedError

    def write_predictions(self, path, truth, submission) -> None:
        raise NotImplementedError

    def per_image_values(self, task: Task, truth, submission) -> dict[str, Any]:
        """Per-image metric values (metric -> array over ``truth.ids``) for metrics that average
        per image; empty for a kind whose metrics are computed on the whole set."""
        return {}

    def score(self, task: Task, truth, submission, boot, *,
              on_phase: Callable[[str], None] = lambda phase: None, per_image: dict | None = None) -> dict[str, Any]:
        """The result file's score blocks (``scores``, ``groups`` and the kind's extras);
        ``on_phase(name)`` is called as each phase ends (the harness times them). ``per_image``:
        :meth:`per_image_values`, where the caller has them already."""
        raise NotImplementedError

    def statistic(self, task: Task, truth, submission, metric: str,
                  per_image: dict | None = None) -> Callable[[Any], float | None]:
        """``metric`` of ``submission`` as a function of row indices into ``truth``: what a paired
        bootstrap evaluates on each resample (the leaderboard's comparison of two submissions)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task kind {self.name}>"


class ClassificationKind(TaskKind):
    name = "classification"
    protocol_scores = ("accuracy", "macro_f1", "auc_ovr_hard", "auc_ovr_macro", "balanced_accuracy")
    has_labels = True
    predictions_suffix = ".csv"

    def known_metrics(self) -> tuple[str, ...]:
        from fetal_bench.tasks.base import BINARY_METRICS, CLASSIFICATION_METRICS

        return CLASSIFICATION_METRICS + BINARY_METRICS

    def validation_metric(self, task: Task) -> str:
        # The task's main score where validation computes it (F1 of binary tasks, macro F1),
        # else accuracy.
        return task.main_score if task.main_score in ("f1", "macro_f1") else "accuracy"

    def positive_index(self, task: Task, labels) -> int | None:
        return None if task.positive_label is None else list(labels).index(task.positive_label)

    def ground_truth(self, task: Task, dataset):
        from fetal_bench.evaluation.data import classification_truth

        return classification_truth(task, dataset)

    def load_submission(self, task: Task, predictions, truth):
        from fetal_bench.evaluation.submissions import load_classification_submission

        return load_classification_submission(predictions, expected_ids=truth.ids, labels=task.labels,
                                              allowed_extra=task.allowed_extra_labels)

    def predict(self, task: Task, loaded, model_name: str, dataset, truth, *, batch_size: int, num_workers: int,
                log: Callable[[str], None]):
        from fetal_bench.evaluation.model_runner import predict_classification

        return predict_classification(task, loaded, model_name, dataset, truth.ids, batch_size=batch_size,
                                      num_workers=num_workers, log=log)

    def write_predictions(self, path, truth, submission) -> None:
        from fetal_bench.evaluation.harness import write_classification_predictions

        write_classification_predictions(path, truth.ids, submission)

    def score(self, task: Task, truth, submission, boot, *,
              on_phase: Callable[[str], None] = lambda phase: None, per_image: dict | None = None) -> dict[str, Any]:
        import numpy as np

        from fetal_bench.evaluation import scoring

        y_true, predicted, proba = truth.y_true, submission.predicted, submission.proba

        def score_rows(rows):
            return scoring.classification_scores(task, y_true[rows], predicted[rows],
                                                 None if proba is None else proba[rows], truth.subjects[rows], boot)

        body = {
            "scores": score_rows(np.arange(len(y_true))),
            "per_class": {"f1": scoring.per_class_f1(task, y_true, predicted)},
            "confusion_matrix": scoring.confusion(task, y_true, predicted, submission.columns),
            "groups": scoring.group_breakdown(task, truth.groups, score_rows, truth.subjects),
        }
        on_phase("scores")
        return body


    def statistic(self, task: Task, truth, submission, metric: str,
                  per_image: dict | None = None) -> Callable[[Any], float | None]:
        from fetal_bench.evaluation import scoring

        return scoring.classification_statistic(task, metric, truth.y_true, submission.predicted, submission.proba)


class SegmentationKind(TaskKind):
    name = "segmentation"
    protocol_scores = ("dice", "hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate", "hd95_mm")
    has_labels = False
    predictions_suffix = ".parquet"

    def known_metrics(self) -> tuple[str, ...]:
        from fetal_bench.tasks.base import SEGMENTATION_METRICS

        return SEGMENTATION_METRICS

    def validation_metric(self, task: Task) -> str:
        return "dice"

    def ground_truth(self, task: Task, dataset):
        from fetal_bench.evaluation.data import segmentation_truth

        return segmentation_truth(task, dataset)

    def load_submission(self, task: Task, predictions, truth):
        from fetal_bench.evaluation.submissions import load_segmentation_submission

        return load_segmentation_submission(predictions, expected_ids=truth.ids, expected_shapes=truth.shapes)

    def predict(self, task: Task, loaded, model_name: str, dataset, truth, *, batch_size: int, num_workers: int,
                log: Callable[[str], None]):
        from fetal_bench.evaluation.model_runner import predict_segmentation

        return predict_segmentation(task, loaded, model_name, dataset, truth.ids, truth.shapes,
                                    batch_size=batch_size, num_workers=num_workers, log=log)

    def write_predictions(self, path, truth, submission) -> None:
        from fetal_bench.evaluation.harness import write_segmentation_predictions

        write_segmentation_predictions(path, truth.ids, submission)

    def per_image_values(self, task: Task, truth, submission) -> dict[str, Any]:
        from fetal_bench.evaluation import scoring

        return scoring.segmentation_per_image(task, truth.masks, [submission[i] for i in truth.ids],
                                              truth.pixel_size_mm, truth.head_circumference_mm)

    def score(self, task: Task, truth, submission, boot, *,
              on_phase: Callable[[str], None] = lambda phase: None, per_image: dict | None = None) -> dict[str, Any]:
        import numpy as np

        from fetal_bench.evaluation import scoring

        # Every image is scored once; the bootstrap below only resamples these values.
        if per_image is None:
            per_image = self.per_image_values(task, truth, submission)
        on_phase("per_image_metrics")

        def score_rows(rows):
            return scoring.segmentation_scores(task, per_image, rows, truth.subjects, boot)

        body = {
            "scores": score_rows(np.arange(len(truth.ids))),
            "groups": scoring.group_breakdown(task, truth.groups, score_rows, truth.subjects),
        }
        on_phase("scores")
        return body


    def statistic(self, task: Task, truth, submission, metric: str,
                  per_image: dict | None = None) -> Callable[[Any], float | None]:
        from fetal_bench.evaluation import scoring

        if per_image is None:
            per_image = self.per_image_values(task, truth, submission)
        return scoring.segmentation_statistic(metric, per_image[metric])


CLASSIFICATION = ClassificationKind()
SEGMENTATION = SegmentationKind()
TASK_KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (CLASSIFICATION, SEGMENTATION)}
