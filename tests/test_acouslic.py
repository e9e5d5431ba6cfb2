"""ACOUSLIC-AI image-quality assessment end to end, on tiny .mha stacks in the official layout.

build (CLI) -> counts, case/subject-disjoint splits, card and licence, options, clear errors ->
`fetal-bench train` a few steps (CNNs, the LoRA ViT, the segmentation route, FetalCLIP where
open_clip is installed) -> `fetal-bench evaluate` -> a result file valid against the schema.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fetal_bench.cli import cli
from fetal_bench.data.builders.acouslic import PAPER_SEED, paper_splits, subject_split
from fetal_bench.errors import DataError, FetalBenchError
from fake_raw import make_acouslic_raw

pytestmark = pytest.mark.filterwarnings("ignore::fetal_bench.data.pinned_files.PretrainedWeightsWarning")

FRAMES = 4  # per sweep in the generated stacks


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and spinning OpenMP workers make them
    many times slower when the machine's other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _invoke(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def _rows(directory: Path, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted((directory / "data").glob(f"{split}-*.parquet"))
    return [row for path in files for row in pq.read_table(path).to_pylist()]


def _expected_counts(cases: dict, *, keep_unmeasured: bool = False) -> dict[str, dict[str, int]]:
    """Frames per split and label, from what the generator wrote (not from the builder)."""
    counts: dict[str, dict[str, int]] = {}
    for case in cases.values():
        split = subject_split(case["subject_id"])
        for sweep in range(6):
            if case["ac_mm"][sweep] is None and not keep_unmeasured:
                continue
            for quality in case["plane_quality"][sweep]:
                label = "usable" if quality else "unusable"
                counts.setdefault(split, {}).setdefault(label, 0)
                counts[split][label] += 1
    return counts


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("acouslic") / "raw"
    return root, make_acouslic_raw(root, frames_per_sweep=FRAMES)


@pytest.fixture(scope="module")
def built(raw, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("acouslic-built") / "acouslic-iqa"
    result = _invoke("datasets", "build", "acouslic-iqa", "--raw", raw[0], "--out", out)
    assert result.exit_code == 0, result.output
    return out, result.output


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def test_build_counts_frames_per_split_and_label(raw, built):
    _, cases = raw
    out, output = built
    info = json.loads((out / "build_info.json").read_text())
    counts = {split: summary["label_counts"] for split, summary in info["configs"]["default"].items()}
    assert counts == _expected_counts(cases)
    # The CLI prints the same counts (this table is what the note quotes).
    for per_label in counts.values():
        assert ", ".join(f"{label} {n}" for label, n in sorted(per_label.items())) in output
    assert info["options"] == {"split_rule": "subject", "keep_unmeasured_sweeps": False, "negative_keep_fraction": 1.0}


def test_split_is_by_case_and_by_subject(raw, built):
    _, cases = raw
    out, _ = built
    case_splits, subject_splits = {}, {}
    for split in ("train", "validation", "test"):
        for row in _rows(out, split):
            assert case_splits.setdefault(row["case_id"], split) == split, f"case {row['case_id']} in two splits"
            assert subject_splits.setdefault(row["subject_id"], split) == split
    assert set(case_splits) == set(cases)  # every case is somewhere
    shared = [uuid for uuid, case in cases.items() if list(c["subject_id"] for c in cases.values()).count(case["subject_id"]) > 1]
    assert len(shared) == 2 and len({case_splits[uuid] for uuid in shared}) == 1
    report = _invoke("datasets", "info", out)
    assert report.exit_code == 0, report.output
    assert "No subject_id is shared between splits." in report.output


def test_rows_hold_the_frames_masks_and_labels_of_the_stacks(raw, built):
    import SimpleITK as sitk
    from PIL import Image

    root, cases = raw
    out, _ = built
    rows = {row["id"]: row for split in ("train", "validation", "test") for row in _rows(out, split)}
    uuid = next(iter(cases))
    row = rows[f"{uuid}-s1-f001"]  # sweep 1 always has a reference AC; frame 1 is an optimal plane
    stack = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "images" / "stacked_fetal_ultrasound" / f"{uuid}.mha")))
    masks = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "masks" / "stacked_fetal_abdomen" / f"{uuid}.mha")))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(row["image"]["bytes"]))), stack[1])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(row["mask"]["bytes"]))), masks[1])
    assert (row["label"], row["plane_quality"], row["sweep"], row["frame"]) == (1, 1, 1, 1)
    assert row["subject_id"] == cases[uuid]["subject_id"] and row["case_id"] == uuid
    assert row["sweep_ac_mm"] == pytest.approx(cases[uuid]["ac_mm"][0], rel=1e-6)
    assert row["pixel_size_mm"] == pytest.approx(0.28)
    suboptimal = rows[f"{uuid}-s2-f002"]  # even sweeps: frame 2 is a suboptimal plane
    assert (suboptimal["label"], suboptimal["plane_quality"]) == (1, 2)
    assert (rows[f"{uuid}-s1-f000"]["label"], rows[f"{uuid}-s1-f000"]["plane_quality"]) == (0, 0)
    # Sweep 3 of the first case has no reference AC: left out by default.
    assert cases[uuid]["ac_mm"][2] is None and not any(key.startswith(f"{uuid}-s3-") for key in rows)


def test_card_states_the_non_commercial_licence(built):
    out, _ = built
    card = (out / "README.md").read_text()
    assert "license: cc-by-nc-sa-4.0" in card
    assert "Non-commercial licence (cc-by-nc-sa-4.0)" in card
    assert "sweeps without a reference" in card.lower() or "without a reference abdominal circumference" in card
    listing = _invoke("datasets", "list", "--json")
    entry = next(e for e in json.loads(listing.output) if e["name"] == "acouslic-iqa")
    assert entry["non_commercial"] is True and entry["license"] == "cc-by-nc-sa-4.0"
    assert "acouslic-iqa" in _invoke("datasets", "list").output  # the table says "(non-commercial)" beside the licence


def test_keep_unmeasured_sweeps_and_thin_train_negatives(raw, built, tmp_path):
    root, cases = raw
    default_out, _ = built
    kept = _invoke("datasets", "build", "acouslic-iqa", "--raw", root, "--out", tmp_path / "kept", "--keep-unmeasured-sweeps")
    assert kept.exit_code == 0, kept.output
    info = json.loads((tmp_path / "kept" / "build_info.json").read_text())
    counts = {split: summary["label_counts"] for split, summary in info["configs"]["default"].items()}
    assert counts == _expected_counts(cases, keep_unmeasured=True)
    unmeasured = [row for row in _rows(tmp_path / "kept", "train") if row["sweep_ac_mm"] is None]
    assert unmeasured and all(cases[row["case_id"]]["ac_mm"][row["sweep"] - 1] is None for row in unmeasured)

    thin = _invoke("datasets", "build", "acouslic-iqa", "--raw", root, "--out", tmp_path / "thin",
                   "--negative-keep-fraction", "0.4")
    assert thin.exit_code == 0, thin.output
    full_train, thin_train = _rows(default_out, "train"), _rows(tmp_path / "thin", "train")
    assert [r["id"] for r in thin_train if r["label"] == 1] == [r["id"] for r in full_train if r["label"] == 1]
    negatives, kept_negatives = sum(r["label"] == 0 for r in full_train), sum(r["label"] == 0 for r in thin_train)
    assert 0 < kept_negatives < negatives
    for split in ("validation", "test"):  # only the train split is thinned
        assert [r["id"] for r in _rows(tmp_path / "thin", split)] == [r["id"] for r in _rows(default_out, split)]
    again = _invoke("datasets", "build", "acouslic-iqa", "--raw", root, "--out", tmp_path / "thin2",
                    "--negative-keep-fraction", "0.4")
    assert [r["id"] for r in _rows(tmp_path / "thin2", "train")] == [r["id"] for r in thin_train]  # seeded
    assert again.exit_code == 0


def test_paper_split_rule_reproduces_the_papers_permutation(raw, tmp_path):
    root, cases = raw
    uuids = list(cases)  # CSV order
    # He et al.'s preprocessing, literally: permute the uuid column with their seed, cut at 70% / 80%.
    permuted = np.random.default_rng(PAPER_SEED).permutation(np.array(uuids))
    n = len(uuids)
    expected = {u: "train" for u in permuted[: int(0.7 * n)]}
    expected |= {u: "validation" for u in permuted[int(0.7 * n): int(0.8 * n)]}
    expected |= {u: "test" for u in permuted[int(0.8 * n):]}
    assert paper_splits(uuids) == expected

    result = _invoke("datasets", "build", "acouslic-iqa", "--raw", root, "--out", tmp_path / "paper", "--split-rule", "paper")
    assert result.exit_code == 0, result.output
    for split in ("train", "validation", "test"):
        assert {row["case_id"] for row in _rows(tmp_path / "paper", split)} <= {u for u, s in expected.items() if s == split}
    card = (tmp_path / "paper" / "README.md").read_text()
    assert "NOT subject-disjoint" in card and str(PAPER_SEED) in card


def test_unknown_option_and_bad_values_are_refused(raw, tmp_path):
    result = _invoke("datasets", "build", "hc18", "--raw", tmp_path, "--out", tmp_path / "o", "--keep-unmeasured-sweeps")
    assert result.exit_code == 2 and "--keep-unmeasured-sweeps (for acouslic-iqa)" in result.output
    bad = _invoke("datasets", "build", "acouslic-iqa", "--raw", raw[0], "--out", tmp_path / "o", "--negative-keep-fraction", "0")
    assert bad.exit_code == 2 and "negative_keep_fraction" in bad.output
    assert not (tmp_path / "o").exists()


@pytest.fixture
def raw_copy(raw, tmp_path) -> Path:
    copy = tmp_path / "raw"
    shutil.copytree(raw[0], copy)
    return copy


def _build(raw_dir: Path, out: Path):
    from fetal_bench.data.builders import build_dataset

    return build_dataset("acouslic-iqa", out, raw_dir=raw_dir)


def test_missing_mask_file_is_named(raw_copy, tmp_path):
    victim = sorted((raw_copy / "masks" / "stacked_fetal_abdomen").glob("*.mha"))[2]
    victim.unlink()
    with pytest.raises(DataError, match=f"missing: .*{victim.name}"):
        _build(raw_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_csv_header_is_named(raw_copy, tmp_path):
    path = raw_copy / "circumferences" / "fetal_abdominal_circumferences_per_sweep.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0].replace("subject_id", "subject")] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="unexpected header"):
        _build(raw_copy, tmp_path / "out")


def test_image_and_mask_of_different_sizes_are_refused(raw_copy, tmp_path):
    import SimpleITK as sitk

    victim = sorted((raw_copy / "masks" / "stacked_fetal_abdomen").glob("*.mha"))[1]
    sitk.WriteImage(sitk.Image(40, 36, 6 * FRAMES, sitk.sitkUInt8), str(victim), True)
    with pytest.raises(DataError, match=f"the mask .*{victim.name} is 40 x 36 x 24 but the image"):
        _build(raw_copy, tmp_path / "out")


def test_a_bad_stack_found_mid_build_leaves_no_output(raw_copy, tmp_path):
    import SimpleITK as sitk

    # Sorted by uuid, the last case is written last: its bad mask is found after others were written.
    victim = sorted((raw_copy / "masks" / "stacked_fetal_abdomen").glob("*.mha"))[-1]
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(victim)))
    array[-1, 0, 0] = 7
    sitk.WriteImage(sitk.GetImageFromArray(array), str(victim), True)
    with pytest.raises(DataError, match="holds values \\[7\\]"):
        _build(raw_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "raw"]  # no temporary directory left either


def test_partial_raw_directory_builds_with_a_warning(raw_copy, tmp_path):
    victim = sorted((raw_copy / "images" / "stacked_fetal_ultrasound").glob("*.mha"))[0]
    victim.unlink()
    (raw_copy / "masks" / "stacked_fetal_abdomen" / victim.name).unlink()
    result = _build(raw_copy, tmp_path / "out")
    assert any("Partial raw directory: 5 of the 6 cases" in w for w in result.warnings)
    partial = json.loads((tmp_path / "out" / "build_info.json").read_text())["partial"]
    assert partial == {"what": "cases", "listed": 6, "built": 5, "missing": 1, "missing_share": round(1 / 6, 6),
                       "revision": "local", "missing_examples": [victim.stem]}
    assert "> **Partial build: a local revision, not acouslic-iqa" in (tmp_path / "out" / "README.md").read_text()


def test_download_verifies_against_the_zenodo_record_and_builds(raw, zenodo, tmp_path):
    from fetal_bench.data.download import download_dataset
    from fetal_bench.errors import DownloadError

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(raw[0].rglob("*")):
            if path.is_file():  # the archive may wrap everything in acouslic-ai-train-set/
                archive.write(path, f"acouslic-ai-train-set/{path.relative_to(raw[0]).as_posix()}")
    zenodo.publish("acouslic-ai-train-set.zip", buffer.getvalue(), record=12697994)
    zenodo.publish_record(record=12697994, **{"acouslic-ai-train-set.zip": {"checksum": "md5:" + "0" * 32}})
    with pytest.raises(DownloadError, match="Zenodo record 12697994 lists md5 0000"):
        download_dataset("acouslic-iqa", tmp_path / "dl", mirror=zenodo.base, progress=False)
    zenodo.publish_record(record=12697994)
    download_dataset("acouslic-iqa", tmp_path / "dl", mirror=zenodo.base, progress=False)
    assert (tmp_path / "dl" / "circumferences" / "fetal_abdominal_circumferences_per_sweep.csv").is_file()
    assert _build(tmp_path / "dl", tmp_path / "out").configs["default"]["test"].num_examples > 0


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def test_tasks_score_the_usable_class_and_resample_cases():
    from fetal_bench.tasks import Task, TaskDataset, get_task

    task = get_task("acouslic-iqa")
    assert (task.main_score, task.positive_label, task.subject_column) == ("f1", "usable", "case_id")
    assert task.metrics == ("f1", "accuracy", "precision", "recall", "specificity", "auc")
    three = get_task("acouslic-iqa-3way")
    assert (three.label_column, three.main_score, three.labels) == ("plane_quality", "macro_f1", ("none", "optimal", "suboptimal"))
    with pytest.raises(FetalBenchError, match="need a positive_label"):
        Task(name="x", version="1", dataset=TaskDataset("d", "v1"), eval_split="test", type="classification",
             labels=("a", "b"), metrics=("f1",), main_score="f1")


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def test_vit_lora_has_the_papers_settings_and_trains_only_adapters_and_head():
    from fetal_bench.models import create_model, get_model_info
    from fetal_bench.training.config import TrainConfig, resolve_config

    info = get_model_info("vit_lora")
    resolved = resolve_config(TrainConfig(model="vit_lora", task="acouslic-iqa", output="x"))
    assert (resolved.optimizer, resolved.lr, resolved.batch_size, resolved.epochs) == ("adamw", 3e-4, 32, 5)
    model = create_model("vit_lora", **info.tiny)
    assert {k: model.model_cfg[k] for k in ("lora_r", "lora_alpha", "lora_dropout")} == \
        {"lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in name or name.startswith("head.") for name in trainable)
    # Every block's attention (fused q/k/v and output projection) and both MLP linears are adapted.
    adapted = {name.split(".lora_")[0] for name in trainable if ".lora_" in name}
    assert any(name.endswith("self_attention") for name in adapted)
    assert any(name.endswith("out_proj") for name in adapted) and any(name.endswith("mlp.3") for name in adapted)
    model.train()
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if ".lora_" in n)  # no adapter bypassed


def test_lora_weights_round_trip_through_the_checkpoint(tmp_path):
    from fetal_bench.models import create_model, save_checkpoint

    model = create_model("vit_lora", variant="tiny", image_size=(32, 32))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".lora_" in name:
                parameter.normal_()
    save_checkpoint(model, tmp_path / "ckpt")
    restored = create_model("vit_lora", checkpoint=tmp_path / "ckpt")
    original = {k: v for k, v in model.state_dict().items() if ".lora_" in k}
    again = {k: v for k, v in restored.state_dict().items() if ".lora_" in k}
    assert original.keys() == again.keys() and all(torch.equal(original[k], again[k]) for k in original)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), restored.eval()(x))


def test_segmentation_route_rule_is_one_percent_of_pixels():
    from fetal_bench.models.seg_to_cls import frame_rule_logits

    height, width = 20, 30  # 600 pixels: 1% is 6
    logits = torch.zeros(3, 2, height, width)
    logits[:, 0] = 1.0  # background everywhere ...
    for i, n in enumerate((5, 6, 0)):  # ... except n foreground pixels
        logits[i, 1].view(-1)[:n] = 2.0
    proba = torch.softmax(frame_rule_logits(logits, 0.01), dim=1)
    assert proba.argmax(dim=1).tolist() == [0, 1, 0]
    expected = torch.tensor([5.5 / 11.5, 6.5 / 12.5, 0.5 / 6.5])
    torch.testing.assert_close(proba[:, 1], expected)


def test_fetalclip_errors_are_clear_without_open_clip_or_weights(monkeypatch, tmp_path):
    from fetal_bench.models import create_model

    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if not installed
    with pytest.raises(FetalBenchError, match=r'pip install "fetal-bench\[fetalclip\]"'):
        create_model("fetalclip_lora", config={"embed_dim": 4, "vision_cfg": {}}, weights=tmp_path / "w.pt")
    monkeypatch.undo()
    pytest.importorskip("open_clip")
    config = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
              "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1}}
    with pytest.raises(FetalBenchError, match="needs the FetalCLIP weights"):
        create_model("fetalclip_lora", config=config)
    with pytest.raises(FetalBenchError, match="FetalCLIP_config.json"):
        create_model("fetalclip_lora", weights=tmp_path / "w.pt")
    with pytest.raises(FetalBenchError, match="does not exist"):
        create_model("fetalclip_lora", config=config, weights=tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def tiny_fetalclip(tmp_path_factory) -> tuple[Path, Path]:
    """A stand-in for the user's FetalCLIP files: a tiny open_clip config and random weights."""
    open_clip = pytest.importorskip("open_clip")
    directory = tmp_path_factory.mktemp("fetalclip")
    config = {"embed_dim": 8, "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
              "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1}}
    (directory / "FetalCLIP_config.json").write_text(json.dumps(config))
    # open_clip builds registered configs only; register for this build and leave its global
    # registry as it was, so no later test sees a stray model name.
    open_clip.factory._MODEL_CONFIGS["fetal-bench-test-clip"] = config
    try:
        torch.save(open_clip.create_model("fetal-bench-test-clip").state_dict(), directory / "FetalCLIP_weights.pt")
    finally:
        del open_clip.factory._MODEL_CONFIGS["fetal-bench-test-clip"]
    return directory / "FetalCLIP_config.json", directory / "FetalCLIP_weights.pt"


# --------------------------------------------------------------------------------------------
# Train -> evaluate, through the CLI
# --------------------------------------------------------------------------------------------

BASELINES = [
    pytest.param("densenet121", "acouslic-iqa", ["pretrained=false"], (32, 32), id="densenet121"),
    pytest.param("efficientnet_b0", "acouslic-iqa-3way", ["pretrained=false"], (32, 32), id="efficientnet_b0-3way"),
    pytest.param("vit_lora", "acouslic-iqa", ["variant=tiny"], (32, 32), id="vit_lora"),
    pytest.param("unet-iqa", "acouslic-iqa", ["base_channels=4", "depth=2"], (32, 48), id="unet-iqa"),
    pytest.param("fetalclip_lora", "acouslic-iqa", None, None, id="fetalclip_lora"),
]


@pytest.mark.parametrize(("model", "task", "options", "image_size"), BASELINES)
def test_train_then_evaluate_through_the_cli(model, task, options, image_size, built, tmp_path, request):
    from fetal_bench.evaluation.results import validate_result
    from fetal_bench.tasks import get_task

    out, _ = built
    if options is None:  # FetalCLIP: only where open_clip is installed, with stand-in files
        config, weights = request.getfixturevalue("tiny_fetalclip")
        options = [f"config={config}", f"weights={weights}"]
    args = ["train", model, "--task", task, "--data", out, "--output", tmp_path / "run", "--max-steps", "2",
            "--batch-size", "8", "--no-progress", "--run-name", f"{model}-test"]
    for option in options:
        args += ["--model-opt", option]
    if image_size:
        args += ["--image-size", *image_size]
    trained = _invoke(*args)
    assert trained.exit_code == 0, trained.output
    checkpoint = json.loads((tmp_path / "run" / "config.json").read_text())
    assert checkpoint["model"] == model and "weights" not in checkpoint["cfg"]

    evaluated = _invoke("evaluate", "--task", task, "--model", model, "--checkpoint", tmp_path / "run", "--data", out,
                        "--output", tmp_path / "results", "--bootstrap", "20")
    assert evaluated.exit_code == 0, evaluated.output
    (path,) = (tmp_path / "results").glob("*.json")
    result = json.loads(path.read_text())
    validate_result(result)
    definition = get_task(task)
    assert result["task"] == task and result["scores"]["main_score"] == definition.main_score
    assert set(definition.metrics) <= set(result["scores"])
    assert result["bootstrap"]["unit"] == "case_id"
    assert result["n_subjects"] == len({row["case_id"] for row in _rows(out, "test")})
    assert result["n_samples"] == len(_rows(out, "test"))
    assert result["submission"]["name"] == f"{model}-test"
