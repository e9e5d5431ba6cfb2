"""The cells and columns of a ranking table: what each column shows, how it sorts, which collapse.

A row is one :class:`~fetal_bench.leaderboard.ranking.RankedRow`; its values come from
:mod:`.scores` and are formatted by :mod:`.formatting`. Every string from a result file (names,
descriptions, commands, links) is escaped by :func:`~fetal_bench.leaderboard.html.el`, and only
http(s) links become links.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from fetal_bench.leaderboard.formatting import fmt_ci, fmt_date, fmt_share, fmt_value, metric_label, short_hash
from fetal_bench.leaderboard.html import Markup, el, join, safe_external_url
from fetal_bench.leaderboard.loading import ResultEntry
from fetal_bench.leaderboard.local_paths import redact_text
from fetal_bench.leaderboard.page import Column, Page
from fetal_bench.leaderboard.ranking import Board, RankedRow
from fetal_bench.leaderboard.scores import (
    TRAINING_KINDS, entry_score, group_columns, group_score, is_zero_shot, number, training_kind, worst_and_gap,
)
from fetal_bench.tasks.base import LOWER_IS_BETTER, SIGNED_METRICS

# A grouping with more values than this (e.g. dozens of operators) gets only its worst-group and
# gap columns in the table, which would otherwise become unreadable; its charts show every value.
MAX_GROUP_VALUE_COLUMNS = 8
# Secondary metrics shown before the rest collapse behind "more columns" (all are in the downloads):
# a ranking table must fit a 1,400 px screen without scrolling sideways.
VISIBLE_SECONDARY_METRICS = 3
SCORE_COLUMN_BUDGET = 10  # secondary-metric plus per-group columns that fit beside the rest at 1,400 px


def score_cell(score: dict | None, metric: str, *, with_ci: bool, extra_class: str = "") -> Markup:
    """A score's ``<td>``: the value, and its interval beside it (``with_ci``) or in the tooltip."""
    if score is None:
        return el("td", "—", class_=("num muted " + extra_class).strip(), title="not reported")
    value = fmt_value(score.get("value"), metric)
    ci = fmt_ci(score.get("ci95"), metric)
    tooltip = score.get("reason") if score.get("value") is None else (f"95% CI {ci}" if ci else None)
    parts: list[Markup | str] = [el("span", value, class_="v")]
    if with_ci and ci and score.get("value") is not None:
        parts += [" ", el("span", ci, class_="ci")]
    return el("td", parts, class_=("num " + extra_class).strip(), title=None if with_ci else tooltip)


def training_badge(submission: dict) -> Markup:
    """The training-data badge (real, synthetic, hybrid, none); a dash for anything else."""
    kind = submission.get("training_data")
    if kind not in TRAINING_KINDS:
        return el("span", "—", class_="muted")
    return el("span", kind, class_=f"badge td td-{kind}")


def row_filter_attrs(entry: ResultEntry) -> dict[str, str]:
    """What the page's training-data and zero-shot filters read."""
    return {"training": training_kind(entry), "zero_shot": "yes" if is_zero_shot(entry) else "no"}


def board_columns(page: Page, board: Board, info_metrics: Sequence[str], group_order: Sequence[str]) -> list[Column]:
    """Rank, submission, main score, secondary metrics, per-group scores, then provenance columns."""
    metric, hib = board.metric, board.higher_is_better
    entries = [r.entry for r in board.rows]
    present = {k for e in entries for k in e.data["scores"] if k != "main_score"}
    secondary = [m for m in info_metrics if m in present and m != metric]
    secondary += sorted(m for m in present if m not in secondary and m != metric)

    def best_first(m: str) -> str:
        if m != metric and m in SIGNED_METRICS:
            return "asc"  # sorted by distance from 0 (see _metric_column)
        higher = hib if m == metric else m not in LOWER_IS_BETTER
        return "desc" if higher else "asc"

    columns: list[Column] = [
        Column("#", lambda r: el("td", "—" if r.rank is None else str(r.rank), class_="num rank",
                                 title="not ranked: main score not computable" if r.rank is None else None),
               lambda r: r.rank, "asc", numeric=True, title="Rank (ties share a rank)", key="rank"),
        Column("Submission", lambda r: _submission_cell(page, r), lambda r: r.entry.name.casefold()),
        Column([metric_label(metric), el("span", " [95% CI]", class_="th-note")],
               lambda r: score_cell(entry_score(r.entry, metric), metric, with_ci=True, extra_class="main"),
               lambda r: r.value, best_first(metric), numeric=True,
               title=f"Main score: {'higher' if hib else 'lower'} is better", key=metric),
    ]
    if board.uncertainty:
        columns += uncertainty_columns(board)
    groups = group_columns(board.rows, group_order)
    # Score columns share a width budget: with no per-group columns every metric fits.
    n_group_columns = sum(len(v) + 2 if len(v) <= MAX_GROUP_VALUE_COLUMNS else 2 for _, v in groups[:1]) + \
        2 * len(groups[1:])
    n_uncertainty_columns = 2 if board.uncertainty else 0  # the rank range and "vs #1" take a share too
    visible = max(VISIBLE_SECONDARY_METRICS, SCORE_COLUMN_BUDGET - n_group_columns - n_uncertainty_columns)
    columns += [_metric_column(m, best_first(m), optional=i >= visible) for i, m in enumerate(secondary)]
    for i, (column, values) in enumerate(groups):
        # The first grouping's values stay visible; further groupings keep only worst and gap.
        columns += _group_score_columns(column, values, metric, hib, optional_values=i > 0)
    columns += _other_columns(page, entries)
    return columns


