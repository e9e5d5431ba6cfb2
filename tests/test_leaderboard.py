"""The leaderboard library and CLI without a browser: validation, comparability, ranks, escaping,
determinism, atomic output, synthetic dataset pages.

Every result here is made up (``tests/leaderboard_fixtures.py``) and lives in a temporary folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fetal_bench.errors import FetalBenchError
from fetal_bench.leaderboard import build_boards, build_site, load_results, rank_entries, render_site
from fetal_bench.leaderboard.html import el, escape, json_for_script, safe_external_url
from fetal_bench.leaderboard.loading import ResultEntry
from fetal_bench.leaderboard.markdown import MAX_CARD_CHARS, render as render_markdown
from fetal_bench.leaderboard.ranking import task_info
from fetal_bench.leaderboard.site import MARKER
from leaderboard_fixtures import (
    XSS_NAME, example_results, make_result, make_synthetic_dataset, write_results,
)


def _entry(result: dict, path: str = "x.json") -> ResultEntry:
    raw = json.dumps(result).encode()
    return ResultEntry(path, raw, result)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _data_block(html_text: str) -> dict:
    match = re.search(r'<script type="application/json" id="leaderboard-data">(.*?)</script>', html_text, re.S)
    assert match, "the page embeds its data"
    block = match.group(1)
    assert "</" not in block and "<!--" not in block and "<" not in block
    return json.loads(block)


def _rank_cells(html_text: str, table_id: str) -> list[str]:
    table = html_text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<td class="num rank"[^>]*>([^<]*)</td>', table)


def _names_in_table(html_text: str, table_id: str) -> list[str]:
    table = html_text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<div class="sub-name"[^>]*>([^<]*)</div>', table)


# ---------------------------------------------------------------------------------------------
# Validation


def test_invalid_files_are_listed_with_reasons_and_never_ranked(tmp_path):
    results = tmp_path / "results"
    good = make_result("hc18-head-seg", "example-good", 0.9)
    write_results(results, [good], names=["good.json"])
    (results / "nan.json").write_text(json.dumps(good).replace('"value": 0.9', '"value": NaN'))
    (results / "not-json.json").write_text("{ this is not json")
    (results / "array.json").write_text("[1, 2]")
    (results / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    missing = dict(make_result("hc18-head-seg", "example-missing", 0.8))
    del missing["dataset"]
    bad_sha = make_result("hc18-head-seg", "example-bad-sha", 0.8)
    bad_sha["submission"]["sha256"] = "not-a-hash"
    no_main = make_result("hc18-head-seg", "example-no-main", 0.8)
    no_main["scores"]["main_score"] = "hd95_mm"
    bad_date = make_result("hc18-head-seg", "example-bad-date", 0.8)
    bad_date["created_at"] = "yesterday"
    duplicate_keys = json.dumps(make_result("hc18-head-seg", "example-dupkeys", 0.8))[:-1] + ', "task": "other"}'
    copied = make_result("hc18-head-seg", "example-copycat", 0.9, created_at="2026-02-01T00:00:00Z")
    copied["submission"]["sha256"] = good["submission"]["sha256"]  # someone else's predictions, renamed
    write_results(results, [missing, bad_sha, no_main, bad_date, copied],
                  names=["missing.json", "bad-sha.json", "no-main.json", "bad-date.json", "copycat.json"])
    (results / "dupkeys.json").write_text(duplicate_keys)
    (results / "README.md").write_text("not a result")  # only *.json files are results
    (results / ".hidden.json").write_text("{")  # hidden files are skipped

    loaded = load_results(results)
    assert [e.path for e in loaded.entries] == ["good.json"]
    reasons = {item.path: item.reason for item in loaded.invalid}
    assert set(reasons) == {"nan.json", "not-json.json", "array.json", "latin1.json", "missing.json", "bad-sha.json",
                            "no-main.json", "bad-date.json", "copycat.json", "dupkeys.json"}
    assert "NaN" in reasons["nan.json"]
    assert "not valid JSON" in reasons["not-json.json"]
    assert "array" in reasons["array.json"]
    assert "UTF-8" in reasons["latin1.json"]
    assert "'dataset' is a required property" in reasons["missing.json"]
    assert "submission/sha256" in reasons["bad-sha.json"]
    assert "hd95_mm" in reasons["no-main.json"]
    assert "created_at" in reasons["bad-date.json"]
    assert "good.json" in reasons["copycat.json"] and "predictions" in reasons["copycat.json"]
    assert "twice" in reasons["dupkeys.json"]
    tasks = {item.path: item.task for item in loaded.invalid}
    assert tasks["missing.json"] == "hc18-head-seg" and tasks["not-json.json"] is None

    files, summary = render_site(results)
    index = files["index.html"].decode()
    page = files["tasks/hc18-head-seg.html"].decode()
    assert len(summary.invalid) == 10 and summary.n_valid == 1
    for path, reason in reasons.items():
        assert escape(path) in index and escape(reason) in index
    assert _names_in_table(page, "main") == ["example-good"]
    assert "example-copycat" not in page.split('id="invalid"')[0]
    assert not any(name.startswith("results/") and "copycat" in name for name in files)


def test_every_schema_violation_becomes_an_invalid_entry_not_a_crash(tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    base = make_result("phantom-planes", "example-x", 0.5)
    mutations = {
        "wrong-schema-version": lambda r: r.update(schema_version="2.0"),
        "extra-field": lambda r: r.update(surprise=1),
        "score-not-object": lambda r: r["scores"].update(accuracy=0.5),
        "ci-too-long": lambda r: r["scores"]["accuracy"].update(ci95=[0.1, 0.2, 0.3]),
        "bad-kind": lambda r: r["submission"].update(kind="weights"),
        "share-above-one": lambda r: r["submission"].update(synthetic_share=1.5),
        "empty-name": lambda r: r["submission"].update(name=""),
    }
    for name, mutate in mutations.items():
        result = json.loads(json.dumps(base))
        mutate(result)
        (results / f"{name}.json").write_text(json.dumps(result))
    loaded = load_results(results)
    assert not loaded.entries
    assert sorted(i.path for i in loaded.invalid) == sorted(f"{n}.json" for n in mutations)
    assert all("not a valid fetal-bench result" in i.reason for i in loaded.invalid)


# ---------------------------------------------------------------------------------------------
# Comparability and ranking


def test_only_comparable_results_share_a_ranking(tmp_path):
    results = [
        make_result("hc18-head-seg", "example-a", 0.95),
        make_result("hc18-head-seg", "example-b", 0.94),
        make_result("hc18-head-seg", "example-c", 0.93),
        make_result("hc18-head-seg", "example-other-fingerprint", 0.99, fingerprint="1" * 64),
        make_result("hc18-head-seg", "example-old-revision", 0.98, revision="v0.9"),
        make_result("hc18-head-seg", "example-old-task", 0.97, task_version="0.9"),
        make_result("hc18-head-seg", "example-validation-split", 0.96, split="validation"),
    ]
    write_results(tmp_path / "r", results)
    boards = {b.task.name: b for b in build_boards(load_results(tmp_path / "r").entries)}["hc18-head-seg"]
    assert [r.entry.name for r in boards.main.rows] == ["example-a", "example-b", "example-c"]
    assert [r.rank for r in boards.main.rows] == [1, 2, 3]
    variants = {board.rows[0].entry.name: " ".join(board.reasons) for board in boards.variants}
    assert set(variants) == {"example-other-fingerprint", "example-old-revision", "example-old-task",
                             "example-validation-split"}
    assert all(len(board.rows) == 1 and board.flagged and board.rows[0].rank == 1 for board in boards.variants)
    assert "dataset fingerprint" in variants["example-other-fingerprint"]
    assert "dataset revision v0.9 (pinned: v1.0)" in variants["example-old-revision"]
    assert "task version 0.9 (current: 1.0)" in variants["example-old-task"]
    assert "split validation" in variants["example-validation-split"]

    files, _ = render_site(tmp_path / "r")
    page = files["tasks/hc18-head-seg.html"].decode()
    assert _names_in_table(page, "main") == ["example-a", "example-b", "example-c"]
    flagged_names = [n for i in range(1, 5) for n in _names_in_table(page, f"variant-{i}")]
    assert sorted(flagged_names) == sorted(variants)
    assert page.count('class="badge flag"') == 4 and page.count("lb-table flagged") == 4


def test_no_result_on_the_current_version_means_no_main_ranking(tmp_path):
    write_results(tmp_path / "r", [make_result("hc18-head-seg", "example-old-1", 0.9, revision="v0.9"),
                                   make_result("hc18-head-seg", "example-old-2", 0.8, revision="v0.9")])
    boards = {b.task.name: b for b in build_boards(load_results(tmp_path / "r").entries)}["hc18-head-seg"]
    assert boards.main is None
    assert len(boards.variants) == 1 and [r.rank for r in boards.variants[0].rows] == [1, 2]
    assert "pinned: v1.0" in boards.variants[0].reasons[0]
    page = render_site(tmp_path / "r")[0]["tasks/hc18-head-seg.html"].decode()
    assert "No comparable results yet" in page


def test_majority_fingerprint_forms_the_main_ranking(tmp_path):
    write_results(tmp_path / "r", [make_result("phantom-planes", "example-a", 0.9, fingerprint="a" * 64),
                                   make_result("phantom-planes", "example-b", 0.8, fingerprint="b" * 64),
                                   make_result("phantom-planes", "example-c", 0.7, fingerprint="b" * 64)])
    boards = {b.task.name: b for b in build_boards(load_results(tmp_path / "r").entries)}["phantom-planes"]
    assert [r.entry.name for r in boards.main.rows] == ["example-b", "example-c"]
    assert [r.entry.name for r in boards.variants[0].rows] == ["example-a"]


def test_ties_share_a_rank_and_null_scores_come_last_unranked():
    entries = [_entry(make_result("phantom-planes", name, value), f"{name}.json") for name, value in
               [("example-d", 0.7), ("example-b", 0.8), ("example-none", None), ("example-a", 0.9), ("example-c", 0.8),
                ("example-e", 0.7), ("example-f", 0.6)]]
    rows = rank_entries(entries, "accuracy", higher_is_better=True)
    assert [(r.entry.name, r.rank) for r in rows] == [
        ("example-a", 1), ("example-b", 2), ("example-c", 2), ("example-d", 4), ("example-e", 4), ("example-f", 6),
        ("example-none", None)]


def test_lower_is_better_main_scores_rank_ascending(tmp_path):
    results = [make_result("example-hc", name, mm, main_score="hc_abs_diff_mm", higher_is_better=False,
                           dataset_name="hc18", revision="v1.0", split="test")
               for name, mm in [("example-worse", 3.5), ("example-best", 1.9), ("example-mid", 2.7),
                                ("example-mid-tie", 2.7)]]
    write_results(tmp_path / "r", results)
    boards = {b.task.name: b for b in build_boards(load_results(tmp_path / "r").entries)}["example-hc"]
    assert not boards.task.known and not boards.main.higher_is_better
    assert [(r.entry.name, r.rank) for r in boards.main.rows] == [
        ("example-best", 1), ("example-mid", 2), ("example-mid-tie", 2), ("example-worse", 4)]
    # Without the file's flag, the metric's known direction applies.
    entries = [_entry(make_result("example-hc", n, v, main_score="hd95_mm", dataset_name="hc18"), f"{n}.json")
               for n, v in [("example-x", 9.0), ("example-y", 4.0)]]
    for entry in entries:
        entry.data.pop("higher_is_better", None)
    info = task_info("example-hc", entries)
    assert info.main_score == "hd95_mm" and info.higher_is_better is False
    assert [r.entry.name for r in rank_entries(entries, "hd95_mm", info.higher_is_better)] == ["example-y", "example-x"]
    page = render_site(tmp_path / "r")[0]["tasks/example-hc.html"].decode()
    assert "lower is better" in page and _rank_cells(page, "main") == ["1", "2", "2", "4"]


# ---------------------------------------------------------------------------------------------
# Escaping


def test_strings_from_result_files_are_escaped_in_html_and_embedded_json(tmp_path):
    hostile = make_result("hc18-head-seg", XSS_NAME, 0.9, model="<img src=x onerror=alert(2)>",
                          description="</script><!-- <b>bold</b>", url="javascript:alert(3)")
    hostile["groups"] = {"site": {"values": {"<i>x</i>": {"n_samples": 1, "n_subjects": 1, "scores": {
        "main_score": "dice", "dice": {"value": 0.5, "ci95": [0.4, 0.6]}}}}}}
    odd_task = make_result("<svg onload=alert(4)>", "example-odd-task", 0.5, main_score="accuracy",
                           dataset_name="phantom")
    write_results(tmp_path / "r", [hostile, odd_task])
    files, _ = render_site(tmp_path / "r")
    pages = {name: data.decode() for name, data in files.items() if name.endswith(".html")}
    page = pages["tasks/hc18-head-seg.html"]
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<i>x</i>" not in page and "&lt;i&gt;x&lt;/i&gt;" in page
    assert "javascript:" not in page  # an unsafe URL is not linked at all
    assert "<b>bold</b>" not in page
    for html_text in pages.values():
        assert "<svg onload" not in html_text
        # Only our own two script elements per page: the external app.js and the data block.
        assert html_text.count("<script") == 2
        data = _data_block(html_text)
        assert isinstance(data["tables"], dict)
    data = _data_block(page)
    names = [row[1] for row in data["tables"]["main"]["rows"].values()]
    assert XSS_NAME.casefold() in names  # the embedded data keeps the text exactly, escaped only for HTML
    assert any(name.startswith("tasks/") and "svg-onload-alert-4" in name for name in files)


def test_html_builder_escapes_and_checks_urls():
    assert el("td", "<b>&\"'") == "<td>&lt;b&gt;&amp;&quot;&#x27;</td>"
    assert el("a", "x", href='" onmouseover="alert(1)') == '<a href="&quot; onmouseover=&quot;alert(1)">x</a>'
    assert el("input", disabled=True, value=None) == "<input disabled>"
    with pytest.raises(ValueError, match="invalid tag name 'td onclick'"):
        el("td onclick", "x")
    assert safe_external_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)", "data:text/html,x", "//evil",
                "https://x.org/\"><script>", "ftp://x.org", None, 3):
        assert safe_external_url(bad) is None
    text = json_for_script({"a": "</script><!--<script>", "b": "\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!--<script>", "b": "\u2028&"}


def test_markdown_card_is_safe():
    html_text = render_markdown(
        "# Title\n\nSome *em* and **bold** and `code <x>` and [a link](https://example.org) "
        "and [bad](javascript:alert(1)).\n\n<script>alert(1)</script>\n\n"
        "| a | b |\n|---|---:|\n| <i>1</i> | 2 |\n\n- one\n- two\n\n> **Note** quoted\n\n```\n<raw>\n```\n")
    assert "<script>" not in html_text and "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in html_text
    assert "<h2>Title</h2>" in html_text and "<em>em</em>" in html_text and "<strong>bold</strong>" in html_text
    assert "<code>code &lt;x&gt;</code>" in html_text
    assert '<a href="https://example.org" rel="nofollow noopener noreferrer">a link</a>' in html_text
    assert "[bad](javascript:alert(1))" in html_text and 'href="javascript' not in html_text
    # The right-aligned column gets the stylesheet's class: an inline style would break the CSP.
    assert '<div class="table-wrap"><table>' in html_text and "style=" not in html_text
    assert '<td>&lt;i&gt;1&lt;/i&gt;</td>\n<td class="num">2</td>' in html_text
    assert "<li>one</li>" in html_text
    assert "<blockquote>\n<p><strong>Note</strong> quoted</p>\n</blockquote>" in html_text
    assert "<pre><code>&lt;raw&gt;\n</code></pre>" in html_text


def test_markdown_card_constructs_the_old_subset_got_wrong():
    nested = render_markdown("- a\n  - a.1\n  - a.2\n- b\n")
    assert nested == "<ul>\n<li>a\n<ul>\n<li>a.1</li>\n<li>a.2</li>\n</ul>\n</li>\n<li>b</li>\n</ul>\n"
    assert render_markdown("one  \ntwo\\\nthree\nfour") == "<p>one<br>\ntwo<br>\nthree\nfour</p>\n"
    assert render_markdown("Title\n=====\n\nPart\n----\n") == "<h2>Title</h2>\n<h3>Part</h3>\n"
    assert render_markdown("###### six") == "<h6>six</h6>\n"  # already the last level: stays there
    assert render_markdown("<https://x.org/a?b=1&c=2>") == (
        '<p><a href="https://x.org/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">https://x.org/a?b=1&amp;c=2</a></p>\n')
    # Autolinks and links to anything but absolute http(s) stay text.
    for source in ("<javascript:alert(1)>", "<mailto:a@b.org>", "<a@b.org>", "[x](JavaScript:alert(1))",
                   "[x](data:text/html,hi)", "[x](/relative)", "[x](#anchor)", "[x](//evil.org)",
                   "[x]: javascript:alert(1)\n\n[x]"):
        assert "<a " not in render_markdown(source), source


def test_markdown_card_raw_html_and_images():
    for hostile in ('<img src=x onerror="alert(1)">', "<iframe src=https://evil.org></iframe>",
                    '<a href="javascript:alert(1)">x</a>', "<!-- comment -->", "<svg onload=alert(1)>"):
        for source in (hostile, f"text {hostile} text"):
            out = render_markdown(source)
            assert "<" not in out.replace("<p>", "").replace("</p>", ""), out
    # Images are never loaded (CSP img-src 'self'; a remote fetch would track the reader): a link instead.
    assert render_markdown("![a *scan*](https://img.org/x.png)") == (
        '<p><a href="https://img.org/x.png" rel="nofollow noopener noreferrer">Image: a scan</a></p>\n')
    assert render_markdown('![x](javascript:alert(1))') == "<p>![x](javascript:alert(1))</p>\n"
    assert "<img" not in render_markdown("![x](https://img.org/x.png)")
    # A fence's info string cannot break out of its attribute.
    assert render_markdown('```py"><script>\nx\n```') == (
        '<pre><code class="language-py&quot;&gt;&lt;script&gt;">x\n</code></pre>\n')


def test_markdown_card_size_is_bounded():
    out = render_markdown("word " * (MAX_CARD_CHARS // 5 + 10))
    assert out.count("word") == MAX_CARD_CHARS // 5
    assert out.endswith('<p class="muted">(The card is longer than 200,000 characters; the rest is not shown.)</p>')


# ---------------------------------------------------------------------------------------------
# The built site: content, determinism, atomic output


def test_site_content_links_and_json_copies(tmp_path):
    write_results(tmp_path / "r", example_results())
    summary = build_site(tmp_path / "r", tmp_path / "site")
    site = tmp_path / "site"
    assert summary.index == site / "index.html" and summary.index.is_file()
    assert (site / MARKER).is_file() and (site / "assets/style.css").is_file() and (site / "assets/app.js").is_file()
    page = (site / "tasks/hc18-head-seg.html").read_text()
    assert _rank_cells(page, "main") == ["1", "2", "2", "4", "5", "—"]
    assert "0.968 <" not in page and '<span class="v">0.968</span> <span class="ci">[0.95, 0.99]</span>' in page
    for header in ("Dice", "IoU", "HD95 (mm)", "Training data", "Dataset rev.", "fetal-bench", "Date", "Result"):
        assert f">{header}<" in page
    # The synthetic share sits under the training-data badge (one column fewer to fit the screen).
    assert '<div class="td-share">50% synthetic</div>' in page
    africa = (site / "tasks/planes-africa-zero-shot.html").read_text()
    assert "Uganda" in africa and 'class="num group worst"' in africa and "worst: Uganda" in africa
    assert africa.count('class="chart bars"') == 3 and 'class="chart scatter"' in africa
    # Every link to a result JSON resolves to a byte-identical copy of the submitted file.
    sources = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "r").glob("*.json")}
    for html_path in site.rglob("*.html"):
        for href in re.findall(r'href="([^"]*results/[^"]+\.json)"', html_path.read_text()):
            target = (html_path.parent / href).resolve()
            assert target.is_file(), href
            assert hashlib.sha256(target.read_bytes()).hexdigest() in sources
    # Every internal page link resolves.
    for html_path in site.rglob("*.html"):
        for href in re.findall(r'(?:href|src)="([^"#:]+)(?:#[^"]*)?"', html_path.read_text()):
            assert (html_path.parent / href).resolve().exists(), (html_path, href)
    # No absolute path of this machine leaks into the site.
    assert all(str(tmp_path) not in p.read_text(errors="replace") for p in site.rglob("*.html"))


def test_output_is_deterministic(tmp_path, monkeypatch):
    write_results(tmp_path / "r", example_results())
    build_site(tmp_path / "r", tmp_path / "a")
    build_site(tmp_path / "r", tmp_path / "b")
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    # The optional timestamp is the only difference, and SOURCE_DATE_EPOCH pins it.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    build_site(tmp_path / "r", tmp_path / "c", build_timestamp=True)
    build_site(tmp_path / "r", tmp_path / "d", build_timestamp=True)
    assert _tree(tmp_path / "c") == _tree(tmp_path / "d") != first
    assert "2026-01-01T00:00:00Z" in (tmp_path / "c/index.html").read_text()
    differing = {k for k in first if first[k] != _tree(tmp_path / "c")[k]}
    assert differing and all(k.endswith(".html") for k in differing)


def test_output_is_replaced_atomically_and_guarded(tmp_path, monkeypatch):
    write_results(tmp_path / "r", example_results()[:3])
    site = tmp_path / "site"
    build_site(tmp_path / "r", site)
    before = _tree(site)

    import fetal_bench.leaderboard.site as site_module

    def explode(*args, **kwargs):
        raise RuntimeError("render failed halfway")

    write_results(tmp_path / "r", [make_result("phantom-planes", "example-new", 0.5)], names=["new.json"])
    monkeypatch.setattr(site_module, "render_index", explode)
    with pytest.raises(RuntimeError, match="render failed halfway"):
        build_site(tmp_path / "r", site)
    assert _tree(site) == before  # the earlier site is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "site"]  # no temporary folder left behind
    monkeypatch.undo()

    # A failure while writing (here: a file where a folder must go) also leaves the old site.
    real_render = site_module.render_site

    def clashing(*args, **kwargs):
        files, summary = real_render(*args, **kwargs)
        return {**files, "assets": b"a file where the assets folder goes"}, summary

    monkeypatch.setattr(site_module, "render_site", clashing)
    with pytest.raises(OSError):
        build_site(tmp_path / "r", site)
    assert _tree(site) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "site"]
    monkeypatch.undo()

    build_site(tmp_path / "r", site)
    assert "example-new" in (site / "tasks/phantom-planes.html").read_text()

    unrelated = tmp_path / "docs"
    unrelated.mkdir()
    (unrelated / "precious.txt").write_text("keep me")
    with pytest.raises(FetalBenchError, match="not a leaderboard site"):
        build_site(tmp_path / "r", unrelated)
    assert (unrelated / "precious.txt").read_text() == "keep me"
    with pytest.raises(FetalBenchError, match="overlap"):
        build_site(tmp_path / "r", tmp_path / "r" / "site")
    with pytest.raises(FetalBenchError, match="overlap"):
        build_site(tmp_path / "r", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    build_site(tmp_path / "r", empty)
    assert (empty / "index.html").is_file()


# ---------------------------------------------------------------------------------------------
# Synthetic dataset pages


def test_synthetic_dataset_page(tmp_path):
    from PIL import Image

    dataset = make_synthetic_dataset(tmp_path / "syn" / "synthetic-example")
    write_results(tmp_path / "r", example_results()[:2])
    summary = build_site(tmp_path / "r", tmp_path / "site", synthetic_dirs=[tmp_path / "syn"])
    assert summary.synthetic == ("synthetic-example",)
    page = (tmp_path / "site/synthetic/synthetic-example.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(6)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in page  # generator config, shown as text
    assert "fu-lora" in page and "Simulated data." in page and "syn-000" in page and "brain" in page
    assert "&lt;b&gt;an ultrasound&lt;/b&gt;" in page
    assert "license: cc-by-4.0" in page
    grid = tmp_path / "site/synthetic/synthetic-example-samples.png"
    with Image.open(grid) as image:
        assert image.format == "PNG" and image.size == (4 * 160 + 3 * 4, 2 * 160 + 4)
    index = (tmp_path / "site/index.html").read_text()
    assert 'href="synthetic/synthetic-example.html"' in index and "fu-lora" in index
    assert str(dataset.parent) not in page
    # Same inputs, same PNG bytes.
    build_site(tmp_path / "r", tmp_path / "site2", synthetic_dirs=[dataset])
    assert grid.read_bytes() == (tmp_path / "site2/synthetic/synthetic-example-samples.png").read_bytes()


def test_synthetic_option_rejects_a_folder_without_datasets(tmp_path):
    write_results(tmp_path / "r", example_results()[:1])
    with pytest.raises(FetalBenchError, match="not a built dataset"):
        build_site(tmp_path / "r", tmp_path / "site", synthetic_dirs=[tmp_path / "missing"])


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_build_and_check(tmp_path):
    from fetal_bench.cli import cli

    runner = CliRunner()
    results = tmp_path / "r"
    write_results(results, example_results())
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "site"),
                                 "--no-timestamp"])
    assert result.exit_code == 0, result.output
    assert "hc18-head-seg" in result.output and "index.html" in result.output
    assert (tmp_path / "site/tasks/hc18-head-seg.html").is_file()

    result = runner.invoke(cli, ["leaderboard", "check", str(results)])
    assert result.exit_code == 0, result.output
    assert "OK (shown apart" in result.output and "dataset revision v0.9" in result.output

    (results / "broken.json").write_text('{"task": "hc18-head-seg"}')
    result = runner.invoke(cli, ["leaderboard", "check", str(results / "broken.json")])
    assert result.exit_code == 1 and "broken.json" in result.output and "required property" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "site"),
                                 "--strict"])
    assert result.exit_code == 1 and "Invalid: broken.json" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "overlap" in result.output


def test_many_group_values_keep_the_table_readable(tmp_path):
    operators = {f"op-{i:02d}": 0.5 + i / 100 for i in range(12)}
    write_results(tmp_path / "r", [make_result("planes-es", "example-many-groups", 0.6,
                                               groups={"operator": operators})])
    page = render_site(tmp_path / "r")[0]["tasks/planes-es.html"].decode()
    table = page.split('id="main"', 1)[1].split("</table>", 1)[0]
    assert "op-03" not in table and ">worst<" in table and ">gap<" in table and "op-00" in table  # worst: op-00
    assert page.count("<g class=\"row\">") >= 12  # the chart still shows every operator


def test_number_formatting():
    from fetal_bench.leaderboard.formatting import fmt_score

    assert fmt_score({"value": 0.91234, "ci95": [0.8812, 0.9401]}, "dice") == "0.912 [0.88, 0.94]"
    assert fmt_score({"value": 2.4012, "ci95": [2.381, 2.422]}, "hc_abs_diff_mm") == "2.40 [2.38, 2.42]"
    assert fmt_score({"value": None, "ci95": [None, None], "reason": "x"}, "dice") == "—"
    assert fmt_score({"value": 0.5, "ci95": [None, None]}, "accuracy") == "0.500"
    assert fmt_score(None, "accuracy") == "—"
    # Numbers no result can hold never break a page (the loader refuses them first).
    assert fmt_score({"value": 10**400, "ci95": [0, 10**400]}, "accuracy") == "—"
    assert fmt_score({"value": 0.5, "ci95": [float("nan"), 1.0]}, "accuracy") == "0.500"


# ---------------------------------------------------------------------------------------------
# Hostile and careless result files (issue 15): each is listed as invalid, the site still builds


def _hostile_files(results: Path) -> dict[str, str]:
    """Write every kind of bad file next to one good result; returns file -> expected reason text."""
    import os

    results.mkdir(parents=True, exist_ok=True)
    write_results(results, [make_result("planes-africa-zero-shot", "example-good", 0.74)], names=["good.json"])
    (results / "nested.json").write_text("[" * 100_000 + "]" * 100_000)  # 200 KB: RecursionError in json
    huge_int = json.dumps(make_result("planes-africa-zero-shot", "example-huge-int", 0.5)).replace(
        '"value": 0.5', '"value": 1' + "0" * 400)
    (results / "huge-int.json").write_text(huge_int)
    (results / "huge-float.json").write_text(json.dumps(make_result("planes-africa-zero-shot", "example-1e400", 0.5))
                                             .replace('"value": 0.5', '"value": 1e400'))
    os.mkfifo(results / "x.json")
    os.symlink("/dev/zero", results / "zero.json")
    os.symlink(results / "missing-target", results / "dangling.json")
    with open(results / "big.json", "wb") as handle:  # sparse: 6 MB on paper, nothing on disk
        handle.truncate(6 * 1024 * 1024)
    (results / "sub.json").mkdir()  # a folder named like a result is walked, not read
    return {
        "nested.json": "nests arrays/objects 100,000 levels deep",
        "huge-int.json": "beyond ±1e+15",
        "huge-float.json": "beyond ±1e+15",
        "x.json": "cannot be read: it is a FIFO (named pipe)",
        "zero.json": "cannot be read: it is a character device",
        "dangling.json": "cannot be read: it is a dangling symbolic link",
        "big.json": "cannot be read: it is 6,291,456 bytes, over the limit of 5,242,880",
    }


@pytest.mark.timeout(60)
def test_hostile_files_are_listed_as_invalid_and_the_site_builds(tmp_path):
    expected = _hostile_files(tmp_path / "r")
    loaded = load_results(tmp_path / "r")
    assert [e.path for e in loaded.entries] == ["good.json"]
    reasons = {i.path: i.reason for i in loaded.invalid}
    assert set(reasons) == set(expected)
    for path, text in expected.items():
        assert text in reasons[path], (path, reasons[path])

    summary = build_site(tmp_path / "r", tmp_path / "site")
    index = (tmp_path / "site/index.html").read_text()
    for path in expected:
        assert escape(path) in index and escape(reasons[path]) in index
    assert summary.n_valid == 1 and len(summary.invalid) == len(expected)
    page = (tmp_path / "site/tasks/planes-africa-zero-shot.html").read_text()
    assert _names_in_table(page, "main") == ["example-good"]


@pytest.mark.timeout(60)
def test_cli_check_and_build_survive_hostile_files(tmp_path):
    from fetal_bench.cli import cli

    expected = _hostile_files(tmp_path / "r")
    runner = CliRunner()
    result = runner.invoke(cli, ["leaderboard", "check", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    for path, text in expected.items():
        assert any(line.startswith(f"Invalid: {tmp_path / 'r' / path}: ") and text in line for line in lines), path
    assert f"OK: {tmp_path / 'r' / 'good.json'}" in result.output
    # A FIFO named directly on the command line is refused too, not opened for a blocking read.
    result = runner.invoke(cli, ["leaderboard", "check", str(tmp_path / "r" / "x.json")])
    assert result.exit_code == 1 and "FIFO" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(tmp_path / "r"), "--out",
                                 str(tmp_path / "site"), "--no-timestamp"])
    assert result.exit_code == 0, result.output
    assert "1 valid, 7 invalid" in result.output


@pytest.mark.parametrize(("metric", "value", "reason"), [
    ("accuracy", -5, "scores/accuracy value = -5, outside the metric's range [0, 1]"),
    ("accuracy", 1e308, "scores/accuracy value = 1e+308, outside the metric's range [0, 1]"),
    ("dice", 1.0001, "scores/dice value = 1.0001, outside the metric's range [0, 1]"),
    ("hd95_mm", -0.5, "scores/hd95_mm value = -0.5, outside the metric's range [0, 10000]"),
    ("hc_abs_diff_mm", 25_000.0, "scores/hc_abs_diff_mm value = 25000, outside the metric's range [0, 10000]"),
    ("hc_diff_mm", -25_000.0, "scores/hc_diff_mm value = -25000, outside the metric's range [-10000, 10000]"),
])
def test_scores_outside_their_metric_range_are_invalid_not_first(tmp_path, metric, value, reason):
    task = "hc18-head-seg" if metric != "accuracy" else "planes-africa-zero-shot"
    good = make_result(task, "example-good", 0.9 if task == "hc18-head-seg" else 0.7)
    bad = make_result(task, "example-bad", 0.5, metrics={metric: 0.5} if metric not in ("accuracy", "dice") else None)
    bad["scores"][metric] = {"value": value, "ci95": [None, None]}
    write_results(tmp_path / "r", [good, bad], names=["good.json", "bad.json"])
    loaded = load_results(tmp_path / "r")
    assert [e.path for e in loaded.entries] == ["good.json"]
    assert loaded.invalid[0].path == "bad.json" and reason in loaded.invalid[0].reason
    assert loaded.invalid[0].task == task  # listed on its task's page


def test_a_signed_difference_may_be_negative(tmp_path):
    """hc_diff_mm is signed: an under-estimate, or an interval reaching below 0, is a valid result."""
    result = make_result("hc18-head-seg", "example-signed", 0.9, metrics={"hc_diff_mm": 0.5})
    result["scores"]["hc_diff_mm"] = {"value": -0.2, "ci95": [-0.7, 0.3]}
    write_results(tmp_path / "r", [result], names=["signed.json"])
    loaded = load_results(tmp_path / "r")
    assert [e.path for e in loaded.entries] == ["signed.json"] and not loaded.invalid


def test_interval_ends_and_group_scores_are_range_checked_too(tmp_path):
    reversed_ci = make_result("planes-africa-zero-shot", "example-reversed", 0.7)
    reversed_ci["scores"]["accuracy"]["ci95"] = [0.8, 0.6]
    group = make_result("planes-africa-zero-shot", "example-group", 0.7, groups={"country": {"Ghana": 0.6}})
    group["groups"]["country"]["values"]["Ghana"]["scores"]["accuracy"]["value"] = 7.0
    write_results(tmp_path / "r", [reversed_ci, group], names=["reversed.json", "group.json"])
    reasons = {i.path: i.reason for i in load_results(tmp_path / "r").invalid}
    assert reasons["reversed.json"] == ("the file has scores/accuracy ci95 = [0.8, 0.6], whose lower end is above "
                                        "its upper end.")
    assert reasons["group.json"] == ("the file has groups/country/Ghana/accuracy value = 7, outside the metric's "
                                     "range [0, 1].")


def test_nesting_depth_ignores_brackets_inside_strings():
    from fetal_bench.leaderboard.loading import nesting_depth

    assert nesting_depth('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth('"\\"[[["') == 0
    assert nesting_depth("[" * 50 + "]" * 50) == 50
    assert nesting_depth('["a\\\\", ["b"]]') == 2  # an escaped backslash ends before the quote
    assert nesting_depth('["\\\\\\"[", 1]') == 1  # an escaped quote inside a string


# ---------------------------------------------------------------------------------------------
# What a reader expects (issue 12): links, downloads, reference rows, filters


def test_paper_and_code_links_are_http_only_and_escaped(tmp_path):
    linked = make_result("planes-africa-zero-shot", "example-linked", 0.7)
    linked["submission"].update(paper_url="https://arxiv.org/abs/2407.20072?a=1&b=2",
                                code_url="https://github.com/example/repo")
    bad = make_result("planes-africa-zero-shot", "example-js-link", 0.6)
    bad["submission"]["paper_url"] = "javascript:alert(1)"
    write_results(tmp_path / "r", [linked, bad], names=["linked.json", "bad.json"])
    loaded = load_results(tmp_path / "r")
    assert [i.path for i in loaded.invalid] == ["bad.json"] and "submission/paper_url" in loaded.invalid[0].reason
    page = render_site(tmp_path / "r")[0]["tasks/planes-africa-zero-shot.html"].decode()
    ranking = page.split('id="main"', 1)[1].split("</table>", 1)[0]
    assert ranking.count('class="ext ext-paper"') == 1 and ranking.count('class="ext ext-code"') == 1
    assert 'href="https://github.com/example/repo"' in page
    assert 'href="https://arxiv.org/abs/2407.20072?a=1&amp;b=2"' in page
    assert 'href="javascript' not in page and "javascript:" not in ranking


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_every_table_has_csv_and_json_downloads_next_to_its_page(tmp_path):
    write_results(tmp_path / "r", example_results())
    (tmp_path / "r" / "broken.json").write_text('{"task": "hc18-head-seg"}')
    files, _ = render_site(tmp_path / "r")
    page = files["tasks/hc18-head-seg.html"].decode()
    for table in ("main", "variant-1", "invalid"):
        for kind in ("csv", "json"):
            name = f"hc18-head-seg.{table}.{kind}"
            assert f'href="{name}" download="{name}"' in page, name
            assert f"tasks/{name}" in files
    index = files["index.html"].decode()
    assert 'href="index.tasks.csv"' in index and 'href="index.invalid.json"' in index
    assert "index.tasks.csv" in files

    rows = _csv_rows(files["tasks/hc18-head-seg.main.csv"])
    assert [r["rank"] for r in rows] == ["1", "2", "2", "4", "5", ""]
    assert rows[0]["submission"] == "example-unet-hybrid-50" and rows[0]["dice"] == "0.968"
    assert rows[0]["dice ci95 low"] == "0.948" and rows[0]["dice ci95 high"] == "0.988"
    assert rows[0]["training_data"] == "hybrid" and rows[0]["synthetic_share"] == "0.5"
    assert rows[0]["result_file"].startswith("results/") and rows[-1]["dice"] == ""
    as_json = json.loads(files["tasks/hc18-head-seg.main.json"])
    assert [r["rank"] for r in as_json["rows"]] == [1, 2, 2, 4, 5, None]
    assert as_json["rows"][0]["dice"] == 0.968 and as_json["columns"][:3] == ["rank", "submission", "kind"]
    tasks = {r["task"]: r for r in _csv_rows(files["index.tasks.csv"])}
    assert tasks["hc18-head-seg"]["leader"] == "example-unet-hybrid-50" and tasks["hc18-head-seg"]["ranked"] == "6"
    assert tasks["hc18-head-seg"]["main_score_label"] == "Dice"


def test_csv_cells_cannot_become_spreadsheet_formulas(tmp_path):
    write_results(tmp_path / "r", [make_result("planes-africa-zero-shot", '=HYPERLINK("http://x","y")', 0.7),
                                   make_result("planes-africa-zero-shot", "@SUM(1)", 0.6)])
    rows = _csv_rows(render_site(tmp_path / "r")[0]["tasks/planes-africa-zero-shot.main.csv"])
    assert [r["submission"] for r in rows] == ["'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(1)"]
    assert rows[0]["accuracy"] == "0.7"  # numbers stay numbers


def test_published_reference_rows_are_shown_marked_and_never_ranked(tmp_path):
    from fetal_bench.leaderboard.references import load_references

    references = load_references()
    africa = {r.id: r for r in references if r.task == "planes-africa-zero-shot"}
    assert africa["fu-lora-hb-da-resnet18"].scores == {"accuracy": 0.824, "auc_ovr_hard": 0.8929}
    assert africa["fu-lora-hb-da-vit-b16"].scores == {"accuracy": 0.8197, "auc_ovr_hard": 0.8978}
    assert ("F-score (authors' averaging)", 0.8654) in africa["fu-lora-hb-da-vit-b16"].other_scores
    heuvel = next(r for r in references if r.task == "hc18-head-seg")
    assert heuvel.scores == {"hc_abs_diff_mm": 2.83} and "challenge test set" in heuvel.test_set

    write_results(tmp_path / "r", example_results())
    files, summary = render_site(tmp_path / "r")
    page = files["tasks/planes-africa-zero-shot.html"].decode()
    table = page.split('id="references"', 1)[1].split("</table>", 1)[0]
    assert table.count('<tr data-row="references-') == 3 and table.count('class="badge ref"') == 3
    assert table.count('<td class="num rank ref" title="published number: not ranked">ref</td>') == 3
    assert '<span class="v">0.8240</span>' in table and '<span class="v">0.8197</span>' in table
    assert "the same 233 images" in table
    assert 'href="https://arxiv.org/abs/2407.20072"' in table
    # Never in the ranking or its downloads; the ranking's leader is unchanged.
    assert _names_in_table(page, "main")[0] == "example-resnet-fu-lora" and "FU-LoRA HB+DA" not in \
        page.split('id="main"', 1)[1].split("</table>", 1)[0]
    assert "FU-LoRA" not in files["tasks/planes-africa-zero-shot.main.csv"].decode()
    rows = _csv_rows(files["tasks/planes-africa-zero-shot.references.csv"])
    assert [r["row"] for r in rows] == ["reference (not ranked)"] * 3 and rows[0]["accuracy"] == "0.824"
    hc18 = files["tasks/hc18-head-seg.html"].decode()
    assert "van den Heuvel et al. 2018 (published)" in hc18 and '<span class="v">2.83</span>' in hc18
    assert "planes-africa-zero-shot" in [t.name for t in summary.tasks]


def test_reference_file_is_validated_and_its_text_escaped(tmp_path):
    from fetal_bench.leaderboard.references import load_references

    write_results(tmp_path / "r", example_results()[:1])
    item = {"id": "example-ref", "task": "hc18-head-seg", "name": XSS_NAME, "citation": "<b>c</b>",
            "source": "s", "test_set": "t", "training_data": "real", "scores": {"dice": 0.9},
            "why_different": "w", "paper_url": "https://example.org/p"}
    good = tmp_path / "refs.json"
    good.write_text(json.dumps({"references": [item]}))
    page = render_site(tmp_path / "r", references_path=good)[0]["tasks/hc18-head-seg.html"].decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.split('id="references"', 1)[1]
    assert "<b>c</b>" not in page
    for change, message in [({"scores": {"dice": 82.4}}, "outside [0, 1]"),
                            ({"paper_url": "javascript:alert(1)"}, "references/0/paper_url"),
                            ({"training_data": "lots"}, "references/0/training_data"),
                            ({"surprise": 1}, "Additional properties")]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"references": [{**item, **change}]}))
        with pytest.raises(FetalBenchError, match=re.escape(message)):
            load_references(bad)
    import os

    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(FetalBenchError, match="FIFO"):
        load_references(tmp_path / "fifo.json")


def test_rows_carry_training_data_and_zero_shot_for_the_filters(tmp_path):
    zero = make_result("planes-africa-zero-shot", "example-zs", 0.7, training_data="synthetic")
    said = make_result("planes-africa", "example-said-zero-shot", 0.6, training_data="real")
    said["submission"]["zero_shot"] = True
    tuned = make_result("planes-africa", "example-tuned", 0.8, training_data="real")
    untrained = make_result("planes-africa", "example-untrained", 0.3, training_data="none")
    write_results(tmp_path / "r", [zero, said, tuned, untrained])
    files, _ = render_site(tmp_path / "r")
    africa = files["tasks/planes-africa.html"].decode()
    found = re.findall(r'data-training="(\w+)" data-zero-shot="(\w+)"', africa.split('id="main"', 1)[1]
                       .split("</table>", 1)[0])
    assert found == [("real", "no"), ("real", "yes"), ("none", "yes")]  # rank order: 0.8, 0.6, 0.3
    zs = files["tasks/planes-africa-zero-shot.html"].decode().split('id="main"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-training="(\w+)" data-zero-shot="(\w+)"', zs) == [("synthetic", "yes")]
    for box in ("real", "synthetic", "hybrid", "none"):
        assert f'value="{box}" checked class="filter-training"' in africa
    assert 'id="lb-zero-shot"' in africa


# ---------------------------------------------------------------------------------------------
# Output that reads well (issue 16)


def test_not_comparable_groups_are_named_by_what_differs(tmp_path):
    results = [make_result("hc18-head-seg", "example-local-a", 0.96, revision="local", fingerprint="1a2b" * 16),
               make_result("hc18-head-seg", "example-local-b", 0.95, revision="local", fingerprint="9f8e" * 16),
               make_result("hc18-head-seg", "example-old", 0.94, revision="v0.9")]
    write_results(tmp_path / "r", results)
    boards = {b.task.name: b for b in build_boards(load_results(tmp_path / "r").entries)}["hc18-head-seg"]
    assert boards.main is None
    labels = {b.rows[0].entry.name: b.label for b in boards.variants}
    assert labels == {"example-local-a": "dataset fingerprint 1a2b1a2b1a2b… (local build)",
                      "example-local-b": "dataset fingerprint 9f8e9f8e9f8e… (local build)",
                      "example-old": "revision v0.9"}
    reasons = {b.rows[0].entry.name: "; ".join(b.reasons) for b in boards.variants}
    assert reasons["example-local-a"] != reasons["example-local-b"]
    assert "1a2b1a2b1a2b…" in reasons["example-local-a"]
    page = render_site(tmp_path / "r")[0]["tasks/hc18-head-seg.html"].decode()
    assert "Variant 1" not in page
    assert '<span class="badge flag">Not comparable</span> dataset fingerprint 1a2b1a2b1a2b… (local build)</h2>' in page


def test_identical_labels_get_the_field_that_tells_them_apart(tmp_path):
    from fetal_bench.leaderboard.ranking import Comparability, task_info, variant_labels

    keys = [Comparability("1.0", "hc18", None, split, "v0.9", "f" * 64, "dice") for split in ("test", "validation")]
    labels = variant_labels(keys, None, task_info("hc18-head-seg"))
    assert labels == ["revision v0.9, split test", "revision v0.9, split validation"]


def test_every_registry_metric_has_one_label_used_everywhere(tmp_path):
    from fetal_bench.leaderboard.formatting import METRIC_LABELS
    from fetal_bench.metrics.registry import METRICS

    assert set(METRICS) <= set(METRIC_LABELS)
    assert len(set(METRIC_LABELS.values())) == len(METRIC_LABELS)
    results = [make_result("acouslic-iqa", "example-iqa", 0.6, metrics={"accuracy": 0.7}),
               make_result("acouslic-iqa", "example-iqa-old", 0.5, revision="v0.9"),
               make_result("planes-africa-zero-shot", "example-planes", 0.7, metrics={"macro_f1": 0.6})]
    write_results(tmp_path / "r", results)
    files, _ = render_site(tmp_path / "r")
    index = files["index.html"].decode()
    assert ">F1 <span" in index and "Macro F1" in index
    for name, data in files.items():
        if name.endswith(".html"):
            text = re.sub(r'<script type="application/json".*?</script>', "", data.decode(), flags=re.S)
            visible = re.sub(r"<[^>]+>", " ", text)
            assert not re.search(r"\b(macro_f1|auc_ovr_hard|hd95_mm)\b", visible), name


def test_no_absolute_local_path_reaches_the_site(tmp_path):
    result = make_result("hc18-head-seg", "example-paths", 0.9, description="trained in /home/alice/runs/unet-7")
    result["dataset"]["source"] = "/home/alice/data/hc18"
    result["submission"]["checkpoint"] = "/home/alice/runs/unet-7"
    result["submission"]["command"] = "fetal-bench evaluate --data /home/alice/data/hc18 --output results/"
    write_results(tmp_path / "r", [result])
    dataset = make_synthetic_dataset(tmp_path / "syn" / "synthetic-example")
    info = json.loads((dataset / "build_info.json").read_text())
    info.pop("generator")
    info["generation"] = {"generator": "fu-lora", "lora_path": "/home/alice/secret-project/lora-fu",
                          "source": {"path": "C:\\Users\\alice\\data"}}
    (dataset / "build_info.json").write_text(json.dumps(info))
    files, _ = render_site(tmp_path / "r", synthetic_dirs=[dataset])
    for name, data in files.items():
        text = data.decode("utf-8", errors="replace")
        assert "/home/alice" not in text and "C:\\Users" not in text and str(tmp_path) not in text, name
    copy = json.loads(files["results/00-hc18-head-seg.json"])
    assert copy["dataset"]["source"] == "…/hc18" and copy["submission"]["checkpoint"] == "…/unet-7"
    assert copy["submission"]["command"] == "fetal-bench evaluate --data …/hc18 --output results/"
    row = _csv_rows(files["tasks/hc18-head-seg.main.csv"])[0]
    assert row["command"] == "fetal-bench evaluate --data …/hc18 --output results/"
    assert 'title="The result file. Reproduce with: fetal-bench evaluate --data …/hc18 --output results/"' in \
        files["tasks/hc18-head-seg.html"].decode()
    page = files["synthetic/synthetic-example.html"].decode()
    assert "…/lora-fu" in page
    # The overview shows the generator the dataset's page shows.
    index = files["index.html"].decode()
    assert "<td><code>fu-lora</code></td>" in index and "<dd><code>fu-lora</code></dd>" in page


def test_result_copies_stay_byte_identical_without_local_paths(tmp_path):
    write_results(tmp_path / "r", example_results()[:2])
    files, _ = render_site(tmp_path / "r")
    assert files["results/00-hc18-head-seg.json"] == (tmp_path / "r/00-hc18-head-seg.json").read_bytes()
