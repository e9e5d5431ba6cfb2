"""Frozen vision transformers adapted with LoRA, plus a linear head: the IQA paper's recipe.

He et al. (2025) adapt a foundation model to image-quality assessment by freezing it, adding
low-rank adapters (LoRA, via peft) to its attention and MLP projections and training those and a
linear head on the pooled image embedding. Two backbones here:

* ``vit_lora``: torchvision's ViT-B/16 (ImageNet-1k weights where cached or downloadable, as
  every torchvision classifier here), or a ``tiny`` random one for tests;
* ``fetalclip_lora``: the image tower of FetalCLIP (a CLIP ViT-L/14 trained on fetal
  ultrasound), built through open_clip from the user's own ``FetalCLIP_weights.pt`` and
  ``FetalCLIP_config.json``. Those weights are under a non-commercial licence and are never
  downloaded or required by fetal-bench.

LoRA (peft) with ``r``=8, alpha 16, dropout 0.1 (the paper's: FetalCLIP-IQA ``main.py``,
commit fbcbdd21cc5d3ea12b257735b5316319cec3f49a). Everything else is frozen except the head.

* ``fetalclip_lora`` targets, by default, exactly the authors' module names ``c_fc``, ``c_proj``,
  ``out_proj`` (``lora_targets="paper"``): 2,359,296 LoRA parameters on ViT-L/14, the "2.4 M" of
  their table. ``out_proj`` is the output projection inside ``nn.MultiheadAttention``, whose
  forward reads ``out_proj.weight`` directly, so those 393,216 adapter parameters never change
  the output (peft 0.21, open_clip 3.3; ``spec.extra["inert_lora_parameters"]``): reproduced as
  the authors ran it. ``lora_targets="attention"`` adapts each whole attention module instead
  (peft's ``nn.MultiheadAttention`` support: fused q/k/v and output projection) and both MLP
  linears, so every adapter acts.
* ``vit_lora`` adapts each block's attention (as ``"attention"`` above) and both MLP linears of
  torchvision's ViT-B/16 (the authors' ViT baseline is timm's CLIP ViT-L/14 with targets
  ``proj``, ``fc1``, ``fc2``: a different backbone, docs/image_quality.md).

Checkpoints hold only what training changed when the frozen base comes from a registered
source (:mod:`fetal_bench.models.checkpoint`): the LoRA tensors and the head, in PEFT's adapter
format, plus a reference to the base (:meth:`LoRAClassifier.base_reference`) and the sha256 of
its tensors. Loading rebuilds the base from that source. A base that no source rebuilds (the
``tiny`` test ViT, or ImageNet weights that could not be had) is saved whole. FetalCLIP's
architecture config is stored in the checkpoint's ``config.json``; its weights never are.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.checkpoint import base_sha256
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import IMAGENET_NORMALIZE, ModelSpec

__all__ = ["LoRAClassifier", "build_fetalclip_lora", "build_vit_lora", "peft_base_model"]

LORA_DEFAULTS = {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1}
#: FetalCLIP LoRA target sets: ``paper`` = the module names of FetalCLIP-IQA's main.py
#: (commit fbcbdd21cc5d3ea12b257735b5316319cec3f49a); ``attention`` = every adapter effective.
FETALCLIP_LORA_TARGETS: dict[str, str | tuple[str, ...]] = {
    "paper": ("c_fc", "c_proj", "out_proj"),
    "attention": r".*resblocks\.\d+\.(attn|mlp\.c_fc|mlp\.c_proj)$",
}
IQA_LABELS = ("unusable", "usable")
CLIP_NORMALIZE = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
# A tiny torchvision ViT for tests: 2 blocks of width 32.
_TINY_VIT = {"patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}
_FETALCLIP_EXTRA = 'pip install "fetal-bench[fetalclip]"'
#: Where a FetalCLIP adapter checkpoint looks for the user's FetalCLIP_weights.pt on another machine.
FETALCLIP_WEIGHTS_ENV = "FETAL_BENCH_FETALCLIP_WEIGHTS"
_VIT_IMAGENET_FILE = "vit_b_16-c867db91.pth"  # torchvision's ViT_B_16_Weights.IMAGENET1K_V1


class LoRAClassifier(nn.Module, FetalBenchModel):
    """``head(encoder(pixel_values))``: a frozen encoder with LoRA adapters and a linear head.

    ``base``: where the frozen encoder's weights came from (a registered source that rebuilds
    them), or None (random, or restored from a checkpoint of unknown origin): the checkpoint
    then holds every weight.
    """

    #: For the adapter checkpoint (PEFT's names): the submodule LoRA was injected into.
    peft_module = "encoder"

    def __init__(self, encoder: nn.Module, head: nn.Module, spec: ModelSpec, cfg: dict[str, Any],
                 base: dict[str, Any] | None = None):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.spec, self.model_cfg, self._base = spec, cfg, base
        # The hash of the base as its source built it: a checkpoint saves an adapter against it
        # only while the base is unchanged (checkpoint.adapter_base).
        self.base_source_sha256 = base_sha256(self) if base is not None else None

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(pixel_values))

    @property
    def modules_to_save(self) -> tuple[str, ...]:
        """The head's layers, trained whole (PEFT's ``modules_to_save``). PEFT matches these by name
        suffix, so each layer is named in full: torchvision's ViT head is ``heads.head``, whose inner
        ``head`` a bare ``"head"`` would also match."""
        return tuple(f"head.{name}" if name else "head" for name, module in self.head.named_modules()
                     if next(module.parameters(recurse=False), None) is not None)

    def base_reference(self) -> dict[str, Any] | None:
        """The frozen base's source: ``name``, ``file``, the builder ``options`` that fetch it,
        and a ``fix`` for when it is missing; None when no source rebuilds it."""
        return None if self._base is None else dict(self._base)


def _labels(labels: Sequence[str]) -> tuple[str, ...]:
    labels = tuple(str(label) for label in labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise FetalBenchError(f"labels={labels!r}: a classifier needs at least two distinct class names.",
                              "Pass the dataset's class names.")
    return labels


def add_lora(encoder: nn.Module, target_modules: str | Sequence[str], *, r: int, alpha: float, dropout: float) -> int:
    """Freeze ``encoder`` and inject LoRA adapters into the modules matching ``target_modules``
    (a regular expression on module names, or peft's list of name suffixes); return the number
    of adapted modules."""
    from peft import LoraConfig, inject_adapter_in_model

    if r < 1 or alpha <= 0 or not 0 <= dropout < 1:
        raise FetalBenchError(f"LoRA r={r}, alpha={alpha}, dropout={dropout}.", "Use r >= 1, alpha > 0, 0 <= dropout < 1.")
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = LoraConfig(r=int(r), lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    inject_adapter_in_model(config, encoder)  # in place; only the lora_A/lora_B weights train
    adapted = {name.rsplit(".lora_", 1)[0] for name, _ in encoder.named_parameters() if ".lora_" in name}
    if not adapted:  # a bug in the target pattern, not a user error
        raise RuntimeError(f"LoRA matched no module of {type(encoder).__name__} with {target_modules!r}")
    return len(adapted)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def inert_lora_parameters(model: nn.Module) -> int:
    """LoRA parameters on the ``out_proj`` of an ``nn.MultiheadAttention`` adapted on its own.

    ``nn.MultiheadAttention.forward`` passes ``out_proj.weight`` to the functional kernel and
    never calls ``out_proj``, so an adapter there gets no gradient and changes nothing. An
    attention module that peft wraps as a whole (its ``base_layer``) merges the adapters before
    the call, so its adapters all act and are not counted.
    """
    wrapped = {id(m.base_layer) for m in model.modules() if isinstance(getattr(m, "base_layer", None), nn.MultiheadAttention)}
    total = 0
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention) and id(module) not in wrapped:
            total += sum(p.numel() for name, p in module.out_proj.named_parameters() if "lora_" in name)
    return total


@contextlib.contextmanager
def _registered_open_clip_config(open_clip, name: str, architecture: dict):
    """open_clip builds registered configs only: register ours for the build, then restore the
    registry as it was (no global state leaks into the caller's process)."""
    registry = open_clip.factory._MODEL_CONFIGS
    missing = object()
    previous = registry.get(name, missing)
    registry[name] = architecture
    try:
        yield
    finally:
        if previous is missing:
            registry.pop(name, None)
        else:
            registry[name] = previous


def _torchvision_vit(labels, channels: int, size: tuple[int, int], pretrained, restore: bool):
    """torchvision's ViT-B/16 (the classifier builder does the pretrained weights, the gray first
    conv and the head); how it was initialised."""
    from fetal_bench.models.classifiers import build_torchvision_classifier

    classifier = build_torchvision_classifier("vit_b_16", labels=labels, channels=channels, image_size=size,
                                              pretrained=pretrained, restore=restore)
    return classifier.net, classifier.spec.extra.get("initialised_from", "checkpoint")


def _tiny_vit(labels, channels: int, size: tuple[int, int], pretrained, restore: bool):
    """A 2-block random ViT for tests."""
    import torchvision

    from fetal_bench.models.classifiers import _adapt_first_conv

    if size[0] != size[1] or size[0] % _TINY_VIT["patch_size"]:
        raise FetalBenchError(f"The tiny ViT needs a square image_size that is a multiple of 8, got {size}.",
                              "Pass e.g. image_size=(32, 32).")
    if channels not in (1, 3):
        raise FetalBenchError(f"channels={channels} is not supported.", "Use channels=1 or 3.")
    vit = torchvision.models.VisionTransformer(image_size=size[0], num_classes=len(labels), **_TINY_VIT)
    _adapt_first_conv(vit, channels)
    return vit, "random"


#: ``variant`` of :func:`build_vit_lora` -> how its backbone is made.
_VIT_BACKBONES = {"vit_b_16": _torchvision_vit, "tiny": _tiny_vit}


def build_vit_lora(
    *,
    labels: Sequence[str] = IQA_LABELS,
    variant: str = "vit_b_16",
    channels: int = 1,
    image_size: Sequence[int] | int = (224, 224),
    pretrained: bool | str = "auto",
    lora_r: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.1,
    weights: str | Path | None = None,
    restore: bool = False,
) -> LoRAClassifier:
    """A frozen torchvision ViT with LoRA on attention and MLP projections, and a linear head.

    Args:
        variant: ``"vit_b_16"`` (ViT-B/16; ImageNet-1k weights per ``pretrained``, see
            :mod:`fetal_bench.models.classifiers`) or ``"tiny"`` (2 blocks of width 32, random:
            for tests).
        channels, image_size, pretrained: as for the torchvision classifiers (square sizes, a
            multiple of the patch size).
        lora_r, lora_alpha, lora_dropout: the adapters (the paper's 8, 16, 0.1).
    """
    if weights is not None:
        raise FetalBenchError(f"vit_lora takes no weights file ({weights}).",
                              "Pass a checkpoint directory from `fetal-bench train`; ImageNet weights come from torchvision's cache.")
    labels = _labels(labels)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if variant not in _VIT_BACKBONES:
        raise FetalBenchError(f"Unknown ViT variant {variant!r}.", f"Use variant={' or '.join(map(repr, _VIT_BACKBONES))}.")
    vit, initialised = _VIT_BACKBONES[variant](labels, channels, size, pretrained, restore)
    head = vit.heads
    vit.heads = nn.Identity()  # the encoder ends at the class token's embedding
    adapted = add_lora(vit, r".*encoder_layer_\d+\.(self_attention|mlp\.0|mlp\.3)$",
                       r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    cfg = {"labels": list(labels), "variant": variant, "channels": channels, "image_size": list(size),
           "pretrained": pretrained, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout}
    base = None
    if initialised == "imagenet":  # torchvision's cached file rebuilds it; random bases are saved whole
        base = {"name": "torchvision vit_b_16 ImageNet-1k (IMAGENET1K_V1)", "file": _VIT_IMAGENET_FILE,
                "identifier": "torchvision.models.get_model('vit_b_16', weights='IMAGENET1K_V1')",
                "options": {"pretrained": True},
                "fix": f"Put {_VIT_IMAGENET_FILE} (https://download.pytorch.org/models/{_VIT_IMAGENET_FILE}) in "
                       "$TORCH_HOME/hub/checkpoints, or load the checkpoint once online."}
    model = LoRAClassifier(vit, head, _spec("vit_lora", labels, size, channels,
                                            "per_image" if channels == 1 else IMAGENET_NORMALIZE), cfg, base)
    model.spec.extra.update({"initialised_from": initialised, "lora_modules": adapted,
                             "trainable_parameters": _trainable(model)})
    return model


def _spec(name: str, labels: tuple[str, ...], size: tuple[int, int], channels: int, normalize) -> ModelSpec:
    return ModelSpec(name=name, task_type="classification", labels=labels, image_size=size, channels=channels,
                     normalize=normalize)


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise FetalBenchError("fetalclip_lora needs open_clip, which is not installed.",
                              f"Install it with `{_FETALCLIP_EXTRA}`.") from None
    return open_clip


@contextlib.contextmanager
def _quiet_logging(quiet: bool):
    previous = logging.root.manager.disable
    if quiet:
        logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _fetalclip_config(config: str | Path | dict | None) -> dict:
    if isinstance(config, dict):
        return config
    if config is None:
        raise FetalBenchError(
            "fetalclip_lora needs FetalCLIP's architecture file FetalCLIP_config.json (model option `config`).",
            "Download FetalCLIP_config.json from the FetalCLIP repository (BioMedIA-MBZUAI/FetalCLIP) and pass "
            "--model-opt config=PATH/FetalCLIP_config.json.")
    from fetal_bench._io import UnreadableFile, read_json_file

    path = Path(config)
    try:
        # Bounded: the path may come from a checkpoint's config.json, and /dev/zero never ends.
        data = read_json_file(path, max_bytes=1 << 20)
    except UnreadableFile as err:
        raise FetalBenchError(f"FetalCLIP config {path} {err.reason}.", "Pass the path of FetalCLIP_config.json.") from None
    except ValueError as err:
        raise FetalBenchError(f"{path} is not a JSON open_clip model config ({err}).", "Pass FetalCLIP_config.json.") from None
    if not isinstance(data, dict) or "vision_cfg" not in data:
        raise FetalBenchError(f"{path} has no 'vision_cfg': it is not an open_clip model config.", "Pass FetalCLIP_config.json.")
    return data


def _fetalclip_base(weights: Path) -> dict[str, Any]:
    # The path is the user's own file on this machine: kept beside the checkpoint in a local-only
    # file (never in config.json, never uploaded), so the same machine reloads from it; elsewhere
    # the environment variable names the user's copy.
    return {"name": "FetalCLIP image encoder (BioMedIA-MBZUAI/FetalCLIP)", "file": weights.name,
            "identifier": f"FetalCLIP_weights.pt of BioMedIA-MBZUAI/FetalCLIP (the user's own copy, ${FETALCLIP_WEIGHTS_ENV})",
            "options": {}, "local_options": {"weights": os.path.abspath(weights)}, "weights_env": FETALCLIP_WEIGHTS_ENV,
            "license": "FetalCLIP's licence (non-commercial); its weights are not in this checkpoint",
            "fix": f"Set {FETALCLIP_WEIGHTS_ENV}=PATH to your own FetalCLIP_weights.pt (from the FetalCLIP authors)."}


def build_fetalclip_lora(
    *,
    labels: Sequence[str] = IQA_LABELS,
    config: str | Path | dict | None = None,
    lora_r: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.1,
    lora_targets: str = "paper",
    weights: str | Path | None = None,
    restore: bool = False,
) -> LoRAClassifier:
    """FetalCLIP's image tower, frozen, with LoRA and a linear head on its image embedding
    (FetalCLIP_CLS in He et al. 2025).

    Args:
        config: FetalCLIP_config.json (a path, or its content as a dict; the checkpoint keeps
            the dict so that a trained model rebuilds without the file).
        weights: FetalCLIP_weights.pt, the user's own copy (``--checkpoint FILE``, or
            ``--model-opt weights=PATH`` when training). Required unless restoring a checkpoint.
        lora_targets: ``"paper"`` (the authors' ``c_fc``, ``c_proj``, ``out_proj``) or
            ``"attention"`` (module docstring).
    """
    if lora_targets not in FETALCLIP_LORA_TARGETS:
        raise FetalBenchError(f"lora_targets={lora_targets!r} is not a FetalCLIP target set.",
                              f"Use one of: {', '.join(FETALCLIP_LORA_TARGETS)}.")
    open_clip = _open_clip()
    labels = _labels(labels)
    architecture = _fetalclip_config(config)
    if not restore:
        if weights is None:
            raise FetalBenchError(
                "fetalclip_lora needs the FetalCLIP weights, which fetal-bench does not distribute (non-commercial "
                "licence).",
                "Request FetalCLIP_weights.pt from the FetalCLIP authors (BioMedIA-MBZUAI/FetalCLIP) and pass "
                "--model-opt weights=PATH (training) or --checkpoint PATH (a file).")
        if not Path(weights).is_file():
            raise FetalBenchError(f"FetalCLIP weights file {weights} does not exist.", "Pass the path of FetalCLIP_weights.pt.")
    name = "fetal-bench-FetalCLIP"
    try:
        # open_clip warns "initialized randomly" when restoring: the checkpoint follows.
        with _registered_open_clip_config(open_clip, name, architecture), _quiet_logging(restore):
            clip = open_clip.create_model(name, pretrained=None if restore else str(weights))
    except Exception as err:  # a wrong or damaged weights file surfaces here in many forms
        raise FetalBenchError(f"open_clip could not build FetalCLIP from {weights}: {err}",
                              "Pass the FetalCLIP_weights.pt that matches FetalCLIP_config.json.") from err
    encoder = clip.visual
    del clip  # the text tower is not used
    adapted = add_lora(encoder, FETALCLIP_LORA_TARGETS[lora_targets], r=lora_r, alpha=lora_alpha, dropout=lora_dropout)
    head = nn.Linear(int(architecture["embed_dim"]), len(labels))
    size = int(architecture["vision_cfg"].get("image_size", 224))
    cfg = {"labels": list(labels), "config": architecture, "lora_r": lora_r, "lora_alpha": lora_alpha,
           "lora_dropout": lora_dropout, "lora_targets": lora_targets}
    model = LoRAClassifier(encoder, head, _spec("fetalclip_lora", labels, (size, size), 3, CLIP_NORMALIZE), cfg,
                           None if restore else _fetalclip_base(Path(weights)))
    model.spec.extra.update({"initialised_from": "checkpoint" if restore else "FetalCLIP", "lora_modules": adapted,
                             "trainable_parameters": _trainable(model),
                             "lora_parameters": _trainable(encoder), "inert_lora_parameters": inert_lora_parameters(encoder)})
    return model


def peft_base_model(name: str, **cfg: Any) -> LoRAClassifier:
    """The network a fetal-bench LoRA adapter applies to, without any adapter: registered model
    ``name`` (``vit_lora``, ``fetalclip_lora``) built with ``cfg`` (its base from the registered
    source), its LoRA layers replaced by the layers they wrapped.

    ``PeftModel.from_pretrained(peft_base_model("vit_lora", ...), "org/adapter")`` then applies a
    saved adapter with PEFT alone, as a card's "wrapper" line says: the adapter's keys name this
    wrapper's ``encoder`` and ``head``, which a bare torchvision or open_clip network lacks.
    """
    from peft.tuners.lora import LoraLayer

    from fetal_bench.models.builder import create_model

    model = create_model(name, **cfg)
    for path, module in reversed(list(model.named_modules())):  # innermost first: peft nests them (attention)
        if isinstance(module, LoraLayer):
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, module.get_base_layer())
    for parameter in model.parameters():
        parameter.requires_grad = False
    return model.eval()
