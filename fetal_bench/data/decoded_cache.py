"""Decode once, train many epochs: the on-disk cache of decoded, resized training images.

PNG decoding (and the resize that follows) is most of what a training epoch's data loading
costs, and it gives the same uint8 pixels every epoch: only the augmentation, which runs after
it, changes. ``make_dataloader(..., decoded_cache=True)`` (the training loop turns it on) decodes
every row of a split once and keeps, for each row, exactly what the loader's decoder returns
(:func:`fetal_bench.data.loading.decode_row`): the 8-bit gray image at the training size, the
nearest-neighbour resized mask, and the original size. Later epochs (and later runs on the same
rows) read them from a memory-mapped file, so loader workers share one copy in the page cache.
Batches are bit-identical to uncached ones, augmentation draws included.

Where and what::

    $FETAL_BENCH_CACHE/decoded/<key>/images.npy          uint8 (N, H, W)
                                     masks.npy           uint8 (N, H, W), segmentation only
                                     original_sizes.npy  int32 (N, 2): (height, width)
                                     meta.json           scheme, rows, size, bytes

``<key>`` hashes the *content* of the rows in order (the stored image and mask bytes), the
output size, whether masks are kept, the decoding scheme and the Pillow version (its resampling
defines the pixels), so a rebuilt dataset, another subset or another size never reads a stale
entry. An entry is written in a temporary folder and renamed into place when complete.

Size bound: ``FETAL_BENCH_DECODED_CACHE_MAX_BYTES`` (default 4 GiB; suffixes K, M, G, T of
1024; 0 turns the cache off) caps the folder. The least recently used entries are removed to
make room for a new one; a split that alone exceeds the cap, a full disk or an unwritable cache
is reported with a warning and the loader decodes every epoch, as without the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fetal_bench._cache import cache_dir
from fetal_bench._io import atomic_directory
from fetal_bench.errors import DataError, FetalBenchError

if TYPE_CHECKING:
    import datasets

__all__ = ["DecodedSplit", "MAX_BYTES_ENV", "max_bytes", "open_decoded"]

MAX_BYTES_ENV = "FETAL_BENCH_DECODED_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024**3
#: Bumped when decode_row's output changes for the same input (then old entries are never read).
SCHEME = "fetal-bench-decoded-v1"
_FREE_SPACE_RESERVE = 512 * 1024**2  # never fill the disk to its last bytes for a cache
_BUILD_BATCH = 32
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

#: (HF dataset fingerprint, size, mask column) -> content key: later loaders over the same rows in
#: this process (the training loop makes one per epoch) skip re-hashing the image bytes.
_KEYS: dict[tuple, str] = {}

Decoder = Callable[[dict, int, tuple[int, int], "str | None"], tuple[np.ndarray, "np.ndarray | None", tuple[int, int]]]


class CacheWarning(UserWarning):
    """The decoded cache could not be used; the loader decodes every epoch instead."""


def max_bytes() -> int:
    """The cap from ``$FETAL_BENCH_DECODED_CACHE_MAX_BYTES`` (bytes, or e.g. ``"2G"``)."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:I?B)?", text.upper())
    if not match:
        raise FetalBenchError(f"{MAX_BYTES_ENV}={text[:40]!r} is not a size.",
                              f"Set it to a number of bytes, e.g. {MAX_BYTES_ENV}=2G (0 turns the cache off).")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


class DecodedSplit:
    """The decoded rows of one split, memory-mapped on first use in each process.

    Pickles as its folder only (a DataLoader worker maps the files itself, sharing the page
    cache), never as the arrays.
    """

    def __init__(self, directory: Path, n: int, size: tuple[int, int], has_masks: bool):
        self.directory = Path(directory)
        self.n = n
        self.size = size
        self.has_masks = has_masks
        self._arrays: tuple | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": None}

    def _open(self) -> tuple:
        if self._arrays is None:
            images = np.load(self.directory / "images.npy", mmap_mode="r")
            masks = np.load(self.directory / "masks.npy", mmap_mode="r") if self.has_masks else None
            sizes = np.load(self.directory / "original_sizes.npy")
            self._arrays = (images, masks, sizes)
        return self._arrays

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """What ``decode_row`` returned for row ``index``: (image, mask or None, original size)."""
        images, masks, sizes = self._open()
        mask = None if masks is None else masks[index]
        return images[index], mask, (int(sizes[index, 0]), int(sizes[index, 1]))

    def check(self) -> None:
        """Raise ValueError unless the files hold ``n`` rows of the expected shapes and types."""
        images, masks, sizes = self._open()
        expected = (self.n, *self.size)
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(f"images.npy is {images.dtype}{images.shape}, expected uint8{expected}")
        if masks is not None and (masks.shape != expected or masks.dtype != np.uint8):
            raise ValueError(f"masks.npy is {masks.dtype}{masks.shape}, expected uint8{expected}")
        if sizes.shape != (self.n, 2) or sizes.dtype != np.int32 or (self.n and int(sizes.min()) < 1):
            raise ValueError(f"original_sizes.npy is {sizes.dtype}{sizes.shape}, expected int32({self.n}, 2)")


