"""Which dataset, revision and content a build or a split is: what results, checkpoints and the
CLI record and print, never a machine's path.

Two hashes describe a build, each under one name:

* the **content fingerprint** (:mod:`fetal_bench.data.fingerprint`): rows, columns and decoded
  pixels of a split; the catalog pins published revisions by it (``ContentPin``), results and
  checkpoints record it;
* the **files fingerprint**: sha256 over the build's Parquet files (``build_info.json``'s
  ``fingerprint``); it changes with the pyarrow that wrote them, so it identifies one build's
  files, not a release.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fetal_bench.data.catalog import CATALOG

__all__ = ["ReleaseMatch", "build_release_matches", "dataset_record", "recognise_content"]


def recognise_content(name: str, parts: Mapping[str, str], *, revision: str | None = None,
                      config: str | None = None) -> tuple[str | None, list[str]]:
    """The revision of catalog dataset ``name`` whose pinned content ``parts`` (split -> content
    fingerprint) match, or None and one line per split that differs.

    ``revision``: the pin compared with (default: the catalog's pinned revision); ``config``: the
    config the parts were read from (None: the default). No pin, or a pin of another config:
    (None, []).
    """
    catalog = CATALOG.get(name)
    pin = catalog.pin(revision) if catalog is not None else None
    if pin is None or (config or "default") != pin.config:
        return None, []
    differing = []
    for split, value in parts.items():
        expected = pin.splits.get(split)
        if expected is None:
            differing.append(f"split {split!r} is not part of {catalog.name} {pin.revision}")
        elif value != expected:
            differing.append(f"split {split!r} has content fingerprint {value[:12]}..., "
                             f"{catalog.name} {pin.revision} has {expected[:12]}... ({pin.rows.get(split)} rows)")
    return (None, differing) if differing else (pin.revision, [])


@dataclass(frozen=True)
class ReleaseMatch:
    """Whether one config of a local build is a published revision (by content)."""

    dataset: str
    config: str
    revision: str  # the pinned revision compared with
    matches: bool
    fingerprint: str | None  # the combined content fingerprint of the pinned splits, when all are present
    reasons: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        """One line for the terminal: ``matches hc18 v1.0`` or why not."""
        where = "" if self.config == "default" else f" (config {self.config})"
        if self.matches:
            return (f"Content: matches {self.dataset} {self.revision}{where} "
                    f"(content fingerprint {str(self.fingerprint)[:16]}).")
        return f"Content: not {self.dataset} {self.revision}{where}: " + "; ".join(self.reasons) + "."


def build_release_matches(directory: str | os.PathLike) -> list[ReleaseMatch]:
    """For each config of the local build ``directory`` that the catalog pins, whether its
    content is the pinned revision (content fingerprints of the pinned splits; cached, so a
    second call costs the hashing of the files only). Empty for a dataset without pins."""
    from fetal_bench.data.fingerprint import build_fingerprints, combined_fingerprint

    directory = Path(directory)
    catalog = CATALOG.get(_build_name(directory) or "")
    if catalog is None:
        return []
    matches = []
    for pin in catalog.pins:
        config = None if pin.config == "default" else pin.config
        present = _built_splits(directory, config)
        missing = [split for split in pin.splits if split not in present]
        if present is None:
            continue  # the build has no such config
        if missing:
            matches.append(ReleaseMatch(catalog.name, pin.config, pin.revision, False, None,
                                        tuple(f"split {split!r} is missing ({pin.rows.get(split)} rows in "
                                              f"{pin.revision})" for split in missing)))
            continue
        parts = build_fingerprints(directory, config=config, splits=tuple(pin.splits))
        revision, reasons = recognise_content(catalog.name, parts, revision=pin.revision, config=config)
        matches.append(ReleaseMatch(catalog.name, pin.config, pin.revision, revision is not None,
                                    combined_fingerprint(parts), tuple(reasons)))
    return matches


def dataset_record(source: str | os.PathLike, *, config: str | None, split: str, dataset=None,
                   content: bool = True) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on: the dataset's name, the
    revision its content matches (``local`` when none), the split's content fingerprint, the
    config and split, and where it was read (``local:<directory name>`` or a Hub id; never an
    absolute path).

    ``source``: a local build directory, a Hub id, or ``name@revision``. ``dataset``: the split,
    already opened from ``source``. ``content=False`` (a local build only): the files fingerprint
    of its ``build_info.json`` instead of decoding the split (a synthetic set of thousands of
    generated images).
    """
    from fetal_bench.data.fingerprint import local_split_fingerprint, split_fingerprint

    path = Path(source)
    if path.is_dir() and not content:
        name = _build_name(path) or path.resolve().name
        return {"dataset": name, "revision": "local", "config": config, "split": split,
                "files_fingerprint": _build_info(path).get("fingerprint"), "source": f"local:{path.resolve().name}"}
    if path.is_dir():
        name = _build_name(path) or path.resolve().name
        fingerprint = local_split_fingerprint(path, config=config, split=split, dataset=dataset)
        catalog = CATALOG.get(name)
        if catalog is not None and catalog.simulated:
            revision = catalog.revision  # generated in-process: its generator's revision
        else:
            revision = recognise_content(name, {split: fingerprint}, config=config)[0] or "local"
        where = f"local:{path.resolve().name}"
    else:
        text = os.fspath(source)
        hub_id, _, revision = text.partition("@")
        by_hub = {info.hub_id: info.name for info in CATALOG.values() if info.hub_id}
        name = by_hub.get(hub_id, hub_id)
        revision = revision or (CATALOG[name].revision if name in CATALOG else None)
        fingerprint = split_fingerprint(dataset) if dataset is not None else None
        where = CATALOG[name].hub_id if name in CATALOG and CATALOG[name].hub_id else hub_id
    return {"dataset": name, "revision": revision, "config": config, "split": split, "fingerprint": fingerprint,
            "source": where}


def _build_info(directory: Path) -> dict[str, Any]:
    from fetal_bench._io import UnreadableFile, read_json_file

    try:
        info = read_json_file(directory / "build_info.json", max_bytes=64 << 20)
    except (UnreadableFile, ValueError, OSError):
        return {}
    return info if isinstance(info, dict) else {}


def _build_name(directory: Path) -> str | None:
    """The catalog name a build recorded (``build_info.json``'s ``dataset``)."""
    name = _build_info(directory).get("dataset")
    return name if isinstance(name, str) else None


def _built_splits(directory: Path, config: str | None) -> set[str] | None:
    """The splits the build's card lists for ``config`` (None when it has no such config)."""
    from fetal_bench.data.report import read_card_configs

    configs = read_card_configs(directory)
    files = configs.get(config or "default")
    if files is None and config is None and len(configs) == 1:
        files = next(iter(configs.values()))
    return None if files is None else set(files)

