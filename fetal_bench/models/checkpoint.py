"""Checkpoints: the one module that knows their file layout, on disk and on the Hub.

A checkpoint is a directory, or a Hugging Face Hub model repository with the same files, in
the layout of ``huggingface_hub.PyTorchModelHubMixin`` (``config.json`` + weights + a model card
``README.md``), so ``push_to_hub`` publishes it as it is and ``from_pretrained`` reads it back:

``model.safetensors`` (``weights: "full"``)
    every tensor of the model, written by :func:`safetensors.torch.save_model` (which copes with
    the tied tensors of transformers' SAM).
``adapter_model.safetensors`` + ``adapter_config.json`` (``weights: "adapter"``)
    a LoRA model whose frozen base comes from a registered source (torchvision's ImageNet
    ViT-B/16, the user's FetalCLIP file): only what training changed, the LoRA tensors and the
    head, in PEFT's own format (``PeftModel.save_pretrained``'s key names, the head listed in
    ``modules_to_save``). ``config.json`` then names the base and the sha256 of its tensors;
    loading rebuilds the base from its source, checks that hash and applies the adapter. The
    base weights are never copied: a vit_lora checkpoint is 4.7 MB instead of 346 MB, and a
    fetalclip_lora one does not redistribute FetalCLIP's non-commercial weights.

``config.json``::

    {"model": "unet",                      # registry name
     "cfg": {...},                         # builder options that rebuild the structure
     "spec": {...},                        # ModelSpec (what the harness reads)
     "training": {...}, "run_name": "...", # what the training run recorded
     "weights": {"kind": "full"|"adapter", "base": {...} | null},
     "format_version": 2, "fetal_bench_version": "..."}

Format 1 (fetal-bench before adapters) is format 2 without ``weights``: always full, and it
keeps loading. A newer format, or a directory that is not a fetal-bench checkpoint, is a
:class:`~fetal_bench.errors.FetalBenchError` naming the problem.

This module reads and writes files and loads tensors into a model it is given; building the
model is :mod:`fetal_bench.models.builder`'s job (it imports this module, never the reverse).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from fetal_bench._io import UnreadableFile, atomic_file, load_json, read_json_file, sha256_tensors, write_json_atomic
from fetal_bench.errors import FetalBenchError
from fetal_bench.models.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["ADAPTER_CONFIG_NAME", "ADAPTER_WEIGHTS_NAME", "CONFIG_NAME", "FORMAT_VERSION", "WEIGHTS_NAME", "Checkpoint",
           "adapter_base", "base_sha256", "checkpoint_config", "is_checkpoint_directory", "is_checkpoint_reference",
           "is_repo_reference", "load_weights", "model_card", "model_card_text", "portable_reference", "push_checkpoint", "read_checkpoint",
           "restore_weights", "save_checkpoint", "update_training_info", "write_weights"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"  # PEFT's names
ADAPTER_CONFIG_NAME = "adapter_config.json"
CARD_NAME = "README.md"
#: Builder options that only mean something on this machine (the path of the user's own FetalCLIP
#: file): beside the checkpoint, hidden, never in config.json nor uploaded (not in _FILES).
LOCAL_OPTIONS_NAME = ".fetal-bench-local.json"
FORMAT_VERSION = 2
#: PEFT prefixes every key of a saved adapter with the PeftModel's path to the wrapped model.
PEFT_PREFIX = "base_model.model."
_MAX_CONFIG_BYTES = 16 << 20  # a config.json is a few KB; FetalCLIP's architecture adds little
_FILES = (WEIGHTS_NAME, ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME, CONFIG_NAME, CARD_NAME)
# org/name[@revision] as the Hub spells repository ids (huggingface_hub validates them again).
_REPO_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96})(?:@(?P<revision>[\w./-]{1,200}))?$")


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint says about itself (``config.json``), and where its files are.

    ``source`` is what the user gave (a path, or ``org/name``), ``revision`` the Hub commit its
    files came from (None for a local directory), ``directory`` the local files (the Hub cache's
    snapshot for a repository).
    """

    model: str
    cfg: dict[str, Any]
    spec: ModelSpec | None
    training: dict[str, Any]
    run_name: str | None
    weights: str
    base: dict[str, Any] | None
    format_version: int
    fetal_bench_version: str | None
    directory: Path
    source: str
    revision: str | None = None
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    local_options: dict[str, Any] = field(default_factory=dict)  # LOCAL_OPTIONS_NAME of a local directory

    @property
    def weights_files(self) -> tuple[Path, ...]:
        names = (WEIGHTS_NAME,) if self.weights == "full" else (ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME)
        return tuple(self.directory / name for name in names)

    @property
    def reference(self) -> str:
        """``org/name@commit`` for a Hub checkpoint, the directory's name for a local one (an
        absolute path means nothing on another machine)."""
        return f"{self.source}@{self.revision}" if self.revision else Path(self.source).name


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


#: The keywords of :func:`huggingface_hub.snapshot_download` that a checkpoint download passes on
#: (``PyTorchModelHubMixin.from_pretrained`` takes the same ones).
DOWNLOAD_OPTIONS = ("token", "cache_dir", "force_download", "local_files_only")


