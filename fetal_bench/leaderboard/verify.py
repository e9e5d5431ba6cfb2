"""Verify results by scoring their predictions again; compare the verified ones with paired resamples.

A result file's scores are a claim. Before a result is ranked, the leaderboard

1. checks what the file says against the registry and the catalog, with no data needed: the
   task version exists, the main score is that version's, and a result that claims a published
   dataset revision carries that revision's pinned content fingerprint (a fingerprint is never
   taken from the files themselves, so no file can move a ranking onto other data);
2. finds the predictions the file names, by sha256 (``submission.predictions_sha256``), among
   the predictions folders it is given;
3. scores them again on the task's data with this fetal-bench and the file's own bootstrap
   settings (:func:`fetal_bench.evaluation.rescore.score_again`), and compares every number of
   every score block with the file's.

Outcomes (:class:`Verdict`): **verified** (ranked), **unverified** (shown apart, never ranked:
no predictions named or found, the data or the task version not available here) and
**refused** (listed as invalid: the file contradicts the registry or the catalog, or its numbers
are not what its predictions score). ``leaderboard build`` and ``leaderboard check`` exit 2 on
a refused file.

Ranks then respect uncertainty (:func:`compare_with_leader`): every verified result of a ranking
is scored on the same cluster resamples of the same images (paired), giving each result's
rank interval and, against the leader, the difference in the main score with its 95% interval.
A result whose interval of the difference holds 0 is "not distinguishable from #1".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.leaderboard.loading import ResultEntry

Status = Literal["verified", "unverified", "refused"]

# Stored and re-scored numbers agree when they differ by float noise only: summation order and
# BLAS builds move the last bits, never the fourth significant digit that a ranking shows.
REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-12
# What a predictions folder may hold before it is read: files are hashed, so size is work.
MAX_PREDICTIONS_BYTES = 1 << 30
MAX_PREDICTION_CANDIDATES = 10_000
PREDICTION_SUFFIXES = (".csv", ".parquet")
# The paired comparison: resamples and seed are the leaderboard's own (the same for every
# ranking, recorded on the page), whatever a result file used for its intervals.
PAIRED_RESAMPLES = 1000
PAIRED_SEED = 0
CONFIDENCE = 0.95
METHOD_NAME = ("paired cluster bootstrap: every verified result scored on the same 1,000 resamples of "
               "the test subjects; a result is not distinguishable from #1 when the 95% percentile "
               "interval of its difference from #1 holds 0 (no correction for multiple comparisons)")


@dataclass(frozen=True)
class Verdict:
    """What verification concluded about one result file."""

    status: Status
    reason: str = ""
    predictions: Path | None = None  # the file that was scored again
    # Verified only: the main score as a function of row indices, and the rows' bootstrap units.
    statistic: Callable[[np.ndarray], float | None] | None = field(default=None, repr=False, compare=False)
    subjects: np.ndarray | None = field(default=None, repr=False, compare=False)
    truth_key: tuple | None = None  # results with the same key were scored on the same rows
    extras: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # e.g. per-image errors


@dataclass(frozen=True)
class Comparison:
    """One ranked result against the leader, on paired resamples."""

    rank_low: int  # 95% interval of its rank over the resamples
    rank_high: int
    difference: float | None  # leader's main score minus this one's, in the better direction; None: the leader
    ci95: tuple[float, float] | None  # of the difference over the paired resamples; None: the leader
    indistinguishable: bool  # the interval of the difference holds 0 (the leader itself: True)


# --------------------------------------------------------------------------------------------
# Predictions, found by content


class PredictionsIndex:
    """Predictions files (and PNG mask folders) under some roots, looked up by sha256.

    Symbolic links are never followed or used: a results folder could otherwise point the
    build at any file of the machine. Hashing is lazy: a file named as the result's
    ``predictions_file`` is hashed first; the rest only when that does not match.
    """

    def __init__(self, roots: Iterable[str | os.PathLike]):
        self.roots = [Path(r) for r in roots]
        self._candidates: list[Path] | None = None
        self._hashes: dict[Path, str | None] = {}

    def _walk(self) -> list[Path]:
        found: list[Path] = []
        for root in self.roots:
            if root.is_symlink() or not root.is_dir():
                continue
            for directory, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                                 and not Path(directory, d).is_symlink())
                here = Path(directory)
                if here != root and any(f.endswith(".png") for f in files):
                    found.append(here)  # a folder of <id>.png masks
                found += [here / f for f in sorted(files)
                          if f.endswith(PREDICTION_SUFFIXES) and not f.startswith(".")]
                if len(found) > MAX_PREDICTION_CANDIDATES:
                    raise FetalBenchError(
                        f"The predictions folders hold more than {MAX_PREDICTION_CANDIDATES:,} candidate files.",
                        "Point --predictions at the folder that holds the predictions of these results.")
        return found

    def _sha256(self, path: Path) -> str | None:
        if path not in self._hashes:
            from fetal_bench.evaluation.submissions import submission_sha256

            self._hashes[path] = None
            try:
                if path.is_symlink() or (path.is_file() and path.stat().st_size > MAX_PREDICTIONS_BYTES):
                    return None
                self._hashes[path] = submission_sha256(path)
            except (FetalBenchError, OSError):
                pass
        return self._hashes[path]

    def find(self, sha256: str, hint: str | None = None) -> Path | None:
        if self._candidates is None:
            self._candidates = self._walk()
        first = [p for p in self._candidates if hint and p.name == hint]
        for path in first + [p for p in self._candidates if p not in first]:
            if self._sha256(path) == sha256:
                return path
        return None


def predictions_sha256(entry: ResultEntry) -> str | None:
    """The hash of the predictions a result was scored on (a predictions submission's own hash)."""
    submission = entry.data["submission"]
    return submission.get("predictions_sha256") or (
        submission["sha256"] if submission["kind"] == "predictions" else None)


# --------------------------------------------------------------------------------------------
# Checks that need no data


def pinned_fingerprint(dataset: str, revision: str, split: str, config: str | None) -> str | None:
    """The content fingerprint the catalog pins for ``split`` of ``dataset`` at ``revision``, if it pins one."""
    from fetal_bench.data.catalog import CATALOG
    from fetal_bench.evaluation.scored_split import scored_fingerprint

    info = CATALOG.get(dataset)
    pin = info.pin(revision) if info is not None else None
    if pin is None or (config or "default") != pin.config:
        return None
    parts = [part.strip() for part in split.split("+") if part.strip()]
    if not parts or any(part not in pin.splits for part in parts):
        return None
    return scored_fingerprint({part: pin.splits[part] for part in parts})


def static_verdict(entry: ResultEntry):
    """The task definition a result is checked against, or the verdict that stops it first."""
    from fetal_bench.tasks.registry import get_task

    data = entry.data
    try:
        task = get_task(entry.task, data["task_version"])
    except FetalBenchError as error:
        return Verdict("unverified", f"not verifiable here: {error.problem}")
    dataset = data["dataset"]
    if entry.main_score != task.main_score:
        return Verdict("refused", f"ranks by {entry.main_score!r}, but {task.name} version {task.version} ranks by "
                                  f"{task.main_score!r}")
    if (dataset["name"], dataset.get("config")) != (task.dataset.name, task.dataset.config):
        return Verdict("refused", f"names dataset {dataset['name']!r} (config {dataset.get('config')!r}); "
                                  f"{task.name} is scored on {task.dataset.name!r} (config {task.dataset.config!r})")
    expected = pinned_fingerprint(dataset["name"], dataset["revision"], dataset["split"], dataset.get("config"))
    if expected is not None and dataset["fingerprint"] != expected:
        shown = str(dataset["fingerprint"])[:12]
        return Verdict("refused", f"claims {dataset['name']} {dataset['revision']} [{dataset['split']}], whose pinned "
                                  f"content fingerprint is {expected[:12]}…, but records {shown}…: it was not scored "
                                  f"on that revision")
    return task


# --------------------------------------------------------------------------------------------
# Scoring again


def _first_difference(stored: Any, again: Any, path: str = "") -> str | None:
    """Where two score blocks differ beyond float noise (``path: stored vs re-scored``), or None."""
    if isinstance(stored, dict) and isinstance(again, dict):
        for key in sorted(set(stored) | set(again)):
            where = f"{path}/{key}" if path else key
            if key not in again:
                return f"{where}: the file reports it, scoring again does not produce it"
            if key not in stored:
                continue  # a block this fetal-bench adds that an older file lacks is not a contradiction
            found = _first_difference(stored[key], again[key], where)
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(again, list):
        if len(stored) != len(again):
            return f"{path}: {len(stored)} items stored, {len(again)} scored again"
        for index, (a, b) in enumerate(zip(stored, again)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(again, numbers) and not isinstance(stored, bool) \
            and not isinstance(again, bool):
        if math.isclose(float(stored), float(again), rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE):
            return None
        return f"{path}: stored {float(stored):.10g}, scored again {float(again):.10g}"
    if stored != again:
        return f"{path}: stored {str(stored)[:40]!r}, scored again {str(again)[:40]!r}"
    return None


class Verifier:
    """Verifies result files against their predictions and the tasks' data; one per build.

    ``predictions``: folders (searched recursively) or files holding predictions. ``data``:
    dataset name -> a local build or a Hub id, used instead of the catalog's default source
    (the phantom set is built in-process; published sets come from the Hub cache or the Hub).
    """

    def __init__(self, predictions: Sequence[str | os.PathLike] = (), data: Mapping[str, str | os.PathLike] | None = None):
        from fetal_bench.evaluation.rescore import TruthCache

        files = [Path(p) for p in predictions if Path(p).is_file() and not Path(p).is_symlink()]
        self.extra_files = files
        self.index = PredictionsIndex([p for p in predictions if Path(p).is_dir()])
        self.data = dict(data or {})
        self.cache = TruthCache()
        self._data_errors: dict[tuple, str] = {}

    def expected_fingerprint(self, task_name: str) -> str | None:
        """The content fingerprint the task's main ranking must be on: the catalog's pin of the
        task's revision; for a simulated set built in-process (the phantom), that build's."""
        from fetal_bench.data.catalog import CATALOG
        from fetal_bench.tasks.registry import get_task

        task = get_task(task_name)
        pinned = pinned_fingerprint(task.dataset.name, task.dataset.revision, task.eval_split, task.dataset.config)
        info = CATALOG.get(task.dataset.name)
        if pinned is not None or info is None or not info.simulated or info.hub_id is not None:
            return pinned
        # A simulated set is generated, not downloaded: its revision names the generator, and any
        # build of it (the one given, else one made in-process) has that revision's content.
        try:
            return self.cache.get(task, task.eval_split, self.data.get(task.dataset.name))[0].fingerprint
        except FetalBenchError:
            return None

    def _find(self, sha256: str, hint: str | None) -> Path | None:
        from fetal_bench.evaluation.submissions import submission_sha256

        for path in self.extra_files:
            if submission_sha256(path) == sha256:
                return path
        return self.index.find(sha256, hint)

    def verify(self, entry: ResultEntry) -> Verdict:
        from fetal_bench.evaluation.rescore import SCORE_BLOCKS, score_again
        from fetal_bench.evaluation.submissions import SubmissionError

        checked = static_verdict(entry)
        if isinstance(checked, Verdict):
            return checked
        task = checked
        sha256 = predictions_sha256(entry)
        if sha256 is None:
            return Verdict("unverified", "names no predictions (submission.predictions_sha256), so nothing can score "
                                         "it again; evaluate a model with --save-predictions")
        path = self._find(sha256, entry.data["submission"].get("predictions_file"))
        if path is None:
            return Verdict("unverified", f"its predictions (sha256 {sha256[:12]}…) are not in the predictions "
                                         "folders given (--predictions)")
        dataset = entry.data["dataset"]
        key = (task.name, task.version, dataset["split"], dataset["name"])
        if key in self._data_errors:
            return Verdict("unverified", self._data_errors[key], path)
        source = self.data.get(dataset["name"])
        try:
            again = score_again(entry.data, path, data=source, cache=self.cache)
        except SubmissionError as error:
            return Verdict("refused", f"its predictions {path.name} do not score: {error.problem}", path)
        except FetalBenchError as error:
            name = dataset["name"]
            self._data_errors[key] = (f"{name} {dataset['revision']} is not available here to score it on "
                                      f"({error.problem.rstrip('.')}); build it with `fetal-bench datasets build "
                                      f"{name}` and pass --data {name}=DIR")
            return Verdict("unverified", self._data_errors[key], path)
        if (again.dataset["revision"], again.dataset["fingerprint"]) != (dataset["revision"], dataset["fingerprint"]):
            return Verdict("unverified", f"it was scored on {dataset['name']} {dataset['revision']} (fingerprint "
                                         f"{str(dataset['fingerprint'])[:12]}…), but the data here is "
                                         f"{again.dataset['revision']} ({str(again.dataset['fingerprint'])[:12]}…); "
                                         f"pass --data {dataset['name']}=DIR with that build", path)
        stored = {k: entry.data[k] for k in SCORE_BLOCKS if k in entry.data}
        stored.update(n_samples=entry.data["n_samples"], n_subjects=entry.data["n_subjects"])
        recomputed = {**again.body, "n_samples": again.n_samples, "n_subjects": again.n_subjects}
        difference = _first_difference(stored, recomputed)
        if difference:
            return Verdict("refused", f"its scores are not what its predictions ({path.name}) score: {difference}", path)
        statistic = again.statistic(task.main_score)
        return Verdict("verified", "", path, statistic, np.asarray(again.subjects),
                       (task.name, task.version, again.dataset["split"], again.dataset["fingerprint"]),
                       _extras(again))


def _extras(again) -> dict[str, Any]:
    """What a result's own page shows beyond the file: per-image HC errors where the task measures HC."""
    signed = again.per_image.get("hc_diff_mm")
    reference = getattr(again.truth, "head_circumference_mm", None)
    if signed is None or reference is None:
        return {}
    return {"hc_diff_mm": np.asarray(signed, dtype=np.float64),
            "hc_reference_mm": np.asarray(reference, dtype=np.float64)}


def verify_all(entries: Sequence[ResultEntry], verifier: Verifier | None):
    """Each entry's verdict (``None`` verifier: every result unverified, e.g. ``--no-verify``),
    and the refused ones as invalid results (with the reason) for the site's list."""
    from fetal_bench.leaderboard.loading import InvalidResult

    verdicts: dict[str, Verdict] = {}
    refused: list[InvalidResult] = []
    for entry in entries:
        if verifier is None:
            checked = static_verdict(entry)  # what needs no data is checked even so
            verdict = checked if isinstance(checked, Verdict) else Verdict(
                "unverified", "not scored again: the build ran without verification")
        else:
            verdict = verifier.verify(entry)
        verdicts[entry.path] = verdict
        if verdict.status == "refused":
            refused.append(InvalidResult(entry.path, f"refused: {verdict.reason}.", entry.task))
    return verdicts, refused


# --------------------------------------------------------------------------------------------
# Ranks that respect uncertainty


def _competition_ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Standard competition ranks (1, 2, 2, 4) of each column's values; NaN ranks last."""
    oriented = np.where(np.isnan(values), -np.inf, values if higher_is_better else -values)
    # rank = 1 + number of strictly better entries in the same resample
    return 1 + (oriented[None, :, :] > oriented[:, None, :]).sum(axis=1)


def compare_with_leader(verdicts: Sequence[Verdict], higher_is_better: bool) -> list[Comparison] | None:
    """Rank intervals and differences from the first result (the leader), on paired resamples.

    ``verdicts``: verified results of one ranking, leader first, all scored on the same rows
    (``truth_key``). None when they were not (the comparison would not be paired).
    """
    from fetal_bench.metrics.bootstrap import bootstrap_replicates, interval_from_replicates

    if not verdicts or len({v.truth_key for v in verdicts}) != 1 or any(v.statistic is None for v in verdicts):
        return None
    subjects = verdicts[0].subjects
    replicates = bootstrap_replicates([v.statistic for v in verdicts], len(subjects), clusters=subjects,
                                      n_resamples=PAIRED_RESAMPLES, seed=PAIRED_SEED)
    usable = ~np.isnan(replicates).any(axis=0)  # paired: a resample counts for all or for none
    replicates = replicates[:, usable]
    if replicates.shape[1] < 0.9 * PAIRED_RESAMPLES:
        return None
    ranks = _competition_ranks(replicates, higher_is_better)
    everything = np.arange(len(subjects))
    points = [float(v.statistic(everything)) for v in verdicts]
    tail = (1 - CONFIDENCE) / 2
    comparisons = []
    for index, ranks_of in enumerate(ranks):
        low, high = np.quantile(ranks_of, [tail, 1 - tail], method="inverted_cdf")
        if index == 0:
            comparisons.append(Comparison(int(low), int(high), None, None, True))  # the leader itself
            continue
        sign = 1.0 if higher_is_better else -1.0
        diff = sign * (replicates[0] - replicates[index])
        estimate = sign * (points[0] - points[index])
        lo, hi = interval_from_replicates(diff, CONFIDENCE)
        comparisons.append(Comparison(int(low), int(high), estimate, (lo, hi), lo <= 0.0))
    return comparisons


__all__ = ["CONFIDENCE", "Comparison", "METHOD_NAME", "PAIRED_RESAMPLES", "PredictionsIndex", "Verdict", "Verifier",
           "compare_with_leader", "pinned_fingerprint", "predictions_sha256", "static_verdict", "verify_all"]
