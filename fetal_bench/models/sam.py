"""Segment Anything (SAM) fine-tuned with box prompts, behind one name and two backends.

* ``backend="transformers"`` (default): :class:`transformers.SamModel` from
  ``facebook/sam-vit-base`` (what the mask-guided paper used; batches natively). Loaded from the
  Hugging Face cache, downloaded when online.
* ``backend="segment-anything"``: Meta's reference implementation with the official ``.pth``
  checkpoints (URL + md5 pinned below; the md5 is the one Meta's file names abbreviate). The
  file is verified before ``torch.load(weights_only=True)`` reads it.

Training recipe (the mask-guided paper): image encoder and prompt encoder frozen, mask decoder
trained; optionally LoRA adapters (peft) on the image encoder's ``qkv`` projections
(``lora_rank > 0``). The frozen encoder runs under ``torch.no_grad``: it is >95% of SAM's
compute and this keeps its activations out of memory.

Inputs: ``pixel_values (B, 3, H, W)`` at ``spec.image_size`` (256x256 by default, the paper's
size) normalised with ImageNet statistics (SAM's own), resized inside to the encoder's square
input (1024). ``boxes (B, 4)`` are ``x0, y0, x1, y1`` in pixels of the input frame. Without
boxes (the evaluation harness has no prompts) the whole frame is the box: a prompt-free score,
lower than the paper's box-prompted Dice; the few-shot protocol scores with jittered
ground-truth boxes as the paper does. Output: one foreground logit map ``(B, 1, H, W)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.hub import FetalBenchModel
from fetal_bench.models.spec import IMAGENET_NORMALIZE, SEGMENTATION_LABELS, ModelSpec
from fetal_bench.data.pinned_files import PretrainedWeightsWarning, WeightsFile, find_weights, offline

__all__ = ["HF_CHECKPOINTS", "OFFICIAL_CHECKPOINTS", "SAM_VARIANTS", "BoxPromptSAM", "build_sam"]

#: Encoder sizes. ``tiny`` is for tests and benchmarks of the machinery only (no weights exist).
SAM_VARIANTS: dict[str, dict[str, Any]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "heads": 12, "global_attn": (2, 5, 8, 11)},
    "vit_l": {"embed_dim": 1024, "depth": 24, "heads": 16, "global_attn": (5, 11, 17, 23)},
    "vit_h": {"embed_dim": 1280, "depth": 32, "heads": 16, "global_attn": (7, 15, 23, 31)},
    "tiny": {"embed_dim": 32, "depth": 2, "heads": 2, "global_attn": (1,), "image_size": 64, "prompt_dim": 32,
             "window": 2, "decoder_mlp": 64, "decoder_heads": 2, "iou_hidden": 32, "mask_in_chans": 4},
}
_FULL = {"image_size": 1024, "prompt_dim": 256, "window": 14, "decoder_mlp": 2048, "decoder_heads": 8,
         "iou_hidden": 256, "mask_in_chans": 16}
_PATCH = 16

_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
#: Meta's official checkpoints (Apache-2.0). Meta publishes no checksum file; the names carry
#: the first six hex digits of each file's md5, and the full md5s below are the ones widely
#: used to verify these files. Size and md5 are checked before torch.load(weights_only=True).
OFFICIAL_CHECKPOINTS: dict[str, WeightsFile] = {
    "vit_b": WeightsFile("sam_vit_b_01ec64.pth", _BASE_URL + "sam_vit_b_01ec64.pth", md5="01ec64d29a2fca3f0661936605ae66f8",
                         license="Apache-2.0", description="SAM ViT-B (Kirillov et al. 2023)"),
    "vit_l": WeightsFile("sam_vit_l_0b3195.pth", _BASE_URL + "sam_vit_l_0b3195.pth", md5="0b3195507c641ddb6910d2bb5adee89c",
                         license="Apache-2.0", description="SAM ViT-L (Kirillov et al. 2023)"),
    "vit_h": WeightsFile("sam_vit_h_4b8939.pth", _BASE_URL + "sam_vit_h_4b8939.pth", md5="4b8939a88964f0f4ff5f5b2642c598a6",
                         license="Apache-2.0", description="SAM ViT-H (Kirillov et al. 2023)"),
}
#: transformers' conversions of the same weights on the Hugging Face Hub.
HF_CHECKPOINTS = {"vit_b": "facebook/sam-vit-base", "vit_l": "facebook/sam-vit-large", "vit_h": "facebook/sam-vit-huge"}


class BoxPromptSAM(nn.Module, FetalBenchModel):
    """SAM with box prompts; see the module docstring for inputs and outputs."""

    def __init__(self, sam: nn.Module, backend: str, encoder_size: int, spec: ModelSpec, cfg: dict[str, Any],
                 lora_rank: int = 0, lora_alpha: float = 16.0):
        super().__init__()
        self.sam = sam
        self.backend = backend
        self.encoder_size = encoder_size
        self.spec = spec
        self.model_cfg = cfg
        self.lora = lora_rank > 0
        encoder = self._image_encoder()
        for parameter in self.sam.parameters():
            parameter.requires_grad_(False)
        if self.lora:
            from peft import LoraConfig, inject_adapter_in_model

            # Both backends name the image encoder's fused attention projection `qkv`.
            inject_adapter_in_model(LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                                               target_modules=["qkv"]), encoder)
            for name, parameter in encoder.named_parameters():
                parameter.requires_grad_("lora_" in name)
        for parameter in self.sam.mask_decoder.parameters():
            parameter.requires_grad_(True)

    def _image_encoder(self) -> nn.Module:
        return self.sam.vision_encoder if self.backend == "transformers" else self.sam.image_encoder

    def forward(self, pixel_values: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.embed(pixel_values), boxes, tuple(pixel_values.shape[-2:]))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image embeddings (the expensive part); reuse them for several prompts with :meth:`decode`."""
        size = self.encoder_size
        images = pixel_values
        if tuple(pixel_values.shape[-2:]) != (size, size):
            images = F.interpolate(pixel_values, size=(size, size), mode="bilinear", align_corners=False)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.lora):
            return self._encode(images)

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor | None, input_size: tuple[int, int]) -> torch.Tensor:
        """Foreground logits ``(B, 1, H, W)`` for box prompts in the ``input_size`` frame."""
        batch, (height, width), size = embeddings.shape[0], input_size, self.encoder_size
        if boxes is None:
            boxes = embeddings.new_tensor([0.0, 0.0, width - 1.0, height - 1.0]).expand(batch, 4)
        # Prompts live in the encoder's frame: scale x by size/width and y by size/height.
        scale = embeddings.new_tensor([size / width, size / height, size / width, size / height])
        boxes = boxes.to(embeddings.device, embeddings.dtype) * scale
        if self.backend == "transformers":
            output = self.sam(image_embeddings=embeddings, input_boxes=boxes[:, None, :], multimask_output=False)
            low_res = output.pred_masks[:, 0]  # (B, 1, h, w)
        else:
            low_res = self._decode_official(embeddings, boxes)
        return F.interpolate(low_res.float(), size=(height, width), mode="bilinear", align_corners=False)

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        if self.backend == "transformers":
            return self.sam.vision_encoder(images).last_hidden_state
        return self.sam.image_encoder(images)

    def _decode_official(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the prompt encoder is frozen and boxes need no gradient
            sparse, dense = self.sam.prompt_encoder(points=None, boxes=boxes, masks=None)
            positional = self.sam.prompt_encoder.get_dense_pe()
        masks = []
        # segment-anything's decoder pairs ONE image with N prompts (it repeats the image per
        # prompt), so a batch of images with one box each is decoded image by image.
        for i in range(len(boxes)):
            low_res, _ = self.sam.mask_decoder(image_embeddings=embeddings[i:i + 1], image_pe=positional,
                                               sparse_prompt_embeddings=sparse[i:i + 1],
                                               dense_prompt_embeddings=dense[i:i + 1], multimask_output=False)
            masks.append(low_res)
        return torch.cat(masks)


def _official_sam(variant: str) -> nn.Module:
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    v = {**_FULL, **SAM_VARIANTS[variant]}
    size, dim = v["image_size"], v["prompt_dim"]
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=v["depth"], embed_dim=v["embed_dim"], img_size=size, mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=v["heads"], patch_size=_PATCH, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=v["global_attn"], window_size=v["window"], out_chans=dim),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(size // _PATCH, size // _PATCH),
                                     input_image_size=(size, size), mask_in_chans=v["mask_in_chans"]),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=v["decoder_mlp"], num_heads=v["decoder_heads"]),
            transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=v["iou_hidden"]),
        # Unused here (inputs arrive normalised) but part of the official state dict.
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    )


