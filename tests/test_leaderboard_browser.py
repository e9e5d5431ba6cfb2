"""The built leaderboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The site is built from real results (:func:`leaderboard_fixtures.phantom_board`: predictions on
the embedded phantom set, scored by ``fetal-bench evaluate``, which the build scores again,
verifies and ranks) plus a few made-up files (their scores invented, no predictions: shown apart
as unverified, never ranked; one has a hostile name), and loaded from ``file://`` as a user
opening ``site/index.html`` would. Checked here:

- no console errors, no dialogs, nothing from a result file run as markup;
- rows in rank order with ties sharing a rank; which results are not distinguishable from #1
  (paired bootstrap), as the page says it and as the CSV export says it;
- header clicks sort (and keyboard), the text, training-data and zero-shot filters hide rows, and
  the filters and sort are kept in the URL: a link reproduces the view;
- sort buttons exist only when the script ran (with JavaScript off the headers are plain text);
- "Skip to content" is the first tab stop and moves the focus to <main>;
- at 390 and 1280 px, on every kind of page (overview, task pages, per-result pages): no
  horizontal overflow of the page, every visible text (SVG chart text included) at WCAG AA
  contrast >= 4.5:1 against its background, chart text at least 10 px high on screen, and a
  screenshot (saved into pytest's tmp dir and, when ``FETAL_BENCH_ARTIFACTS`` is set, into that
  folder for CI to keep);
- published reference rows marked, never ranked, and stacked as cards on a narrow screen;
- a per-result page shows its command and code commit as visible text;
- a table's CSV download holds its rows; the ranking fits 1,400 px without sideways scrolling.

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
from urllib.parse import parse_qs, urlsplit

import pytest

from fetal_bench.leaderboard import build_site
from leaderboard_fixtures import (
    EXAMPLE_CARD, PHANTOM_BOARD, XSS_NAME, example_results, make_result, make_synthetic_dataset, phantom_board,
    write_results,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(300),
]

# The flags this machine needs: no sandbox as root, no GPU, and no background connections
# (the network is closed; without these Chromium retries Google's hosts at every start).
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS_ENV = "FETAL_BENCH_ARTIFACTS"

# Made-up phantom-planes results: no predictions, so unverified. One claims a better accuracy than
# every real result (it must still not be ranked); one has a name made to break out of an attribute.
CLAIMS_FIRST = "example-made-up-claims-first"
HOSTILE_UNVERIFIED = '"><img src=x onerror=alert(11)>'
TRAINING = {name: keywords["training_data"] for task, name, _, keywords in PHANTOM_BOARD if task == "phantom-planes"}


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    root = phantom_board(tmp_path_factory.mktemp("board"))
    real = json.loads(next((root / "results").glob("phantom-planes__*.json")).read_text(encoding="utf-8"))
    fingerprint = real["dataset"]["fingerprint"]
    made_up = [make_result("phantom-planes", CLAIMS_FIRST, 0.99, fingerprint=fingerprint, training_data="real",
                           description="Made-up: claims a score but names no predictions that exist."),
               make_result("phantom-planes", HOSTILE_UNVERIFIED, 0.5, fingerprint=fingerprint,
                           training_data="synthetic", description="<script>alert(12)</script>")]
    write_results(root / "results", made_up, names=["made-up-claims-first.json", "made-up-hostile.json"])
    (root / "results" / "broken.json").write_text('{"task": "phantom-planes", "scores": NaN}')
    return root


@pytest.fixture(scope="module")
def site(board) -> Path:
    build_site(board / "results", board / "site")
    return board / "site"


def _result_file(board: Path, name: str) -> dict:
    for path in sorted((board / "results").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if data.get("submission", {}).get("name") == name:
            return data
    raise AssertionError(f"no result named {name!r}")


def _result_page(site: Path, name: str) -> str:
    """The site path of a result's own page (beside its JSON copy in results/)."""
    for path in sorted((site / "results").glob("*.json")):
        if json.loads(path.read_text(encoding="utf-8"))["submission"]["name"] == name:
            page = path.with_suffix(".html")
            assert page.is_file(), page
            return f"results/{page.name}"
    raise AssertionError(f"no page for {name!r}")


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

    def __init__(self, browser, width: int = 1400, *, javascript: bool = True):
        self.context = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1,
                                           java_script_enabled=javascript)
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

    def open(self, target: Path | str) -> None:
        self.page.goto(target.as_uri() if isinstance(target, Path) else target)
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

    def clean(self, *, allow_aborted: str | None = None) -> bool:
        # A download ends its navigation request as "aborted" by design; nothing else may fail.
        errors = [e for e in self.errors if not (allow_aborted and e.endswith(allow_aborted))]
        assert self.dialogs == [] and errors == [], (self.dialogs, errors)
        return True

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def watched(browser):
    page = Watched(browser)
    yield page
    page.close()


