"""`fetal-bench datasets info DIR`: what a built dataset holds, and whether it is sound.

Reads the Parquet shards directly (no decoding of pixels beyond image headers), so it is fast
on large datasets: counts per split / label / group, image sizes, duplicate images by content
hash, and subjects shared between splits (which must never happen).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fetal_bench.errors import DataError

SUBJECT_COLUMNS = ("patient_id", "subject_id", "case_id")  # coarsest first
MAX_GROUP_VALUES = 50  # a string column with more distinct values is an identifier, not a group


@dataclass
class ConfigReport:
    name: str
    rows: dict[str, int] = field(default_factory=dict)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> n
    groups: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # column -> split -> value -> n
    image_sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> "WxH" -> n
    subjects: dict[str, int] = field(default_factory=dict)
    subject_column: str | None = None
    subject_overlap: dict[str, list[str]] = field(default_factory=dict)  # "a & b" -> shared ids
    duplicate_images: list[list[str]] = field(default_factory=list)  # groups of row ids with equal bytes

    @property
    def ok(self) -> bool:
        return not self.subject_overlap

    def to_dict(self) -> dict:
        return self.__dict__ | {"ok": self.ok}


def read_card_configs(directory: Path) -> dict[str, dict[str, list[str]]]:
    """config -> split -> data file globs, from the card's YAML `configs:`."""
    card = directory / "README.md"
    if not card.is_file():
        raise DataError(f"{directory} has no README.md: it is not a built dataset directory.",
                        "Point at a directory made by `fetal-bench datasets build`.")
    text = card.read_text(encoding="utf-8")
    if not text.startswith("---"):
        raise DataError(f"{card} has no YAML header.", "Rebuild the dataset with `fetal-bench datasets build`.")
    header = yaml.safe_load(text.split("---", 2)[1]) or {}
    configs = {}
    for config in header.get("configs", []):
        files = {}
        for entry in config.get("data_files", []):
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            files[entry["split"]] = paths
        configs[config["config_name"]] = files
    if not configs:
        raise DataError(f"{card} declares no `configs:`.", "Rebuild the dataset with `fetal-bench datasets build`.")
    return configs


def _label_names(schema) -> dict[str, list[str]]:
    metadata = (schema.metadata or {}).get(b"huggingface")
    if not metadata:
        return {}
    features = json.loads(metadata)["info"]["features"]
    return {name: spec["names"] for name, spec in features.items() if spec.get("_type") == "ClassLabel"}


def dataset_report(directory: str | Path) -> dict[str, ConfigReport]:
    from PIL import Image

    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory.", "Point at a directory made by `fetal-bench datasets build`.")
    reports = {}
    for config, splits in read_card_configs(directory).items():
        report = ConfigReport(config)
        subjects_by_split: dict[str, set] = {}
        hashes: dict[str, list[str]] = collections.defaultdict(list)
        for split, patterns in splits.items():
            files = sorted(p for pattern in patterns for p in directory.glob(pattern))
            if not files:
                raise DataError(f"{directory}: no data files match {patterns} (config {config!r}, split {split!r}).",
                                "The directory is incomplete; rebuild it.")
            labels = collections.Counter()
            sizes = collections.Counter()
            subjects: set = set()
            n = 0
            for path in files:
                parquet = pq.ParquetFile(path)
                names = _label_names(parquet.schema_arrow)
                columns = parquet.schema_arrow.names
                # One subject column, the coarsest present (a subject may have several cases).
                subject_column = next((c for c in SUBJECT_COLUMNS if c in columns), None)
                for batch in parquet.iter_batches(batch_size=256):
                    data = batch.to_pydict()
                    n += batch.num_rows
                    for i in range(batch.num_rows):
                        image = data["image"][i] if "image" in data else None
                        if image and image.get("bytes"):
                            raw = image["bytes"]
                            hashes[hashlib.sha256(raw).hexdigest()].append(data["id"][i])
                            with Image.open(io.BytesIO(raw)) as opened:  # header only, no pixel decode
                                sizes[f"{opened.size[0]}x{opened.size[1]}"] += 1
                    if "label" in data and "label" in names:
                        labels.update(names["label"][v] for v in data["label"] if v is not None)
                    for column in columns:
                        if column == subject_column:
                            report.subject_column = column
                            subjects.update(data[column])
                        elif column in SUBJECT_COLUMNS:
                            continue  # an identifier, not a group
                        elif column not in ("id",) and pa.types.is_string(parquet.schema_arrow.field(column).type):
                            report.groups.setdefault(column, {}).setdefault(split, collections.Counter()).update(data[column])
            report.rows[split] = n
            report.labels[split] = dict(sorted(labels.items()))
            report.image_sizes[split] = dict(sizes.most_common())
            if report.subject_column:
                report.subjects[split] = len(subjects)
                subjects_by_split[split] = subjects
        # A string column with many values (file names, free text) is not a grouping variable.
        report.groups = {
            column: {split: dict(sorted(counts.items())) for split, counts in by_split.items()}
            for column, by_split in report.groups.items()
            if len(set().union(*[set(c) for c in by_split.values()])) <= MAX_GROUP_VALUES
        }
        names = list(subjects_by_split)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = subjects_by_split[first] & subjects_by_split[second]
                if shared:
                    report.subject_overlap[f"{first} & {second}"] = sorted(map(str, shared))
        report.duplicate_images = [ids for ids in hashes.values() if len(ids) > 1]
        reports[config] = report
    return reports
