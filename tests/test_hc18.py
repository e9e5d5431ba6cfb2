"""HC18 converter: generated raw layouts (always) and the real shared copy (when available)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from datasets import load_dataset

from fetal_bench.data.builders import build_dataset
from fetal_bench.data.builders.hc18 import outline_to_mask, subject_split
from fetal_bench.errors import DataError
from fetal_bench.geometry import ellipse_mask
from fetal_bench.testing.fake_raw import make_hc18_raw, png_bytes


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


def test_missing_image_names_the_file(raw, tmp_path):
    root, _ = raw
    (root / "training_set" / "004_HC.png").unlink()
    _expect_error_and_no_output(root, tmp_path / "out", "004_HC.png")


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
    with pytest.raises(Exception, match="already exists"):
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
