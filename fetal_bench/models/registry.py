"""The model registry: declarative entries and ``list_models``; data only.

An entry (:class:`ModelInfo`) is a name, the ``"module:function"`` that builds it (imported only
when used, so listing models imports no torch), its default configuration and where its
pretrained weights come from. Creating and restoring models is
:mod:`fetal_bench.models.builder`'s job, the checkpoint files :mod:`fetal_bench.models.checkpoint`'s;
this module imports neither (dependencies run one way: builder -> checkpoint, registry).
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fetal_bench.errors import FetalBenchError, registry_entry
from fetal_bench.metrics.registry import TASK_TYPES, TaskType

if TYPE_CHECKING:
    import torch

__all__ = ["MODELS", "ModelInfo", "get_model_info", "list_models"]

_TV = "fetal_bench.models.classifiers:build_torchvision_classifier"
_SONONET_FIX = ("Put SonoNet16.npz (github.com/baumgach/SonoNet-weights) at {weights_dir}/SonoNet16.npz, or set "
                "FETAL_BENCH_SONONET16=PATH, or pass --checkpoint PATH/SonoNet16.npz.")
_SAM_FIX = ("Cache facebook/sam-vit-base once online (python -c \"from transformers import SamModel; "
            "SamModel.from_pretrained('facebook/sam-vit-base')\"), or pass --checkpoint DIR of a SAM trained by "
            "`fetal-bench train sam`.")
_TV_REFERENCE = "torchvision {arch} (ImageNet-1k weights where available); grayscale input via a summed first convolution."


@dataclass(frozen=True)
class ModelInfo:
    """A registered model. ``defaults`` are keyword arguments of ``builder``.

    ``task_type`` is the type of task the model is scored on; ``classifies`` says what it outputs
    (a label per image, or a mask per image), stated here as data so that nothing about a model
    needs a task kind to answer it.
    """

    name: str
    task_type: TaskType
    classifies: bool
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
    # LoRA on a frozen base from a registered source: checkpoints hold the adapter and head only,
    # so a restored or resumed model is built with its base from that source (not ``restore``).
    adapter_checkpoints: bool = False
    # A classifier whose label set is part of the model (sononet16-planes pools SonoNet's 14
    # classes onto fixed planes): training never hands it the data's labels.
    fixed_labels: bool = False

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"model {self.name!r}: task_type {self.task_type!r} is not one of {TASK_TYPES}")

    def _builder(self):
        module_name, function_name = self.builder.split(":")
        return getattr(importlib.import_module(module_name), function_name)

    def builder_options(self) -> set[str]:
        """The keyword arguments the builder takes (imports the model's module)."""
        return set(inspect.signature(self._builder()).parameters)

    def build(self, **cfg: Any) -> torch.nn.Module:
        builder = self._builder()
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
        name=name, task_type="classification", classifies=True, builder=_TV, family="torchvision classifier",
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
            name="unet", task_type="segmentation", classifies=False, builder="fetal_bench.models.unet:build_unet",
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
            name="vit_lora", task_type="classification", classifies=True, builder="fetal_bench.models.lora:build_vit_lora",
            family="LoRA-adapted ViT",
            description="ViT-B/16, frozen, with LoRA (r=8, alpha 16, dropout 0.1) on every block's attention and MLP "
                        "projections and a linear head: the IQA paper's adaptation recipe on an ImageNet backbone.",
            weights="ImageNet-1k (torchvision) when cached or downloadable, else random with a warning",
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025); LoRA: Hu et al., ICLR 2022 (peft).",
            tiny={"variant": "tiny", "image_size": (32, 32)}, random_init={"pretrained": False}, adapter_checkpoints=True,
            # The paper's settings (FetalCLIP-IQA @ fbcbdd2): AdamW, lr 3e-4 (model.py:51, 139-140: no
            # scheduler, so constant), batch 32, 5 epochs (config/classification.yml), no gradient
            # clipping (main.py:230-241: L.Trainer without gradient_clip_val).
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "batch_size": 32, "epochs": 5,
                            "scheduler": "none", "grad_clip": 0.0},
        ),
        ModelInfo(
            name="fetalclip_lora", task_type="classification", classifies=True, builder="fetal_bench.models.lora:build_fetalclip_lora",
            family="LoRA-adapted ViT",
            description="FetalCLIP's image tower (CLIP ViT-L/14 trained on fetal ultrasound), frozen, with LoRA on "
                        "attention and MLP projections and a linear head on the image embedding (FetalCLIP_CLS). "
                        "Needs open_clip and your own FetalCLIP weights + config (non-commercial licence).",
            weights="none shipped: --model-opt weights=FetalCLIP_weights.pt config=FetalCLIP_config.json (user-supplied)",
            adapter_checkpoints=True,
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025): F1 0.757; FetalCLIP: Maani et al., arXiv:2502.14807.",
            # As vit_lora: the authors' AdamW 3e-4, batch 32, 5 epochs, constant, no clipping.
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "batch_size": 32, "epochs": 5,
                            "scheduler": "none", "grad_clip": 0.0},
        ),
        ModelInfo(
            name="unet-iqa", task_type="classification", classifies=True, builder="fetal_bench.models.seg_to_cls:build_unet_iqa",
            family="U-Net",
            description="The segmentation route to image quality: a U-Net trained on the abdomen masks; a frame is "
                        "usable when the predicted abdomen covers at least 1% of the frame padded to a square (the paper's rule).",
            reference="He, Wang, Yaqub, arXiv:2507.22802 (2025): segmentation repurposed for classification, F1 0.771.",
            tiny={"image_size": (32, 48), "base_channels": 4, "depth": 2},
            # The authors' segmenter trains as their classifiers (FetalCLIP-IQA @ fbcbdd2: model.py:168,
            # 301-302 AdamW lr 3e-4 with PyTorch's default weight decay 0.01 and no scheduler;
            # config/segmentation.yml batch 32, 5 epochs; main.py:230-241 no gradient clipping).
            train_defaults={"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "batch_size": 32, "epochs": 5,
                            "scheduler": "none", "grad_clip": 0.0},
            trains_on_masks=True,
        ),
        ModelInfo(
            name="sononet16", task_type="classification", classifies=True, builder="fetal_bench.models.sononet:build_sononet",
            family="SonoNet", description="SonoNet-16: the 14 standard planes of Baumgartner et al. (224x288 gray).",
            defaults={"head": "sononet"},
            weights="SonoNet16.npz from github.com/baumgach/SonoNet-weights (sha256-verified)",
            reference="Baumgartner et al., IEEE TMI 36(11):2204-2215, 2017.",
            tiny={"weights": None}, weights_fix=_SONONET_FIX,
            random_init={"weights": None}, pretrained_predictor=True,
            train_defaults={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32},
        ),
        ModelInfo(
            name="sononet16-planes", task_type="classification", classifies=True, builder="fetal_bench.models.sononet:build_sononet",
            family="SonoNet",
            description="SonoNet-16 with its 14 classes pooled onto the FETAL_PLANES planes (abdomen, brain, femur, "
                        "thorax, Other) for zero-shot plane classification.",
            defaults={"head": "fetal-planes"}, fixed_labels=True,
            weights="SonoNet16.npz from github.com/baumgach/SonoNet-weights (sha256-verified)",
            reference="Baumgartner et al., IEEE TMI 36(11):2204-2215, 2017.",
            tiny={"weights": None}, weights_fix=_SONONET_FIX,
            random_init={"weights": None}, pretrained_predictor=True,
            train_defaults={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 32},
        ),
        ModelInfo(
            name="sam", task_type="segmentation", classifies=False, builder="fetal_bench.models.sam:build_sam",
            family="Segment Anything",
            description="SAM with box prompts: mask decoder trained, image and prompt encoders frozen (optional LoRA "
                        "on the image encoder). Backends: segment-anything (official .pth) or transformers SamModel.",
            defaults={"backend": "transformers", "variant": "vit_b"},
            weights="transformers: facebook/sam-vit-base (HF cache); segment-anything: official .pth (md5-verified)",
            reference="Kirillov et al., ICCV 2023; box-prompted fine-tuning as in arXiv:2506.23664 (mask-guided diffusion for fetal head segmentation).",
            tiny={"variant": "tiny", "pretrained": False}, random_init={"pretrained": False},
            pretrained_predictor=True, weights_fix=_SAM_FIX,
            # The mask-guided paper's SAM fine-tuning (ft_sam_ESTT.py @ 200ae09, lines 170, 184-207):
            # Adam, lr 1e-5, weight decay 0, batch 5, no gradient clipping; Dice + CE, box jitter 0-20 px.
            train_defaults={"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0, "batch_size": 5, "scheduler": "none",
                            "grad_clip": 0.0},
        ),
    )
}


def list_models(pattern: str | None = None, *, task_type: str | None = None) -> list[ModelInfo]:
    """Registered models, optionally filtered by a glob on the name and by task type."""
    return [info for name, info in MODELS.items()
            if (pattern is None or fnmatch.fnmatch(name, pattern)) and task_type in (None, info.task_type)]


def get_model_info(name: str) -> ModelInfo:
    return registry_entry(MODELS, name, "model", listed_by="fetal-bench models list")
