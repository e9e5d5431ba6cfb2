"""Model registry, builders, checkpoints: every registered baseline trains a few steps and restores.

Everything runs on CPU with test-sized configurations (``ModelInfo.tiny``) on the phantom set;
no pretrained weights are needed (offline mode is on, so none are fetched).
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import load_file

from fetal_bench.errors import FetalBenchError
from fetal_bench.models import MODELS, ModelSpec, create_model, get_model_info, list_models, save_checkpoint
from fetal_bench.data.pinned_files import PretrainedWeightsWarning

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")


def _inputs(model, batch: int = 2, seed: int = 0) -> torch.Tensor:
    height, width = model.spec.image_size
    return torch.randn(batch, model.spec.channels, height, width, generator=torch.Generator().manual_seed(seed))


def _tiny_cases():
    cases = []
    for name, info in MODELS.items():
        if name == "sononet16-planes":
            continue  # a fixed label set the phantom data does not have; covered in test_sononet.py
        if name in ("fetalclip_lora", "unet-iqa"):
            continue  # user-supplied weights / binary frames trained on masks: covered in test_acouslic.py
        if name == "sam":
            cases += [pytest.param(name, {**info.tiny, "backend": backend}, id=f"sam-{backend}")
                      for backend in ("segment-anything", "transformers")]
            cases.append(pytest.param(name, {**info.tiny, "backend": "segment-anything", "lora_rank": 2}, id="sam-lora"))
        else:
            cases.append(pytest.param(name, dict(info.tiny), id=name))
    return cases


def test_registry_lists_every_required_baseline():
    names = {info.name for info in list_models()}
    assert {"resnet18", "resnet50", "densenet121", "densenet169", "efficientnet_b0", "mobilenet_v2", "vit_b_16",
            "unet", "sononet16", "sononet16-planes", "sam"} <= names
    assert {info.task_type for info in list_models(task_type="segmentation")} == {"segmentation"}
    assert [info.name for info in list_models("resnet*")] == ["resnet18", "resnet50"]
    with pytest.raises(FetalBenchError, match="Unknown model"):
        get_model_info("resnet1000")


def test_importing_the_models_package_imports_no_torch():
    """Listing models and reading checkpoint metadata stay cheap: torch, peft and huggingface_hub
    load only when a model is built or a checkpoint read."""
    import subprocess
    import sys

    code = ("import sys, fetal_bench.models as m; m.list_models(); "
            "print(sorted(x for x in ('torch', 'peft', 'huggingface_hub') if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_models_list_cli():
    from click.testing import CliRunner

    from fetal_bench.cli import cli

    result = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert {entry["name"] for entry in json.loads(result.output)} == set(MODELS)


@pytest.mark.parametrize(("name", "cfg"), _tiny_cases())
def test_every_baseline_trains_a_few_steps_and_restores(name, cfg, phantom_dir, tmp_path):
    from fetal_bench.training import train

    info = get_model_info(name)
    task = "phantom-planes" if info.task_type == "classification" else "phantom-head-seg"
    model_cfg = {k: v for k, v in cfg.items() if k != "image_size"}
    image_size = cfg.get("image_size")
    if name.startswith("sononet"):
        image_size = None  # fixed 224x288 input; keep the batch small instead
    result = train(model=name, task=task, data=str(phantom_dir), output=str(tmp_path / name), model_cfg=model_cfg,
                   image_size=image_size, max_steps=2, epochs=1, batch_size=2, eval_batch_size=16, progress=False,
                   val_split=None, augment="ultrasound")
    assert result.steps == 2 and result.stopped_by == "max_steps"
    config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["model"] == name and config["training"]["task"] == task
    assert config["training"]["training_data"] == "real" and config["training"]["synthetic_share"] == 0.0

    restored = create_model(name, checkpoint=tmp_path / name).eval()
    assert restored.spec.task_type == info.task_type
    if info.task_type == "classification":
        assert restored.spec.labels == ("abdomen", "brain", "femur", "thorax")
    # The checkpoint holds the trained weights: those of the run's last resumable snapshot
    # (written at the final step; for adapter models only what training changed).
    (snapshot,) = (tmp_path / name / "checkpoints").glob("step-*")
    trained = load_file(snapshot / "weights.safetensors")
    state = restored.state_dict()
    assert trained and all(torch.equal(state[key], value) for key, value in trained.items())
    x = _inputs(restored)
    with torch.no_grad():
        first = restored(x)
    if info.task_type == "classification":
        assert first.shape == (2, 4)
    else:
        assert first.shape[0] == 2 and first.shape[1] in (1, 2) and tuple(first.shape[-2:]) == restored.spec.image_size


def test_restored_weights_equal_saved_ones(tmp_path):
    model = create_model("resnet18", labels=["a", "b", "c"], image_size=(32, 32), pretrained=False).eval()
    save_checkpoint(model, tmp_path / "ckpt", training={"task": "x", "training_data": "real"}, run_name="r")
    restored = create_model("resnet18", checkpoint=tmp_path / "ckpt").eval()
    x = _inputs(model)
    with torch.no_grad():
        assert torch.equal(model(x), restored(x))
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["run_name"] == "r" and config["spec"]["labels"] == ["a", "b", "c"]
    assert ModelSpec.from_dict(config["spec"]).image_size == (32, 32)


def test_checkpoint_errors_are_clear(tmp_path):
    model = create_model("unet", **MODELS["unet"].tiny)
    save_checkpoint(model, tmp_path / "unet")
    with pytest.raises(FetalBenchError, match="holds a 'unet' model"):
        create_model("resnet18", checkpoint=tmp_path / "unet")
    with pytest.raises(FetalBenchError, match="not a fetal-bench checkpoint"):
        create_model("unet", checkpoint=tmp_path)
    with pytest.raises(FetalBenchError, match="does not exist"):
        create_model("unet", checkpoint=tmp_path / "missing")
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(FetalBenchError, match="takes no weights file"):
        create_model("resnet18", checkpoint=weights)
    with pytest.raises(FetalBenchError, match="has no option"):
        create_model("unet", nonsense=1)


def test_grayscale_first_conv_is_the_sum_of_rgb_kernels():
    from torch import nn

    from fetal_bench.models.classifiers import _adapt_first_conv

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    gray = torch.rand(1, 1, 8, 8)
    expected = net(gray.repeat(1, 3, 1, 1))
    _adapt_first_conv(net, channels=1)
    assert net[0].in_channels == 1
    assert torch.allclose(net(gray), expected, atol=1e-6)


def test_imagenet_weights_fall_back_to_random_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache
    monkeypatch.setenv("FETAL_BENCH_OFFLINE", "1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_model("mobilenet_v2", labels=["a", "b"], image_size=(32, 32))
    assert any(issubclass(w.category, PretrainedWeightsWarning) for w in caught)
    assert model.spec.extra["initialised_from"] == "none"
    with pytest.raises(FetalBenchError, match="ImageNet weights for mobilenet_v2 are not available"):
        create_model("mobilenet_v2", labels=["a", "b"], pretrained=True)


def test_channels_3_uses_imagenet_statistics():
    model = create_model("resnet18", labels=["a", "b"], channels=3, pretrained=False, image_size=(32, 32))
    assert model.spec.channels == 3 and model.spec.normalize[0] == (0.485, 0.456, 0.406)
    with pytest.raises(FetalBenchError, match="square"):
        create_model("vit_b_16", labels=["a", "b"], image_size=(32, 48), pretrained=False)


@pytest.mark.parametrize("size", [(33, 47), (64, 80)])
def test_unet_keeps_any_input_size(size):
    model = create_model("unet", image_size=size, base_channels=4, depth=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size)).shape == (1, 2, *size)


@pytest.mark.parametrize("backend", ["segment-anything", "transformers"])
def test_sam_freezes_encoders_and_uses_box_prompts(backend):
    model = create_model("sam", backend=backend, variant="tiny", pretrained=False, lora_rank=2).eval()
    assert model.spec.prompt == "box" and model.spec.channels == 3
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("mask_decoder" in name or "lora_" in name for name in trainable)
    assert any("lora_" in name for name in trainable)
    assert not any("prompt_encoder" in name for name in trainable)
    x = _inputs(model)
    with torch.no_grad():
        whole = model(x)
        boxed = model(x, boxes=torch.tensor([[4.0, 4.0, 30.0, 40.0], [10.0, 0.0, 63.0, 63.0]]))
        embeddings = model.embed(x)
        again = model.decode(embeddings, torch.tensor([[4.0, 4.0, 30.0, 40.0], [10.0, 0.0, 63.0, 63.0]]), (64, 64))
    assert whole.shape == boxed.shape == (2, 1, 64, 64)
    assert not torch.equal(whole, boxed)  # the prompt matters
    assert torch.allclose(boxed, again)


def test_sam_official_checkpoint_is_verified_before_loading(tmp_path):
    fake = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({"x": torch.zeros(1)}, fake)
    with pytest.raises(FetalBenchError, match="is not the published sam_vit_b_01ec64.pth"):
        create_model("sam", backend="segment-anything", checkpoint=fake)
    with pytest.raises(FetalBenchError, match="only read by the segment-anything backend"):
        create_model("sam", backend="transformers", checkpoint=fake)


def test_depth_gain_scales_whole_rows_and_leaves_the_other_draws_alone():
    """The depth-gain preset is "ultrasound" times one gain per row (the probe is at the top),
    within the preset's range, and every other draw is the one "ultrasound" makes."""
    import dataclasses

    import numpy as np

    from fetal_bench.training.augment import PRESETS

    image = torch.full((1, 40, 60), 0.5)
    mask = torch.zeros(40, 60, dtype=torch.int64)
    mask[8:25, 10:35] = 1  # off-centre, so a different rotation, zoom, shift or flip would move it
    plain, depth_gain = PRESETS["ultrasound"], PRESETS["ultrasound-depth-gain"]
    assert dataclasses.replace(depth_gain, depth_gain=None) == plain
    no_change = dataclasses.replace(plain, rotation_deg=0.0, scale=(1.0, 1.0), translate=0.0, flip_p=0.0, speckle=0.0,
                                    gain=(1.0, 1.0), gamma=(1.0, 1.0))
    changed = 0
    for seed in range(20):
        a_img, a_mask = plain(image, mask, np.random.default_rng(seed))
        b_img, b_mask = depth_gain(image, mask, np.random.default_rng(seed))
        assert torch.equal(a_mask, b_mask)
        only_gain, _ = dataclasses.replace(no_change, depth_gain=(0.25, 1.5))(image, mask, np.random.default_rng(seed))
        ratio = only_gain[0] / 0.5
        assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))  # one gain per row
        assert float(ratio.min()) >= 0.25 - 1e-6 and float(ratio.max()) <= 1.5 + 1e-6
        changed += not torch.allclose(ratio, torch.ones_like(ratio))
    assert changed >= 10  # applied with probability p_intensity = 0.8


def test_the_train_cli_offers_every_augmentation_preset():
    from fetal_bench.cli.train import train
    from fetal_bench.training.augment import PRESETS

    option = next(p for p in train.params if p.name == "augment")
    assert set(option.type.choices) == set(PRESETS)


def test_augmentation_is_seeded_and_keeps_mask_values():
    import numpy as np

    from fetal_bench.training.augment import PRESETS

    image = torch.rand(1, 40, 60)
    mask = torch.zeros(40, 60, dtype=torch.int64)
    mask[10:30, 15:45] = 1
    for name in ("ultrasound", "ultrasound-depth-gain", "fu-lora"):
        augment = PRESETS[name]
        a_img, a_mask = augment(image, mask, np.random.default_rng(7))
        b_img, b_mask = augment(image, mask, np.random.default_rng(7))
        assert torch.equal(a_img, b_img) and torch.equal(a_mask, b_mask)
        assert a_img.shape == image.shape and a_mask.shape == mask.shape and a_mask.dtype == mask.dtype
        assert set(a_mask.unique().tolist()) <= {0, 1}
        assert float(a_img.min()) >= 0 and float(a_img.max()) <= 1