def open_decoded(
    raw: datasets.Dataset,
    *,
    size: tuple[int, int],
    mask_column: str | None,
    decode: Decoder,
    num_workers: int = 0,
    limit: int | None = None,
) -> DecodedSplit | None:
    """The cache entry for ``raw``'s rows at ``size``, built now if missing; None to decode per epoch.

    ``raw`` has its image columns undecoded (``{"bytes", "path"}`` cells); ``decode`` is the
    loader's row decoder; ``num_workers`` processes decode a missing entry (0: this process).
    ``limit`` overrides the size cap of :func:`max_bytes`.
    """
    limit = max_bytes() if limit is None else limit
    if limit <= 0 or len(raw) == 0:
        return None
    height, width = size
    has_masks = mask_column is not None
    needed = len(raw) * height * width * (2 if has_masks else 1) + len(raw) * 8
    if needed > limit:
        _warn(f"the decoded training images need {_gib(needed)}, more than the cache's cap of {_gib(limit)}",
              f"set {MAX_BYTES_ENV} above {needed} bytes, or train at a smaller image size")
        return None
    root = cache_dir("decoded")
    key = _content_key(raw, size, mask_column)
    entry = DecodedSplit(root / key, len(raw), size, has_masks)
    if _usable(entry):
        return entry
    try:
        root.mkdir(parents=True, exist_ok=True)
        _make_room(root, needed, limit, keep=key)
        free = shutil.disk_usage(root).free
        if free < needed + _FREE_SPACE_RESERVE:
            _warn(f"{root} has {_gib(free)} free, too little for {_gib(needed)} of decoded images",
                  "free disk space, or point FETAL_BENCH_CACHE at a larger disk")
            return None
        _build(entry, raw, decode, mask_column, num_workers, needed)
    except DataError:  # a bad row (no mask, a 16-bit image): the same error as without the cache
        raise
    except FetalBenchError:  # another process holds the lock: it is building this very entry
        if _usable(entry):
            return entry
        _warn(f"another process is writing the decoded cache entry {entry.directory}",
              "nothing: this loader decodes as usual and a later one will use the entry")
        return None
    except OSError as error:  # read-only or full file system
        _warn(f"the decoded cache in {root} could not be written ({error.strerror or error})",
              "make FETAL_BENCH_CACHE point at a writable folder, or ignore this (no cache)")
        return None
    return entry if _usable(entry) else None


def _content_key(raw: datasets.Dataset, size: tuple[int, int], mask_column: str | None) -> str:
    """Hash of the rows' stored image (and mask) bytes in order, with what shapes the decoding."""
    import PIL

    memo = (getattr(raw, "_fingerprint", None), size, mask_column)
    if memo[0] is not None and memo in _KEYS:
        return _KEYS[memo]
    columns = ["image"] + ([mask_column] if mask_column else [])
    digest = hashlib.sha256()  # hardware-accelerated on most CPUs: ~0.2 s per 100 MB of PNG
    header = {"scheme": SCHEME, "size": list(size), "masks": mask_column is not None, "rows": len(raw),
              "pillow": PIL.__version__}
    digest.update(json.dumps(header, sort_keys=True).encode())
    table_view = raw.select_columns(columns).with_format("arrow")
    for batch in table_view.iter(batch_size=256):
        for column in columns:
            cells = batch.column(column).combine_chunks()
            for data, path in zip(cells.field("bytes"), cells.field("path")):
                _hash_cell(digest, data, path)
    key = digest.hexdigest()[:40]
    if memo[0] is not None:
        _KEYS[memo] = key
    return key


