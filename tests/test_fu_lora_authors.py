"""FU-LoRA as the authors made it: kohya's module set, their image lists, their released LoRA files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.errors import DataError

KOHYA_UNET_BLOCK = ["proj_in", "proj_out"] + [
    f"transformer_blocks.0.{m}" for m in
    ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
     "attn2.to_out.0", "ff.net.0.proj", "ff.net.2")]


@pytest.fixture(scope="module")
def tiny():
    from fetal_bench.generators.tiny import build_tiny_components

    torch.set_num_threads(1)
    return build_tiny_components()


def test_kohya_module_set_by_name_and_parameter_count(tiny):
    from peft import inject_adapter_in_model

    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.lora import peft_lora_config, resolve_targets

    lora = default_config("fu-lora")["lora"]
    unet_names = resolve_targets(tiny.unet, lora["unet_targets"])
    block = [n[len("down_blocks.0.attentions.0."):] for n in unet_names if n.startswith("down_blocks.0.attentions.0.")]
    assert sorted(block) == sorted(KOHYA_UNET_BLOCK)
    assert len(unet_names) == 4 * len(KOHYA_UNET_BLOCK)  # the tiny UNet has 4 Transformer2DModels
    te_names = resolve_targets(tiny.text_encoder, lora["text_encoder_targets"])
    assert sorted(n.split("layers.0.")[1] for n in te_names if "layers.0." in n) == [
        "mlp.fc1", "mlp.fc2", "self_attn.k_proj", "self_attn.out_proj", "self_attn.q_proj", "self_attn.v_proj"]
    assert len(te_names) == 3 * 6
    # Plain names stay peft suffixes (the mask-guided configs' [to_q, ...]).
    assert resolve_targets(tiny.unet, ["to_q", "to_k"]) == ["to_q", "to_k"]

    # Trainable LoRA parameters at rank 128: r * (in + out) per adapted layer.
    from fetal_bench.generators.tiny import build_tiny_components

    fresh = build_tiny_components()
    counts = {}
    for part, key in (("unet", "unet_targets"), ("text_encoder", "text_encoder_targets")):
        model = getattr(fresh, part)
        inject_adapter_in_model(peft_lora_config(lora, key, model), model)
        counts[part] = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert counts == {"unet": 688_128, "text_encoder": 172_032}
    # (SD 1.5 at rank 128, the same rule: UNet 192 layers 54,263,808 + CLIP 72 layers 21,233,664.)


def _kohya_file(tiny, path: Path, rank: int = 4, alpha: float = 2.0) -> dict:
    """A LoRA in kohya's key layout for the tiny base, written by hand (not by the code under test)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    tensors = {}

    def add(stem: str, module):
        conv = isinstance(module, torch.nn.Conv2d)
        n_in = module.in_channels if conv else module.in_features
        n_out = module.out_channels if conv else module.out_features
        shape_down, shape_up = ((rank, n_in, 1, 1), (n_out, rank, 1, 1)) if conv else ((rank, n_in), (n_out, rank))
        tensors[f"{stem}.lora_down.weight"] = torch.randn(shape_down, generator=generator).half()
        tensors[f"{stem}.lora_up.weight"] = torch.randn(shape_up, generator=generator).half()
        tensors[f"{stem}.alpha"] = torch.tensor(alpha).half()

    for name in KOHYA_UNET_BLOCK:
        module = tiny.unet.get_submodule(f"down_blocks.0.attentions.0.{name}")
        add("lora_unet_down_blocks_0_attentions_0_" + name.replace(".", "_"), module)
    for layer in range(3):
        for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                     "mlp.fc1", "mlp.fc2"):
            module = tiny.text_encoder.get_submodule(f"encoder.layers.{layer}.{name}")
            add(f"lora_te_text_model_encoder_layers_{layer}_" + name.replace(".", "_"), module)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in tensors
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha" in tensors
    save_file(tensors, str(path))
    return tensors


