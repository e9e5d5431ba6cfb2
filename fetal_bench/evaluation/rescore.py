"""Score a result file's predictions again: what the leaderboard verifies, and how old results move on.

A result file reports scores; on its own it is a claim. Given the predictions it names (by
sha256) and the task's data, :func:`score_again` computes every score block again with this
fetal-bench, on the task version and bootstrap settings the file records. The leaderboard
compares the two (:mod:`fetal_bench.leaderboard.verify`), and :func:`rescore_result` writes a
result for the task's current version from an older one (e.g. HC18 1.0 -> 2.0) without
re-running the model.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks import Task
from fetal_bench.tasks.registry import get_task

# Bounds on what a result file may ask a re-score to do: its resample count sets the work.
MAX_RESAMPLES = 20_000
# The score blocks a task kind computes; everything else in a result file is provenance.
SCORE_BLOCKS = ("scores", "groups", "per_class", "confusion_matrix")


@dataclass
class ScoredAgain:
    """A result's score blocks computed again from its predictions."""

    task: Task
    body: dict[str, Any]  # the kind's score blocks (scores, groups, and per_class/confusion_matrix where the kind has them)
    dataset: dict[str, Any]  # name, config, split, revision, fingerprint of the data scored
    n_samples: int
    n_subjects: int
    bootstrap: dict[str, Any]
    truth: Any = field(repr=False)
    submission: Any = field(repr=False)
    per_image: dict[str, Any] = field(repr=False, default_factory=dict)  # metric -> values over truth.ids
    notes: tuple[str, ...] = ()

    def statistic(self, metric: str) -> Callable:
        """``metric`` as a function of row indices (see :meth:`TaskKind.statistic`)."""
        return self.task.kind.statistic(self.task, self.truth, self.submission, metric, per_image=self.per_image)

    @property
    def subjects(self):
        return self.truth.subjects


class TruthCache:
    """Evaluation data and ground truth, loaded once per (task, version, split, data source).

    A leaderboard re-scores many results of one task against the same split; loading and
    decoding it once per build keeps that to one pass.
    """

    def __init__(self) -> None:
        self._loaded: dict[tuple, tuple[Any, Any]] = {}

    def get(self, task: Task, split: str, data: str | os.PathLike | None):
        key = (task.name, task.version, split, None if data is None else str(data))
        if key not in self._loaded:
            from fetal_bench.evaluation.scored_split import load_eval_data

            eval_data = load_eval_data(task, data, split)
            self._loaded[key] = (eval_data, task.kind.ground_truth(task, eval_data.dataset))
        return self._loaded[key]


def bootstrap_settings(result: dict) -> dict[str, Any]:
    """The bootstrap a result file records, checked before any work is done."""
    boot = result.get("bootstrap") or {}
    n_resamples, seed = boot.get("n_resamples", 1000), boot.get("seed", 0)
    confidence = boot.get("confidence", 0.95)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or not 1 <= n_resamples <= MAX_RESAMPLES:
        raise FetalBenchError(f"bootstrap.n_resamples is {n_resamples!r}; a result may ask for 1 to "
                              f"{MAX_RESAMPLES:,} resamples.", "Score it again with `fetal-bench evaluate`.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise FetalBenchError(f"bootstrap.seed is {seed!r}, not an integer in [0, 2**32).",
                              "Score it again with `fetal-bench evaluate`.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise FetalBenchError(f"bootstrap.confidence is {confidence!r}, not a number in (0, 1).",
                              "Score it again with `fetal-bench evaluate`.")
    return {"n_resamples": n_resamples, "seed": seed, "confidence": float(confidence)}


