"""The split a task is scored on: its rows, where they came from (a local build or the Hub), the
revision they match and their content fingerprint, which every result records.

The reference itself (labels, masks) is read from these rows by the task's kind
(``task.kind.ground_truth``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fetal_bench.data.catalog import CATALOG
from fetal_bench.errors import FetalBenchError
from fetal_bench.tasks.base import Task


@dataclass
class EvalData:
    dataset: object  # datasets.Dataset of the evaluation split
    source: str  # a Hub id, or "local:<directory name>" (never a machine's absolute path)
    revision: str
    fingerprint: str | None  # content fingerprint of the scored split(s)
    split: str
    notes: tuple[str, ...] = ()  # e.g. which split keeps a local build from matching a release


def _split_parts(split: str) -> list[str]:
    """``"train+test"`` -> ``["train", "test"]``: the splits a (combined) evaluation split reads."""
    return [part.strip() for part in split.split("+") if part.strip()]


def content_fingerprints(source, task: Task, split: str, revision: str | None = None, *,
                         opened=None) -> dict[str, str]:
    """Content fingerprint of each split that ``split`` combines, read from ``source``.

    A local build's come from the fingerprint cache when its files are unchanged
    (:func:`fetal_bench.data.fingerprint.local_split_fingerprint`); a Hub copy's are computed.
    ``opened``: ``split`` already opened from ``source`` (reused when it is a single split).
    """
    from fetal_bench.data.fingerprint import local_split_fingerprint, split_fingerprint
    from fetal_bench.data.opening import open_dataset

    parts = _split_parts(split)
    local = revision is None and Path(source).is_dir()
    out = {}
    for part in parts:
        dataset = opened if opened is not None and len(parts) == 1 else None
        if local:
            out[part] = local_split_fingerprint(source, config=task.dataset.config, split=part, dataset=dataset)
            continue
        if dataset is None:
            dataset = open_dataset(source, config=task.dataset.config, split=part, revision=revision)
        out[part] = split_fingerprint(dataset)
    return out


def scored_fingerprint(parts: dict[str, str]) -> str:
    """The fingerprint a result records: the split's own, or the combination of its parts."""
    from fetal_bench.data.fingerprint import combined_fingerprint

    return next(iter(parts.values())) if len(parts) == 1 else combined_fingerprint(parts)


def recognise(task: Task, parts: dict[str, str]) -> tuple[str | None, list[str]]:
    """The catalog revision whose pinned content ``parts`` match, or None and why not.

    Each scored split is compared with the task's pinned revision
    (:func:`fetal_bench.data.provenance.recognise_content`); a split that differs is named, so a
    user sees which part of their build is not the release.
    """
    from fetal_bench.data.provenance import recognise_content

    revision, differing = recognise_content(task.dataset.name, parts, revision=task.dataset.revision,
                                            config=task.dataset.config)
    if revision is None and differing:
        return None, [f"Not {task.dataset.name} {task.dataset.revision}: " + "; ".join(differing)
                      + ". Scored as revision 'local'; it ranks apart from release results."]
    return revision, []


def _local_revision(directory: Path, task: Task, split: str, opened=None) -> tuple[str, str, list[str]]:
    """(revision, fingerprint, notes) of a local build: the pinned revision when its content
    matches the catalog's pin (or, for an unpublished set without a pin, the phantom set, always:
    it is generated in-process), otherwise 'local'. ``opened``: the evaluation split, already opened."""
    parts = content_fingerprints(directory, task, split, opened=opened)
    fingerprint = scored_fingerprint(parts)
    catalog = CATALOG.get(task.dataset.name)
    if catalog is not None and catalog.hub_id is None and catalog.revision == task.dataset.revision \
            and catalog.pin(task.dataset.revision) is None:
        return task.dataset.revision, fingerprint, []
    revision, notes = recognise(task, parts)
    return revision or "local", fingerprint, notes


def local_source_name(path: Path) -> str:
    """How a result names a local build: its directory name only, so results travel between
    machines (the content fingerprint, not the path, says what was scored)."""
    return f"local:{path.resolve().name}"


