"""The base Stable Diffusion model a generator fine-tunes: ``tiny``, a local directory, or a Hub id.

:func:`load_base` returns the components (UNet, VAE, text encoder, tokenizer, scheduler
config) and an *identity* that says exactly which weights they are, recorded in every LoRA and
every synthetic row:

* ``tiny``: the in-process tiny pipeline (:mod:`fetal_bench.generators.tiny`); identity = the
  hashes of its configs and weights.
* a local diffusers directory (``model_index.json`` + component folders); identity = its path
  and the sha256 of the weight files the components load from.
* a Hub id: downloaded (or read from the HF cache) at the given revision, or at the pinned
  revision of the default base, or at ``main`` resolved to its commit; identity = id + commit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fetal_bench.errors import FetalBenchError

__all__ = ["BaseModel", "base_label", "load_base", "same_base"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class BaseModel:
    """Loaded components of a Stable Diffusion v1-style base and what identifies them."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    identity: dict[str, Any]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_resolution(self) -> int:
        """The image side the base was trained at (UNet sample size x VAE factor)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    def pipeline(self):
        """A :class:`diffusers.StableDiffusionPipeline` around these components (no safety checker)."""
        from diffusers import PNDMScheduler, StableDiffusionPipeline

        scheduler = PNDMScheduler.from_config(self.scheduler_config)
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


def base_label(identity: dict[str, Any]) -> str:
    """One line naming a base, for the `base_model` column: ``id@revision`` or ``tiny@<hash>``."""
    if identity.get("kind") == "tiny":
        return f"tiny@{identity['weights_sha256'][:16]}"
    if identity.get("kind") == "local":
        return f"{identity['id']}@sha256:{identity['weights_sha256'][:16]}"
    return f"{identity['id']}@{identity.get('revision')}"


def same_base(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two identities name the same weights."""
    if a.get("kind") != b.get("kind"):
        # A local copy of a Hub snapshot is the same weights only if hashes say so; we cannot tell.
        return False
    if a["kind"] == "hub":
        return a.get("id") == b.get("id") and a.get("revision") == b.get("revision")
    return a.get("weights_sha256") == b.get("weights_sha256")


def load_base(spec: str, *, revision: str | None = None, default: dict[str, Any] | None = None) -> BaseModel:
    """Load the base named by ``spec`` (``tiny``, a directory or a Hub id).

    ``default`` is the generator config's ``base`` section: a Hub id equal to its ``model`` is
    loaded at its pinned ``revision`` unless ``revision`` is given.
    """
    if spec == "tiny":
        from fetal_bench.generators.tiny import build_tiny_components, tiny_identity

        components = build_tiny_components()
        return BaseModel(
            components.unet,
            components.vae,
            components.text_encoder,
            components.tokenizer,
            dict(components.scheduler.config),
            tiny_identity(components),
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        if revision is not None:
            raise FetalBenchError(
                f"--revision {revision!r} was given for the local directory {path}.",
                "A local directory has no revisions; drop --revision.",
            )
        return _load_directory(path, {"kind": "local", "id": str(path.resolve()), "revision": None,
                                      "weights_sha256": _weights_sha256(path)})
    if not _HUB_ID.match(spec):
        raise FetalBenchError(
            f"Base model directory {spec} does not exist.",
            "Pass `tiny`, an existing diffusers directory (with model_index.json), or a Hub id like "
            "stable-diffusion-v1-5/stable-diffusion-v1-5.",
        )
    if revision is None and default and spec == default.get("model"):
        revision = default.get("revision")
    local_dir, commit = _snapshot(spec, revision)
    return _load_directory(local_dir, {"kind": "hub", "id": spec, "revision": commit})


def _snapshot(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Download (or find in the HF cache) the components of ``repo_id``; return (dir, commit)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    patterns = ["model_index.json"] + [f"{c}/*.json" for c in _COMPONENTS] + [f"{c}/*.txt" for c in _COMPONENTS]
    patterns += [f"{c}/diffusion_pytorch_model.safetensors" for c in ("unet", "vae")]
    patterns += ["text_encoder/model.safetensors"]
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except (RepositoryNotFoundError, HFValidationError) as error:
        raise FetalBenchError(
            f"Base model {repo_id!r} was not found on the Hub.",
            "Check the id, or pass a local diffusers directory or `tiny`.",
        ) from error
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise FetalBenchError(
            f"Base model {repo_id}@{revision or 'main'} is not in the local Hugging Face cache and "
            f"could not be downloaded: {error}",
            "Go online once (unset HF_HUB_OFFLINE) to download it, or pass a local diffusers "
            "directory, or `--base tiny` for a test run.",
        ) from error
    # snapshot folders are named by the commit they hold
    return folder, folder.name


def _load_directory(path: Path, identity: dict[str, Any]) -> BaseModel:
    if not (path / "model_index.json").is_file():
        raise FetalBenchError(
            f"{path} is not a diffusers pipeline directory (no model_index.json).",
            "Pass the directory `StableDiffusionPipeline.save_pretrained` wrote, a Hub id, or `tiny`.",
        )
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
        text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise FetalBenchError(
            f"Could not load a Stable Diffusion v1 pipeline from {path}: {error}",
            "The base must have unet/, vae/, text_encoder/, tokenizer/ and scheduler/ (SD 1.x layout).",
        ) from error
    for module in (unet, vae, text_encoder):
        module.eval()
    return BaseModel(unet, vae, text_encoder, tokenizer, scheduler_config, identity)


def _weights_sha256(path: Path) -> str:
    """sha256 over the (relative name, sha256) of the weight files the components load.

    Only the component folders count (an SD repository's root also holds multi-GB single-file
    checkpoints nobody loads here); per folder the safetensors file diffusers picks (the plain
    one, not fp16/ema variants), else the .bin.
    """
    from fetal_bench._io import sha256_file

    digest = hashlib.sha256()
    for component in _COMPONENTS:
        folder = path / component
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" and p.name.count(".") == 1)
        if not files:
            files = sorted(p for p in folder.iterdir() if p.suffix == ".bin" and p.name.count(".") == 1)
        files += sorted(p for p in folder.iterdir() if p.suffix in (".json", ".txt"))
        for file in files:
            digest.update(f"{component}/{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()
