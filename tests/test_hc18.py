"""HC18 converter: generated raw layouts (always) and the real shared copy (when available)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_dataset

from fetal_bench.data.builders import build_dataset
from fetal_bench.data.builders.hc18 import outline_to_mask, subject_split
from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.geometry import ellipse_mask
from fake_raw import make_hc18_raw, png_bytes


@pytest.fixture()
def raw(tmp_path):
    root = tmp_path / "raw"
    ellipses = make_hc18_raw(root, subjects=30, seed=1)
    return root, ellipses


def _subjects(ds):
    return {split: set(ds[split]["subject_id"]) for split in ds}


def test_build_loads_with_expected_features_and_disjoint_subjects(raw, tmp_path):
    root, ellipses = raw
    result = build_dataset("hc18", tmp_path / "out", raw_dir=root)
    ds = load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "validation", "test"}
    assert set(ds["train"].features) == {"id", "image", "mask", "subject_id", "pixel_size_mm", "head_circumference_mm"}
    assert sum(len(ds[s]) for s in ds) == len(ellipses)
    subjects = _subjects(ds)
    assert not (subjects["train"] & subjects["validation"]) and not (subjects["train"] & subjects["test"])
    assert not (subjects["validation"] & subjects["test"])
    # Every image of a subject lands in that subject's split.
    for split in ds:
        for subject in subjects[split]:
            assert subject_split(subject) == split
    # Partial set and no test set are reported, not fatal.
    assert any("of the 999 labelled" in w for w in result.warnings)
    assert any("challenge_test" in w for w in result.warnings)


def test_masks_are_the_filled_annotated_ellipses(raw, tmp_path):
    root, ellipses = raw
    build_dataset("hc18", tmp_path / "out", raw_dir=root)
    ds = load_dataset(str(tmp_path / "out"), split="train")
    for row in ds:
        mask = np.asarray(row["mask"])
        assert set(np.unique(mask)) <= {0, 1}
        expected = ellipse_mask(mask.shape, ellipses[row["id"] + ".png"])
        assert (mask.astype(bool) == expected).mean() > 0.995
        image = np.asarray(row["image"])
        assert image.shape == mask.shape


def test_embeds_original_image_bytes(raw, tmp_path):
    root, _ = raw
    build_dataset("hc18", tmp_path / "out", raw_dir=root)
    ds = load_dataset(str(tmp_path / "out"), split="train").cast_column("image", __import__("datasets").Image(decode=False))
    row = ds[0]
    assert row["image"]["bytes"] == (root / "training_set" / f"{row['id']}.png").read_bytes()


def test_challenge_test_split_when_test_set_present(tmp_path):
    root = tmp_path / "raw"
    make_hc18_raw(root, subjects=6, with_test_set=True)
    build_dataset("hc18", tmp_path / "out", raw_dir=root)
    ds = load_dataset(str(tmp_path / "out"), split="challenge_test")
    assert len(ds) == 4
    assert all(m is None for m in ds["mask"]) and all(h is None for h in ds["head_circumference_mm"])
    assert all(i.startswith("test_") for i in ds["id"])


def test_outline_cut_by_border_is_filled_from_fitted_ellipse():
    shape = (60, 80)
    from fetal_bench.geometry import Ellipse, mask_boundary

    ellipse = Ellipse(cx=40, cy=45, a=30, b=20, angle=0.0)  # runs off the bottom edge
    full = ellipse_mask(shape, ellipse)
    outline = mask_boundary(full)
    outline[-1, :] = False  # the frame edge is not part of the drawn outline
    mask, method = outline_to_mask(outline.astype(np.uint8) * 255)
    assert method == "ellipse-fit"
    assert (mask.astype(bool) == full).mean() > 0.99


def _expect_error_and_no_output(root, out, match):
    with pytest.raises(DataError, match=match):
        build_dataset("hc18", out, raw_dir=root)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_missing_files_build_a_partial_local_revision_that_names_them(raw, tmp_path):
    root, ellipses = raw
    complete = build_dataset("hc18", tmp_path / "complete", raw_dir=root)
    (root / "training_set" / "004_HC.png").unlink()
    (root / "training_set" / "009_HC_Annotation.png").unlink()  # an image without its annotation is left out too
    result = build_dataset("hc18", tmp_path / "out", raw_dir=root)
    listed = len(ellipses)
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["partial"] == {"what": "labelled images", "listed": listed, "built": listed - 2, "missing": 2,
                               "missing_share": round(2 / listed, 6), "revision": "local",
                               "missing_examples": ["004_HC.png", "009_HC.png"]}
    assert any(w.startswith(f"Partial raw directory: {listed - 2} of the {listed} labelled images listed in "
                            "training_set_pixel_size_and_HC.csv were built; 2 (") for w in result.warnings)
    assert "> **Partial build: a local revision, not hc18 v1.0.**" in (tmp_path / "out" / "README.md").read_text()
    ds = load_dataset(str(tmp_path / "out"))
    ids = {row_id for split in ds for row_id in ds[split]["id"]}
    assert "004_HC" not in ids and "009_HC" not in ids and len(ids) == listed - 2
    assert "partial" not in json.loads((tmp_path / "complete" / "build_info.json").read_text())
    assert complete.fingerprint != result.fingerprint


def test_no_labelled_image_present_is_refused(raw, tmp_path):
    root, _ = raw
    for path in (root / "training_set").glob("*HC.png"):
        path.unlink()
    _expect_error_and_no_output(root, tmp_path / "out", "None of the labelled images listed in")


def test_corrupt_image_names_the_file_and_leaves_nothing(raw, tmp_path):
    root, _ = raw
    path = root / "training_set" / "007_HC.png"
    path.write_bytes(path.read_bytes()[:40])
    _expect_error_and_no_output(root, tmp_path / "out", "007_HC.png.*corrupt")


def test_unexpected_csv_header(raw, tmp_path):
    root, _ = raw
    csv_path = root / "training_set_pixel_size_and_HC.csv"
    lines = csv_path.read_text().splitlines()
    lines[0] = "filename,pixel_size,hc"
    csv_path.write_text("\n".join(lines) + "\n")
    _expect_error_and_no_output(root, tmp_path / "out", "unexpected header")


def test_bad_value_and_missing_csv(raw, tmp_path):
    root, _ = raw
    csv_path = root / "training_set_pixel_size_and_HC.csv"
    lines = csv_path.read_text().splitlines()
    lines[3] = lines[3].split(",")[0] + ",abc,12"
    csv_path.write_text("\n".join(lines) + "\n")
    _expect_error_and_no_output(root, tmp_path / "out", "line 4.*not a positive number")
    csv_path.unlink()
    _expect_error_and_no_output(root, tmp_path / "out", "training_set_pixel_size_and_HC.csv not found")


def test_failed_rebuild_keeps_previous_output(raw, tmp_path):
    root, _ = raw
    out = tmp_path / "out"
    build_dataset("hc18", out, raw_dir=root)
    before = json.loads((out / "build_info.json").read_text())["fingerprint"]
    (root / "training_set" / "010_HC_Annotation.png").write_bytes(png_bytes(np.zeros((96, 128), np.uint8)))
    with pytest.raises(DataError, match="010_HC_Annotation.png"):
        build_dataset("hc18", out, raw_dir=root, overwrite=True)
    assert json.loads((out / "build_info.json").read_text())["fingerprint"] == before


def test_existing_output_is_refused_without_overwrite(raw, tmp_path):
    root, _ = raw
    build_dataset("hc18", tmp_path / "out", raw_dir=root)
    with pytest.raises(FetalBenchError, match="already exists"):
        build_dataset("hc18", tmp_path / "out", raw_dir=root)


def test_build_is_deterministic(raw, tmp_path):
    root, _ = raw
    first = build_dataset("hc18", tmp_path / "a", raw_dir=root)
    second = build_dataset("hc18", tmp_path / "b", raw_dir=root)
    assert first.fingerprint == second.fingerprint


@pytest.mark.real_data
def test_real_hc18_shared_copy(hc18_real_build):
    """The shared copy: all 999 labelled images, no challenge test set."""
    out, result = hc18_real_build
    ds = load_dataset(str(out))
    assert set(ds) == {"train", "validation", "test"}
    assert sum(len(ds[s]) for s in ds) == 999
    subjects = _subjects(ds)
    assert sum(len(v) for v in subjects.values()) == len(set().union(*subjects.values()))
    assert not any("of the 999" in w for w in result.warnings)  # complete: no partial-copy warning
    # Masks are filled heads, not outlines: each one agrees with the ellipse fitted to its
    # boundary, and together they cover a large share of the frame.
    from fetal_bench.geometry import fit_ellipse, mask_boundary

    masks = [np.asarray(m).astype(bool) for m in ds["test"]["mask"]]
    assert 0.2 < float(np.mean([m.mean() for m in masks])) < 0.4
    for mask in masks[::10]:
        rows, cols = np.nonzero(mask_boundary(mask))
        fitted = ellipse_mask(mask.shape, fit_ellipse(cols, rows))
        assert (mask & fitted).sum() / (mask | fitted).sum() > 0.97
    assert all(0.05 < p < 0.5 for p in ds["test"]["pixel_size_mm"])
    card = (out / "README.md").read_text()
    assert "cc-by-4.0" in card and "van den Heuvel" in card and "of the 999" not in card


def test_challenge_test_does_not_change_the_labelled_content_fingerprints(tmp_path):
    """The optional unlabelled challenge images leave every labelled split's fingerprint alone."""
    from fetal_bench.data.fingerprint import build_fingerprints

    make_hc18_raw(tmp_path / "plain", subjects=12, seed=3)
    make_hc18_raw(tmp_path / "with-test", subjects=12, seed=3, with_test_set=True)
    plain = build_fingerprints(build_dataset("hc18", tmp_path / "a", raw_dir=tmp_path / "plain").path)
    with_test = build_fingerprints(build_dataset("hc18", tmp_path / "b", raw_dir=tmp_path / "with-test").path)
    assert set(with_test) == set(plain) | {"challenge_test"}
    assert {split: with_test[split] for split in plain} == plain


