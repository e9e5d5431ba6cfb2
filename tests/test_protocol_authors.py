"""The papers' protocols train as the authors' code did (issue 24): every training setting is the
authors' (with its source) or a labelled difference of ours, and real and synthetic pairs enter a
segmentation model with the same geometry."""

from __future__ import annotations

import io
import json
from dataclasses import fields

import numpy as np
import pytest

from fetal_bench.errors import FetalBenchError
from fetal_bench.protocols import run_protocol
from fetal_bench.protocols.authors import (
    AUTHORS_SETTINGS,
    NOT_TRAINING,
    Authors,
    Inert,
    Ours,
    departures,
    iqa_config,
)
from fetal_bench.training.config import TrainConfig

PAPER_PROTOCOLS = {"fu-lora-zero-shot": {"synthetic": "syn/"}, "sam-few-shot": {}}
IQA_MODELS = ("fetalclip_lora", "vit_lora", "unet-iqa")


@pytest.mark.parametrize("name", sorted(AUTHORS_SETTINGS))
def test_every_training_setting_has_the_authors_source_or_a_label(name):
    """A new TrainConfig field cannot slip into a paper protocol unclassified."""
    settings = AUTHORS_SETTINGS[name]
    for field in fields(TrainConfig):
        if field.name in NOT_TRAINING:
            assert field.name not in settings, field.name
            continue
        entry = settings.get(field.name)
        assert entry is not None, f"{name}: {field.name} is neither the authors' nor labelled"
        if isinstance(entry, Authors):
            assert "@" in entry.source and len(entry.source.split("@")[1]) >= 40, entry.source  # repo@commit
        elif isinstance(entry, Ours):
            assert entry.why
        else:
            assert isinstance(entry, Inert) and entry.why


@pytest.mark.parametrize("name", sorted(PAPER_PROTOCOLS))
def test_paper_protocols_train_without_clipping_in_the_authors_precision(name, tmp_path):
    summary = run_protocol(name, tmp_path / name, dry_run=True, overrides=PAPER_PROTOCOLS[name])
    configs = summary["train_configs"]
    assert len(configs) == len(summary["rows"]) > 0
    for run, config in configs.items():
        assert config["grad_clip"] == 0.0, run  # the authors never clip (FU-LoRA cell 47; ft_sam 203-207)
        assert config["mixed_precision"] == "no", run  # fp32: neither uses autocast
    assert {row["authors_settings"] for row in summary["rows"]} == {"exact or documented"}


@pytest.mark.parametrize(("override", "value", "setting"), [
    ("train.grad_clip", 1.0, "grad_clip=1.0"),
    ("train.mixed_precision", "bf16", "mixed_precision='bf16'"),
    ("train.weight_decay", 0.0001, "weight_decay=0.0001"),
])
def test_a_setting_the_authors_lack_is_reported(override, value, setting, tmp_path):
    summary = run_protocol("fu-lora-zero-shot", tmp_path / "fu", dry_run=True,
                           overrides={"synthetic": "syn/", override: value})
    flagged = {row["authors_settings"] for row in summary["rows"]}
    assert all(setting in text and "not the authors'" in text for text in flagged), flagged


def test_sam_protocol_flags_clipping_added_back(tmp_path):
    summary = run_protocol("sam-few-shot", tmp_path / "sam", dry_run=True, overrides={"train.grad_clip": 1.0})
    assert all(row["authors_settings"].startswith("grad_clip=1.0, not the authors' 0.0") for row in summary["rows"])


@pytest.mark.parametrize("model", IQA_MODELS)
def test_iqa_runs_train_as_the_authors_lightning_loop(model):
    config = iqa_config(model).to_dict()
    assert departures(f"acouslic-iqa:{model}", config) == []
    assert config["grad_clip"] == 0.0 and config["scheduler"] == "none" and config["epochs"] == 5
    assert config["optimizer"] == "adamw" and config["lr"] == 3e-4 and config["weight_decay"] == 0.01
    clipped = {**config, "grad_clip": 1.0}
    assert departures(f"acouslic-iqa:{model}", clipped) == [
        "grad_clip=1.0, not the authors' 0.0 (donglihe-hub/FetalCLIP-IQA@fbcbdd21cc5d3ea12b257735b5316319cec3f49a "
        "main.py:230-241 (L.Trainer without gradient_clip_val: no clipping))"]


def test_clipping_stays_our_default_and_zero_turns_it_off():
    """Other models keep the loop's clip-norm 1.0 (a labelled choice of ours); 0 means none."""
    import torch
    from accelerate import Accelerator

    from fetal_bench.training.config import resolve_config
    from fetal_bench.training.loop import optimization_step

    assert resolve_config(TrainConfig(model="resnet18", task="phantom-planes", output="x")).grad_clip == 1.0
    assert resolve_config(TrainConfig(model="resnet18", task="phantom-planes", output="x", grad_clip=0)).grad_clip == 0

    class Objective:
        def forward(self, model, batch, seed):
            return model(batch["x"])

        def loss(self, logits, batch):
            return (logits ** 2).sum() * 1e3  # a large gradient: clipping would shrink it

    accelerator = Accelerator(cpu=True)
    calls = []
    original = accelerator.clip_grad_norm_
    accelerator.clip_grad_norm_ = lambda params, norm: calls.append(norm) or original(params, norm)
    for clip, expected in ((0.0, []), (None, []), (1.0, [1.0])):
        calls.clear()
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        optimization_step(model, {"x": torch.ones(4, 3)}, Objective(), optimizer, accelerator, list(model.parameters()),
                          grad_clip=clip, seed=0)
        assert calls == expected


