"""Pinned files fetched into the cache: pretrained weights and the authors' image lists. Where
they come from (URL + checksum), where they are cached, and how they are fetched.

Every file fetched from the network is verified against a checksum pinned here before it is
used, and the few formats that are pickles (SAM's official ``.pth``) are then read with
``torch.load(weights_only=True)``, which refuses arbitrary objects. Nothing is fetched when
``FETAL_BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set (tests, air-gapped machines), or when
the caller says so; callers then fall back (random initialisation with a warning) or raise a
:class:`~fetal_bench.errors.FetalBenchError` that says where to put the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from fetal_bench._cache import cache_dir
from fetal_bench._io import file_digests
from fetal_bench.errors import FetalBenchError

__all__ = ["PretrainedWeightsWarning", "WeightsFile", "find_weights", "offline", "verify_file", "weights_dir"]


class PretrainedWeightsWarning(UserWarning):
    """Pretrained weights were asked for but could not be had: the model starts from random."""


@dataclass(frozen=True)
class WeightsFile:
    """One published weights file.

    ``md5``/``sha256``: at least one is pinned; every pinned one must match.
    """

    filename: str
    url: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    license: str = ""
    description: str = ""


def offline() -> bool:
    """True when fetal-bench must not reach the network for weights."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("FETAL_BENCH_OFFLINE", "HF_HUB_OFFLINE"))


def weights_dir() -> Path:
    """``$FETAL_BENCH_CACHE/weights`` (default ``~/.cache/fetal-bench/weights``)."""
    return cache_dir("weights")


def verify_file(path: Path, spec: WeightsFile) -> str | None:
    """None when ``path`` matches ``spec``'s size and pinned checksums, else what differs."""
    if spec.size is not None and path.stat().st_size != spec.size:
        return f"size {path.stat().st_size} != {spec.size}"
    pinned = [name for name in ("md5", "sha256") if getattr(spec, name)]
    if not pinned:
        return "no checksum is pinned"
    for name, digest in file_digests(path, pinned).items():
        if digest != getattr(spec, name):
            return f"{name} {digest} != {getattr(spec, name)}"
    return None


def find_weights(spec: WeightsFile, *, path: str | os.PathLike | None = None, download: bool = True,
                 env_var: str | None = None) -> Path | None:
    """The verified local file for ``spec``, downloading it into the cache when allowed.

    Looks at, in order: ``path`` (an explicit file: it must verify, else an error), the
    environment variable ``env_var``, then ``weights_dir()/filename``. Downloads into the cache
    when none is there, ``download`` is true and we are not :func:`offline`. Returns None when
    the file cannot be had (the caller decides whether that is fatal).
    """
    candidates: list[tuple[Path, bool]] = []  # (path, explicit)
    if path is not None:
        candidates.append((Path(path), True))
    if env_var and os.environ.get(env_var):
        candidates.append((Path(os.environ[env_var]), True))
    candidates.append((weights_dir() / spec.filename, False))
    for candidate, explicit in candidates:
        if candidate.is_file():
            problem = verify_file(candidate, spec)
            if problem is None:
                return candidate
            if explicit:
                raise FetalBenchError(f"{candidate} is not the published {spec.filename} ({problem}).",
                                      f"Download it again from {spec.url}.")
            warnings.warn(f"Ignoring cached {candidate}: {problem}.", PretrainedWeightsWarning, stacklevel=2)
        elif explicit:
            raise FetalBenchError(f"Weights file {candidate} does not exist.", f"Pass the path of {spec.filename} ({spec.url}).")
    if not download or offline():
        return None
    return _download(spec)


def _download(spec: WeightsFile) -> Path | None:
    # The dataset downloader already resumes, retries and verifies md5/sha256; reuse it.
    from fetal_bench.data.catalog import SourceFile
    from fetal_bench.data.download import download_file
    from fetal_bench.errors import DownloadError

    source = SourceFile(filename=spec.filename, url=spec.url, size=spec.size, md5=spec.md5, sha256=spec.sha256)
    try:
        return download_file(source, weights_dir(), progress=True)
    except DownloadError as err:
        warnings.warn(f"Could not download {spec.url}: {err.problem}", PretrainedWeightsWarning, stacklevel=3)
        return None
