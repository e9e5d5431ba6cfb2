"""open_dataset and make_dataloader on small built datasets written to a temp directory."""

from __future__ import annotations

import io
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from fetal_bench.data.loading import make_dataloader, open_dataset
from fetal_bench.errors import DataError, FetalBenchError

N_PLANES = 12  # rows in the classification train split
LABEL_NAMES = ["abdomen", "brain", "femur"]


def _png(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _gray_value(i: int) -> int:
    """Every classification image is one flat gray level, so a batch row says which row it is."""
    return 10 + 18 * i


def _planes_rows(n: int, prefix: str) -> dict:
    images, labels = [], []
    for i in range(n):
        value = _gray_value(i)
        size = (40 + 4 * (i % 3), 30)  # mixed native sizes: the loader must resize them all
        if i == 3:  # colour containers for gray data, as some sources publish
            image = Image.new("RGB", size, (value, value, value))
        elif i == 4:
            image = Image.new("RGBA", size, (value, value, value, 255))
        elif i == 5:
            image = Image.new("RGB", size, (200, 40, 10))  # real colour: gray by ITU-R 601-2 luma
        else:
            image = Image.new("L", size, value)
        images.append(_png(image))
        labels.append(i % len(LABEL_NAMES))
    return {"id": [f"{prefix}-{i:03d}" for i in range(n)], "image": images, "label": labels}


def _head_rows(n: int) -> dict:
    images, masks = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        width, height = 64 + 8 * i, 48
        images.append(_png(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))))
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).ellipse((8, 6, width - 10, height - 8), fill=1)  # values 0/1
        masks.append(_png(mask))
    return {
        "id": [f"head-{i:03d}" for i in range(n)],
        "image": images,
        "mask": masks,
        "pixel_size_mm": [0.1 + 0.01 * i for i in range(n)],
    }


_CARD = """---
license: apache-2.0
configs:
- config_name: planes
  data_files:
  - split: train
    path: planes/train-*
  - split: validation
    path: planes/validation-*
- config_name: head
  data_files:
  - split: train
    path: head/train-*
---
# test dataset
"""


@pytest.fixture(scope="session")
def built_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("built")
    planes = datasets.Features(
        {"id": datasets.Value("string"), "image": datasets.Image(), "label": datasets.ClassLabel(names=LABEL_NAMES)}
    )
    head = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "mask": datasets.Image(),
            "pixel_size_mm": datasets.Value("float64"),
        }
    )
    (root / "planes").mkdir()
    (root / "head").mkdir()
    datasets.Dataset.from_dict(_planes_rows(N_PLANES, "tr"), features=planes).to_parquet(
        str(root / "planes" / "train-00000-of-00001.parquet")
    )
    datasets.Dataset.from_dict(_planes_rows(4, "va"), features=planes).to_parquet(
        str(root / "planes" / "validation-00000-of-00001.parquet")
    )
    datasets.Dataset.from_dict(_head_rows(6), features=head).to_parquet(
        str(root / "head" / "train-00000-of-00001.parquet")
    )
    (root / "README.md").write_text(_CARD)
    return root


@pytest.fixture(scope="session")
def planes(built_dir) -> datasets.Dataset:
    return open_dataset(built_dir, config="planes", split="train")


@pytest.fixture(scope="session")
def head(built_dir) -> datasets.Dataset:
    return open_dataset(built_dir, config="head", split="train")


def _epoch(loader) -> list[dict]:
    return list(loader)


# ---------------------------------------------------------------------------- open_dataset


def test_open_dataset_local_directory(built_dir):
    splits = open_dataset(str(built_dir), config="planes")
    assert set(splits) == {"train", "validation"}
    assert splits["train"].num_rows == N_PLANES
    assert splits["train"].features["label"].names == LABEL_NAMES


def test_open_dataset_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "nope")