def read_checkpoint(reference: str | os.PathLike, revision: str | None = None, *,
                    download: dict[str, Any] | None = None) -> Checkpoint:
    """The checkpoint at ``reference``: a local directory, or a Hub repository ``org/name`` (or
    ``org/name@revision``; ``revision`` overrides). Hub files come through
    :func:`huggingface_hub.snapshot_download`, so ``HF_HUB_OFFLINE=1`` reads the local Hub cache
    only. ``download``: its keywords (:data:`DOWNLOAD_OPTIONS`: ``token``, ``cache_dir``,
    ``force_download``, ``local_files_only``)."""
    unknown = sorted(set(download or {}) - set(DOWNLOAD_OPTIONS))
    if unknown:
        raise TypeError(f"unknown download option(s) {unknown}; known: {list(DOWNLOAD_OPTIONS)}")
    directory, source, commit = _resolve(reference, revision, download or {})
    config = _read_config(directory)
    version = config.get("format_version", 1)
    if not isinstance(version, int) or version < 1:
        raise FetalBenchError(f"{directory / CONFIG_NAME} has format_version {version!r}.", "Re-create the checkpoint.")
    if version > FORMAT_VERSION:
        raise FetalBenchError(
            f"Checkpoint {source} has format version {version}; this fetal-bench reads up to {FORMAT_VERSION}.",
            "Upgrade fetal-bench (pip install -U fetal-bench) to load it.")
    weights = config.get("weights") or {"kind": "full", "base": None}  # format 1: always full
    kind = weights.get("kind") if isinstance(weights, dict) else None
    if kind not in ("full", "adapter") or (kind == "adapter" and not isinstance(weights.get("base"), dict)):
        raise FetalBenchError(f"{directory / CONFIG_NAME} has an unknown 'weights' entry {weights!r:.200}.",
                              "Re-create the checkpoint with `fetal-bench train`.")
    checkpoint = Checkpoint(
        model=config["model"], cfg=config.get("cfg") or {}, spec=_spec(config, directory),
        training=config["training"] if isinstance(config.get("training"), dict) else {},
        run_name=config["run_name"] if isinstance(config.get("run_name"), str) else None,
        weights=kind, base=weights.get("base") if kind == "adapter" else None, format_version=version,
        fetal_bench_version=config.get("fetal_bench_version"), directory=directory, source=source, revision=commit,
        config=config, local_options=_local_options(directory) if commit is None and kind == "adapter" else {})
    missing = [path.name for path in checkpoint.weights_files if not path.is_file()]
    if missing:
        raise FetalBenchError(f"Checkpoint {source} lacks {', '.join(missing)} (its config.json says "
                              f"{kind} weights).", "Copy or download the whole checkpoint directory.")
    return checkpoint


def is_checkpoint_directory(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a checkpoint's config (e.g. a training run that has saved one)."""
    return (Path(directory) / CONFIG_NAME).is_file()


def is_checkpoint_reference(reference: str | os.PathLike) -> bool:
    """Whether ``reference`` names a checkpoint (a directory or a Hub repository id) rather than
    a published weights file; reading it may still fail."""
    return Path(reference).is_dir() or is_repo_reference(reference)


def portable_reference(reference: str | os.PathLike | None) -> str | None:
    """How a record names a checkpoint another machine can read: a Hub repository id as given
    (``org/name[@revision]``), a local directory as ``local:<its name>`` (never its path)."""
    if reference is None:
        return None
    return os.fspath(reference) if is_repo_reference(reference) else f"local:{Path(reference).resolve().name}"


def is_repo_reference(reference: str | os.PathLike) -> bool:
    """True for ``org/name`` or ``org/name@revision`` that is not an existing local path."""
    text = os.fspath(reference)
    return not Path(text).exists() and _REPO_REF.match(text) is not None


def _resolve(reference: str | os.PathLike, revision: str | None,
             download: dict[str, Any]) -> tuple[Path, str, str | None]:
    path = Path(reference)
    if path.is_dir():
        if revision is not None:
            raise FetalBenchError(f"A revision ({revision}) was given for the local directory {path}.",
                                  "Drop the revision, or pass a Hub repository id (org/name).")
        return path, os.fspath(reference), None
    if path.exists():
        raise FetalBenchError(f"Checkpoint {path} is a file, not a checkpoint directory.",
                              "Pass the --output directory of `fetal-bench train`, or a Hub repository id.")
    match = _REPO_REF.match(os.fspath(reference))
    if match is None:
        raise FetalBenchError(f"Checkpoint {os.fspath(reference)[:200]!r} does not exist.",
                              "Pass a checkpoint directory, a weights file, or a Hub repository id org/name[@revision].")
    revision = revision or match["revision"]
    if revision is not None:
        _check_revision(revision)
    return _download(match["repo"], revision, download)


def _check_revision(revision: str) -> None:
    """A branch, tag or commit as git spells them: no ``..``, no empty or hidden component.

    ``org/name@../../x`` passed the id pattern and reached the Hub client, whose error then read
    "check the network".
    """
    parts = revision.split("/")
    if ".." in revision or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts):
        raise FetalBenchError(f"{revision[:200]!r} is not a valid Hub revision (a branch, tag or commit).",
                              "Pass org/name@main, a tag such as org/name@v1, or a commit hash.")