@pytest.fixture()
def narrow(browser):
    page = Watched(browser, 390)
    yield page
    page.close()


def _column(page, table: str, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(f"#{table} tbody tr:not([hidden]) {selector}").all_inner_texts()]


def _header(page, table: str, label: str):
    return page.locator(f"#{table} thead th").filter(has_text=label).first


def _cells(page, table: str, label: str) -> list[str]:
    """The visible rows' cells under the header that contains ``label``."""
    headers = page.locator(f"#{table} thead th").all_inner_texts()
    index = next(i for i, text in enumerate(headers) if label in text)
    return _column(page, table, f"> td:nth-child({index + 1})")


def _ranks(values: list[float]) -> list[str]:
    """Competition ranks ("1224") of values already in best-first order."""
    return [str(1 + sum(1 for other in values if other > value)) for value in values]


# ------------------------------------------------------------------------------------------
# In-page measurements


# WCAG 2 contrast of every visible text: the text node's colour (SVG text: its fill) against
# the first non-transparent background up its ancestors (semi-transparent ones composited, the
# canvas white), and the same for generated ::before/::after text (the stacked cards' labels).
CONTRAST_JS = """() => {
  const parse = (value) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(value || "");
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = (element) => {
    const layers = [];
    for (let e = element; e; e = e.parentElement) {
      const bg = parse(getComputedStyle(e).backgroundColor);
      if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    let color = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i -= 1) color = over(layers[i], color);
    return color;
  };
  const channel = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const ratio = (a, b) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hex = (c) => "#" + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, "0")).join("");
  const failures = [];
  let checked = 0;
  const check = (element, text, colour) => {
    const bg = background(element);
    const fg = over(parse(colour) || [0, 0, 0, 1], bg);
    const r = ratio(fg, bg);
    checked += 1;
    if (r < 4.5) {
      failures.push({text: text.trim().slice(0, 60), element: element.tagName.toLowerCase() + "." +
                     String(element.getAttribute("class") || ""), colour: hex(fg), background: hex(bg),
                     ratio: Math.round(r * 100) / 100});
    }
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.nodeValue.trim() || !element || seen.has(element)) continue;
    seen.add(element);
    if (element.closest("script, style, title, desc")) continue;  // an SVG <title> is a tooltip, not drawn
    if (!element.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const style = getComputedStyle(element);
    check(element, node.nodeValue, element instanceof SVGElement ? style.fill : style.color);
  }
  for (const element of document.body.querySelectorAll("*")) {
    for (const pseudo of ["::before", "::after"]) {
      const style = getComputedStyle(element, pseudo);
      const content = style.content;
      if (!content || content === "none" || content === "normal" || content === '""') continue;
      if (style.display === "none" || !element.checkVisibility({visibilityProperty: true})) continue;
      check(element, pseudo + " " + content, style.color);
    }
  }
  return {checked, failures};
}"""