def score_again(result: dict, predictions: str | os.PathLike, *, data: str | os.PathLike | None = None,
                cache: TruthCache | None = None, task_version: str | None = None) -> ScoredAgain:
    """Score ``predictions`` as ``result`` says it was scored: its task version, split and bootstrap.

    ``data``: the task's dataset (a local build or a Hub id); None reads it as ``evaluate``
    would (the phantom set is built in-process; a published set comes from the Hub). Raises
    :class:`FetalBenchError` when the task, its version, the data or the predictions cannot
    be used. ``task_version``: score on this version instead (the current one for a re-score).
    """
    from fetal_bench.tasks.scoring import BootstrapConfig

    task = get_task(result["task"], task_version or result["task_version"])
    split = result["dataset"]["split"]
    eval_data, truth = (cache or TruthCache()).get(task, split, data)
    submission = task.kind.load_submission(task, Path(predictions), truth)
    settings = bootstrap_settings(result)
    boot = BootstrapConfig(n_resamples=settings["n_resamples"], seed=settings["seed"],
                           confidence=settings["confidence"])
    per_image = task.kind.per_image_values(task, truth, submission)  # once: the score and the statistic share it
    body = task.kind.score(task, truth, submission, boot, per_image=per_image)
    dataset = {"name": task.dataset.name, "config": task.dataset.config, "split": eval_data.split,
               "revision": eval_data.revision, "fingerprint": eval_data.fingerprint}
    return ScoredAgain(task, body, dataset, len(truth.ids), int(len(set(truth.subjects))),
                       {**settings, "unit": task.subject_column}, truth, submission, per_image,
                       tuple(eval_data.notes))


def rescore_result(result: dict, raw: bytes, predictions: str | os.PathLike, *,
                   data: str | os.PathLike | None = None, output: str | os.PathLike | None = None) -> dict:
    """A result for the task's current version, scored again from ``result``'s predictions.

    The submission block (name, description, command, model, links) is kept; the scores, the
    task version and the environment are new, and ``rescored`` records which file (by sha256)
    and which task version this came from, and when that was made. Written to ``output``
    (a directory or a .json path) when given.
    """
    from fetal_bench import __version__
    from fetal_bench.evaluation.results import SCHEMA_VERSION, environment, now_iso, validate_result, write_result
    from fetal_bench.evaluation.submissions import submission_sha256

    expected = result["submission"].get("predictions_sha256") or (
        result["submission"]["sha256"] if result["submission"]["kind"] == "predictions" else None)
    found = submission_sha256(Path(predictions))
    if expected is not None and found != expected:
        raise FetalBenchError(f"The predictions {Path(predictions).name} have sha256 {found[:12]}…, but the result "
                              f"names {expected[:12]}….", "Pass the predictions this result was scored on.")
    current = get_task(result["task"])
    start = time.perf_counter()
    again = score_again(result, predictions, data=data, task_version=current.version)
    submission = {**result["submission"], "predictions_sha256": found, "predictions_file": Path(predictions).name}
    rescored = {
        "schema_version": SCHEMA_VERSION, "task": current.name, "task_version": current.version,
        "task_type": current.type, "higher_is_better": current.higher_is_better,
        "dataset": {**again.dataset, "source": result["dataset"].get("source", "")},
        "submission": submission, **again.body, "bootstrap": again.bootstrap,
        "n_samples": again.n_samples, "n_subjects": again.n_subjects,
        "notes": list(dict.fromkeys([*result.get("notes", []), *again.notes])),
        "rescored": {"from_sha256": hashlib.sha256(raw).hexdigest(), "created_at": result["created_at"],
                     "task_version": result["task_version"]},
        "fetal_bench_version": __version__, "environment": environment(), "created_at": now_iso(),
        "runtime_s": round(time.perf_counter() - start, 3),
    }
    if rescored["dataset"]["source"] == "":
        del rescored["dataset"]["source"]
    validate_result(rescored)
    if output is not None:
        rescored["_path"] = str(write_result(rescored, output))
    return rescored


def stored_score_blocks(result: dict) -> dict[str, Any]:
    """The blocks of a result file that :func:`score_again` recomputes, as stored."""
    return {key: result[key] for key in SCORE_BLOCKS if key in result}


__all__ = ["MAX_RESAMPLES", "SCORE_BLOCKS", "ScoredAgain", "TruthCache", "bootstrap_settings", "rescore_result",
           "score_again", "stored_score_blocks"]