def test_kohya_file_loads_with_kohyas_scale(tiny, tmp_path):
    from fetal_bench.generators.kohya import apply_kohya_lora
    from fetal_bench.generators.base import load_base

    file = tmp_path / "fetal_ultrasound_tiny.safetensors"
    tensors = _kohya_file(tiny, file)
    pipe = load_base("tiny").pipeline()
    adapted = apply_kohya_lora(pipe, file, scale=0.3)
    assert adapted == {"unet": 12, "text_encoder": 18}
    layer = pipe.unet.get_submodule("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q")
    stem = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    down, up = tensors[f"{stem}.lora_down.weight"].float(), tensors[f"{stem}.lora_up.weight"].float()
    x = torch.randn(2, layer.in_features)
    expected = layer.base_layer(x) + 0.3 * (2.0 / 4) * x @ down.T @ up.T  # kohya: multiplier * alpha / rank
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    conv = pipe.unet.get_submodule("down_blocks.0.attentions.0.proj_in")
    torch.testing.assert_close(conv.lora_A["fetal-bench"].weight,
                               tensors["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"].float())


def test_generate_sample_from_a_kohya_file_on_the_tiny_base(tiny, tmp_path):
    import datasets

    file = tmp_path / "fetal_ultrasound_tiny.safetensors"
    _kohya_file(tiny, file)
    out = tmp_path / "S"
    result = CliRunner().invoke(cli, ["generate", "fu-lora", "sample", "--lora", str(tmp_path), "--weight-name",
                                      file.name, "--base", "tiny", "--per-class", "1", "--steps", "2",
                                      "--output", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.features["label"].names == ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax",
                                          "Maternal cervix", "Other"]
    assert sorted(ds["prompt"]) == ["a photo of fetal abdomen", "a photo of fetal brain", "a photo of fetal femur",
                                    "a photo of fetal thorax", "a photo of fetal ultrasound"]
    from fetal_bench._io import sha256_file

    assert set(ds["lora_sha256"]) == {sha256_file(file)}
    assert ds[0]["image"].size == (64, 64)


def test_hub_lora_offline_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(cli, ["generate", "fu-lora", "sample", "--lora", "fangyijie/fu-lora", "--weight-name",
                                      "fetal_ultrasound_v1.0.safetensors", "--base", "tiny", "--output",
                                      str(tmp_path / "S")])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and "local Hub cache" in result.output and "Fix:" in result.output
    result = CliRunner().invoke(cli, ["generate", "fu-lora", "sample", "--lora", "fangyijie/fu-lora", "--weight-name",
                                      "model.ckpt", "--base", "tiny", "--output", str(tmp_path / "S")])
    assert result.exit_code == 2 and "not a .safetensors file name" in result.output


def test_authors_lists_are_read_pinned(fu_lora_lists):
    from fetal_bench.data import fu_lora_lists as A

    chosen = A.lora_training_ids()
    assert {k: len(v) for k, v in chosen.items()} == {p: 20 for p in A.ES_PLANE_NAMES.values()}
    assert chosen["Fetal abdomen"][0] == "Patient00305_Plane2_1_of_2"
    hybrid = A.hybrid_real_ids()
    assert len(hybrid) == 1150 and sorted(set(hybrid.values())) == ["Fetal abdomen", "Fetal brain", "Fetal femur",
                                                                      "Fetal thorax", "Other"]
    synthetic = A.synthetic_images()
    assert len(synthetic) == 5000 and synthetic["00000-2671683618"] == "Fetal abdomen"


def test_listed_images_are_used_by_default_and_the_hash_pick_elsewhere(fu_lora_lists):
    from fetal_bench.data.fu_lora_lists import lora_training_ids
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.fu_lora import _listed_rows

    names = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"]
    listed = lora_training_ids()
    ids = [f"decoy{i}" for i in range(5)] + listed["Fetal brain"] + listed["Other"][:19]  # one Other missing
    labels = [0] * 5 + [1] * 20 + [5] * 19
    rows = _listed_rows(default_config("fu-lora"), names, ids, labels, list(range(len(ids))))
    assert list(rows) == ["Fetal brain"] and rows["Fetal brain"] == list(range(5, 25))
    config = default_config("fu-lora")
    config["data"]["image_list"] = None
    assert _listed_rows(config, names, ids, labels, list(range(len(ids)))) == {}


def test_phantom_training_records_the_hash_pick(tmp_path):
    from fetal_bench.data.builders import build_dataset
    from fetal_bench.generators import fu_lora

    build_dataset("phantom", tmp_path / "ph")
    record = fu_lora.train(data=tmp_path / "ph", config="planes", base="tiny", output=tmp_path / "L", max_steps=1)
    assert record["data"]["selection"] == {"abdomen": "hash", "brain": "hash", "femur": "hash", "thorax": "hash"}
    assert record["data"]["split"] == "train+validation" and record["data"]["n_images"] == 80


def test_lists_are_pinned_and_all_train_is_official_train(fu_lora_lists, tmp_path, monkeypatch):
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.data import fu_lora_lists as A

    lists_dir = fu_lora_lists.parent
    for name in A.LISTS:
        assert A.list_file(name) == fu_lora_lists / name
    # A copy that is not the authors' file is refused, not read.
    (tmp_path / "lora_train_data.csv").write_text("Image_name,category,Train\nx,brain,1\n")
    monkeypatch.setenv(A.LISTS_ENV_VAR, str(tmp_path))
    with pytest.raises(FetalBenchError, match="is not the published lora_train_data.csv"):
        A.read_list("lora_train_data.csv")
    # Offline with nothing cached: a clear error naming the pinned source, and the FU-LoRA
    # default falls back to the hash pick rather than failing.
    monkeypatch.delenv(A.LISTS_ENV_VAR)
    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(A.ListUnavailableError, match="cannot be downloaded"):
        A.read_list("synthetic_train_5000.csv")
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.fu_lora import _listed_rows

    with pytest.warns(UserWarning, match="falls back to the hash pick"):
        assert _listed_rows(default_config("fu-lora"), ["Fetal brain"], ["x"], [0], [0]) == {}
    with open(lists_dir / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv", encoding="utf-8-sig") as handle:
        meta = list(csv.DictReader(handle, delimiter=";"))
    official = {r["Image_name"] for r in meta if r["Train "].strip() == "1" and r["Plane"] != "Maternal cervix"}
    with open(lists_dir / "fu_lora_lists" / "all_train_no_cer.csv", encoding="utf-8-sig") as handle:
        theirs = {r["Image_name"] for r in csv.DictReader(handle)}
    assert len(official) == 6148 and theirs == official


@pytest.mark.parametrize(("size", "expected"), [
    # Worked by hand from kohya's BucketManager.select_bucket (bucket_no_upscale, max area 512², steps 64).
    ((800, 540), ((576, 389), (576, 384))),
    ((959, 661), ((576, 397), (576, 384))),
    ((500, 430), ((500, 430), (448, 384))),   # under the area: not resized, only cropped to the grid
    ((512, 512), ((512, 512), (512, 512))),
])
def test_kohya_buckets_by_hand(size, expected):
    from fetal_bench.generators.training_images import bucket_crop, kohya_bucket

    resized, bucket = kohya_bucket(*size, resolution=512, steps=64)
    assert (resized, bucket) == expected
    image = np.arange(size[0] * size[1], dtype=np.uint32).reshape(size[1], size[0]).astype(np.uint8)
    out = bucket_crop(image, resized, bucket)
    assert out.shape == (bucket[1], bucket[0])
    if resized == size:  # a pure centre crop
        top, left = (size[1] - bucket[1]) // 2, (size[0] - bucket[0]) // 2
        np.testing.assert_array_equal(out, image[top:top + bucket[1], left:left + bucket[0]])


def test_bucketed_batches_share_a_size_and_cover_every_example():
    from fetal_bench.generators.training import TrainingData, _ExampleOrder

    sizes = [(64, 48)] * 5 + [(48, 64)] * 3 + [(56, 56)] * 1
    data = TrainingData(n=9, get=lambda i: None, resolution=64, sizes=sizes)
    order = _ExampleOrder(data, repeats=2, per_step=2, seed=1234)
    plan = order.plan(0)
    # 10 + 6 + 2 examples per epoch; a bucket's odd last batch is filled from the same bucket.
    assert len(plan) == 5 + 3 + 1
    assert all(len({sizes[i] for i in batch}) == 1 and len(batch) == 2 for batch in plan)
    seen = sorted(i for batch in plan for i in batch)
    assert seen.count(8) == 2 and all(seen.count(i) == 2 for i in range(8))
    # Slots of a step, as two processes would take them, and determinism across instances.
    again = _ExampleOrder(data, repeats=2, per_step=2, seed=1234)
    assert [again.at(s, 0, 1) + again.at(s, 1, 1) for s in range(9)] == [order.at(s, 0, 2) for s in range(9)]
    assert [example for _, example in order.at(9, 0, 2)] == order.plan(1)[0]  # step 9 opens epoch 1


def test_hybrid_real_list_selects_the_authors_rows(fu_lora_lists):
    import datasets

    from fetal_bench.data.fu_lora_lists import hybrid_real_ids
    from fetal_bench.tasks import get_task
    from fetal_bench.tasks.classification import LabelTargets

    names = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"]
    wanted = hybrid_real_ids()
    ids = ["decoy-a"] + list(wanted) + ["decoy-b"]
    labels = [0] + [names.index(p) for p in wanted.values()] + [4]
    table = datasets.Dataset.from_dict({"id": ids, "label": labels},
                                       features=datasets.Features({"id": datasets.Value("string"),
                                                                   "label": datasets.ClassLabel(names=names)}))
    targets = LabelTargets(get_task("planes-es"), table)
    rows = targets.listed_rows(table, np.arange(len(ids)), "fu-lora-hb")
    assert rows.tolist() == list(range(1, 1151))
    with pytest.raises(DataError, match="1 of the 1150 images"):
        targets.listed_rows(table, np.arange(len(ids) - 2), "fu-lora-hb")  # the last listed row held out


def test_the_papers_input_is_unnormalised_pixels_in_0_1():
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.models.classifiers import build_torchvision_classifier
    from fetal_bench.models.spec import IMAGENET_NORMALIZE

    plain = build_torchvision_classifier("resnet18", labels=("a", "b"), channels=3, image_size=(32, 32),
                                         pretrained=False, normalize="none")
    assert plain.spec.normalize is None and plain.model_cfg["normalize"] == "none"
    default = build_torchvision_classifier("resnet18", labels=("a", "b"), channels=3, image_size=(32, 32),
                                           pretrained=False)
    assert default.spec.normalize == IMAGENET_NORMALIZE
    with pytest.raises(FetalBenchError, match="normalize"):
        build_torchvision_classifier("resnet18", labels=("a", "b"), pretrained=False, normalize="zscore")


def test_another_count_with_the_authors_list_is_refused(fu_lora_lists):
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.data.fu_lora_lists import lora_training_ids
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.fu_lora import _training_rows

    class Info:
        label_names = ["Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other"]
        split = "train"

    listed = lora_training_ids()
    dataset = {"id": listed["Fetal brain"] + ["x1", "x2"], "label": [1] * 20 + [0, 0]}
    config = default_config("fu-lora")
    rows, _, _, selection = _training_rows(dataset, Info, config)
    assert rows[:20] == list(range(20)) and selection == {"Fetal brain": "authors-list", "Fetal abdomen": "hash"}
    config["data"]["images_per_class"] = 5
    with pytest.raises(FetalBenchError, match="conflicts with the authors' list"):
        _training_rows(dataset, Info, config)


def test_lora_trains_on_two_buckets_with_batches_of_two(tmp_path):
    from fetal_bench.generators.base import load_base
    from fetal_bench.generators.config import default_config
    from fetal_bench.generators.training import TrainingData, train_lora

    sizes = [(64, 48), (64, 48), (48, 64), (48, 64)]
    shapes = []

    def get(i):
        w, h = sizes[i]
        shapes.append((h, w))
        return np.full((3, h, w), 40 * i, dtype=np.uint8), "a photo of fetal brain", None

    config = default_config("fu-lora")
    config["train"].update(batch_size=2, max_steps=2, repeats=1, checkpoint_every=0)
    config["data"]["resolution"] = 64
    record = train_lora(base=load_base("tiny"), config=config, data=TrainingData(4, get, 64, sizes=sizes),
                        output=tmp_path / "L", record={"base": "tiny", "data": {"n": 4}})
    assert record["training"]["steps"] == 2 and (tmp_path / "L" / "pytorch_lora_weights.safetensors").is_file()
    # Each step's two examples came from one bucket; both buckets were used.
    assert sorted({shapes[0], shapes[2]}) == [(48, 64), (64, 48)] and shapes[0] == shapes[1] and shapes[2] == shapes[3]


def _kohya_header_file(path: Path, metadata: dict[str, str] | None) -> Path:
    """A small safetensors file whose header carries the string metadata kohya's trainer writes
    (sd-scripts train_network.py:1010-1017, 1159, 1302 at 48d368f), written by hand."""
    from safetensors.torch import save_file

    save_file({"lora_unet_x.alpha": torch.tensor(1.0)}, str(path), metadata=metadata)
    return path


_KOHYA_METADATA = {
    "ss_dataset_dirs": '{"7_fetal abdomen": {"n_repeats": 7, "img_count": 20}, '
                       '"7_fetal brain": {"n_repeats": 7, "img_count": 20}}',
    "ss_num_train_images": "280", "ss_num_batches_per_epoch": "280", "ss_num_epochs": "1",
    "ss_max_train_steps": "280", "ss_steps": "280", "ss_epoch": "1", "ss_network_dim": "128",
}


def test_kohya_training_metadata_is_read_from_the_header(tmp_path):
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.generators.kohya import kohya_training_metadata, repeats_from_metadata

    meta = kohya_training_metadata(_kohya_header_file(tmp_path / "a.safetensors", _KOHYA_METADATA))
    assert meta["repeats_per_folder"] == {"7_fetal abdomen": 7, "7_fetal brain": 7}
    assert meta["images_per_folder"] == {"7_fetal abdomen": 20, "7_fetal brain": 20}
    assert (meta["num_train_images"], meta["max_train_steps"], meta["steps"], meta["epochs"]) == (280, 280, 280, 1)
    assert repeats_from_metadata(meta, "a") == 7
    # Newer kohya: only ss_datasets' subsets carry the counts.
    subsets = {"ss_datasets": '[{"subsets": [{"image_dir": "5_x", "num_repeats": 5, "img_count": 3}]}]',
               "ss_max_train_steps": "15"}
    assert kohya_training_metadata(_kohya_header_file(tmp_path / "b.safetensors", subsets))["repeats_per_folder"] == \
        {"5_x": 5}
    assert kohya_training_metadata(_kohya_header_file(tmp_path / "c.safetensors", None)) is None  # --no_metadata
    mixed = {**_KOHYA_METADATA, "ss_dataset_dirs": '{"4_a": {"n_repeats": 4, "img_count": 1}, '
                                                   '"9_b": {"n_repeats": 9, "img_count": 1}}'}
    with pytest.raises(FetalBenchError, match="repeats its image folders differently"):
        repeats_from_metadata(kohya_training_metadata(_kohya_header_file(tmp_path / "d.safetensors", mixed)), "d")
    with pytest.raises(FetalBenchError, match="records no repeat count"):
        repeats_from_metadata(kohya_training_metadata(_kohya_header_file(tmp_path / "e.safetensors",
                                                                         {"ss_steps": "3"})), "e")


def test_fu_lora_takes_its_repeats_from_an_authors_file(tmp_path):
    from fetal_bench.data.builders import build_dataset
    from fetal_bench.generators import fu_lora

    build_dataset("phantom", tmp_path / "ph")
    source = _kohya_header_file(tmp_path / "authors.safetensors", _KOHYA_METADATA)
    record = fu_lora.train(data=tmp_path / "ph", config="planes", base="tiny", output=tmp_path / "L", max_steps=1,
                           generator_config={"train": {"repeats_from": str(source)}})
    assert record["config"]["train"]["repeats"] == 7
    assert record["data"]["repeats_from"]["file"] == "authors.safetensors"
    assert record["data"]["repeats_from"]["max_train_steps"] == 280
