"""Losses, quick validation metrics and box prompts of the training objectives (torch; imported when training)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["boxes_from_masks", "dice_ce_loss", "foreground_probability", "segmentation_dice"]


def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) softmax or (B, 1, H, W) sigmoid -> (B, H, W) foreground probability."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1:].sum(dim=1)


def dice_ce_loss(logits: torch.Tensor, masks: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Cross-entropy (or BCE for one channel) plus soft Dice of the foreground, per image.

    Dice is computed per image and averaged, so small heads weigh as much as large ones; the
    cross-entropy keeps gradients alive where Dice saturates.
    """
    logits = logits.float()
    target = (masks > 0).to(logits.dtype)
    if logits.shape[1] == 1:
        ce = F.binary_cross_entropy_with_logits(logits[:, 0], target)
    else:
        ce = F.cross_entropy(logits, (masks > 0).long())
    probability = foreground_probability(logits)
    intersection = (probability * target).sum(dim=(1, 2))
    denominator = probability.sum(dim=(1, 2)) + target.sum(dim=(1, 2))
    dice = (2 * intersection + smooth) / (denominator + smooth)
    return ce + (1 - dice).mean()


@torch.no_grad()
def segmentation_dice(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Hard Dice per image at the model's resolution (1 where both masks are empty)."""
    predicted = foreground_probability(logits.float()) > 0.5
    truth = masks > 0
    intersection = (predicted & truth).sum(dim=(1, 2)).float()
    total = predicted.sum(dim=(1, 2)).float() + truth.sum(dim=(1, 2)).float()
    return torch.where(total > 0, 2 * intersection / total.clamp(min=1), torch.ones_like(total))


def boxes_from_masks(masks: torch.Tensor, *, jitter: tuple[float, float] = (0.0, 0.0),
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Box prompts ``(B, 4)`` as ``x0, y0, x1, y1`` pixels from masks ``(B, H, W)``.

    Each side of the tight bounding box moves *outward* by its own uniform draw in
    ``jitter`` (pixels), as in the mask-guided paper (0-20 px), clipped to the image. An empty
    mask gets the whole image.
    """
    batch, height, width = masks.shape
    boxes = torch.empty(batch, 4, dtype=torch.float32)
    low, high = jitter
    draws = low + (high - low) * torch.rand(batch, 4, generator=generator)
    masks_cpu = (masks > 0).cpu()
    for i in range(batch):
        rows = torch.nonzero(masks_cpu[i].any(dim=1)).flatten()
        cols = torch.nonzero(masks_cpu[i].any(dim=0)).flatten()
        if len(rows) == 0:
            boxes[i] = torch.tensor([0.0, 0.0, width - 1.0, height - 1.0])
            continue
        x0, x1 = float(cols[0]), float(cols[-1])
        y0, y1 = float(rows[0]), float(rows[-1])
        boxes[i] = torch.tensor([
            max(0.0, x0 - float(draws[i, 0])), max(0.0, y0 - float(draws[i, 1])),
            min(width - 1.0, x1 + float(draws[i, 2])), min(height - 1.0, y1 + float(draws[i, 3])),
        ])
    return boxes.to(masks.device)
