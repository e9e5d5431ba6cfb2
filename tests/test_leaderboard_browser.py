"""The built leaderboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The site is loaded from ``file://`` (as a user opening ``site/index.html`` would): no console
errors, rows in rank order, header clicks re-sort, the text, training-data and zero-shot filters
hide rows, published reference rows are shown marked and unranked, a table's CSV download holds
its rows, the ranking fits a 1,400 px window without sideways scrolling, a hostile submission
name shows as text without any dialog, and screenshots are saved (into pytest's tmp dir and, when
``FETAL_BENCH_ARTIFACTS`` is set, into that folder for CI to keep).

Skips cleanly where Chromium or Playwright is missing; CI (``.ci/run``) installs both. Playwright
never downloads a browser here: it drives ``shutil.which("chromium")``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from fetal_bench.leaderboard import build_site
from leaderboard_fixtures import (
    EXAMPLE_CARD, XSS_NAME, example_results, make_result, make_synthetic_dataset, write_results,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(180),
]

# The flags this machine needs: no sandbox as root, no GPU, and no background connections
# (the network is closed; without these Chromium retries Google's hosts at every start).
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS_ENV = "FETAL_BENCH_ARTIFACTS"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("leaderboard")
    write_results(root / "results", example_results() + _planes_africa_results())
    (root / "results" / "broken.json").write_text('{"task": "hc18-head-seg", "scores": NaN}')
    build_site(root / "results", root / "site")
    return root / "site"


def _planes_africa_results() -> list[dict]:
    """Made-up results on the fine-tuning task: every metric, per-country scores, long names and
    links, mixed training data and zero-shot, as wide a ranking as the real baselines make."""
    metrics = ("balanced_accuracy", "macro_f1", "weighted_f1", "auc_ovr_macro", "auc_ovr_hard", "ece")
    countries = ("Algeria", "Egypt", "Ghana", "Malawi", "Uganda")
    rows = [("example-sononet16-finetuned-african-train-split-cpu-recipe", 0.871, "real", None, None),
            ("example-resnet18-imagenet-finetuned-african-train", 0.842, "real", None, None),
            ("example-sononet16-as-shipped-task-labels-only", 0.612, "none", None, None),
            ("example-vit-b16-fu-lora-hybrid-half-synthetic", 0.655, "hybrid", 0.5, True)]
    results = []
    for i, (name, value, training, share, zero_shot) in enumerate(rows):
        result = make_result("planes-africa", name, value, metrics={m: round(value - 0.05 - j / 100, 4) if m != "ece"
                                                                    else 0.08 for j, m in enumerate(metrics)},
                             groups={"country": {c: round(value - k / 50, 3) for k, c in enumerate(countries)}},
                             training_data=training, synthetic_share=share, model="sononet16",
                             description="Made-up scores for the leaderboard browser tests.",
                             created_at=f"2026-03-0{i + 1}T10:00:00+00:00")
        result["submission"].update(paper_url="https://example.org/paper", code_url="https://example.org/code")
        if zero_shot is not None:
            result["submission"]["zero_shot"] = zero_shot
        results.append(result)
    return results


@pytest.fixture(scope="module")
def browser():
    # A launch failure is an error, not a skip: where both are installed (CI) the tests must run.
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


class Watched:
    """A page with its console errors, uncaught exceptions and dialogs recorded."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"requestfailed: {r.url}"))

        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        target = tmp_path / name
        self.page.screenshot(path=str(target), full_page=True)
        artifacts = os.environ.get(ARTIFACTS_ENV)
        if artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, Path(artifacts) / name)
        assert target.stat().st_size > 10_000 and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        return target

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def watched(browser):
    page = Watched(browser)
    yield page
    page.close()


def _column(page, table: str, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(f"#{table} tbody tr:not([hidden]) {selector}").all_inner_texts()]


def _header(page, table: str, label: str):
    return page.locator(f"#{table} thead th").filter(has_text=label).first


