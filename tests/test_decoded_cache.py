"""The decoded-image cache: bit-identical batches, content keys, size cap, damage, fallbacks."""

from __future__ import annotations

import io
import json
import os
import warnings

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fetal_bench.data import decoded_cache
from fetal_bench.data.decoded_cache import CacheWarning, max_bytes
from fetal_bench.data.loading import make_dataloader
from fetal_bench.errors import FetalBenchError
from fetal_bench.training.augment import UltrasoundAugment

SIZE = (20, 28)
AUGMENT = UltrasoundAugment()  # geometry moves the mask too: nearest resampling on cached masks


def _png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _head(n: int = 9, seed: int = 0) -> datasets.Dataset:
    """Images in L and RGB; masks stored as L (0/1), P (palette indices) and 1 (bilevel) PNGs."""
    rng = np.random.default_rng(seed)
    rows = {"id": [], "image": [], "mask": [], "pixel_size_mm": []}
    for i in range(n):
        width, height = 50 + 7 * i, 37 + 3 * (i % 4)
        pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
        image = Image.fromarray(pixels)
        rows["image"].append(_png(image.convert("RGB") if i % 3 == 1 else image))
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).ellipse((5, 4, width - 6 - i, height - 5), fill=1)
        mode = ("L", "P", "1")[i % 3]
        if mode == "P":
            mask = mask.convert("P")
        elif mode == "1":
            mask = mask.point(lambda v: 255 * v).convert("1")  # "1" thresholds at 128: scale 0/1 first
        rows["mask"].append(_png(mask))
        rows["id"].append(f"h-{i}")
        rows["pixel_size_mm"].append(0.1 * (i + 1))
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "mask": datasets.Image(), "pixel_size_mm": datasets.Value("float64")})
    return datasets.Dataset.from_dict(rows, features=features)


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(decoded_cache.MAX_BYTES_ENV, raising=False)
    decoded_cache._KEYS.clear()
    return tmp_path / "cache" / "decoded"


def _batches(dataset, *, cache: bool, epochs: int = 2, workers: int = 0, task: str = "segmentation", **kw):
    loader = make_dataloader(dataset, task=task, image_size=SIZE, batch_size=4, shuffle=True, seed=5,
                             num_workers=workers, transform=AUGMENT, decoded_cache=cache, **kw)
    return [batch for _ in range(epochs) for batch in loader]


