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
                                     meta.json           scheme, rows, size, bytes, sha256 of each file

``<key>`` hashes the *content* of the rows in order (the stored image and mask bytes), the
output size, whether masks are kept, the decoding scheme and the Pillow version (its resampling
defines the pixels), so a rebuilt dataset, another subset or another size never reads a stale
entry. An entry is written in a temporary folder and renamed into place when complete, under a
lock (one builder per entry; a folder without a complete ``meta.json`` is rebuilt, not waited for).

An entry is data this module wrote, and it is verified before use: ``meta.json`` (a bounded JSON
object) records the sha256 of every file; each ``.npy`` must be a regular file whose header gives
exactly the dtype and shape expected and whose size is exactly that of its header and pixels, and
its content must hash to the recorded value. Anything else (a FIFO, an empty file, a file of
another shape, a ``meta.json`` that is not an object) is a damaged entry: removed and rebuilt.
Files are written with ordinary writes, never through a memory map, so a disk that fills up while
an entry is written is an ``OSError`` (a warning, then no cache), not a SIGBUS.

Size bound: ``FETAL_BENCH_DECODED_CACHE_MAX_BYTES`` (default 4 GiB; suffixes K, M, G, T of
1024; 0 turns the cache off) caps the folder. The least recently used entries are removed to
make room for a new one; a split that alone exceeds the cap, a full disk or an unwritable cache
is reported with a warning and the loader decodes every epoch, as without the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fetal_bench._cache import cache_dir
from fetal_bench._io import UnreadableFile, atomic_directory, exclusive_lock, read_json_file
from fetal_bench.errors import DataError, FetalBenchError, LockHeldError

if TYPE_CHECKING:
    import datasets

__all__ = ["DecodedSplit", "MAX_BYTES_ENV", "max_bytes", "open_decoded"]

MAX_BYTES_ENV = "FETAL_BENCH_DECODED_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024**3
#: Bumped when decode_row's output, or what an entry holds, changes (then old entries are rebuilt).
#: v2: meta.json records the sha256 of each file.
SCHEME = "fetal-bench-decoded-v2"
_META_MAX_BYTES = 64 * 1024  # meta.json is ~400 bytes
_FILES = ("images.npy", "masks.npy", "original_sizes.npy")
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
            shape = (self.n, *self.size)
            images = _open_npy(self.directory / "images.npy", np.uint8, shape)
            masks = _open_npy(self.directory / "masks.npy", np.uint8, shape) if self.has_masks else None
            sizes = np.array(_open_npy(self.directory / "original_sizes.npy", np.int32, (self.n, 2)))
            self._arrays = (images, masks, sizes)
        return self._arrays

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """What ``decode_row`` returned for row ``index``: (image, mask or None, original size)."""
        images, masks, sizes = self._open()
        mask = None if masks is None else masks[index]
        return images[index], mask, (int(sizes[index, 0]), int(sizes[index, 1]))

    def check(self) -> None:
        """Raise ValueError unless the files hold ``n`` rows of the expected shapes and types."""
        _, _, sizes = self._open()  # _open_npy checks type, dtype, shape and size of each file
        if self.n and int(sizes.min()) < 1:
            raise ValueError("original_sizes.npy holds a size below 1 pixel")


