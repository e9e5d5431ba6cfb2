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
    from fetal_bench.data.loading import open_dataset

    opened = open_dataset(directory, config=config)
    names = splits if splits is not None else tuple(opened)
    return {name: split_fingerprint(opened[name]) for name in names}


__all__ = ["SCHEME", "build_fingerprints", "combined_fingerprint", "split_fingerprint"]
