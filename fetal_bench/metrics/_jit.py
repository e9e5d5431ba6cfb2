"""``njit`` with a compilation cache that fetal-bench owns and verifies.

numba's own on-disk cache (``@njit(cache=True)``) is not data: its index (``.nbi``) and entries
(``.nbc``) are pickles, unpickled on every first call. It is written beside the package
(``__pycache__``), else in ``NUMBA_CACHE_DIR`` or ``~/.cache``; a corrupted entry raised
UnpicklingError in the middle of scoring, a file planted in ``NUMBA_CACHE_DIR`` ran its code, and
with the package and the home folder read-only the first call raised "no locator available"
after the model had predicted.

:func:`njit` compiles the same code with numba and caches it only here:

* in ``$FETAL_BENCH_CACHE/numba/<numba version>-py<X.Y>/`` (never ``NUMBA_CACHE_DIR``, the package
  folder or ``~/.cache``), and only when that folder is private: a real directory (not a link)
  owned by this user and writable by no one else, below ancestors that only this user or root can
  change (or that are sticky, as ``/tmp``). Whoever could write there could already run code as
  this user;
* every file is written together with a ``.sha256`` of exactly the bytes written, and read back
  only when its content hashes to it: a file this cache did not write (a planted ``.nbi``, numba's
  own files, a truncated or corrupted entry) is never unpickled, the function is compiled again
  and the entry rewritten;
* any failure of the cache (a read-only or full disk, a folder that is not private, a numba whose
  cache internals differ from 0.68's) means "not cached": the function is compiled in the process,
  slower (about 1.2-1.4 s on the first call instead of 0.06 s, measured with numba 0.68.1 on
  this project's 2-core machine), never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import stat
import sys
from pathlib import Path

import numba

__all__ = ["cache_folder", "njit"]

_MAX_ENTRY_BYTES = 64 * 1024 * 1024  # the surface-distance search's entries are ~100 kB
_HASH_SUFFIX = ".sha256"


def njit(**options):
    """``numba.njit(**options)`` whose compiled code is cached as the module docstring says."""
    def decorate(function):
        dispatcher = numba.njit(cache=False, **options)(function)
        cache = _verified_cache(dispatcher.py_func)
        if cache is not None:
            dispatcher._cache = cache  # what numba's enable_caching() sets, with our cache class
        return dispatcher

    return decorate


def cache_folder() -> Path:
    """Where compiled code is cached (not created here)."""
    from fetal_bench._cache import cache_dir

    version = f"{numba.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"
    return cache_dir("numba") / version


def _private_folder() -> Path | None:
    """The cache folder, created if need be, if it is private (module docstring); else None."""
    folder = cache_folder()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            return None
        if not hasattr(os, "geteuid"):  # Windows: a per-user profile folder, no POSIX modes
            return folder
        me = os.geteuid()
        info = os.lstat(folder)
        if info.st_uid != me or info.st_mode & 0o022:
            return None
        for ancestor in folder.resolve().parents:
            info = os.stat(ancestor)
            sticky = info.st_mode & stat.S_ISVTX
            if info.st_uid not in (me, 0) or (info.st_mode & 0o022 and not sticky):
                return None
    except OSError:
        return None
    return folder


def _verified_cache(py_func):
    """A numba cache object for ``py_func`` in the private folder, or None (then: not cached)."""
    folder = _private_folder()
    if folder is None:
        return None
    try:
        cache = _classes()["cache"](py_func, folder)
    except Exception:  # noqa: BLE001 - numba's internals moved, or the folder cannot be used: no cache
        return None
    return cache


_CLASSES: dict = {}


def _classes() -> dict:
    """The cache classes, built on numba's (numba.core.caching) on first use."""
    if _CLASSES:
        return _CLASSES
    from numba.core import caching

    in_tree = getattr(caching, "InTreeCacheLocator", None) or caching._InTreeCacheLocator

    class Locator(in_tree):
        """numba's in-tree locator (source stamp, names) pointed at the private folder."""

        folder: Path

        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = str(self.folder)

        @classmethod
        def from_function(cls, py_func, py_file):
            return cls(py_func, py_file) if os.path.exists(py_file) else None

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = [Locator]

    class VerifiedFile(caching.IndexDataCacheFile):
        """numba's index + data files, each written with a hash and read only if it matches."""

        def _load_index(self):
            data = _read_verified(Path(self._index_path))
            if data is None:
                return {}
            stream = io.BytesIO(data)
            if pickle.load(stream) != self._version:
                return {}
            stamp, overloads = pickle.loads(stream.read())
            return overloads if stamp == self._source_stamp else {}

        def _load_data(self, name):
            data = _read_verified(Path(self._data_path(name)))
            if data is None:
                raise OSError(f"{name} is not an entry this cache wrote")  # load() then returns None
            return pickle.loads(data)

        @contextlib.contextmanager
        def _open_for_write(self, filepath):
            digest = hashlib.sha256()
            with super()._open_for_write(filepath) as handle:
                yield _Hashing(handle, digest)
            _write_hash(Path(filepath), digest.hexdigest())

    class Cache(caching.FunctionCache):
        _impl_class = Impl

        def __init__(self, py_func, folder: Path):
            Locator.folder = folder
            super().__init__(py_func)
            if not isinstance(self._impl.locator, Locator):  # NUMBA_CACHE_LOCATOR_CLASSES chose another
                raise RuntimeError("not our locator")
            old = self._cache_file
            self._cache_file = VerifiedFile(cache_path=self._cache_path, filename_base=self._impl.filename_base,
                                            source_stamp=old._source_stamp)

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:  # noqa: BLE001 - a cache that cannot be read is a cache miss
                return None

        def save_overload(self, sig, data):
            with contextlib.suppress(Exception):  # a cache that cannot be written: compiled every time
                super().save_overload(sig, data)

    _CLASSES.update(cache=Cache)
    return _CLASSES


class _Hashing:
    """A write-only file that also feeds what is written to a digest."""

    def __init__(self, handle, digest):
        self.handle, self.digest = handle, digest

    def write(self, data) -> int:
        self.digest.update(data)
        return self.handle.write(data)


def _write_hash(path: Path, hexdigest: str) -> None:
    from fetal_bench._io import atomic_file

    with atomic_file(path.with_name(path.name + _HASH_SUFFIX), "w", encoding="ascii") as handle:
        handle.write(hexdigest + "\n")


def _read_verified(path: Path) -> bytes | None:
    """The bytes of ``path`` if it is a regular file whose sha256 is its recorded one; else None."""
    from fetal_bench._io import UnreadableFile, read_regular_file

    try:
        for file in (path, path.with_name(path.name + _HASH_SUFFIX)):
            if not stat.S_ISREG(os.lstat(file).st_mode):  # not a link, a FIFO or a device
                return None
        recorded = read_regular_file(path.with_name(path.name + _HASH_SUFFIX), max_bytes=100).decode("ascii").strip()
        data = read_regular_file(path, max_bytes=_MAX_ENTRY_BYTES)
    except (OSError, UnreadableFile, UnicodeDecodeError):
        return None
    return data if hashlib.sha256(data).hexdigest() == recorded else None
