"""Hostile and careless input, round 3 (issue 27, the items outside the leaderboard).

Each test reproduces one attack of the issue first and fails on the code before the fix: runs
that overwrite each other's results, leakage through split expressions, symlinked masks, caches
that hang, crash or run code, unbounded Parquet, configs and archives, values that overflow,
tracebacks where a message belongs. Hostile files are made here, small, in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from datasets import load_dataset

import fetal_bench
from fetal_bench.cli import cli
from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks import get_task
from fake_raw import png_bytes

BOOT = "10"
#: The fetal_bench under test (a subprocess imports the same one, whichever checkout that is).
PACKAGE_ROOT = str(Path(fetal_bench.__file__).resolve().parent.parent)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(("Error:", "Fix:"))]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(extra)
    return env


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


@pytest.fixture(scope="module")
def unet_checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny U-Net checkpoints whose training runs share the run name ``unet_ok``."""
    import torch

    from fetal_bench.models import create_model, save_checkpoint
    from fetal_bench.models.registry import MODELS

    root = tmp_path_factory.mktemp("checkpoints")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("unet", **MODELS["unet"].tiny)
        paths.append(save_checkpoint(model, root / f"unet-{seed}", run_name="unet_ok"))
    return paths[0], paths[1]


# ----------------------------------------------------------------------------------------------
# 1. Two runs, one result file
# ----------------------------------------------------------------------------------------------

# Runs `fetal-bench ARGS...` and stops, holding whatever it holds, when it starts predicting.
_PAUSED_EVALUATE = textwrap.dedent("""
    import sys
    import fetal_bench.data.loading as loading

    original = loading.make_dataloader

    def paused(*args, **kwargs):
        print("predicting", flush=True)
        sys.stdin.readline()
        return original(*args, **kwargs)

    loading.make_dataloader = paused
    from fetal_bench.cli import cli
    cli.main(sys.argv[1:], prog_name="fetal-bench")
""")


def test_two_model_runs_sharing_a_run_name_cannot_both_write_one_result(phantom, unet_checkpoints, tmp_path):
    """Both checkpoints name their result `phantom-head-seg__unet_ok.json`: while the first run
    predicts, the second must fail at once naming the lock, not score and then replace it."""
    results = tmp_path / "res"
    first_ck, second_ck = unet_checkpoints
    common = ["evaluate", "--task", "phantom-head-seg", "--model", "unet", "--data", str(phantom),
              "--output", str(results), "--bootstrap", BOOT, "--device", "cpu"]
    log = tmp_path / "first.log"
    with open(log, "w") as stderr:
        first = subprocess.Popen([sys.executable, "-c", _PAUSED_EVALUATE, *common, "--checkpoint", str(first_ck)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 env=subprocess_env())
    try:
        lines = []
        while (line := first.stdout.readline()) and line.strip() != "predicting":
            lines.append(line)
        assert line.strip() == "predicting", "".join(lines) + log.read_text()
        second = run(*common, "--checkpoint", str(second_ck))
    finally:
        out, _ = first.communicate("go\n", timeout=600)
    err = log.read_text()
    assert second.exit_code == 2, second.output
    problem = error_lines(second)[0]
    assert "phantom-head-seg__unet_ok.json is being written by another fetal-bench run" in problem
    assert ".phantom-head-seg__unet_ok.json.lock" in second.output  # the fix names the lock file
    assert first.returncode == 0, out + err
    written = json.loads((results / "phantom-head-seg__unet_ok.json").read_text())
    from fetal_bench.evaluation.model_submission import load_model, state_dict_sha256

    assert written["submission"]["sha256"] == state_dict_sha256(load_model("unet", first_ck, "cpu").model)


def test_names_that_clean_to_one_file_name_are_refused_not_replaced(phantom, planes_csv, tmp_path):
    results = tmp_path / "res"
    args = ["evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
            "--output", str(results), "--bootstrap", BOOT]
    assert run(*args, "--name", "team A: v1").exit_code == 0
    path = results / "phantom-planes__team-A--v1.json"
    before = path.read_bytes()
    second = run(*args, "--name", "team A/ v1")
    assert second.exit_code == 2, second.output
    assert error_lines(second)[0].startswith(f"Error: {path} already holds the result of submission 'team A: v1'")
    assert error_lines(second)[1].startswith("Fix: Pass another --name")
    assert path.read_bytes() == before
    # The same name again is an update of its own result, not a collision.
    assert run(*args, "--name", "team A: v1").exit_code == 0


def test_a_file_name_differing_only_in_case_is_refused(phantom, planes_csv, tmp_path):
    results = tmp_path / "res"
    args = ["evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
            "--output", str(results), "--bootstrap", BOOT]
    assert run(*args, "--name", "Team-A").exit_code == 0
    second = run(*args, "--name", "team-a")
    assert second.exit_code == 2 and "only in letter case" in error_lines(second)[0]
    assert sorted(p.name for p in results.glob("*.json")) == ["phantom-planes__Team-A.json"]


# ----------------------------------------------------------------------------------------------
# Helpers: read-only and tiny file systems, in a private mount namespace
# ----------------------------------------------------------------------------------------------


def _can_unshare() -> bool:
    import shutil

    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_mounts = pytest.mark.skipif(not _can_unshare(), reason="no user namespaces (unshare -rm) for private mounts")

_CLI = "import sys; from fetal_bench.cli import main; sys.argv[0] = 'fetal-bench'; main()"


def run_with_mounts(mounts: list[str], argv: list[str], **env: str) -> subprocess.CompletedProcess:
    """``python ARGV`` in a private mount namespace after the shell commands ``mounts`` (so a
    directory can be read-only, or a tiny tmpfs, even for root, whom permissions do not stop)."""
    import shlex

    script = " && ".join([*mounts, 'exec "$@"'])
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", sys.executable, *argv],
                          capture_output=True, text=True, env=subprocess_env(**env), timeout=600)