def _download(repo_id: str, revision: str | None, download: dict[str, Any]) -> tuple[Path, str, str | None]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        # Only checkpoint files: a repository may hold other things (results, images).
        local = Path(snapshot_download(repo_id, revision=revision, repo_type="model", allow_patterns=list(_FILES),
                                       **download))
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise FetalBenchError(f"{repo_id} is not a local directory, and no Hub repository of that name is accessible "
                              f"({type(err).__name__}).",
                              "Check the path or the id; log in (hf auth login) for a private repository.") from None
    except RevisionNotFoundError:
        raise FetalBenchError(f"Hub repository {repo_id} has no revision {revision!r}.",
                              "Pass a branch, tag or commit that exists (org/name@revision).") from None
    except LocalEntryNotFoundError:
        raise FetalBenchError(f"Checkpoint {where} is not a local directory, and not in the local Hub cache while the "
                              "Hub cannot be reached (offline, HF_HUB_OFFLINE=1, local_files_only, or no network).",
                              f"Download it once online (hf download {repo_id}), or unset HF_HUB_OFFLINE.") from None
    except HFValidationError as err:
        raise FetalBenchError(f"{where!r} is not a valid Hub repository id or revision: {err}",
                              "Pass org/name or org/name@revision.") from None
    except (HfHubHTTPError, OSError) as err:  # the Hub answered with an error, or the network failed
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise FetalBenchError(f"Could not download checkpoint {where}: {first}", "Check the network and retry.") from None
    return local, repo_id, local.name  # snapshots/<commit>: the exact files read


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.exists():
        weights = [name for name in (WEIGHTS_NAME, ADAPTER_WEIGHTS_NAME) if (directory / name).is_file()]
        raise FetalBenchError(f"{directory} is not a fetal-bench checkpoint: it has no {CONFIG_NAME}"
                              + (f" next to {weights[0]}." if weights else "."),
                              "Pass the --output directory of `fetal-bench train`, or a published weights file.")
    try:
        # Bounded: size, nesting depth (a 200 kB [[[...]]] was a RecursionError), integer length.
        config = read_json_file(path, max_bytes=_MAX_CONFIG_BYTES)
    except UnreadableFile as err:
        raise FetalBenchError(f"{path} {err.reason}.", "Re-create the checkpoint.") from None
    except ValueError as err:
        raise FetalBenchError(f"{path} cannot be read: {err}.", "Re-create the checkpoint.") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str) or not isinstance(config.get("cfg", {}), dict):
        raise FetalBenchError(f"{path} lacks the 'model'/'cfg' entries of a fetal-bench checkpoint (a config.json "
                              "of another library?).", "Pass a checkpoint written by fetal-bench (`fetal-bench train`).")
    return config


def _local_options(directory: Path) -> dict[str, Any]:
    try:
        options = read_json_file(directory / LOCAL_OPTIONS_NAME, max_bytes=1 << 16)
    except (UnreadableFile, ValueError):
        return {}  # a hint only: without it the base is looked for as on any other machine
    return options if isinstance(options, dict) else {}


def _spec(config: dict[str, Any], directory: Path) -> ModelSpec | None:
    if not isinstance(config.get("spec"), dict):
        return None
    try:
        return ModelSpec.from_dict(config["spec"])
    except (TypeError, ValueError) as err:
        raise FetalBenchError(f"{directory / CONFIG_NAME} has an invalid 'spec': {err}", "Re-create the checkpoint.") from None


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def adapter_base(model: torch.nn.Module) -> dict[str, Any] | None:
    """The base reference ``model`` is saved against, or None to save it whole.

    A LoRA model's ``base_reference()`` names the registered source its frozen base was built
    from (None for a random base) and ``base_source_sha256`` the hash of the base as built. The
    base must still be that one: weights loaded since (a full checkpoint, a resumed run's
    snapshot) may have replaced it, and then no source rebuilds it.
    """
    bare = _unwrap(model)
    reference = bare.base_reference() if callable(getattr(bare, "base_reference", None)) else None
    if reference is None:
        return None
    current = base_sha256(bare)
    return {**reference, "sha256": current} if current == bare.base_source_sha256 else None


def checkpoint_config(model: torch.nn.Module, *, training: dict[str, Any] | None = None,
                      run_name: str | None = None) -> dict[str, Any]:
    """The ``config.json`` content for ``model`` (see the module docstring)."""
    from fetal_bench import __version__

    bare = _unwrap(model)
    base = adapter_base(bare)
    if base is not None:
        base.pop("local_options", None)  # this machine's paths: see save_checkpoint
    weights = {"kind": "full" if base is None else "adapter", "base": base}
    return {
        "model": bare.model_name,
        "cfg": _jsonable(bare.model_cfg),
        "spec": _jsonable(bare.spec.to_dict()),
        "training": _jsonable(training or {}),
        "run_name": run_name,
        "weights": _jsonable(weights),
        "format_version": FORMAT_VERSION,
        "fetal_bench_version": __version__,
    }


