"""The leaderboard library and CLI without a browser: validation, verification, comparability,
ranks and their uncertainty, escaping, determinism, atomic output, synthetic dataset pages.

Results come from ``tests/leaderboard_fixtures.py``: made-up files (never verifiable: they name no
predictions) and real results on the phantom set (scored by ``fetal-bench evaluate`` from
predictions written with a known number of errors, so a build verifies and ranks them). Tests of
the page layout with made-up rankings pass a :class:`TrustingVerifier`, which verifies whatever
passes the checks that need no data; the real verifier is tested on the real results.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
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
from fetal_bench.leaderboard.verify import Verdict, static_verdict
from leaderboard_fixtures import (
    MADE_UP_FINGERPRINT, XSS_NAME, estimates_outside_their_intervals, example_results, expected_fingerprint, make_result, make_synthetic_dataset,
    phantom_board, write_results,
)


class TrustingVerifier:
    """Verifies every result that passes the checks needing no data (a test double for page tests)."""

    def verify(self, entry: ResultEntry) -> Verdict:
        checked = static_verdict(entry)
        return checked if isinstance(checked, Verdict) else Verdict("verified")

    def expected_fingerprint(self, task: str) -> str:
        return expected_fingerprint(task)


def _trusted(results_dir: Path, **kwargs):
    return render_site(results_dir, verifier=TrustingVerifier(), **kwargs)


def _boards(results_dir: Path) -> dict:
    """Every task's boards, with each result that passes the data-free checks counted as verified."""
    loaded = load_results(results_dir)
    verifier = TrustingVerifier()
    verdicts = {e.path: verifier.verify(e) for e in loaded.entries}
    kept = [e for e in loaded.entries if verdicts[e.path].status != "refused"]
    return {b.task.name: b for b in build_boards(kept, verdicts, expected_fingerprint=lambda info: (
        expected_fingerprint(info.name) if info.known else None))}


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


def _table(html_text: str, table_id: str) -> str:
    return html_text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]


def _rank_cells(html_text: str, table_id: str) -> list[str]:
    return re.findall(r'<td class="num rank"[^>]*>([^<]*)</td>', _table(html_text, table_id))


def _names_in_table(html_text: str, table_id: str) -> list[str]:
    return [escape_back(n) for n in re.findall(r'class="sub-name"[^>]*>([^<]*)</', _table(html_text, table_id))]


def escape_back(text: str) -> str:
    import html

    return html.unescape(text)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                   check=True, capture_output=True)


def _commit_all(folder: Path, message: str = "add results") -> None:
    if not (folder / ".git").exists():
        _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def real_board(tmp_path_factory) -> Path:
    """Real phantom results and their predictions (``results/``, ``predictions/``), made once."""
    return phantom_board(tmp_path_factory.mktemp("real-board"))


def _copy_board(real_board: Path, target: Path) -> Path:
    shutil.copytree(real_board, target)
    return target


# ---------------------------------------------------------------------------------------------
# Validation