def read_only(path: Path) -> list[str]:
    import shlex

    quoted = shlex.quote(str(path))
    return [f"mount --bind {quoted} {quoted}", f"mount -o remount,bind,ro {quoted}"]


# ----------------------------------------------------------------------------------------------
# 4 and 14. Split expressions: parsed, never matched by name; empty slices; read-only checkpoints
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["validation[:100%]", "train+validation", "train[:50%] + test[10:]",
                                   "challenge_test", "validation(closest)"])
def test_calibration_refuses_every_expression_that_reads_a_scored_split(tmp_path, split):
    from fetal_bench.models.seg_postprocess import calibrate_checkpoint

    with pytest.raises(FetalBenchError, match="would fit the offset on images it is scored on"):
        calibrate_checkpoint(tmp_path, tmp_path, split=split)


def test_split_expressions_are_parsed_as_datasets_parses_them():
    from fetal_bench.data.splits import parse_split, split_names

    assert split_names("train[:10%]+validation + train[10%:](pct1_dropremainder)") == ["train", "validation"]
    assert parse_split("test[-5:]")[0].start == "-5" and parse_split("test")[0].whole
    for bad in ("", "train[", "train;rm", "train+", "[:5]"):
        with pytest.raises(FetalBenchError, match="is not a split expression"):
            parse_split(bad)


def test_calibration_on_a_validation_slice_leaves_the_checkpoint_alone(phantom, unet_checkpoints, tmp_path):
    import shutil

    checkpoint = Path(shutil.copytree(unet_checkpoints[0], tmp_path / "ck"))
    before = (checkpoint / "config.json").read_bytes()
    result = run("models", "calibrate", str(checkpoint), "--data", str(phantom), "--config", "head",
                 "--split", "validation[:100%]")
    assert result.exit_code == 2
    assert "would fit the offset on images it is scored on: it reads 'validation'" in error_lines(result)[0]
    assert (checkpoint / "config.json").read_bytes() == before


def test_an_empty_slice_is_a_message_not_a_traceback(phantom, planes_csv, unet_checkpoints, tmp_path):
    result = run("evaluate", "--task", "phantom-planes", "--predictions", str(planes_csv), "--data", str(phantom),
                 "--split", "test[:0]", "--output", str(tmp_path / "res"), "--bootstrap", BOOT)
    assert result.exit_code == 2
    assert error_lines(result)[0].startswith("Error: Split 'test[:0]' of dataset ")
    assert "corresponds to no data" in error_lines(result)[0] and error_lines(result)[1].startswith("Fix: A slice must")
    assert not (tmp_path / "res").exists()
    result = run("models", "calibrate", str(unet_checkpoints[0]), "--data", str(phantom), "--config", "head",
                 "--split", "train[:0]")
    assert result.exit_code == 2 and error_lines(result)[0].startswith("Error: Split 'train[:0]' of dataset ")


@needs_mounts
def test_calibrating_a_read_only_checkpoint_fails_before_predicting(phantom, unet_checkpoints, tmp_path):
    import shutil

    checkpoint = Path(shutil.copytree(unet_checkpoints[0], tmp_path / "ck"))
    # The untrained U-Net finds no head: every image gets the same ellipse instead, so that the
    # calibration itself succeeds and only saving the offset could fail.
    calibrate = textwrap.dedent("""
        import sys
        import fetal_bench.models.seg_postprocess as post
        from fetal_bench.geometry import Ellipse

        post.head_ellipse_from_probability = lambda p: (p > 0.5, Ellipse(p.shape[1] / 2, p.shape[0] / 2, 20, 15, 0.3))
        from fetal_bench.cli import main
        sys.argv[0] = "fetal-bench"
        main()
    """)
    result = run_with_mounts(read_only(checkpoint), ["-c", calibrate, "models", "calibrate", str(checkpoint),
                                                     "--data", str(phantom), "--config", "head"])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"Error: Checkpoint {checkpoint} cannot be written (Read-only file system)" in result.stderr
    assert "predicted" not in result.stdout  # refused before the prediction pass, not after it


# ----------------------------------------------------------------------------------------------
# 6 (second half). Mask symlinks out of the submission folder
# ----------------------------------------------------------------------------------------------


