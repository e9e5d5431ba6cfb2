"""Render the static leaderboard site and write it atomically.

Layout of a built site (every link relative, so it works from ``file://`` and any web server)::

    index.html                  overview: tasks, their leaders, counts, invalid files
    index.<table>.csv|json      each overview table as CSV and JSON
    tasks/<task>.html           one page per task: ranking, reference rows, charts, flagged variants
    tasks/<task>.<table>.csv|json   each of the page's tables as CSV and JSON
    synthetic/<name>.html       one page per synthetic dataset (with --synthetic)
    synthetic/<name>-samples.png
    results/<file>.json         each valid result file, byte for byte
    assets/style.css, assets/app.js

This module lays out the pages (ranking tables, charts, overview, synthetic datasets) and
writes the build. The page frame and the sortable-table machinery are in :mod:`.page`, the
values a row shows (scores, group scores, worst group and gap, training kind) in :mod:`.scores`,
number formatting in :mod:`.formatting`, and the SVG charts in :mod:`.charts`.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from fetal_bench import __version__
from fetal_bench._io import atomic_directory
from fetal_bench.errors import FetalBenchError
from fetal_bench.leaderboard import charts
from fetal_bench.leaderboard.columns import (
    board_columns, external_links, reproduce_command, row_filter_attrs, score_cell, training_badge,
    versus_leader_text,
)
from fetal_bench.leaderboard.downloads import TableExport, ordered_columns
from fetal_bench.leaderboard.formatting import fmt_score, fmt_share, fmt_value, metric_label, short_hash
from fetal_bench.leaderboard.html import Markup, el, join, safe_external_url
from fetal_bench.leaderboard.loading import InvalidResult, ResultEntry, load_results
from fetal_bench.leaderboard.local_paths import redact, redact_text
from fetal_bench.leaderboard.page import Column, Context, Page, frame, section, sortable_table, table_tools
from fetal_bench.leaderboard.ranking import Board, RankedRow, TaskBoards, build_boards
from fetal_bench.leaderboard.result_page import render_result_page
from fetal_bench.leaderboard.references import Reference, load_references
from fetal_bench.leaderboard.scores import (
    TRAINING_KINDS, entry_score, group_columns, group_score, is_zero_shot, number, training_kind, worst_and_gap,
)
from fetal_bench.leaderboard.synthetic import (
    SyntheticDataset, find_dataset_dirs, generator_name, load_synthetic_dataset, slug,
)
from fetal_bench.tasks.base import LOWER_IS_BETTER

# A site folder carries this file; --out is only ever replaced when it holds one (or is empty),
# so a mistyped --out can never wipe an unrelated folder.
MARKER = ".fetal-bench-leaderboard"
SUBMIT_URL = "https://github.com/fetal-bench/fetal-bench/blob/main/docs/submitting.md"


@dataclass(frozen=True)
class TaskSummary:
    name: str
    page: str
    ranked: int
    flagged: int
    invalid: int
    leaders: tuple[str, ...]
    unverified: int = 0
    # Ranked results not distinguishable from #1 on paired resamples (the leaders included).
    indistinguishable: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteSummary:
    """What :func:`build_site` wrote."""

    out_dir: Path
    index: Path
    files: tuple[str, ...]
    tasks: tuple[TaskSummary, ...]
    n_valid: int
    invalid: tuple[InvalidResult, ...]
    synthetic: tuple[str, ...]
    # Result file -> "ranked", "shown apart: <why>" or "refused: <why>", as `leaderboard check` prints.
    verdicts: tuple[tuple[str, str], ...] = ()

    @property
    def refused(self) -> tuple[InvalidResult, ...]:
        return tuple(item for item in self.invalid if item.reason.startswith("refused:"))


# --------------------------------------------------------------------------------------------
# Task pages


def _task_page_path(name: str, used: dict[str, str]) -> str:
    base = slug(name)
    candidate = f"tasks/{base}.html"
    n = 2
    while candidate in used.values():  # two task names that clean to the same file name
        candidate = f"tasks/{base}-{n}.html"
        n += 1
    used[name] = candidate
    return candidate


def _task_meta(boards: TaskBoards) -> Markup:
    info = boards.task
    items: list[tuple[str, Any]] = []
    if info.type:
        items.append(("Type", info.type))
    if info.dataset:
        dataset = info.dataset + (f" ({info.config})" if info.config else "")
        items.append(("Dataset", [dataset, " @ ", el("code", info.revision or "?"), ", split ",
                                  el("code", info.eval_split or "?")]))
    if info.version:
        items.append(("Task version", el("code", info.version)))
    items.append(("Main score", [metric_label(info.main_score), " (",
                                 "higher is better" if info.higher_is_better else "lower is better", ")"]))
    if info.train_data:
        items.append(("Training allowed", info.train_data))
    if info.reference:
        items.append(("Reference", info.reference))
    return el("dl", [join([el("dt", k), el("dd", v)]) for k, v in items], class_="meta")


def _forest(board: Board) -> Markup | None:
    items = []
    for row in board.rows:
        if row.value is None:
            continue
        score = entry_score(row.entry, board.metric) or {}
        ci = score.get("ci95") or [None, None]
        items.append(charts.Interval(f"{row.rank}. {row.entry.name}",
                                     f"{row.entry.name}: {fmt_score(score, board.metric)}",
                                     row.value, number(ci[0]), number(ci[1])))
    if not items:
        return None
    title = f"{metric_label(board.metric)} with 95% confidence interval, in rank order"
    return el("figure", charts.forest_plot(items, board.metric, board.higher_is_better, title=title),
              el("figcaption", title + ". Intervals are bootstrap resamples over patients/subjects."),
              class_="chart-figure")


def _group_charts(board: Board, group_order: Sequence[str]) -> list[Markup]:
    figures = []
    for column, values in group_columns(board.rows, group_order):
        cards = []
        for row in board.rows:
            block = row.entry.data["groups"].get(column)
            if row.rank is None or not block:
                continue
            worst, gap = worst_and_gap(row.entry, column, board.metric, board.higher_is_better)
            bars = []
            for value in values:
                entry = block["values"].get(value)
                score = group_score(row.entry, column, value, board.metric) or {}
                ci = score.get("ci95") or [None, None]
                bars.append(charts.Bar(value, number(score.get("value")), number(ci[0]), number(ci[1]),
                                       worst == value, entry["n_samples"] if entry else None))
            heading = f"{row.rank}. {row.entry.name}"
            title = f"{metric_label(board.metric)} per {column} for {row.entry.name}"
            note = f"worst: {worst}, gap {fmt_value(gap, board.metric)}" if worst else ""
            cards.append(el("div", charts.group_bars(bars, board.metric, title=title, heading=heading),
                            el("p", note, class_="chart-note") if note else None, class_="chart-card"))
        if cards:
            figures.append(el("figure", el("div", cards, class_="chart-grid"),
                              el("figcaption", f"{metric_label(board.metric)} per {column}, one chart per entry; "
                                               f"the worst {column} is highlighted."),
                              class_="chart-figure"))
    return figures


def _scatter(board: Board) -> Markup | None:
    points = []
    for row in board.rows:
        share = number(row.entry.data["submission"].get("synthetic_share"))
        if row.value is None or share is None:
            continue
        score = entry_score(row.entry, board.metric) or {}
        ci = score.get("ci95") or [None, None]
        points.append(charts.Point(str(row.rank), f"{row.rank}. {row.entry.name}: {fmt_score(score, board.metric)}, "
                                                  f"{fmt_share(share)} synthetic", share, row.value,
                                   number(ci[0]), number(ci[1]),
                                   training_kind(row.entry)))
    if not points:
        return None
    title = f"{metric_label(board.metric)} against the share of synthetic training images"
    legend = el("ul", [el("li", [el("span", class_=f"swatch td-{k}"), k]) for k in ("real", "hybrid", "synthetic")],
                class_="legend")
    return el("figure", charts.synthetic_scatter(points, board.metric, title=title), legend,
              el("figcaption", title + " (labels are ranks; bars are 95% intervals)."), class_="chart-figure")


def _invalid_table(page: Page, invalid: Sequence[InvalidResult], *, with_task: bool) -> Markup:
    head = ["File"] + (["Task"] if with_task else []) + ["Why it is not ranked"]
    rows = [el("tr", [el("td", el("code", item.path))] + ([el("td", item.task or "—")] if with_task else [])
               + [el("td", item.reason, class_="reason")]) for item in invalid]
    export = TableExport("Invalid result files", ("file", "task", "reason"),
                         tuple({"file": i.path, "task": i.task, "reason": i.reason} for i in invalid))
    return join([table_tools(page, "invalid", (), export),
                 el("div", el("table", el("thead", el("tr", [el("th", h, scope="col") for h in head])),
                              el("tbody", rows), class_="invalid-table"), class_="table-wrap")])


def _filter_box(*, row_filters: bool = False) -> Markup:
    """The text filter and, on task pages, the training-data and zero-shot filters.

    Hidden until the script runs: without JavaScript they could not do anything.
    """
    controls: list[Any] = [
        el("label", "Filter", for_="lb-filter", class_="filter-label"),
        el("input", type="search", id="lb-filter", placeholder="Filter by submission, model, training data…",
           autocomplete="off", spellcheck="false"),
    ]
    if row_filters:
        boxes = [el("label", [el("input", type="checkbox", name="training", value=kind, checked=True,
                                 class_="filter-training"), " ", kind], class_="chip")
                 for kind in TRAINING_KINDS]
        controls.append(el("fieldset", [el("legend", "Training data"), *boxes], class_="filter-group"))
        controls.append(el("label", [el("input", type="checkbox", id="lb-zero-shot", class_="filter-zero-shot"),
                                     " zero-shot only"], class_="chip zero-shot",
                           title="Only results whose training used no image of this task's dataset"))
    controls.append(el("span", "", class_="filter-status", aria_live="polite"))
    return el("div", controls, class_="filter", hidden=True)


def _score_fields(prefix: str, score: dict | None) -> dict[str, Any]:
    score = score or {}
    ci = score.get("ci95") if isinstance(score.get("ci95"), list) else [None, None]
    return {prefix: score.get("value"), f"{prefix} ci95 low": ci[0], f"{prefix} ci95 high": ci[1]}


def _board_export(board: Board, info_metrics: Sequence[str], group_order: Sequence[str], json_paths: dict[str, str],
                  title: str) -> TableExport:
    """Every row of a ranking with every number at full precision (the page rounds and collapses)."""
    rows = []
    metrics = [board.metric] + [m for m in info_metrics if m != board.metric]
    groups = group_columns(board.rows, group_order)  # once per table: it reads every row
    for row in board.rows:
        entry, submission, dataset = row.entry, row.entry.data["submission"], row.entry.data["dataset"]
        record: dict[str, Any] = {"rank": row.rank, "submission": submission["name"], "kind": submission["kind"],
                                  "model": submission.get("model"), "main_score": board.metric}
        comparison = row.comparison
        if board.uncertainty:
            record.update({
                "rank_range_low": comparison.rank_low if comparison else None,
                "rank_range_high": comparison.rank_high if comparison else None,
                "indistinguishable_from_first": comparison.indistinguishable if comparison else None,
                "difference_from_first": comparison.difference if comparison else None,
                "difference_ci95_low": comparison.ci95[0] if comparison and comparison.ci95 else None,
                "difference_ci95_high": comparison.ci95[1] if comparison and comparison.ci95 else None,
                "versus_first": versus_leader_text(row, board.metric),
                "uncertainty_method": board.uncertainty})
        present = [m for m in metrics if m in entry.data["scores"]]
        present += sorted(m for m in entry.data["scores"] if m not in present and m != "main_score")
        for metric in present:
            record.update(_score_fields(metric, entry_score(entry, metric)))
        for column, values in groups:
            for value in values:
                record[f"{column}={value} {board.metric}"] = number(
                    (group_score(entry, column, value, board.metric) or {}).get("value"))
            worst, gap = worst_and_gap(entry, column, board.metric, board.higher_is_better)
            record.update({f"{column} worst": worst, f"{column} gap": gap})
        record.update({
            "training_data": submission.get("training_data"), "synthetic_share": submission.get("synthetic_share"),
            "zero_shot": is_zero_shot(entry), "paper_url": safe_external_url(submission.get("paper_url")),
            "code_url": safe_external_url(submission.get("code_url")), "url": safe_external_url(submission.get("url")),
            "task_version": entry.data["task_version"], "dataset": dataset["name"], "config": dataset.get("config"),
            "split": dataset["split"], "revision": dataset["revision"], "fingerprint": dataset["fingerprint"],
            "submission_sha256": submission["sha256"], "predictions_sha256": submission.get("predictions_sha256"),
            "verified": row.verdict is not None and row.verdict.status == "verified",
            "command": reproduce_command(submission),
            "code_commit": (entry.data.get("environment") or {}).get("fetal_bench_commit"),
            "fetal_bench_version": entry.data["fetal_bench_version"],
            "created_at": entry.data["created_at"], "result_file": json_paths.get(entry.path),
            "unverified_reason": None if row.verdict is None or row.verdict.status == "verified"
            else row.verdict.reason})
        rows.append(record)
    return TableExport(title, ordered_columns(rows), tuple(rows))


def _ranking_section(page: Page, boards: TaskBoards) -> Markup:
    info, board = boards.task, boards.main
    assert board is not None
    columns = board_columns(page, board, info.metrics, info.group_by)
    key = board.key
    lead = [f"{len(board.rows)} result{'s' if len(board.rows) != 1 else ''} on task version ",
            el("code", key.task_version), ", ", key.dataset, " @ ", el("code", key.revision), " (fingerprint ",
            el("code", short_hash(key.fingerprint)), "), split ", el("code", key.split),
            ". Ranked by ", metric_label(board.metric), ", ",
            "higher is better" if board.higher_is_better else "lower is better",
            "; equal scores share a rank. Every result here was scored again by this build from its "
            "predictions."]
    if board.uncertainty:
        tied = _indistinguishable(board)
        lead += [" Uncertainty: ", board.uncertainty, ". ",
                 el("strong", f"Not distinguishable from #1: {', '.join(tied)}." if tied else
                    "Every other result is behind #1 beyond the interval." if len(board.rows) > 1 else "")]
    export = _board_export(board, info.metrics, info.group_by, page.ctx.json_paths, f"{info.name} ranking")
    return section("Ranking", sortable_table(page, "main", columns, board.rows,
                                      caption=f"{info.name} ranking by {metric_label(board.metric)}",
                                      row_class=lambda r: "leader" if r.rank == 1 else None,
                                      row_attrs=lambda r: row_filter_attrs(r.entry), export=export),
                    lead=lead, id_="ranking")


def _variant_section(page: Page, boards: TaskBoards, index: int, board: Board) -> Markup:
    info = boards.task
    columns = board_columns(page, board, info.metrics, info.group_by)
    table_id = f"variant-{index}"
    export = _board_export(board, info.metrics, info.group_by, page.ctx.json_paths,
                           f"{info.name}, not comparable: {board.label}")
    return el("section", [
        el("h2", [el("span", "Not comparable", class_="badge flag"), " ", board.label]),
        el("p", ["These results are ranked only among themselves, never with the main ranking: ",
                 join(board.reasons, "; "), "."], class_="flag-reason"),
        sortable_table(page, table_id, columns, board.rows, flagged=True,
               caption=f"{info.name}: {board.label} (not comparable with the main ranking)",
               row_attrs=lambda r: row_filter_attrs(r.entry), export=export),
    ], class_="variant", id=f"not-comparable-{index}")


def _unverified_section(page: Page, boards: TaskBoards) -> Markup:
    """Results that could not be scored again here: never ranked, each with the reason."""
    info = boards.task
    rows = boards.unverified

    def main_cell(r: RankedRow) -> Markup:
        metric = r.entry.main_score
        return el("td", [metric_label(metric), ": ", fmt_score(entry_score(r.entry, metric), metric)], class_="num")

    def name_cell(r: RankedRow) -> Markup:
        # No page of its own: the name links the file itself.
        return el("td", el("a", r.entry.name, href=page.link(page.ctx.json_paths[r.entry.path]), class_="sub-name",
                           type="application/json"), class_="sub")

    columns = [Column("Submission", name_cell, lambda r: r.entry.name.casefold()),
               Column("Main score as the file reports it", main_cell, None),
               Column("Why it is not ranked", lambda r: el("td", r.verdict.reason if r.verdict else "not checked",
                                                           class_="reason"), None)]
    records = [{"submission": r.entry.name, "task_version": r.entry.data["task_version"],
                "main_score": r.entry.main_score, "reported_value": (entry_score(r.entry, r.entry.main_score)
                                                                     or {}).get("value"),
                "reason": r.verdict.reason if r.verdict else None, "result_file": page.ctx.json_paths.get(r.entry.path)}
               for r in rows]
    export = TableExport(f"{info.name}, unverified results", ordered_columns(records), tuple(records))
    table = sortable_table(page, "unverified", columns, rows, flagged=True,
                           caption=f"{info.name}: unverified results (not ranked)", export=export)
    return section("Unverified (not ranked)", table, id_="unverified-results", class_="variant",
                   lead="These files could not be scored again by this build, so their numbers are only what the "
                        "files say: they are listed, never ranked.")


def _reference_metrics(info_metrics: Sequence[str], main: str, references: Sequence[Reference]) -> list[str]:
    present = {m for r in references for m in r.scores}
    ordered = [m for m in [main, *info_metrics] if m in present]
    return list(dict.fromkeys(ordered + sorted(present - set(ordered))))


def _reference_section(page: Page, boards: TaskBoards, references: Sequence[Reference]) -> Markup:
    """Published numbers: marked, never ranked, each with its source and why it is not comparable."""
    info = boards.task
    metrics = _reference_metrics(info.metrics, info.main_score, references)

    def source_cell(r: Reference) -> Markup:
        return el("td", [el("div", [el("span", "Reference", class_="badge ref"), " ", el("span", r.name,
                                                                                         class_="sub-name")]),
                         el("div", join([el("span", r.short_citation or r.citation, class_="cite"),
                                         *external_links(r.paper_url, r.code_url)], " "), class_="sub-meta",
                            title=r.citation)],
                  class_="sub")

    def metric_cell(metric: str) -> Callable[[Reference], Markup]:
        # Published percentages have two decimals (82.40%), so a fraction needs four to show them all.
        def cell(r: Reference) -> Markup:
            if metric not in r.scores:
                return el("td", "—", class_="num muted", title="not reported")
            places = 2 if metric.endswith(("_mm", "_pct")) else 4
            return el("td", el("span", f"{r.scores[metric]:.{places}f}", class_="v"), class_="num")
        return cell

    columns = [Column("#", lambda r: el("td", "ref", class_="num rank ref", title="published number: not ranked"),
                      None, title="Reference rows are never ranked"),
               Column("Published result", source_cell, lambda r: r.name.casefold())]
    columns += [Column(metric_label(m), metric_cell(m), functools.partial(lambda m, r: r.scores.get(m), m),
                       "asc" if m in LOWER_IS_BETTER else "desc", numeric=True) for m in metrics]
    columns += [
        Column("Also reported", lambda r: el("td", join([el("span", f"{label} {value:.4g}", class_="also")
                                                         for label, value in r.other_scores], "; ") or "—",
                                             class_="also-cell"), None),
        Column("Training data", lambda r: el("td", training_badge({"training_data": r.training_data})),
               lambda r: r.training_data),
        Column("Test set and why it differs", lambda r: el("td", [el("div", r.test_set, class_="test-set"),
                                                                   el("div", r.why_different, class_="why"),
                                                                   el("div", ["Source: ", r.source], class_="src")],
                                                             class_="why-cell"), None),
    ]
    rows = []
    for r in references:
        record: dict[str, Any] = {"row": "reference (not ranked)", "name": r.name, "citation": r.citation}
        record.update({m: r.scores.get(m) for m in metrics})
        record.update({label: value for label, value in r.other_scores})
        record.update({"training_data": r.training_data, "zero_shot": r.zero_shot, "test_set": r.test_set,
                       "why_different": r.why_different, "source": r.source, "paper_url": r.paper_url,
                       "code_url": r.code_url})
        rows.append(record)
    export = TableExport(f"{info.name} published reference results", ordered_columns(rows), tuple(rows))
    table = sortable_table(page, "references", columns, references, caption=f"{info.name}: published reference results",
                   row_class=lambda r: "reference",
                   row_attrs=lambda r: {"training": r.training_data, "zero_shot": "yes" if r.zero_shot else "no"},
                   export=export, extra_class="ref-table", stack=True)
    return section("Published results (reference, not ranked)", table, id_="published-results", class_="references",
                    lead="Numbers as their papers report them, not produced by fetal-bench: no intervals, and "
                         "each says on what test set and why it is not directly comparable with the ranking.")


def render_task_page(page: Page, boards: TaskBoards, invalid: Sequence[InvalidResult],
                     references: Sequence[Reference] = ()) -> str:
    info = boards.task
    body: list[Any] = [el("p", el("a", "← All tasks", href=page.link("index.html")), class_="crumbs"),
                       el("h1", info.name)]
    if info.description:
        body.append(el("p", info.description, class_="description"))
    if not info.known:
        body.append(el("p", "This task is not in this fetal-bench's task registry; what is shown comes from its "
                            "result files.", class_="notice"))
    body.append(_task_meta(boards))
    if (boards.main and boards.main.rows) or boards.variants or boards.unverified or references:
        body.append(_filter_box(row_filters=True))
    if boards.main and boards.main.rows:
        body.append(_ranking_section(page, boards))
    else:
        body.append(section("Ranking", el("p", [
            "No comparable verified results yet. " if boards.variants or boards.unverified else "No results yet. ",
            "See ", el("a", "how to submit", href=SUBMIT_URL), "."], class_="empty"), id_="ranking"))
    if references:
        body.append(_reference_section(page, boards, references))
    if boards.main and boards.main.rows:
        board = boards.main
        # The interval plot and the synthetic-share scatter side by side (they wrap on narrow
        # screens), then the per-group small multiples.
        overview_charts = [f for f in (_forest(board), _scatter(board)) if f]
        figures = ([el("div", overview_charts, class_="chart-row")] if overview_charts else [])
        figures += _group_charts(board, info.group_by)
        if figures:
            body.append(section("Charts", *figures, id_="charts"))
    for index, board in enumerate(boards.variants, start=1):
        body.append(_variant_section(page, boards, index, board))
    if boards.unverified:
        body.append(_unverified_section(page, boards))
    if invalid:
        body.append(section("Invalid result files", _invalid_table(page, invalid, with_task=False), class_="invalid",
                             id_="invalid", lead="These files failed validation and are not shown in any ranking."))
    return frame(page, f"{info.name} · fetal-bench leaderboard", join(body, "\n"))


# --------------------------------------------------------------------------------------------
# Overview and synthetic pages


def _leaders(board: Board | None) -> list[RankedRow]:
    return [r for r in board.rows if r.rank == 1] if board else []


def render_index(page: Page, all_boards: Sequence[TaskBoards], invalid: Sequence[InvalidResult],
                 synthetic: Sequence[tuple[SyntheticDataset, str]], n_valid: int) -> str:
    n_flagged = sum(len(v.rows) for b in all_boards for v in b.variants)
    n_unverified = sum(len(b.unverified) for b in all_boards)
    n_ranked = sum(len(b.main.rows) for b in all_boards if b.main)
    with_results = sum(1 for b in all_boards if b.main or b.variants or b.unverified)
    stats = el("ul", [
        el("li", [el("strong", str(with_results)), f" of {len(all_boards)} tasks with results"]),
        el("li", [el("strong", str(n_ranked)), " verified and ranked"]),
        el("li", [el("strong", str(n_flagged)), " verified, shown apart as not comparable"]),
        el("li", [el("strong", str(n_unverified)), " unverified (not ranked)"]),
        el("li", [el("strong", str(len(invalid))), " invalid or refused"], class_="bad" if invalid else None),
    ], class_="stats")

    # The same sortable table as the task pages, with one row per task (a TaskBoards).
    def task_cell(b: TaskBoards) -> Markup:
        link = el("a", b.task.name, href=page.link(page.ctx.task_pages[b.task.name]), class_="task-link")
        return el("td", [link, el("div", b.task.description, class_="sub-desc") if b.task.description else None],
                  class_="sub")

    def main_score_cell(b: TaskBoards) -> Markup:
        direction = "higher is better" if b.task.higher_is_better else "lower is better"
        arrow = el("span", "↑" if b.task.higher_is_better else "↓", class_="dir", title=direction)
        return el("td", [metric_label(b.task.main_score), " ", arrow])

    def best_value(b: TaskBoards) -> float | None:
        leaders = _leaders(b.main)
        return leaders[0].value if leaders else None

    def n_ranked(b: TaskBoards) -> int:
        return len(b.main.rows) if b.main else 0

    def n_apart(b: TaskBoards) -> int:
        return sum(len(v.rows) for v in b.variants) + len(b.unverified)

    columns = [
        Column("Task", task_cell, lambda b: b.task.name),
        Column("Type", lambda b: el("td", b.task.type or "—"), lambda b: b.task.type),
        Column("Main score", main_score_cell, lambda b: b.task.main_score),
        Column("Leader", _leader_cell, lambda b: ", ".join(x.entry.name for x in _leaders(b.main)) or None),
        Column("Best score", _best_cell, best_value, "desc", numeric=True),
        Column("Ranked", lambda b: el("td", str(n_ranked(b)), class_="num"), n_ranked, "desc", numeric=True),
        Column("Shown apart", lambda b: el("td", str(n_apart(b)), class_="num"), n_apart, "desc", numeric=True,
               title="Results not in the ranking: not comparable with it, or not verified"),
        Column("Dataset", lambda b: el("td", [b.task.dataset or "—", " @ ", el("code", b.task.revision or "?")]),
               lambda b: b.task.dataset),
    ]
    body: list[Any] = [
        el("h1", "fetal-bench leaderboard"),
        el("p", ["Fetal ultrasound benchmark results. A result is ranked only when this build scored its "
                 "predictions again and got the file's numbers, on the task's current version and the dataset "
                 "content its catalog pins; the rest are shown apart, with the reason. Scores carry 95% bootstrap "
                 "intervals resampled over patients or subjects, and each ranking says which results are not "
                 "distinguishable from #1 on paired resamples. ",
                 el("a", "How to submit", href=SUBMIT_URL), "."], class_="description"),
        stats,
        _filter_box(),
        section("Tasks", sortable_table(page, "tasks", columns, all_boards, caption="Benchmark tasks",
                                 export=_tasks_export(all_boards)), id_="task-list"),
    ]
    if synthetic:
        body.append(_synthetic_section(page, synthetic))
    if invalid:
        body.append(section("Invalid results", _invalid_table(page, invalid, with_task=True), class_="invalid",
                             id_="invalid", lead="These files failed validation: they are listed here and shown "
                                                 "in no ranking."))
    else:
        body.append(el("p", "Every result file passed validation.", class_="ok-note"))
    return frame(page, "fetal-bench leaderboard", join(body, "\n"))


def _tasks_export(all_boards: Sequence[TaskBoards]) -> TableExport:
    rows = []
    for b in all_boards:
        leaders = _leaders(b.main)
        best = entry_score(leaders[0].entry, b.main.metric) if leaders and b.main else None
        record: dict[str, Any] = {"task": b.task.name, "type": b.task.type, "main_score": b.task.main_score,
                                  "main_score_label": metric_label(b.task.main_score),
                                  "higher_is_better": b.task.higher_is_better,
                                  "leader": ", ".join(r.entry.name for r in leaders) or None}
        record.update(_score_fields("best", best))
        record.update({"ranked": len(b.main.rows) if b.main else 0,
                       "not_distinguishable_from_first": ", ".join(_indistinguishable(b.main)) or None,
                       "not_comparable": sum(len(v.rows) for v in b.variants),
                       "unverified": len(b.unverified),
                       "dataset": b.task.dataset, "revision": b.task.revision})
        rows.append(record)
    return TableExport("fetal-bench tasks", ordered_columns(rows), tuple(rows))


def _synthetic_section(page: Page, synthetic: Sequence[tuple[SyntheticDataset, str]]) -> Markup:
    syn_rows = []
    records = []
    for dataset, target in synthetic:
        generator = generator_name(dataset)
        total = sum(n for splits in dataset.counts.values() for n in splits.values())
        syn_rows.append(el("tr", [el("td", el("a", dataset.name, href=page.link(target))),
                                  el("td", el("code", generator) if generator else "—"),
                                  el("td", f"{total:,}", class_="num")]))
        records.append({"dataset": dataset.name, "generator": generator, "rows": total})
    export = TableExport("Synthetic datasets", ("dataset", "generator", "rows"), tuple(records))
    return section("Synthetic datasets", table_tools(page, "synthetic", (), export), el("div", el("table", el(
        "thead", el("tr", [el("th", "Dataset", scope="col"), el("th", "Generator", scope="col"),
                           el("th", "Rows", scope="col", class_="num")])), el("tbody", syn_rows),
        class_="plain-table"), class_="table-wrap fit"), id_="synthetic")


def _indistinguishable(board: Board | None) -> list[str]:
    """Ranked results not distinguishable from #1 on paired resamples (the first row, #1, excluded;
    a result tied with it included)."""
    if board is None or not board.rows:
        return []
    return [r.entry.name for r in board.rows[1:] if r.comparison and r.comparison.indistinguishable]


def _leader_cell(boards: TaskBoards) -> Markup:
    leaders = _leaders(boards.main)
    if not leaders:
        return el("td", "no ranked results yet" if boards.variants or boards.unverified else "no results yet",
                  class_="muted")
    names = join([el("span", r.entry.name, class_="sub-name") for r in leaders], ", ")
    close = _indistinguishable(boards.main)
    close = [n for n in close if n not in {r.entry.name for r in leaders}]
    return el("td", [names, el("span", " (tie)", class_="muted") if len(leaders) > 1 else None,
                     el("div", f"not distinguishable from #1: {', '.join(close)}", class_="sub-desc")
                     if close else None])


def _best_cell(boards: TaskBoards) -> Markup:
    leaders = _leaders(boards.main)
    if not leaders or boards.main is None:
        return el("td", "—", class_="num muted")
    metric = boards.main.metric
    return score_cell(entry_score(leaders[0].entry, metric), metric, with_ci=True, extra_class="main")


def render_synthetic_page(page: Page, dataset: SyntheticDataset, grid_name: str | None) -> str:
    body: list[Any] = [el("p", el("a", "← Overview", href=page.link("index.html")), class_="crumbs"),
                       el("h1", dataset.name),
                       el("p", ["Synthetic dataset directory ", el("code", dataset.path.name), "."],
                          class_="description")]
    generator = generator_name(dataset)
    if generator:
        body.append(el("dl", join([el("dt", "Generator"), el("dd", el("code", generator))]), class_="meta"))
    if dataset.counts:
        rows = [el("tr", [el("td", config), el("td", split), el("td", f"{n:,}", class_="num")])
                for config, splits in sorted(dataset.counts.items()) for split, n in sorted(splits.items())]
        body.append(section("Rows", el("div", el("table", el("thead", el("tr", [
            el("th", "Config", scope="col"), el("th", "Split", scope="col"),
            el("th", "Rows", scope="col", class_="num")])),
            el("tbody", rows), class_="plain-table"), class_="table-wrap fit")))
    if grid_name:
        caption = f"The first {len(dataset.samples)} images of the dataset, letterboxed."
        sample_rows = [el("tr", [el("td", str(i), class_="num"), el("td", el("code", s.id)), el("td", s.label or "—"),
                                 el("td", join([el("span", [el("span", k, class_="k"), " ", redact_text(str(v))],
                                                        class_="prov")
                                                for k, v in sorted(s.provenance.items())], " "))])
                       for i, s in enumerate(dataset.samples, start=1)]
        body.append(section("Samples", el("figure", el("img", src=grid_name, alt=caption, class_="sample-grid"),
                                           el("figcaption", caption), class_="chart-figure"),
                             el("details", el("summary", "Sample rows and how each was made"),
                                el("div", el("table", el("thead", el("tr", [el("th", h, scope="col") for h in
                                                                            ("#", "id", "label", "provenance")])),
                                             el("tbody", sample_rows), class_="plain-table"),
                                   class_="table-wrap fit"))))
    # Paths of the machine that generated the set (e.g. lora_path) are cut to their last part.
    config_text = json.dumps(redact(dataset.generator_config), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    body.append(section("Generator configuration", el("pre", el("code", config_text)) if dataset.generator_config
                         else el("p", "build_info.json records no generator configuration.", class_="muted")))
    if dataset.card_body.strip():
        from fetal_bench.leaderboard.markdown import render

        body.append(section("Dataset card", el("div", render(redact_text(dataset.card_body)), class_="card-body")))
    if dataset.card_yaml:
        body.append(el("details", el("summary", "Card metadata (YAML)"),
                       el("pre", el("code", redact_text(dataset.card_yaml)))))
    record = redact({k: v for k, v in dataset.build_info.items() if k != "files"})
    body.append(el("details", el("summary", "Build record (build_info.json, without per-file checksums)"),
                   el("pre", el("code", json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False,
                                                   default=str)))))
    if dataset.warnings:
        body.append(el("ul", [el("li", w) for w in dataset.warnings], class_="notice"))
    return frame(page, f"{dataset.name} · fetal-bench leaderboard", join(body, "\n"))


# --------------------------------------------------------------------------------------------
# The build


def _asset(name: str) -> bytes:
    return resources.files("fetal_bench.leaderboard").joinpath("static").joinpath(name).read_bytes()


def _json_copy_paths(entries: Iterable[ResultEntry]) -> dict[str, str]:
    """Result file -> ``results/<name>.json`` in the site; folder separators flattened, clashes suffixed."""
    paths: dict[str, str] = {}
    used: set[str] = set()
    for entry in sorted(entries, key=lambda e: e.path):
        stem = entry.path[:-5] if entry.path.endswith(".json") else entry.path
        name = slug(stem.replace("/", "__"))
        candidate = f"results/{name}.json"
        if candidate in used:
            candidate = f"results/{name}-{entry.sha256[:8]}.json"
        used.add(candidate)
        paths[entry.path] = candidate
    return paths


def _check_output(results_dirs: Sequence[Path], out_dir: Path) -> None:
    out = out_dir.resolve()
    for results_dir in results_dirs:
        results = results_dir.resolve()
        if out == results or out in results.parents or results in out.parents:
            raise FetalBenchError(f"--out {out_dir} and --results {results_dir} overlap.",
                                  "Write the site to a separate folder, e.g. --out site.")
    if out.exists():
        if not out.is_dir():
            raise FetalBenchError(f"--out {out_dir} exists and is not a folder.", "Choose another --out.")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise FetalBenchError(f"--out {out_dir} is a non-empty folder that is not a leaderboard site.",
                                  "Choose an empty or new folder; a folder the leaderboard built is replaced "
                                  "as a whole.")


def _source_date() -> _dt.datetime | None:
    """``SOURCE_DATE_EPOCH`` (the reproducible-builds convention), where set."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return _dt.datetime.fromtimestamp(int(epoch), tz=_dt.timezone.utc)
    return None


