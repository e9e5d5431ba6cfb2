"""Small file-system helpers: atomic writes, exclusive locks, safe reads and content hashes.

Everything fetal-bench writes goes through here so that an interrupted run never leaves a
half-written file or directory where a finished one is expected, and two runs writing the same
output never silently replace each other's work.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import secrets
import shutil
import stat
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

_CHUNK = 1 << 20


def file_digests(path: str | os.PathLike, algorithms: Iterable[str] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file under several hashlib algorithms (e.g. md5 and sha256), in one
    chunked pass: the one reader of whole files for checksums (downloads, weights, results)."""
    # usedforsecurity=False: md5 is what Zenodo publishes, and FIPS builds refuse it otherwise.
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_file(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (``algorithm`` is any hashlib name, e.g. md5)."""
    return file_digests(path, (algorithm,))[algorithm]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seeded_key(seed: object, key: object) -> bytes:
    """sha256 of ``"<seed>:<key>"``: where a row (or subject) falls in a seeded order.

    Sorting or splitting by this key draws from the seed without a shuffled list, so an item's
    place never depends on which other items are present (a partial copy of a dataset and the
    full one agree, and a new release does not reshuffle old subjects).
    """
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def sha256_tensors(named_tensors) -> str:
    """sha256 over ``(name, tensor)`` pairs in the order given: each name, dtype and shape, then
    the tensor's raw bytes. The one content hash of model weights (checkpoints, bases, results)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in named_tensors:
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{array.dtype}:{tuple(array.shape)}\n".encode())
        if array.numel():
            digest.update(array.view(-1).view(torch.uint8).numpy())  # the buffer itself: no copy
    return digest.hexdigest()


def json_leaves(value: Any) -> Iterator[tuple[str, Any]]:
    """Every value of parsed JSON that is not an object or array, with its path (``/scores/dice/value``;
    ``""`` for a bare top-level value), in document order.

    The one walk over a result's JSON for the checks that look at every number (non-finite values,
    magnitudes). Iterative, so a deeply nested file cannot exhaust Python's recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed([(f"{path}/{key}", child) for key, child in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}/{index}", child) for index, child in enumerate(item)]))
        else:
            yield path, item


# ----------------------------------------------------------------------------------------------
# Reading files that come from outside
# ----------------------------------------------------------------------------------------------


class UnreadableFile(Exception):
    """A path that is not a regular file of acceptable size; ``reason`` says what it is instead."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path} {reason}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike, *, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file (or a link to one) of at most ``max_bytes``.

    Anything else raises :class:`UnreadableFile` without blocking or reading much: the file is
    opened non-blocking (a FIFO would otherwise wait forever for a writer) and checked with
    ``fstat`` on the open descriptor, so a device such as ``/dev/zero`` is refused before a byte
    is read, and at most ``max_bytes + 1`` bytes are ever read (a file growing meanwhile).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        reason = "is a dangling symbolic link" if path.is_symlink() else "does not exist"
        raise UnreadableFile(path, reason) from None
    except IsADirectoryError:
        raise UnreadableFile(path, "is a directory") from None
    except OSError as error:
        raise UnreadableFile(path, f"cannot be opened ({error.strerror or error})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(path, f"is {_kind(info.st_mode)}")
        raise UnreadableFile(path, f"is {info.st_size:,} bytes, over the limit of {max_bytes:,}")
    with os.fdopen(fd, "rb", buffering=0) as handle:
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = handle.read(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    if total > max_bytes:
        raise UnreadableFile(path, f"grew past the limit of {max_bytes:,} bytes while being read")
    return b"".join(chunks)


#: Nesting depth of JSON that fetal-bench reads from outside: its own files nest a handful of
#: levels; anything deeper is refused before parsing (json would raise RecursionError near 1,000,
#: and code walking the result recursively might fail sooner).
MAX_JSON_DEPTH = 64
#: Digits of one JSON integer: int64 has 19; Python would parse up to 4,300 (then ValueError).
_MAX_JSON_INT_DIGITS = 40
_JSON_STRING = None  # compiled on first use


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text``, brackets inside strings ignored."""
    import re

    import numpy as np

    global _JSON_STRING
    if _JSON_STRING is None:
        _JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
    structure = _JSON_STRING.sub("", text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(structure, dtype=np.uint8)
    steps = (np.isin(codes, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(codes, (ord("]"), ord("}"))).astype(np.int64))
    return int(np.cumsum(steps).max()) if steps.size else 0


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits (at most {_MAX_JSON_INT_DIGITS})")
    return int(text)


def _json_float(text: str) -> float:
    import math

    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _json_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def load_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH):
    """Parse JSON that comes from outside, with bounds: at most ``max_depth`` levels of nesting
    (checked before parsing), integers of at most 40 digits, finite numbers only (no NaN,
    Infinity or 1e999). Any problem is a ``ValueError`` whose message says what is wrong."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"it nests {depth:,} levels deep (at most {max_depth})")
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError("it nests too deeply") from None


def read_json_file(path: str | os.PathLike, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH):
    """:func:`read_regular_file` then :func:`load_json`: ``UnreadableFile`` for a path that is not
    a regular file within ``max_bytes``, ``ValueError`` (with a readable message) for its content."""
    data = read_regular_file(path, max_bytes=max_bytes)
    try:
        return load_json(data, max_depth=max_depth)
    except UnicodeDecodeError as error:
        raise ValueError(f"it is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"it is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None


# ----------------------------------------------------------------------------------------------
# Exclusive locks: one writer per output path
# ----------------------------------------------------------------------------------------------

_held: dict[str, int] = {}  # lock file -> nesting depth in this process (the lock is re-entrant)
_held_guard = threading.Lock()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file guarding ``target``: a hidden sibling, so it never lands inside the output."""
    target = Path(target).absolute()
    return target.with_name(f".{target.name}.lock")


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = path.read_text(encoding="ascii").strip()[:20]
        if text.isdigit():
            return f" (pid {text})"
    return ""


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of ``path`` that do not exist yet, deepest first."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def _acquire(path: Path, target: Path) -> int:
    from fetal_bench.errors import FetalBenchError, LockHeldError

    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:  # a read-only or full file system: the output could not be written either
            raise FetalBenchError(
                f"Cannot write to {target}: its lock file {path} cannot be created ({error.strerror or error}).",
                "Write to a directory on a writable file system.") from None
        if not _try_lock(fd):
            os.close(fd)
            raise LockHeldError(
                f"{target} is being written by another fetal-bench run{_holder(path)}.",
                f"Wait for that run to finish, or write to another path. (Lock file: {path}.)",
            )
        # The previous holder unlinks the lock file on release; if that happened between our
        # open and our lock, we hold a lock on an orphaned inode: start again on the new file.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(target: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock on ``target`` (a file or directory path) for the block, or fail at once.

    A second process asking for the same target gets a :class:`~fetal_bench.errors.LockHeldError`
    (a ``FetalBenchError``) naming the holder and the lock file; it never waits. The kernel drops the lock when its holder dies (even by
    SIGKILL), so a killed run never blocks the next one. Re-entrant within one process, so a
    command may take the lock early and the library's writer take it again.
    """
    path = lock_path(target)
    key = str(path)
    created: list[Path] = []
    with _held_guard:
        if key in _held:
            _held[key] += 1
            fd = None
        else:
            created = _missing_parents(path)
            try:
                fd = _acquire(path, Path(target))
            except BaseException:
                _remove_empty(created)
                raise
            _held[key] = 1
    try:
        yield path
    finally:
        with _held_guard:
            _held[key] -= 1
            if _held[key] == 0:
                del _held[key]
                if fd is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    os.close(fd)
                    _remove_empty(created)  # a run that failed before writing leaves no empty folder


def _remove_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first; stops mattering at the first non-empty one
        with contextlib.suppress(OSError):
            directory.rmdir()


# ----------------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------------


def _create_unique(parent: Path, prefix: str, suffix: str, make) -> Path:
    """Create a new uniquely named entry with ``make(path)``; retries on a (rare) name clash."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            make(candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {parent}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created with mode 0666 so the kernel applies the umask: the file gets the usual
    # permissions without reading the umask (os.umask can only be read by changing it, which
    # races with other threads creating files).
    tmp = _create_unique(path.parent, f".{path.name}.", ".tmp",
                         lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, payload, *, indent: int = 2) -> None:
    """Write ``payload`` as strict JSON (NaN/Infinity rejected) atomically."""
    text = json.dumps(payload, indent=indent, allow_nan=False, ensure_ascii=False)
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


def _clean_stale_siblings(path: Path) -> None:
    """Remove what a killed earlier run left next to ``path``; only called under its lock.

    ``.NAME.tmp-*`` is an unfinished output: deleted. ``.NAME.old-*`` is a finished output that
    was being replaced: deleted if ``path`` exists, else put back (the run died between moving
    the old output aside and moving the new one in, so it is the only complete copy).
    """
    name = glob.escape(path.name)  # an output named "[x]" must not be read as a pattern
    for stale in path.parent.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for backup in sorted(path.parent.glob(f".{name}.old-*")):
        if not path.exists() and backup.is_dir():
            os.replace(backup, path)
        else:
            shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling directory that replaces ``path`` on success.

    The caller fills the yielded directory; only when the block finishes without error is it
    renamed to ``path`` (replacing an old one if ``overwrite``). On error it is deleted, so a
    failed build leaves nothing behind and an earlier good build is kept. The whole block runs
    under :func:`exclusive_lock` of ``path``, so a concurrent second writer fails at once instead
    of both "succeeding"; leftovers of a killed earlier run are cleaned first.
    """
    from fetal_bench.errors import FetalBenchError

    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path):
        _clean_stale_siblings(path)
        if path.exists() and not overwrite:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            else:
                raise FetalBenchError(
                    f"Output directory {path} already exists.",
                    "Choose another --out, delete it, or pass --overwrite.",
                )
        # mkdir with 0777 lets the kernel apply the umask (mkdtemp would make it 0700).
        tmp = _create_unique(path.parent, f".{path.name}.tmp-", "", lambda p: os.mkdir(p, 0o777))
        try:
            yield tmp
            if path.exists():
                backup = path.with_name(f".{path.name}.old-{os.getpid()}")
                os.replace(path, backup)
                os.replace(tmp, path)
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
