"""Write a dataset directory in the Hugging Face Hub layout: Parquet shards + dataset card.

Rows stream in from a builder's generators and are written shard by shard, so memory stays
bounded by one shard however large the dataset. The directory appears only once everything
(shards, card, build record) is written; a failure leaves no partial output.

Layout (``datasets.load_dataset(DIR[, CONFIG])`` reads it offline; the Hub reads it as is)::

    DIR/README.md                         dataset card; YAML `configs:` maps splits to shards
    DIR/build_info.json                   provenance: sources + checksums, counts, warnings
    DIR/data/train-00000-of-00002.parquet  single-config datasets
    DIR/<config>/train-00000-of-00001.parquet  multi-config datasets

The Parquet files are written the way ``datasets`` writes its own (``datasets`` 5.2.0,
``datasets/arrow_writer.py``: ``ParquetWriter._build_writer`` and
``get_parquet_column_options``): image bytes stored uncompressed with PLAIN encoding (PNG is
already compressed; a second compression costs a decompression on every read and saves almost
nothing), snappy and dictionaries for the other columns, a page index, content-defined chunking
(so a re-upload of a changed build deduplicates on the Hub), and row groups of at most
``datasets.config.MAX_ROW_GROUP_SIZE`` (100 MB) uncompressed. Readers need nothing new: builds
written before (zstd everywhere) load exactly as they did.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import inspect
import io
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import ClassLabel, Features

from fetal_bench import __version__
from fetal_bench._io import atomic_directory, sha256_file, write_json_atomic
from fetal_bench.data.catalog import DatasetInfo
from fetal_bench.errors import DataError

BUILD_INFO_FILE = "build_info.json"
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024  # below the Hub's recommended 500 MB per file
DEFAULT_MAX_ROW_GROUP_BYTES = 100 * 1000 * 1000  # datasets.config.MAX_ROW_GROUP_SIZE ("100MB")
_ROWS_PER_BATCH = 64  # rows encoded per Arrow record batch; bounds memory between flushes
# datasets.config.DEFAULT_CDC_OPTIONS of datasets 5.2.0, for older datasets that have no such setting.
_CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


def _leaf_paths(path: str, pa_type: pa.DataType) -> list[str]:
    """Parquet leaf column paths under one Arrow field (``image.bytes``, ``x.list.element``)."""
    if isinstance(pa_type, pa.ExtensionType):
        pa_type = pa_type.storage_type
    if pa.types.is_struct(pa_type):
        return [leaf for child in pa_type for leaf in _leaf_paths(f"{path}.{child.name}", child.type)]
    if pa.types.is_list(pa_type) or pa.types.is_large_list(pa_type) or pa.types.is_fixed_size_list(pa_type):
        return _leaf_paths(f"{path}.list.element", pa_type.value_type)
    return [path]


def _column_options(features: Features) -> dict:
    """Per-leaf ``compression``/``use_dictionary``/``column_encoding``, as ``datasets`` chooses them:
    :func:`datasets.arrow_writer.get_parquet_column_options` itself where it exists (datasets >=
    5.2); for older ``datasets`` (the package allows >= 3.0) the same rule written out: columns
    whose storage embeds file bytes (Image, Audio, Video) are stored uncompressed and
    PLAIN-encoded, every other leaf snappy-compressed with a dictionary."""
    try:
        from datasets.arrow_writer import get_parquet_column_options
    except ImportError:
        return _column_options_before_5_2(features)
    return get_parquet_column_options(features, features.arrow_schema)


def _column_options_before_5_2(features: Features) -> dict:
    from datasets.features.features import require_storage_embed

    compression, use_dictionary, column_encoding = {}, [], {}
    for arrow_field in features.arrow_schema:
        embed = require_storage_embed(features[arrow_field.name])
        for leaf in _leaf_paths(arrow_field.name, arrow_field.type):
            compression[leaf] = "none" if embed else "snappy"
            if embed:
                column_encoding[leaf] = "PLAIN"
            else:
                use_dictionary.append(leaf)
    return {"compression": compression, "use_dictionary": use_dictionary, "column_encoding": column_encoding}


def parquet_writer_options(features: Features) -> dict:
    """Keyword arguments for :class:`pyarrow.parquet.ParquetWriter`: what ``datasets``' own
    ``ParquetWriter`` passes (its column options, a page index, its content-defined chunking)."""
    import datasets

    options = _column_options(features)
    options["write_page_index"] = True
    if "use_content_defined_chunking" in inspect.signature(pq.ParquetWriter.__init__).parameters:  # pyarrow >= 21
        options["use_content_defined_chunking"] = dict(getattr(datasets.config, "DEFAULT_CDC_OPTIONS", _CDC_OPTIONS))
    return options


@dataclass
class ConfigSpec:
    """One config of a dataset: its features and, per split, a factory of example rows.

    ``splits`` maps a split name to a zero-argument callable returning an iterable of rows
    (plain dicts that ``features.encode_example`` accepts; images as ``{"bytes", "path"}``).
    A callable, not an iterator, so that nothing is read before the writer starts.
    """

    name: str
    features: Features
    splits: Mapping[str, Callable[[], Iterable[dict]]]
    label_column: str | None = None
    group_columns: tuple[str, ...] = ()
    subject_column: str | None = None


@dataclass
class SplitSummary:
    num_examples: int = 0
    num_bytes: int = 0
    files: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    group_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    num_subjects: int | None = None


@dataclass
class BuildResult:
    path: Path
    name: str
    configs: dict[str, dict[str, SplitSummary]]
    warnings: list[str]
    fingerprint: str


class _ShardWriter:
    """Writes one split's rows into numbered Parquet shards of bounded size.

    Rows are encoded into small Arrow tables (``_ROWS_PER_BATCH`` rows) that collect into one
    row group of up to ``max_row_group_bytes``; memory is bounded by one row group.
    """

    def __init__(self, directory: Path, split: str, features: Features, max_shard_bytes: int,
                 max_row_group_bytes: int = DEFAULT_MAX_ROW_GROUP_BYTES):
        self.directory = directory
        self.split = split
        self.features = features
        self.schema = features.arrow_schema  # carries the `huggingface` features metadata
        self.options = parquet_writer_options(features)
        self.max_shard_bytes = max_shard_bytes
        self.max_row_group_bytes = max_row_group_bytes
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._pending: list[dict] = []
        self._group: list[pa.Table] = []
        self._group_bytes = 0
        self.total_bytes = 0

    def add(self, encoded_row: dict) -> None:
        self._pending.append(encoded_row)
        if len(self._pending) >= _ROWS_PER_BATCH:
            self._encode_pending()

    def _encode_pending(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_pylist(self._pending, schema=self.schema)
        self._pending = []
        self._group.append(table)
        self._group_bytes += table.nbytes
        # A row group never straddles shards: it ends where the shard would pass its limit.
        if self._group_bytes >= min(self.max_row_group_bytes, self.max_shard_bytes - self._shard_bytes):
            self._write_group()

    def _write_group(self) -> None:
        if not self._group:
            return
        table = pa.concat_tables(self._group)
        self._group, self._group_bytes = [], 0
        if self._writer is None:
            path = self.directory / f"{self.split}-{len(self.paths):05d}.parquet.partial"
            self.paths.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, **self.options)
            if "use_content_defined_chunking" in self.options:
                # As datasets does: readers and the Hub see how the pages were chunked.
                self._writer.add_key_value_metadata(
                    {"content_defined_chunking": json.dumps(self.options["use_content_defined_chunking"])})
            self._shard_bytes = 0
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))  # one row group
        self._shard_bytes += table.nbytes
        self.total_bytes += table.nbytes
        if self._shard_bytes >= self.max_shard_bytes:
            self._writer.close()
            self._writer = None

    def close(self) -> list[Path]:
        self._encode_pending()
        self._write_group()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        final = []
        n = len(self.paths)
        for index, path in enumerate(self.paths):
            target = self.directory / f"{self.split}-{index:05d}-of-{n:05d}.parquet"
            os.replace(path, target)
            final.append(target)
        return final


def _label_name(features: Features, column: str, value) -> str:
    feature = features[column]
    if isinstance(feature, ClassLabel) and isinstance(value, int):
        return feature.int2str(value)
    return str(value)


def _config_dir(configs: Sequence[ConfigSpec], spec: ConfigSpec) -> str:
    return "data" if len(configs) == 1 else spec.name


def write_dataset(
    out_dir: str | os.PathLike,
    info: DatasetInfo,
    configs: Sequence[ConfigSpec],
    *,
    sources: Sequence = (),
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
    extra_build_info: Mapping | None = None,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    max_row_group_bytes: int = DEFAULT_MAX_ROW_GROUP_BYTES,
    progress: Callable[[str, int], None] | None = None,
) -> BuildResult:
    """Stream every config/split into Parquet shards under ``out_dir`` and write the card.

    ``sources`` lists the raw files the build read for the build record: dicts (name, files,
    sha256) or objects with ``as_dict()`` that are filled in while the rows stream.
    ``warnings`` (what is missing or odd) and ``notes`` (how rows were made) are read after all
    rows are written, so a builder may append to them while its rows stream.
    ``max_shard_bytes`` and ``max_row_group_bytes`` bound a file and a Parquet row group
    (uncompressed Arrow bytes). ``progress(split, n_done)`` is called as rows are written.
    Row ids must be unique within a config; a duplicate is a :class:`DataError`.
    """
    from fetal_bench.data.card import render_card  # card rendering needs the summaries

    # Keep the caller's list (not a copy): builders may append to it while rows stream.
    warnings = warnings if isinstance(warnings, list) else list(warnings)
    summaries: dict[str, dict[str, SplitSummary]] = {}
    _check_replaceable(Path(out_dir), overwrite)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for spec in configs:
            config_path = tmp / _config_dir(configs, spec)
            config_path.mkdir(parents=True, exist_ok=True)
            seen_ids: dict[str, str] = {}
            subjects_by_split: dict[str, set] = {}
            summaries[spec.name] = {}
            for split, make_rows in spec.splits.items():
                summary = SplitSummary()
                writer = _ShardWriter(config_path, split, spec.features, max_shard_bytes, max_row_group_bytes)
                labels: collections.Counter = collections.Counter()
                groups = {column: collections.Counter() for column in spec.group_columns}
                subjects: set = set()
                for row in make_rows():
                    row_id = row.get("id")
                    if not isinstance(row_id, str) or not row_id:
                        raise DataError(f"A row of split {split!r} has no string id: {row!r:.200}.")
                    if row_id in seen_ids:
                        raise DataError(
                            f"Duplicate row id {row_id!r} in splits {seen_ids[row_id]!r} and {split!r}.",
                            "Row ids come from source file names; remove the duplicate source file.",
                        )
                    seen_ids[row_id] = split
                    writer.add(spec.features.encode_example(row))
                    summary.num_examples += 1
                    if spec.label_column and row.get(spec.label_column) is not None:
                        labels[_label_name(spec.features, spec.label_column, row[spec.label_column])] += 1
                    for column in spec.group_columns:
                        groups[column][_label_name(spec.features, column, row.get(column))] += 1
                    if spec.subject_column:
                        subjects.add(row.get(spec.subject_column))
                    if progress is not None:
                        progress(split, summary.num_examples)
                paths = writer.close()
                if summary.num_examples == 0:
                    # `datasets` cannot load a split with no rows; leave it out and say so.
                    warnings.append(f"Config {spec.name!r}: split {split!r} has no rows and was left out.")
                    continue
                summary.files = [p.relative_to(tmp).as_posix() for p in paths]
                summary.num_bytes = writer.total_bytes
                summary.label_counts = dict(sorted(labels.items()))
                summary.group_counts = {c: dict(sorted(v.items())) for c, v in groups.items()}
                if spec.subject_column:
                    summary.num_subjects = len(subjects)
                    subjects_by_split[split] = subjects
                summaries[spec.name][split] = summary
            if not summaries[spec.name]:
                # `datasets.load_dataset` cannot read a config without a split: fail the build.
                raise DataError(f"Config {spec.name!r} of {info.name} has no rows in any split; nothing to build.",
                                "Check that --raw holds the official files and that the CSV lists them.")
            _check_subject_disjoint(spec, subjects_by_split)

        files = sorted(p for p in tmp.rglob("*.parquet"))
        file_hashes = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in files}
        fingerprint = hashlib.sha256(
            "".join(f"{name}:{digest}\n" for name, digest in sorted(file_hashes.items())).encode()
        ).hexdigest()
        build_info = {
            "dataset": info.name,
            "fetal_bench_version": __version__,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "split_rule": info.split_rule,
            "split_seed": info.split_seed,
            "sources": [s.as_dict() if hasattr(s, "as_dict") else dict(s) for s in sources],
            "warnings": list(warnings),
            "notes": list(notes),
            "fingerprint": fingerprint,
            "files": file_hashes,
            "configs": {
                config: {split: _summary_dict(s) for split, s in splits.items()}
                for config, splits in summaries.items()
            },
            **(dict(extra_build_info) if extra_build_info else {}),
        }
        write_json_atomic(tmp / BUILD_INFO_FILE, build_info)
        card_text = render_card(info, configs, summaries, build_info)
        (tmp / "README.md").write_text(card_text, encoding="utf-8")
    return BuildResult(Path(out_dir), info.name, summaries, list(warnings), fingerprint)


def _check_replaceable(out_dir: Path, overwrite: bool) -> None:
    """``--overwrite`` replaces an earlier build, never a file or a folder of other things.

    The whole output is replaced, so a mistyped ``--out`` (a home folder, the raw download, a
    file) would otherwise be deleted without a trace.
    """
    if not overwrite or not (out_dir.exists() or out_dir.is_symlink()):
        return
    if not out_dir.is_dir():
        raise DataError(f"--out {out_dir} is a file, not a dataset directory; --overwrite will not replace it.",
                        "Pass a directory path for --out.")
    if any(out_dir.iterdir()) and not (out_dir / BUILD_INFO_FILE).is_file():
        raise DataError(f"--out {out_dir} holds files but no {BUILD_INFO_FILE}: it is not an earlier fetal-bench "
                        "build, so --overwrite will not replace it.",
                        "Pass a new or empty directory for --out, or delete that one yourself if it is disposable.")


def _summary_dict(summary: SplitSummary) -> dict:
    out = {
        "num_examples": summary.num_examples,
        "num_bytes": summary.num_bytes,
        "files": summary.files,
        "label_counts": summary.label_counts,
        "group_counts": summary.group_counts,
    }
    if summary.num_subjects is not None:
        out["num_subjects"] = summary.num_subjects
    return out


def _check_subject_disjoint(spec: ConfigSpec, subjects_by_split: Mapping[str, set]) -> None:
    """A subject in two splits would leak; builders guarantee it, this re-checks the output."""
    names = list(subjects_by_split)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = subjects_by_split[first] & subjects_by_split[second]
            if shared:
                example = ", ".join(sorted(map(str, shared))[:5])
                raise DataError(
                    f"Config {spec.name!r}: {len(shared)} {spec.subject_column} value(s) appear in "
                    f"both {first!r} and {second!r} (e.g. {example}).",
                    "This is a bug in the split rule; please report it.",
                )


def encode_png(array) -> bytes:
    """PNG bytes of a 2-D uint8 array (fixed settings, so the same array gives the same bytes)."""
    import numpy as np
    from PIL import Image

    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim != 2:
        raise ValueError(f"encode_png takes a 2-D array, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()