def save_checkpoint(model: torch.nn.Module, directory: str | os.PathLike, *, training: dict[str, Any] | None = None,
                    run_name: str | None = None) -> Path:
    """Write ``model`` (made by :func:`~fetal_bench.models.create_model`) as a checkpoint directory,
    through its ``save_pretrained`` (``huggingface_hub.PyTorchModelHubMixin``).

    The files are written into a temporary folder inside ``directory`` and moved into place one
    by one, weights first, so a reader never sees a ``config.json`` that describes weights not yet
    written; other files in ``directory`` (a training run's logs) are left alone.
    """
    bare = _unwrap(model)
    if not hasattr(bare, "model_name") or not hasattr(bare, "save_pretrained"):
        raise FetalBenchError("This model was not made by fetal_bench.models.create_model.",
                              "Create it with create_model(NAME, ...) so that it can be rebuilt from its config.")
    from fetal_bench._io import exclusive_lock

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(directory):  # one writer; what a killed writer left is cleaned under the lock
        _remove_stale_staging(directory)
        return _save(bare, directory, training=training, run_name=run_name)


def _remove_stale_staging(directory: Path) -> None:
    """Delete the staging folders (``.checkpoint-*.tmp``, a full copy of the weights each) that a
    save killed before its end left behind; only called under the checkpoint's lock, so none of
    them belongs to a save in progress."""
    for stale in directory.glob(".checkpoint-*.tmp"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _save(bare, directory: Path, *, training, run_name) -> Path:
    config = checkpoint_config(bare, training=training, run_name=run_name)
    staging = Path(_mkdtemp(directory))
    try:
        bare.save_pretrained(staging, config=config, model_card_kwargs={"checkpoint_config": config})
        written = [name for name in _FILES if (staging / name).is_file()]
        # The old card goes first: a save killed between the moves below leaves no card rather
        # than one describing the previous config (push writes a missing card from config.json).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / CARD_NAME)
        for name in written:  # _FILES lists weights before config.json and the card
            os.chmod(staging / name, 0o644)
            os.replace(staging / name, directory / name)
        for stale in set(_FILES) - set(written):  # e.g. a full model.safetensors of an earlier save
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / stale)
        local = (bare.base_reference() or {}).get("local_options") if config["weights"]["kind"] == "adapter" else None
        if local:
            write_json_atomic(directory / LOCAL_OPTIONS_NAME, _jsonable(local))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / LOCAL_OPTIONS_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _mkdtemp(directory: Path) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=".checkpoint-", suffix=".tmp", dir=directory)