def _rank_range(row: RankedRow) -> str | None:
    c = row.comparison
    if c is None:
        return None
    return str(c.rank_low) if c.rank_low == c.rank_high else f"{c.rank_low}–{c.rank_high}"


def versus_leader_text(row: RankedRow, metric: str) -> str:
    """How a ranked row compares with #1 on paired resamples, in words."""
    c = row.comparison
    if c is None:
        return "—"
    if c.difference is None:
        return "#1"
    ci = fmt_ci(list(c.ci95), metric) if c.ci95 else ""
    if c.difference == 0.0:  # the same score: it shares rank 1
        return f"tied with #1 {ci}".strip()
    verdict = "not distinguishable from #1" if c.indistinguishable else "behind #1"
    return f"{verdict}: −{fmt_value(c.difference, metric)} {ci}".strip()


def uncertainty_columns(board: Board) -> list[Column]:
    """The rank's 95% range over paired resamples, and the comparison with #1 (see verify.py)."""

    def range_cell(r: RankedRow) -> Markup:
        return el("td", _rank_range(r) or "—", class_="num rank-range")

    def versus_cell(r: RankedRow) -> Markup:
        c = r.comparison
        tied = c is not None and c.indistinguishable
        return el("td", versus_leader_text(r, board.metric), class_="versus tied" if tied else "versus")

    return [
        Column("95% rank range", range_cell, lambda r: r.comparison.rank_high if r.comparison else None, "asc",
               numeric=True, title="The ranks this result takes in 95% of the paired bootstrap resamples",
               key="rank-range"),
        Column(["vs #1", el("span", " (paired)", class_="th-note")], versus_cell,
               lambda r: r.comparison.difference if r.comparison else None, "asc", numeric=True,
               title="The leader's main score minus this result's, with the 95% interval of the difference over "
                     "paired resamples; not distinguishable when the interval holds 0", key="versus-first"),
    ]


def _metric_column(metric: str, first: str, *, optional: bool = False) -> Column:
    """A secondary metric: its value, the interval in the tooltip."""

    def cell(r: RankedRow) -> Markup:
        return score_cell(entry_score(r.entry, metric), metric, with_ci=False)

    signed = metric in SIGNED_METRICS

    def value(r: RankedRow) -> float | None:
        v = number((entry_score(r.entry, metric) or {}).get("value"))
        # A signed metric (a bias) is best at 0, whichever its sign: it sorts by distance from 0.
        return None if v is None else abs(v) if signed else v

    if signed:
        title = f"{metric_label(metric)}: signed, 0 is best (sorted by distance from 0; never ranked)"
    else:
        title = f"{metric_label(metric)}: {'lower' if metric in LOWER_IS_BETTER else 'higher'} is better"
    return Column(metric_label(metric), cell, value, first, numeric=True, title=title, optional=optional, key=metric)


def _group_score_columns(column: str, values: Sequence[str], metric: str, hib: bool, *,
                         optional_values: bool = False) -> list[Column]:
    """Per group value the main score (the row's worst group marked), then the worst group and the gap."""
    first = "desc" if hib else "asc"
    group_header = el("span", column, class_="th-group")

    def worst(r: RankedRow) -> str | None:
        return worst_and_gap(r.entry, column, metric, hib)[0]

    def gap(r: RankedRow) -> float | None:
        return worst_and_gap(r.entry, column, metric, hib)[1]

    def value_of(r: RankedRow, value: str) -> float | None:
        return number((group_score(r.entry, column, value, metric) or {}).get("value"))

    def cell(r: RankedRow, value: str) -> Markup:
        return score_cell(group_score(r.entry, column, value, metric), metric, with_ci=False,
                           extra_class="group worst" if worst(r) == value else "group")

    # The value never breaks at its hyphens ("site-" / "a"): only between the group's name and it.
    columns = [Column([group_header, el("span", value, class_="th-value")], functools.partial(cell, value=value),
                      functools.partial(value_of, value=value), first, numeric=True,
                      title=f"{metric_label(metric)} on {column} = {value}", optional=optional_values)
               for value in (values if len(values) <= MAX_GROUP_VALUE_COLUMNS else ())]
    columns.append(Column([group_header, "worst"], lambda r: el("td", worst(r) or "—", class_="worst-name"), worst,
                          title=f"The {column} with the worst {metric_label(metric)}"))
    columns.append(Column([group_header, "gap"], lambda r: el("td", fmt_value(gap(r), metric), class_="num"), gap,
                          "asc", numeric=True,
                          title=f"Best minus worst {column}, in {metric_label(metric)} units (smaller is fairer)"))
    return columns


