"""Content fingerprints: what a split holds, independent of how its files were written.

A build's ``build_info.json`` fingerprint hashes its Parquet files, so it changes with the
pyarrow that wrote them, the shard size or the zlib that compressed a mask. The catalog pins
v1.0 by *content* instead: every row, in id order, every column by name, images by their
decoded pixels (mode, size, bytes), class labels by name, numbers by value. Two builds made
from the same official files by the same builder logic hash equal on any machine, and the Hub
copy of a release hashes equal to a local build of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from pathlib import Path
from typing import Mapping

#: Bumped when the hashing scheme itself changes (then every pin must be re-made).
SCHEME = "fetal-bench-content-v1"
_BATCH = 64


def _image_digest(value) -> str | None:
    """Hash of an image's decoded pixels: equal for the same picture in any lossless encoding."""
    from PIL import Image

    if value is None:
        return None
    data = value.get("bytes") if isinstance(value, dict) else None
    if data is None and isinstance(value, dict) and value.get("path"):
        with open(value["path"], "rb") as handle:
            data = handle.read()
    if data is None:
        raise ValueError("an image cell holds neither bytes nor a path")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        pixels = image.tobytes()
        header = f"{image.mode}:{image.size[0]}x{image.size[1]}:"
    return header + hashlib.sha256(pixels).hexdigest()


def _plain(value):
    """A JSON-stable form of a scalar cell (floats by their exact repr, so 0.1 stays 0.1)."""
    if isinstance(value, float):
        return repr(value)
    return value


def split_fingerprint(dataset) -> str:
    """The content fingerprint (sha256 hex) of one split (a :class:`datasets.Dataset`)."""
    from datasets import ClassLabel, Image

    features = dataset.features
    columns = sorted(dataset.column_names)
    images = [c for c in columns if isinstance(features[c], Image)]
    labels = {c: features[c] for c in columns if isinstance(features[c], ClassLabel)}
    raw = dataset
    for column in images:  # read the stored bytes; decoding is ours, so PIL's mode handling is fixed
        raw = raw.cast_column(column, Image(decode=False))
    lines: list[tuple[str, str]] = []
    for batch in raw.iter(batch_size=_BATCH):
        for row in range(len(batch["id"])):
            cells = []
            for column in columns:
                value = batch[column][row]
                if column in images:
                    value = _image_digest(value)
                elif column in labels and value is not None:
                    value = labels[column].int2str(value)
                cells.append(_plain(value))
            lines.append((str(batch["id"][row]), json.dumps(cells, ensure_ascii=True)))
    lines.sort()
    digest = hashlib.sha256(f"{SCHEME}\n{json.dumps(columns)}\n".encode())
    for _, line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def combined_fingerprint(split_fingerprints: Mapping[str, str]) -> str:
    """One fingerprint for several splits (a dataset, or a ``train+test`` evaluation split)."""
    text = "".join(f"{name}:{value}\n" for name, value in sorted(split_fingerprints.items()))
    return hashlib.sha256(f"{SCHEME}\n{text}".encode()).hexdigest()


def build_fingerprints(directory, *, config: str | None = None,
                       splits: tuple[str, ...] | None = None) -> dict[str, str]:
    """Content fingerprints of a local build's splits (all of ``config``'s, or ``splits``)."""
    from fetal_bench.data.opening import open_dataset

    opened = open_dataset(directory, config=config)
    names = splits if splits is not None else tuple(opened)
    return {name: local_split_fingerprint(directory, config=config, split=name, dataset=opened[name])
            for name in names}


# ----------------------------------------------------------------------------------------------
# The fingerprint cache
# ----------------------------------------------------------------------------------------------
#
# Computing a fingerprint decodes every image of the split (2 s for HC18's test split, and every
# `evaluate` needs one). Hashing the stored bytes takes 0.06 s, so a computed fingerprint is kept
# under `cache_dir("fingerprints")`, keyed by a sha256 of everything that decides it:
#
# * the sha256 of the split's Parquet files (as `datasets` resolves them) and of every file at
#   the top of the build (README.md: features, class names, configs). Never size or mtime alone:
#   a file rewritten with the same size and a preserved mtime would then serve a stale value;
# * the identity (path, size, mtime_ns, inode) of the Arrow cache files the opened split reads.
#   `datasets` (5.2) keeps serving its Arrow copy of a Parquet file rewritten in place (its key
#   sees the card's YAML, not the files' content), so such a build is scored from the old rows;
#   with the Arrow files in the key the cached value stays that of the rows actually scored (a
#   rebuilt Arrow file is a new file);
# * the split expression, the config, `datasets`' own fingerprint of the opened split (it changes
#   with every select/filter), its row count and features, the scheme, and the versions of
#   datasets, pyarrow and Pillow, which decode the cells.
#
# A cache that cannot be read or written never changes a result: the value is computed instead.

#: Bumped when what a cache entry holds, or how its key is made, changes.
CACHE_FORMAT = "fetal-bench-fingerprint-cache-v1"
_ENTRY_MAX_BYTES = 64 * 1024  # an entry is ~300 bytes; anything larger is not ours
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SPLIT_NAME = re.compile(r"[\[(]")  # "train[:10%]" reads the files of "train"


