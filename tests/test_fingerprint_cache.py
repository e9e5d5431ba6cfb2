"""The content-fingerprint cache (fetal_bench.data.fingerprint.local_split_fingerprint).

A stale fingerprint would silently mislabel what a result scored, so these tests check that the
cache answers only for the very bytes it was computed from: a hit returns the computed value
without decoding, a Parquet file rewritten with the same size (even with its mtime kept) misses,
a damaged entry is ignored and rewritten, and a cache that cannot be written only costs time.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from fetal_bench.data import fingerprint as fp

UNCACHED = fp.split_fingerprint  # the decoding computation, kept before any test counts it

README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
# tiny
"""


def _png(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _build(directory: Path) -> Path:
    """A two-split dataset whose test Parquet is uncompressed and dictionary-free, so that a
    string can be replaced in place by another of the same length (same size, different bytes)."""
    import datasets
    import pyarrow.parquet as pq

    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "value": datasets.Value("float64")})
    (directory / "data").mkdir(parents=True)
    (directory / "README.md").write_text(README, encoding="utf-8")
    for split, count in (("train", 3), ("test", 4)):
        rows = {"id": [f"{split}-row-{i:04d}" for i in range(count)],
                "image": [{"bytes": _png(10 * i), "path": None} for i in range(count)],
                "value": [0.25 * i for i in range(count)]}
        table = datasets.Dataset.from_dict(rows, features=features).data.table  # with the features metadata
        pq.write_table(table, directory / "data" / f"{split}-00000-of-00001.parquet", compression="none",
                       use_dictionary=False)
    return directory


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    return _build(tmp_path / "tiny")


@pytest.fixture
def computed(monkeypatch) -> list[int]:
    """Counts the real (decoding) fingerprint computations."""
    calls: list[int] = []
    real = fp.split_fingerprint

    def counting(dataset):
        calls.append(len(dataset))
        return real(dataset)

    monkeypatch.setattr(fp, "split_fingerprint", counting)
    return calls


def _open(directory: Path, split: str = "test"):
    from fetal_bench.data.opening import open_dataset

    return open_dataset(directory, split=split)


def _entries() -> list[Path]:
    return sorted(fp.cache_folder().glob("*.json"))


def test_a_hit_returns_the_computed_value_without_decoding(tiny, computed):
    first = fp.local_split_fingerprint(tiny, split="test")
    assert computed == [4]
    second = fp.local_split_fingerprint(tiny, split="test", dataset=_open(tiny))
    assert computed == [4]  # served from the cache: nothing decoded
    assert first == second == UNCACHED(_open(tiny))
    (entry,) = _entries()
    stored = json.loads(entry.read_text(encoding="utf-8"))
    assert stored == {"format": fp.CACHE_FORMAT, "key": entry.stem, "fingerprint": first, "split": "test", "rows": 4}


def test_splits_and_slices_are_cached_apart(tiny, computed):
    values = {split: fp.local_split_fingerprint(tiny, split=split) for split in ("test", "train", "test[:50%]")}
    assert len(set(values.values())) == 3 and len(computed) == 3
    assert values["test[:50%]"] == UNCACHED(_open(tiny, "test[:50%]")) != UNCACHED(_open(tiny))
    assert {split: fp.local_split_fingerprint(tiny, split=split) for split in values} == values
    assert len(computed) == 3  # the second round was all hits
    assert len(_entries()) == 3