def test_a_mask_linking_out_of_the_submission_folder_is_refused(phantom, head_truth, tmp_path):
    from fetal_bench.evaluation.submissions import (
        SubmissionError, load_segmentation_submission, submission_sha256,
    )

    ids = sorted(head_truth)
    shapes = {i: m.shape for i, m in head_truth.items()}
    elsewhere = write_masks(tmp_path / "someone-else", head_truth)
    directory = write_masks(tmp_path / "masks", head_truth)
    hash_before = submission_sha256(directory)
    (directory / f"{ids[0]}.png").unlink()
    (directory / f"{ids[0]}.png").symlink_to(elsewhere / f"{ids[0]}.png")  # a valid mask, but not handed in
    inside = directory / "spare"
    inside.mkdir()
    (inside / "copy.png").write_bytes((directory / f"{ids[1]}.png").read_bytes())
    (directory / f"{ids[1]}.png").unlink()
    (directory / f"{ids[1]}.png").symlink_to(inside / "copy.png")  # inside the folder: fine
    with pytest.raises(SubmissionError) as error:
        load_segmentation_submission(directory, expected_ids=ids, expected_shapes=shapes)
    lines = error.value.problem.splitlines()
    assert len(lines) == 2 and f"{ids[0]} (is a symbolic link to a file outside the submission folder)" in lines[1]
    assert ids[1] not in lines[1]
    assert submission_sha256(directory) != hash_before  # the hash covers only what is read
    result = run("evaluate", "--task", "phantom-head-seg", "--predictions", str(directory), "--data", str(phantom),
                 "--validate-only")
    assert result.exit_code == 2 and "outside the submission folder" in result.output


# ----------------------------------------------------------------------------------------------
# 7. The decoded-image cache: FIFOs, empty files, foreign meta.json, unfinished entries, full disks
# ----------------------------------------------------------------------------------------------


def _decoded_head(phantom):
    from fetal_bench.data.loading import open_dataset

    return open_dataset(phantom, config="head", split="validation")


def _decoded_batches(dataset):
    from fetal_bench.data.loading import make_dataloader

    loader = make_dataloader(dataset, task="segmentation", image_size=(24, 32), batch_size=8, decoded_cache=True)
    return [(batch["pixel_values"].clone(), batch["masks"].clone()) for batch in loader]


@pytest.fixture
def decoded_entry(phantom, tmp_path, monkeypatch):
    """A private cache with one complete entry for the phantom head validation split:
    (entry folder, the split, the batches it gives)."""
    from fetal_bench.data import decoded_cache

    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(decoded_cache.MAX_BYTES_ENV, raising=False)
    dataset = _decoded_head(phantom)
    batches = _decoded_batches(dataset)
    (entry,) = (tmp_path / "cache" / "decoded").iterdir()
    return entry, dataset, batches


def _same_batches(ours, theirs) -> bool:
    import torch

    return len(ours) == len(theirs) and all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
                                            for a, b in zip(ours, theirs))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_in_the_decoded_cache_is_never_opened(decoded_entry):
    """A FIFO opened for reading blocks until a writer comes (training hung). A writer thread
    stands by: had anything opened the FIFO, the writer's open would have completed."""
    import threading

    from fetal_bench.data.decoded_cache import CacheWarning

    entry, dataset, batches = decoded_entry
    fifo = entry / "original_sizes.npy"
    fifo.unlink()
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer():
        with open(fifo, "wb") as handle:  # blocks until someone opens the FIFO for reading
            opened.set()
            handle.write(b"\x93NUMPY garbage")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.warns(CacheWarning, match="removing the damaged decoded cache entry"):
            again = _decoded_batches(dataset)
        was_opened = opened.is_set()
    finally:
        if not opened.is_set():  # release the writer: open the read end ourselves, without blocking
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        thread.join(timeout=60)
    assert not was_opened, "the decoded cache opened a FIFO (without a writer it waits forever)"
    assert _same_batches(again, batches)
    assert (entry / "original_sizes.npy").is_file()  # rebuilt


