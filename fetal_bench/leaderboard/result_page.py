"""One page per result: everything a reader needs to cite or reproduce it, as visible text.

The ranking table stays compact; this page carries the rest: what was submitted (description,
command, model, checkpoint, links to the predictions and any published weights), what ran (the
fetal-bench version and code commit, the environment), what was scored (dataset revision and
content fingerprint, split, bootstrap settings), whether the build verified it, and every score
with its interval, overall and per group, with the confusion matrix (classification) or the
distribution of head-circumference errors (segmentation, when the predictions were scored here).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np

from fetal_bench.leaderboard import charts
from fetal_bench.leaderboard.columns import external_links, reproduce_command, training_badge
from fetal_bench.leaderboard.formatting import fmt_ci, fmt_value, metric_label
from fetal_bench.leaderboard.html import Markup, el, join, safe_external_url
from fetal_bench.leaderboard.local_paths import redact_text
from fetal_bench.leaderboard.page import Page, frame, section
from fetal_bench.leaderboard.ranking import RankedRow
from fetal_bench.leaderboard.scores import is_zero_shot, number
from fetal_bench.metrics.segmentation import HC_BAND_GROUP

# Head-size bands of the HC18 reports (mm of reference head circumference).
HC_BANDS = ((0.0, 150.0, "HC < 150 mm"), (150.0, 250.0, "150–250 mm"), (250.0, float("inf"), "HC ≥ 250 mm"))


def _dl(items: Sequence[tuple[str, Any]]) -> Markup:
    return el("dl", [join([el("dt", k), el("dd", v)]) for k, v in items if v is not None], class_="meta wide")


def _status(row: RankedRow, board_label: str | None) -> Markup:
    verdict = row.verdict
    if verdict is not None and verdict.status == "verified":
        where = f"Ranked #{row.rank}" if row.rank is not None and board_label is None else \
            f"Ranked #{row.rank} in “{board_label}”" if row.rank is not None else "Not ranked"
        text = [el("span", "verified", class_="badge ok"), " Scored again by this build from its predictions: every "
                "number below matches the file. ", where, "."]
        comparison = row.comparison
        if comparison is not None and row.rank is not None:
            text += [" Rank range over paired resamples: ", _rank_range(comparison.rank_low, comparison.rank_high),
                     "; ", "not distinguishable from #1." if comparison.indistinguishable
                     else "behind #1 beyond the 95% interval."]
        return el("p", text, class_="status")
    reason = verdict.reason if verdict is not None else "not checked"
    return el("p", [el("span", "unverified", class_="badge flag"), " Not ranked: ", reason, "."], class_="status")


def _rank_range(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def _scores_table(scores: dict) -> Markup:
    rows = []
    for metric, score in scores.items():
        if metric == "main_score" or not isinstance(score, dict):
            continue
        main = metric == scores.get("main_score")
        rows.append(el("tr", [el("th", [metric_label(metric), el("span", " (main)", class_="muted") if main else None],
                                 scope="row"),
                              el("td", fmt_value(score.get("value"), metric), class_="num"),
                              el("td", fmt_ci(score.get("ci95"), metric) or score.get("reason") or "—", class_="num")]))
    return el("div", el("table", el("thead", el("tr", [el("th", "Metric", scope="col"),
                                                       el("th", "Value", scope="col", class_="num"),
                                                       el("th", "95% interval", scope="col", class_="num")])),
                        el("tbody", rows), class_="plain-table"), class_="table-wrap fit")


def _groups_tables(data: dict) -> list[Markup]:
    out = []
    for column, block in data["groups"].items():
        values = block["values"]
        metrics = [m for m in next(iter(values.values()))["scores"] if m != "main_score"] if values else []
        head = [el("th", column, scope="col"), el("th", "Images", scope="col", class_="num"),
                el("th", "Subjects", scope="col", class_="num")]
        head += [el("th", metric_label(m), scope="col", class_="num") for m in metrics]
        rows = []
        for value, entry in values.items():
            cells = [el("th", value, scope="row"), el("td", str(entry["n_samples"]), class_="num"),
                     el("td", str(entry["n_subjects"]), class_="num")]
            for metric in metrics:
                score = entry["scores"].get(metric) or {}
                ci = fmt_ci(score.get("ci95"), metric)
                cells.append(el("td", [fmt_value(score.get("value"), metric),
                                       el("span", " " + ci, class_="ci") if ci else None], class_="num"))
            rows.append(el("tr", cells, class_="worst" if value == block.get("worst") else None))
        worst = block.get("worst")
        note = (el("p", ["Worst ", column, ": ", el("strong", worst), "; gap between best and worst ",
                         fmt_value(number(block.get("gap")), data["scores"]["main_score"]), "."], class_="lead")
                if worst else None)
        out.append(section(f"Scores per {column}", note, el("div", el("table", el("thead", el("tr", head)),
                                                                         el("tbody", rows), class_="plain-table"),
                                                               class_="table-wrap")))
    return out


def _confusion(data: dict) -> Markup | None:
    matrix = data.get("confusion_matrix")
    if not isinstance(matrix, dict):
        return None
    labels, predicted = matrix.get("labels", []), matrix.get("predicted_labels") or matrix.get("labels", [])
    head = [el("th", "true \\ predicted", scope="col")] + [el("th", p, scope="col", class_="num") for p in predicted]
    rows = [el("tr", [el("th", label, scope="row")] + [el("td", str(v), class_="num diag" if i == j else "num")
                                                       for j, v in enumerate(values)])
            for i, (label, values) in enumerate(zip(labels, matrix.get("matrix", [])))]
    return section("Confusion matrix", el("div", el("table", el("thead", el("tr", head)), el("tbody", rows),
                                                    class_="plain-table confusion"), class_="table-wrap fit"),
                   lead="Rows: the reference plane; columns: the submission's argmax (extra outputs such as Other "
                        "count as errors).")


def _band_order(label: str) -> tuple[int, float]:
    """Smallest band first: "HC < 150 mm", "150-250 mm", "HC >= 250 mm"."""
    number = re.search(r"\d+(?:\.\d+)?", label)
    return (0 if label.startswith("HC <") else 2 if label.startswith("HC >") else 1,
            float(number.group()) if number else 0.0)


def _result_band_rows(data: dict) -> list[Markup]:
    """The head-size bands the result file holds (task versions with ``hc_bands``), with their intervals."""
    block = data.get("groups", {}).get(HC_BAND_GROUP)
    if not isinstance(block, dict) or not block.get("values"):
        return []
    rows = []
    for label in sorted(block["values"], key=_band_order):
        entry = block["values"][label]
        cells = [el("th", label, scope="row"), el("td", str(entry["n_samples"]), class_="num")]
        for metric in ("hc_abs_diff_mm", "hc_rel_diff_pct", "hc_diff_mm"):
            score = entry["scores"].get(metric) or {}
            ci = fmt_ci(score.get("ci95"), metric)
            cells.append(el("td", [fmt_value(score.get("value"), metric), el("span", " " + ci, class_="ci") if ci
                                   else None], class_="num"))
        rows.append(el("tr", cells))
    return rows


def _hc_errors(row: RankedRow) -> Markup | None:
    extras = row.verdict.extras if row.verdict is not None else {}
    signed, reference = extras.get("hc_diff_mm"), extras.get("hc_reference_mm")
    if signed is None or reference is None:
        return None
    title = "Signed head-circumference error per image (prediction minus reference, mm)"
    band_rows = _result_band_rows(row.entry.data)
    from_result = bool(band_rows)
    for low, high, label in () if from_result else HC_BANDS:
        chosen = (reference >= low) & (reference < high)
        if not chosen.any():
            continue
        errors = signed[chosen]
        relative = np.abs(errors) / reference[chosen] * 100
        band_rows.append(el("tr", [el("th", label, scope="row"), el("td", str(int(chosen.sum())), class_="num"),
                                   el("td", f"{np.abs(errors).mean():.2f}", class_="num"),
                                   el("td", f"{relative.mean():.2f}%", class_="num"),
                                   el("td", f"{errors.mean():+.2f}", class_="num")]))
    table = el("div", el("table", el("thead", el("tr", [el("th", "Head size", scope="col")] + [
        el("th", h, scope="col", class_="num") for h in ("Images", "Abs. error (mm)", "Abs. error (% of HC)",
                                                          "Signed error (mm)")])),
        el("tbody", band_rows), class_="plain-table"), class_="table-wrap fit")
    return section("Head-circumference errors", el("figure", charts.histogram(list(signed), title=title, unit="mm"),
                                                   el("figcaption", title + ", computed by this build from the "
                                                                            "predictions."), class_="chart-figure"),
                   table, lead="By head size of the reference (the HC18 report bands), as the result file states "
                               "them, with 95% intervals resampling whole exams; not ranked." if from_result else
                               "By head size of the reference (the HC18 report bands); no intervals: these "
                               "describe this submission's errors, they are not ranked.")


def _provenance(page: Page, row: RankedRow, predictions_link: str | None) -> Markup:
    data = row.entry.data
    submission, dataset, environment = data["submission"], data["dataset"], data.get("environment", {})
    commit = environment.get("fetal_bench_commit") if isinstance(environment, dict) else None
    dirty = environment.get("fetal_bench_dirty") if isinstance(environment, dict) else None
    commit_text: Any = "not recorded (written by an older fetal-bench)"
    if isinstance(commit, str) and commit:
        commit_text = [el("code", commit[:40]), " (with uncommitted changes to the package)" if dirty else None]
    command = reproduce_command(submission)
    predictions_sha = submission.get("predictions_sha256") or (
        submission["sha256"] if submission["kind"] == "predictions" else None)
    predictions: Any = "not named: this result cannot be scored again"
    if predictions_sha:
        predictions = [el("code", predictions_sha), " ",
                       el("a", "download", href=predictions_link) if predictions_link else None]
    weights_url = safe_external_url(submission.get("weights_url"))
    share = number(submission.get("synthetic_share"))
    items: list[tuple[str, Any]] = [
        ("Task", [el("a", data["task"], href=page.link(page.ctx.task_pages[data["task"]]))
                  if data["task"] in page.ctx.task_pages else data["task"], ", version ",
                  el("code", data["task_version"])]),
        ("Description", redact_text(submission["description"]) if submission.get("description") else "none given"),
        ("Command", el("pre", el("code", command)) if command else "not recorded"),
        ("Kind", [submission["kind"], *([", model ", el("code", submission["model"])] if submission.get("model") else [])]),
        ("Checkpoint", el("code", redact_text(submission["checkpoint"])) if submission.get("checkpoint") else None),
        ("Submission sha256", el("code", submission["sha256"])),
        ("Predictions", predictions),
        ("Weights", el("a", weights_url, href=weights_url, rel="nofollow noopener noreferrer")
         if weights_url else "not published"),
        ("Links", join(external_links(submission.get("paper_url"), submission.get("code_url"),
                                      submission.get("url")), " ") or None),
        ("Training data", [training_badge(submission), f" ({share * 100:.0f}% synthetic)" if share else None,
                           "; zero-shot" if is_zero_shot(row.entry) else None]),
        ("Dataset", [dataset["name"], " @ ", el("code", dataset["revision"]), ", split ", el("code", dataset["split"])]),
        ("Content fingerprint", el("code", str(dataset["fingerprint"]))),
        ("Bootstrap", _bootstrap_text(data)),
        ("fetal-bench", [el("code", data["fetal_bench_version"]), ", commit ", commit_text]),
        ("Environment", ", ".join(f"{k} {redact_text(str(v))}" for k, v in sorted(environment.items())
                                  if not k.startswith("fetal_bench") and isinstance(v, (str, int, float)))[:600]
         if isinstance(environment, dict) else None),
        ("Created", data["created_at"]),
    ]
    rescored = data.get("rescored")
    if isinstance(rescored, dict):
        items.append(("Re-scored", ["from a task version ", el("code", str(rescored.get("task_version", "?"))),
                                    " result made ", rescored.get("created_at", "?"), " (sha256 ",
                                    el("code", str(rescored.get("from_sha256", ""))[:12]), "…)"]))
    return _dl(items)


def _bootstrap_text(data: dict) -> str:
    boot = data.get("bootstrap") or {}
    unit = boot.get("unit", "subject")
    return (f"{boot.get('n_resamples', '?')} resamples of whole {unit} groups, seed {boot.get('seed', '?')}; "
            f"{data['n_samples']} images of {data['n_subjects']} subjects")


def render_result_page(page: Page, row: RankedRow, *, board_label: str | None, json_link: str,
                       predictions_link: str | None) -> str:
    data = row.entry.data
    task_page = page.ctx.task_pages.get(data["task"])
    body: list[Any] = [
        el("p", el("a", f"← {data['task']}", href=page.link(task_page)) if task_page else
           el("a", "← All tasks", href=page.link("index.html")), class_="crumbs"),
        el("h1", data["submission"]["name"]),
        _status(row, board_label),
        section("Provenance", _provenance(page, row, predictions_link),
                el("p", ["The result file: ", el("a", "JSON", href=json_link, type="application/json"), "."])),
        section("Scores", _scores_table(data["scores"]),
                lead="Every metric with its 95% bootstrap interval (resampling whole subjects)."),
    ]
    body += _groups_tables(data)
    for block in (_confusion(data), _hc_errors(row)):
        if block is not None:
            body.append(block)
    per_class = data.get("per_class")
    if isinstance(per_class, dict) and per_class.get("f1"):
        body.append(section("F1 per class", el("div", el("table", el("tbody", [
            el("tr", [el("th", label, scope="row"), el("td", fmt_value(value, "f1"), class_="num")])
            for label, value in per_class["f1"].items()]), class_="plain-table"), class_="table-wrap fit")))
    notes = [n for n in data.get("notes", []) if isinstance(n, str)]
    if notes:
        body.append(section("Notes", el("ul", [el("li", redact_text(n)) for n in notes])))
    return frame(page, f"{data['submission']['name']} · {data['task']} · fetal-bench leaderboard", join(body, "\n"))


__all__ = ["HC_BANDS", "render_result_page"]
