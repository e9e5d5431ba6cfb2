"""The segmentation route to image-quality assessment: segment the abdomen, then count pixels.

He et al. (2025) found that a segmentation model repurposed for classification beats the
classifiers (F1 0.771): a frame is usable when the predicted abdomen covers at least 1% of it.
``unet-iqa`` is that route on fetal-bench's U-Net: it is *trained on the masks* (Dice + cross
entropy, ``fetal-bench train`` does this for models registered with ``trains_on_masks``) and
*scored as a classifier* by the harness.

Frame rule, at the model's input resolution (``image_size``, H x W pixels):

* foreground pixels ``n`` = pixels whose foreground logit wins (probability > 0.5);
* needed ``m = ceil(f * H * W)``;
* usable when ``n >= m``; probability of usable ``p = (n + 1/2) / (n + 1/2 + m)``.

The share ``f``. The authors (FetalCLIP-IQA ``model.py`` and ``preprocess.py``, commit
fbcbdd21cc5d3ea12b257735b5316319cec3f49a) zero-pad each frame to a square, resize it to 224 x 224
and call it usable at ``>= 224 * 224 * 0.01`` (501.76, so 502) foreground pixels: 1% of the
*padded square*, i.e. ``0.01 * max(h, w)**2 / (h * w)`` of the frame itself (1.3238% for
ACOUSLIC's 562 x 744 frames). fetal-bench's loader resizes the frame to ``image_size`` without
padding, so with ``rule_reference="padded_frame"`` (the default) ``f`` is that share for a frame
of ``frame_size`` (ACOUSLIC's), which makes the same decision up to one pixel of rounding; with
``rule_reference="input"`` it is ``min_foreground_fraction`` of the input as given (use this when
the input is already the padded square: at 224 x 224 it needs exactly the authors' 502 pixels).

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
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import ModelSpec
from fetal_bench.models.unet import UNet

__all__ = ["SegmentationRouteClassifier", "build_unet_iqa", "frame_rule_logits"]

IQA_LABELS = ("unusable", "usable")
#: ACOUSLIC-AI frame size (rows, columns): the official stacks are 744 x 562 x 840 (x, y, z).
ACOUSLIC_FRAME = (562, 744)
RULE_REFERENCES = ("padded_frame", "input")


def rule_fraction(min_foreground_fraction: float, rule_reference: str, frame_size: Sequence[int]) -> float:
    """The share of the model's input pixels the rule needs (module docstring)."""
    if rule_reference == "input":
        return float(min_foreground_fraction)
    height, width = (int(v) for v in frame_size)
    return float(min_foreground_fraction) * max(height, width) ** 2 / (height * width)


def frame_rule_logits(segmentation_logits: torch.Tensor, min_foreground_fraction: float) -> torch.Tensor:
    """Classification logits ``(B, 2)`` from segmentation logits ``(B, 2, H, W)`` (see the module)."""
    logits = segmentation_logits.float()
    foreground = (logits[:, 1] > logits[:, 0]).flatten(1).sum(dim=1).to(torch.float32)
    height, width = logits.shape[-2:]
    needed = max(1, math.ceil(min_foreground_fraction * height * width))
    usable = torch.log((foreground + 0.5) / needed)
    return torch.stack([torch.zeros_like(usable), usable], dim=1)


class SegmentationRouteClassifier(nn.Module, FetalBenchModel):
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
    rule_reference: str = "padded_frame",
    frame_size: Sequence[int] = ACOUSLIC_FRAME,
    weights: str | Path | None = None,
    restore: bool = False,
) -> SegmentationRouteClassifier:
    """The U-Net of :mod:`fetal_bench.models.unet` as a frame classifier.

    Args:
        labels: the two classes, negative first (``unusable``, ``usable``).
        image_size: ``(height, width)`` the frames are resized to; the rule counts pixels there.
        min_foreground_fraction: the share the abdomen must cover (the paper's 1%) ...
        rule_reference: ... of the zero-padded square of a ``frame_size`` frame
            (``"padded_frame"``, the paper's) or of the input as given (``"input"``).
        frame_size: ``(rows, columns)`` of the original frames (ACOUSLIC's 562 x 744).
    """
    if weights is not None:
        raise FetalBenchError(f"unet-iqa takes no weights file ({weights}).", "Pass a checkpoint directory from `fetal-bench train`.")
    labels = tuple(str(label) for label in labels)
    if len(labels) != 2 or labels[0] == labels[1]:
        raise FetalBenchError(f"unet-iqa classifies frames into two classes, got labels {list(labels)}.",
                              "Train it on a binary task (acouslic-iqa), negative class first.")
    if not 0 < min_foreground_fraction < 1:
        raise FetalBenchError(f"min_foreground_fraction={min_foreground_fraction} is not in (0, 1).", "Use e.g. 0.01 (1%).")
    if rule_reference not in RULE_REFERENCES:
        raise FetalBenchError(f"rule_reference={rule_reference!r} is not known.", f"Use one of: {', '.join(RULE_REFERENCES)}.")
    if len(frame_size) != 2 or any(int(v) < 1 for v in frame_size):
        raise FetalBenchError(f"frame_size={list(frame_size)} is not (rows, columns).", "Pass two positive integers, e.g. 562 744.")
    fraction = rule_fraction(min_foreground_fraction, rule_reference, frame_size)
    if not 0 < fraction < 1:
        raise FetalBenchError(f"The rule needs {fraction:.4f} of the input, not a share in (0, 1).", "Lower min_foreground_fraction.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if base_channels < 1 or depth < 1:
        raise FetalBenchError(f"base_channels={base_channels}, depth={depth}.", "Use positive values.")
    spec = ModelSpec(name="unet-iqa", task_type="classification", labels=labels, image_size=size, channels=channels,
                     normalize="per_image",
                     extra={"rule": f"usable when >= {fraction:.6g} of the input's pixels are foreground "
                                    f"({min_foreground_fraction:g} of the {rule_reference.replace('_', ' ')})"})
    cfg = {"labels": list(labels), "image_size": list(size), "base_channels": base_channels, "depth": depth,
           "channels": channels, "min_foreground_fraction": min_foreground_fraction,
           "rule_reference": rule_reference, "frame_size": [int(v) for v in frame_size]}
    segmenter = UNet(in_channels=channels, num_classes=2, base_channels=base_channels, depth=depth)
    return SegmentationRouteClassifier(segmenter, fraction, spec, cfg)
