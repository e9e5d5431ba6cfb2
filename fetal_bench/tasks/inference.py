"""Running a model over the images of a split: the loop every kind predicts with.

Models come from :func:`fetal_bench.models.create_model`; each carries a ``spec`` saying what
it eats (``image_size``, ``channels``, ``normalize``), and is fed through the same loader as in
training. Batched, on the GPU with mixed precision when there is one.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only
    import torch

__all__ = ["autocast", "is_cuda", "logits_batches", "torch_device"]


def torch_device(device: str | None = None) -> torch.device:
    """``device``, or the GPU when there is one, else the CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_cuda(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU (mixed precision, fp16 pipelines, 8-bit optimizers)."""
    return device.type == "cuda"


def autocast(device: torch.device):
    """bf16 (else fp16) autocast on a GPU; nothing on a CPU."""
    import torch

    if is_cuda(device):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _progress(total: int, description: str | None):
    """A progress bar on stderr (stdout keeps the result table clean when piped); none without a description."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="image", leave=False, file=sys.stderr,
                disable=description is None)


def logits_batches(model, dataset, *, batch_size: int, num_workers: int = 0,
                   description: str | None = None) -> Iterator[tuple[dict, torch.Tensor]]:
    """``(batch, logits)`` for every batch of ``dataset``'s images, in inference mode.

    Images only: a kind reads its reference at native resolution itself, so decoding and resizing
    every label or mask here too (as a training loader does) would be wasted work. The caller's
    code between batches also runs in inference mode and under the autocast.
    """
    import torch

    from fetal_bench.data.loading import make_dataloader

    spec = model.spec
    loader = make_dataloader(dataset, image_size=tuple(spec.image_size), batch_size=batch_size, shuffle=False,
                             num_workers=num_workers, channels=spec.channels, normalize=spec.normalize,
                             label_column=None, mask_column=None)
    device = next(model.parameters()).device
    with torch.inference_mode(), autocast(device), _progress(len(dataset), description) as bar:
        for batch in loader:
            bar.update(len(batch["id"]))
            yield batch, model(batch["pixel_values"].to(device, non_blocking=True))
