"""Datasets: the catalog, official downloads, converters, the phantom set, reports and loading.

Public face (imported lazily, so `import fetal_bench.data` stays cheap)::

    CATALOG, list_datasets, get_dataset_info      the declarative catalog
    download_dataset                               official raw files, checksum-verified
    build_dataset                                  raw layout -> Parquet + card directory
    dataset_report                                 counts, sizes, duplicates, subject overlap
    push_dataset                                   publish a built directory under a tag
    open_dataset, make_dataloader                  load for training / evaluation
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CATALOG": "fetal_bench.data.catalog",
    "DatasetInfo": "fetal_bench.data.catalog",
    "SourceFile": "fetal_bench.data.catalog",
    "list_datasets": "fetal_bench.data.catalog",
    "get_dataset_info": "fetal_bench.data.catalog",
    "download_dataset": "fetal_bench.data.download",
    "build_dataset": "fetal_bench.data.builders",
    "dataset_report": "fetal_bench.data.report",
    "push_dataset": "fetal_bench.data.publish",
    "open_dataset": "fetal_bench.data.opening",
    "make_dataloader": "fetal_bench.data.loading",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fetal_bench.data' has no attribute {name!r}")
