"""A compact U-Net for fetal head segmentation.

Encoder: ``depth`` levels of two 3x3 conv + BatchNorm + ReLU, max-pooled between levels,
channels doubling from ``base_channels``; decoder: bilinear upsampling, a 1x1 conv to halve the
channels, concatenation with the skip, two 3x3 convs. Bilinear upsampling instead of transposed
convolutions avoids checkerboard artefacts on smooth skull outlines and halves the decoder's
parameters. Inputs whose sides are not multiples of ``2**depth`` are padded by reflection and the
logits cropped back, so any ``image_size`` works. Output: 2-class logits (background, head).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import SEGMENTATION_LABELS, ModelSpec

__all__ = ["UNet", "build_unet"]


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, 1)
        self.conv = _double_conv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, self.reduce(x)], dim=1))


class UNet(nn.Module):
    """U-Net: ``pixel_values (B, C, H, W)`` -> logits ``(B, num_classes, H, W)``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 32, depth: int = 4):
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.down.extend(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(_Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        x = F.pad(pixel_values, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else pixel_values
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)[..., :height, :width]


class UNetSegmenter(UNet, FetalBenchModel):
    """The registered ``unet``: a :class:`UNet` with a spec."""

    def __init__(self, spec: ModelSpec, cfg: dict, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.model_cfg = cfg

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        logits = super().forward(pixel_values)
        if self.training or not (self.model_cfg.get("postprocess") or {}).get("flip_average"):
            return logits
        # Test-time augmentation a calibrated checkpoint asks for: a head has no preferred
        # left-right side in a frame, so the mirrored image's logits are an equally good estimate.
        return (logits + super().forward(pixel_values.flip(-1)).flip(-1)) / 2


def build_unet(
    *,
    image_size: Sequence[int] | int = (256, 384),
    base_channels: int = 32,
    depth: int = 4,
    channels: int = 1,
    weights: str | Path | None = None,
    restore: bool = False,
    postprocess: dict | None = None,
) -> UNetSegmenter:
    """Build the head-segmentation U-Net (random initialisation).

    Args:
        image_size: ``(height, width)`` the loaders resize to. HC18 frames are 540x800, so the
            default keeps their aspect ratio at about half resolution.
        base_channels: width of the first level (doubles per level).
        depth: number of poolings.
        channels: input channels (1: gray with per-image normalisation).
        postprocess: how logits become a mask (:mod:`fetal_bench.models.seg_postprocess`):
            None for the plain argmax, or the ellipse fit whose offset
            :func:`~fetal_bench.models.seg_postprocess.calibrate_checkpoint` fitted on training
            images. Part of the configuration, so a checkpoint carries its own post-processing.
    """
    from fetal_bench.models.seg_postprocess import check_postprocess

    if weights is not None:
        raise FetalBenchError(f"unet takes no weights file ({weights}).", "Pass a checkpoint directory from `fetal-bench train`.")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    if base_channels < 1 or depth < 1:
        raise FetalBenchError(f"base_channels={base_channels}, depth={depth}.", "Use positive values.")
    spec = ModelSpec(name="unet", task_type="segmentation", labels=SEGMENTATION_LABELS, image_size=size,
                     channels=channels, normalize="per_image")
    cfg = {"image_size": list(size), "base_channels": base_channels, "depth": depth, "channels": channels}
    postprocess = check_postprocess(postprocess)
    if postprocess is not None:  # absent, not null, by default: older checkpoints' configs stay identical
        cfg["postprocess"] = postprocess
    return UNetSegmenter(spec, cfg, in_channels=channels, num_classes=2, base_channels=base_channels, depth=depth)
