"""Converters from the official raw layouts to fetal-bench dataset directories.

``BUILDERS`` is plain data: dataset name -> "module:function". Each function takes
``(raw_dir, out_dir, *, overwrite, progress, **options)`` and returns a :class:`BuildResult`; it
reads and checks the raw files itself and hands rows to
:func:`fetal_bench.data.writer.write_dataset`. The extra keyword options a builder takes are
declared in its catalog entry (``DatasetInfo.build_options``); `fetal-bench datasets build` turns
each into a command-line flag.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from fetal_bench.data.builders._common import check_paths_apart
from fetal_bench.data.catalog import CATALOG, get_dataset_info
from fetal_bench.data.writer import BuildResult
from fetal_bench.errors import FetalBenchError

BUILDERS: dict[str, str] = {
    "hc18": "fetal_bench.data.builders.hc18:build_hc18",
    "hc18-size-shift": "fetal_bench.data.builders.hc18:build_hc18_size_shift",
    "fetal-planes-es": "fetal_bench.data.builders.planes:build_fetal_planes_es",
    "fetal-planes-africa": "fetal_bench.data.builders.planes:build_fetal_planes_africa",
    "phantom": "fetal_bench.data.builders.phantom:build_phantom",
    "acouslic-iqa": "fetal_bench.data.builders.acouslic:build_acouslic_iqa",
    "fu-lora-synthetic": "fetal_bench.data.builders.fu_lora_synthetic:build_fu_lora_synthetic",
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
    **options: Any,
) -> BuildResult:
    """Build dataset ``name`` from ``raw_dir`` (its official raw layout) into ``out_dir``.

    ``options`` are the dataset's declared ``build_options`` (e.g. ``split_rule="paper"``).
    """
    info = get_dataset_info(name)
    if name not in BUILDERS:
        raise FetalBenchError(f"No builder for dataset {name!r}.", f"Buildable: {', '.join(sorted(BUILDERS))}.")
    declared = {option.name: option for option in info.build_options}
    unknown = sorted(set(options) - set(declared))
    if unknown:
        others = {o.name: (o.flag, d.name) for d in CATALOG.values() for o in d.build_options}
        described = ", ".join(f"{others[k][0]} (for {others[k][1]})" if k in others else repr(k) for k in unknown)
        raise FetalBenchError(f"Dataset {name!r} takes no option {described}.",
                              f"Its options: {', '.join(o.flag for o in declared.values()) or 'none'}.")
    module_name, function_name = BUILDERS[name].split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    if name in NO_RAW:
        return builder(Path(out_dir), overwrite=overwrite, progress=progress, **options)
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
    check_paths_apart(raw, Path(out_dir))
    return builder(raw, Path(out_dir), overwrite=overwrite, progress=progress, **options)


def cached_simulated_build(name: str) -> Path:
    """The build of a simulated catalog dataset (needs no raw files) at its catalog revision, made
    once under the cache root and reused: what the harness and the trainer open when a task on the
    phantom set is given no ``--data``."""
    from fetal_bench._cache import cache_root

    info = get_dataset_info(name)
    if name not in NO_RAW:
        raise FetalBenchError(f"Dataset {name!r} is built from official raw files, not simulated.",
                              f"Build it with `fetal-bench datasets build {name} --raw DIR --out DIR`.")
    target = cache_root() / f"{name}-{info.revision}"
    if not (target / "build_info.json").is_file():
        build_dataset(name, target, overwrite=True)
    return target
