"""Group results into comparable sets and rank each set, with the uncertainty of each rank.

Only verified results are ranked (:mod:`.verify`: scored again from their predictions); the
others are listed apart, each with its reason. Two verified results are comparable only when
they scored the same thing: the same task version, on the same dataset (name, config, split) at
the same revision with the same content fingerprint, ranked by the same main score. Each task
gets one *main* ranking: its current version and pinned revision, on the content fingerprint
the catalog pins for that revision (never a vote among the files). Every other combination is a
separate, flagged *variant* table that says how it differs.

Ranks are standard competition ranks on the main score (1, 2, 2, 4): equal scores share a rank
and the next rank skips. Beside each rank, the rank's 95% interval over paired resamples and
whether the result is distinguishable from #1 (:func:`.verify.compare_with_leader`). Direction
comes from the task registry.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping, Sequence

from fetal_bench.errors import FetalBenchError
from fetal_bench.leaderboard.formatting import metric_label
from fetal_bench.leaderboard.loading import ResultEntry
from fetal_bench.leaderboard.verify import METHOD_NAME, Comparison, Verdict, compare_with_leader
from fetal_bench.tasks.base import LOWER_IS_BETTER
from fetal_bench.tasks.registry import get_task, list_tasks


@dataclass(frozen=True)
class TaskInfo:
    """What the site shows about a task: from the registry, or inferred from its result files."""

    name: str
    known: bool  # False: not in this fetal-bench's registry; everything below comes from the files
    version: str | None
    type: str | None
    description: str
    main_score: str
    higher_is_better: bool
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    dataset: str | None
    revision: str | None
    config: str | None
    eval_split: str | None
    reference: str = ""
    train_data: str = ""


@dataclass(frozen=True)
class Comparability:
    """The fields that must match for two results to share a ranking."""

    task_version: str
    dataset: str
    config: str | None
    split: str
    revision: str
    fingerprint: str | None
    main_score: str

    @classmethod
    def of(cls, entry: ResultEntry) -> "Comparability":
        data = entry.data
        dataset = data["dataset"]
        return cls(data["task_version"], dataset["name"], dataset.get("config"), dataset["split"],
                   dataset["revision"], dataset["fingerprint"], data["scores"]["main_score"])

    def sort_key(self) -> tuple:
        return tuple("" if v is None else str(v) for v in (self.task_version, self.dataset, self.config,
                                                            self.split, self.revision, self.fingerprint,
                                                            self.main_score))


@dataclass(frozen=True)
class RankedRow:
    entry: ResultEntry
    rank: int | None  # None: not ranked (main score null, or the result is unverified)
    value: float | None
    # Against the leader on paired resamples (verified rankings only; see verify.compare_with_leader).
    comparison: Comparison | None = None
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Board:
    """One table of mutually comparable results, ranked."""

    key: Comparability
    metric: str
    higher_is_better: bool
    rows: tuple[RankedRow, ...]
    flagged: bool
    reasons: tuple[str, ...]  # why a flagged board is not the main ranking
    label: str = ""  # a flagged board's name: what sets it apart, e.g. "revision v0.9"
    uncertainty: str = ""  # how rank intervals and "not distinguishable from #1" were computed, where they were


@dataclass(frozen=True)
class TaskBoards:
    task: TaskInfo
    main: Board | None
    variants: tuple[Board, ...]
    # Results that could not be scored again here: shown apart, never ranked, each with its reason.
    unverified: tuple[RankedRow, ...] = ()

    @property
    def entries(self) -> list[ResultEntry]:
        boards = ([self.main] if self.main else []) + list(self.variants)
        return [row.entry for board in boards for row in board.rows] + [row.entry for row in self.unverified]


def _most_common(values: Iterable, default=None):
    counts = collections.Counter(values)
    if not counts:
        return default
    # Ties broken on the value's text so the choice never depends on input order.
    return sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))[0][0]


def metric_higher_is_better(metric: str, entries: Sequence[ResultEntry] = ()) -> bool:
    """Direction of ``metric`` where no registry says: the files' own flag, else the known metric list."""
    flags = [e.data["higher_is_better"] for e in entries
             if "higher_is_better" in e.data and e.main_score == metric]
    if flags:
        return bool(_most_common(flags))
    return metric not in LOWER_IS_BETTER