# Elements sticking out to the right of the viewport, outside a table's own scrolling box.
OVERFLOW_JS = """() => {
  const sticking = [];
  for (const e of document.body.querySelectorAll("*")) {
    if (e.closest(".table-wrap") || !e.checkVisibility()) continue;
    const r = e.getBoundingClientRect();
    if (r.right > innerWidth + 0.5)
      sticking.push(e.tagName + "." + (e.getAttribute("class") || "") + " " + Math.round(r.right));
  }
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth, sticking: sticking.slice(0, 10)};
}"""

# Each visible SVG chart text's height on screen: its font size times the drawing's scale.
CHART_TEXT_JS = """() => Array.from(document.querySelectorAll("svg.chart text"))
  .filter(t => t.checkVisibility())
  .map(t => { const m = t.getScreenCTM();
              return {text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b)}; })"""


def _assert_contrast(page) -> int:
    report = page.evaluate(CONTRAST_JS)
    assert report["failures"] == [], report["failures"]
    assert report["checked"] > 20, report
    return report["checked"]


def _assert_no_overflow(page) -> None:
    sizes = page.evaluate(OVERFLOW_JS)
    assert sizes["scrollWidth"] <= sizes["innerWidth"], sizes


def _assert_charts_readable(page) -> None:
    texts = page.evaluate(CHART_TEXT_JS)
    small = [t for t in texts if t["px"] < 10]
    assert small == [], small[:10]
    # Of each chart's two drawings (wide, narrow) exactly one shows.
    shown = page.evaluate("""() => Array.from(document.querySelectorAll(".chart-pair"))
        .map(pair => Array.from(pair.children).filter(svg => svg.checkVisibility()).length)""")
    assert all(n == 1 for n in shown), shown


def _assert_skip_link(page) -> None:
    """The first tab stop is "Skip to content"; following it puts the focus on <main>."""
    page.locator("body").focus()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Tab")
    first = page.evaluate("() => [document.activeElement.className, document.activeElement.textContent, "
                          "document.activeElement.getBoundingClientRect().top]")
    assert first[:2] == ["skip-link", "Skip to content"] and first[2] >= 0, first  # shown while focused
    page.keyboard.press("Enter")
    assert page.evaluate("() => [document.activeElement.tagName, document.activeElement.id]") == ["MAIN", "content"]


# ------------------------------------------------------------------------------------------
# The ranking


def test_ranking_is_verified_ranked_and_says_who_is_tied_with_first(site, board, watched, tmp_path):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    assert page.title().startswith("phantom-planes")
    names = _column(page, "main", ".sub-name")
    # Every real result is ranked; the made-up ones (better claimed score included) are not.
    assert sorted(names) == sorted(TRAINING) and CLAIMS_FIRST not in names
    values = [_result_file(board, n)["scores"]["accuracy"]["value"] for n in names]
    assert values == sorted(values, reverse=True)
    assert _column(page, "main", "td.rank") == _ranks(values)
    assert _column(page, "main", "td.main")[0].startswith(f"{values[0]:.3f} [")

    # The uncertainty columns and the lead agree with the CSV export, row by row.
    rows = {r["submission"]: r for r in csv.DictReader(io.StringIO(
        (site / "tasks" / "phantom-planes.main.csv").read_text(encoding="utf-8")))}
    close = {n for n in names if rows[n]["indistinguishable_from_first"].lower() == "true"}
    tied = [n for n in names[1:] if n in close]  # everyone but #1 itself, a result sharing rank 1 included
    behind = [n for n in names if n not in close]
    assert tied and behind  # the board is made to have both
    lead = page.locator("#ranking .lead").inner_text()
    assert f"Not distinguishable from #1: {', '.join(tied)}." in lead and "paired" in lead
    versus = dict(zip(names, _cells(page, "main", "vs #1")))
    ranges = dict(zip(names, _cells(page, "main", "rank range")))
    for name in names:
        low, high = rows[name]["rank_range_low"], rows[name]["rank_range_high"]
        assert ranges[name] == (low if low == high else f"{low}–{high}")
        if name in tied:
            assert versus[name].startswith(("not distinguishable from #1", "tied with #1")), versus[name]
        if name in behind:
            assert versus[name].startswith("behind #1"), versus[name]
    assert page.locator("#main td.versus.tied").count() == len(close)

    # Made-up results are listed apart, with the reason, never ranked.
    unverified = _column(page, "unverified", "td.sub")
    assert sorted(unverified) == sorted([CLAIMS_FIRST, HOSTILE_UNVERIFIED])
    assert all("predictions" in reason for reason in _column(page, "unverified", "td.reason"))
    assert "broken.json" in page.locator("section.invalid").inner_text()
    watched.screenshot(tmp_path, "leaderboard-phantom-planes.png")
    assert watched.clean()