def test_invalid_files_are_listed_with_reasons_and_never_ranked(tmp_path):
    results = tmp_path / "results"
    good = make_result("hc18-head-seg", "example-good", 2.1)
    write_results(results, [good], names=["good.json"])
    (results / "nan.json").write_text(json.dumps(good).replace('"value": 2.1', '"value": NaN'))
    (results / "not-json.json").write_text("{ this is not json")
    (results / "array.json").write_text("[1, 2]")
    (results / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    missing = dict(make_result("hc18-head-seg", "example-missing", 2.0))
    del missing["dataset"]
    bad_sha = make_result("hc18-head-seg", "example-bad-sha", 2.0)
    bad_sha["submission"]["sha256"] = "not-a-hash"
    no_main = make_result("hc18-head-seg", "example-no-main", 2.0)
    no_main["scores"]["main_score"] = "hd95_mm"
    bad_date = make_result("hc18-head-seg", "example-bad-date", 2.0)
    bad_date["created_at"] = "yesterday"
    duplicate_keys = json.dumps(make_result("hc18-head-seg", "example-dupkeys", 2.0))[:-1] + ', "task": "other"}'
    write_results(results, [missing, bad_sha, no_main, bad_date],
                  names=["missing.json", "bad-sha.json", "no-main.json", "bad-date.json"])
    (results / "dupkeys.json").write_text(duplicate_keys)
    (results / "README.md").write_text("not a result")  # only *.json files are results
    (results / ".hidden.json").write_text("{")  # hidden files are skipped

    loaded = load_results(results)
    assert [e.path for e in loaded.entries] == ["good.json"]
    reasons = {item.path: item.reason for item in loaded.invalid}
    assert set(reasons) == {"nan.json", "not-json.json", "array.json", "latin1.json", "missing.json", "bad-sha.json",
                            "no-main.json", "bad-date.json", "dupkeys.json"}
    assert "NaN" in reasons["nan.json"]
    assert "not valid JSON" in reasons["not-json.json"]
    assert "array" in reasons["array.json"]
    assert "UTF-8" in reasons["latin1.json"]
    assert "'dataset' is a required property" in reasons["missing.json"]
    assert "submission/sha256" in reasons["bad-sha.json"]
    assert "hd95_mm" in reasons["no-main.json"]
    assert "created_at" in reasons["bad-date.json"]
    assert "twice" in reasons["dupkeys.json"]
    tasks = {item.path: item.task for item in loaded.invalid}
    assert tasks["missing.json"] == "hc18-head-seg" and tasks["not-json.json"] is None

    files, summary = _trusted(results)
    index = files["index.html"].decode()
    page = files["tasks/hc18-head-seg.html"].decode()
    assert len(summary.invalid) == 9 and summary.n_valid == 1
    for path, reason in reasons.items():
        assert escape(path) in index and escape(reason) in index
    assert _names_in_table(page, "main") == ["example-good"]


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


def test_group_tables_are_bounded_before_any_page_is_drawn(tmp_path):
    """Issue 27, item 8: one valid-looking 4.8 MB file of 44,000 group values once cost every build
    seconds and a 124 MB download; the schema bounds groupings (16) and their values (256)."""
    fine = make_result("planes-africa-zero-shot", "example-256-values", 0.6,
                       groups={"site": {f"g{i:05d}": 0.5 for i in range(256)}})
    many = json.loads(json.dumps(fine))
    many["submission"].update(name="example-many-values", sha256="a" * 64)
    values = many["groups"]["site"]["values"]
    values.update({f"h{i:05d}": values["g00000"] for i in range(40_000 - 256)})  # 4.8 MB, under the 5 MB cap
    write_results(tmp_path / "r", [fine], names=["fine.json"])
    (tmp_path / "r" / "many.json").write_text(json.dumps(many, separators=(",", ":")))
    assert 4_000_000 < (tmp_path / "r" / "many.json").stat().st_size < 5_000_000
    loaded = load_results(tmp_path / "r")
    assert [e.path for e in loaded.entries] == ["fine.json"]
    reason = loaded.invalid[0].reason
    assert "groups/site/values" in reason and reason.endswith("has too many properties")
    assert len(reason) < 500  # the offending value is not quoted whole


def test_the_compiled_schema_accepts_only_what_jsonschema_accepts():
    """The fast path (fastjsonschema) may only accept files the reference validator accepts."""
    import fastjsonschema
    import jsonschema

    from fetal_bench.evaluation.results import _compiled_schema, result_schema

    reference = jsonschema.Draft202012Validator(result_schema(), format_checker=jsonschema.FormatChecker())
    base = make_result("planes-africa-zero-shot", "example-x", 0.5, groups={"country": {"Ghana": 0.4}})
    mutations = [
        lambda r: None,
        lambda r: r.update(schema_version="2.0"), lambda r: r.update(surprise=1),
        lambda r: r["scores"].update(accuracy=0.5), lambda r: r["scores"]["accuracy"].update(ci95=[0.1]),
        lambda r: r["submission"].update(kind="weights"), lambda r: r["submission"].update(synthetic_share=1.5),
        lambda r: r["submission"].update(name=""), lambda r: r["submission"].update(name="x" * 101),
        lambda r: r["submission"].update(predictions_sha256="A" * 64),
        lambda r: r["submission"].update(predictions_file="../x.csv"),
        lambda r: r["submission"].update(predictions_file="a\nb.csv"),
        lambda r: r["submission"].update(weights_url="javascript:alert(1)"),
        lambda r: r["dataset"].pop("fingerprint"), lambda r: r.update(n_samples=-1),
        lambda r: r.update(created_at=5), lambda r: r["groups"]["country"]["values"]["Ghana"].pop("n_subjects"),
        lambda r: r.update(notes=["x" * 2001]), lambda r: r.update(rescored={"from_sha256": "z"}),
        lambda r: r["submission"].update(description="d" * 4001),
        lambda r: r.update(groups={f"c{i}": {"values": {}} for i in range(17)}),
    ]
    for index, mutate in enumerate(mutations):
        result = json.loads(json.dumps(base))
        mutate(result)
        try:
            _compiled_schema()(result)
            fast_accepts = True
        except fastjsonschema.JsonSchemaException:
            fast_accepts = False
        assert not fast_accepts or reference.is_valid(result), index
    assert reference.is_valid(base)


# ---------------------------------------------------------------------------------------------
# Comparability and ranking


def test_a_copy_never_displaces_the_result_submitted_first(tmp_path):
    """Issue 27, item 3: a renamed, backdated copy of committed predictions is the one refused."""
    results = tmp_path / "results"
    original = make_result("planes-africa-zero-shot", "example-original", 0.7, created_at="2026-03-01T00:00:00Z")
    write_results(results, [original], names=["original.json"])
    _commit_all(results)
    copy = make_result("planes-africa-zero-shot", "example-copycat", 0.7, created_at="1970-01-01T00:00:00Z")
    copy["submission"]["sha256"] = original["submission"]["sha256"]  # the same predictions, renamed
    write_results(results, [copy], names=["copycat.json"])
    loaded = load_results(results)
    assert [e.path for e in loaded.entries] == ["original.json"]
    assert [i.path for i in loaded.invalid] == ["copycat.json"]
    assert "original.json" in loaded.invalid[0].reason and "submitted first" in loaded.invalid[0].reason
    # Committed later than the original, a copy still loses, whatever its created_at.
    _commit_all(results, "a later pull request")
    assert [e.path for e in load_results(results).entries] == ["original.json"]

    # Nothing tells two uncommitted copies apart: neither is ranked (better none than the wrong one).
    fresh = tmp_path / "fresh"
    write_results(fresh, [original, copy], names=["a.json", "b.json"])
    loaded = load_results(fresh)
    assert not loaded.entries and {i.path for i in loaded.invalid} == {"a.json", "b.json"}
    assert all("nothing shows which was submitted first" in i.reason for i in loaded.invalid)

    # Across --results folders, the earlier folder was submitted first.
    merged = load_results([results, fresh])
    assert [e.path for e in merged.entries] == ["results/original.json"]


def test_only_comparable_results_share_a_ranking(tmp_path):
    results = [
        make_result("phantom-planes", "example-a", 0.95),
        make_result("phantom-planes", "example-b", 0.94),
        make_result("phantom-planes", "example-c", 0.93),
        make_result("phantom-planes", "example-other-fingerprint", 0.99, fingerprint="1" * 64),
        make_result("phantom-planes", "example-old-revision", 0.98, revision="v0.9"),
        make_result("phantom-planes", "example-validation-split", 0.96, split="validation"),
    ]
    write_results(tmp_path / "r", results)
    boards = _boards(tmp_path / "r")["phantom-planes"]
    assert [r.entry.name for r in boards.main.rows] == ["example-a", "example-b", "example-c"]
    assert [r.rank for r in boards.main.rows] == [1, 2, 3]
    variants = {board.rows[0].entry.name: " ".join(board.reasons) for board in boards.variants}
    assert set(variants) == {"example-other-fingerprint", "example-old-revision", "example-validation-split"}
    assert all(len(board.rows) == 1 and board.flagged and board.rows[0].rank == 1 for board in boards.variants)
    assert "dataset fingerprint" in variants["example-other-fingerprint"]
    assert "dataset revision v0.9 (pinned: generator-v1)" in variants["example-old-revision"]
    assert "split validation" in variants["example-validation-split"]

    files, _ = _trusted(tmp_path / "r")
    page = files["tasks/phantom-planes.html"].decode()
    assert _names_in_table(page, "main") == ["example-a", "example-b", "example-c"]
    flagged_names = [n for i in range(1, 4) for n in _names_in_table(page, f"variant-{i}")]
    assert sorted(flagged_names) == sorted(variants)
    assert page.count('<span class="badge flag">Not comparable</span>') == 3


def test_an_old_task_version_is_verified_against_its_own_definition(tmp_path):
    """HC18 1.0 ranked by Dice; 2.0 ranks by the HC difference. A 1.0 result is checked against 1.0
    and shown apart; a file that claims 2.0 but ranks by Dice is refused."""
    old = make_result("hc18-head-seg", "example-v1", 0.97, task_version="1.0", main_score="dice")
    wrong = make_result("hc18-head-seg", "example-v2-by-dice", 0.97, main_score="dice")
    unknown = make_result("hc18-head-seg", "example-v9", 2.0, task_version="9.0")
    write_results(tmp_path / "r", [old, wrong, unknown], names=["old.json", "wrong.json", "unknown.json"])
    verdicts = {e.path: TrustingVerifier().verify(e) for e in load_results(tmp_path / "r").entries}
    assert verdicts["old.json"].status == "verified"
    assert verdicts["wrong.json"].status == "refused" and "ranks by 'hc_abs_diff_mm'" in verdicts["wrong.json"].reason
    assert verdicts["unknown.json"].status == "unverified" and "no version '9.0'" in verdicts["unknown.json"].reason
    boards = _boards(tmp_path / "r")["hc18-head-seg"]
    assert boards.main is None and [b.label for b in boards.variants] == ["task version 1.0"]
    assert [r.entry.name for r in boards.unverified] == ["example-v9"]


def test_no_result_on_the_current_version_means_no_main_ranking(tmp_path):
    write_results(tmp_path / "r", [make_result("phantom-planes", "example-old-1", 0.9, revision="v0.9"),
                                   make_result("phantom-planes", "example-old-2", 0.8, revision="v0.9")])
    boards = _boards(tmp_path / "r")["phantom-planes"]
    assert boards.main is None
    assert len(boards.variants) == 1 and [r.rank for r in boards.variants[0].rows] == [1, 2]
    assert "pinned: generator-v1" in boards.variants[0].reasons[0]
    page = _trusted(tmp_path / "r")[0]["tasks/phantom-planes.html"].decode()
    assert "No comparable verified results yet" in page


def test_the_catalog_pin_not_a_majority_forms_the_main_ranking(tmp_path):
    pinned = expected_fingerprint("phantom-planes")
    write_results(tmp_path / "r", [make_result("phantom-planes", "example-a", 0.9),
                                   make_result("phantom-planes", "example-b", 0.8, fingerprint="b" * 64),
                                   make_result("phantom-planes", "example-c", 0.7, fingerprint="b" * 64)])
    boards = _boards(tmp_path / "r")["phantom-planes"]
    assert pinned == MADE_UP_FINGERPRINT
    assert [r.entry.name for r in boards.main.rows] == ["example-a"]
    assert [r.entry.name for r in boards.variants[0].rows] == ["example-b", "example-c"]


def test_a_fabricated_release_result_is_refused_and_changes_no_rank(tmp_path, real_board):
    """Issue 27, item 2: a file claiming HC18 v1.0's revision with another fingerprint (and the best
    score, and a date in 2099) is refused before any data is read; `check` exits 2."""
    from fetal_bench.cli import cli

    honest = make_result("hc18-head-seg", "example-honest", 2.1)
    fake = make_result("hc18-head-seg", "example-fabricated", 0.001, fingerprint="0" * 64,
                       created_at="2099-01-01T00:00:00+00:00")
    write_results(tmp_path / "r", [honest, fake], names=["honest.json", "fake.json"])
    loaded = load_results(tmp_path / "r")
    verdict = static_verdict(next(e for e in loaded.entries if e.path == "fake.json"))
    assert isinstance(verdict, Verdict) and verdict.status == "refused"
    assert "claims hc18 v1.0 [test], whose pinned content fingerprint is a56c267dbeed" in verdict.reason
    boards = _boards(tmp_path / "r")["hc18-head-seg"]
    assert [r.entry.name for r in boards.main.rows] == ["example-honest"]
    result = CliRunner().invoke(cli, ["leaderboard", "check", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "fake.json: refused (claims hc18 v1.0" in result.output


def test_ties_share_a_rank_and_null_scores_come_last_unranked():
    entries = [_entry(make_result("phantom-planes", name, value), f"{name}.json") for name, value in
               [("example-d", 0.7), ("example-b", 0.8), ("example-none", None), ("example-a", 0.9), ("example-c", 0.8),
                ("example-e", 0.7), ("example-f", 0.6)]]
    rows = rank_entries(entries, "accuracy", higher_is_better=True)
    assert [(r.entry.name, r.rank) for r in rows] == [
        ("example-a", 1), ("example-b", 2), ("example-c", 2), ("example-d", 4), ("example-e", 4), ("example-f", 6),
        ("example-none", None)]


def test_lower_is_better_main_scores_rank_ascending(tmp_path):
    results = [make_result("hc18-head-seg", name, mm) for name, mm in
               [("example-worse", 3.5), ("example-best", 1.9), ("example-mid", 2.7), ("example-mid-tie", 2.7)]]
    write_results(tmp_path / "r", results)
    boards = _boards(tmp_path / "r")["hc18-head-seg"]
    assert boards.task.known and not boards.main.higher_is_better
    assert [(r.entry.name, r.rank) for r in boards.main.rows] == [
        ("example-best", 1), ("example-mid", 2), ("example-mid-tie", 2), ("example-worse", 4)]
    page = _trusted(tmp_path / "r")[0]["tasks/hc18-head-seg.html"].decode()
    assert "lower is better" in page and _rank_cells(page, "main") == ["1", "2", "2", "4"]
    # A task this fetal-bench does not know cannot be verified, so it is never ranked, whatever its files
    # say of the direction (issue 27, item 5: a signed main score of +9999 ranked first).
    entries = [_entry(make_result("example-hc", n, v, main_score="hc_diff_mm", dataset_name="hc18"), f"{n}.json")
               for n, v in [("example-x", 9999.0), ("example-y", 0.1)]]
    info = task_info("example-hc", entries)
    assert not info.known
    boards = build_boards(entries, {e.path: TrustingVerifier().verify(e) for e in entries},
                          include_registry=False)[0]
    assert boards.main is None and not boards.variants and len(boards.unverified) == 2
    assert all("Unknown task" in r.verdict.reason for r in boards.unverified)
    # The ranking function itself orders a lower-is-better metric ascending.
    entries = [_entry(make_result("hc18-head-seg", n, v), f"{n}.json") for n, v in [("example-x", 9.0),
                                                                                    ("example-y", 4.0)]]
    assert [r.entry.name for r in rank_entries(entries, "hc_abs_diff_mm", False)] == ["example-y", "example-x"]


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
    files, _ = _trusted(tmp_path / "r")
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


def test_site_content_links_and_json_copies(tmp_path, real_board):
    root = _copy_board(real_board, tmp_path / "board")
    write_results(root / "results", example_results())
    summary = build_site(root / "results", tmp_path / "site")
    site = tmp_path / "site"
    assert summary.index == site / "index.html" and summary.index.is_file()
    assert (site / MARKER).is_file() and (site / "assets/style.css").is_file() and (site / "assets/app.js").is_file()
    planes = (site / "tasks/phantom-planes.html").read_text()
    # Real results, verified: ranked; 6 wrong of 120 twice, so two share rank 1.
    assert _names_in_table(planes, "main")[:2] == ["example-cnn-best", "example-cnn-tied"]
    assert _rank_cells(planes, "main") == ["1", "1", "3", "4", "5"]
    assert '<span class="v">0.950</span> <span class="ci">' in planes
    for header in ("Training data", "Date", "Result", "95% rank range"):
        assert f">{header}<" in planes
    assert '<div class="td-share">50% synthetic</div>' in planes
    # Made-up results name no predictions: listed apart as unverified, never ranked.
    hc18 = (site / "tasks/hc18-head-seg.html").read_text()
    assert 'id="main"' not in hc18 and "No comparable verified results yet" in hc18
    assert set(_names_in_table(hc18, "unverified")) >= {"example-unet-real", "example-unet-hybrid-50"}
    assert "are not in the predictions folders given" in _table(hc18, "unverified")
    # Every ranked result has its own page, with its predictions copied beside it.
    for row_name in ("phantom-planes__example-cnn-best", "phantom-head-seg__example-unet-exact"):
        page = (site / f"results/{row_name}.html").read_text()
        assert "verified" in page and "Content fingerprint" in page and "download" in page
        link = re.search(r'href="(\.\./predictions/[0-9a-f]{64}\.(?:csv|parquet))"', page).group(1)
        copied = (site / "results" / link).resolve()
        assert hashlib.sha256(copied.read_bytes()).hexdigest() == Path(copied).stem
    head_page = (site / "results/phantom-head-seg__example-unet-grown.html").read_text()
    assert 'class="chart histogram"' in head_page and "HC &lt; 150 mm" in head_page or "150–250 mm" in head_page
    # Every link to a result JSON resolves to a byte-identical copy of the submitted file.
    sources = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "results").glob("*.json")}
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


def test_a_synthetic_build_record_is_read_with_bounds(tmp_path):
    """Issue 27, item 10: build_info.json was read whole and parsed without a depth bound."""
    dataset = make_synthetic_dataset(tmp_path / "syn" / "synthetic-example")
    write_results(tmp_path / "r", example_results()[:1])
    with open(dataset / "build_info.json", "wb") as handle:  # sparse: 20 MB on paper
        handle.truncate(20 * 1024 * 1024)
    with pytest.raises(FetalBenchError, match="over the limit"):
        build_site(tmp_path / "r", tmp_path / "site", synthetic_dirs=[dataset])
    (dataset / "build_info.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(FetalBenchError, match="build_info.json cannot be read"):
        build_site(tmp_path / "r", tmp_path / "site", synthetic_dirs=[dataset])
    assert not (tmp_path / "site").exists()


def test_synthetic_option_rejects_a_folder_without_datasets(tmp_path):
    write_results(tmp_path / "r", example_results()[:1])
    with pytest.raises(FetalBenchError, match="not a built dataset"):
        build_site(tmp_path / "r", tmp_path / "site", synthetic_dirs=[tmp_path / "missing"])


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_build_and_check(tmp_path, real_board):
    """Issue 21's first "Done when": an accuracy edited by +0.01 is refused (exit 2, the file named)
    while the original is ranked; `check` says per file ranked, shown apart (why) or refused (why)."""
    from fetal_bench.cli import cli

    runner = CliRunner()
    root = _copy_board(real_board, tmp_path / "board")
    results = root / "results"
    write_results(results, [make_result("planes-africa-zero-shot", "example-made-up", 0.7)], names=["made-up.json"])
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "site"),
                                 "--no-timestamp"])
    assert result.exit_code == 0, result.output
    assert "phantom-planes" in result.output and "index.html" in result.output
    assert "phantom-planes__example-cnn-best.json: ranked" in result.output
    assert "made-up.json: shown apart (its predictions (sha256" in result.output

    edited = results / "phantom-planes__example-cnn-close.json"
    data = json.loads(edited.read_text())
    original = data["scores"]["accuracy"]["value"]
    data["scores"]["accuracy"]["value"] = original + 0.01
    edited.write_text(json.dumps(data, indent=2))
    result = runner.invoke(cli, ["leaderboard", "check", str(results)])
    assert result.exit_code == 2, result.output
    assert (f"phantom-planes__example-cnn-close.json: refused (its scores are not what its predictions "
            f"(example-cnn-close.csv) score: scores/accuracy/value: stored {original + 0.01:.10g}, scored again "
            f"{original:.10g})") in result.output
    assert "phantom-planes__example-cnn-best.json: ranked" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "site"),
                                 "--no-timestamp"])
    assert result.exit_code == 2 and "1 result file(s) refused" in result.output
    page = (tmp_path / "site/tasks/phantom-planes.html").read_text()
    assert "example-cnn-close" not in _names_in_table(page, "main")
    assert "example-cnn-close.json" in _table(page, "invalid") and "scored again" in _table(page, "invalid")

    # The original file, put back, is ranked again.
    data["scores"]["accuracy"]["value"] = original
    edited.write_text(json.dumps(data, indent=2))
    (results / "broken.json").write_text('{"task": "hc18-head-seg"}')
    result = runner.invoke(cli, ["leaderboard", "check", str(results / "broken.json")])
    assert result.exit_code == 1 and "broken.json" in result.output and "required property" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path / "site"),
                                 "--strict"])
    assert result.exit_code == 1 and "broken.json: refused (invalid:" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(results), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "overlap" in result.output