def task_info(name: str, entries: Sequence[ResultEntry] = ()) -> TaskInfo:
    """The registry's metadata for task ``name``, or what its result files say."""
    try:
        task = get_task(name)
    except FetalBenchError:  # a task this fetal-bench does not know: fall back to its files
        task = None
    if task is not None:
        return TaskInfo(
            name=task.name, known=True, version=task.version, type=task.type, description=task.description,
            main_score=task.main_score, higher_is_better=task.higher_is_better, metrics=tuple(task.metrics),
            group_by=tuple(task.group_by), dataset=task.dataset.name, revision=task.dataset.revision,
            config=task.dataset.config, eval_split=task.eval_split, reference=task.reference,
            train_data=task.train_data)
    main_score = _most_common((e.main_score for e in entries), default="main_score")
    datasets = [e.data["dataset"] for e in entries]
    return TaskInfo(
        name=name, known=False,
        version=_most_common(e.data["task_version"] for e in entries),
        type=_most_common(e.data["task_type"] for e in entries if "task_type" in e.data),
        description="",
        main_score=main_score,
        higher_is_better=metric_higher_is_better(main_score, entries),
        metrics=tuple(sorted({k for e in entries for k in e.data["scores"] if k != "main_score"})),
        group_by=tuple(sorted({k for e in entries for k in e.data["groups"]})),
        dataset=_most_common(d["name"] for d in datasets),
        revision=_most_common(d["revision"] for d in datasets),
        config=_most_common(d.get("config") for d in datasets if d.get("config") is not None),
        eval_split=_most_common(d["split"] for d in datasets))


def score_value(entry: ResultEntry, metric: str) -> float | None:
    score = entry.data["scores"].get(metric)
    return score.get("value") if isinstance(score, dict) else None


def rank_entries(entries: Sequence[ResultEntry], metric: str, higher_is_better: bool) -> tuple[RankedRow, ...]:
    """Standard competition ranking on ``metric``: ties share a rank, null scores come last unranked.

    Ties are exact: two scores share a rank only when the files hold the same number. Rounding
    first would make the rank depend on how many digits the site shows.
    """
    def order(entry: ResultEntry) -> tuple:
        value = score_value(entry, metric)
        best_first = 0.0 if value is None else (-value if higher_is_better else value)
        # Within a tie the order is alphabetical, then by file, so the output is deterministic.
        return (value is None, best_first, entry.name.casefold(), entry.name, entry.path)

    rows: list[RankedRow] = []
    previous: float | None = None
    rank = 0
    for position, entry in enumerate(sorted(entries, key=order), start=1):
        value = score_value(entry, metric)
        if value is None:
            rows.append(RankedRow(entry, None, None))
            continue
        if previous is None or value != previous:
            rank = position
        previous = value
        rows.append(RankedRow(entry, rank, value))
    return tuple(rows)


def _short(value: str | None) -> str:
    if value is None:
        return "none"
    return value[:12] + "…" if len(value) > 16 else value


def _field_text(field_name: str, value: str | None) -> str:
    # A metric reads by its display name everywhere on the site ("Macro F1", never "macro_f1").
    return metric_label(value) if field_name == "main_score" and value else _short(value)


_FIELD_LABELS = {
    "task_version": "task version", "dataset": "dataset", "config": "dataset config", "split": "split",
    "revision": "dataset revision", "fingerprint": "dataset fingerprint", "main_score": "main score",
}


