"""The one cache root of fetal-bench: ``$FETAL_BENCH_CACHE``, else ``~/.cache/fetal-bench``.

Everything fetal-bench keeps between runs lives in a named subfolder of it (``weights``,
``features``, ``fingerprints``, ``decoded`` ...), so that one variable moves or clears it all.
Nothing in it is precious: every entry can be rebuilt from the data and the weights.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$FETAL_BENCH_CACHE`` (default ``~/.cache/fetal-bench``); not created here."""
    configured = os.environ.get("FETAL_BENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "fetal-bench"


def cache_dir(name: str) -> Path:
    """The cache subfolder ``name`` (e.g. ``"weights"``); not created here."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"cache folder name {name!r} must be one plain path component")
    return cache_root() / name