@pytest.mark.parametrize("damage", ["empty-sizes", "meta-list", "meta-nested", "no-meta", "images-flipped-byte"])
def test_a_damaged_decoded_entry_is_rebuilt_not_fatal(decoded_entry, damage):
    import warnings

    from fetal_bench.data.decoded_cache import CacheWarning

    entry, dataset, batches = decoded_entry
    if damage == "empty-sizes":
        (entry / "original_sizes.npy").write_bytes(b"")
    elif damage == "meta-list":
        (entry / "meta.json").write_text("[]")
    elif damage == "meta-nested":
        (entry / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "no-meta":
        (entry / "meta.json").unlink()
    else:
        data = bytearray((entry / "images.npy").read_bytes())
        data[-1] ^= 0xFF  # same size, same header: only the content hash can tell
        (entry / "images.npy").write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = _decoded_batches(dataset)
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and "removing the damaged decoded cache entry" in messages[0], messages
    assert _same_batches(again, batches)
    with warnings.catch_warnings(record=True) as caught:  # rebuilt: the next run uses it silently
        warnings.simplefilter("always")
        assert _same_batches(_decoded_batches(dataset), batches)
    assert not [w for w in caught if issubclass(w.category, CacheWarning)]


@needs_mounts
def test_a_disk_that_fills_while_the_cache_is_written_is_a_warning_not_sigbus(phantom, tmp_path):
    """A 1 MB tmpfs for the cache, and a free-space check that passes (another process fills
    the disk after it): the first write past the end must be an error the loader survives."""
    cache = tmp_path / "cache"
    cache.mkdir()
    script = textwrap.dedent("""
        import collections, shutil, sys, warnings
        shutil.disk_usage = lambda path: collections.namedtuple("usage", "total used free")(1 << 40, 0, 1 << 40)
        from fetal_bench.data import decoded_cache
        from fetal_bench.data.loading import make_dataloader, open_dataset

        decoded_cache._FREE_SPACE_RESERVE = 0
        dataset = open_dataset(sys.argv[1], config="head", split="train")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = make_dataloader(dataset, task="segmentation", image_size=(256, 256), batch_size=16,
                                     decoded_cache=True)
            rows = sum(len(batch["id"]) for batch in loader)
        print(rows, len(dataset))
        print("\\n".join(str(w.message) for w in caught if issubclass(w.category, decoded_cache.CacheWarning)))
    """)
    result = run_with_mounts([f"mount -t tmpfs -o size=1m tmpfs {cache}"], ["-c", script, str(phantom)],
                             FETAL_BENCH_CACHE=str(cache))
    assert result.returncode == 0, f"rc {result.returncode}: {result.stderr[-2000:]}"
    counts, *warned = result.stdout.splitlines()
    rows, total = counts.split()
    assert rows == total
    assert any("could not be written (No space left on device)" in line for line in warned), result.stdout


# ----------------------------------------------------------------------------------------------
# 9. Parquet submissions: decoded size bounded before decoding
# ----------------------------------------------------------------------------------------------


def _parquet_bomb(path: Path, ids: list[str], column: str, value: bytes | str, **columns) -> Path:
    """One ``value`` repeated on every row, dictionary-encoded and compressed: a few kB of file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = pa.binary() if isinstance(value, bytes) else pa.string()
    repeated = pa.DictionaryArray.from_arrays(pa.array([0] * len(ids), pa.int32()), pa.array([value], kind))
    pq.write_table(pa.table({"id": ids, column: repeated, **columns}), path, compression="zstd")
    return path


@pytest.fixture
def small_decode_cap(monkeypatch):
    from fetal_bench.tasks import submissions

    # 8 MB instead of 1 GB, so that the bombs stay small: the limit is what is tested.
    monkeypatch.setattr(submissions, "MAX_DECODED_BYTES", 8 * 1024 * 1024)


def test_a_parquet_of_masks_that_decodes_to_gigabytes_is_refused_unread(head_truth, tmp_path, small_decode_cap):
    from fetal_bench.evaluation.submissions import SubmissionError, load_segmentation_submission

    ids = sorted(head_truth)
    ids = ids + [f"extra-{i}" for i in range(64 - len(ids))]
    bomb = _parquet_bomb(tmp_path / "bomb.parquet", ids, "mask", b"\0" * (1 << 20))  # 64 MB decoded
    assert bomb.stat().st_size < 64 * 1024
    with pytest.raises(SubmissionError, match="decodes to more than 8,388,608 bytes"):
        load_segmentation_submission(bomb, expected_ids=sorted(head_truth),
                                     expected_shapes={i: m.shape for i, m in head_truth.items()})


def test_a_parquet_column_that_is_never_read_is_never_decoded(head_truth, tmp_path, small_decode_cap):
    """Only `id` and `mask` are read from a Parquet of masks: a bomb in another column costs nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fetal_bench.evaluation.submissions import load_segmentation_submission

    ids = sorted(head_truth)
    masks = [png_bytes((head_truth[i] > 0).astype(np.uint8)) for i in ids]
    junk = pa.DictionaryArray.from_arrays(pa.array([0] * len(ids), pa.int32()), pa.array([b"\0" * (8 << 20)]))
    path = tmp_path / "masks.parquet"
    pq.write_table(pa.table({"id": ids, "mask": masks, "junk": junk}), path, compression="zstd")
    loaded = load_segmentation_submission(path, expected_ids=ids,
                                          expected_shapes={i: m.shape for i, m in head_truth.items()})
    assert sorted(loaded) == ids


def test_a_classification_parquet_bomb_is_refused(phantom, planes_csv, tmp_path, small_decode_cap):
    frame = pd.read_csv(planes_csv, dtype={"id": str})
    ids = list(frame["id"])
    bomb = _parquet_bomb(tmp_path / "bomb.parquet", ids, "label", "x" * (1 << 20))  # 120 MB decoded
    result = run("evaluate", "--task", "phantom-planes", "--predictions", str(bomb), "--data", str(phantom),
                 "--validate-only")
    assert result.exit_code == 2
    assert "decodes to more than 8,388,608 bytes" in error_lines(result)[0]


# ----------------------------------------------------------------------------------------------
# 16 (submissions). Messages that named the wrong problem
# ----------------------------------------------------------------------------------------------


def test_a_csv_row_with_extra_fields_is_named_not_reported_as_duplicate_ids(phantom, planes_csv, tmp_path):
    lines = planes_csv.read_text().splitlines()
    lines[5] += ",0,0"  # two stray fields on one row
    path = tmp_path / "extra.csv"
    path.write_text("\n".join(lines) + "\n")
    result = run("evaluate", "--task", "phantom-planes", "--predictions", str(path), "--data", str(phantom),
                 "--validate-only")
    assert result.exit_code == 2
    assert "1 row(s) do not have the header's" in result.output and "line 6 has" in result.output
    assert "duplicate ids" not in result.output and "missing ids" not in result.output


def test_a_gray_and_alpha_mask_is_a_gray_mask_not_a_colour_one(head_truth, tmp_path):
    from PIL import Image

    from fetal_bench.evaluation.submissions import load_segmentation_submission

    directory = tmp_path / "masks"
    directory.mkdir()
    for row_id, mask in head_truth.items():
        gray = (mask > 0).astype(np.uint8) * 255
        Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]), mode="LA").save(directory / f"{row_id}.png")
    loaded = load_segmentation_submission(directory, expected_ids=sorted(head_truth),
                                          expected_shapes={i: m.shape for i, m in head_truth.items()})
    assert all(np.array_equal(loaded[i], head_truth[i] > 0) for i in head_truth)