def _label_parts(key: Comparability, reference: Comparability | None, task: TaskInfo) -> list[str]:
    """What sets ``key`` apart, shortest first: the name of its table."""
    parts: list[str] = []
    pinned_version = task.version if task.known else (reference.task_version if reference else None)
    if pinned_version is not None and key.task_version != pinned_version:
        parts.append(f"task version {key.task_version}")
    pinned_revision = task.revision if task.known else (reference.revision if reference else None)
    if key.revision == "local":
        # A local build is identified by its content, so its fingerprint is its name.
        parts.append(f"dataset fingerprint {_short(key.fingerprint)} (local build)")
    elif pinned_revision is not None and key.revision != pinned_revision:
        parts.append(f"revision {key.revision}")
    if reference is not None:
        for name, label in (("dataset", "dataset"), ("config", "config"), ("split", "split"),
                            ("main_score", "ranked by")):
            if getattr(key, name) != getattr(reference, name):
                parts.append(f"{label} {_field_text(name, getattr(key, name))}")
        if key.fingerprint != reference.fingerprint and key.revision == reference.revision != "local":
            parts.append(f"dataset fingerprint {_short(key.fingerprint)}")
    return parts


def variant_labels(keys: Sequence[Comparability], reference: Comparability | None, task: TaskInfo) -> list[str]:
    """A distinct name per flagged table, from what differs; where two would read the same, every
    field that tells them apart is added (fingerprint, split, ...), so no two tables share a title."""
    labels = [", ".join(_label_parts(k, reference, task)) or "not the main ranking" for k in keys]
    for field_name, label in (("fingerprint", "dataset fingerprint"), ("split", "split"), ("config", "config"),
                              ("dataset", "dataset"), ("main_score", "ranked by"), ("task_version", "task version")):
        clashing: dict[str, list[int]] = collections.defaultdict(list)
        for i, text in enumerate(labels):
            clashing[text].append(i)
        for indices in clashing.values():
            # Only a field whose values differ within the clash tells the tables apart.
            if len(indices) < 2 or len({getattr(keys[i], field_name) for i in indices}) < 2:
                continue
            for i in indices:
                value_text = f"{label} {_field_text(field_name, getattr(keys[i], field_name))}"
                if value_text not in labels[i]:
                    labels[i] = f"{labels[i]}, {value_text}"
    return labels


def _differences(key: Comparability, reference: Comparability | None, task: TaskInfo) -> list[str]:
    """Human-readable reasons why ``key`` is not the main ranking."""
    reasons: list[str] = []
    covered: set[str] = set()  # fields already explained against the registry
    if task.known:
        if key.task_version != task.version:
            reasons.append(f"task version {key.task_version} (current: {task.version})")
            covered.add("task_version")
        if key.revision != task.revision:
            reasons.append(f"dataset revision {key.revision} (pinned: {task.revision})")
            covered.add("revision")
        if key.main_score != task.main_score:
            reasons.append(f"ranked by {metric_label(key.main_score)} (task: {metric_label(task.main_score)})")
            covered.add("main_score")
    if reference is not None:
        for field_name, label in _FIELD_LABELS.items():
            mine, theirs = getattr(key, field_name), getattr(reference, field_name)
            if field_name not in covered and mine != theirs:
                reasons.append(f"{label} {_field_text(field_name, mine)} "
                               f"(main ranking: {_field_text(field_name, theirs)})")
    elif key.revision == "local":
        reasons.append(f"dataset fingerprint {_short(key.fingerprint)}, a local build whose content matches "
                       "no published revision")
    if not reasons:
        reasons.append("no result matches the current task version and pinned dataset revision")
    return reasons


def _with_comparisons(rows: tuple[RankedRow, ...], verdicts: Mapping[str, Verdict],
                      higher_is_better: bool) -> tuple[tuple[RankedRow, ...], str]:
    """``rows`` with each ranked row's comparison against the leader, and the method's name."""
    ranked = [row for row in rows if row.rank is not None]
    comparisons = compare_with_leader([verdicts[row.entry.path] for row in ranked], higher_is_better)
    if comparisons is None:
        return rows, ""
    by_path = {row.entry.path: replace(row, comparison=c) for row, c in zip(ranked, comparisons)}
    return tuple(by_path.get(row.entry.path, row) for row in rows), METHOD_NAME