def test_task_page_ranks_sorts_filters_and_escapes(site, watched, tmp_path):
    watched.open(site / "tasks" / "hc18-head-seg.html")
    page = watched.page
    assert page.title().startswith("hc18-head-seg")

    # Rows arrive in rank order; ties share a rank; the null score is last and unranked.
    assert _column(page, "main", "td.rank") == ["1", "2", "2", "4", "5", "—"]
    names = _column(page, "main", ".sub-name")
    assert names[0] == "example-unet-hybrid-50" and names[-1] == "example-failed-run"
    assert _column(page, "main", "td.main")[0] == "0.968 [0.95, 0.99]"

    # The hostile name is text: shown literally, no element made from it, no dialog.
    assert XSS_NAME in names
    assert page.locator("#main img").count() == 0
    assert page.evaluate("document.scripts.length") == 2  # app.js and the JSON data block only
    assert page.locator("a[href^='javascript']").count() == 0

    # The script ran (the filter box is revealed) and read the embedded data.
    assert page.locator(".filter").is_visible()

    # Sorting: first click on a text column sorts A→Z, a second click reverses.
    _header(page, "main", "Submission").locator("button").click()
    by_name = _column(page, "main", ".sub-name")
    assert by_name == sorted(names, key=str.casefold)
    assert _header(page, "main", "Submission").get_attribute("aria-sort") == "ascending"
    _header(page, "main", "Submission").locator("button").click()
    assert _column(page, "main", ".sub-name") == list(reversed(by_name))
    assert _header(page, "main", "Submission").get_attribute("aria-sort") == "descending"

    # A lower-is-better metric sorts best (smallest) first on the first click; missing values stay last.
    _header(page, "main", "HD95").locator("button").click()
    hd95 = _column(page, "main", "td:nth-child(5)")
    numbers = [float(v) for v in hd95 if v != "—"]
    assert numbers == sorted(numbers) and hd95[-1] == "—"
    _header(page, "main", "HD95").locator("button").click()
    hd95 = _column(page, "main", "td:nth-child(5)")
    numbers = [float(v) for v in hd95 if v != "—"]
    assert numbers == sorted(numbers, reverse=True) and hd95[-1] == "—"

    # Back to rank order with one click on the rank header; a second click reverses it.
    _header(page, "main", "#").locator("button").click()
    assert _column(page, "main", "td.rank") == ["1", "2", "2", "4", "5", "—"]
    _header(page, "main", "#").locator("button").click()
    assert _column(page, "main", "td.rank") == ["5", "4", "2", "2", "1", "—"]
    _header(page, "main", "#").locator("button").click()
    assert _column(page, "main", ".sub-name") == names

    # The filter hides non-matching rows in every table on the page, and shows them again.
    page.fill("#lb-filter", "unet-synthetic")
    visible = _column(page, "main", ".sub-name")
    assert visible == ["example-unet-synthetic"]
    assert page.locator("#variant-1 tbody tr:not([hidden])").count() == 0
    assert "1 of 9 rows shown" in page.locator(".filter-status").inner_text()  # 6 + 2 + 1 reference
    page.fill("#lb-filter", "")
    assert len(_column(page, "main", ".sub-name")) == 6

    # Flagged variant apart, invalid file listed with its reason.
    assert page.locator("section.variant").count() == 1
    assert "dataset revision v0.9" in page.locator("section.variant .flag-reason").inner_text()
    assert page.locator("section.variant h2").inner_text().strip() == "NOT COMPARABLE revision v0.9"
    assert "NaN" in page.locator("section.invalid").inner_text()

    shot = watched.screenshot(tmp_path, "leaderboard-hc18-head-seg.png")
    print(f"screenshot: {shot}")
    assert watched.dialogs == []
    assert watched.errors == []


def test_group_page_and_charts(site, watched, tmp_path):
    watched.open(site / "tasks" / "planes-africa-zero-shot.html")
    page = watched.page
    assert _column(page, "main", "td.rank") == ["1", "2", "3"]
    assert page.locator("svg.chart.bars").count() == 3 and page.locator("svg.chart.scatter").count() == 1
    assert page.locator("svg.chart.forest g.row").count() == 3
    watched.screenshot(tmp_path, "leaderboard-planes-africa-zero-shot.png")
    # Sorting by a per-country column, best first, then reversed.
    _header(page, "main", "Uganda").locator("button").click()
    uganda = [float(v) for v in _column(page, "main", "td.group.worst")]
    assert uganda == sorted(uganda, reverse=True)
    _header(page, "main", "Uganda").locator("button").click()
    assert [float(v) for v in _column(page, "main", "td.group.worst")] == sorted(uganda)
    assert watched.dialogs == [] and watched.errors == []


def test_overview_links_to_task_pages_and_json(site, watched, tmp_path):
    watched.open(site / "index.html")
    page = watched.page
    assert page.locator("h1").inner_text() == "fetal-bench leaderboard"
    assert "broken.json" in page.locator("section.invalid").inner_text()
    leader = page.locator("#tasks tbody tr").filter(has_text="hc18-head-seg").locator("td").nth(3).inner_text()
    assert leader.strip() == "example-unet-hybrid-50"
    watched.screenshot(tmp_path, "leaderboard-overview.png")
    page.locator("a.task-link", has_text="hc18-head-seg").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("tasks/hc18-head-seg.html")
    href = page.locator("a.json-link").first.get_attribute("href")
    assert href and (site / "tasks" / href).resolve().is_file()
    assert watched.dialogs == [] and watched.errors == []


