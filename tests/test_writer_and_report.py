"""The dataset-directory writer (shards, card, atomicity) and `datasets info` reports."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from datasets import ClassLabel, Features, Image, Value, load_dataset

from fetal_bench.data.catalog import PHANTOM
from fetal_bench.data.report import dataset_report
from fetal_bench.data.writer import ConfigSpec, encode_png, write_dataset
from fetal_bench.errors import DataError, FetalBenchError

FEATURES = Features({"id": Value("string"), "image": Image(), "label": ClassLabel(names=["a", "b"]),
                     "patient_id": Value("string"), "site": Value("string")})


def _rows(split: str, n: int, *, offset: int = 0, noise_seed: int = 0):
    rng = np.random.default_rng([noise_seed, offset, *split.encode()])
    for i in range(offset, offset + n):
        pixels = rng.integers(0, 255, size=(16, 24), dtype=np.uint8)
        yield {"id": f"{split}-{i}", "image": {"bytes": encode_png(pixels), "path": None}, "label": i % 2,
               "patient_id": f"{split}-p{i // 3}", "site": f"site{i % 2}"}


def _spec(**splits):
    return ConfigSpec("default", FEATURES, splits, label_column="label", group_columns=("site",),
                      subject_column="patient_id")


def test_many_shards_load_back_in_order(tmp_path):
    result = write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 200), test=lambda: _rows("test", 30))],
                           max_shard_bytes=20_000)
    files = result.configs["default"]["train"].files
    assert len(files) > 2 and files[0].endswith(f"-of-{len(files):05d}.parquet")
    ds = load_dataset(str(tmp_path / "out"))
    assert ds["train"]["id"] == [f"train-{i}" for i in range(200)]
    assert ds["train"].features == FEATURES
    assert result.configs["default"]["train"].label_counts == {"a": 100, "b": 100}
    assert result.configs["default"]["train"].group_counts == {"site": {"site0": 100, "site1": 100}}


def test_card_yaml_maps_configs_and_records_provenance(tmp_path):
    write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 6))], warnings=["something odd"])
    text = (tmp_path / "out" / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert header["license"] == PHANTOM.license
    assert header["dataset_info"]["splits"][0]["num_examples"] == 6
    assert "Simulated data" in text and "something odd" in text
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["warnings"] == ["something odd"] and len(info["fingerprint"]) == 64
    assert set(info["files"]) == {"data/train-00000-of-00001.parquet"}


def test_duplicate_id_and_subject_leak_are_refused(tmp_path):
    with pytest.raises(DataError, match="Duplicate row id 'x-0'"):
        write_dataset(tmp_path / "a", PHANTOM, [_spec(train=lambda: _rows("x", 2), test=lambda: _rows("x", 2))])

    def leaking():
        for row in _rows("test", 3):
            yield {**row, "patient_id": "train-p0"}

    with pytest.raises(DataError, match="train-p0"):
        write_dataset(tmp_path / "b", PHANTOM, [_spec(train=lambda: _rows("train", 3), test=leaking)])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind either


def test_error_mid_stream_leaves_nothing(tmp_path):
    def broken():
        yield from _rows("train", 5)
        raise DataError("source file went away")

    with pytest.raises(DataError):
        write_dataset(tmp_path / "out", PHANTOM, [_spec(train=broken)])
    assert list(tmp_path.iterdir()) == []


def test_empty_split_is_left_out_with_a_warning(tmp_path):
    result = write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 3), test=lambda: iter(()))])
    assert any("'test' has no rows" in w for w in result.warnings)
    assert set(load_dataset(str(tmp_path / "out"))) == {"train"}


def test_report_counts_duplicates_and_finds_subject_overlap(tmp_path):
    def with_duplicate():
        rows = list(_rows("test", 4))
        rows[3]["image"] = rows[0]["image"]
        yield from rows

    write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 9), test=with_duplicate)])
    report = dataset_report(tmp_path / "out")["default"]
    assert report.rows == {"train": 9, "test": 4}
    assert report.labels["train"] == {"a": 5, "b": 4}
    assert report.subjects == {"train": 3, "test": 2}
    assert report.groups["site"]["train"] == {"site0": 5, "site1": 4}
    assert report.image_sizes["train"] == {"24x16": 9}
    assert report.duplicate_images == [["test-0", "test-3"]]
    assert report.ok

    # Tamper: make the test split also hold the train shard, so patients leak.
    data = tmp_path / "out" / "data"
    shutil.copy(data / "train-00000-of-00001.parquet", data / "test-00001-of-00001.parquet")
    report = dataset_report(tmp_path / "out")["default"]
    assert not report.ok and report.subject_overlap["train & test"] == ["train-p0", "train-p1", "train-p2"]


def test_report_refuses_non_dataset_directories(tmp_path):
    with pytest.raises(DataError, match="no README.md"):
        dataset_report(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        dataset_report(tmp_path / "nope")


def test_existing_output_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FetalBenchError, match="already exists"):
        write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 2))])
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_parquet_is_written_with_datasets_own_options(tmp_path):
    """Image bytes uncompressed and PLAIN, other columns snappy with a dictionary, a page index,
    content-defined chunking and row groups bounded in bytes: what ``datasets`` itself writes."""
    import pyarrow.parquet as pq

    write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 200))], max_row_group_bytes=40_000)
    parquet = pq.ParquetFile(tmp_path / "out" / "data" / "train-00000-of-00001.parquet")
    meta = parquet.metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert {name: c.compression for name, c in columns.items()} == {
        "id": "SNAPPY", "image.bytes": "UNCOMPRESSED", "image.path": "UNCOMPRESSED", "label": "SNAPPY",
        "patient_id": "SNAPPY", "site": "SNAPPY"}
    assert "PLAIN_DICTIONARY" not in columns["image.bytes"].encodings and "RLE_DICTIONARY" not in columns["image.bytes"].encodings
    assert "RLE_DICTIONARY" in columns["site"].encodings
    assert all(c.has_offset_index and c.has_column_index for c in columns.values())
    assert json.loads(meta.metadata[b"content_defined_chunking"]) == {
        "min_chunk_size": 262144, "max_chunk_size": 1048576, "norm_level": 0}
    # 64-row Arrow batches of ~20 kB collect into row groups of at most 40 kB (two batches).
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [128, 72]
    assert load_dataset(str(tmp_path / "out"))["train"]["id"] == [f"train-{i}" for i in range(200)]


def test_column_options_match_the_installed_datasets():
    """Our copy of the rule (for datasets < 4) agrees with datasets' own function where it has one."""
    arrow_writer = pytest.importorskip("datasets.arrow_writer")
    if not hasattr(arrow_writer, "get_parquet_column_options"):
        pytest.skip("this datasets has no get_parquet_column_options")
    from fetal_bench.data.writer import _column_options

    features = Features({**FEATURES, "mask": Image(), "size": Value("float64")})
    assert _column_options(features) == arrow_writer.get_parquet_column_options(features, features.arrow_schema)


def test_builds_written_with_the_old_options_still_load(tmp_path):
    """A shard written as before (zstd on every column, no page index) loads unchanged."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_dataset(tmp_path / "out", PHANTOM, [_spec(train=lambda: _rows("train", 10))])
    shard = tmp_path / "out" / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    expected = load_dataset(str(tmp_path / "out"))["train"].to_dict()
    pq.write_table(table, shard, compression="zstd")
    assert pq.ParquetFile(shard).metadata.row_group(0).column(1).compression == "ZSTD"
    again = load_dataset(str(tmp_path / "out"), download_mode="force_redownload")["train"]
    assert again.to_dict() == expected and isinstance(table, pa.Table)
