"""Open a built dataset (a local directory, a catalog name or a Hub id) as HF ``datasets``.

Kept apart from :mod:`fetal_bench.data.loading` (the torch ``DataLoader``), so that
``from fetal_bench import open_dataset`` imports no torch.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fetal_bench.errors import DataError, FetalBenchError

if TYPE_CHECKING:  # datasets is imported where used: it is slow to import
    import datasets

__all__ = ["open_dataset"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")




@contextlib.contextmanager
def _quiet_preparation(local: bool):
    """Without datasets' "Generating train split" bars while it copies a local build's Parquet
    rows into its Arrow cache (seconds, once per build): they are no progress a user waits for,
    and they leaked into the output of evaluate, the demo and the loader. Hub downloads keep
    their bars."""
    import datasets

    if not local or datasets.are_progress_bars_disabled():
        yield
        return
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        datasets.enable_progress_bars()


def open_dataset(
    source: str | os.PathLike,
    *,
    config: str | None = None,
    split: str | None = None,
    revision: str | None = None,
) -> datasets.Dataset | datasets.DatasetDict:
    """Load a built dataset from a local directory, the catalog or the Hub.

    Args:
        source: a local directory made by ``fetal-bench datasets build`` (a :class:`~pathlib.Path`
            is always taken as one; an existing directory wins over a catalog name of the same
            spelling, as in :func:`datasets.load_dataset`), a catalog name (``"hc18"``: its Hub
            id at its pinned revision), or any Hub dataset id (``"owner/name"``).
        config: the dataset config (e.g. ``"head"`` for the phantom set); required when a
            dataset has several and none is the default.
        split: a split name (``"train"``), or any split expression that
            :func:`datasets.load_dataset` accepts (``"train[:10%]"``). ``None`` returns every
            split as a :class:`datasets.DatasetDict`.
        revision: a Hub tag/branch/commit; overrides a catalog dataset's pinned revision.
            Meaningless for a local directory (an error there).

    Returns:
        A :class:`datasets.Dataset` when ``split`` is given, else a :class:`datasets.DatasetDict`.

    Raises:
        DataError: the directory is missing or is not a built dataset.
        FetalBenchError: unknown name, config or split; unpublished catalog dataset; the Hub is
            unreachable or offline mode is on and the dataset is not in the local cache.
    """
    import datasets  # deferred: importing datasets costs ~1 s, and the CLI's --help must be fast

    if split is not None:
        from fetal_bench.data.splits import parse_split

        parse_split(split)  # a malformed expression is a clear error, not datasets' ValueError
    path, resolved_revision, label = _resolve_source(source, config=config, revision=revision)
    # A local build gets an Arrow cache of its own content: datasets 5.2 keys a local folder's
    # cache so that a build rewritten in place (same README) is served from the old rows.
    local = {"cache_dir": _local_arrow_cache(Path(path))} if resolved_revision is None and Path(path).is_dir() else {}
    try:
        with _quiet_preparation(bool(local)):
            return datasets.load_dataset(path, config, split=split, revision=resolved_revision, **local)
    except ValueError as err:
        # Only in the error path: ask datasets which configs/splits exist, so the message can
        # list them.
        _explain_bad_config_or_split(path, label, config, split, resolved_revision, err)
        if split is not None:
            # Every split it names exists: the slice is what fails (`test[:0]` selects no row,
            # `test[5:2]` neither), which datasets reports as a bare ValueError.
            raise FetalBenchError(
                f"Split {split[:200]!r} of dataset {label} cannot be read: {str(err).splitlines()[0][:300]}",
                "A slice must select at least one row: e.g. test[:50%], test[10:20] or the whole split.",
            ) from None
        raise
    except FileNotFoundError as err:
        # A Hub id that looked valid but does not exist (or a gated/private repo) lands here.
        raise FetalBenchError(
            f"Dataset {label} was not found: {err}",
            "Check the spelling (and the revision); for a private or gated repo run "
            "`huggingface-cli login`; for a local directory pass its path.",
        ) from err
    except ConnectionError as err:
        from fetal_bench.data.catalog import CATALOG

        name = os.fspath(source) if os.fspath(source) in CATALOG else "NAME"
        raise _connection_error(label, name) from err


def _resolve_source(
    source: str | os.PathLike, *, config: str | None, revision: str | None
) -> tuple[str, str | None, str]:
    """Return (what to pass to load_dataset, revision, how to name it in messages)."""
    from fetal_bench.data.catalog import CATALOG

    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        _check_local_directory(path)
        if revision is not None:
            raise FetalBenchError(
                f"revision={revision!r} was given for the local directory {path}.",
                "A local directory is one fixed build: drop `revision`, or pass the Hub id to "
                "load that revision from the Hub.",
            )
        return str(path), None, f"directory {str(path)!r}"

    looks_like_path = (
        isinstance(source, os.PathLike)
        or path.is_absolute()
        or text.startswith((".", "~"))
        or text.endswith(("/", os.sep))
        or text.count("/") > 1  # a Hub id has exactly one slash
        or path.exists()  # a file where a directory was expected
    )
    if looks_like_path:
        if path.exists():
            raise DataError(
                f"{path} is a file, not a dataset directory.",
                "Pass the directory that holds README.md and the Parquet shards.",
            )
        raise DataError(
            f"Dataset directory {path} does not exist.",
            "Check the path, or build it with `fetal-bench datasets build NAME --out DIR`.",
        )

    if text in CATALOG:
        info = CATALOG[text]
        if not info.is_published:
            raise FetalBenchError(
                f"Catalog dataset {text!r} is not published on the Hub; it is built locally.",
                f"Run `fetal-bench datasets build {text} --out DIR`, then open DIR.",
            )
        if config is not None and config not in info.configs:
            raise FetalBenchError(
                f"Dataset {text!r} has no config {config!r}.",
                f"Use one of: {', '.join(info.configs)}.",
            )
        pinned = revision if revision is not None else info.revision
        return info.hub_id, pinned, f"{info.hub_id!r} (catalog {text!r}) at revision {pinned!r}"

    if _HUB_ID.match(text):
        return text, revision, f"{text!r}" + (f" at revision {revision!r}" if revision else "")

    known = ", ".join(sorted(CATALOG))
    raise FetalBenchError(
        f"{text!r} is neither an existing directory, a catalog dataset nor a Hub id.",
        f"Pass a built dataset directory, a catalog name ({known}) or a Hub id 'owner/name'.",
    )


def _local_arrow_cache(path: Path) -> str:
    """``datasets``' cache folder for the local build at ``path``, named after its files.

    The key covers every Parquet shard, the card and build_info.json by (relative path, size,
    modification time in ns): a rebuild in place rewrites them, so it gets a fresh Arrow copy
    instead of the previous build's rows. (Old copies stay in the HF cache until it is cleaned.)
    """
    import hashlib

    import datasets

    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*.parquet")) + [path / "README.md", path / "build_info.json"]
    for file in files:
        try:
            stat = file.stat()
        except FileNotFoundError:
            continue
        digest.update(f"{file.relative_to(path).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return str(Path(datasets.config.HF_DATASETS_CACHE) / "fetal-bench-local" / digest.hexdigest()[:16])


def _check_local_directory(path: Path) -> None:
    """A built dataset has a card (README.md with `configs:`) and Parquet shards."""
    has_card = (path / "README.md").is_file()
    has_parquet = next(path.rglob("*.parquet"), None) is not None
    if has_card and has_parquet:
        return
    missing = " and ".join(
        what for what, ok in (("README.md", has_card), ("Parquet shards", has_parquet)) if not ok
    )
    raise DataError(
        f"{path} is not a built fetal-bench dataset: it has no {missing}.",
        "Pass the directory `fetal-bench datasets build NAME --out DIR` wrote (it holds "
        "README.md with `configs:` and data/*.parquet), or rebuild it.",
    )


def _explain_bad_config_or_split(
    path: str, label: str, config: str | None, split: str | None, revision: str | None, err: Exception
) -> None:
    import datasets

    try:
        configs = datasets.get_dataset_config_names(path, revision=revision)
    except Exception:  # noqa: BLE001 - we are already in an error path; keep the original
        return
    if config is not None and config not in configs:
        raise FetalBenchError(
            f"Dataset {label} has no config {config!r}.", f"Use one of: {', '.join(configs)}."
        ) from err
    if config is None and len(configs) > 1 and "default" not in configs:
        raise FetalBenchError(
            f"Dataset {label} has several configs and none was chosen.",
            f"Pass config= one of: {', '.join(configs)}.",
        ) from err
    if split is None:
        return
    try:
        splits = datasets.get_dataset_split_names(path, config, revision=revision)
    except Exception:  # noqa: BLE001
        return
    from fetal_bench.data.splits import split_names

    asked = split_names(split)  # an expression may combine and slice splits ("train[:10%]+validation")
    unknown = [name for name in asked if name not in splits]
    if unknown:
        where = f" (config {config!r})" if config else ""
        raise FetalBenchError(
            f"Dataset {label}{where} has no split {unknown[0]!r}.",
            f"Use one of: {', '.join(splits)}.",
        ) from err


def _connection_error(label: str, catalog_name: str) -> FetalBenchError:
    from huggingface_hub import constants

    offline = bool(getattr(constants, "HF_HUB_OFFLINE", False)) or os.environ.get(
        "HF_DATASETS_OFFLINE", ""
    ).upper() in {"1", "ON", "YES", "TRUE"}
    if offline:
        return FetalBenchError(
            f"Dataset {label} is not in the local Hugging Face cache, and offline mode is on "
            "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE).",
            "Load it once with network access (unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE), "
            f"or build it locally with `fetal-bench datasets build {catalog_name} --out DIR` and pass DIR.",
        )
    return FetalBenchError(
        f"Could not reach the Hugging Face Hub to load dataset {label}.",
        "Check the network/proxy (HF_ENDPOINT), or build the dataset locally with "
        f"`fetal-bench datasets build {catalog_name} --out DIR` and pass DIR.",
    )