def build_task_boards(task: TaskInfo, entries: Sequence[ResultEntry],
                      verdicts: Mapping[str, Verdict] | None = None,
                      expected_fingerprint: str | None = None) -> TaskBoards:
    """Split one task's results into the main ranking, flagged variants and the unverified.

    ``verdicts`` (result path -> :class:`Verdict`): only verified results are ranked; without
    verdicts every result counts as unverified. The main ranking holds the verified results on
    the task's current version, pinned revision and main score whose dataset fingerprint is
    ``expected_fingerprint``: the catalog's pin, never a majority of the files.
    """
    verdicts = verdicts or {}
    verified = [e for e in entries if verdicts.get(e.path) is not None and verdicts[e.path].status == "verified"]
    unverified = tuple(RankedRow(e, None, score_value(e, e.main_score), verdict=verdicts.get(e.path))
                       for e in sorted(entries, key=lambda e: (e.name.casefold(), e.path)) if e not in verified)
    by_key: dict[Comparability, list[ResultEntry]] = collections.defaultdict(list)
    for entry in verified:
        by_key[Comparability.of(entry)].append(entry)

    main_key = None
    if task.known and expected_fingerprint is not None:
        main_key = next((k for k in by_key if k.task_version == task.version and k.revision == task.revision
                         and k.main_score == task.main_score and k.fingerprint == expected_fingerprint), None)

    def direction(key: Comparability) -> bool:
        if task.known and key.main_score == task.main_score:
            return task.higher_is_better
        return metric_higher_is_better(key.main_score, by_key[key])

    def board(key: Comparability, **flags) -> Board:
        hib = direction(key)
        rows = tuple(replace(r, verdict=verdicts.get(r.entry.path))
                     for r in rank_entries(by_key[key], key.main_score, hib))
        rows, method = _with_comparisons(rows, verdicts, hib)
        return Board(key, key.main_score, hib, rows, uncertainty=method, **flags)

    main = board(main_key, flagged=False, reasons=()) if main_key is not None else None
    variant_keys = sorted((k for k in by_key if k != main_key), key=lambda k: (-len(by_key[k]), k.sort_key()))
    variants = tuple(board(key, flagged=True, reasons=tuple(_differences(key, main_key, task)), label=label)
                     for key, label in zip(variant_keys, variant_labels(variant_keys, main_key, task)))
    return TaskBoards(task, main, variants, unverified)


def build_boards(entries: Sequence[ResultEntry], verdicts: Mapping[str, Verdict] | None = None, *,
                 include_registry: bool = True,
                 expected_fingerprint: Callable[[TaskInfo], str | None] = lambda task: None) -> list[TaskBoards]:
    """Every task's boards, in a fixed order: registry tasks first (registry order), then others by name.

    ``verdicts`` and ``expected_fingerprint`` (task -> the fingerprint its main ranking must be
    on): see :func:`build_task_boards`. With ``include_registry`` a registry task without any
    result still gets an (empty) entry, so the site lists the whole benchmark.
    """
    by_task: dict[str, list[ResultEntry]] = collections.defaultdict(list)
    for entry in entries:
        by_task[entry.task].append(entry)
    names: list[str] = [t.name for t in list_tasks()] if include_registry else []
    names += sorted(n for n in by_task if n not in names)
    boards = []
    for name in names:
        info = task_info(name, by_task.get(name, []))
        boards.append(build_task_boards(info, by_task.get(name, []), verdicts,
                                        expected_fingerprint(info) if info.known else None))
    return boards


__all__ = ["Board", "Comparability", "RankedRow", "TaskBoards", "TaskInfo", "build_boards",
           "build_task_boards", "metric_higher_is_better", "rank_entries", "score_value", "task_info",
           "variant_labels"]
