"""Converters from the official raw layouts to fetal-bench dataset directories.

``BUILDERS`` is plain data: dataset name -> "module:function". Each function takes
``(raw_dir, out_dir, *, overwrite, progress)`` and returns a :class:`BuildResult`; it reads and
checks the raw files itself and hands rows to :func:`fetal_bench.data.writer.write_dataset`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from fetal_bench.data.catalog import get_dataset_info
from fetal_bench.data.writer import BuildResult
from fetal_bench.errors import FetalBenchError

BUILDERS: dict[str, str] = {
    "hc18": "fetal_bench.data.builders.hc18:build_hc18",
    "fetal-planes-es": "fetal_bench.data.builders.planes:build_fetal_planes_es",
    "fetal-planes-africa": "fetal_bench.data.builders.planes:build_fetal_planes_africa",
    "phantom": "fetal_bench.data.builders.phantom:build_phantom",
}

# Datasets that are generated in-process and take no raw directory.
NO_RAW = frozenset({"phantom"})


def build_dataset(
    name: str,
    out_dir: str | os.PathLike,
    *,
    raw_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildResult:
    """Build dataset ``name`` from ``raw_dir`` (its official raw layout) into ``out_dir``."""
    info = get_dataset_info(name)
    if name not in BUILDERS:
        raise FetalBenchError(f"No builder for dataset {name!r}.", f"Buildable: {', '.join(sorted(BUILDERS))}.")
    module_name, function_name = BUILDERS[name].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    if name in NO_RAW:
        return builder(Path(out_dir), overwrite=overwrite, progress=progress)
    if raw_dir is None:
        raise FetalBenchError(
            f"Building {name!r} needs the official raw files (--raw DIR).",
            f"Run `fetal-bench datasets download {name} --to DIR` first, or: {info.manual_download}",
        )
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise FetalBenchError(
            f"Raw directory {raw} does not exist or is not a directory.",
            f"Point --raw at the extracted official download. {info.manual_download}",
        )
    return builder(raw, Path(out_dir), overwrite=overwrite, progress=progress)
