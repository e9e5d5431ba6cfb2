"""FetalCLIP-IQA settings against the authors' code (issue 13, item 9).

Source: github.com/donglihe-hub/FetalCLIP-IQA, commit fbcbdd21cc5d3ea12b257735b5316319cec3f49a
(``main.py``: LoRA r=8, alpha 16, dropout 0.1 on ``c_fc``, ``c_proj``, ``out_proj``; ``model.py``:
usable at >= 224 * 224 * 0.01 foreground pixels; ``preprocess.py``: frames zero-padded to a square).
"""

from __future__ import annotations

import math

import pytest
import torch

from fetal_bench.errors import FetalBenchError
from fetal_bench.models.seg_to_cls import build_unet_iqa, frame_rule_logits, rule_fraction

# FetalCLIP_config.json of the authors' repository (same commit): a CLIP ViT-L/14 image tower.
FETALCLIP_CONFIG = {"embed_dim": 768, "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
                    "text_cfg": {"context_length": 117, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}}
TINY_CONFIG = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 2, "width": 16, "patch_size": 8, "head_width": 8},
               "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1}}


def test_fetalclip_lora_on_vit_l14_has_the_authors_parameter_count():
    open_clip = pytest.importorskip("open_clip")
    from fetal_bench.models.lora import FETALCLIP_LORA_TARGETS, add_lora, inert_lora_parameters

    with torch.device("meta"):  # the architecture without allocating its 300 M weights
        tower = open_clip.model._build_vision_tower(FETALCLIP_CONFIG["embed_dim"], FETALCLIP_CONFIG["vision_cfg"])
        adapted = add_lora(tower, FETALCLIP_LORA_TARGETS["paper"], r=8, alpha=16, dropout=0.1)
    # 24 blocks x r 8 x ((1024 + 4096) c_fc + (4096 + 1024) c_proj + (1024 + 1024) out_proj)
    assert sum(p.numel() for p in tower.parameters() if p.requires_grad) == 24 * 8 * (5120 + 5120 + 2048) == 2_359_296
    assert adapted == 72
    assert inert_lora_parameters(tower) == 24 * 8 * 2048 == 393_216


def test_building_fetalclip_leaves_open_clip_registry_as_it_was():
    open_clip = pytest.importorskip("open_clip")
    from fetal_bench.models.lora import build_fetalclip_lora

    registered = dict(open_clip.factory._MODEL_CONFIGS)
    model = build_fetalclip_lora(config=TINY_CONFIG, restore=True)
    assert model.spec.extra["trainable_parameters"] == model.spec.extra["lora_parameters"] + 8 * 2 + 2  # + head
    assert dict(open_clip.factory._MODEL_CONFIGS) == registered


def _adapted(model) -> set[str]:
    return {name.split(".lora_")[0].removeprefix("encoder.transformer.") for name, _ in model.named_parameters()
            if ".lora_" in name}


def _adapters_without_gradient(model) -> list[str]:
    """LoRA parameters that get no gradient from one backward pass (lora_B made non-zero first,
    so every adapter that acts has a path to the loss)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    model.train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    return [name for name, p in model.named_parameters()
            if ".lora_" in name and (p.grad is None or not p.grad.any())]


def test_paper_targets_are_exactly_the_authors_module_names_and_out_proj_is_inert():
    pytest.importorskip("open_clip")
    from fetal_bench.models.lora import build_fetalclip_lora

    model = build_fetalclip_lora(config=TINY_CONFIG, restore=True)
    assert model.model_cfg["lora_targets"] == "paper"
    assert _adapted(model) == {f"resblocks.{i}.{m}" for i in range(2) for m in ("attn.out_proj", "mlp.c_fc", "mlp.c_proj")}
    # As in the authors' run: nn.MultiheadAttention reads out_proj.weight directly, so those
    # adapters never receive a gradient.
    silent = {".".join(name.split(".lora_")[0].split(".")[-2:]) for name in _adapters_without_gradient(model)}
    assert silent == {"attn.out_proj"}
    assert model.spec.extra["inert_lora_parameters"] == 2 * 8 * (16 + 16)


def test_attention_targets_make_every_adapter_act():
    pytest.importorskip("open_clip")
    from fetal_bench.models.lora import build_fetalclip_lora

    model = build_fetalclip_lora(config=TINY_CONFIG, restore=True, lora_targets="attention")
    assert model.spec.extra["inert_lora_parameters"] == 0
    assert _adapters_without_gradient(model) == []
    with pytest.raises(FetalBenchError, match="lora_targets"):
        build_fetalclip_lora(config=TINY_CONFIG, restore=True, lora_targets="qkv")


def _needed(model, size) -> int:
    """Smallest foreground count the model calls usable at input ``size``."""
    logits = torch.zeros(1, 2, *size)
    logits[:, 0] = 1.0
    for n in range(size[0] * size[1] + 1):
        logits[0, 1].view(-1)[:n] = 2.0
        if frame_rule_logits(logits, model.min_foreground_fraction).argmax(dim=1).item() == 1:
            return n
    raise AssertionError


def test_segmentation_route_threshold_is_one_percent_of_the_padded_square():
    # The authors' integer threshold at their 224 x 224 padded square: >= 501.76 -> 502 pixels.
    square = build_unet_iqa(image_size=(224, 224), rule_reference="input", base_channels=2, depth=1)
    assert math.ceil(224 * 224 * 0.01) == 502 and _needed(square, (224, 224)) == 502
    # On a frame resized to 224 x 224 without padding, 1% of the padded 744-square of a 562 x 744
    # ACOUSLIC frame is 0.01 * 744 / 562 of the input: 664.25 -> 665 pixels.
    stretched = build_unet_iqa(image_size=(224, 224), base_channels=2, depth=1)
    assert stretched.model_cfg["rule_reference"] == "padded_frame" and stretched.model_cfg["frame_size"] == [562, 744]
    assert rule_fraction(0.01, "padded_frame", (562, 744)) == pytest.approx(0.01 * 744 / 562, rel=1e-12)
    assert _needed(stretched, (224, 224)) == 665
    # Same decision in original frame pixels, up to the rounding of one input pixel.
    original_per_input_pixel = 562 * 744 / (224 * 224)
    assert abs(665 * original_per_input_pixel - 0.01 * 744 ** 2) < original_per_input_pixel
    with pytest.raises(FetalBenchError, match="rule_reference"):
        build_unet_iqa(rule_reference="square")