def _hash_cell(digest, data, path) -> None:
    if data.is_valid:
        buffer = data.as_buffer()  # zero-copy view of the PNG bytes
        digest.update(b"B%d:" % buffer.size)
        digest.update(buffer)
    elif path.is_valid:
        # A file reference: its name, size and modification time stand for its content.
        stat = os.stat(path.as_py())
        digest.update(f"P{path.as_py()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        digest.update(b"N")


def _usable(entry: DecodedSplit) -> bool:
    """A complete entry with the expected shapes; a damaged one is removed (and rebuilt)."""
    meta_path = entry.directory / "meta.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("scheme") != SCHEME:
            raise ValueError(f"scheme {meta.get('scheme')!r}")
        entry.check()
    except (OSError, ValueError) as error:
        _warn(f"removing the damaged decoded cache entry {entry.directory} ({str(error)[:200]})",
              "nothing: it is rebuilt")
        entry._arrays = None
        shutil.rmtree(entry.directory, ignore_errors=True)
        return False
    try:
        os.utime(meta_path)  # last use, for the least-recently-used eviction
    except OSError:
        pass
    return True


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes, folder) of every complete entry under ``root``."""
    found = []
    for folder in root.iterdir():
        meta = folder / "meta.json"
        try:
            found.append((meta.stat().st_mtime, int(json.loads(meta.read_text(encoding="utf-8"))["bytes"]), folder))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an entry (a temporary folder, a lock file): left alone
    return sorted(found)


def _make_room(root: Path, needed: int, limit: int, *, keep: str) -> None:
    """Remove the least recently used entries until ``needed`` more bytes fit under ``limit``."""
    entries = [e for e in _entries(root) if e[2].name != keep]
    total = sum(size for _, size, _ in entries)
    for _, size, folder in entries:
        if total + needed <= limit:
            break
        shutil.rmtree(folder, ignore_errors=True)  # a process reading it keeps its open mapping
        total -= size


def _build(entry: DecodedSplit, raw: datasets.Dataset, decode: Decoder, mask_column: str | None,
           num_workers: int, needed: int) -> None:
    """Decode every row into a temporary folder, renamed into place when complete."""
    from numpy.lib.format import open_memmap

    n, (height, width) = entry.n, entry.size
    with atomic_directory(entry.directory) as tmp:
        images = open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(n, height, width))
        masks = (open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, height, width))
                 if entry.has_masks else None)
        sizes = np.zeros((n, 2), dtype=np.int32)
        for start, rows in _decoded_batches(raw, decode, entry.size, mask_column, num_workers):
            for offset, (gray, mask, original) in enumerate(rows):
                images[start + offset] = gray
                if masks is not None:
                    masks[start + offset] = mask
                sizes[start + offset] = original
        for array in (images, masks):
            if array is not None:
                array.flush()
        del images, masks  # closes the mappings before the folder is renamed
        np.save(tmp / "original_sizes.npy", sizes)
        meta = {"scheme": SCHEME, "rows": n, "size": [height, width], "masks": entry.has_masks, "bytes": needed}
        (tmp / "meta.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")


def _decoded_batches(raw, decode: Decoder, size, mask_column, num_workers: int):
    """(first row, decoded rows) in row order; ``num_workers`` processes decode, as in training."""
    import torch
    from torch.utils.data import DataLoader, SequentialSampler

    # A loader draws its workers' base seed from its generator, by default the global RNG: a
    # private one keeps building the cache invisible to training (dropout, augmentation draws
    # after a cold build must equal those after a warm one, or resumed runs would differ).
    loader = DataLoader(_DecodePass(raw, decode, size, mask_column), batch_size=_BUILD_BATCH,
                        sampler=SequentialSampler(range(len(raw))), num_workers=num_workers, collate_fn=_as_list,
                        generator=torch.Generator().manual_seed(0))
    start = 0
    for rows in loader:
        yield start, rows
        start += len(rows)


class _DecodePass:
    """A map-style dataset of decoded rows (module level, so spawned workers can unpickle it)."""

    def __init__(self, raw, decode: Decoder, size: tuple[int, int], mask_column: str | None):
        self.raw, self.decode, self.size, self.mask_column = raw, decode, size, mask_column

    def __len__(self) -> int:
        return len(self.raw)

    def __getitems__(self, indices: list[int]) -> list:
        columns = self.raw[indices]  # one Arrow read per batch
        return [self.decode(columns, j, self.size, self.mask_column) for j in range(len(indices))]


def _as_list(rows: list) -> list:
    return rows


def _gib(n: int) -> str:
    """A byte count for people: 9.9 KiB, 250.0 MiB, 4.0 GiB."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _warn(problem: str, fix: str) -> None:
    warnings.warn(f"Decoded-image cache: {problem}. Fix: {fix}.", CacheWarning, stacklevel=3)