def test_hostile_names_are_text(site, watched):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    # A verified result and an unverified one with names made of markup: shown literally.
    assert XSS_NAME in _column(page, "main", ".sub-name")
    assert HOSTILE_UNVERIFIED in _column(page, "unverified", "td.sub")
    assert page.locator("main img, main iframe").count() == 0
    assert page.evaluate("document.scripts.length") == 2  # app.js and the JSON data block only
    assert page.locator("a[href^='javascript']").count() == 0
    watched.open(site / _result_page(site, XSS_NAME))
    assert page.locator("h1").inner_text() == XSS_NAME
    assert page.locator("main img, main script").count() == 0
    assert watched.clean()


def test_header_clicks_and_keys_sort(site, watched):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    names = _column(page, "main", ".sub-name")
    ranks = _column(page, "main", "td.rank")
    assert _header(page, "main", "#").get_attribute("aria-sort") == "ascending"  # the build's order

    # First click on a text column sorts A→Z, a second click reverses.
    _header(page, "main", "Submission").locator("button").click()
    by_name = _column(page, "main", ".sub-name")
    assert by_name == sorted(names, key=str.casefold)
    assert _header(page, "main", "Submission").get_attribute("aria-sort") == "ascending"
    assert _header(page, "main", "#").get_attribute("aria-sort") is None  # one sorted column at a time
    _header(page, "main", "Submission").locator("button").click()
    assert _column(page, "main", ".sub-name") == list(reversed(by_name))
    assert _header(page, "main", "Submission").get_attribute("aria-sort") == "descending"

    # A score sorts best first on the first click, then reversed.
    _header(page, "main", "Macro F1").locator("button").click()
    f1 = [float(v) for v in _cells(page, "main", "Macro F1")]
    assert f1 == sorted(f1, reverse=True)
    _header(page, "main", "Macro F1").locator("button").click()
    assert [float(v) for v in _cells(page, "main", "Macro F1")] == sorted(f1)

    # The keyboard: Enter on a focused header button sorts, like a click.
    _header(page, "main", "#").locator("button").focus()
    page.keyboard.press("Enter")
    assert _column(page, "main", "td.rank") == ranks and _column(page, "main", ".sub-name") == names
    page.keyboard.press("Space")
    assert _column(page, "main", "td.rank") == list(reversed(ranks))
    assert _header(page, "main", "#").get_attribute("aria-sort") == "descending"
    assert watched.clean()


def test_sort_controls_only_with_javascript(site, browser, watched):
    plain = Watched(browser, javascript=False)
    try:
        plain.open(site / "tasks" / "phantom-planes.html")
        page = plain.page
        # Plain header text, no control that would do nothing; every column and row shown.
        assert page.locator("button.sort").count() == 0 and page.locator("th .arrow").count() == 0
        assert page.locator("button:visible").count() == 0  # "more columns" too needs the script
        headers = page.locator("#main thead th[data-col]")
        assert headers.count() >= 5 and "Submission" in headers.all_inner_texts()
        assert page.locator("#main th[data-opt]").first.is_visible()
        assert not page.locator(".filter").is_visible()
        assert page.locator("#main th[aria-sort]").count() == 0
        assert _column(page, "main", "td.rank")[0] == "1"
        assert plain.clean()
    finally:
        plain.close()
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    sortable = page.locator("#main thead th[data-col]").count()
    assert page.locator("#main thead th[data-col] > button.sort").count() == sortable
    assert page.locator("#main thead th:not([data-col]) button").count() == 0
    assert page.locator("#main thead button.sort").first.get_attribute("type") == "button"
    assert watched.clean()