def _open_npy(path: Path, dtype, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only memory map of the ``.npy`` file ``path``, which must be a regular file (never
    followed through a link, opened without blocking: a FIFO is refused, not waited on) whose
    header says exactly ``dtype`` and ``shape`` and whose size is exactly header + data.
    ``ValueError`` otherwise."""
    from numpy.lib import format as npy

    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO is not even opened (it may have a writer)
            raise ValueError(f"{path.name} is not a regular file")
        fd = os.open(path, flags)
    except OSError as error:
        raise ValueError(f"{path.name} cannot be opened ({error.strerror or error})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        try:
            version = npy.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"npy version {version}")
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            found_shape, fortran, found_dtype = read_header(handle)
        except (ValueError, OSError, SyntaxError, EOFError) as error:  # a cut or foreign header
            raise ValueError(f"{path.name} has no valid .npy header ({str(error)[:100]})") from None
        expected = np.dtype(dtype)
        if found_dtype != expected or tuple(found_shape) != tuple(shape) or fortran:
            raise ValueError(f"{path.name} is {found_dtype}{tuple(found_shape)}, expected {expected}{tuple(shape)}")
        offset = handle.tell()
        if info.st_size != offset + expected.itemsize * int(np.prod(shape)):
            raise ValueError(f"{path.name} is {info.st_size:,} bytes, not the {offset + expected.itemsize * int(np.prod(shape)):,} "
                             "its header implies")
        if not np.prod(shape):
            return np.empty(shape, dtype=expected)
        return np.memmap(handle, dtype=expected, mode="r", offset=offset, shape=tuple(shape))


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
    if _problem(entry) is None:
        return _touched(entry)
    try:
        root.mkdir(parents=True, exist_ok=True)
        # One builder per entry. Under the lock, an entry that is still not usable is no other
        # process's work in progress (that would hold the lock): it is damaged or was left
        # unfinished by a killed run, and is rebuilt.
        with exclusive_lock(entry.directory):
            problem = _problem(entry)
            if problem is None:
                return _touched(entry)
            if entry.directory.exists() or entry.directory.is_symlink():
                _warn(f"removing the damaged decoded cache entry {entry.directory} ({problem[:200]})",
                      "nothing: it is rebuilt")
                _remove(entry.directory)
            _make_room(root, needed, limit, keep=key)
            free = shutil.disk_usage(root).free
            if free < needed + _FREE_SPACE_RESERVE:
                _warn(f"{root} has {_gib(free)} free, too little for {_gib(needed)} of decoded images",
                      "free disk space, or point FETAL_BENCH_CACHE at a larger disk")
                return None
            _build(entry, raw, decode, mask_column, num_workers, needed)
            problem = _problem(entry)
            if problem is not None:  # pragma: no cover - what was just written and verified
                raise OSError(f"the new entry does not verify: {problem}")
    except DataError:  # a bad row (no mask, a 16-bit image): the same error as without the cache
        raise
    except LockHeldError:  # another process holds the lock: it is building this very entry
        _warn(f"another process is writing the decoded cache entry {entry.directory}",
              "nothing: this loader decodes as usual and a later one will use the entry")
        return None
    except (OSError, FetalBenchError) as error:  # read-only or full file system, a lock file that cannot be made
        reason = error.problem if isinstance(error, FetalBenchError) else (error.strerror or str(error))
        _warn(f"the decoded cache in {root} could not be written ({reason})",
              "make FETAL_BENCH_CACHE point at a writable folder, or ignore this (no cache)")
        return None
    return _touched(entry)


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


#: Entries verified in this process (folder -> meta.json's identity): hashed once, not per loader.
_VERIFIED: dict[Path, tuple] = {}


def _read_meta(folder: Path) -> dict:
    """An entry's meta.json: a bounded JSON object with the keys this module writes, or ValueError."""
    try:
        meta = read_json_file(folder / "meta.json", max_bytes=_META_MAX_BYTES, max_depth=4)
    except UnreadableFile as error:
        raise ValueError(f"meta.json {error.reason}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"meta.json holds a JSON {type(meta).__name__}, not an object")
    hashes = meta.get("sha256")
    if not (isinstance(meta.get("bytes"), int) and isinstance(hashes, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items())):
        raise ValueError("meta.json lacks the byte count or the file hashes")
    return meta


def _problem(entry: DecodedSplit) -> str | None:
    """None for a complete, verified entry; otherwise what is wrong ("missing" for no entry)."""
    folder = entry.directory
    names = [name for name in _FILES if entry.has_masks or name != "masks.npy"]
    try:
        # What was verified: the files' identities (meta.json's mtime changes with every use).
        identity = tuple((info.st_ino, info.st_size, info.st_mtime_ns) for info in
                         (os.lstat(folder / name) for name in names)) + (os.lstat(folder / "meta.json").st_ino,)
    except OSError:
        return "missing" if not (folder.exists() or folder.is_symlink()) else "incomplete (a file is missing)"
    try:
        if folder.is_symlink() or not folder.is_dir():
            raise ValueError("the entry is not a folder")
        meta = _read_meta(folder)
        expected = {"scheme": SCHEME, "rows": entry.n, "size": list(entry.size), "masks": entry.has_masks}
        found = {key: meta.get(key) for key in expected}
        if found != expected:
            raise ValueError(f"meta.json describes {found}, expected {expected}")
        if sorted(meta["sha256"]) != sorted(names):
            raise ValueError(f"meta.json hashes {sorted(meta['sha256'])}, expected {names}")
        entry._arrays = None
        entry.check()  # types, shapes and sizes, without reading the pixels
        if _VERIFIED.get(folder) != identity:
            for name in names:
                if _hash_file(folder / name) != meta["sha256"][name]:
                    raise ValueError(f"{name} does not match the sha256 meta.json records")
            _VERIFIED[folder] = identity
    except (OSError, ValueError) as error:
        entry._arrays = None
        _VERIFIED.pop(folder, None)
        return str(error)
    return None


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _touched(entry: DecodedSplit) -> DecodedSplit:
    try:
        os.utime(entry.directory / "meta.json")  # last use, for the least-recently-used eviction
    except OSError:
        pass
    return entry


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes, folder) of every complete entry under ``root``."""
    found = []
    for folder in root.iterdir():
        try:
            found.append((os.lstat(folder / "meta.json").st_mtime, int(_read_meta(folder)["bytes"]), folder))
        except (OSError, ValueError):
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
    """Decode every row into a temporary folder, renamed into place when complete.

    Rows arrive in order, so each file is written front to back with ordinary writes: a full
    disk is an ``OSError`` here (written through a memory map, it was a SIGBUS that killed the
    process without a word). The sha256 of each file is taken as it is written.
    """
    n, (height, width) = entry.n, entry.size
    with atomic_directory(entry.directory, overwrite=True) as tmp:
        images = _NpyWriter(tmp / "images.npy", np.uint8, (n, height, width))
        masks = _NpyWriter(tmp / "masks.npy", np.uint8, (n, height, width)) if entry.has_masks else None
        sizes = np.zeros((n, 2), dtype=np.int32)
        try:
            for start, rows in _decoded_batches(raw, decode, entry.size, mask_column, num_workers):
                for offset, (gray, mask, original) in enumerate(rows):
                    images.write(gray)
                    if masks is not None:
                        masks.write(mask)
                    sizes[start + offset] = original
            writers = [images, *([masks] if masks is not None else [])]
            hashes = {writer.path.name: writer.finish() for writer in writers}
        finally:
            for writer in (images, masks):
                if writer is not None:
                    writer.close()
        sizes_writer = _NpyWriter(tmp / "original_sizes.npy", np.int32, (n, 2))
        try:
            sizes_writer.write(sizes)
            hashes["original_sizes.npy"] = sizes_writer.finish()
        finally:
            sizes_writer.close()
        meta = {"scheme": SCHEME, "rows": n, "size": [height, width], "masks": entry.has_masks, "bytes": needed,
                "sha256": hashes}
        with open(tmp / "meta.json", "x", encoding="utf-8") as handle:
            handle.write(json.dumps(meta) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


class _NpyWriter:
    """A ``.npy`` file of ``shape`` written front to back, hashed as it goes."""

    def __init__(self, path: Path, dtype, shape: tuple[int, ...]):
        from numpy.lib import format as npy

        self.path, self.dtype, self.shape = path, np.dtype(dtype), tuple(shape)
        self.expected = self.dtype.itemsize * int(np.prod(shape))
        self.written = 0
        self.digest = hashlib.sha256()
        self.handle = open(path, "xb")
        header = io.BytesIO()
        npy.write_array_header_1_0(header, {"descr": npy.dtype_to_descr(self.dtype), "fortran_order": False,
                                            "shape": self.shape})
        self._put(header.getvalue())
        self.written = 0

    def _put(self, data) -> None:
        self.handle.write(data)
        self.digest.update(data)

    def write(self, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array, dtype=self.dtype).tobytes()
        self.written += len(data)
        if self.written > self.expected:
            raise ValueError(f"{self.path.name}: more data than its shape {self.shape}")  # pragma: no cover - a bug
        self._put(data)

    def finish(self) -> str:
        if self.written != self.expected:
            raise ValueError(f"{self.path.name}: {self.written} of {self.expected} bytes written")  # pragma: no cover
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.digest.hexdigest()

    def close(self) -> None:
        self.handle.close()


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
