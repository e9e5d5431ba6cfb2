"""Plane classifiers on torchvision backbones, for gray ultrasound.

Grayscale: by default the network takes **one channel** (``channels=1``) with per-image
standardisation. The first convolution's pretrained RGB kernels are summed over the colour
axis: a gray image repeated three times would produce exactly the same activations (up to the
per-channel normalisation), so the ImageNet features survive, while the data loader moves and
the first layer computes a third as much. ``channels=3`` (gray repeated, ImageNet mean/std) is
there for protocols that copy a paper's torchvision pipeline literally.

Pretrained weights (``pretrained``):

* ``"auto"`` (default): ImageNet-1k weights from torchvision's cache
  (``$TORCH_HOME/hub/checkpoints``), downloaded there when missing unless offline
  (``FETAL_BENCH_OFFLINE``/``HF_HUB_OFFLINE``); when they cannot be had, random
  initialisation with a :class:`~fetal_bench.data.pinned_files.PretrainedWeightsWarning`;
* ``True``: the same, but failing to get them is an error;
* ``False``: random initialisation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import IMAGENET_NORMALIZE, ModelSpec
from fetal_bench.data.pinned_files import PretrainedWeightsWarning, offline

__all__ = ["DEFAULT_LABELS", "ImageClassifier", "build_torchvision_classifier"]

#: Default output classes: the six FETAL_PLANES_DB planes (training sets them from the data).
DEFAULT_LABELS = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other")
SUPPORTED = ("resnet18", "resnet50", "densenet121", "densenet169", "efficientnet_b0", "mobilenet_v2", "vit_b_16")
_VIT = ("vit_b_16",)


class ImageClassifier(nn.Module, FetalBenchModel):
    """A backbone whose forward maps ``pixel_values (B, C, H, W)`` to logits ``(B, K)``."""

    def __init__(self, backbone: nn.Module, spec: ModelSpec, cfg: dict[str, Any]):
        super().__init__()
        self.net = backbone
        self.spec = spec
        self.model_cfg = cfg

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values)


def build_torchvision_classifier(
    arch: str,
    *,
    labels: Sequence[str] = DEFAULT_LABELS,
    channels: int = 1,
    image_size: Sequence[int] | int = (224, 224),
    pretrained: bool | str = "auto",
    dropout: float | None = None,
    weights: str | Path | None = None,
    restore: bool = False,
    normalize: str = "auto",
) -> ImageClassifier:
    """Build a torchvision classifier for ``labels`` on gray images.

    Args:
        arch: a torchvision model name (one of :data:`SUPPORTED`).
        labels: output class names, in logit order.
        channels: 1 (summed first convolution, per-image normalisation) or 3 (gray repeated,
            ImageNet normalisation).
        image_size: ``(height, width)`` fed by the loaders; ViT needs it square and a multiple
            of 16 (its position embeddings are interpolated from 224 when pretrained).
        pretrained: ``"auto"``, ``True`` or ``False`` (see the module docstring).
        dropout: replace the classifier's dropout probability (EfficientNet/MobileNet/ViT).
        weights: not supported (torchvision weights come from its cache); kept so that
            ``create_model(name, checkpoint=FILE)`` fails with a clear message.
        restore: build the structure only (a checkpoint is about to be loaded).
        normalize: ``"auto"`` (as ``channels`` says), ``"imagenet"``, ``"per_image"`` or
            ``"none"`` (pixels in [0, 1], as FU-LoRA's ``Normalize([0,0,0],[1,1,1])``).
    """
    import torchvision

    if weights is not None:
        raise FetalBenchError(f"{arch} takes no weights file ({weights}).",
                              "Pass a checkpoint directory from `fetal-bench train`; ImageNet weights come from torchvision's cache.")
    if arch not in SUPPORTED:
        raise FetalBenchError(f"Unsupported backbone {arch!r}.", f"Use one of: {', '.join(SUPPORTED)}.")
    labels = tuple(str(label) for label in labels)
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise FetalBenchError(f"labels={labels!r}: a classifier needs at least two distinct class names.",
                              "Pass the dataset's class names.")
    if channels not in (1, 3):
        raise FetalBenchError(f"channels={channels} is not supported.", "Use channels=1 (summed first conv) or 3.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if arch in _VIT and (size[0] != size[1] or size[0] % 16):
        raise FetalBenchError(f"ViT-B/16 needs a square image_size that is a multiple of 16, got {size}.",
                              "Pass e.g. image_size=(224, 224).")
    if normalize not in ("auto", "imagenet", "per_image", "none"):
        raise FetalBenchError(f"normalize={normalize!r} is not understood.", "Use 'auto', 'imagenet', 'per_image' or 'none'.")
    if pretrained not in ("auto", True, False):
        raise FetalBenchError(f"pretrained={pretrained!r} is not understood.", "Use 'auto', True or False.")

    kwargs: dict[str, Any] = {"image_size": size[0]} if arch in _VIT else {}
    backbone = torchvision.models.get_model(arch, weights=None, **kwargs)
    used = "none"
    if not restore and pretrained is not False:
        state = _imagenet_state_dict(arch, required=pretrained is True)
        if state is not None:
            if arch in _VIT and size[0] != 224:
                from torchvision.models.vision_transformer import interpolate_embeddings

                state = interpolate_embeddings(size[0], 16, state)
            backbone.load_state_dict(state)
            used = "imagenet"
    _adapt_first_conv(backbone, channels)
    _replace_head(backbone, len(labels), dropout)

    spec = ModelSpec(
        name=arch, task_type="classification", labels=labels, image_size=size, channels=channels,
        normalize={"auto": "per_image" if channels == 1 else IMAGENET_NORMALIZE, "imagenet": IMAGENET_NORMALIZE,
                   "per_image": "per_image", "none": None}[normalize],
        extra={} if restore else {"initialised_from": used},
    )
    cfg = {"arch": arch, "labels": list(labels), "channels": channels, "image_size": list(size),
           "pretrained": pretrained, "dropout": dropout, "normalize": normalize}
    return ImageClassifier(backbone, spec, cfg)


def _imagenet_state_dict(arch: str, *, required: bool) -> dict[str, torch.Tensor] | None:
    """torchvision's ImageNet weights for ``arch`` from its cache (or a download), else None."""
    import torchvision

    weights_enum = torchvision.models.get_model_weights(arch).DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_enum.url).name
    try:
        if cached.is_file():
            # torchvision's own files, in its cache; weights_only refuses anything but tensors.
            return torch.load(cached, map_location="cpu", weights_only=True)
        if not offline():
            return weights_enum.get_state_dict(progress=True, check_hash=True)
        reason = "offline mode is on (FETAL_BENCH_OFFLINE/HF_HUB_OFFLINE) and they are not cached"
    except Exception as err:  # network down, truncated file, hash mismatch: all mean "not available"
        reason = f"{type(err).__name__}: {err}"
    message = (f"ImageNet weights for {arch} are not available ({reason}); it starts from random "
               f"initialisation. Put {Path(weights_enum.url).name} in {cached.parent} to use them.")
    if required:
        raise FetalBenchError(message, f"Download {weights_enum.url} into {cached.parent}, or pass pretrained='auto'/False.")
    warnings.warn(message, PretrainedWeightsWarning, stacklevel=3)
    return None


def _set_module(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _adapt_first_conv(backbone: nn.Module, channels: int) -> None:
    if channels == 3:
        return
    name, conv = next((n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        # Summing the RGB kernels equals feeding the gray image to all three inputs.
        new.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    _set_module(backbone, name, new)


def _replace_head(backbone: nn.Module, num_classes: int, dropout: float | None) -> None:
    name, linear = [(n, m) for n, m in backbone.named_modules() if isinstance(m, nn.Linear)][-1]
    _set_module(backbone, name, nn.Linear(linear.in_features, num_classes))
    if dropout is not None:
        for module in backbone.modules():
            if isinstance(module, nn.Dropout):
                module.p = float(dropout)