def _assert_same(ours: list[dict], theirs: list[dict]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys() and a["id"] == b["id"]
        for key in a:
            if isinstance(a[key], torch.Tensor):
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


def test_cached_batches_are_bit_identical_images_and_masks(cache_root):
    head = _head()
    plain = _batches(head, cache=False)
    cold = _batches(head, cache=True)  # builds the entry, then reads it
    warm = _batches(head, cache=True)  # reads the finished entry
    _assert_same(cold, plain)
    _assert_same(warm, plain)
    assert sorted({v for b in plain for v in b["masks"].unique().tolist()}) == [0, 1]
    (entry,) = cache_root.iterdir()
    meta = json.loads((entry / "meta.json").read_text())
    hashes = meta.pop("sha256")
    assert meta == {"scheme": decoded_cache.SCHEME, "rows": 9, "size": [20, 28], "masks": True,
                    "bytes": 9 * 20 * 28 * 2 + 9 * 8}
    assert hashes == {name: decoded_cache._hash_file(entry / name)
                      for name in ("images.npy", "masks.npy", "original_sizes.npy")}
    sizes = np.load(entry / "original_sizes.npy")
    assert sizes.tolist() == [[37 + 3 * (i % 4), 50 + 7 * i] for i in range(9)]


def test_cache_built_and_read_by_two_workers_matches(cache_root):
    head = _head()
    _assert_same(_batches(head, cache=True, workers=2), _batches(head, cache=False))


def test_a_cached_split_is_not_decoded_again(cache_root, monkeypatch):
    head = _head()
    first = _batches(head, cache=True, epochs=1)
    import fetal_bench.data.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(loading, "decode_row", refuse)
    decoded_cache._KEYS.clear()  # also re-derive the key from the content, as a new run would
    _assert_same(_batches(head, cache=True, epochs=1), first)


def test_classification_without_masks_and_real_images(cache_root, africa_real_build):
    from fetal_bench.data.loading import open_dataset

    train = open_dataset(africa_real_build[0], split="train").select(range(0, 217, 9))  # sizes and RGB vary
    plain = _batches(train, cache=False, task="classification")
    _assert_same(_batches(train, cache=True, task="classification"), plain)
    (entry,) = cache_root.iterdir()
    assert not (entry / "masks.npy").exists() and np.load(entry / "images.npy", mmap_mode="r").shape == (25, *SIZE)


def test_key_follows_content_size_and_rows(cache_root):
    head = _head()
    _batches(head, cache=True, epochs=1)
    make_dataloader(head, task="segmentation", image_size=(16, 16), batch_size=4, decoded_cache=True)
    make_dataloader(head.select([0, 2, 4]), task="segmentation", image_size=SIZE, batch_size=4, decoded_cache=True)
    make_dataloader(_head(seed=1), task="segmentation", image_size=SIZE, batch_size=4, decoded_cache=True)
    make_dataloader(head, image_size=SIZE, batch_size=4, decoded_cache=True)  # images only
    rows = sorted(json.loads((e / "meta.json").read_text())["rows"] for e in cache_root.iterdir())
    assert rows == [3, 9, 9, 9, 9]  # five entries: size, subset, content and masks each make a new one


def test_over_the_cap_warns_and_decodes_every_epoch(cache_root, monkeypatch):
    head = _head()
    monkeypatch.setenv(decoded_cache.MAX_BYTES_ENV, "1K")
    with pytest.warns(CacheWarning, match=r"need 9\.9 KiB, more than the cache's cap of 1\.0 KiB\. Fix: set "
                                          r"FETAL_BENCH_DECODED_CACHE_MAX_BYTES above 10152 bytes"):
        batches = _batches(head, cache=True)
    _assert_same(batches, _batches(head, cache=False))
    assert not cache_root.exists()


def test_least_recently_used_entries_make_room(cache_root, monkeypatch):
    one_entry = 9 * 20 * 28 * 2 + 9 * 8
    monkeypatch.setenv(decoded_cache.MAX_BYTES_ENV, str(2 * one_entry))
    first, second, third = _head(seed=1), _head(seed=2), _head(seed=3)
    for dataset in (first, second):
        make_dataloader(dataset, task="segmentation", image_size=SIZE, batch_size=4, decoded_cache=True)
    entries = {e.name: e for e in cache_root.iterdir()}
    older = min(entries.values(), key=lambda e: (e / "meta.json").stat().st_mtime)
    os.utime(older / "meta.json", (1, 1))  # the first entry was used longest ago
    make_dataloader(third, task="segmentation", image_size=SIZE, batch_size=4, decoded_cache=True)
    remaining = {e.name for e in cache_root.iterdir()}
    assert len(remaining) == 2 and older.name not in remaining


def test_damaged_entry_is_removed_and_rebuilt(cache_root):
    head = _head()
    plain = _batches(head, cache=False)
    _batches(head, cache=True, epochs=1)
    (entry,) = cache_root.iterdir()
    np.save(entry / "images.npy", np.zeros((3, 2), dtype=np.uint8))  # wrong shape: a truncated write
    with pytest.warns(CacheWarning, match="removing the damaged decoded cache entry"):
        again = _batches(head, cache=True)
    _assert_same(again, plain)
    assert np.load(entry / "images.npy", mmap_mode="r").shape == (9, *SIZE)


def test_unwritable_cache_falls_back_to_decoding(cache_root, monkeypatch):
    """A file where the cache folder should be: mkdir fails whatever the user's rights (root
    included, for whom a read-only folder is no obstacle)."""
    cache_root.parent.mkdir(parents=True)
    cache_root.write_text("not a folder")
    with pytest.warns(CacheWarning, match="could not be written"):
        batches = _batches(_head(), cache=True)
    _assert_same(batches, _batches(_head(), cache=False))


def test_cap_setting_is_parsed_or_refused(monkeypatch):
    for text, expected in (("", 4 * 1024**3), ("123", 123), ("2G", 2 * 1024**3), ("512MiB", 512 * 1024**2),
                           ("0", 0), (" 3 k ", 3 * 1024)):
        monkeypatch.setenv(decoded_cache.MAX_BYTES_ENV, text)
        assert max_bytes() == expected, text
    monkeypatch.setenv(decoded_cache.MAX_BYTES_ENV, "lots")
    with pytest.raises(FetalBenchError, match="FETAL_BENCH_DECODED_CACHE_MAX_BYTES='lots' is not a size"):
        max_bytes()


def test_cap_zero_turns_the_cache_off_silently(cache_root, monkeypatch):
    monkeypatch.setenv(decoded_cache.MAX_BYTES_ENV, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _batches(_head(), cache=True, epochs=1)
    assert not cache_root.exists()


def test_a_bad_row_is_the_loaders_usual_error_not_a_cache_warning(cache_root):
    from fetal_bench.errors import DataError

    head = _head().map(lambda row, i: {"mask": None if i == 2 else row["mask"]}, with_indices=True)
    with pytest.raises(DataError, match="'h-2' has no mask"):
        make_dataloader(head.select([0, 2]), task="segmentation", image_size=SIZE, batch_size=2, decoded_cache=True)
    assert list(cache_root.iterdir()) == []  # the unfinished entry is not left behind


def test_an_entry_being_written_by_another_process_is_not_waited_for(cache_root, monkeypatch):
    import contextlib

    from fetal_bench.errors import LockHeldError

    @contextlib.contextmanager
    def busy(path, **kwargs):
        raise LockHeldError(f"{path} is being written by another fetal-bench run (pid 1).", "Wait.")
        yield

    monkeypatch.setattr(decoded_cache, "exclusive_lock", busy)
    with pytest.warns(CacheWarning, match="another process is writing the decoded cache entry"):
        batches = _batches(_head(), cache=True)
    _assert_same(batches, _batches(_head(), cache=False))


def test_an_entry_pickles_as_its_folder_not_its_pixels(cache_root):
    """What a spawned loader worker receives: the folder to map, never the arrays."""
    import pickle

    loader = make_dataloader(_head(), task="segmentation", image_size=SIZE, batch_size=4, decoded_cache=True)
    entry = loader.dataset.decoded
    entry.row(0)  # mapped in this process
    clone = pickle.loads(pickle.dumps(entry))
    assert len(pickle.dumps(entry)) < 1000 and clone._arrays is None
    assert np.array_equal(clone.row(8)[0], entry.row(8)[0]) and clone.row(8)[2] == entry.row(8)[2]


def test_building_the_cache_leaves_the_global_rng_alone(cache_root):
    """A cold build must not draw from torch's global RNG: dropout and other global draws after
    it would differ from a warm run's, and a resumed training run would not end identical."""
    head = _head()
    torch.manual_seed(7)
    _batches(head, cache=False, epochs=1)
    after_decoding = torch.get_rng_state()
    torch.manual_seed(7)
    _batches(head, cache=True, epochs=1)  # cold: builds the entry
    assert torch.equal(torch.get_rng_state(), after_decoding)
