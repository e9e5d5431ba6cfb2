"""Synthetic dataset pages: what a generated training set is, how it was made, what it looks like.

A built dataset directory (``fetal-bench generate ...`` or ``fetal-bench datasets build``) holds a
card (``README.md``), ``build_info.json`` and Parquet shards. The page shows the card (through the
safe Markdown subset), the generator's configuration from the build record, and a grid of the
first few images, drawn here with Pillow into one PNG.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

BUILD_INFO = "build_info.json"
# build_info.json keys that hold the generator's configuration, in the order they are looked for.
GENERATOR_KEYS = ("generator", "generator_config", "generation", "generation_config", "config", "config_sha256")
# Per-row provenance columns of synthetic rows (see DESIGN.md), shown beside the samples.
PROVENANCE_COLUMNS = ("generator", "generator_revision", "seed", "prompt", "condition", "config_sha256")
GRID_COLUMNS = 4
TILE_PX = 160
GAP_PX = 4
MAX_SAMPLES = 12


@dataclass(frozen=True)
class Sample:
    id: str
    label: str | None
    provenance: dict[str, Any]


@dataclass(frozen=True)
class SyntheticDataset:
    name: str
    path: Path
    card_yaml: str | None
    card_body: str
    build_info: dict
    generator_config: dict
    counts: dict[str, dict[str, int]]  # config -> split -> rows
    samples: tuple[Sample, ...]
    grid_png: bytes | None = field(repr=False)
    warnings: tuple[str, ...] = ()


def find_dataset_dirs(paths: list[str | os.PathLike]) -> list[Path]:
    """Each path that is a built dataset directory, or its immediate sub-directories that are."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / BUILD_INFO).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_dir() and (p / BUILD_INFO).is_file())
        else:
            raise FetalBenchError(f"{path} is not a built dataset directory (no {BUILD_INFO}).",
                                  "Pass the folder that `fetal-bench generate` wrote, or a folder of such folders.")
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(str(path.resolve()), path)
    return sorted(unique.values(), key=lambda p: p.as_posix())


def _parquet_files(path: Path, build_info: dict) -> list[Path]:
    """The shards in the build record's order (first config, train first), else all shards sorted."""
    files: list[Path] = []
    for splits in (build_info.get("configs") or {}).values():
        if not isinstance(splits, dict):
            continue
        ordered = sorted(splits, key=lambda s: (s != "train", s))
        for split in ordered:
            for name in (splits[split] or {}).get("files", []) if isinstance(splits[split], dict) else []:
                candidate = (path / name).resolve()
                # The record is untrusted: only read files that are really inside the dataset.
                if candidate.is_file() and path.resolve() in candidate.parents:
                    files.append(candidate)
    return files or sorted(path.rglob("*.parquet"))


def _label_names(schema_metadata: dict | None, column: str) -> list[str] | None:
    """ClassLabel names from the Hugging Face features stored in the Parquet schema metadata."""
    if not schema_metadata or b"huggingface" not in schema_metadata:
        return None
    try:
        info = json.loads(schema_metadata[b"huggingface"])
        feature = info["info"]["features"][column]
        return list(feature["names"]) if feature.get("_type") == "ClassLabel" else None
    except (KeyError, TypeError, ValueError):
        return None


def _tile(image_bytes: bytes):
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(image_bytes)) as image:
        image.load()
        # Letterbox into a square tile so images of any aspect ratio line up in the grid.
        rgb = image.convert("RGB")
    return ImageOps.pad(rgb, (TILE_PX, TILE_PX), color=(12, 16, 24), method=Image.Resampling.BILINEAR)