def test_reference_rows_are_marked_and_never_ranked(site, watched, tmp_path):
    watched.open(site / "tasks" / "planes-africa-zero-shot.html")
    page = watched.page
    assert _column(page, "main", "td.rank") == ["1", "2", "3"]
    refs = page.locator("#references tbody tr")
    assert refs.count() == 3
    assert _column(page, "references", "td.rank") == ["ref", "ref", "ref"]
    assert _column(page, "references", ".badge.ref") == ["REFERENCE"] * 3  # uppercase by CSS: visibly marked
    first = refs.first.inner_text()
    assert "FU-LoRA HB+DA, ResNet-18 (published)" in first and "0.8240" in first and "the same 233 images" in first
    assert page.locator("#references a.ext-paper").first.get_attribute("href") == "https://arxiv.org/abs/2407.20072"
    # Not one reference name in the ranking.
    assert not any("published" in n for n in _column(page, "main", ".sub-name"))
    shot = watched.screenshot(tmp_path, "leaderboard-planes-africa-zero-shot-references.png")
    print(f"screenshot: {shot}")
    assert watched.dialogs == [] and watched.errors == []


def test_csv_download_link_gives_the_table_rows(site, watched, tmp_path):
    watched.open(site / "tasks" / "hc18-head-seg.html")
    page = watched.page
    link = page.locator("#ranking a.dl-csv")
    assert link.get_attribute("href") == "hc18-head-seg.main.csv"
    with page.expect_download() as info:
        link.click()
    target = tmp_path / "ranking.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["rank"] for r in rows] == ["1", "2", "2", "4", "5", ""]
    assert [r["submission"] for r in rows][:3] == ["example-unet-hybrid-50", "example-unet-hybrid-25",
                                                   "example-unet-real"]
    assert rows[0]["dice"] == "0.968" and rows[0]["dice ci95 low"] == "0.948"
    assert XSS_NAME in [r["submission"] for r in rows]
    json_href = page.locator("#ranking a.dl-json").get_attribute("href")
    payload = json.loads((site / "tasks" / json_href).read_text())
    assert [r["rank"] for r in payload["rows"]] == [1, 2, 2, 4, 5, None]
    # A download ends its navigation request as "aborted" by design; nothing else may fail.
    assert watched.dialogs == [] and [e for e in watched.errors if not e.endswith("/hc18-head-seg.main.csv")] == []


def test_training_data_and_zero_shot_filters(site, watched, tmp_path):
    watched.open(site / "tasks" / "planes-africa.html")
    page = watched.page
    names = _column(page, "main", ".sub-name")
    assert len(names) == 4
    page.locator("input.filter-training[value='real']").uncheck()
    assert _column(page, "main", ".sub-name") == ["example-vit-b16-fu-lora-hybrid-half-synthetic",
                                                  "example-sononet16-as-shipped-task-labels-only"]
    page.locator("input.filter-training[value='real']").check()
    page.locator("#lb-zero-shot").check()
    # Zero-shot: said so in the file, or no training at all.
    assert _column(page, "main", ".sub-name") == ["example-vit-b16-fu-lora-hybrid-half-synthetic",
                                                  "example-sononet16-as-shipped-task-labels-only"]
    assert "2 of 4 rows shown" in page.locator(".filter-status").inner_text()
    page.locator("#lb-zero-shot").uncheck()
    assert _column(page, "main", ".sub-name") == names

    # On the zero-shot task every result is zero-shot; unticking a kind hides references of that kind too.
    watched.open(site / "tasks" / "planes-africa-zero-shot.html")
    page.locator("#lb-zero-shot").check()
    assert len(_column(page, "main", ".sub-name")) == 3 and page.locator("#references tbody tr:not([hidden])").count() == 3
    page.locator("input.filter-training[value='hybrid']").uncheck()
    assert _column(page, "main", ".sub-name") == ["example-resnet-es", "example-resnet-synthetic"]
    assert _column(page, "references", ".sub-name") == ["FU-LoRA paper, real-only ES+DA, ViT-B/16 (published)"]
    assert watched.dialogs == [] and watched.errors == []


