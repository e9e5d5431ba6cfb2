"""Tests of the embedded phantom set (simulated ultrasound-like images, not clinical data)."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import re

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion

from fetal_bench.data import phantom
from fetal_bench.data.phantom.fan import _fan_mask
from fetal_bench.data.phantom.seeds import _png_bytes
from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import Ellipse, ellipse_mask, ellipse_perimeter, fit_ellipse, mask_boundary

SPLITS = ("train", "validation", "test")
ITERATORS = {"planes": phantom.iter_planes_examples, "head": phantom.iter_head_examples}
# sha256 over the first two rows of each config's test split (see test_rows_are_pinned_bytes).
PINNED_DIGEST = "2df8a8eabe6ebf26a6db5751ccb518c787fcb8bf4fcea73765f977a4a7a72b3f"


def decode(image: dict) -> np.ndarray:
    with Image.open(io.BytesIO(image["bytes"])) as pil:
        assert pil.mode == "L" and pil.format == "PNG"
        return np.array(pil)


@pytest.fixture(scope="module")
def rows() -> dict[tuple[str, str], list[dict]]:
    """Every row of both configs (the whole set takes a few seconds)."""
    return {(config, split): list(ITERATORS[config](split)) for config in ITERATORS for split in SPLITS}


def first_rows(config: str, split: str, n: int, seed: int = 0) -> list[dict]:
    return list(itertools.islice(ITERATORS[config](split, seed=seed), n))


# --- contracts ---------------------------------------------------------------------------------


def test_constants_and_features():
    assert phantom.PLANE_CLASSES == ("abdomen", "brain", "femur", "thorax")
    assert len(phantom.SITES) == 3 and len(set(phantom.SITES)) == 3
    assert set(phantom.SPLIT_SIZES) == {"planes", "head"}
    for sizes in phantom.SPLIT_SIZES.values():
        assert tuple(sizes) == SPLITS and all(n > 0 for n in sizes.values())
    planes = phantom.planes_features()
    assert list(planes) == ["id", "image", "label", "patient_id", "site"]
    assert planes["label"].names == list(phantom.PLANE_CLASSES)
    head = phantom.head_features()
    assert list(head) == ["id", "image", "mask", "subject_id", "pixel_size_mm", "head_circumference_mm"]
    assert head["pixel_size_mm"].dtype == head["head_circumference_mm"].dtype == "float32"


def test_row_counts_and_ids_unique(rows):
    ids = []
    for (config, split), split_rows in rows.items():
        assert len(split_rows) == phantom.SPLIT_SIZES[config][split]
        assert all(row["id"].startswith(f"phantom-{config}-{split}-") for row in split_rows)
        ids += [row["id"] for row in split_rows]
    assert len(ids) == len(set(ids))


def test_patients_and_subjects_never_cross_splits(rows):
    for config, column in (("planes", "patient_id"), ("head", "subject_id")):
        groups = {split: {row[column] for row in rows[config, split]} for split in SPLITS}
        for first, second in itertools.combinations(SPLITS, 2):
            assert not groups[first] & groups[second], (config, first, second)
    for split in SPLITS:  # head: HC18-like pairs of images per subject
        subjects = [row["subject_id"] for row in rows["head", split]]
        assert all(subjects.count(subject) == 2 for subject in set(subjects))
    for split in SPLITS:
        split_rows = rows["planes", split]
        per_patient: dict[str, list[dict]] = {}
        for row in split_rows:
            per_patient.setdefault(row["patient_id"], []).append(row)
        # Several images per patient (so a patient-level bootstrap means something), one site each.
        assert all(len(images) >= 3 for images in per_patient.values())
        assert all(len({row["site"] for row in images}) == 1 for images in per_patient.values())
        assert {row["site"] for row in split_rows} == set(phantom.SITES)
        counts = np.bincount([row["label"] for row in split_rows], minlength=len(phantom.PLANE_CLASSES))
        assert counts.min() == counts.max()  # balanced classes


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_different():
    for config in ITERATORS:
        once, again = first_rows(config, "validation", 3), first_rows(config, "validation", 3)
        assert once == again
        other = first_rows(config, "validation", 3, seed=1)
        assert [row["id"] for row in other] == [row["id"] for row in once]
        assert all(a["image"]["bytes"] != b["image"]["bytes"] for a, b in zip(once, other, strict=True))


def test_rows_are_pinned_bytes():
    """The exact bytes, pinned: a change here means the published phantom set changed.

    Fails if the generator is edited (then update the digest on purpose) or if numpy or the
    platform would produce different pixels, which the module is written to rule out.
    """
    digest = hashlib.sha256()
    for config in ITERATORS:
        for row in first_rows(config, "test", 2):
            for key in sorted(row):
                value = row[key]
                digest.update(key.encode())
                digest.update(value["bytes"] if isinstance(value, dict) else repr(value).encode())
    assert digest.hexdigest() == PINNED_DIGEST


def test_render_functions_are_deterministic_and_sized():
    for label in range(len(phantom.PLANE_CLASSES)):
        a = phantom.render_planes_image(label, np.random.default_rng(5), site=label % 3, size=(64, 80))
        b = phantom.render_planes_image(label, np.random.default_rng(5), site=label % 3, size=(64, 80))
        assert a.dtype == np.uint8 and a.shape == (64, 80) and np.array_equal(a, b)
    image, mask, params = phantom.render_head_image(np.random.default_rng(5), size=(96, 120))
    assert image.shape == mask.shape == (96, 120) and image.dtype == mask.dtype == np.uint8
    again = phantom.render_head_image(np.random.default_rng(5), size=(96, 120))
    assert np.array_equal(image, again[0]) and np.array_equal(mask, again[1]) and params == again[2]


# --- geometry and physics ------------------------------------------------------------------------


def test_black_outside_the_fan(rows):
    for split in SPLITS:
        for row in rows["planes", split][:40]:
            image = decode(row["image"])
            fan = _fan_mask(phantom.SITES.index(row["site"]), image.shape)
            assert not image[~fan].any()
            assert (image[fan] > 0).mean() > 0.9  # the fan itself is not black
    for seed in range(6):
        image, mask, params = phantom.render_head_image(np.random.default_rng(seed))
        fan = _fan_mask(params["site"], image.shape)
        assert not image[~fan].any()
        assert not (mask.astype(bool) & ~fan).any()  # the head lies wholly inside the fan
    fans = [_fan_mask(site) for site in range(len(phantom.SITES))]
    assert all(not np.array_equal(fans[0], other) for other in fans[1:])  # sites differ


def test_head_mask_is_the_analytic_ellipse():
    for seed in range(24):
        image, mask, p = phantom.render_head_image(np.random.default_rng(seed))
        assert set(np.unique(mask)) <= {0, 1}
        assert p["a"] >= p["b"] > 0
        area = math.pi * p["a"] * p["b"]
        assert abs(mask.sum() - area) / area < 0.02
        ellipse = Ellipse(p["cx"], p["cy"], p["a"], p["b"], p["angle"])
        assert (ellipse_mask(mask.shape, ellipse) != mask.astype(bool)).sum() <= 2
        assert p["head_circumference_mm"] == pytest.approx(
            ellipse_perimeter(p["a"], p["b"]) * p["pixel_size_mm"], rel=1e-12
        )
        assert 100.0 <= p["head_circumference_mm"] <= 350.0
        assert 0.3 <= p["pixel_size_mm"] <= 1.3
        # Wholly inside the image, with a margin.
        rows, cols = np.nonzero(mask)
        assert rows.min() > 0 and cols.min() > 0
        assert rows.max() < mask.shape[0] - 1 and cols.max() < mask.shape[1] - 1
        # The bright skull rim lines the mask's edge: that band is much brighter than the brain.
        head = mask.astype(bool)
        band = head & ~binary_erosion(head, iterations=3)
        brain = binary_erosion(head, iterations=8)
        assert image[band].mean() > 1.5 * image[brain].mean()


def test_head_rows_match_their_masks(rows):
    for split in SPLITS:
        for row in rows["head", split]:
            mask = decode(row["mask"])
            assert set(np.unique(mask)) <= {0, 1}
            assert 100.0 <= row["head_circumference_mm"] <= 350.0
            # HC as the HC18 metric measures it: an ellipse fitted to the mask outline.
            fitted = fit_ellipse(*np.nonzero(mask_boundary(mask))[::-1])
            assert fitted.perimeter * row["pixel_size_mm"] == pytest.approx(
                row["head_circumference_mm"], rel=0.03
            )


# --- Hugging Face round trip and learnability -----------------------------------------------------


def test_rows_round_trip_through_datasets():
    import datasets

    for config, features in (("planes", phantom.planes_features()), ("head", phantom.head_features())):
        split_rows = first_rows(config, "validation", 5)
        for row in split_rows:
            features.encode_example(row)
        dataset = datasets.Dataset.from_list(split_rows, features=features)
        assert dataset.features == features and len(dataset) == 5
        for row, loaded in zip(split_rows, dataset, strict=True):
            assert loaded["id"] == row["id"]
            assert loaded["image"].mode == "L" and loaded["image"].size == (160, 128)
            assert np.array_equal(np.array(loaded["image"]), decode(row["image"]))
            if config == "planes":
                assert loaded["label"] == row["label"] and loaded["site"] == row["site"]
            else:
                assert np.array_equal(np.array(loaded["mask"]), decode(row["mask"]))
                assert loaded["head_circumference_mm"] == pytest.approx(
                    row["head_circumference_mm"], rel=1e-6
                )


def test_png_encoder_multi_block():
    array = np.random.default_rng(0).integers(0, 256, size=(300, 301), dtype=np.uint8)  # > 64 KiB
    assert np.array_equal(decode({"bytes": _png_bytes(array)}), array)


def test_classes_differ_nearest_class_mean(rows):
    """A nearest-class-mean classifier on 8x8-pooled pixels beats chance (25%) clearly."""

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        images = np.stack([decode(row["image"]) for row in rows["planes", split]]).astype(np.float64)
        pooled = images.reshape(len(images), 16, 8, 20, 8).mean(axis=(2, 4)).reshape(len(images), -1)
        return pooled, np.array([row["label"] for row in rows["planes", split]])

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    means = np.stack([x_train[y_train == k].mean(axis=0) for k in range(len(phantom.PLANE_CLASSES))])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=-1)
    accuracy = (distances.argmin(axis=1) == y_test).mean()
    assert accuracy > 0.5


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: next(phantom.iter_planes_examples("dev")), "The phantom 'planes' config has no split 'dev'."),
        (lambda: next(phantom.iter_head_examples("challenge_test")),
         "The phantom 'head' config has no split 'challenge_test'."),
        (lambda: next(phantom.iter_planes_examples("train", seed=-1)), "Phantom seed -1 is not a non-negative integer."),
        (lambda: phantom.render_planes_image(4, np.random.default_rng(0)), "Phantom plane label 4 is out of range."),
        (lambda: phantom.render_planes_image(0, np.random.default_rng(0), site=3), "Phantom site 3 is out of range."),
        (lambda: phantom.render_head_image(np.random.default_rng(0), size=(8, 8)),
         "Phantom image size (8, 8) is outside 32..2048 pixels."),
    ],
)
def test_bad_arguments_raise_fetal_bench_error(call, message):
    with pytest.raises(FetalBenchError, match=re.escape(message)):
        call()