def test_errors_never_quote_in_memory_objects(head_truth, tmp_path):
    from fetal_bench.evaluation.submissions import SubmissionError, load_segmentation_submission

    directory = write_masks(tmp_path / "masks", head_truth)
    first = sorted(head_truth)[0]
    (directory / f"{first}.png").write_bytes(b"not a png at all")
    with pytest.raises(SubmissionError) as error:
        load_segmentation_submission(directory, expected_ids=sorted(head_truth),
                                     expected_shapes={i: m.shape for i, m in head_truth.items()})
    assert f"{first} (not a PNG or other image file)" in error.value.problem
    assert "object at 0x" not in str(error.value)


# ----------------------------------------------------------------------------------------------
# 10. A checkpoint's config.json: bounded before it is parsed, its options checked before building
# ----------------------------------------------------------------------------------------------


def _edited_checkpoint(source: Path, target: Path, edit) -> Path:
    import shutil

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    text = edit(config)
    (target / "config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    return target


@pytest.mark.parametrize("value, message", [
    ('"4"', "option base_channels = '4' is not a whole number"),
    ('"abc"', "option base_channels = 'abc' is not a whole number"),
    ("4.5", "option base_channels = 4.5 is not a whole number"),
    ("1000000000", "option base_channels = 1000000000 is outside [1, 1024]"),  # 36 GB of weights
    ("[64, 64]", "option base_channels = [64, 64] is not a whole number"),
])
def test_checkpoint_options_of_the_wrong_type_or_size_are_refused_before_building(
        phantom, unet_checkpoints, tmp_path, value, message):
    def edit(config):
        config["cfg"]["base_channels"] = "PLACEHOLDER"
        return json.dumps(config).replace('"PLACEHOLDER"', value)

    checkpoint = _edited_checkpoint(unet_checkpoints[0], tmp_path / "ck", edit)
    result = run("evaluate", "--task", "phantom-head-seg", "--model", "unet", "--checkpoint", str(checkpoint),
                 "--data", str(phantom), "--output", str(tmp_path / "res"), "--bootstrap", BOOT)
    assert result.exit_code == 2, result.output
    assert error_lines(result)[0] == f"Error: Model 'unet': {message}."


@pytest.mark.parametrize("text, message", [
    ('{"model": "unet", "cfg": {"depth": NaN}}', "NaN is not a JSON number"),
    ('{"model": "unet", "cfg": {}, "x": ' + "[" * 70_000 + "]" * 70_000 + "}", "nests 70,001 levels deep"),
    ('{"model": "unet", "cfg": {"depth": ' + "7" * 5001 + "}}", "an integer of 5,001 digits"),
])
@pytest.mark.parametrize("command", ["info", "push", "evaluate"])
def test_a_hostile_config_json_is_a_message_in_every_command(phantom, unet_checkpoints, tmp_path, text, message,
                                                              command):
    checkpoint = _edited_checkpoint(unet_checkpoints[0], tmp_path / "ck", lambda config: text)
    args = {"info": ["models", "info", str(checkpoint)],
            "push": ["models", "push", str(checkpoint), "--repo-id", "nobody/nothing"],
            "evaluate": ["evaluate", "--task", "phantom-head-seg", "--model", "unet", "--checkpoint",
                         str(checkpoint), "--data", str(phantom), "--output", str(tmp_path / "res")]}[command]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert error_lines(result)[0].startswith(f"Error: {checkpoint / 'config.json'} cannot be read: ")
    assert message in error_lines(result)[0] and error_lines(result)[1] == "Fix: Re-create the checkpoint."


def test_a_checkpoint_naming_dev_zero_as_its_fetalclip_config_is_refused_unread(phantom, tmp_path):
    """`cfg.config` of fetalclip_lora is read as FetalCLIP's architecture file: /dev/zero used to
    be read until MemoryError (here: a 3 GB data limit, so that the old behaviour fails fast)."""
    checkpoint = tmp_path / "fetalclip"
    checkpoint.mkdir()
    (checkpoint / "adapter_model.safetensors").write_bytes(b"")
    (checkpoint / "adapter_config.json").write_text("{}")
    (checkpoint / "config.json").write_text(json.dumps({
        "model": "fetalclip_lora", "cfg": {"config": "/dev/zero", "labels": ["a", "b"]}, "format_version": 2,
        "weights": {"kind": "adapter", "base": {"name": "FetalCLIP", "sha256": "0" * 64}}}))
    script = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))
        from fetal_bench.cli import main
        sys.argv[0] = "fetal-bench"
        main()
    """)
    result = subprocess.run([sys.executable, "-c", script, "evaluate", "--task", "phantom-planes", "--model",
                             "fetalclip_lora", "--checkpoint", str(checkpoint), "--data", str(phantom), "--output",
                             str(tmp_path / "res")], capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Error: FetalCLIP config /dev/zero is a character device." in result.stderr


# ----------------------------------------------------------------------------------------------
# 11. numba's compiled code: cached only where fetal-bench owns it, and only what it wrote is read
# ----------------------------------------------------------------------------------------------

_SCORE = textwrap.dedent("""
    import numpy as np
    from fetal_bench.metrics.segmentation import hd95_and_assd_mm

    a = np.zeros((60, 80), bool); a[10:40, 10:50] = True
    b = np.zeros((60, 80), bool); b[12:45, 8:47] = True
    print(hd95_and_assd_mm(a, b, 0.1))
