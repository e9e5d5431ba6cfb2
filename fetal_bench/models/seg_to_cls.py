"""The segmentation route to image-quality assessment: segment the abdomen, then count pixels.

He et al. (2025) found that a segmentation model repurposed for classification beats the
classifiers (F1 0.771): a frame is usable when the predicted abdomen covers at least 1% of it.
``unet-iqa`` is that route on fetal-bench's U-Net: it is *trained on the masks* (Dice + cross
entropy, ``fetal-bench train`` does this for models registered with ``trains_on_masks``) and
*scored as a classifier* by the harness.

Frame rule, at the model's input resolution (``image_size``, H x W pixels):

* foreground pixels ``n`` = pixels whose foreground logit wins (probability > 0.5);
* needed ``m = ceil(min_foreground_fraction * H * W)`` (1% by default);
* usable when ``n >= m``; probability of usable ``p = (n + 1/2) / (n + 1/2 + m)``.

``p`` is a monotone function of the foreground count (what the AUC ranks) and crosses 1/2
exactly between ``m - 1`` and ``m`` pixels, so ``argmax`` never meets a tie and agrees with the
rule. The logits returned are ``(0, log((n + 1/2) / m))``, whose softmax is ``(1 - p, p)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.spec import ModelSpec
from fetal_bench.models.unet import UNet

__all__ = ["SegmentationRouteClassifier", "build_unet_iqa", "frame_rule_logits"]

IQA_LABELS = ("unusable", "usable")


def frame_rule_logits(segmentation_logits: torch.Tensor, min_foreground_fraction: float) -> torch.Tensor:
    """Classification logits ``(B, 2)`` from segmentation logits ``(B, 2, H, W)`` (see the module)."""
    logits = segmentation_logits.float()
    foreground = (logits[:, 1] > logits[:, 0]).flatten(1).sum(dim=1).to(torch.float32)
    height, width = logits.shape[-2:]
    needed = max(1, math.ceil(min_foreground_fraction * height * width))
    usable = torch.log((foreground + 0.5) / needed)
    return torch.stack([torch.zeros_like(usable), usable], dim=1)


class SegmentationRouteClassifier(nn.Module):
    """A segmenter whose ``forward`` classifies frames by the foreground-fraction rule.

    ``forward(pixel_values)`` -> classification logits ``(B, 2)``;
    ``forward(pixel_values, output="mask")`` -> segmentation logits ``(B, 2, H, W)`` (training).
    """

    def __init__(self, segmenter: nn.Module, min_foreground_fraction: float, spec: ModelSpec, cfg: dict):
        super().__init__()
        self.segmenter = segmenter
        self.min_foreground_fraction = min_foreground_fraction
        self.spec = spec
        self.model_cfg = cfg

    def forward(self, pixel_values: torch.Tensor, output: str = "label") -> torch.Tensor:
        masks = self.segmenter(pixel_values)
        if output == "mask":
            return masks
        if output != "label":
            raise ValueError(f"output must be 'label' or 'mask', got {output!r}")
        return frame_rule_logits(masks, self.min_foreground_fraction)


def build_unet_iqa(
    *,
    labels: Sequence[str] = IQA_LABELS,
    image_size: Sequence[int] | int = (224, 224),
    base_channels: int = 32,
    depth: int = 4,
    channels: int = 1,
    min_foreground_fraction: float = 0.01,
    weights: str | Path | None = None,
    restore: bool = False,
) -> SegmentationRouteClassifier:
    """The U-Net of :mod:`fetal_bench.models.unet` as a frame classifier.

    Args:
        labels: the two classes, negative first (``unusable``, ``usable``).
        image_size: ``(height, width)`` the frames are resized to; the rule counts pixels there.
        min_foreground_fraction: the share of the frame the abdomen must cover (the paper's 1%).
    """
    if weights is not None:
        raise FetalBenchError(f"unet-iqa takes no weights file ({weights}).", "Pass a checkpoint directory from `fetal-bench train`.")
    labels = tuple(str(label) for label in labels)
    if len(labels) != 2 or labels[0] == labels[1]:
        raise FetalBenchError(f"unet-iqa classifies frames into two classes, got labels {list(labels)}.",
                              "Train it on a binary task (acouslic-iqa), negative class first.")
    if not 0 < min_foreground_fraction < 1:
        raise FetalBenchError(f"min_foreground_fraction={min_foreground_fraction} is not in (0, 1).", "Use e.g. 0.01 (1%).")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if base_channels < 1 or depth < 1:
        raise FetalBenchError(f"base_channels={base_channels}, depth={depth}.", "Use positive values.")
    spec = ModelSpec(name="unet-iqa", task_type="classification", labels=labels, image_size=size, channels=channels,
                     normalize="per_image", extra={"rule": f"usable when >= {min_foreground_fraction:g} of pixels are foreground"})
    cfg = {"labels": list(labels), "image_size": list(size), "base_channels": base_channels, "depth": depth,
           "channels": channels, "min_foreground_fraction": min_foreground_fraction}
    segmenter = UNet(in_channels=channels, num_classes=2, base_channels=base_channels, depth=depth)
    return SegmentationRouteClassifier(segmenter, min_foreground_fraction, spec, cfg)
