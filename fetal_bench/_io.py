"""Small file-system helpers: atomic writes and content hashes.

Everything fetal-bench writes goes through here so that an interrupted run never leaves a
half-written file or directory where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

_CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_file(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (``algorithm`` is any hashlib name, e.g. md5)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp_name, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_json_atomic(path: str | os.PathLike, payload, *, indent: int = 2) -> None:
    """Write ``payload`` as strict JSON (NaN/Infinity rejected) atomically."""
    text = json.dumps(payload, indent=indent, allow_nan=False, ensure_ascii=False)
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary sibling directory that replaces ``path`` on success.

    The caller fills the yielded directory; only when the block finishes without error is it
    renamed to ``path`` (replacing an old one if ``overwrite``). On error it is deleted, so a
    failed build leaves nothing behind and an earlier good build is kept.
    """
    from fetal_bench.errors import FetalBenchError

    path = Path(path).absolute()
    if path.exists() and not overwrite:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        else:
            raise FetalBenchError(
                f"Output directory {path} already exists.",
                "Choose another --out, delete it, or pass --overwrite.",
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
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