def _pin_catalog_to(monkeypatch, splits: dict[str, str]) -> None:
    import dataclasses

    from fetal_bench.data import catalog

    pin = catalog.ContentPin(revision="v1.0", splits=splits, rows={s: 0 for s in splits}, dataset="x" * 64)
    monkeypatch.setitem(catalog.CATALOG, "hc18", dataclasses.replace(catalog.HC18, pins=(pin,)))


def test_a_build_matching_the_pin_is_v1_and_a_differing_one_names_its_split(raw, tmp_path, monkeypatch):
    from fetal_bench.data.fingerprint import build_fingerprints
    from fetal_bench.evaluation.data import load_eval_data
    from fetal_bench.tasks import get_task

    root, _ = raw
    out = build_dataset("hc18", tmp_path / "hc18", raw_dir=root).path
    fingerprints = build_fingerprints(out)
    task = get_task("hc18-head-seg")

    _pin_catalog_to(monkeypatch, fingerprints)
    data = load_eval_data(task, out)
    assert (data.revision, data.fingerprint, data.notes) == ("v1.0", fingerprints["test"], ())
    assert data.source == "local:hc18"  # the directory's name, never the machine's path

    _pin_catalog_to(monkeypatch, {**fingerprints, "test": "0" * 64})
    data = load_eval_data(task, out)
    assert data.revision == "local" and data.fingerprint == fingerprints["test"]
    assert len(data.notes) == 1 and "split 'test'" in data.notes[0] and "000000000000" in data.notes[0]
    assert "'train'" not in data.notes[0]  # only the split that differs is named
    # The validation split still matches: scoring it is v1.0.
    assert load_eval_data(task, out, split="validation").revision == "v1.0"