def test_many_group_values_keep_the_table_readable(tmp_path):
    operators = {f"op-{i:02d}": 0.5 + i / 100 for i in range(12)}
    write_results(tmp_path / "r", [make_result("planes-es", "example-many-groups", 0.6,
                                               groups={"operator": operators})])
    page = _trusted(tmp_path / "r")[0]["tasks/planes-es.html"].decode()
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
        "zero.json": "is a symbolic link",
        "dangling.json": "is a symbolic link",
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

    summary = build_site(tmp_path / "r", tmp_path / "site", verifier=TrustingVerifier())
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
        assert any(line.startswith(f"{tmp_path / 'r' / path}: refused (invalid: ") and text in line
                   for line in lines), path
    assert f"{tmp_path / 'r' / 'good.json'}: shown apart (its predictions (sha256" in result.output
    # A FIFO named directly on the command line is refused too, not opened for a blocking read.
    result = runner.invoke(cli, ["leaderboard", "check", str(tmp_path / "r" / "x.json")])
    assert result.exit_code == 1 and "FIFO" in result.output
    result = runner.invoke(cli, ["leaderboard", "build", "--results", str(tmp_path / "r"), "--out",
                                 str(tmp_path / "site"), "--no-timestamp"])
    assert result.exit_code == 0, result.output
    assert "1 valid, 7 invalid or refused" in result.output


