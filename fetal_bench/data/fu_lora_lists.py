"""The FU-LoRA authors' own image lists: which real images trained their LoRA, which formed
their hybrid set, which synthetic images they used.

The lists are the authors' files (MIT licence, Copyright (c) 2024 Fangyijie Wang), fetched on
first use from their repository at the commit below and pinned by sha256, then cached with the
reference weights (``$FETAL_BENCH_CACHE/weights``); they are not redistributed with
fetal-bench. ``FETAL_BENCH_FU_LORA_LISTS=DIR`` points at a folder that already holds them (an
air-gapped machine, or the tests). Their ``all_train_no_cer.csv`` is not needed: it is exactly
FETAL_PLANES_DB's official training rows without ``Maternal cervix`` (6,148 rows; checked by
the tests against the shared copy), which the ``ES`` variant already selects.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from fetal_bench.errors import FetalBenchError

__all__ = ["AUTHORS_COMMIT", "AUTHORS_REPO", "LISTS", "LISTS_ENV_VAR", "REAL_LISTS", "ListUnavailableError",
           "list_file", "read_list", "lora_training_ids", "hybrid_real_ids", "synthetic_images", "ES_PLANE_NAMES"]

AUTHORS_REPO = "13204942/FU-LoRA"
AUTHORS_COMMIT = "9b84b6ffe99c862810d091b5b611e0f8fff64b04"

LISTS_ENV_VAR = "FETAL_BENCH_FU_LORA_LISTS"

#: List file -> (path in the authors' repository, sha256).
LISTS: dict[str, tuple[str, str]] = {
    "lora_train_data.csv": ("data/training_lora/lora_train_data.csv",
                            "35db4340b2d628d5c8552e0a3de2fb1c8242b0905fa04b6af5efb548d510913f"),
    "spain_train_1150_balanced.csv": ("data/classification/spain_train_1150_balanced.csv",
                                      "404bbb1b5d4fc8e5ca91ea2419342e08a70a081e1e3cb81416430fa406139b90"),
    "synthetic_train_5000.csv": ("data/classification/synthetic_train_5000.csv",
                                 "c62b376c10da9b1cf7fb20f6de0160c1ae8bf3c19d22a94a8ab032fcd051abb0"),
}

#: FETAL_PLANES_DB plane names (fetal-planes-es ClassLabel names) by the lists' short names.
ES_PLANE_NAMES = {"abdomen": "Fetal abdomen", "brain": "Fetal brain", "femur": "Fetal femur",
                  "thorax": "Fetal thorax", "other": "Other", "cervix": "Maternal cervix"}
# The classification notebook's class2idx (Replicate_All_Planes_Classification.ipynb, cell 13):
# spain_train_1150_balanced.csv stores planes as these codes.
_CLASS_CODES = {"0": "Other", "1": "Fetal abdomen", "2": "Fetal brain", "4": "Fetal femur", "5": "Fetal thorax"}


#: Named lists of real training rows (``fetal-bench train``'s ``real_list``): name -> where it comes from.
REAL_LISTS = {
    "fu-lora-hb": "the FU-LoRA authors' spain_train_1150_balanced.csv (13204942/FU-LoRA@9b84b6f): "
                  "230 official-train images per class, their hybrid (HB) set's real part",
}


class ListUnavailableError(FetalBenchError):
    """An authors' list is neither cached nor downloadable (offline, or no network)."""


def list_file(name: str) -> Path:
    """The verified local copy of list ``name``: from ``$FETAL_BENCH_FU_LORA_LISTS``, the cache, or
    downloaded into the cache (sha256-checked) when the network may be used."""
    from fetal_bench.data.pinned_files import WeightsFile, find_weights

    if name not in LISTS:
        raise FetalBenchError(f"No FU-LoRA list {name!r}.", f"Use one of: {', '.join(LISTS)}.")
    repo_path, sha256 = LISTS[name]
    spec = WeightsFile(filename=name, sha256=sha256, license="MIT",
                       url=f"https://raw.githubusercontent.com/{AUTHORS_REPO}/{AUTHORS_COMMIT}/{repo_path}",
                       description="FU-LoRA authors' image list")
    folder = os.environ.get(LISTS_ENV_VAR)
    path = find_weights(spec, path=Path(folder) / name if folder else None)
    if path is None:
        raise ListUnavailableError(
            f"The FU-LoRA authors' list {name} is not cached and cannot be downloaded (offline).",
            f"Run once with a network (it is fetched from {spec.url}, sha256-checked), or set "
            f"{LISTS_ENV_VAR}=DIR to a folder holding {name}.",
        )
    return path


def read_list(name: str) -> list[dict[str, str]]:
    """Rows of an authors' list (a UTF-8 byte-order mark is dropped), from its verified copy."""
    text = list_file(name).read_bytes().decode("utf-8-sig")
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]


def lora_training_ids() -> dict[str, list[str]]:
    """FETAL_PLANES_DB plane name -> the image ids the authors' LoRA was trained on (20 each)."""
    chosen: dict[str, list[str]] = {}
    for row in read_list("lora_train_data.csv"):
        chosen.setdefault(ES_PLANE_NAMES[row["category"].lower()], []).append(row["Image_name"])
    return chosen


def hybrid_real_ids() -> dict[str, str]:
    """Image id -> plane name of the authors' 1,150 real images of the hybrid (HB) set, 230 per class."""
    return {row["Image_name"]: _CLASS_CODES[row["Plane"]] for row in read_list("spain_train_1150_balanced.csv")}


def synthetic_images() -> dict[str, str]:
    """File stem -> plane name of the 5,000 synthetic images the paper used (Zenodo 13228158)."""
    return {row["Image_name"]: row["Plane"] for row in read_list("synthetic_train_5000.csv")}