# ------------------------------------------------------------------------------------------
# Filters and the URL


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def test_filters_hide_rows_and_live_in_the_url(site, watched):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    names = _column(page, "main", ".sub-name")
    total = page.locator("table[data-filterable] tbody tr").count()

    # The text filter hides non-matching rows in every table of the page, and shows them again.
    page.fill("#lb-filter", "cnn-close")
    assert _column(page, "main", ".sub-name") == ["example-cnn-close"]
    assert page.locator("#unverified tbody tr:not([hidden])").count() == 0
    assert f"1 of {total} rows shown" in page.locator(".filter-status").inner_text()
    assert _query(page) == {"q": ["cnn-close"]}
    page.fill("#lb-filter", "")
    assert _column(page, "main", ".sub-name") == names and _query(page) == {}

    # Training data: a kind unticked hides its rows.
    page.locator("input.filter-training[value='real']").uncheck()
    assert _column(page, "main", ".sub-name") == [n for n in names if TRAINING[n] != "real"]
    assert _query(page) == {"training": ["synthetic,hybrid,none"]}
    page.locator("input.filter-training[value='real']").check()
    # Zero-shot: said so in the file, or no training at all.
    page.locator("#lb-zero-shot").check()
    assert _column(page, "main", ".sub-name") == [n for n in names if TRAINING[n] == "none"]
    assert _query(page) == {"zero_shot": ["1"]}
    page.locator("#lb-zero-shot").uncheck()
    assert _column(page, "main", ".sub-name") == names

    # Sorting goes into the URL too; back in rank order, it leaves it.
    _header(page, "main", "Submission").locator("button").click()
    assert _query(page) == {"sort": ["main.submission.asc"]}
    _header(page, "main", "#").locator("button").click()
    assert _query(page) == {}

    # A view set by hand reloads as it was left.
    page.fill("#lb-filter", "example")
    page.locator("input.filter-training[value='none']").uncheck()
    _header(page, "main", "Macro F1").locator("button").click()
    _header(page, "main", "Macro F1").locator("button").click()
    view = _column(page, "main", ".sub-name")
    url = page.url
    assert _query(page) == {"q": ["example"], "training": ["real,synthetic,hybrid"], "sort": ["main.macro_f1.asc"]}
    watched.open(url)
    assert page.locator("#lb-filter").input_value() == "example"
    assert not page.locator("input.filter-training[value='none']").is_checked()
    assert _column(page, "main", ".sub-name") == view
    assert _header(page, "main", "Macro F1").get_attribute("aria-sort") == "ascending"
    assert watched.clean()


def test_a_link_with_parameters_restores_the_view(site, watched):
    base = (site / "tasks" / "phantom-planes.html").as_uri()
    watched.open(base + "?q=cnn&training=real,hybrid&sort=main.submission.desc,unverified.submission.asc")
    page = watched.page
    assert page.locator("#lb-filter").input_value() == "cnn"
    checked = {kind: page.locator(f"input.filter-training[value='{kind}']").is_checked()
               for kind in ("real", "synthetic", "hybrid", "none")}
    assert checked == {"real": True, "synthetic": False, "hybrid": True, "none": False}
    expected = sorted((n for n in TRAINING if "cnn" in n and TRAINING[n] in ("real", "hybrid")), key=str.casefold,
                      reverse=True)
    assert _column(page, "main", ".sub-name") == expected
    assert _header(page, "main", "Submission").get_attribute("aria-sort") == "descending"
    assert _header(page, "unverified", "Submission").get_attribute("aria-sort") == "ascending"
    assert "rows shown" in page.locator(".filter-status").inner_text()
    # Unknown tables, columns and directions are ignored; the page still works.
    watched.open(base + "?sort=nope.rank.asc,main.nope.desc,main.rank.sideways&zero_shot=1")
    assert _column(page, "main", ".sub-name") == [n for n in TRAINING if TRAINING[n] == "none"]
    assert _header(page, "main", "#").get_attribute("aria-sort") == "ascending"
    assert watched.clean()