def _hf_config(variant: str):
    from transformers import SamConfig

    v = {**_FULL, **SAM_VARIANTS[variant]}
    dim = v["prompt_dim"]
    return SamConfig(
        vision_config={"hidden_size": v["embed_dim"], "num_hidden_layers": v["depth"], "num_attention_heads": v["heads"],
                       "image_size": v["image_size"], "patch_size": _PATCH, "output_channels": dim,
                       "window_size": v["window"], "global_attn_indexes": list(v["global_attn"]), "num_pos_feats": dim // 2},
        prompt_encoder_config={"hidden_size": dim, "image_size": v["image_size"], "patch_size": _PATCH,
                               "mask_input_channels": v["mask_in_chans"]},
        mask_decoder_config={"hidden_size": dim, "mlp_dim": v["decoder_mlp"], "num_attention_heads": v["decoder_heads"],
                             "iou_head_hidden_dim": v["iou_hidden"]},
    )


def _load_official(sam: nn.Module, variant: str, weights: str | Path | None, required: bool) -> str:
    spec = OFFICIAL_CHECKPOINTS[variant]
    path = find_weights(spec, path=weights, env_var=f"FETAL_BENCH_SAM_{variant.upper()}")
    if path is None:
        message = (f"The official SAM {variant} checkpoint ({spec.filename}) is not available (offline or the "
                   f"download failed).")
        if required:
            raise FetalBenchError(message, f"Download {spec.url} and pass it as the checkpoint, or put it in the fetal-bench weights cache.")
        warnings.warn(message + " SAM starts from random weights: useless without training.", PretrainedWeightsWarning, stacklevel=4)
        return "none"
    # Verified against the pinned md5 above; weights_only refuses anything but tensors.
    state = torch.load(path, map_location="cpu", weights_only=True)
    sam.load_state_dict(state)
    return spec.filename


def _load_hf(variant: str, required: bool):
    from transformers import SamModel

    repo = HF_CHECKPOINTS[variant]
    try:
        return SamModel.from_pretrained(repo, local_files_only=offline()), repo
    except Exception as err:  # not cached and offline, no network, gated: all mean "not available"
        message = f"{repo} is not available ({type(err).__name__}: {str(err).splitlines()[0][:160]})."
        if required:
            raise FetalBenchError(message, f"Run once online (it is cached by huggingface_hub), or set HF_HOME to a cache holding {repo}.") from err
        warnings.warn(message + " SAM starts from random weights: useless without training.", PretrainedWeightsWarning, stacklevel=4)
        return None, "none"


def build_sam(
    *,
    backend: str = "transformers",
    variant: str = "vit_b",
    image_size: Sequence[int] | int | None = None,
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
    pretrained: bool | str = "auto",
    weights: str | Path | None = None,
    restore: bool = False,
) -> BoxPromptSAM:
    """Build box-prompted SAM.

    Args:
        backend: ``"transformers"`` (SamModel, ``facebook/sam-vit-*``) or ``"segment-anything"``
            (official ``.pth``).
        variant: ``"vit_b"``, ``"vit_l"``, ``"vit_h"``, or ``"tiny"`` (tests: random weights only).
        image_size: ``(height, width)`` fed by the loaders (default 256x256, the paper's; the
            encoder input is always its own square size).
        lora_rank: > 0 adds LoRA adapters of this rank to the image encoder's qkv projections
            (trained together with the mask decoder).
        pretrained: ``"auto"`` (weights when they can be had, else random with a warning),
            True (required), False (random).
        weights: the official ``.pth`` file (segment-anything backend); verified against its md5.
        restore: structure only (a checkpoint directory is about to be loaded).
    """
    if backend not in ("transformers", "segment-anything"):
        raise FetalBenchError(f"backend={backend!r} is not understood.", "Use 'transformers' or 'segment-anything'.")
    if variant not in SAM_VARIANTS:
        raise FetalBenchError(f"variant={variant!r} is not understood.", f"Use one of: {', '.join(SAM_VARIANTS)}.")
    if weights is not None and backend != "segment-anything":
        raise FetalBenchError("A weights file is only read by the segment-anything backend.",
                              "Pass backend='segment-anything' (--model-opt backend=segment-anything), or no file.")
    if pretrained not in ("auto", True, False):
        raise FetalBenchError(f"pretrained={pretrained!r} is not understood.", "Use 'auto', True or False.")
    encoder_size = int({**_FULL, **SAM_VARIANTS[variant]}["image_size"])
    if image_size is None:
        image_size = (256, 256) if variant != "tiny" else (encoder_size, encoder_size)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(v) for v in image_size)
    want = not restore and (pretrained is not False or weights is not None) and variant != "tiny"
    required = pretrained is True or weights is not None
    source = "none"
    if backend == "segment-anything":
        sam = _official_sam(variant)
        if want:
            source = _load_official(sam, variant, weights, required)
    else:
        sam = None
        if want:
            sam, source = _load_hf(variant, required)
        if sam is None:
            from transformers import SamModel

            sam = SamModel(_hf_config(variant))
    spec = ModelSpec(name="sam", task_type="segmentation", labels=SEGMENTATION_LABELS, image_size=size, channels=3,
                     normalize=IMAGENET_NORMALIZE, prompt="box", extra={} if restore else {"initialised_from": source})
    cfg = {"backend": backend, "variant": variant, "image_size": list(size), "lora_rank": lora_rank,
           "lora_alpha": lora_alpha, "pretrained": pretrained}
    return BoxPromptSAM(sam, backend, encoder_size, spec, cfg, lora_rank=lora_rank, lora_alpha=lora_alpha)
