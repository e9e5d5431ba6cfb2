"""The model registry: declarative entries, ``create_model`` and ``list_models``.

An entry is plain data (:class:`ModelInfo`): a name, the ``"module:function"`` that builds it
(imported only when used, so listing models imports no torch), its default configuration and
where its pretrained weights come from. ``create_model(name, checkpoint=None, **cfg)`` calls
the builder with ``defaults | cfg`` and, given a checkpoint, restores the weights:

* a directory written by :func:`fetal_bench.models.save_checkpoint` (``model.safetensors`` +
  ``config.json``): the model is rebuilt from the recorded configuration *without* fetching
  pretrained weights, then loaded strictly from the safetensors file;
* a single file (``SonoNet16.npz``, SAM's official ``.pth``): handed to the builder as its
  ``weights`` argument; each builder accepts only its own published format.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetal_bench.errors import FetalBenchError

if TYPE_CHECKING:
    import torch

__all__ = ["MODELS", "ModelInfo", "create_inference_model", "create_model", "get_model_info", "list_models"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_TV = "fetal_bench.models.classifiers:build_torchvision_classifier"
_SONONET_FIX = ("Put SonoNet16.npz (github.com/baumgach/SonoNet-weights) at {weights_dir}/SonoNet16.npz, or set "
                "FETAL_BENCH_SONONET16=PATH, or pass --checkpoint PATH/SonoNet16.npz.")
_SAM_FIX = ("Cache facebook/sam-vit-base once online (python -c \"from transformers import SamModel; "
            "SamModel.from_pretrained('facebook/sam-vit-base')\"), or pass --checkpoint DIR of a SAM trained by "
            "`fetal-bench train sam`.")
_TV_REFERENCE = "torchvision {arch} (ImageNet-1k weights where available); grayscale input via a summed first convolution."


@dataclass(frozen=True)
class ModelInfo:
    """A registered model. ``defaults`` are keyword arguments of ``builder``."""

    name: str
    task_type: str
    builder: str
    family: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    weights: str = "random initialisation"
    reference: str = ""
    tiny: dict[str, Any] = field(default_factory=dict)  # cfg for a fast test-sized instance
    # Training defaults (`fetal-bench train` uses them unless told otherwise).
    train_defaults: dict[str, Any] = field(default_factory=dict)
    # A classifier trained on the task's masks (segmentation loss), scored on its labels:
    # ``forward(x, output="mask")`` gives segmentation logits for training.
    trains_on_masks: bool = False
    # Inference without a checkpoint (`predict`, `evaluate --model`): ``pretrained_predictor``
    # says the published weights alone make a working model (SonoNet's 14 planes, SAM's boxes);
    # every other model is untrained without a checkpoint. ``random_init`` is the cfg that builds
    # it without fetching anything (only on an explicit --random-init); ``weights_fix`` tells
    # where the published file goes ({weights_dir}: the fetal-bench weights cache).
    pretrained_predictor: bool = False
    # Named training recipes: TrainConfig fields (``image_size``, ``batch_size``, ``model_cfg``)
    # filled in where the user gave none. ``--recipe auto`` takes "cpu" when no GPU is present.
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    random_init: dict[str, Any] = field(default_factory=dict)
    weights_fix: str = ""

    def build(self, **cfg: Any) -> torch.nn.Module:
        module_name, function_name = self.builder.split(":")
        builder = getattr(importlib.import_module(module_name), function_name)
        options = {**self.defaults, **cfg}
        accepted = inspect.signature(builder).parameters
        unknown = sorted(k for k in options if k not in accepted)
        if unknown:
            known = sorted(k for k in accepted if k not in ("restore", "weights") and k not in self.defaults)
            raise FetalBenchError(f"Model {self.name!r} has no option(s) {unknown}.", f"Its options: {', '.join(known)}.")
        return builder(**options)


def _classifier(name: str, arch: str, description: str, **defaults: Any) -> ModelInfo:
    tiny: dict[str, Any] = {"image_size": (32, 32), "pretrained": False}
    return ModelInfo(
        name=name, task_type="classification", builder=_TV, family="torchvision classifier",
        description=description, defaults={"arch": arch, **defaults},
        weights="ImageNet-1k (torchvision) when cached or downloadable, else random with a warning",
        reference=_TV_REFERENCE.format(arch=arch), tiny=tiny, random_init={"pretrained": False},
        train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4, "batch_size": 32},
    )


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        _classifier("resnet18", "resnet18", "ResNet-18 (11.7M parameters)."),
        _classifier("resnet50", "resnet50", "ResNet-50 (25.6M parameters)."),
        _classifier("densenet121", "densenet121", "DenseNet-121 (8.0M parameters)."),
        _classifier("densenet169", "densenet169", "DenseNet-169 (14.1M parameters)."),
        _classifier("efficientnet_b0", "efficientnet_b0", "EfficientNet-B0 (5.3M parameters)."),
        _classifier("mobilenet_v2", "mobilenet_v2", "MobileNet-v2 (3.5M parameters)."),
        _classifier("vit_b_16", "vit_b_16", "ViT-B/16 (86M parameters); square inputs (224 by default)."),
        ModelInfo(
            name="unet", task_type="segmentation", builder="fetal_bench.models.unet:build_unet",
            family="U-Net", description="Compact U-Net (4 poolings, 32 base channels, 7.2M parameters) for head segmentation.",
            reference="Ronneberger et al., MICCAI 2015; the HC18 baseline of van den Heuvel et al. 2018 is a U-Net.",
            tiny={"image_size": (32, 48), "base_channels": 4, "depth": 2},
            train_defaults={"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 8},
            # "cpu": the configuration of the HC18 baseline in docs/baselines.md (Dice 0.971 after 8
            # epochs, 22 min on two CPU cores); the registered 256x384, 32-channel network is GPU work
            # (about 45 s per batch of 16 on those cores).
            recipes={"gpu": {}, "cpu": {"image_size": (128, 192), "batch_size": 8, "model_cfg": {"base_channels": 16}}},
        ),
        ModelInfo(
            name="vit_lora", task_type="classification", builder="fetal_bench.models.lora:build_vit_lora",
            family="LoRA-adapted ViT",
            description="ViT-B/16, frozen, with LoRA (r=8, alpha 16, dropout 0.1) on every block's attention and MLP "
                        "projections and a linear head: the IQA paper's adaptation recipe on an ImageNet backbone.",
            weights="ImageNet-1k (torchvision) when cached or downloadable, else random with a warning",
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025); LoRA: Hu et al., ICLR 2022 (peft).",
            tiny={"variant": "tiny", "image_size": (32, 32)}, random_init={"pretrained": False},
            # The paper's settings: AdamW, lr 3e-4, batch 32, 5 epochs (no schedule given: constant).
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "batch_size": 32, "epochs": 5,
                            "scheduler": "none"},
        ),
        ModelInfo(
            name="fetalclip_lora", task_type="classification", builder="fetal_bench.models.lora:build_fetalclip_lora",
            family="LoRA-adapted ViT",
            description="FetalCLIP's image tower (CLIP ViT-L/14 trained on fetal ultrasound), frozen, with LoRA on "
                        "attention and MLP projections and a linear head on the image embedding (FetalCLIP_CLS). "
                        "Needs open_clip and your own FetalCLIP weights + config (non-commercial licence).",
            weights="none shipped: --model-opt weights=FetalCLIP_weights.pt config=FetalCLIP_config.json (user-supplied)",
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025): F1 0.757; FetalCLIP: Maani et al., arXiv:2502.14807.",
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "batch_size": 32, "epochs": 5,
                            "scheduler": "none"},
        ),
        ModelInfo(
            name="unet-iqa", task_type="classification", builder="fetal_bench.models.seg_to_cls:build_unet_iqa",
            family="U-Net",
            description="The segmentation route to image quality: a U-Net trained on the abdomen masks; a frame is "
                        "usable when the predicted abdomen covers at least 1% of the frame padded to a square (the paper's rule).",
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025): segmentation repurposed for classification, F1 0.771.",
            tiny={"image_size": (32, 48), "base_channels": 4, "depth": 2},
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4, "batch_size": 32, "epochs": 5},
            trains_on_masks=True,
        ),
        ModelInfo(
            name="sononet16", task_type="classification", builder="fetal_bench.models.sononet:build_sononet",
            family="SonoNet", description="SonoNet-16: the 14 standard planes of Baumgartner et al. (224x288 gray).",
            defaults={"head": "sononet"},
            weights="SonoNet16.npz from github.com/baumgach/SonoNet-weights (sha256-verified)",
            reference="Baumgartner et al., IEEE TMI 36(11):2204-2215, 2017.",
            tiny={"weights": None}, weights_fix=_SONONET_FIX,
            random_init={"weights": None}, pretrained_predictor=True,
            train_defaults={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32},
        ),
        ModelInfo(
            name="sononet16-planes", task_type="classification", builder="fetal_bench.models.sononet:build_sononet",
            family="SonoNet",
            description="SonoNet-16 with its 14 classes pooled onto the FETAL_PLANES planes (abdomen, brain, femur, "
                        "thorax, Other) for zero-shot plane classification.",
            defaults={"head": "fetal-planes"},
            weights="SonoNet16.npz from github.com/baumgach/SonoNet-weights (sha256-verified)",
            reference="Baumgartner et al., IEEE TMI 36(11):2204-2215, 2017.",
            tiny={"weights": None}, weights_fix=_SONONET_FIX,
            random_init={"weights": None}, pretrained_predictor=True,
            train_defaults={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32},
        ),
        ModelInfo(
            name="sam", task_type="segmentation", builder="fetal_bench.models.sam:build_sam",
            family="Segment Anything",
            description="SAM with box prompts: mask decoder trained, image and prompt encoders frozen (optional LoRA "
                        "on the image encoder). Backends: segment-anything (official .pth) or transformers SamModel.",
            defaults={"backend": "transformers", "variant": "vit_b"},
            weights="transformers: facebook/sam-vit-base (HF cache); segment-anything: official .pth (md5-verified)",
            reference="Kirillov et al., ICCV 2023; box-prompted fine-tuning as in arXiv:2506.23664 (mask-guided diffusion for fetal head segmentation).",
            tiny={"variant": "tiny", "pretrained": False}, random_init={"pretrained": False},
            pretrained_predictor=True, weights_fix=_SAM_FIX,
            # The mask-guided paper: Adam, lr 1e-5, batch 5, Dice + CE, box jitter 0-20 px.
            train_defaults={"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0, "batch_size": 5, "scheduler": "none"},
        ),
    )
}


def list_models(pattern: str | None = None, *, task_type: str | None = None) -> list[ModelInfo]:
    """Registered models, optionally filtered by a glob on the name and by task type."""
    return [info for name, info in MODELS.items()
            if (pattern is None or fnmatch.fnmatch(name, pattern)) and (task_type is None or info.task_type == task_type)]


def get_model_info(name: str) -> ModelInfo:
    try:
        return MODELS[name]
    except KeyError:
        raise FetalBenchError(f"Unknown model {name!r}.",
                              f"Use one of: {', '.join(MODELS)} (see `fetal-bench models list`).") from None


def read_checkpoint_config(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint directory, checked for the keys we need."""
    directory = Path(checkpoint)
    path = directory / CONFIG_NAME
    if not path.is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise FetalBenchError(f"{directory} is not a fetal-bench checkpoint (it needs {WEIGHTS_NAME} and {CONFIG_NAME}).",
                              "Pass the --output directory of `fetal-bench train`, or a published weights file.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FetalBenchError(f"{path} is not valid JSON: {err}.", "Re-create the checkpoint.") from err
    if not isinstance(config, dict) or "model" not in config or not isinstance(config.get("cfg", {}), dict):
        raise FetalBenchError(f"{path} lacks the 'model'/'cfg' entries of a fetal-bench checkpoint.", "Re-create the checkpoint.")
    return config


def create_model(name: str, checkpoint: str | os.PathLike | None = None, **cfg: Any) -> torch.nn.Module:
    """Build registered model ``name``; restore ``checkpoint`` when given.

    Args:
        name: a registry name (``list_models()``).
        checkpoint: ``None`` (fresh model; pretrained weights where the entry has them), a
            checkpoint directory, or a published weights file the model accepts (``.npz`` for
            SonoNet-16, ``.pth`` for SAM's segment-anything backend).
        **cfg: builder options overriding the defaults (e.g. ``labels=[...]``,
            ``image_size=(256, 384)``, ``pretrained=False``). With a checkpoint directory they
            override the recorded configuration; structural changes then fail to load.

    Returns:
        A ``torch.nn.Module`` with ``.spec`` (:class:`~fetal_bench.models.spec.ModelSpec`),
        ``.model_name`` and ``.model_cfg`` (the JSON-ready configuration that rebuilds it).
    """
    info = get_model_info(name)
    if checkpoint is None:
        return _finish(info.build(**cfg), info.name)
    path = Path(checkpoint)
    if path.is_file():
        return _finish(info.build(**{**cfg, "weights": path}), info.name)
    if not path.is_dir():
        raise FetalBenchError(f"Checkpoint {path} does not exist.", "Pass a checkpoint directory or a weights file.")
    config = read_checkpoint_config(path)
    if config["model"] != name:
        raise FetalBenchError(f"Checkpoint {path} holds a {config['model']!r} model, not {name!r}.",
                              f"Use --model {config['model']}.")
    from fetal_bench.models.checkpoint import load_weights

    # restore=True: build the structure only; pretrained weights would be overwritten anyway.
    model = info.build(**{**config.get("cfg", {}), **cfg, "restore": True})
    load_weights(model, path / WEIGHTS_NAME)
    return _finish(model, info.name)


def create_inference_model(name: str, checkpoint: str | os.PathLike | None = None, *,
                           random_init: bool = False) -> torch.nn.Module:
    """A model to predict with (``fetal-bench predict``, ``evaluate --model``): never silently untrained.

    With ``checkpoint``: :func:`create_model`. Without one, a model whose published weights do
    the task (``pretrained_predictor``: SonoNet-16, SAM) loads them or raises a
    :class:`FetalBenchError` saying where the file goes; any other model has nothing trained to
    predict with and is refused. ``random_init=True`` builds it untrained on purpose, fetching
    nothing.
    """
    import warnings

    from fetal_bench.models.weights import PretrainedWeightsWarning, weights_dir

    info = get_model_info(name)
    if checkpoint is not None:
        return create_model(name, checkpoint=checkpoint)
    if random_init:
        return create_model(name, **info.random_init)
    untrained = "--random-init runs it untrained on purpose (its outputs are then meaningless)."
    if not info.pretrained_predictor:
        raise FetalBenchError(
            f"Model {name!r} has no trained weights without --checkpoint: it would predict with a random "
            f"{'head' if info.task_type == 'classification' else 'network'}.",
            f"Train it (fetal-bench train {name} --task TASK --output DIR) and pass --checkpoint DIR; {untrained}")
    with warnings.catch_warnings():
        # The builders fall back to random weights with this warning: here that is an error.
        warnings.simplefilter("error", PretrainedWeightsWarning)
        try:
            return create_model(name)
        except PretrainedWeightsWarning as warning:
            # Only the builder's first sentence (what is missing): the rest is about its random fallback.
            said = re.split(r"(?<=[.;])\s+", str(warning))[0].rstrip(";.")
            fix = info.weights_fix.format(weights_dir=weights_dir())
            raise FetalBenchError(f"{name} predicts with its pretrained weights, which are not available: {said}.",
                                  f"{fix} {untrained}") from None


def _finish(model: torch.nn.Module, name: str) -> torch.nn.Module:
    if getattr(model, "spec", None) is None or not hasattr(model, "model_cfg"):
        raise TypeError(f"builder of {name!r} returned a model without spec/model_cfg")  # a bug, not user error
    model.model_name = name
    return model
