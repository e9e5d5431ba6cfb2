"""The built leaderboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The site is loaded from ``file://`` (as a user opening ``site/index.html`` would): no console
errors, rows in rank order, header clicks re-sort, the filter hides rows, a hostile submission
name shows as text without any dialog, and screenshots are saved (into pytest's tmp dir and, when
``FETAL_BENCH_ARTIFACTS`` is set, into that folder for CI to keep).

Skips cleanly where Chromium or Playwright is missing; CI (``.ci/run``) installs both. Playwright
never downloads a browser here: it drives ``shutil.which("chromium")``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fetal_bench.leaderboard import build_site
from fetal_bench.leaderboard.testing import XSS_NAME, example_results, write_results

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
    write_results(root / "results", example_results())
    (root / "results" / "broken.json").write_text('{"task": "hc18-head-seg", "scores": NaN}')
    build_site(root / "results", root / "site")
    return root / "site"


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
    page.fill("#lb-filter", "synthetic")
    visible = _column(page, "main", ".sub-name")
    assert visible == ["example-unet-synthetic"]
    assert page.locator("#variant-1 tbody tr:not([hidden])").count() == 0
    assert "1 of 8 rows shown" in page.locator(".filter-status").inner_text()
    page.fill("#lb-filter", "")
    assert len(_column(page, "main", ".sub-name")) == 6

    # Flagged variant apart, invalid file listed with its reason.
    assert page.locator("section.variant").count() == 1
    assert "dataset revision v0.9" in page.locator("section.variant .flag-reason").inner_text()
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
