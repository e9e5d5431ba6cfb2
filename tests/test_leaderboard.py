"""The leaderboard library and CLI without a browser: validation, comparability, ranks, escaping,
determinism, atomic output, synthetic dataset pages.

Every result here is made up (``fetal_bench.leaderboard.testing``) and lives in a temporary folder.
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
from fetal_bench.leaderboard.mdlite import render as render_markdown
from fetal_bench.leaderboard.ranking import task_info
from fetal_bench.leaderboard.site import MARKER
from fetal_bench.leaderboard.testing import XSS_NAME, example_results, make_result, write_results


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
    with pytest.raises(ValueError):
        el("td onclick", "x")
    assert safe_external_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", " javascript:alert(1)", "data:text/html,x", "//evil",
                "https://x.org/\"><script>", "ftp://x.org", None, 3):
        assert safe_external_url(bad) is None
    text = json_for_script({"a": "</script><!--<script>", "b": "\u2028&"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!--<script>", "b": "\u2028&"}


def test_markdown_subset_is_safe():
    html_text = render_markdown(
        "# Title\n\nSome *em* and **bold** and `code <x>` and [a link](https://example.org) "
        "and [bad](javascript:alert(1)).\n\n<script>alert(1)</script>\n\n"
        "| a | b |\n|---|---:|\n| <i>1</i> | 2 |\n\n- one\n- two\n\n> **Note** quoted\n\n```\n<raw>\n```\n")
    assert "<script>" not in html_text and "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "<h2>Title</h2>" in html_text and "<em>em</em>" in html_text and "<strong>bold</strong>" in html_text
    assert "<code>code &lt;x&gt;</code>" in html_text
    assert 'href="https://example.org"' in html_text and "javascript" not in html_text.split("[bad]")[0]
    assert 'href="javascript' not in html_text
    assert "<td>&lt;i&gt;1&lt;/i&gt;</td>" in html_text and "<li>one</li>" in html_text
    assert "<blockquote>" in html_text and "<pre><code>&lt;raw&gt;</code></pre>" in html_text


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
    for header in ("Dice", "IoU", "HD95 (mm)", "Training data", "Synthetic share", "Dataset rev.", "fetal-bench",
                   "Date", "Result"):
        assert f">{header}<" in page
    africa = (site / "tasks/planes-africa-zero-shot.html").read_text()
    assert "Uganda" in africa and 'class="num group worst"' in africa and "worst: Uganda" in africa
    assert africa.count('class="chart bars"') == 3 and 'class="chart scatter"' in africa
    # Every link to a result JSON resolves to a byte-identical copy of the submitted file.
    sources = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "r").glob("*.json")}
    for html_path in site.rglob("*.html"):
        for href in re.findall(r'href="([^"]+\.json)"', html_path.read_text()):
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
    with pytest.raises(RuntimeError):
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


def _fake_synthetic_dataset(root: Path, n: int = 6) -> Path:
    """A built-dataset-shaped folder: card, build record, one Parquet shard of PNG images."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root.mkdir(parents=True)
    (root / "data").mkdir()
    images = []
    for i in range(n):
        image = Image.new("L", (64 + 16 * i, 48), color=40 * i % 255)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": None})
    features = {"id": {"dtype": "string", "_type": "Value"}, "image": {"_type": "Image"},
                "label": {"names": ["abdomen", "brain"], "_type": "ClassLabel"},
                "seed": {"dtype": "int64", "_type": "Value"}, "prompt": {"dtype": "string", "_type": "Value"}}
    table = pa.table({"id": [f"syn-{i:03d}" for i in range(n)], "image": images, "label": [i % 2 for i in range(n)],
                      "seed": list(range(n)), "prompt": ["<b>an ultrasound</b> of a fetal brain"] * n})
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, root / "data/train-00000-of-00001.parquet")
    build_info = {"dataset": "synthetic-example", "fingerprint": "c" * 64,
                  "generator": {"name": "fu-lora", "base": "tiny", "steps": 2, "note": "<script>alert(5)</script>"},
                  "config_sha256": "d" * 64, "files": {"data/train-00000-of-00001.parquet": "e" * 64},
                  "configs": {"default": {"train": {"num_examples": n, "files": ["data/train-00000-of-00001.parquet",
                                                                                 "../../outside.parquet"]}}}}
    (root / "build_info.json").write_text(json.dumps(build_info))
    (root / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n\n# Synthetic example\n\n"
                                    "> **Simulated data.** Not clinical.\n\n<script>alert(6)</script>\n\n"
                                    "| split | rows |\n|---|---:|\n| train | 6 |\n")
    return root


def test_synthetic_dataset_page(tmp_path):
    from PIL import Image

    dataset = _fake_synthetic_dataset(tmp_path / "syn" / "synthetic-example")
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