def load_eval_data(task: Task, data: str | os.PathLike | None = None, split: str | None = None) -> EvalData:
    """The evaluation rows of ``task``: from ``data`` (a local build or a Hub id) or the catalog.

    Without ``data``, a published dataset is read from the Hub at the task's pinned revision
    (after a quick check that the Hub can be reached at all), and the phantom set is built once
    into the fetal-bench cache.
    """
    split = split or task.eval_split
    config = task.dataset.config
    if data is None:
        catalog = CATALOG.get(task.dataset.name)
        if catalog is not None and catalog.hub_id is None:
            if catalog.name != "phantom":
                raise FetalBenchError(f"Dataset {catalog.name!r} is not published.",
                                      f"Build it: fetal-bench datasets build {catalog.name} --raw RAW_DIR --out "
                                      f"data/{catalog.name}, then pass --data data/{catalog.name}.")
            from fetal_bench.data.builders import cached_simulated_build

            data = cached_simulated_build(catalog.name)
        else:
            hub_id = catalog.hub_id if catalog else task.dataset.name
            require_hub(hub_id, task.dataset.name, task.dataset.revision)
            return _hub_eval_data(task, task.dataset.name, hub_id, split)
    path = Path(data)
    if path.exists():
        from fetal_bench.data.opening import open_dataset  # no torch: scoring predictions needs none

        dataset = open_dataset(path, config=config, split=split)
        revision, fingerprint, notes = _local_revision(path, task, split, opened=dataset)
        return EvalData(dataset, local_source_name(path), revision, fingerprint, split, tuple(notes))
    require_hub(str(data), task.dataset.name, task.dataset.revision)
    return _hub_eval_data(task, str(data), str(data), split)


def _hub_eval_data(task: Task, source: str, hub_id: str, split: str) -> EvalData:
    """A Hub dataset at the task's revision; a release whose content is not its pin is noted."""
    from fetal_bench.data.opening import open_dataset

    revision = task.dataset.revision
    dataset = open_dataset(source, config=task.dataset.config, split=split, revision=revision)
    parts = content_fingerprints(source, task, split, revision=revision, opened=dataset)
    recognised, notes = recognise(task, parts)
    catalog = CATALOG.get(task.dataset.name)
    if recognised is None and catalog is not None and catalog.pin(revision) is not None:
        notes = [f"The Hub copy {hub_id}@{revision} does not match the catalog's pinned content: " + n for n in notes]
    return EvalData(dataset, hub_id, revision, scored_fingerprint(parts), split, tuple(notes))


HUB_PROBE_TIMEOUT_S = 3.0  # one TCP connect; the Hub's own retries take ~27 s to give up


def _hub_offline() -> bool:
    """Whether the Hub libraries will not go online: huggingface_hub's own answer, or datasets'
    (which also reads HF_DATASETS_OFFLINE)."""
    import datasets
    from huggingface_hub import is_offline_mode

    return is_offline_mode() or bool(datasets.config.HF_HUB_OFFLINE)


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cached(hub_id: str, revision: str | None) -> bool:
    """Whether the Hub cache holds ``hub_id`` at ``revision`` (its dataset card, which every
    load reads first): then offline loading can work. Asked of huggingface_hub
    (``try_to_load_from_cache``), which knows its cache's layout; ``HF_DATASETS_CACHE`` too, where
    datasets keeps Hub files when it is set."""
    from huggingface_hub import try_to_load_from_cache

    roots = [None] + ([os.environ["HF_DATASETS_CACHE"]] if os.environ.get("HF_DATASETS_CACHE") else [])
    return any(isinstance(try_to_load_from_cache(hub_id, "README.md", cache_dir=root, revision=revision,
                                                 repo_type="dataset"), str) for root in roots)


def require_hub(hub_id: str, name: str, revision: str | None = None) -> None:
    """Fail in seconds, with a command that works offline, when the Hub cannot serve ``hub_id``
    (at ``revision``)."""
    offline = _hub_offline()
    if offline and _cached(hub_id, revision):
        return  # datasets reads the cached copy without the network
    if not offline and _hub_reachable():
        return
    why = ("offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and it is not in the local cache"
           if offline else "the Hugging Face Hub cannot be reached (no network?)")
    known = name in CATALOG
    build = (f"fetal-bench datasets build {name} --raw raw/{name} --out data/{name}" if known
             else "fetal-bench datasets build NAME --raw RAW_DIR --out data/NAME")
    raise FetalBenchError(
        f"Dataset {hub_id!r} cannot be loaded: {why}.",
        f"Score a local build instead: {build} (raw/{name if known else 'NAME'}: the official files, "
        f"from `fetal-bench datasets download {name if known else 'NAME'} --to raw/{name if known else 'NAME'}` "
        f"or a browser), then pass --data data/{name if known else 'NAME'}.",
    )