# ------------------------------------------------------------------------------------------
# Every kind of page at 1280 and 390 px


PAGES = {
    "overview": lambda site: "index.html",
    "task": lambda site: "tasks/phantom-planes.html",
    "task-segmentation": lambda site: "tasks/phantom-head-seg.html",
    "task-references": lambda site: "tasks/planes-africa-zero-shot.html",
    "result": lambda site: _result_page(site, XSS_NAME),
    "result-segmentation": lambda site: _result_page(site, "example-unet-grown"),
}


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("kind", list(PAGES))
def test_every_page_fits_reads_and_has_a_skip_link(site, browser, tmp_path, kind, width):
    viewer = Watched(browser, width)
    try:
        viewer.open(site / PAGES[kind](site))
        page = viewer.page
        _assert_no_overflow(page)
        _assert_charts_readable(page)
        _assert_contrast(page)
        viewer.screenshot(tmp_path, f"leaderboard-{kind}-{width}.png")
        _assert_skip_link(page)
        assert viewer.clean()
    finally:
        viewer.close()


def test_contrast_holds_while_filtering_hovering_and_with_all_columns(site, narrow):
    page = narrow.page
    narrow.open(site / "tasks" / "phantom-planes.html")
    page.locator("button.more-columns[data-table='main']").click()
    page.locator("#main tbody tr.leader").first.hover()
    _assert_contrast(page)
    page.fill("#lb-filter", "zzz-no-row")
    _assert_contrast(page)
    _assert_no_overflow(page)
    assert narrow.clean()


def test_charts_have_a_narrow_drawing(site, watched, narrow):
    for viewer, shown in ((watched, "svg.chart.forest:not(.narrow)"), (narrow, "svg.chart.forest.narrow")):
        viewer.open(site / "tasks" / "phantom-planes.html")
        forest = viewer.page.locator(shown)
        assert forest.is_visible() and forest.locator("g.row").count() == len(TRAINING)
        assert viewer.page.locator("svg.chart.scatter:visible").count() == 1
        assert viewer.page.locator("svg.chart.bars:visible").count() == len(TRAINING)
        viewer.open(site / _result_page(site, "example-unet-grown"))
        assert viewer.page.locator("svg.chart.histogram:visible").count() == 1
        assert viewer.clean()


# ------------------------------------------------------------------------------------------
# Reference rows, per-result pages, downloads, overview