def test_a_link_in_the_results_folder_is_refused_and_never_published(tmp_path):
    """Issue 27, item 6: a symbolic link to a file outside the folder would put that file in the site."""
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(make_result("planes-africa-zero-shot", "example-outside", 0.7)))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "link.json").symlink_to(outside)
    files, summary = _trusted(tmp_path / "r")
    assert [(i.path, i.reason) for i in summary.invalid] == [
        ("link.json", "is a symbolic link; a results folder holds the result files themselves.")]
    assert not any(name.startswith("results/") for name in files)


@pytest.mark.parametrize(("metric", "value", "reason"), [
    ("accuracy", -5, "scores/accuracy value = -5.0, outside the metric's range [0, 1]"),
    ("accuracy", 1e308, "scores/accuracy value = 1e+308, outside the metric's range [0, 1]"),
    ("dice", 1.0001, "scores/dice value = 1.0001, outside the metric's range [0, 1]"),
    # Issue 27, item 16: a value a hair above 1 was reported as "1, outside [0, 1]".
    ("dice", 1.0000000000000002, "scores/dice value = 1.0000000000000002, outside the metric's range [0, 1]"),
    ("hd95_mm", -0.5, "scores/hd95_mm value = -0.5, outside the metric's range [0, 10000]"),
    ("hc_abs_diff_mm", 25_000.0, "scores/hc_abs_diff_mm value = 25000.0, outside the metric's range [0, 10000]"),
    ("hc_diff_mm", -25_000.0, "scores/hc_diff_mm value = -25000.0, outside the metric's range [-10000, 10000]"),
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
    assert reasons["group.json"] == ("the file has groups/country/Ghana/accuracy value = 7.0, outside the metric's "
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
    page = _trusted(tmp_path / "r")[0]["tasks/planes-africa-zero-shot.html"].decode()
    ranking = page.split('id="main"', 1)[1].split("</table>", 1)[0]
    assert ranking.count('class="ext ext-paper"') == 1 and ranking.count('class="ext ext-code"') == 1
    assert 'href="https://github.com/example/repo"' in page
    assert 'href="https://arxiv.org/abs/2407.20072?a=1&amp;b=2"' in page
    assert 'href="javascript' not in page and "javascript:" not in ranking


def test_every_table_has_csv_and_json_downloads_next_to_its_page(tmp_path):
    write_results(tmp_path / "r", example_results())
    (tmp_path / "r" / "broken.json").write_text('{"task": "hc18-head-seg"}')
    files, _ = _trusted(tmp_path / "r")
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
    assert tasks["hc18-head-seg"]["main_score_label"] == "HC abs. diff. (mm)"


def test_csv_cells_cannot_become_spreadsheet_formulas(tmp_path):
    write_results(tmp_path / "r", [make_result("planes-africa-zero-shot", '=HYPERLINK("http://x","y")', 0.7),
                                   make_result("planes-africa-zero-shot", "@SUM(1)", 0.6)])
    rows = _csv_rows(_trusted(tmp_path / "r")[0]["tasks/planes-africa-zero-shot.main.csv"])
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
    files, summary = _trusted(tmp_path / "r")
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
    page = _trusted(tmp_path / "r", references_path=good)[0]["tasks/hc18-head-seg.html"].decode()
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
    files, _ = _trusted(tmp_path / "r")
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
    boards = _boards(tmp_path / "r")["hc18-head-seg"]
    assert boards.main is None
    labels = {b.rows[0].entry.name: b.label for b in boards.variants}
    assert labels == {"example-local-a": "dataset fingerprint 1a2b1a2b1a2b… (local build)",
                      "example-local-b": "dataset fingerprint 9f8e9f8e9f8e… (local build)",
                      "example-old": "revision v0.9"}
    reasons = {b.rows[0].entry.name: "; ".join(b.reasons) for b in boards.variants}
    assert reasons["example-local-a"] != reasons["example-local-b"]
    assert "1a2b1a2b1a2b…" in reasons["example-local-a"]
    page = _trusted(tmp_path / "r")[0]["tasks/hc18-head-seg.html"].decode()
    assert "Variant 1" not in page
    assert '<span class="badge flag">Not comparable</span> dataset fingerprint 1a2b1a2b1a2b… (local build)</h2>' in page


def test_identical_labels_get_the_field_that_tells_them_apart(tmp_path):
    from fetal_bench.leaderboard.ranking import Comparability, task_info, variant_labels
    from fetal_bench.tasks import get_task

    keys = [Comparability(get_task("hc18-head-seg").version, "hc18", None, split, "v0.9", "f" * 64, "hc_abs_diff_mm")
            for split in ("test", "validation")]
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
    files, _ = _trusted(tmp_path / "r")
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
    files, _ = _trusted(tmp_path / "r", synthetic_dirs=[dataset])
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
    files, _ = _trusted(tmp_path / "r")
    assert files["results/00-hc18-head-seg.json"] == (tmp_path / "r/00-hc18-head-seg.json").read_bytes()


# ---------------------------------------------------------------------------------------------
# Verification and ranks that respect uncertainty (issue 21)


def test_ranking_shows_who_is_not_distinguishable_from_first(tmp_path, real_board):
    """Paired resamples: 6 vs 8 errors in 120 images cannot be told apart, 6 vs 40 can."""
    files, summary = render_site(real_board / "results")
    page = files["tasks/phantom-planes.html"].decode()
    lead = page.split('id="ranking"', 1)[1].split("</p>", 1)[0]
    assert "paired cluster bootstrap" in lead and "Not distinguishable from #1: example-cnn-tied, example-cnn-close" \
        in lead.replace("\n", " ")
    rows = {r["submission"]: r for r in _csv_rows(files["tasks/phantom-planes.main.csv"])}
    assert rows["example-cnn-best"]["rank"] == "1" and rows["example-cnn-tied"]["rank"] == "1"
    assert rows["example-cnn-tied"]["versus_first"].startswith("tied with #1 [")
    assert rows["example-cnn-best"]["versus_first"] == "#1" and rows["example-cnn-best"]["difference_from_first"] == ""
    assert rows["example-cnn-close"]["indistinguishable_from_first"] == "true"
    assert rows["example-cnn-weak"]["indistinguishable_from_first"] == "false"
    assert float(rows["example-cnn-weak"]["difference_ci95_low"]) > 0
    assert rows["example-cnn-close"]["uncertainty_method"].startswith("paired cluster bootstrap")
    assert int(rows["example-cnn-weak"]["rank_range_low"]) >= 4
    task = next(t for t in summary.tasks if t.name == "phantom-planes")
    assert set(task.indistinguishable) == {"example-cnn-best", "example-cnn-tied", "example-cnn-close"}
    assert 'class="versus tied"' in _table(page, "main")


def test_paired_comparison_on_known_statistics():
    import numpy as np

    from fetal_bench.leaderboard.verify import compare_with_leader

    rng = np.random.default_rng(0)
    n = 200
    subjects = np.repeat(np.arange(100), 2)
    correct_a = rng.random(n) < 0.9
    correct_b = correct_a.copy()
    correct_b[:4] = ~correct_b[:4]  # 4 rows differ: indistinguishable
    correct_c = rng.random(n) < 0.6  # far worse
    verdicts = [Verdict("verified", statistic=lambda idx, c=c: float(c[idx].mean()), subjects=subjects,
                        truth_key=("t",)) for c in (correct_a, correct_b, correct_c)]
    first, second, third = compare_with_leader(verdicts, higher_is_better=True)
    assert first.indistinguishable and first.rank_low == 1 and first.difference is None
    assert second.indistinguishable and second.ci95[0] <= 0 <= second.ci95[1]
    assert second.difference == pytest.approx(correct_a.mean() - correct_b.mean())
    assert not third.indistinguishable and third.ci95[0] > 0 and third.rank_low == third.rank_high == 3
    # Lower is better: the weakest accuracy now leads, and the others are behind by a positive difference.
    flipped = compare_with_leader(list(reversed(verdicts)), higher_is_better=False)
    assert not flipped[1].indistinguishable and flipped[1].difference == pytest.approx(
        correct_b.mean() - correct_c.mean()) and flipped[1].ci95[0] > 0
    # Results scored on different rows are never compared.
    other = Verdict("verified", statistic=verdicts[0].statistic, subjects=subjects, truth_key=("other",))
    assert compare_with_leader([verdicts[0], other], True) is None


def test_predictions_are_found_by_content_not_by_name(tmp_path, real_board):
    root = _copy_board(real_board, tmp_path / "board")
    moved = root / "elsewhere"
    moved.mkdir()
    (root / "predictions" / "example-cnn-best.csv").rename(moved / "renamed.csv")
    tampered = root / "predictions" / "example-cnn-close.csv"
    lines = tampered.read_text().splitlines()
    first = lines[1].split(",")
    lines[1] = ",".join([first[0], *reversed(first[1:])])  # one row's probabilities reordered
    tampered.write_text("\n".join(lines) + "\n")
    files, summary = render_site(root / "results", predictions=[moved])
    lines = dict(summary.verdicts)
    assert lines["phantom-planes__example-cnn-best.json"] == "ranked"  # found under its new name
    assert lines["phantom-planes__example-cnn-close.json"].startswith("shown apart (its predictions (sha256")
    page = files["tasks/phantom-planes.html"].decode()
    assert "example-cnn-close" in _names_in_table(page, "unverified")


def test_results_without_their_data_are_shown_apart_with_the_fix(tmp_path, real_board):
    """A published set that is not here (offline, no --data) cannot be scored: unverified, with the fix."""
    from leaderboard_fixtures import phantom_planes_predictions

    root = _copy_board(real_board, tmp_path / "board")
    predictions = phantom_planes_predictions(root / "predictions" / "p.csv", 3)
    result = make_result("hc18-head-seg", "example-hc18", 2.0)
    result["submission"]["predictions_sha256"] = hashlib.sha256(predictions.read_bytes()).hexdigest()
    write_results(root / "results", [result], names=["hc18.json"])
    _, summary = render_site(root / "results")
    line = dict(summary.verdicts)["hc18.json"]
    assert line.startswith("shown apart (hc18 v1.0 is not available here to score it on (Dataset 'fetal-bench/hc18' "
                           "cannot be loaded: offline mode is on")
    assert line.endswith("build it with `fetal-bench datasets build hc18` and pass --data hc18=DIR)")


def test_every_point_estimate_of_a_verified_result_lies_in_its_interval(real_board):
    """Intervals that contain their estimate (issue 21): the bias-shifted interval for ECE included."""
    for path in sorted((real_board / "results").glob("*.json")):
        assert estimates_outside_their_intervals(json.loads(path.read_text())) == [], path.name


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
