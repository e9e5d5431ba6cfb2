"""`fetal_bench.evaluate`: score a submission (predictions or a model) on a task.

Order of work: resolve the task and its ground truth; load and validate the submission
completely (any problem: one error, no result); score with intervals and per-group
breakdowns; validate the result against the schema; write it atomically. Everything that
depends on the task's type is its kind's (``task.kind``: :mod:`fetal_bench.tasks.classification`,
:mod:`fetal_bench.tasks.segmentation`); this module never asks which type a task is.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable

from fetal_bench import __version__
from fetal_bench.errors import FetalBenchError
from fetal_bench.evaluation.results import (
    SCHEMA_VERSION,
    TRAINING_DATA,
    check_result_output,
    environment,
    now_iso,
    validate_result,
    write_result,
)
from fetal_bench.evaluation.scored_split import load_eval_data
from fetal_bench.tasks import Task, get_task
from fetal_bench.tasks.classification import restrict_to_labels
from fetal_bench.tasks.scoring import BootstrapConfig
from fetal_bench.tasks.submissions import submission_sha256

__all__ = ["evaluate", "restrict_to_labels"]


def evaluate(
    task: str | Task,
    *,
    predictions: str | os.PathLike | None = None,
    model: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    split: str | None = None,
    output: str | os.PathLike | None = None,
    name: str | None = None,
    training_data: str | None = None,
    synthetic_share: float | None = None,
    description: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | None = None,
    validate_only: bool = False,
    command: str | None = None,
    save_predictions: str | os.PathLike | None = None,
    paper_url: str | None = None,
    code_url: str | None = None,
    zero_shot: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Score a submission on ``task`` and return the result (also written to ``output``).

    Exactly one of ``predictions`` (a file/directory keyed by row id) and ``model`` (a
    registered baseline name, with ``checkpoint``) is given. With ``validate_only`` the
    submission is checked and nothing is scored or written; the returned dict then only
    summarises the check.

    ``command`` is the command line that reproduces the result (recorded in it); ``paper_url`` and
    ``code_url`` (http(s) only) link the submission's paper and code on the leaderboard; ``zero_shot``
    says whether any image of the task's dataset was used for training (None: the leaderboard infers it);
    ``save_predictions`` writes what a ``model`` predicted as a predictions submission (CSV for
    classification, Parquet of PNG masks for segmentation) that scores to the same numbers.

    Besides the result, the returned dict carries ``_path`` (the file written, with ``output``)
    and ``_phases_s`` (seconds spent loading the data, the model and the truth, predicting,
    scoring per image, bootstrapping, hashing the weights and writing); neither is in the file.
    """
    start = time.perf_counter()
    _check_options(paper_url=paper_url, code_url=code_url, predictions=predictions, model=model,
                   training_data=training_data, synthetic_share=synthetic_share)
    task = get_task(task) if isinstance(task, str) else task
    with contextlib.ExitStack() as outputs:
        return _evaluate(task, outputs, start, predictions=predictions, model=model, checkpoint=checkpoint, data=data,
                         split=split, output=output, name=name, training_data=training_data,
                         synthetic_share=synthetic_share, description=description, n_resamples=n_resamples,
                         seed=seed, batch_size=batch_size, num_workers=num_workers, device=device,
                         validate_only=validate_only, command=command, save_predictions=save_predictions,
                         paper_url=paper_url, code_url=code_url, zero_shot=zero_shot, log=log)


def _lock_outputs(outputs: contextlib.ExitStack, task: Task, output, name: str, save_predictions) -> None:
    """Check the result path of submission ``name`` and hold its lock (and that of
    ``save_predictions``) until the evaluation ends.

    Taken as soon as the name is known: at the start for a predictions file, right after the
    model is loaded for a checkpoint (its run name names the result). Two runs writing one file
    therefore cannot both score and both report it as theirs: the second fails here, naming the
    lock, before it predicts anything.
    """
    from fetal_bench._io import exclusive_lock

    if output is not None:
        outputs.enter_context(exclusive_lock(check_result_output(output, task.name, name)))
    if save_predictions is not None:
        outputs.enter_context(exclusive_lock(save_predictions))