def test_reference_rows_are_marked_never_ranked_and_stack_on_a_phone(site, watched, narrow, tmp_path):
    watched.open(site / "tasks" / "planes-africa-zero-shot.html")
    page = watched.page
    refs = page.locator("#references tbody tr")
    assert refs.count() == 3
    assert _column(page, "references", "td.rank") == ["ref", "ref", "ref"]
    assert _column(page, "references", ".badge.ref") == ["REFERENCE"] * 3  # uppercase by CSS: visibly marked
    first = refs.first.inner_text()
    assert "FU-LoRA HB+DA, ResNet-18 (published)" in first and "0.8240" in first and "the same 233 images" in first
    assert page.locator("#references a.ext-paper").first.get_attribute("href") == "https://arxiv.org/abs/2407.20072"
    assert page.locator("#main").count() == 0  # no ranking on this task: the references are not one
    # The zero-shot switch keeps them (they are zero-shot); unticking a kind hides references of that kind.
    page.locator("#lb-zero-shot").check()
    assert page.locator("#references tbody tr:not([hidden])").count() == 3
    page.locator("input.filter-training[value='hybrid']").uncheck()
    assert _column(page, "references", ".sub-name") == ["FU-LoRA paper, real-only ES+DA, ViT-B/16 (published)"]
    assert watched.clean()

    # On a phone each reference is a card: cells stacked, labelled, the table not scrolling sideways.
    narrow.open(site / "tasks" / "planes-africa-zero-shot.html")
    page = narrow.page
    layout = page.evaluate("""() => {
        const wrap = document.querySelector('table#references').closest('.table-wrap');
        const row = document.querySelector('table#references tbody tr');
        const cells = Array.from(row.cells).filter(td => td.checkVisibility());
        return {wrap: [wrap.scrollWidth, wrap.clientWidth], row: row.getBoundingClientRect().width,
                cells: cells.map(td => td.getBoundingClientRect().width),
                labels: cells.map(td => getComputedStyle(td, '::before').content)};
    }""")
    assert layout["wrap"][0] <= layout["wrap"][1], layout
    assert all(width >= layout["row"] * 0.9 for width in layout["cells"]), layout  # one cell per line
    assert '"Accuracy"' in layout["labels"] and '"Training data"' in layout["labels"], layout["labels"]
    # Each card holds its text at the card's width, not in a tall box a few words wide (the table
    # layout made ~500 px high rows, mostly empty).
    why = page.evaluate("() => document.querySelector('#references tbody tr .why').getBoundingClientRect().width")
    assert why >= layout["row"] * 0.85, (why, layout)
    narrow.screenshot(tmp_path, "leaderboard-references-390.png")
    assert narrow.clean()


def test_result_page_shows_provenance_as_text(site, board, watched):
    data = _result_file(board, XSS_NAME)
    command = data["submission"]["command"]
    commit = (data.get("environment") or {}).get("fetal_bench_commit")
    watched.open(site / _result_page(site, XSS_NAME))
    page = watched.page
    provenance = page.locator("section").filter(has=page.locator("h2", has_text="Provenance"))

    def shown(label: str):
        term = provenance.locator("dt", has_text=label).first
        value = term.locator("xpath=following-sibling::dd[1]")
        assert term.is_visible() and value.is_visible()
        return value.inner_text()

    assert command and command in shown("Command")
    if commit:  # recorded wherever evaluate ran in a git checkout, as here
        assert commit[:40] in shown("fetal-bench")
    else:
        assert "not recorded" in shown("fetal-bench")
    assert data["dataset"]["fingerprint"] in shown("Content fingerprint")
    assert page.locator(".status .badge.ok").inner_text().lower() == "verified"
    assert "Ranked #" in page.locator(".status").inner_text()
    # The predictions it was verified on, and the result file, are linked and in the site.
    href = provenance.locator("dd a", has_text="download").get_attribute("href")
    assert href and (site / "results" / href).resolve().is_file()
    json_href = page.locator("main a", has_text="JSON").first.get_attribute("href")
    assert json.loads((site / "results" / json_href).read_text(encoding="utf-8"))["submission"]["name"] == XSS_NAME
    assert page.locator("table.confusion").is_visible()
    assert watched.clean()


def test_csv_download_link_gives_the_table_rows(site, watched, tmp_path):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    names = _column(page, "main", ".sub-name")
    link = page.locator("#ranking a.dl-csv")
    assert link.get_attribute("href") == "phantom-planes.main.csv"
    with page.expect_download() as info:
        link.click()
    target = tmp_path / "ranking.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["submission"] for r in rows] == names and XSS_NAME in names
    assert [r["rank"] for r in rows] == _column(page, "main", "td.rank")
    assert {r["verified"].lower() for r in rows} == {"true"} and all(r["uncertainty_method"] for r in rows)
    assert {r["indistinguishable_from_first"].lower() for r in rows} == {"true", "false"}
    json_href = page.locator("#ranking a.dl-json").get_attribute("href")
    payload = json.loads((site / "tasks" / json_href).read_text())
    assert [r["submission"] for r in payload["rows"]] == names
    assert watched.clean(allow_aborted="/phantom-planes.main.csv")