def sample_grid(images: list[bytes]) -> bytes | None:
    """A PNG grid of the images (letterboxed tiles); the same images give the same bytes."""
    from PIL import Image

    tiles = []
    for data in images:
        try:
            tiles.append(_tile(data))
        except (OSError, ValueError, Image.DecompressionBombError):  # undecodable: a gap, not a failed build
            continue
    if not tiles:
        return None
    columns = min(GRID_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    grid = Image.new("RGB", (columns * TILE_PX + (columns - 1) * GAP_PX, rows * TILE_PX + (rows - 1) * GAP_PX),
                     (255, 255, 255))
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        grid.paste(tile, (column * (TILE_PX + GAP_PX), row * (TILE_PX + GAP_PX)))
    out = io.BytesIO()
    grid.save(out, format="PNG", optimize=False)  # no text chunks, no timestamps: deterministic
    return out.getvalue()


def _read_samples(files: list[Path], limit: int) -> tuple[list[Sample], list[bytes], list[str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    samples: list[Sample] = []
    images: list[bytes] = []
    warnings: list[str] = []
    for file in files:
        if len(samples) >= limit:
            break
        try:
            parquet = pq.ParquetFile(file)
        except (OSError, pa.ArrowException) as error:  # report and go on with the other shards
            warnings.append(f"{file.name}: not readable as Parquet ({error}).")
            continue
        names = parquet.schema_arrow.names
        if "image" not in names:
            continue
        columns = [c for c in ("id", "image", "label", *PROVENANCE_COLUMNS) if c in names]
        labels = _label_names(parquet.schema_arrow.metadata, "label")
        for batch in parquet.iter_batches(batch_size=min(limit, 64), columns=columns):
            for row in batch.to_pylist():
                if len(samples) >= limit:
                    break
                image = row.get("image")
                data = image.get("bytes") if isinstance(image, dict) else None
                if not data:
                    continue
                label = row.get("label")
                if isinstance(label, int) and labels and 0 <= label < len(labels):
                    label = labels[label]
                provenance = {c: row[c] for c in PROVENANCE_COLUMNS if c in row and row[c] is not None}
                samples.append(Sample(str(row.get("id", len(samples))), None if label is None else str(label),
                                      provenance))
                images.append(data)
            if len(samples) >= limit:
                break
    return samples, images, warnings


MAX_BUILD_INFO_BYTES = 16 * 1024 * 1024  # the per-file checksums of a large set stay far below


def load_synthetic_dataset(path: str | os.PathLike, *, max_samples: int = MAX_SAMPLES) -> SyntheticDataset:
    """Read one built dataset directory for its page."""
    from fetal_bench._io import UnreadableFile, read_json_file

    path = Path(path)
    try:
        # Bounded: a build record is a few kB; a huge or deeply nested one is damage or an attack.
        build_info = read_json_file(path / BUILD_INFO, max_bytes=MAX_BUILD_INFO_BYTES)
    except UnreadableFile as error:
        raise FetalBenchError(f"{path / BUILD_INFO} cannot be read: it {error.reason}.",
                              "Rebuild the dataset; its build record is missing or damaged.") from None
    except (OSError, ValueError, RecursionError) as error:
        raise FetalBenchError(f"{path / BUILD_INFO} cannot be read ({str(error)[:200]}).",
                              "Rebuild the dataset; its build record is missing or damaged.") from None
    if not isinstance(build_info, dict):
        raise FetalBenchError(f"{path / BUILD_INFO} is not a JSON object.", "Rebuild the dataset.")
    card_path = path / "README.md"
    card = card_path.read_text(encoding="utf-8", errors="replace") if card_path.is_file() else ""
    from fetal_bench.leaderboard.markdown import split_front_matter

    card_yaml, card_body = split_front_matter(card)
    generator_config = {k: build_info[k] for k in GENERATOR_KEYS if k in build_info}
    counts: dict[str, dict[str, int]] = {}
    for config, splits in (build_info.get("configs") or {}).items():
        if isinstance(splits, dict):
            counts[str(config)] = {str(s): int(v.get("num_examples", 0)) for s, v in splits.items()
                                   if isinstance(v, dict) and isinstance(v.get("num_examples", 0), int)}
    samples, images, warnings = _read_samples(_parquet_files(path, build_info), max_samples)
    recorded = build_info.get("dataset")
    name = recorded if isinstance(recorded, str) and recorded else path.name
    return SyntheticDataset(name=name, path=path, card_yaml=card_yaml, card_body=card_body, build_info=build_info,
                            generator_config=generator_config, counts=counts, samples=tuple(samples),
                            grid_png=sample_grid(images), warnings=tuple(warnings))


def generator_name(dataset: SyntheticDataset) -> str | None:
    """The generator that made the set (e.g. ``fu-lora``), wherever the build record keeps it.

    ``fetal-bench generate`` records it as ``generation.generator``; other builders may write a
    top-level ``generator`` (a name or an object with ``name``); the rows' own provenance is the
    last resort. The overview and the dataset's page both use this, so they always agree.
    """
    for key in ("generator", "generation", "generator_config", "generation_config"):
        value = dataset.build_info.get(key)
        if isinstance(value, dict):
            value = value.get("generator", value.get("name"))
            if isinstance(value, dict):
                value = value.get("name")
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    for sample in dataset.samples:
        value = sample.provenance.get("generator")
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return None


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, ``-``, ``_``, ``.``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned[:80] or "item"


__all__ = ["SyntheticDataset", "find_dataset_dirs", "generator_name", "load_synthetic_dataset", "sample_grid",
           "slug"]