@pytest.mark.parametrize("task", ["planes-africa", "planes-africa-zero-shot", "hc18-head-seg"])
def test_ranking_fits_1400px_without_sideways_scrolling(site, watched, tmp_path, task):
    watched.open(site / "tasks" / f"{task}.html")
    page = watched.page
    sizes = page.evaluate("""() => {
        const wrap = document.querySelector('#main').closest('.table-wrap');
        return {wrap: wrap.scrollWidth, visible: wrap.clientWidth, page: document.documentElement.scrollWidth};
    }""")
    assert sizes["wrap"] <= sizes["visible"] and sizes["page"] <= 1400, sizes
    # The collapsed columns come back with one click (then the table may scroll), and go again.
    button = page.locator("button.more-columns[data-table='main']")
    hidden_before = page.locator("#main th[data-opt]:visible").count()
    assert hidden_before == 0 and button.is_visible()
    button.click()
    assert page.locator("#main th[data-opt]:visible").count() >= 2
    assert button.get_attribute("aria-expanded") == "true"
    button.click()
    assert page.locator("#main th[data-opt]:visible").count() == 0
    if task == "planes-africa":
        watched.screenshot(tmp_path, "leaderboard-planes-africa.png")
    assert watched.dialogs == [] and watched.errors == []


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def committed_site(tmp_path_factory) -> Path:
    """The site as the project publishes it: built from the committed baseline results."""
    out = tmp_path_factory.mktemp("committed") / "site"
    build_site(REPO / "leaderboard" / "results", out)
    return out


def _committed(task: str) -> dict[str, dict]:
    results = {}
    for path in sorted((REPO / "leaderboard" / "results").glob(f"{task}__*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        results[result["submission"]["name"]] = result
    return results


@pytest.mark.parametrize(("task", "references"), [("hc18-head-seg", 1), ("planes-africa-zero-shot", 3),
                                                  ("planes-africa", 0)])
def test_committed_baselines_are_ranked_with_references_and_downloads(committed_site, watched, tmp_path, task,
                                                                      references):
    committed = _committed(task)
    assert committed and all(r["dataset"]["revision"] == "v1.0" for r in committed.values())
    watched.open(committed_site / "tasks" / f"{task}.html")
    page = watched.page
    # Every committed result is ranked in the main table (v1.0: none is set apart as not comparable),
    # best main score first.
    names = _column(page, "main", ".sub-name")
    main = next(iter(committed.values()))["scores"]["main_score"]
    expected = sorted(committed, key=lambda n: -committed[n]["scores"][main]["value"])
    assert names == expected
    assert _column(page, "main", "td.rank") == [str(i + 1) for i in range(len(expected))]
    assert page.locator("section.variant").count() == 0
    assert page.locator("#references tbody tr").count() == references
    if references:
        assert set(_column(page, "references", "td.rank")) == {"ref"}
    # The ranking's CSV download holds exactly those rows with the committed scores.
    link = page.locator("#ranking a.dl-csv")
    with page.expect_download() as info:
        link.click()
    target = tmp_path / f"{task}.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["submission"] for r in rows] == expected
    for row in rows:
        assert float(row[main]) == pytest.approx(committed[row["submission"]]["scores"][main]["value"], abs=5e-4)
    shot = watched.screenshot(tmp_path, f"leaderboard-committed-{task}.png")
    print(f"screenshot: {shot}")
    assert watched.dialogs == [] and [e for e in watched.errors if not e.endswith(f"/{task}.main.csv")] == []


HOSTILE_CARD = EXAMPLE_CARD + (
    "\n- plain\n  - nested *one*\n  - nested two\n\nline one  \nline two\n\n"
    "[ok](https://example.org/card) [bad](javascript:alert(7)) <javascript:alert(8)>\n\n"
    "![remote image](https://example.org/x.png) <img src=x onerror=alert(9)>\n\n"
    '<a href="javascript:alert(10)">raw link</a> <iframe src="https://example.org"></iframe>\n')


def test_synthetic_card_renders_safely_under_the_csp(tmp_path, watched):
    """A synthetic dataset's card (untrusted Markdown) in the browser: the constructs render, nothing
    runs, no image is fetched, and nothing breaks the Content-Security-Policy (an inline style would
    show here as a console error)."""
    make_synthetic_dataset(tmp_path / "syn" / "synthetic-example", card=HOSTILE_CARD)
    write_results(tmp_path / "results", example_results()[:1])
    build_site(tmp_path / "results", tmp_path / "site", synthetic_dirs=[tmp_path / "syn"])
    watched.open(tmp_path / "site" / "synthetic" / "synthetic-example.html")
    card = watched.page.locator("section .card-body")
    assert card.locator("h2").inner_text() == "Synthetic example"
    assert card.locator("td.num").inner_text() == "6"  # the right-aligned column, by class
    assert card.locator("ul ul li").all_inner_texts() == ["nested one", "nested two"]
    assert card.locator("p", has_text="line one").inner_html() == "line one<br>\nline two"
    hrefs = card.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/card", "https://example.org/x.png"]
    assert card.locator("img, iframe, script").count() == 0
    assert "<script>alert(6)</script>" in card.inner_text() and "raw link</a>" in card.inner_text()
    assert watched.dialogs == [] and watched.errors == []