def test_the_real_pin_rejects_a_generated_build(raw, tmp_path):
    from fetal_bench.evaluation.data import load_eval_data
    from fetal_bench.tasks import get_task

    root, _ = raw
    out = build_dataset("hc18", tmp_path / "hc18", raw_dir=root).path
    data = load_eval_data(get_task("hc18-head-seg"), out)
    assert data.revision == "local" and "Not hc18 v1.0: split 'test'" in data.notes[0]


def test_evaluate_without_data_offline_fails_fast_with_a_runnable_fix(monkeypatch):
    """No --data and no Hub: a clear error in well under the Hub's ~27 s of retries."""
    import time

    from click.testing import CliRunner

    from fetal_bench.cli import cli

    start = time.perf_counter()
    run = CliRunner().invoke(cli, ["evaluate", "--task", "hc18-head-seg", "--model", "unet", "--output", "out"])
    assert run.exit_code == 2, run.output
    assert "offline mode is on" in run.output
    assert "Fix: Score a local build instead: fetal-bench datasets build hc18 --raw raw/hc18 --out data/hc18" \
        in " ".join(run.output.split())
    assert time.perf_counter() - start < 10


def test_unreachable_hub_is_detected_by_one_quick_probe(monkeypatch):
    """Online mode but no network: one TCP probe, not the Hub client's retries."""
    import socket
    import time

    from huggingface_hub import constants

    from fetal_bench.errors import FetalBenchError
    from fetal_bench.evaluation.data import load_eval_data
    from fetal_bench.tasks import get_task

    import datasets

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # what huggingface_hub.is_offline_mode() reads
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)  # and datasets' own
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    probes = []

    def refuse(address, timeout=None):
        probes.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    start = time.perf_counter()
    with pytest.raises(FetalBenchError) as error:
        load_eval_data(get_task("planes-africa"))
    assert time.perf_counter() - start < 5
    assert probes == [(("huggingface.co", 443), 3.0)]
    assert "cannot be reached" in error.value.problem
    assert "fetal-bench datasets build fetal-planes-africa --raw raw/fetal-planes-africa" in error.value.fix