""")
_EXPECTED_SCORES = "SurfaceScores(hd95_mm=0.5, assd_mm=0.29364445314902726)"


def _score(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCORE], capture_output=True, text=True, timeout=600,
                          env=subprocess_env(**env))


@needs_mounts
def test_scoring_works_uncached_when_no_cache_can_be_written(tmp_path):
    """The package folder, $HOME and the fetal-bench cache all read-only (a system install, a
    locked-down home): the first surface distance is compiled, never a "no locator" error."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    cache.mkdir()
    metrics = Path(PACKAGE_ROOT) / "fetal_bench" / "metrics"
    mounts = read_only(metrics) + read_only(home) + read_only(cache)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=PACKAGE_ROOT, HOME=str(home), FETAL_BENCH_CACHE=str(cache),
               PYTHONDONTWRITEBYTECODE="1")
    script = "import os; [os.environ.pop(k, None) for k in ('NUMBA_CACHE_DIR', 'XDG_CACHE_HOME')]\n" + _SCORE
    result = subprocess.run(["unshare", "-rm", "sh", "-c", " && ".join([*mounts, 'exec "$@"']), "sh",
                             sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == _EXPECTED_SCORES


@pytest.mark.parametrize("planted", ["code", "garbage", "truncated"])
def test_a_planted_or_damaged_numba_cache_is_never_unpickled(tmp_path, planted):
    """First a run fills the cache (wherever the code under test puts it); then every cache file
    is replaced. A pickle that creates a marker file must never run, garbage must not crash."""
    fb_cache, numba_cache, marker = tmp_path / "fb-cache", tmp_path / "numba-cache", tmp_path / "pwned"
    env = {"FETAL_BENCH_CACHE": str(fb_cache), "NUMBA_CACHE_DIR": str(numba_cache)}
    first = _score(**env)
    assert first.returncode == 0 and first.stdout.strip() == _EXPECTED_SCORES, first.stderr[-3000:]
    written = [p for root in (fb_cache, numba_cache) if root.exists() for p in root.rglob("*.nb[ic]")]
    assert written, "the first run cached nothing"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for path in written:
        if planted == "code":
            path.write_bytes(__import__("pickle").dumps(Payload()))
        elif planted == "garbage":
            path.write_bytes(b"\x80\x05not a pickle")
        else:
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    second = _score(**env)
    assert not marker.exists(), "a cache file that fetal-bench did not write was unpickled (and ran)"
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.strip() == _EXPECTED_SCORES
    # The project's cache only: NUMBA_CACHE_DIR (shared, maybe writable by others) is never used.
    assert not numba_cache.exists() or not any(numba_cache.rglob("*"))


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_cache_folder_others_can_write_is_not_used(tmp_path):
    from fetal_bench.metrics import _jit

    fb_cache = tmp_path / "fb-cache"
    folder = fb_cache / "numba" / _jit.cache_folder().name  # where the scoring process would cache
    folder.mkdir(parents=True)
    folder.chmod(0o777)  # anyone could plant an entry here
    result = _score(FETAL_BENCH_CACHE=str(fb_cache))
    assert result.returncode == 0 and result.stdout.strip() == _EXPECTED_SCORES, result.stderr[-3000:]
    assert list(folder.iterdir()) == []  # compiled, not cached


# ----------------------------------------------------------------------------------------------
# 12. Archives: a member-count cap; "verified" only against a checksum the mirror did not supply
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tar.xz", "zip"])
def test_an_archive_listing_too_many_members_is_refused_while_listing(tmp_path, monkeypatch, kind):
    import tarfile
    import zipfile

    from fetal_bench.data import download
    from fetal_bench.errors import UnsafeArchiveError

    monkeypatch.setattr(download, "_MAX_MEMBERS", 50, raising=False)  # 50, not 50,000: a small bomb
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for i in range(51):
                zf.writestr(f"f{i}", b"")
    else:
        with tarfile.open(archive, "w:xz") as tf:
            for i in range(51):
                tf.addfile(tarfile.TarInfo(f"f{i}"), io.BytesIO(b""))
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="holds more than 50 members"):
        download.extract_archive(archive, out)
    assert not out.exists() or list(out.iterdir()) == []


def _africa_archive() -> bytes:
    import tarfile

    members = {"Zenodo_dataset/African_planes_database.csv":
               b"Patient_num,Plane,Train,Center,Filename\n1,Fetal brain,1,Malawi,p1\n",
               "Zenodo_dataset/Malawi/p1.png": png_bytes(np.full((8, 8), 7, dtype=np.uint8))}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_file_checked_only_against_the_mirrors_own_md5_is_not_called_verified(tmp_path, zenodo):
    """fetal-bench pins no checksum for the African archive: through --mirror, the md5 comes from
    the mirror that serves the file, so any file the mirror likes "verifies"."""
    zenodo.publish("Zenodo_dataset.tar.xz", _africa_archive(), record=7540448)  # anything at all
    zenodo.publish_record(7540448)  # with its own md5
    result = run("datasets", "download", "fetal-planes-africa", "--to", str(tmp_path / "raw"), "--mirror", zenodo.base)
    assert result.exit_code == 0, result.output
    assert "Downloaded and verified" not in result.output
    assert "NOT verified:" in result.output and "Zenodo_dataset.tar.xz" in result.output
    assert "came from the mirror that served it" in result.output
    from fetal_bench.data.download import download_dataset

    files = download_dataset("fetal-planes-africa", tmp_path / "raw", mirror=zenodo.base, progress=False)
    assert [p.name for p in files.unverified] == ["Zenodo_dataset.tar.xz"]


# ----------------------------------------------------------------------------------------------
# 13. HC18 pixel sizes and circumferences that no frame has (or float32 cannot store)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column, value", [(1, "1e308"), (1, "3.5e38"), (1, "1e-50"), (1, "1e30"), (2, "1e30"),
                                           (2, "0.0001")])