# --- one geometry for real and synthetic pairs ------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _head_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    from fetal_bench.geometry import Ellipse, ellipse_mask

    mask = ellipse_mask((height, width), Ellipse(cx=0.55 * width, cy=0.5 * height, a=0.3 * width, b=0.22 * width,
                                                 angle=0.4)).astype(np.uint8)
    return (mask * 200 + 20).astype(np.uint8), mask


def _masks_entering_the_model(pairs, image_size):
    import datasets

    from fetal_bench.data.loading import make_dataloader

    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "mask": datasets.Image()})
    table = datasets.Dataset.from_dict({"id": [f"r{i}" for i in range(len(pairs))],
                                        "image": [{"bytes": _png(i), "path": None} for i, _ in pairs],
                                        "mask": [{"bytes": _png(m), "path": None} for _, m in pairs]}, features=features)
    batch = next(iter(make_dataloader(table, image_size=image_size, batch_size=len(pairs), mask_column="mask")))
    return batch["masks"].numpy().astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("image_size", [(256, 256), (256, 384)])  # sam-few-shot; synthetic-ratio-curve's hc18 profile
def test_a_synthetic_and_a_real_pair_enter_the_model_with_the_same_geometry(image_size):
    """The mask-guided generator learns (and so draws) its training pairs as the authors stretch
    them to 512 x 512 (train_text_to_image_lora_head_femur.py:551-552); the protocol's loader
    stretches real and synthetic alike. A letterboxed generator's pair would not match."""
    from fetal_bench.generators.training_images import letterbox, stretch

    image, mask = _head_pair(540, 800)  # HC18's frame size
    synthetic = (stretch(image, 512), stretch(mask, 512, nearest=True))
    letterboxed = (letterbox(image, 512)[0], letterbox(mask, 512, nearest=True)[0])
    real_in, synthetic_in, letterboxed_in = _masks_entering_the_model([(image, mask), synthetic, letterboxed],
                                                                       image_size)
    assert _iou(real_in, synthetic_in) > 0.97
    assert _iou(real_in, letterboxed_in) < 0.8  # the confound the stretch removes


def test_segmentation_protocols_refuse_letterboxed_pairs(tmp_path):
    from fetal_bench.protocols.runners import check_synthetic_geometry

    def split(generation):
        import hashlib

        folder = tmp_path / hashlib.sha256(json.dumps(generation, sort_keys=True).encode()).hexdigest()[:16]
        folder.mkdir()
        (folder / "build_info.json").write_text(json.dumps({"generation": generation}))
        return str(folder)

    check_synthetic_geometry(split({"generator": "mask-guided", "resize": "stretch"}))
    check_synthetic_geometry(split({"generator": "fu-lora"}))  # not image + mask pairs
    check_synthetic_geometry(None)
    for generation in ({"generator": "mask-guided", "resize": "letterbox"}, {"generator": "mask-guided"},
                       {"generator": "mask-conditioned", "resize": "letterbox"}):
        with pytest.raises(FetalBenchError, match="different geometry"):
            check_synthetic_geometry(split(generation))
    with pytest.raises(FetalBenchError, match="different geometry"):
        run_protocol("sam-few-shot", tmp_path / "sam", dry_run=True,
                     overrides={"synthetic": split({"generator": "mask-guided", "resize": "letterbox", "x": 1})})


def test_a_stretched_sample_measures_its_head_in_mm_with_both_pixel_sizes():
    from fetal_bench.geometry import Ellipse, ellipse_perimeter, scaled_ellipse

    circle = Ellipse(cx=10, cy=10, a=5, b=5, angle=0.3)
    stretched = scaled_ellipse(circle, 2.0, 1.0)
    assert (stretched.a, stretched.b) == pytest.approx((10.0, 5.0))
    rotated = scaled_ellipse(Ellipse(cx=0, cy=0, a=4, b=2, angle=np.pi / 2), 1.0, 3.0)  # a along rows: 12
    assert (rotated.a, rotated.b) == pytest.approx((12.0, 2.0))
    assert abs(abs(np.sin(rotated.angle)) - 1) < 1e-9
    back = scaled_ellipse(scaled_ellipse(Ellipse(0, 0, 7, 3, 0.7), 512 / 800, 512 / 540), 800 / 512, 540 / 512)
    assert ellipse_perimeter(back.a, back.b) == pytest.approx(ellipse_perimeter(7, 3))