def _other_columns(page: Page, entries: Sequence[ResultEntry]) -> list[Column]:
    """Training data (with the synthetic share), date, the result file; provenance columns collapse."""

    def submission(r: RankedRow) -> dict:
        return r.entry.data["submission"]

    def dataset(r: RankedRow) -> dict:
        return r.entry.data["dataset"]

    with_share = any(number(e.data["submission"].get("synthetic_share")) is not None for e in entries)

    def training_cell(r: RankedRow) -> Markup:
        share = number(submission(r).get("synthetic_share"))
        note = (el("div", f"{fmt_share(share)} synthetic", class_="td-share")
                if with_share and share is not None and submission(r).get("training_data") != "real" else None)
        return el("td", [training_badge(submission(r)), note], class_="training")

    def training_sort(r: RankedRow) -> Any:
        # By kind, then by share: "hybrid 25%" before "hybrid 50%".
        return f"{submission(r).get('training_data') or '~'} {number(submission(r).get('synthetic_share')) or 0:.4f}"

    return [
        Column("Training data", training_cell, training_sort,
               title="Training images: real, synthetic, hybrid (both; the synthetic share below) or none"),
        Column("Date", lambda r: el("td", fmt_date(r.entry.data["created_at"]), title=r.entry.data["created_at"],
                                    class_="date"),
               lambda r: r.entry.data["created_at"], "desc", optional=True),
        Column("Result", lambda r: el("td", el("a", "JSON", href=page.link(page.ctx.json_paths[r.entry.path]),
                                               class_="json-link", type="application/json",
                                               title=_reproduce_note(submission(r)))), None),
        Column("Dataset rev.", lambda r: el("td", el("code", dataset(r)["revision"]),
                                            title=f"fingerprint {dataset(r)['fingerprint'] or 'unknown'}"),
               lambda r: dataset(r)["revision"], optional=True),
        Column("fetal-bench", lambda r: el("td", el("code", r.entry.data["fetal_bench_version"])),
               lambda r: r.entry.data["fetal_bench_version"], optional=True),
    ]


def reproduce_command(submission: dict) -> str | None:
    """The command that made the result, local paths cut and length bounded; None if not given."""
    command = submission.get("command")
    return redact_text(command)[:2000] if isinstance(command, str) and command.strip() else None


def _reproduce_note(submission: dict) -> str:
    command = reproduce_command(submission)
    return f"The result file. Reproduce with: {command}" if command else "The result file"


def _submission_cell(page: Page, row: RankedRow) -> Markup:
    """Name on the first line; kind, model, predictions hash and links on a compact second line.

    The free-text description goes into the name's tooltip: it can be long, and the table has to
    stay readable with a dozen score columns beside it.
    """
    submission = row.entry.data["submission"]
    meta: list[Any] = [el("span", submission["kind"], class_="badge kind")]
    if submission.get("model"):
        meta.append(el("code", submission["model"], title="model"))
    meta.append(el("span", short_hash(submission["sha256"], 10), title=f"predictions sha256 {submission['sha256']}",
                   class_="hash"))
    meta += external_links(submission.get("paper_url"), submission.get("code_url"), submission.get("url"))
    page_link = page.ctx.result_pages.get(row.entry.path)
    name = el("a", submission["name"], href=page.link(page_link), class_="sub-name") if page_link else \
        el("span", submission["name"], class_="sub-name")
    return el("td", [el("div", name), el("div", join(meta, " "), class_="sub-meta")], class_="sub")


def external_links(paper: Any, code: Any, other: Any = None) -> list[Markup]:
    """Links to a paper, code and any other page: http(s) only (a javascript: URL never becomes a link)."""
    links = []
    for label, raw in (("paper", paper), ("code", code), ("link", other)):
        url = safe_external_url(raw)
        if url:
            links.append(el("a", f"{label} ↗", href=url, rel="nofollow noopener noreferrer",
                            class_=f"ext ext-{label}", title=url))
    return links


__all__ = ["board_columns", "external_links", "reproduce_command", "row_filter_attrs", "score_cell", "training_badge",
           "uncertainty_columns", "versus_leader_text"]