def test_an_hc18_value_outside_its_physical_range_fails_the_build(tmp_path, column, value):
    from fake_raw import make_hc18_raw

    raw = tmp_path / "raw"
    make_hc18_raw(raw, subjects=4, size=(48, 64))
    csv_path = raw / "training_set_pixel_size_and_HC.csv"
    lines = csv_path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[column] = value
    lines[2] = ",".join(cells)
    csv_path.write_text("\n".join(lines) + "\n")
    result = run("datasets", "build", "hc18", "--raw", str(raw), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    name = ("pixel size(mm)", "head circumference (mm)")[column - 1]
    assert f"line 3: {name} = '{value}' is outside the plausible range" in error_lines(result)[0]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# 14. Tracebacks where a message belongs: PNG bombs for predict, markup in output paths, bidi
# ----------------------------------------------------------------------------------------------


def _huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A ~60-byte PNG whose header claims width x height pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_predict_refuses_a_png_claiming_400_megapixels(unet_checkpoints, tmp_path):
    image = tmp_path / "huge.png"
    image.write_bytes(_huge_png())
    result = run("predict", "--model", "unet", "--checkpoint", str(unet_checkpoints[0]), "--device", "cpu",
                 "--output", str(tmp_path / "out.csv"), str(image))
    assert result.exit_code == 2
    assert error_lines(result)[0].startswith(f"Error: Image {image} claims ")
    assert error_lines(result)[0].endswith(" pixels, over the limit of 50,000,000.")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("output", ["site[/x]", "[link=file:///etc/passwd]x[/link]", "[bold red]x"])
def test_an_output_path_with_markup_is_printed_literally(tmp_path, monkeypatch, output):
    monkeypatch.chdir(tmp_path)  # a short relative path: the table title is not wrapped
    result = run("protocols", "run", "sam-few-shot", "--output", output, "--dry-run")
    assert result.exit_code == 0, result.output
    # The title may wrap after "->"; the path (as pathlib spells it: "//" folds) is shown whole.
    assert "sam-few-shot ->" in result.output and str(Path(output)) in result.output
    assert "\x1b]8;" not in result.output  # no terminal hyperlink


def test_safe_shows_bidirectional_controls_instead_of_obeying_them():
    from fetal_bench.cli._console import safe

    assert safe("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    assert safe("a\u2066b\u2069c\u200fd\u2028e") == "a\\u2066b\\u2069c\\u200fd\\u2028e"
    assert safe("café ü 漢字") == "café ü 漢字"  # ordinary non-ASCII text is untouched


# ----------------------------------------------------------------------------------------------
# 16. Messages that misled
# ----------------------------------------------------------------------------------------------


def test_ctrl_c_exits_130_without_aborted(phantom, tmp_path):
    """SIGINT in the middle of a run (sent by the run itself, at a fixed point: no timing)."""
    script = textwrap.dedent("""
        import os, signal, sys
        import fetal_bench.data.loading as loading

        def interrupted(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            raise AssertionError("SIGINT did not interrupt")

        loading.make_dataloader = interrupted
        from fetal_bench.cli import main
        sys.argv[0] = "fetal-bench"
        main()
    """)
    results = tmp_path / "res"
    checkpoint = _unet_checkpoint_for_interrupt(tmp_path)
    result = subprocess.run([sys.executable, "-c", script, "evaluate", "--task", "phantom-head-seg", "--model", "unet",
                             "--checkpoint", str(checkpoint), "--data", str(phantom), "--output", str(results),
                             "--device", "cpu"], capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Aborted!" not in result.stderr and "Traceback" not in result.stderr
    assert "Interrupted." in result.stderr
    assert not results.exists() or not list(results.iterdir())  # no result, and the lock went with the run


def _unet_checkpoint_for_interrupt(tmp_path: Path) -> Path:
    from fetal_bench.models import create_model, save_checkpoint
    from fetal_bench.models.registry import MODELS

    return save_checkpoint(create_model("unet", **MODELS["unet"].tiny), tmp_path / "ck-source", run_name="ctrl-c")


def test_a_checkpoint_naming_an_unknown_model_says_so(phantom, unet_checkpoints, tmp_path):
    def edit(config):
        config["model"] = "nope"

    checkpoint = _edited_checkpoint(unet_checkpoints[0], tmp_path / "ck", edit)
    result = run("evaluate", "--task", "phantom-head-seg", "--model", "unet", "--checkpoint", str(checkpoint),
                 "--data", str(phantom), "--output", str(tmp_path / "res"))
    assert result.exit_code == 2
    assert error_lines(result)[0] == (f"Error: Checkpoint {checkpoint} holds a model named 'nope', which this "
                                      "fetal-bench does not know.")
    assert "--model nope" not in result.output


@pytest.mark.parametrize("reference", ["org/repo@../../x", "org/repo@main/../x", "org/repo@.hidden", "org/repo@a//b"])
def test_a_revision_with_dot_dot_is_refused_as_a_revision_not_a_network_error(reference):
    result = run("models", "info", reference)
    assert result.exit_code == 2
    assert "is not a valid Hub revision" in error_lines(result)[0]
    assert "network" not in result.output.lower() and "offline" not in result.output.lower()


# ----------------------------------------------------------------------------------------------
# 15. Checkpoint saves killed half-way, and pushing a damaged one
# ----------------------------------------------------------------------------------------------

# Saves a tiny U-Net as run "new" into an existing checkpoint and is SIGKILLed at the first
# os.replace onto the file named by argv[2] (README.md: after the weights and config.json moved).
_KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from fetal_bench.models import create_model, save_checkpoint
    from fetal_bench.models.registry import MODELS

    original = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(str(dst)) == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(src, dst, *args, **kwargs)

    model = create_model("unet", **MODELS["unet"].tiny)
    os.replace = replace
    save_checkpoint(model, sys.argv[1], run_name="new")
""")


@pytest.mark.parametrize("killed_at", ["model.safetensors", "README.md"])
def test_a_save_killed_half_way_leaves_no_weights_copy_and_no_stale_card(tmp_path, killed_at):
    from fetal_bench.models import create_model, load_checkpoint, save_checkpoint
    from fetal_bench.models.registry import MODELS

    checkpoint = save_checkpoint(create_model("unet", **MODELS["unet"].tiny), tmp_path / "ck", run_name="old")
    killed = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(checkpoint), killed_at], capture_output=True,
                            text=True, env=subprocess_env(), timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    config = json.loads((checkpoint / "config.json").read_text())
    card = checkpoint / "README.md"
    # Never a card describing another run than config.json does.
    assert not card.exists() or f"# {config['run_name']}" in card.read_text()
    # The next save cleans what the killed one left: no orphaned copy of the weights.
    save_checkpoint(create_model("unet", **MODELS["unet"].tiny), checkpoint, run_name="again")
    assert not list(checkpoint.glob(".checkpoint-*")), sorted(p.name for p in checkpoint.iterdir())
    assert "# again" in card.read_text() and load_checkpoint(checkpoint)[1].run_name == "again"


@pytest.mark.parametrize("damage", ["truncated", "padded", "header-cut"])
def test_push_refuses_a_damaged_safetensors_file_before_uploading(unet_checkpoints, tmp_path, damage):
    import shutil

    from fetal_bench.models.checkpoint import push_checkpoint

    checkpoint = Path(shutil.copytree(unet_checkpoints[0], tmp_path / "ck"))
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncated": data[:-100], "padded": data + b"\0" * 8, "header-cut": data[:20]}[damage])

    class Api:
        uploads = []

        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            self.uploads.append(kwargs)
            raise AssertionError("uploaded")

    api = Api()
    with pytest.raises(FetalBenchError, match="model.safetensors (is damaged|is not a complete safetensors)"):
        push_checkpoint(checkpoint, "me/unet", api=api)
    assert api.uploads == []


def test_push_writes_a_missing_card_from_config_json(unet_checkpoints, tmp_path):
    import shutil

    from fetal_bench.models.checkpoint import push_checkpoint

    checkpoint = Path(shutil.copytree(unet_checkpoints[0], tmp_path / "ck"))
    (checkpoint / "README.md").unlink()
    sent = []

    class Api:
        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            from types import SimpleNamespace

            sent.extend(sorted(kwargs["allow_patterns"]))
            return SimpleNamespace(oid="0" * 40, commit_url="https://huggingface.co/me/unet/commit/0")

    push_checkpoint(checkpoint, "me/unet", api=Api())
    assert sent == ["README.md", "config.json", "model.safetensors"]
    assert "# unet_ok" in (checkpoint / "README.md").read_text()