def _rewrite_in_place(path: Path, old: bytes, new: bytes, *, keep_mtime: bool) -> None:
    """Replace every ``old`` by ``new`` (same length) in ``path``: same size, different bytes."""
    assert len(old) == len(new)
    info = path.stat()
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new))
    assert path.stat().st_size == info.st_size
    if keep_mtime:
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def _fresh_arrow_cache(monkeypatch, folder: Path) -> None:
    """Make `datasets` convert the Parquet files again (see the next test for why it is needed)."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", folder)


def test_a_parquet_rewritten_with_the_same_size_misses(tiny, tmp_path, monkeypatch, computed):
    before = fp.local_split_fingerprint(tiny, split="test")
    parquet = tiny / "data" / "test-00000-of-00001.parquet"
    _rewrite_in_place(parquet, b"test-row-0002", b"test-row-0009", keep_mtime=False)
    _fresh_arrow_cache(monkeypatch, tmp_path / "hf-datasets-2")
    after = fp.local_split_fingerprint(tiny, split="test")
    assert len(computed) == 2  # the changed bytes were not served the old value
    assert "test-row-0009" in _open(tiny)["id"]
    assert after != before
    assert after == UNCACHED(_open(tiny))


def test_the_cached_value_follows_what_datasets_serves(tiny, computed):
    """`datasets` (5.2) keeps serving its Arrow copy of a local Parquet file rewritten in place
    (its cache key does not see the change). The scored rows are then the old ones, and so must
    be their fingerprint: the cache misses (new Parquet bytes) and recomputes from what is served."""
    before = fp.local_split_fingerprint(tiny, split="test")
    _rewrite_in_place(tiny / "data" / "test-00000-of-00001.parquet", b"test-row-0002", b"test-row-0009",
                      keep_mtime=False)
    served = _open(tiny)
    assert fp.local_split_fingerprint(tiny, split="test", dataset=served) == UNCACHED(served)
    assert len(computed) == 2
    if "test-row-0002" in served["id"]:  # the stale copy: still the old content, and said so
        assert UNCACHED(served) == before


def test_same_size_and_same_mtime_still_change_the_key(tiny):
    """The case a (size, mtime) key would get wrong: only the content hash sees it."""
    dataset = _open(tiny)
    key = fp.fingerprint_cache_key(tiny, config=None, split="test", dataset=dataset)
    parquet = tiny / "data" / "test-00000-of-00001.parquet"
    _rewrite_in_place(parquet, b"test-row-0002", b"test-row-0009", keep_mtime=True)
    assert fp.fingerprint_cache_key(tiny, config=None, split="test", dataset=dataset) != key


def test_the_card_and_other_splits_count_as_they_should(tiny):
    dataset = _open(tiny)
    key = fp.fingerprint_cache_key(tiny, config=None, split="test", dataset=dataset)
    _rewrite_in_place(tiny / "data" / "train-00000-of-00001.parquet", b"train-row-0001", b"train-row-0007",
                      keep_mtime=False)
    assert fp.fingerprint_cache_key(tiny, config=None, split="test", dataset=dataset) == key  # not read by test
    (tiny / "README.md").write_text(README + "more\n", encoding="utf-8")
    assert fp.fingerprint_cache_key(tiny, config=None, split="test", dataset=dataset) != key


@pytest.mark.parametrize("damage", ["garbage", "a JSON list", "another key", "a short fingerprint",
                                    "another format", "too large"])
def test_a_corrupt_entry_is_ignored_and_rewritten(tiny, computed, damage):
    value = fp.local_split_fingerprint(tiny, split="test")
    (entry,) = _entries()
    good = json.loads(entry.read_text(encoding="utf-8"))
    wrong = "0" * 64  # a well-formed fingerprint that is not this split's
    text = {"garbage": "{not json\x00",
            "a JSON list": json.dumps([good]),
            "another key": json.dumps({**good, "key": "f" * 64, "fingerprint": wrong}),
            "a short fingerprint": json.dumps({**good, "fingerprint": "abc"}),
            "another format": json.dumps({**good, "format": "v0", "fingerprint": wrong}),
            "too large": json.dumps({**good, "fingerprint": wrong, "padding": "x" * 70_000})}[damage]
    entry.write_text(text, encoding="utf-8")
    assert fp.local_split_fingerprint(tiny, split="test") == value
    assert len(computed) == 2
    assert json.loads(entry.read_text(encoding="utf-8")) == good  # rewritten whole
    assert fp.local_split_fingerprint(tiny, split="test") == value and len(computed) == 2


def test_an_unwritable_cache_falls_back_to_computing(tmp_path, monkeypatch, computed):
    tiny = _build(tmp_path / "tiny")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache root should be", encoding="utf-8")
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(blocker))
    with pytest.warns(fp.FingerprintCacheWarning, match="cannot write .*FETAL_BENCH_CACHE"):
        first = fp.local_split_fingerprint(tiny, split="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fp.FingerprintCacheWarning)
        second = fp.local_split_fingerprint(tiny, split="test")
    assert first == second == UNCACHED(_open(tiny))
    assert len(computed) == 2  # computed every time
    assert blocker.read_text(encoding="utf-8").startswith("a file")


def test_an_entry_in_a_read_only_cache_is_still_read(tiny, computed):
    """A shared, read-only cache (e.g. filled by CI) still serves hits."""
    value = fp.local_split_fingerprint(tiny, split="test")
    folder = fp.cache_folder()
    folder.chmod(0o500)
    try:
        assert fp.local_split_fingerprint(tiny, split="test") == value
    finally:
        folder.chmod(0o700)
    assert len(computed) == 1


def test_evaluate_reuses_the_cached_fingerprint(phantom, tmp_path, monkeypatch, computed):
    from PIL import Image

    from fetal_bench import evaluate
    from fetal_bench.data.opening import open_dataset

    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    test = open_dataset(phantom, config="head", split="test")
    masks = tmp_path / "masks"
    masks.mkdir()
    for row_id, mask in zip(test["id"], test["mask"]):
        Image.fromarray((np.asarray(mask) > 0).astype(np.uint8)).save(masks / f"{row_id}.png")
    first = evaluate("phantom-head-seg", predictions=masks, data=phantom, n_resamples=20)
    assert computed == [len(test)]
    second = evaluate("phantom-head-seg", predictions=masks, data=phantom, n_resamples=20)
    assert computed == [len(test)]  # the second evaluation decoded nothing for its fingerprint
    assert first["dataset"] == second["dataset"]
    assert first["dataset"]["fingerprint"] == UNCACHED(test)
    assert set(first["_phases_s"]) == {"data", "truth", "predictions", "per_image_metrics", "scores", "provenance",
                                       "result"}