class FingerprintCacheWarning(UserWarning):
    """The fingerprint cache could not be written; fingerprints are computed on every run."""


def cache_folder() -> Path:
    """Where cached fingerprints live: ``$FETAL_BENCH_CACHE/fingerprints`` (not created here)."""
    from fetal_bench._cache import cache_dir

    return cache_dir("fingerprints")


def _split_files(directory: Path, config: str | None, split: str) -> list[Path] | None:
    """The Parquet files ``split`` of ``config`` reads (as `datasets` resolves them), plus the
    files at the top of the build; None when `datasets` names no files for that split."""
    import datasets

    builder = datasets.load_dataset_builder(str(directory), config)
    data_files = (builder.config.data_files or {}).get(_SPLIT_NAME.split(split, maxsplit=1)[0].strip())
    if not data_files:
        return None
    top = sorted(path for path in directory.iterdir() if path.is_file())
    return top + sorted({Path(str(name)) for name in data_files})


def _file_line(path: Path, directory: Path) -> str:
    from fetal_bench._io import sha256_file

    try:
        name = path.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:  # a data file outside the build (a link): its absolute path names it
        name = str(path.resolve())
    return f"{name}\t{path.stat().st_size}\t{sha256_file(path)}"


def _arrow_identity(dataset) -> list[str] | None:
    """(path, size, mtime_ns, inode) of the Arrow files the opened split reads; None when it
    is held in memory only (nothing on disk identifies it)."""
    lines = []
    for entry in dataset.cache_files:
        info = os.stat(entry["filename"])
        lines.append(f"{entry['filename']}\t{info.st_size}\t{info.st_mtime_ns}\t{info.st_ino}")
    return lines or None


def _versions() -> str:
    from importlib.metadata import version

    return ",".join(f"{name}={version(name)}" for name in ("datasets", "pyarrow", "pillow"))


def fingerprint_cache_key(directory, *, config: str | None, split: str, dataset) -> str | None:
    """The cache key of ``dataset`` (``split`` of ``config`` opened from the local build
    ``directory``), or None when it cannot be keyed safely (then nothing is cached)."""
    directory = Path(directory)
    files = _split_files(directory, config, split)
    arrow = _arrow_identity(dataset)
    if files is None or arrow is None:
        return None
    features = json.dumps(dataset.features.to_dict(), sort_keys=True, ensure_ascii=True)
    parts = [CACHE_FORMAT, SCHEME, _versions(), f"config={config!r}", f"split={split!r}",
             f"rows={len(dataset)}", f"hf={dataset._fingerprint}", features,
             *(_file_line(path, directory) for path in files), *arrow]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _read_entry(key: str) -> str | None:
    """The fingerprint cached under ``key``; None when absent or not a well-formed entry."""
    from fetal_bench._io import UnreadableFile, read_regular_file

    try:
        entry = json.loads(read_regular_file(cache_folder() / f"{key}.json", max_bytes=_ENTRY_MAX_BYTES))
    except (UnreadableFile, OSError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
        return None
    value = entry.get("fingerprint")
    return value if isinstance(value, str) and _HEX64.fullmatch(value) else None


def _write_entry(key: str, fingerprint: str, split: str, rows: int) -> None:
    """Store one entry atomically; a cache that cannot be written only costs time, so it warns."""
    from fetal_bench._io import write_json_atomic

    path = cache_folder() / f"{key}.json"
    entry = {"format": CACHE_FORMAT, "key": key, "fingerprint": fingerprint, "split": split[:200], "rows": rows}
    try:
        write_json_atomic(path, entry)
    except OSError as error:
        warnings.warn(f"Fingerprint cache: cannot write {path} ({type(error).__name__}: {error.strerror or error}); "
                      "the content fingerprint is computed on every run. Fix: make the folder writable, or set "
                      "FETAL_BENCH_CACHE to a writable folder.", FingerprintCacheWarning, stacklevel=3)


def local_split_fingerprint(directory, *, config: str | None = None, split: str, dataset=None) -> str:
    """:func:`split_fingerprint` of ``split`` of the local build ``directory``, from the cache
    when nothing it depends on changed (see the comment above), else computed and cached.

    ``dataset``: the split already opened from ``directory`` (saves opening it again).
    """
    if dataset is None:
        from fetal_bench.data.opening import open_dataset

        dataset = open_dataset(directory, config=config, split=split)
    key = _key_or_none(directory, config, split, dataset)
    if key is None:
        return split_fingerprint(dataset)
    cached = _read_entry(key)
    if cached is not None:
        return cached
    value = split_fingerprint(dataset)
    # Only store what is still true: a file replaced while the split was decoded changes the key.
    if _key_or_none(directory, config, split, dataset) == key:
        _write_entry(key, value, split, len(dataset))
    return value


def _key_or_none(directory, config, split, dataset) -> str | None:
    try:
        return fingerprint_cache_key(directory, config=config, split=split, dataset=dataset)
    except OSError:  # a file vanished or cannot be read while hashing: compute, cache nothing
        return None


__all__ = ["CACHE_FORMAT", "SCHEME", "FingerprintCacheWarning", "build_fingerprints", "cache_folder",
           "combined_fingerprint", "fingerprint_cache_key", "local_split_fingerprint", "split_fingerprint"]