def _evaluate(task: Task, outputs: contextlib.ExitStack, start: float, *, predictions, model, checkpoint, data, split,
              output, name, training_data, synthetic_share, description, n_resamples, seed, batch_size, num_workers,
              device, validate_only, command, save_predictions, paper_url, code_url, zero_shot, log) -> dict:
    note = log or (lambda message: None)
    if validate_only:
        output = None  # no result is written
    if predictions is not None:
        _lock_outputs(outputs, task, output, name or Path(predictions).stem, save_predictions)
    laps = _Laps(start)
    eval_data = load_eval_data(task, data, split)
    laps.mark("data")
    note(f"{task.name}: {len(eval_data.dataset)} rows from {eval_data.source} [{eval_data.split}], "
         f"revision {eval_data.revision}")
    boot = BootstrapConfig(n_resamples=n_resamples, seed=seed)
    notes: list[str] = list(eval_data.notes)
    for line in eval_data.notes:
        note(line)
    if save_predictions is not None and model is None:
        raise FetalBenchError("--save-predictions writes what a --model predicted.",
                              "Drop --save-predictions, or score a --model.")
    loaded = None
    if model is not None:
        from fetal_bench.evaluation.model_submission import load_model

        loaded = load_model(model, checkpoint, device)  # once: it predicts, and its weights are hashed
        laps.mark("model_load")
        _lock_outputs(outputs, task, output, name or _run_name(loaded) or model, save_predictions)

    kind = task.kind  # how this type of task reads, predicts and scores
    truth = kind.ground_truth(task, eval_data.dataset)
    laps.mark("truth")
    if truth.dropped:
        notes.append(f"{truth.dropped} evaluation rows have a label outside this task and are not scored.")
    if predictions is not None:
        submission = kind.load_submission(task, predictions, truth)
    else:
        submission = kind.predict(task, loaded.model, model, eval_data.dataset, truth, batch_size=batch_size,
                                  num_workers=num_workers, log=note)
        if save_predictions is not None:
            kind.write_predictions(save_predictions, truth, submission)
    laps.mark("predictions")
    if validate_only:
        return {"valid": True, "task": task.name, "n_samples": len(truth.ids)}
    body = kind.score(task, truth, submission, boot, on_phase=laps.mark)
    n_samples, subjects = len(truth.ids), truth.subjects

    submission_info = _submission_info(predictions, model, loaded, checkpoint, name, training_data, synthetic_share,
                                       description)
    laps.mark("provenance")
    if save_predictions is not None:
        # What the model predicted, by content: the leaderboard scores this file again.
        submission_info["predictions_sha256"] = submission_sha256(Path(save_predictions))
        submission_info["predictions_file"] = Path(save_predictions).name
    extras = {"command": command, "paper_url": paper_url, "code_url": code_url, "zero_shot": zero_shot}
    submission_info.update({key: value for key, value in extras.items() if value is not None})
    result = {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "task_version": task.version,
        "task_type": task.type,
        "higher_is_better": task.higher_is_better,
        "dataset": {"name": task.dataset.name, "source": eval_data.source, "revision": eval_data.revision,
                    "config": task.dataset.config, "split": eval_data.split, "fingerprint": eval_data.fingerprint},
        "submission": submission_info,
        **body,
        "bootstrap": {"n_resamples": boot.n_resamples, "seed": boot.seed, "unit": task.subject_column,
                      "confidence": boot.confidence},
        "n_samples": n_samples,
        "n_subjects": int(len(set(subjects))),
        "notes": notes,
        "fetal_bench_version": __version__,
        "environment": environment(),
        "created_at": now_iso(),
        "runtime_s": round(time.perf_counter() - start, 3),
    }
    validate_result(result)
    if output is not None:
        path = write_result(result, output)
        note(f"result written to {path}")
        result["_path"] = str(path)  # for callers; not part of the file
    laps.mark("result")
    result["_phases_s"] = laps.seconds  # for callers (benchmarks/bench_harness.py); not part of the file
    return result


def _run_name(loaded) -> str | None:
    """The run name the loaded checkpoint recorded (what names its result without --name)."""
    return loaded.checkpoint.run_name if loaded.checkpoint is not None else None


def _check_options(*, paper_url, code_url, predictions, model, training_data, synthetic_share) -> None:
    """The options' own errors, before any work."""
    for flag, url in (("--paper-url", paper_url), ("--code-url", code_url)):
        if url is not None and (not url.lower().startswith(("http://", "https://")) or len(url) > 2048
                                or any(c.isspace() for c in url)):
            raise FetalBenchError(f"{flag} must be an http(s) URL of at most 2,048 characters without spaces.",
                                  f"Pass e.g. {flag} https://arxiv.org/abs/2407.20072")
    if (predictions is None) == (model is None):
        raise FetalBenchError("Give exactly one of --predictions and --model.",
                              "Score a predictions file/directory, or a registered model with its --checkpoint.")
    if training_data is not None and training_data not in TRAINING_DATA:
        raise FetalBenchError(f"--training-data {training_data!r} is not one of {', '.join(TRAINING_DATA)}.",
                              "Say what the submission was trained on.")
    if synthetic_share is not None and not 0 <= synthetic_share <= 1:
        raise FetalBenchError(f"--synthetic-share {synthetic_share} is outside [0, 1].",
                              "Give the fraction of synthetic training images.")


class _Laps:
    """Seconds spent in each phase of one evaluation, for the benchmark's breakdown."""

    def __init__(self, start: float):
        self.last = start
        self.seconds: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + now - self.last, 4)
        self.last = now


def _submission_info(predictions, model, loaded, checkpoint, name, training_data, synthetic_share, description) -> dict:
    if predictions is not None:
        path = Path(predictions)
        sha256 = submission_sha256(path)
        return {"name": name or path.stem, "kind": "predictions", "sha256": sha256,
                "model": None, "checkpoint": None, "training_data": training_data,
                "synthetic_share": synthetic_share, "description": description,
                "predictions_sha256": sha256, "predictions_file": path.name}
    meta = loaded.provenance(checkpoint)
    return {"name": name or meta.get("name") or model, "kind": "model", "sha256": meta["sha256"], "model": model,
            # The name only (org/name@commit from the Hub): an absolute path means nothing on
            # another machine; sha256 identifies it.
            "checkpoint": None if checkpoint is None else meta["reference"],
            "training_data": training_data or meta.get("training_data"),
            "synthetic_share": synthetic_share if synthetic_share is not None else meta.get("synthetic_share"),
            "description": description}