def test_overview_links_to_task_and_result_pages(site, watched):
    watched.open(site / "index.html")
    page = watched.page
    assert page.locator("h1").inner_text() == "fetal-bench leaderboard"
    assert "broken.json" in page.locator("section.invalid").inner_text()
    leader = page.locator("#tasks tbody tr").filter(has_text="phantom-planes").locator("td").nth(3).inner_text()
    assert "example-cnn-best" in leader and "example-cnn-tied" in leader and "example-cnn-close" in leader
    page.locator("a.task-link", has_text="phantom-planes").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("tasks/phantom-planes.html")
    page.locator("#main a.sub-name", has_text="example-cnn-weak").click()
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text() == "example-cnn-weak"
    assert watched.clean()


def test_ranking_fits_1400px_without_sideways_scrolling(site, watched, tmp_path):
    watched.open(site / "tasks" / "phantom-planes.html")
    page = watched.page
    sizes = page.evaluate("""() => {
        const wrap = document.querySelector('#main').closest('.table-wrap');
        return {wrap: wrap.scrollWidth, visible: wrap.clientWidth, page: document.documentElement.scrollWidth};
    }""")
    assert sizes["wrap"] <= sizes["visible"] and sizes["page"] <= 1400, sizes
    # The collapsed columns come back with one click (then the table may scroll), and go again.
    button = page.locator("button.more-columns[data-table='main']")
    assert page.locator("#main th[data-opt]:visible").count() == 0 and button.is_visible()
    button.click()
    assert page.locator("#main th[data-opt]:visible").count() >= 2
    assert button.get_attribute("aria-expanded") == "true"
    button.click()
    assert page.locator("#main th[data-opt]:visible").count() == 0
    assert watched.clean()


# ------------------------------------------------------------------------------------------
# The committed baselines, and a synthetic dataset's card


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
def test_committed_baselines_with_references_and_downloads(committed_site, watched, tmp_path, task, references):
    """Where the datasets are at hand the baselines are verified and ranked, best first; where not
    (offline, no cache) they are listed as unverified with the reason. Either way every committed
    result is on its page, beside the published reference rows."""
    committed = _committed(task)
    assert committed
    watched.open(committed_site / "tasks" / f"{task}.html")
    page = watched.page
    ranked = _column(page, "main", ".sub-name") if page.locator("#main").count() else []
    apart = _column(page, "unverified", "td.sub") if page.locator("#unverified").count() else []
    assert sorted(ranked + apart) == sorted(committed)
    table = "main" if ranked else "unverified"
    if ranked:
        main = next(iter(committed.values()))["scores"]["main_score"]
        sign = -1 if next(iter(committed.values())).get("higher_is_better", True) else 1
        assert ranked == sorted(ranked, key=lambda n: sign * committed[n]["scores"][main]["value"])
    else:
        assert all(reason for reason in _column(page, "unverified", "td.reason"))
    assert page.locator("#references tbody tr").count() == references
    if references:
        assert set(_column(page, "references", "td.rank")) == {"ref"}
    link = page.locator(f"a.dl-csv[href='{task}.{table}.csv']")
    with page.expect_download() as info:
        link.click()
    target = tmp_path / f"{task}.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert sorted(r["submission"] for r in rows) == sorted(ranked or apart)
    _assert_contrast(page)
    watched.screenshot(tmp_path, f"leaderboard-committed-{task}.png")
    assert watched.clean(allow_aborted=f"/{task}.{table}.csv")


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
    _assert_contrast(watched.page)
    assert watched.clean()
