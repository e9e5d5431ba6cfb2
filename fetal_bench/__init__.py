"""fetal-bench: fetal ultrasound datasets, generators, baselines and benchmark tasks.

The top-level names are imported lazily so that `import fetal_bench` (and `fetal-bench --help`)
stays fast: torch, datasets and diffusers load only when used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

from fetal_bench.errors import FetalBenchError  # noqa: E402

_EXPORTS = {
    "evaluate": "fetal_bench.evaluation.harness",
    "get_task": "fetal_bench.tasks.registry",
    "list_tasks": "fetal_bench.tasks.registry",
    "build_dataset": "fetal_bench.data.builders",
    "open_dataset": "fetal_bench.data.opening",
}

__all__ = ["FetalBenchError", "__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fetal_bench' has no attribute {name!r}")