def _site_copy(entry: ResultEntry) -> bytes:
    """The result file as the site serves it: byte for byte, unless it holds absolute local paths
    (older files recorded ``dataset.source`` and ``submission.checkpoint`` as given), which are cut
    to their last component and the JSON written again."""
    cleaned = redact(entry.data)
    if cleaned == entry.data:
        return entry.raw
    return (json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# A predictions file is copied into the site (linked from its result's page) up to this size.
MAX_PUBLISHED_PREDICTIONS_BYTES = 64 * 1024 * 1024


def _results_folders(results_dirs) -> list[Path]:
    folders = [Path(results_dirs)] if isinstance(results_dirs, (str, os.PathLike)) else [Path(d) for d in results_dirs]
    if not folders:
        raise FetalBenchError("No --results folder given.", "Pass --results leaderboard/results (repeatable).")
    for folder in folders:
        if not folder.is_dir():
            raise FetalBenchError(f"--results {folder} is not a folder.",
                                  "Point it at a folder of result JSON files, e.g. leaderboard/results.")
    return folders


def default_predictions(results_dirs: Sequence[Path]) -> list[Path]:
    """Where predictions are looked for by default: each results folder and its sibling ``predictions/``
    (the layout of ``leaderboard/``: ``results/`` beside ``predictions/``)."""
    found = []
    for folder in results_dirs:
        found.append(folder)
        sibling = folder.parent / "predictions"
        if sibling.is_dir() and not sibling.is_symlink():
            found.append(sibling)
    return found


def _verdict_line(status: str, reason: str) -> str:
    return {"verified": "ranked", "refused": f"refused ({reason})"}.get(status, f"shown apart ({reason})")


def _check_lines(all_boards: Sequence[TaskBoards], verdicts: dict, invalid: Sequence[InvalidResult]) -> list:
    """Per result file what `leaderboard check` says: ranked, shown apart (why) or refused (why)."""
    lines: dict[str, str] = {}
    for boards in all_boards:
        for row in boards.main.rows if boards.main else ():
            lines[row.entry.path] = "ranked" if row.rank is not None else "shown apart (its main score is null)"
        for board in boards.variants:
            for row in board.rows:
                lines[row.entry.path] = f"shown apart (verified, not comparable: {'; '.join(board.reasons)})"
        for row in boards.unverified:
            lines[row.entry.path] = _verdict_line("unverified", row.verdict.reason if row.verdict else "not checked")
    for item in invalid:
        reason = item.reason.removeprefix("refused: ").rstrip(".")
        lines[item.path] = f"refused ({reason})" if item.reason.startswith("refused") else \
            f"refused (invalid: {reason})"
    return sorted(lines.items())


def render_site(results_dirs: str | os.PathLike | Sequence[str | os.PathLike], *,
                predictions: Sequence[str | os.PathLike] = (), data: dict[str, str | os.PathLike] | None = None,
                verify: bool = True, synthetic_dirs: Sequence[str | os.PathLike] = (),
                build_timestamp: _dt.datetime | None = None,
                references_path: str | os.PathLike | None = None,
                verifier=None) -> tuple[dict[str, bytes], SiteSummary]:
    """Render every file of the site in memory: ``{relative path: bytes}`` and a summary (``out_dir`` unset).

    ``results_dirs``: one or more folders of result files, merged (the same predictions twice
    are refused, the one submitted first kept). Each result is verified (:mod:`.verify`) against
    the predictions under ``predictions`` and by default under each results folder and its
    sibling ``predictions/``; ``data`` maps a dataset name to a local build or Hub id to score
    on. ``verify=False`` ranks nothing (every result unverified), for a quick look.
    ``references_path``: the published reference results to show (default: the shipped
    ``references.json``); an invalid file is an error, as it is ours, not a submission.
    ``verifier``: an object with :class:`~.verify.Verifier`'s ``verify`` and
    ``expected_fingerprint``, used instead of one built from ``predictions`` and ``data``.
    """
    from fetal_bench.leaderboard.verify import Verifier, verify_all

    folders = _results_folders(results_dirs)
    loaded = load_results(folders)
    references = load_references(references_path)
    if verifier is None and verify:
        verifier = Verifier([*default_predictions(folders), *predictions], data)
    verdicts, refused = verify_all(loaded.entries, verifier)
    refused_paths = {item.path for item in refused}
    entries = [e for e in loaded.entries if e.path not in refused_paths]
    invalid = tuple(sorted([*loaded.invalid, *refused], key=lambda item: item.path))
    with_verified = {e.task for e in entries if verdicts[e.path].status == "verified"}
    all_boards = build_boards(entries, verdicts, expected_fingerprint=lambda info: (
        verifier.expected_fingerprint(info.name) if verifier is not None and info.name in with_verified else None))

    task_pages: dict[str, str] = {}
    for boards in all_boards:
        _task_page_path(boards.task.name, task_pages)

    synthetic: list[tuple[SyntheticDataset, str]] = []
    used_names: set[str] = set()
    for directory in find_dataset_dirs(list(synthetic_dirs)):
        dataset = load_synthetic_dataset(directory)
        name, n = slug(dataset.name), 2
        while name in used_names:  # two datasets with the same name: keep both pages
            name = f"{slug(dataset.name)}-{n}"
            n += 1
        used_names.add(name)
        synthetic.append((dataset, f"synthetic/{name}.html"))

    nav = [("Overview", "index.html")]
    if synthetic:
        nav.append(("Synthetic data", "index.html#synthetic"))
    n_files = len(loaded.entries) + len(loaded.invalid)
    plural = "s" if n_files != 1 else ""
    footer_parts: list[Any] = [f"Built by fetal-bench {__version__} from {n_files} result file{plural}"]
    if build_timestamp is not None:
        stamp = build_timestamp.astimezone(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        footer_parts += [" on ", el("time", stamp, datetime=stamp)]
    footer_parts += [". Ranked scores were computed again by this build from each result's predictions; "
                     if verifier is not None else ". This build did not verify results, so it ranks none; ",
                     el("a", "how to submit", href=SUBMIT_URL), "."]
    json_paths = _json_copy_paths(entries)
    # A page per verified result: what the board vouches for. An unverified one shows its reason
    # in its task's table and links its JSON (a folder of 10,000 unchecked files makes no pages).
    verified = {path for path, verdict in verdicts.items() if verdict.status == "verified"}
    ctx = Context(json_paths=json_paths, task_pages=task_pages, nav=tuple(nav), footer=join(footer_parts),
                  result_pages={path: target[:-len(".json")] + ".html" for path, target in json_paths.items()
                                if path in verified})

    files: dict[str, bytes] = {MARKER: b"A generated fetal-bench leaderboard site; rebuilds replace it.\n",
                               "assets/style.css": _asset("style.css"), "assets/app.js": _asset("app.js")}
    invalid_by_task: dict[str, list[InvalidResult]] = {}
    for item in invalid:
        if item.task:
            invalid_by_task.setdefault(item.task, []).append(item)
    summaries = []
    for boards in all_boards:
        path = task_pages[boards.task.name]
        task_invalid = invalid_by_task.get(boards.task.name, [])
        task_references = [r for r in references if r.task == boards.task.name]
        files[path] = render_task_page(Page(path, ctx), boards, task_invalid, task_references).encode("utf-8")
        summaries.append(TaskSummary(boards.task.name, path, len(boards.main.rows) if boards.main else 0,
                                     sum(len(v.rows) for v in boards.variants), len(task_invalid),
                                     tuple(r.entry.name for r in _leaders(boards.main)), len(boards.unverified),
                                     tuple(r.entry.name for r in (boards.main.rows[:1] if boards.main else ()))
                                     + tuple(_indistinguishable(boards.main))))
    files.update(_result_pages(ctx, all_boards))
    for dataset, path in synthetic:
        grid_name = None
        if dataset.grid_png:
            grid_name = Path(path).stem + "-samples.png"
            files[f"synthetic/{grid_name}"] = dataset.grid_png
        files[path] = render_synthetic_page(Page(path, ctx), dataset, grid_name).encode("utf-8")
    for entry in entries:
        files[ctx.json_paths[entry.path]] = _site_copy(entry)
    files["index.html"] = render_index(Page("index.html", ctx), all_boards, invalid, synthetic,
                                       len(entries)).encode("utf-8")
    files.update(ctx.downloads)
    summary = SiteSummary(Path(), Path("index.html"), tuple(sorted(files)), tuple(summaries), len(entries),
                          invalid, tuple(d.name for d, _ in synthetic),
                          tuple(_check_lines(all_boards, verdicts, invalid)))
    return files, summary


def _result_pages(ctx: Context, all_boards: Sequence[TaskBoards]) -> dict[str, bytes]:
    """Each result's own page, and a copy of the predictions it was verified on (size permitting)."""
    files: dict[str, bytes] = {}
    for boards in all_boards:
        placed = [(row, None) for row in (boards.main.rows if boards.main else ())]
        placed += [(row, board.label) for board in boards.variants for row in board.rows]
        for row, label in placed:
            path = ctx.result_pages[row.entry.path]
            page = Page(path, ctx)
            predictions_link = None
            source = row.verdict.predictions if row.verdict is not None else None
            if source is not None and source.is_file() and source.stat().st_size <= MAX_PUBLISHED_PREDICTIONS_BYTES:
                target = f"predictions/{row.entry.data['submission'].get('predictions_sha256') or row.entry.data['submission']['sha256']}{source.suffix}"
                files[target] = source.read_bytes()
                predictions_link = page.link(target)
            files[path] = render_result_page(page, row, board_label=label,
                                             json_link=page.link(ctx.json_paths[row.entry.path]),
                                             predictions_link=predictions_link).encode("utf-8")
    return files


def build_site(results_dirs: str | os.PathLike | Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
               predictions: Sequence[str | os.PathLike] = (), data: dict[str, str | os.PathLike] | None = None,
               verify: bool = True, synthetic_dirs: Sequence[str | os.PathLike] = (),
               build_timestamp: _dt.datetime | None | bool = None,
               references_path: str | os.PathLike | None = None, verifier=None) -> SiteSummary:
    """Build the leaderboard site from the result files in ``results_dirs`` into ``out_dir``
    (``predictions``, ``data``, ``verify``, ``verifier``: see :func:`render_site`).

    The whole site is rendered in memory, written into a temporary sibling folder and only then
    swapped in for ``out_dir``: a failed build leaves the previous site as it was, and a reader
    never sees a half-written one. ``out_dir`` must be new, empty, or a site built before.

    ``build_timestamp``: a time to print in the footer; ``True`` for now (or
    ``SOURCE_DATE_EPOCH`` where set); ``None``/``False`` for none, which makes the output a pure
    function of the inputs (same files in, same bytes out).
    """
    folders, out_dir = _results_folders(results_dirs), Path(out_dir)
    _check_output(folders, out_dir)
    if build_timestamp is True:
        build_timestamp = _source_date() or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    elif build_timestamp is False:
        build_timestamp = None
    files, summary = render_site(folders, predictions=predictions, data=data, verify=verify,
                                 synthetic_dirs=synthetic_dirs, build_timestamp=build_timestamp,
                                 references_path=references_path, verifier=verifier)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        for relative, data in files.items():
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return replace(summary, out_dir=out_dir, index=out_dir / "index.html")


__all__ = ["MARKER", "SiteSummary", "TaskSummary", "build_site", "render_site"]