def write_weights(model: torch.nn.Module, directory: Path, config: dict[str, Any] | None = None) -> None:
    """The weight files of ``model`` in ``directory`` (``PyTorchModelHubMixin._save_pretrained``),
    of the kind ``config`` (:func:`checkpoint_config`) says."""
    from safetensors.torch import save_file, save_model

    bare = _unwrap(model)
    kind = (config if config is not None else checkpoint_config(bare))["weights"]["kind"]
    if kind == "full":
        save_model(bare, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "model": bare.model_name})
        return
    tensors = {PEFT_PREFIX + key: tensor.detach().contiguous() for key, tensor in _adapter_state(bare).items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt", "model": bare.model_name})
    write_json_atomic(directory / ADAPTER_CONFIG_NAME, _adapter_config(bare))


def update_training_info(directory: str | os.PathLike, training: dict[str, Any]) -> None:
    """Replace the ``training`` block of a checkpoint's ``config.json`` (and its model card);
    the weights are not touched."""
    directory = Path(directory)
    config = _read_config(directory)
    config["training"] = _jsonable(training)
    write_json_atomic(directory / CONFIG_NAME, config)
    if (directory / CARD_NAME).is_file():
        write_text_atomic(directory / CARD_NAME, model_card_text(config))


_FETAL_BENCH_URL = "https://github.com/fetal-bench/fetal-bench"  # a model-index source needs a URL
#: The Hub's pipeline tag of each task type.
PIPELINE_TAGS = {"classification": "image-classification", "segmentation": "image-segmentation"}


def model_card(config: dict[str, Any], *, repo_id: str | None = None, results: Sequence[dict[str, Any]] = (),
               license: str | None = None):
    """The model card (``README.md``) of a checkpoint, as a :class:`huggingface_hub.ModelCard`.

    Its YAML (``ModelCardData``) holds the licence, the training datasets, the pipeline tag, the
    base model where it is a Hub repository, and a ``model-index`` with the scores of
    ``results`` (fetal-bench result files of this checkpoint, values copied exactly); its body
    says what the model is, what its weights file holds (for an adapter: the base and the
    wrapper it expects, as calls that load them), how it was trained, and how to load it from
    ``repo_id`` (the Hub repository it is published to; a local directory otherwise). Every
    value from ``config`` is cut to one bounded, Markdown-inert line.

    ``license``: a Hub licence id; by default the training dataset's licence (weights derived
    from non-commercial data stay non-commercial), "other" for an adapter on a non-commercial base.
    """
    from huggingface_hub import ModelCard, ModelCardData

    spec, training = config.get("spec") or {}, config.get("training") or {}
    weights = config.get("weights") or {"kind": "full"}
    base = (weights.get("base") or {}) if weights.get("kind") == "adapter" else {}
    name = _line(config.get("run_name") or config.get("model"))
    task_type = _line(spec.get("task_type"))
    trained_on = _training_datasets(training)
    licence = license or _default_license(trained_on, base)
    fetal_bench = {"model": _line(config.get("model")), "weights": _line(weights.get("kind"))}
    if base:
        fetal_bench.update({"adapter_base": _line(base.get("identifier") or base.get("name"), 300),
                            "adapter_wrapper": _wrapper_identifier(config)})
    data = ModelCardData(
        library_name="fetal-bench", license=licence,
        license_name="non-commercial-base-weights" if licence == "other" and base.get("license") else None,
        pipeline_tag=PIPELINE_TAGS.get(task_type),
        datasets=sorted({hub for hub, _ in trained_on} | {_dataset_id(r) for r in results}) or None,
        base_model=_hub_base(training),
        tags=sorted({"fetal-bench", "fetal-ultrasound", "model_hub_mixin", "pytorch_model_hub_mixin", task_type} - {""}),
        model_name=name if results else None,
        eval_results=[entry for result in results for entry in _eval_results(result, task_type)] or None,
        fetal_bench=fetal_bench,
    )
    where = repo_id or "path/to/this/checkpoint"
    lines = [f"# {name}", "",
             f"A fetal-bench `{_line(config.get('model'))}` model ({task_type}; labels "
             f"{', '.join(_line(label, 40) for label in (spec.get('labels') or [])[:50])}; input "
             f"{'x'.join(_line(v, 8) for v in spec.get('image_size') or [])}, {_line(spec.get('channels'))} channel(s)).", ""]
    lines += _weights_lines(config, weights, base, where)
    lines += _training_lines(training, trained_on)
    lines += _results_lines(results)
    task = _line(training.get("task") or (results[0].get("task") if results else None) or "TASK")
    lines += ["## Use", "", "```python", "from fetal_bench.models import load_checkpoint", "",
              f'model, checkpoint = load_checkpoint("{_line(where)}")'
              + ("  # pin a commit: add revision=..." if repo_id else ""),
              "", "# or the huggingface_hub way (revision=, token=, cache_dir=, map_location=, ...):",
              "from fetal_bench.models.hub import FetalBenchModel", "",
              f'model = FetalBenchModel.from_pretrained("{_line(where)}")', "```", "", "```bash",
              f"fetal-bench evaluate --task {task} --model {_line(config.get('model'))} --checkpoint {_line(where)} "
              "--output results/", "```", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def model_card_text(config: dict[str, Any], **kwargs: Any) -> str:
    """:func:`model_card` as the text of ``README.md``."""
    return str(model_card(config, **kwargs))


def _training_datasets(training: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(Hub id or name, licence) of each dataset the training record names."""
    from fetal_bench.data.catalog import CATALOG

    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    out = []
    for entry in (data.get("data"), data.get("synthetic")):
        if isinstance(entry, dict) and isinstance(entry.get("dataset"), str):
            info = CATALOG.get(entry["dataset"])
            out.append((_line(info.hub_id if info is not None and info.hub_id else entry["dataset"], 100),
                        info.license if info is not None else None))
    return out


def _default_license(trained_on: list[tuple[str, str | None]], base: dict[str, Any]) -> str:
    licences = {licence for _, licence in trained_on if licence and licence != "unknown"}
    if base.get("license"):  # a non-commercial base (FetalCLIP): its own terms, named in the body
        return "other"
    non_commercial = sorted(licence for licence in licences if "-nc" in licence)
    if non_commercial:
        return non_commercial[0]
    # One licence: the data's. None known (an untrained save) or several: the Hub's "unknown",
    # until the publisher says (`models push --license`).
    return sorted(licences)[0] if len(licences) == 1 else "unknown"


def _hub_base(training: dict[str, Any]) -> str | None:
    """The checkpoint training started from, where it is a Hub repository (``--init-from org/name``)."""
    init = training.get("init_from")
    return init.split("@")[0] if isinstance(init, str) and _REPO_REF.match(init) and not os.path.isabs(init) else None


def _wrapper_identifier(config: dict[str, Any]) -> str:
    """The call that builds the network an adapter applies to, without adapters (PEFT's base):
    the recorded builder options with the base's source options (``pretrained=True``); files of
    the user's own (FetalCLIP's) are not named."""
    base = (config.get("weights") or {}).get("base") or {}
    options = base.get("options") if isinstance(base.get("options"), dict) else {}
    cfg = {key: value for key, value in {**(config.get("cfg") or {}), **options}.items()
           if key not in ("weights", "config") and not key.startswith("lora_")}
    # Lists as tuples: a call that reads the same, and survives _line (which drops brackets).
    arguments = ", ".join([repr(str(config.get("model")))] + [f"{key}={tuple(value) if isinstance(value, list) else value!r}"
                                                              for key, value in sorted(cfg.items())])
    return _line(f"fetal_bench.models.lora.peft_base_model({arguments})", 500)


def _dataset_id(result: dict[str, Any]) -> str:
    from fetal_bench.data.catalog import CATALOG

    dataset = result.get("dataset") or {}
    info = CATALOG.get(str(dataset.get("name")))
    return _line(info.hub_id if info is not None and info.hub_id else dataset.get("name"), 100)


def _eval_results(result: dict[str, Any], task_type: str) -> list:
    """One ``EvalResult`` per scored metric of a fetal-bench result file (value exactly the file's)."""
    from huggingface_hub import EvalResult

    dataset = result.get("dataset") or {}
    scores = result.get("scores") or {}
    out = []
    for metric, entry in scores.items():
        if metric == "main_score" or not isinstance(entry, dict) or entry.get("value") is None:
            continue
        out.append(EvalResult(
            task_type=PIPELINE_TAGS.get(task_type, "other"), task_name=_line(result.get("task"), 100),
            dataset_type=_dataset_id(result), dataset_name=_line(f"{dataset.get('name')} ({result.get('task')})", 200),
            dataset_config=_line(dataset.get("config"), 100) or None, dataset_split=_line(dataset.get("split"), 100) or None,
            dataset_revision=_line(dataset.get("revision"), 100) or None,
            metric_type=_line(metric, 100), metric_name=_line(metric, 100), metric_value=entry["value"],
            source_name="fetal-bench", source_url=_FETAL_BENCH_URL, verified=False))
    return out


def _weights_lines(config: dict[str, Any], weights: dict[str, Any], base: dict[str, Any], where: str) -> list[str]:
    if weights.get("kind") != "adapter":
        return [f"Weights: every tensor, in `{WEIGHTS_NAME}`.", ""]
    lines = [f"Weights: a LoRA adapter and head only (`{ADAPTER_WEIGHTS_NAME}`, PEFT format). The frozen base, "
             f"{_line(base.get('name'))} (`{_line(base.get('file'))}`), is not included: fetal-bench rebuilds it "
             f"from its source and checks the sha256 of its tensors (`{_line(base.get('sha256'), 64)}`).", ""]
    if base.get("license"):
        lines += [f"Base weights licence: {_line(base.get('license'))}.", ""]
    lines += ["### The base and the wrapper the adapter expects", "",
              f"- base: `{_line(base.get('identifier') or base.get('name'), 300)}`",
              f"- wrapper: `{_wrapper_identifier(config)}`: that base as fetal-bench wraps it (`encoder` = the "
              "network without its head, `head` = the classification head), with no adapter; the adapter's keys "
              f"start with `{PEFT_PREFIX}encoder.` and its `modules_to_save` is the head.", "",
              "PEFT alone applies it to that wrapper (not to a bare torchvision or open_clip network, whose module "
              "names differ: PEFT would only warn about missing adapter keys):", "", "```python",
              "from peft import PeftModel", "", f"base = {_wrapper_identifier(config)}",
              f'model = PeftModel.from_pretrained(base, "{_line(where)}")', "```", ""]
    return lines


def _training_lines(training: dict[str, Any], trained_on: list[tuple[str, str | None]]) -> list[str]:
    if not training:
        return []
    best = training.get("best_metric") if isinstance(training.get("best_metric"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    record = data.get("data") if isinstance(data.get("data"), dict) else {}
    lines = ["## Training", "", f"- task: `{_line(training.get('task'))}`",
             f"- training data: {_line(training.get('training_data'))} (synthetic share "
             f"{_line(training.get('synthetic_share'))})"]
    if record:
        lines.append(f"- dataset: `{_line(record.get('dataset'))}` revision `{_line(record.get('revision'))}`, "
                     f"content fingerprint `{_line(record.get('fingerprint'), 64)}`")
    if best:
        lines.append(f"- best validation {_line(best.get('name'))}: {_line(best.get('value'))}")
    return lines + [""]


def _results_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    if not results:
        return []
    lines = ["## Evaluation", "", "Scores from fetal-bench result files (the `model-index` above holds the same values):",
             "", "| task | dataset @ revision [split] | metric | value | 95% CI |", "|---|---|---|---|---|"]
    for result in results:
        dataset = result.get("dataset") or {}
        for metric, entry in (result.get("scores") or {}).items():
            if metric == "main_score" or not isinstance(entry, dict) or entry.get("value") is None:
                continue
            ci = entry.get("ci95") or [None, None]
            lines.append(f"| {_line(result.get('task'), 60)} | {_line(dataset.get('name'), 60)} @ "
                         f"{_line(dataset.get('revision'), 40)} [{_line(dataset.get('split'), 40)}] | "
                         f"{_line(metric, 60)} | {entry['value']!r} | {_line(ci[0])} – {_line(ci[1])} |")
    return lines + [""]


def _line(value: Any, limit: int = 200) -> str:
    """One Markdown-inert line of at most ``limit`` characters."""
    text = " ".join(str("" if value is None else value).split())[:limit]
    return re.sub(r"[`<>\[\]]", "", text)  # no code-span breaks, HTML or links


def push_checkpoint(directory: str | os.PathLike, repo_id: str, *, tag: str | None = None, private: bool = False,
                    token: str | None = None, api=None, results: Sequence[dict[str, Any]] = (),
                    license: str | None = None) -> tuple[str, str]:
    """Upload the checkpoint files of ``directory`` (a training run's logs, curves and snapshots
    stay behind) to the Hub model repository ``repo_id`` in one commit, optionally tagged.

    The model card is written again first (into ``directory`` too, so the local copy says what
    was published): its usage names ``repo_id``, its ``model-index`` holds the scores of
    ``results`` (result files of this checkpoint, already read and checked by the caller),
    ``license`` overrides the default licence (see :func:`model_card`).

    Weight files of the other kind (a ``model.safetensors`` left from an earlier full push) are
    deleted in the same commit. A tag that exists is refused: a published revision never moves.
    ``api``: a :class:`huggingface_hub.HfApi` (made when omitted). Returns (commit, commit URL).
    """
    checkpoint = read_checkpoint(directory)
    if checkpoint.revision is not None or not _REPO_REF.match(repo_id) or "@" in repo_id:
        raise FetalBenchError(f"Push needs a local checkpoint directory and a repository id OWNER/NAME "
                              f"(got {os.fspath(directory)!r:.100} and {repo_id!r:.100}).",
                              "Pass e.g. runs/unet --repo-id my-org/fetal-unet.")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    for path in checkpoint.weights_files:
        if path.suffix == ".safetensors":
            check_safetensors(path)  # a truncated file is never published
    write_text_atomic(checkpoint.directory / CARD_NAME,
                      model_card_text(checkpoint.config, repo_id=repo_id, results=results, license=license))
    files = [p.name for p in (*checkpoint.weights_files, checkpoint.directory / CONFIG_NAME,
                              checkpoint.directory / CARD_NAME) if p.is_file()]
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if tag is not None and tag in {ref.name for ref in api.list_repo_refs(repo_id, repo_type="model").tags}:
            raise FetalBenchError(f"Tag {tag} already exists on {repo_id}; a published revision must never change.",
                                  "Use a new tag.")
        commit = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(checkpoint.directory),
                                   allow_patterns=files, delete_patterns=sorted(set(_FILES) - set(files)),
                                   commit_message=f"fetal-bench: {checkpoint.model} checkpoint"
                                                  + (f" {tag}" if tag else ""))
        if tag is not None:
            api.create_tag(repo_id, tag=tag, revision=commit.oid, repo_type="model")
    except FetalBenchError:
        raise
    except Exception as error:  # the Hub client raises many types; all mean "push failed"
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise FetalBenchError(f"Pushing {checkpoint.directory} to {repo_id} failed: {type(error).__name__}: {first}",
                              "Check your token (`hf auth login` or HF_TOKEN), write access and the network "
                              "(HF_HUB_OFFLINE must be unset).") from error
    return commit.oid, str(commit.commit_url)


_SAFETENSORS_HEADER_MAX = 100 * 1024 * 1024  # the format's own limit on its JSON header


def check_safetensors(path: str | os.PathLike) -> None:
    """Raise :class:`FetalBenchError` unless ``path`` is a complete safetensors file: a regular
    file whose JSON header (bounded) lists tensors whose byte ranges tile the data that follows
    it exactly, to the file's last byte. A truncated or padded file fails; nothing is loaded."""
    import stat

    path = Path(path)
    fix = "Save the checkpoint again (a killed or interrupted save, or a partial copy, leaves such a file)."
    try:
        with open(path, "rb", buffering=0) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FetalBenchError(f"{path} is not a regular file.", fix)
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < length <= min(_SAFETENSORS_HEADER_MAX, info.st_size - 8):
                raise FetalBenchError(f"{path} is not a complete safetensors file (its header is cut off).", fix)
            header = load_json(handle.read(length), max_depth=8)
    except OSError as error:
        raise FetalBenchError(f"{path} cannot be read ({error.strerror or error}).", fix) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise FetalBenchError(f"{path} is not a safetensors file: its header {str(error)[:200]}.", fix) from None
    spans = []
    for name, entry in (header.items() if isinstance(header, dict) else []):
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise FetalBenchError(f"{path} is not a safetensors file: tensor {str(name)[:100]!r} has no valid offsets.",
                                  fix)
        spans.append(tuple(offsets))
    if not isinstance(header, dict):
        raise FetalBenchError(f"{path} is not a safetensors file: its header is not an object.", fix)
    data = info.st_size - 8 - length
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise FetalBenchError(f"{path} is not a valid safetensors file: its tensors leave a gap or overlap at "
                                  f"byte {start:,}.", fix)
        end = stop
    if end != data:
        raise FetalBenchError(f"{path} is damaged: its header describes {end:,} bytes of tensors, the file holds "
                              f"{data:,} (truncated{' or padded' if data > end else ''}).", fix)


# ----------------------------------------------------------------------------------------------
# Loading tensors into a built model
# ----------------------------------------------------------------------------------------------


def restore_weights(model: torch.nn.Module, checkpoint: Checkpoint, *, strict: bool = True) -> None:
    """Load ``checkpoint``'s weights into ``model``, built from its config (see the builder).

    Full weights replace every tensor; an adapter requires ``model``'s frozen base to be the one
    it was trained on (same sha256), then replaces the LoRA tensors and the head. ``strict=False``
    (``torch``'s ``load_state_dict`` meaning) tolerates tensors missing from the file or unknown to
    the model; a tensor of another shape is an error either way.
    """
    if checkpoint.weights == "full":
        load_weights(model, checkpoint.directory / WEIGHTS_NAME, strict=strict)
        return
    bare = _unwrap(model)
    if not callable(getattr(bare, "base_reference", None)) or bare.base_reference() is None:
        raise FetalBenchError(f"Checkpoint {checkpoint.source} is a LoRA adapter, but the model built for it has no "
                              "base from a registered source to apply it to.", _base_fix(checkpoint))
    expected, actual = checkpoint.base.get("sha256"), bare.base_source_sha256
    if expected != actual:
        raise FetalBenchError(
            f"The base weights rebuilt for {checkpoint.source} ({checkpoint.base.get('name', '?')}) are not those its "
            f"adapter was trained on (sha256 of the base tensors {actual[:12]}... != {str(expected)[:12]}...).",
            _base_fix(checkpoint))
    _load_adapter(bare, checkpoint.directory / ADAPTER_WEIGHTS_NAME, strict=strict)


def _base_fix(checkpoint: Checkpoint) -> str:
    base = checkpoint.base or {}
    hint = base.get("fix") if isinstance(base.get("fix"), str) else ""
    return (hint[:500] + " " if hint else "") + f"The adapter needs exactly the base weights {base.get('name', '')!s:.100} " \
        f"({base.get('file', '')!s:.100}) it was trained on."


def load_weights(model: torch.nn.Module, path: str | os.PathLike, *, strict: bool = True) -> None:
    """Load a full safetensors file into ``model``, with a clear error on any mismatch (with
    ``strict=False``, on a shape mismatch only)."""
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(_unwrap(model), str(path), strict=False)
    except Exception as err:  # shape mismatches surface here as RuntimeError
        raise FetalBenchError(f"The weights in {path} do not fit the model built from its config: {err}",
                              "Was the checkpoint made by another fetal-bench version, or were cfg options overridden?") from err
    if strict and (missing or unexpected):
        raise FetalBenchError(
            f"The weights in {path} do not fit the model: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}.",
            "Was the checkpoint made by another fetal-bench version, or were cfg options overridden?")


def _load_adapter(model: torch.nn.Module, path: Path, *, strict: bool = True) -> None:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        saved = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise FetalBenchError(f"{path} is not a readable safetensors file ({err}).", "Re-download the checkpoint.") from None
    ours = _adapter_state(model)
    names = {PEFT_PREFIX + key: key for key in ours}
    missing, unexpected = sorted(set(names) - set(saved)), sorted(set(saved) - set(names))
    wrong = sorted(k for k in set(saved) & set(names) if saved[k].shape != ours[names[k]].shape)
    if wrong or (strict and (missing or unexpected)):
        raise FetalBenchError(f"The adapter {path} does not fit the model: missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}, other shapes {wrong[:3]}.",
                              "Were cfg options (lora_r, labels, targets) overridden when loading?")
    with torch.no_grad():
        for file_key, key in names.items():
            if file_key in saved:
                ours[key].copy_(saved[file_key])


# ----------------------------------------------------------------------------------------------
# Adapter tensors, in PEFT's format
# ----------------------------------------------------------------------------------------------


def _adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What an adapter checkpoint holds, keyed as ``PeftModel.save_pretrained`` would below its
    ``base_model.model.`` prefix: the LoRA tensors (peft's own ``get_peft_model_state_dict``, which
    drops the adapter name) and the ``modules_to_save`` (the head). Values are the model's own
    tensors (loading copies into them)."""
    from peft import get_peft_model_state_dict

    peft_path = model.peft_module  # the submodule the adapters were injected into
    adapted = model.get_submodule(peft_path)
    lora = get_peft_model_state_dict(adapted, state_dict=dict(adapted.state_dict(keep_vars=True)))
    state = {f"{peft_path}.{key}": tensor for key, tensor in lora.items()}
    for name in model.modules_to_save:
        state.update({f"{name}.{key}": tensor for key, tensor in model.get_submodule(name).state_dict(keep_vars=True).items()})
    return state


def _adapter_config(model: torch.nn.Module) -> dict[str, Any]:
    """PEFT's adapter_config.json: the injected LoraConfig, with the head in modules_to_save and
    target patterns that name modules from the top of ``model`` (PEFT's PeftModel sees it whole)."""
    config = model.get_submodule(model.peft_module).peft_config["default"].to_dict()
    targets = config.get("target_modules")
    if isinstance(targets, (set, list, tuple)):
        config["target_modules"] = sorted(targets)  # suffixes match at any depth already
    config["modules_to_save"] = list(model.modules_to_save)
    # A call that builds the wrapper the adapter's keys name (PEFT's base model), not prose.
    config["base_model_name_or_path"] = _wrapper_identifier(
        {"model": model.model_name, "cfg": model.model_cfg, "weights": {"base": model.base_reference()}})
    config["inference_mode"] = True
    return _jsonable(config)


def base_sha256(model: torch.nn.Module) -> str:
    """sha256 over the frozen base: every state-dict tensor an adapter checkpoint does not hold
    (names, dtypes, shapes, bytes, in name order). It pins the base exactly whatever file or
    source it came from."""
    bare = _unwrap(model)
    adapter = {id(tensor) for tensor in _adapter_state(bare).values()}
    return sha256_tensors((name, tensor) for name, tensor in sorted(bare.state_dict(keep_vars=True).items())
                          if id(tensor) not in adapter)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    # accelerate/DDP wrap the module; the checkpoint holds the bare one's names.
    return getattr(model, "module", model)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in (sorted(value, key=str) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):  # not JSON
        return None
    if hasattr(value, "value") and type(value).__module__.startswith("peft"):  # peft's enums (PeftType.LORA)
        return value.value
    return value
