"""Hostile and careless input (issue 15): every case exits 2 with one problem and a fix, leaves
no partial output and loses nothing. The hostile inputs are generated here (FIFOs, symlinks to
devices, PNG headers that claim 400 megapixels), never committed."""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from datasets import load_dataset
from PIL import Image

from fetal_bench import _io
from fetal_bench.cli import cli
from fetal_bench.cli._console import safe
from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.evaluation.submissions import (
    SubmissionError, load_classification_submission, load_segmentation_submission, submission_sha256,
)
from fetal_bench.tasks import get_task
from fake_raw import make_hc18_raw, png_bytes

BOOT = "10"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A ~60-byte PNG whose header claims width x height pixels (400 MP by default)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(("Error:", "Fix:"))]


@contextlib.contextmanager
def lock_held_elsewhere(target: Path):
    """Another process holds fetal-bench's lock on ``target`` for the block."""
    code = textwrap.dedent("""
        import sys
        from fetal_bench._io import exclusive_lock
        with exclusive_lock(sys.argv[1]):
            print("held", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def hc18_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    make_hc18_raw(raw, subjects=4, size=(48, 64))
    return raw


@pytest.fixture(scope="module")
def planes_csv(phantom, tmp_path_factory) -> Path:
    """A valid one-hot submission for phantom-planes."""
    task = get_task("phantom-planes")
    test = load_dataset(str(phantom), "planes", split="test")
    frame = pd.DataFrame(np.eye(len(task.labels))[np.asarray(test["label"])], columns=list(task.labels))
    frame.insert(0, "id", test["id"])
    path = tmp_path_factory.mktemp("subs") / "perfect.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def head_truth(phantom):
    test = load_dataset(str(phantom), "head", split="test")
    return {row_id: np.asarray(mask) for row_id, mask in zip(test["id"], test["mask"])}


def write_masks(directory: Path, truth: dict[str, np.ndarray]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for row_id, mask in truth.items():
        (directory / f"{row_id}.png").write_bytes(png_bytes((mask > 0).astype(np.uint8)))
    return directory


# ----------------------------------------------------------------------------------------------
# 1. --raw and --out overlapping
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["same", "out-inside-raw", "raw-inside-out", "symlink-to-raw"])
def test_build_refuses_an_output_overlapping_the_raw_directory(hc18_raw, tmp_path, where):
    before = tree(hc18_raw)
    if where == "same":
        out = hc18_raw
    elif where == "out-inside-raw":
        out = hc18_raw / "built"
    elif where == "raw-inside-out":
        out = tmp_path
    else:
        out = tmp_path / "link"
        out.symlink_to(hc18_raw)
    result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(out), "--overwrite")
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 2 and "raw directory" in lines[0] and lines[1].startswith("Fix: Pass an --out outside --raw")
    assert tree(hc18_raw) == before  # nothing lost, nothing added
    assert not (hc18_raw / "built").exists()
    assert not list(tmp_path.glob(".*tmp-*")) and not list(tmp_path.glob(".*.lock"))


@pytest.mark.parametrize("what", ["file", "folder-of-other-things"])
def test_overwrite_replaces_only_an_earlier_build(hc18_raw, tmp_path, what):
    out = tmp_path / "precious"
    if what == "file":
        out.write_text("my thesis")
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("my thesis")
    result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(out), "--overwrite")
    assert result.exit_code == 2
    assert "--overwrite will not replace it" in error_lines(result)[0]
    assert (out if what == "file" else out / "thesis.tex").read_text() == "my thesis"
    # An earlier build is replaced as before.
    assert run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(tmp_path / "b")).exit_code == 0
    assert run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(tmp_path / "b"), "--overwrite").exit_code == 0


def test_a_sibling_output_still_builds(hc18_raw, tmp_path):
    result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(tmp_path / "hc18"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "hc18" / "build_info.json").is_file()


# ----------------------------------------------------------------------------------------------
# 3. Concurrent writers, stale temporary directories, permissions
# ----------------------------------------------------------------------------------------------


def test_a_second_build_to_the_same_output_fails_while_the_first_runs(hc18_raw, tmp_path):
    out = tmp_path / "hc18"
    with lock_held_elsewhere(out) as pid:
        result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(out))
    assert result.exit_code == 2
    assert error_lines(result)[0] == f"Error: {out} is being written by another fetal-bench run (pid {pid})."
    assert not out.exists()
    # The holder is gone (its lock with it): the same command now succeeds.
    assert run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(out)).exit_code == 0
    assert not _io.lock_path(out).exists()  # released locks leave no file behind


def test_stale_temporary_directories_of_a_killed_build_are_cleaned(hc18_raw, tmp_path):
    out = tmp_path / "hc18"
    for name in (".hc18.tmp-dead1", ".hc18.tmp-dead2"):
        (tmp_path / name / "data").mkdir(parents=True)
        (tmp_path / name / "data" / "train-00000.parquet.partial").write_bytes(b"x" * 100)
    result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hc18", "raw"]


def test_stale_cleaning_reads_an_output_name_literally(tmp_path):
    (tmp_path / ".[ab].tmp-dead").mkdir()
    (tmp_path / ".a.tmp-other-output").mkdir()  # matches the pattern "[ab]": must be left alone
    with _io.atomic_directory(tmp_path / "[ab]") as tmp:
        (tmp / "x").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.tmp-other-output", "[ab]"]


def test_a_build_killed_between_the_two_renames_gets_its_old_output_back(tmp_path):
    # The old output was moved aside and the process died before the new one moved in.
    backup = tmp_path / ".out.old-12345"
    backup.mkdir()
    (backup / "kept.txt").write_text("the only complete copy")
    with pytest.raises(FetalBenchError, match="already exists"):
        with _io.atomic_directory(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "kept.txt").read_text() == "the only complete copy"
    assert not backup.exists()


def test_atomic_writes_get_the_usual_permissions_without_touching_the_umask(tmp_path, monkeypatch):
    mask = os.umask(0o027)
    os.umask(mask)
    monkeypatch.setattr(os, "umask", lambda *a: pytest.fail("os.umask flips the process umask (racy)"))
    with _io.atomic_file(tmp_path / "f.txt") as handle:
        handle.write("x")
    with _io.atomic_directory(tmp_path / "d") as tmp:
        (tmp / "inside").write_text("y")
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~mask


def test_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    target = tmp_path / "thing"
    with _io.exclusive_lock(target):
        with _io.exclusive_lock(target):
            pass
        assert _io.lock_path(target).exists()
    assert not _io.lock_path(target).exists()
    with lock_held_elsewhere(target):
        with pytest.raises(FetalBenchError, match="being written by another fetal-bench run"):
            with _io.exclusive_lock(target):
                pass


def test_a_second_evaluate_writing_the_same_result_fails(phantom, planes_csv, tmp_path):
    results = tmp_path / "results"
    with lock_held_elsewhere(results / "phantom-planes__perfect.json"):
        result = run("evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
                     "--output", str(results), "--bootstrap", BOOT)
    assert result.exit_code == 2
    assert "is being written by another fetal-bench run" in error_lines(result)[0]
    assert not results.exists() or not list(results.glob("*.json"))


# ----------------------------------------------------------------------------------------------
# 4. Submitted text is never rich markup
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("evil_id", ["[/x]", "[link=file:///etc/passwd]click[/link]", "[bold red]x", "\x1b]8;;x\x07y"])
def test_submitted_ids_are_printed_literally(phantom, planes_csv, tmp_path, evil_id):
    frame = pd.read_csv(planes_csv, dtype={"id": str})
    frame.loc[len(frame)] = [evil_id, *frame.iloc[0, 1:]]
    path = tmp_path / "evil.csv"
    frame.to_csv(path, index=False)
    result = run("evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
                 "--validate-only")
    assert result.exit_code == 2
    problem = result.output
    assert "extra ids (not in the evaluation split): 1" in problem
    shown = evil_id.replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert shown in problem  # as text: no hyperlink, no style, no terminal escape
    assert "\x1b" not in result.output


def test_a_name_with_markup_is_written_and_printed_literally(phantom, planes_csv, tmp_path):
    result = run("evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
                 "--output", str(tmp_path / "results"), "--name", "[/x] evil", "--bootstrap", BOOT)
    assert result.exit_code == 0, result.output
    assert "phantom-planes — [/x] evil (" in result.output
    assert (tmp_path / "results" / "phantom-planes__--x--evil.json").is_file()


def test_errors_quoting_outside_text_are_printed_literally(tmp_path):
    raw = tmp_path / "[/raw]"
    result = run("datasets", "build", "hc18", "--raw", str(raw), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert error_lines(result)[0] == f"Error: Raw directory {raw} does not exist or is not a directory."


def test_safe_escapes_markup_shows_control_characters_and_cuts_long_text():
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(safe("[link=file:///etc/passwd]x[/link] \x1b[31m red"))
    assert console.export_text() == "[link=file:///etc/passwd]x[/link] \\x1b[31m red\n"
    assert safe("a" * 600, limit=10) == "aaaaaaaaaa… (590 more characters)"


def test_tables_are_not_wrapped_when_stdout_is_not_a_terminal():
    # Piped output honours COLUMNS (at 80 a listing folds between words: tests/test_newcomer.py);
    # given room, a row stays on one line and carries no colour codes.
    result = CliRunner().invoke(cli, ["tasks", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if "phantom-planes v" in line]
    assert len(rows) == 1 and "classification" in rows[0] and "phantom/planes @ generator-v1 [test]" in rows[0]
    assert "\x1b[" not in result.output  # plain: no colour codes


# ----------------------------------------------------------------------------------------------
# 5. Mask folders that used to crash or hang evaluate
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["dangling-symlink", "directory", "huge-png", "fifo", "dev-zero", "oversize-file"])
def test_unreadable_mask_entries_are_validation_errors(head_truth, tmp_path, case):
    ids = sorted(head_truth)
    shapes = {i: m.shape for i, m in head_truth.items()}
    directory = write_masks(tmp_path / "masks", head_truth)
    victim = directory / f"{ids[0]}.png"
    victim.unlink()
    expected = {
        "dangling-symlink": "is a dangling symbolic link",
        "directory": "is a directory",
        "huge-png": "over 178,956,970 pixels",
        "fifo": "is a FIFO (named pipe)",
        "dev-zero": "is a character device",
        "oversize-file": "over the limit of 33,554,432",
    }[case]
    if case == "dangling-symlink":
        victim.symlink_to(tmp_path / "nowhere.png")
    elif case == "directory":
        victim.mkdir()
    elif case == "huge-png":
        victim.write_bytes(huge_png())
    elif case == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs")
        os.mkfifo(victim)
    elif case == "dev-zero":
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        victim.symlink_to("/dev/zero")
    else:
        with open(victim, "wb") as handle:  # sparse: 40 MB claimed, nothing stored
            handle.truncate(40_000_000)
    with pytest.raises(SubmissionError) as error:
        load_segmentation_submission(directory, expected_ids=ids, expected_shapes=shapes)
    lines = error.value.problem.splitlines()
    assert len(lines) == 2 and ids[0] in lines[1] and expected in lines[1]


def test_many_bad_masks_give_one_line_with_a_count(head_truth, tmp_path):
    ids = sorted(head_truth)
    shapes = {i: m.shape for i, m in head_truth.items()}
    directory = tmp_path / "masks"
    directory.mkdir()
    for row_id in ids:
        (directory / f"{row_id}.png").mkdir()
    with pytest.raises(SubmissionError) as error:
        load_segmentation_submission(directory, expected_ids=ids, expected_shapes=shapes)
    lines = error.value.problem.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"  - mask entries that are not regular files of at most 32 MB (only <id>.png files "
                               f"are read): {len(ids)} ({ids[0]} (is a directory), ")
    assert lines[1].endswith(", ...)")


def test_parquet_masks_given_as_strings_are_validation_errors(head_truth, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = sorted(head_truth)
    shapes = {i: m.shape for i, m in head_truth.items()}
    path = tmp_path / "masks.parquet"
    pq.write_table(pa.table({"id": ids, "mask": pa.array(["iVBORw0KGgo="] * len(ids), pa.string())}), path)
    with pytest.raises(SubmissionError) as error:
        load_segmentation_submission(path, expected_ids=ids, expected_shapes=shapes)
    assert error.value.problem.splitlines()[1] == (
        f"  - masks that are not PNG bytes: {len(ids)} ({', '.join(f'{i} (str)' for i in ids[:5])}, ...)")


@needs_fifo
def test_evaluate_reports_a_fifo_and_a_device_without_hanging(phantom, head_truth, tmp_path):
    ids = sorted(head_truth)
    directory = write_masks(tmp_path / "masks", head_truth)
    (directory / f"{ids[0]}.png").unlink()
    os.mkfifo(directory / f"{ids[0]}.png")
    (directory / f"{ids[1]}.png").unlink()
    (directory / f"{ids[1]}.png").symlink_to("/dev/zero")
    result = run("evaluate", "--task", "phantom-head-seg", "--predictions", str(directory), "--data", str(phantom),
                 "--output", str(tmp_path / "results"))
    assert result.exit_code == 2
    assert f"2 ({ids[0]} (is a FIFO (named pipe)), {ids[1]} (is a character device))" in result.output
    assert not (tmp_path / "results").exists()


def test_mask_directory_hash_covers_only_the_mask_files(head_truth, tmp_path):
    first = write_masks(tmp_path / "a", head_truth)
    second = write_masks(tmp_path / "b", head_truth)
    (second / "README.txt").write_text("my notes")
    (second / ".DS_Store").write_bytes(b"\0" * 10)
    (second / "old").mkdir()
    (second / "old" / "x.png").write_bytes(b"older masks")
    assert submission_sha256(first) == submission_sha256(second)
    (second / f"{sorted(head_truth)[0]}.png").write_bytes(png_bytes(np.zeros((160, 128), np.uint8)))
    assert submission_sha256(first) != submission_sha256(second)


# ----------------------------------------------------------------------------------------------
# 6. Builds that succeeded on nothing or on the wrong thing
# ----------------------------------------------------------------------------------------------

HC18_CSV = "training_set_pixel_size_and_HC.csv"


def _build_fails(raw: Path, out: Path, problem: str) -> None:
    before = tree(raw)
    result = run("datasets", "build", "hc18", "--raw", str(raw), "--out", str(out))
    assert result.exit_code == 2, result.output
    lines = error_lines(result)
    assert len(lines) == 2 and problem in lines[0], lines
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    assert tree(raw) == before


def test_hc18_csv_with_only_a_header_is_refused(hc18_raw, tmp_path):
    csv_path = hc18_raw / HC18_CSV
    csv_path.write_text(csv_path.read_text().splitlines()[0] + "\n")
    _build_fails(hc18_raw, tmp_path / "out", f"{csv_path} has a header but no rows.")


def test_hc18_rgb_image_is_refused(hc18_raw, tmp_path):
    image = hc18_raw / "training_set" / "000_HC.png"
    Image.open(image).convert("RGB").save(image)
    _build_fails(hc18_raw, tmp_path / "out", f"Image file {image} is RGB but the HC18 format (8-bit grayscale PNG) is L.")


def test_hc18_400_megapixel_image_is_refused(hc18_raw, tmp_path):
    image = hc18_raw / "training_set" / "000_HC.png"
    image.write_bytes(huge_png())
    _build_fails(hc18_raw, tmp_path / "out", f"Image file {image} is too large to decode")


def test_hc18_image_between_the_limits_is_refused_by_our_cap(hc18_raw, tmp_path):
    image = hc18_raw / "training_set" / "000_HC.png"
    image.write_bytes(huge_png(10_000, 6_000))  # 60 MP: above our 50 MP cap, below PIL's error
    _build_fails(hc18_raw, tmp_path / "out", f"Image file {image} claims 10000x6000 pixels, over the limit of 50,000,000.")


def test_hc18_directory_named_like_an_image_is_refused(hc18_raw, tmp_path):
    image = hc18_raw / "training_set" / "001_HC.png"
    image.unlink()
    image.mkdir()
    _build_fails(hc18_raw, tmp_path / "out", f"1 files listed in the CSV are not regular files or are missing: {image}.")


@needs_fifo
def test_hc18_fifo_csv_is_refused_without_hanging(hc18_raw, tmp_path):
    csv_path = hc18_raw / HC18_CSV
    csv_path.unlink()
    os.mkfifo(csv_path)
    result = run("datasets", "build", "hc18", "--raw", str(hc18_raw), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert error_lines(result)[0] == f"Error: {csv_path} is a FIFO (named pipe)."


@needs_fifo
def test_hc18_fifo_image_is_refused_before_anything_is_written(hc18_raw, tmp_path):
    image = hc18_raw / "training_set" / "002_HC.png"
    image.unlink()
    os.mkfifo(image)
    _build_fails(hc18_raw, tmp_path / "out", f"1 files listed in the CSV are not regular files or are missing: {image}.")


def test_image_reader_refuses_a_device_and_a_directory(tmp_path):
    from fetal_bench.data.builders._common import read_image_bytes

    (tmp_path / "d.png").mkdir()
    with pytest.raises(DataError, match=r"d\.png is a directory\."):
        read_image_bytes(tmp_path / "d.png")
    if Path("/dev/zero").exists():
        (tmp_path / "z.png").symlink_to("/dev/zero")
        with pytest.raises(DataError, match=r"z\.png is a character device\."):
            read_image_bytes(tmp_path / "z.png")


def test_rgb_images_stay_accepted_where_the_format_has_them(tmp_path):
    # The African set legitimately mixes L and RGB (100 of its 450 images): only HC18 insists on grayscale.
    from fetal_bench.data.builders._common import read_image_bytes

    path = tmp_path / "rgb.png"
    Image.new("RGB", (7, 5), (10, 20, 30)).save(path)
    assert read_image_bytes(path)[1] == (7, 5)
    with pytest.raises(DataError, match="is RGB but grayscale PNG is L"):
        read_image_bytes(path, modes=("L",), expected="grayscale PNG")


def test_writer_refuses_a_config_with_no_rows(tmp_path):
    from datasets import Features, Value

    from fetal_bench.data.catalog import PHANTOM
    from fetal_bench.data.writer import ConfigSpec, write_dataset

    spec = ConfigSpec("default", Features({"id": Value("string")}), {"train": lambda: iter(())})
    with pytest.raises(DataError, match="has no rows in any split"):
        write_dataset(tmp_path / "empty", PHANTOM, [spec])
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# 7. Smaller cases of evaluate
# ----------------------------------------------------------------------------------------------


def test_id_problems_and_value_problems_are_reported_together(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,a,b\nx,0.5,0.5\nx,0.5,0.5\nz,nan,0.5\nw,2,0\n")
    with pytest.raises(SubmissionError) as error:
        load_classification_submission(path, expected_ids=["x", "y", "z"], labels=["a", "b"])
    assert error.value.problem.splitlines()[1:] == [
        "  - duplicate ids: 1 (x)",
        "  - missing ids (rows of the evaluation split with no prediction): 1 (y)",
        "  - extra ids (not in the evaluation split): 1 (w)",
        "  - NaN or non-numeric probabilities: 1 (z)",
        "  - probabilities outside [0, 1]: 1 (w)",
        "  - probabilities not summing to 1 (tolerance 0.001): 1 (w)",
    ]


def test_a_missing_column_does_not_hide_bad_values(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,a\nx,abc\ny,0.5\n")
    with pytest.raises(SubmissionError) as error:
        load_classification_submission(path, expected_ids=["x", "y"], labels=["a", "b"])
    assert error.value.problem.splitlines()[1:] == [
        "  - missing probability columns ['b']",
        "  - NaN or non-numeric probabilities: 1 (x)",
    ]


def test_ids_are_read_as_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,label\nNA,a\nnan,b\n007,a\n")
    submission = load_classification_submission(path, expected_ids=["NA", "nan", "007"], labels=["a", "b"])
    assert submission.predicted.tolist() == [0, 1, 0]
    path.write_text("id,label\nNA,a\n")
    with pytest.raises(SubmissionError) as error:
        load_classification_submission(path, expected_ids=["N/A"], labels=["a", "b"])
    assert "extra ids (not in the evaluation split): 1 (NA)" in error.value.problem


@pytest.mark.parametrize("case", ["output-under-a-file", "long-name", "control-character-name", "json-dir"])
def test_output_and_name_are_checked_before_scoring(phantom, planes_csv, tmp_path, monkeypatch, case):
    import fetal_bench.evaluation as evaluation

    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("scored before checking the output"))
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "dir.json").mkdir()
    output, name, problem = {
        "output-under-a-file": (tmp_path / "file.txt" / "results", None, "which is not a directory"),
        "long-name": (tmp_path / "results", "n" * 300, "The submission name (300 characters) must be 1 to 100"),
        "control-character-name": (tmp_path / "results", "a\nb", "printable characters"),
        "json-dir": (tmp_path / "dir.json", None, "is a directory named like a .json file"),
    }[case]
    args = ["evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
            "--output", str(output)] + (["--name", name] if name else [])
    result = run(*args)
    assert result.exit_code == 2
    assert problem in error_lines(result)[0]
    assert not (tmp_path / "results").exists()


def test_read_result_refuses_a_fifo_and_deep_nesting(tmp_path):
    from fetal_bench.evaluation import read_result
    from fetal_bench.evaluation.results import InvalidResultError

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidResultError, match="cannot be read as JSON"):
        read_result(deep)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "x.json")
        with pytest.raises(InvalidResultError, match="is a FIFO"):
            read_result(tmp_path / "x.json")