@pytest.mark.parametrize("missing", ["README.md", "parquet"])
def test_open_dataset_not_a_built_dataset(tmp_path, missing):
    (tmp_path / "data").mkdir()
    if missing != "README.md":
        (tmp_path / "README.md").write_text(_CARD)
    else:
        (tmp_path / "data" / "train-00000-of-00001.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="not a built fetal-bench dataset") as info:
        open_dataset(tmp_path)
    assert ("README.md" if missing == "README.md" else "Parquet") in str(info.value)
    assert info.value.fix


def test_open_dataset_unknown_split_lists_available(built_dir):
    with pytest.raises(FetalBenchError, match="no split 'test'") as info:
        open_dataset(built_dir, config="planes", split="test")
    assert "train, validation" in info.value.fix


def test_open_dataset_config_errors(built_dir):
    with pytest.raises(FetalBenchError, match="no config 'nope'") as info:
        open_dataset(built_dir, config="nope")
    assert "planes, head" in info.value.fix
    with pytest.raises(FetalBenchError, match="several configs") as info:
        open_dataset(built_dir, split="train")
    assert "planes, head" in info.value.fix


def test_open_dataset_unpublished_catalog_dataset():
    with pytest.raises(FetalBenchError, match="not published") as info:
        open_dataset("phantom", config="head")
    assert "fetal-bench datasets build phantom --out DIR" in info.value.fix


def test_open_dataset_offline_without_cache():
    # conftest.py turns offline mode on and points HF_HOME at an empty temp dir.
    with pytest.raises(FetalBenchError, match="offline mode is on") as info:
        open_dataset("hc18")
    assert "fetal-bench datasets build hc18" in info.value.fix


def test_open_dataset_rejects_revision_for_directory(built_dir):
    with pytest.raises(FetalBenchError, match="revision"):
        open_dataset(built_dir, config="planes", revision="v1.0")


def test_open_dataset_unknown_name():
    with pytest.raises(FetalBenchError, match="neither an existing directory") as info:
        open_dataset("no-such-dataset")
    assert "hc18" in info.value.fix


# ------------------------------------------------------------------------- classification


def test_classification_batches(planes):
    loader = make_dataloader(planes, task="classification", image_size=(24, 32), batch_size=5)
    batches = _epoch(loader)
    assert [len(b["id"]) for b in batches] == [5, 5, 2]
    first = batches[0]
    assert set(first) == {"pixel_values", "labels", "original_size", "id"}
    assert first["pixel_values"].shape == (5, 1, 24, 32)
    assert first["pixel_values"].dtype == torch.float32
    assert first["labels"].dtype == torch.int64
    # Unshuffled: dataset order, labels aligned with ids.
    ids = [i for b in batches for i in b["id"]]
    labels = torch.cat([b["labels"] for b in batches]).tolist()
    assert ids == planes["id"]
    assert labels == [int(i.split("-")[1]) % len(LABEL_NAMES) for i in ids]


def test_drop_last(planes):
    loader = make_dataloader(planes, task="classification", image_size=8, batch_size=5, drop_last=True)
    assert [len(b["id"]) for b in loader] == [5, 5]


def test_images_match_their_rows_and_colour_sources_become_gray(planes):
    loader = make_dataloader(
        planes, task="classification", image_size=(16, 16), batch_size=4, shuffle=True, normalize=None
    )
    for batch in loader:
        for row_id, pixels in zip(batch["id"], batch["pixel_values"]):
            i = int(row_id.split("-")[1])
            expected = _gray_value(i) / 255 if i != 5 else Image.new("RGB", (1, 1), (200, 40, 10)).convert("L").getpixel((0, 0)) / 255
            assert pixels.shape == (1, 16, 16)
            assert torch.allclose(pixels, torch.full_like(pixels, expected), atol=1 / 255), row_id


def test_per_image_standardisation_is_the_default(head):
    batch = next(iter(make_dataloader(head, task="segmentation", image_size=(32, 32), batch_size=3)))
    pixels = batch["pixel_values"]
    assert torch.allclose(pixels.mean(dim=(1, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(pixels.std(dim=(1, 2, 3)), torch.ones(3), atol=1e-3)


def test_flat_image_standardises_to_zeros_not_nan(planes):
    batch = next(iter(make_dataloader(planes, task="classification", image_size=8, batch_size=2)))
    assert torch.isfinite(batch["pixel_values"]).all()


def test_channels_3_and_fixed_mean_std(planes):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    loader = make_dataloader(
        planes, task="classification", image_size=(20, 20), batch_size=4, channels=3, normalize=(mean, std)
    )
    batch = next(iter(loader))
    pixels = batch["pixel_values"]
    assert pixels.shape == (4, 3, 20, 20)
    gray = pixels * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert torch.allclose(gray[:, 0], gray[:, 1], atol=1e-5) and torch.allclose(gray[:, 0], gray[:, 2], atol=1e-5)
    assert torch.allclose(gray[0, 0], torch.full((20, 20), _gray_value(0) / 255), atol=1 / 255)


def test_bad_arguments(planes, built_dir):
    with pytest.raises(FetalBenchError, match="one split"):
        make_dataloader(open_dataset(built_dir, config="planes"), task="classification", image_size=8, batch_size=2)
    with pytest.raises(FetalBenchError, match="image_size"):
        make_dataloader(planes, task="classification", image_size=(8,), batch_size=2)
    with pytest.raises(FetalBenchError, match="task"):
        make_dataloader(planes, task="detection", image_size=8, batch_size=2)
    with pytest.raises(DataError, match="no label column 'plane'"):
        make_dataloader(planes, task="classification", image_size=8, batch_size=2, label_column="plane")
    with pytest.raises(DataError, match="not an Image column"):
        make_dataloader(planes, task="segmentation", image_size=8, batch_size=2)


# --------------------------------------------------------------------------- segmentation


def test_segmentation_batches(head):
    loader = make_dataloader(head, task="segmentation", image_size=(20, 36), batch_size=4)
    batches = _epoch(loader)
    batch = batches[0]
    assert set(batch) == {"pixel_values", "masks", "original_size", "pixel_size_mm", "id"}
    assert batch["pixel_values"].shape == (4, 1, 20, 36)
    assert batch["masks"].shape == (4, 20, 36) and batch["masks"].dtype == torch.int64
    masks = torch.cat([b["masks"] for b in batches])
    # Nearest-neighbour: still exactly {0, 1}, never an interpolated value; the head survives.
    assert set(masks.unique().tolist()) == {0, 1}
    assert 0.3 < masks.float().mean() < 0.8
    sizes = torch.cat([b["original_size"] for b in batches]).tolist()
    assert sizes == [[48, 64 + 8 * i] for i in range(6)]
    pixel_sizes = torch.cat([b["pixel_size_mm"] for b in batches])
    assert pixel_sizes.dtype == torch.float64
    assert torch.allclose(pixel_sizes, torch.tensor([0.1 + 0.01 * i for i in range(6)], dtype=torch.float64))


def test_segmentation_without_masks(head):
    batch = next(iter(make_dataloader(head, image_size=8, batch_size=2)))  # no target column: images only
    assert "masks" not in batch and batch["original_size"].shape == (2, 2)


def test_missing_masks_are_an_error(head):
    unlabelled = head.map(lambda row, i: {"mask": None if i == 2 else row["mask"]}, with_indices=True)
    with pytest.raises(DataError, match="missing masks"):
        make_dataloader(unlabelled, task="segmentation", image_size=8, batch_size=2)


# ---------------------------------------------------------------------------- determinism


def _flip_and_noise(image, mask, rng):
    """A stand-in augmentation that uses only the rng it is given."""
    if rng.random() < 0.5:
        image, mask = image.flip(-1), mask.flip(-1)
    noise = torch.from_numpy(rng.normal(0.0, 0.05, size=tuple(image.shape)).astype(np.float32))
    return image + noise, mask


def _signature(batches: list[dict]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    return (
        [i for b in batches for i in b["id"]],
        torch.cat([b["pixel_values"] for b in batches]),
        torch.cat([b["masks"] for b in batches]),
    )


def test_same_seed_same_batches_with_0_or_2_workers(head):
    def loader(num_workers: int, seed: int = 7):
        return make_dataloader(
            head, task="segmentation", image_size=(24, 24), batch_size=2, shuffle=True,
            num_workers=num_workers, seed=seed, transform=_flip_and_noise,
        )

    in_process = loader(0)
    epoch1, epoch2 = _signature(_epoch(in_process)), _signature(_epoch(in_process))
    workers = loader(2)
    w_epoch1, w_epoch2 = _signature(_epoch(workers)), _signature(_epoch(workers))
    for ours, theirs in ((epoch1, w_epoch1), (epoch2, w_epoch2)):
        assert ours[0] == theirs[0]
        assert torch.equal(ours[1], theirs[1]) and torch.equal(ours[2], theirs[2])
    # A new epoch reshuffles and redraws the augmentation; another seed gives another order.
    assert epoch1[0] != epoch2[0] or not torch.equal(epoch1[1], epoch2[1])
    assert sorted(epoch1[0]) == sorted(epoch2[0]) == head["id"]
    other = _signature(_epoch(loader(0, seed=8)))
    assert other[0] != epoch1[0] or not torch.equal(other[1], epoch1[1])


def test_transform_receives_documented_inputs(planes):
    seen = []

    def spy(image, mask, rng):
        seen.append((tuple(image.shape), image.dtype, float(image.min()), float(image.max()), mask, type(rng)))
        return image, mask

    list(make_dataloader(planes, task="classification", image_size=(10, 12), batch_size=6, transform=spy))
    assert len(seen) == N_PLANES
    shape, dtype, low, high, mask, rng_type = seen[0]
    assert shape == (1, 10, 12) and dtype == torch.float32 and 0.0 <= low <= high <= 1.0
    assert mask is None and rng_type is np.random.Generator


def test_missing_mask_in_a_subset_is_reported_by_its_row(head):
    unlabelled = head.map(lambda row, i: {"mask": None if i == 2 else row["mask"]}, with_indices=True)
    subset = unlabelled.select([0, 2])  # a subset: the eager whole-table check does not apply
    loader = make_dataloader(subset, task="segmentation", image_size=8, batch_size=2)
    with pytest.raises(DataError, match="'head-002' has no mask"):
        next(iter(loader))


def test_open_dataset_imports_no_torch():
    """Opening a dataset is a datasets call: importing it must not pay for torch (the design's lazy rule)."""
    import subprocess
    import sys

    code = ("import sys; from fetal_bench import open_dataset; from fetal_bench.data import open_dataset as o; "
            "assert o is open_dataset; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_build_rewritten_in_place_is_read_afresh(tmp_path):
    """datasets keys a local folder's Arrow cache so that a rebuild in place (same card) would
    serve the old rows; open_dataset gives each build's files their own cache."""
    import numpy as np

    from fetal_bench.data.builders.phantom import build_phantom
    from fetal_bench.data.opening import open_dataset

    seen = []
    for seed in (0, 1):
        build_phantom(tmp_path / "ds", seed=seed, overwrite=True)
        first = open_dataset(tmp_path / "ds", config="planes", split="test")[0]
        seen.append((first["id"], np.asarray(first["image"]).tobytes()))
    assert seen[0][0] == seen[1][0]  # the same row id ...
    assert seen[0][1] != seen[1][1]  # ... with the new build's pixels


def test_training_and_evaluation_share_one_cached_phantom_build(tmp_path, monkeypatch):
    from fetal_bench.data.builders import cached_simulated_build
    from fetal_bench.errors import FetalBenchError
    from fetal_bench.evaluation.scored_split import load_eval_data
    from fetal_bench.models import get_model_info
    from fetal_bench.tasks import get_task
    from fetal_bench.training.mixing import prepare_training_data

    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    task = get_task("phantom-head-seg")
    training = prepare_training_data(task, get_model_info("unet"), data=None, val_split=None)
    evaluation = load_eval_data(task, None, None)
    assert (training.n_real, len(evaluation.dataset)) == (96, 64)
    assert cached_simulated_build("phantom") == tmp_path / "cache" / "phantom-generator-v1"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith("phantom")) == [
        "phantom-generator-v1"]  # built once, opened by both
    with pytest.raises(FetalBenchError, match="'hc18' is built from official raw files"):
        cached_simulated_build("hc18")
