"""The metric registry, the cheap package import, and the offline `evaluate` module (one config per metric)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from fetal_bench import metrics as M
from fetal_bench.geometry import Ellipse, ellipse_mask

REGISTRY_KEYS = ["accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "auc_ovr_macro", "auc_ovr_hard", "ece",
                 "f1", "precision", "recall", "specificity", "auc",
                 "dice", "iou", "hd95_mm", "assd_mm", "hc_abs_diff_mm", "hc_abs_diff_mm_median", "hc_no_ellipse_rate",
                 "hc_diff_mm", "hc_rel_diff_pct"]


def test_registry_keys_and_specs():
    assert list(M.METRICS) == REGISTRY_KEYS
    for name, spec in M.METRICS.items():
        assert spec.name == name
        assert spec.task_type in ("classification", "segmentation")
        assert spec.needs in ("labels", "proba", "mask")
        assert spec.per_sample == (spec.task_type == "segmentation")
        assert (spec.unit == "mm") == ("_mm" in name)
        assert spec.higher_is_better == (name not in {"ece", "hd95_mm", "assd_mm", "hc_abs_diff_mm",
                                                      "hc_abs_diff_mm_median", "hc_no_ellipse_rate",
                                                      "hc_diff_mm", "hc_rel_diff_pct"})
        assert spec.signed == (name == "hc_diff_mm")
        assert spec.bounds == ((-10_000.0 if spec.signed else 0.0, 10_000.0) if spec.unit == "mm"
                               else (0.0, 10_000.0) if spec.unit == "%" else (0.0, 1.0))
        assert (spec.unit == "%") == name.endswith("_pct")
        assert callable(getattr(M, name)), f"registry metric {name} has no function"
        assert spec.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        M.METRICS["dice"].name = "x"


def test_import_is_cheap():
    code = ("import sys, fetal_bench.metrics; "
            "print(sorted(m for m in ('scipy', 'sklearn', 'evaluate', 'torch', 'datasets', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy())
    assert out.stdout.strip() == "[]"


def test_one_module_serves_every_metric_as_a_config(modules):
    path = M.evaluate_module_path()
    assert path.is_file() and path.name == f"{path.parent.name}.py"
    # One script, one card, and what makes the folder a Hub Space (app.py, requirements.txt).
    assert sorted(p.name for p in path.parent.iterdir() if p.name != "__pycache__") == \
        ["README.md", "app.py", path.name, "requirements.txt"]
    assert (path.parent / "README.md").read_text().startswith("---\n")
    for name, module in modules.items():  # each config described from the registry
        assert module.config_name == name and module.description == M.METRICS[name].description
        assert f"{name} (float or None)" in module.inputs_description
    assert "pixel_size_mm (list of float)" in modules["hd95_mm"].inputs_description
    assert "positive (int, optional)" in modules["f1"].inputs_description
    with pytest.raises(ValueError, match="unknown metric"):
        M.load_evaluate_metric("f2")


@pytest.fixture(scope="module")
def modules():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: nothing may reach the Hub
    return {name: M.load_evaluate_metric(name) for name in M.METRICS}


def test_modules_load_by_directory_path_offline():
    import evaluate

    module = evaluate.load(str(M.evaluate_module_path().parent), config_name="dice")
    assert module.compute(predictions=[np.ones((3, 3), np.uint8)], references=[np.ones((3, 3), np.uint8)]) == {"dice": 1.0}


def test_classification_modules_equal_functions(modules):
    rng = np.random.default_rng(0)
    k = 4
    y_true = rng.integers(0, k, 80)
    y_pred = np.where(rng.random(80) < 0.6, y_true, rng.integers(0, k + 1, 80))  # k = outside the task
    proba = rng.dirichlet(np.ones(k + 1), 80)
    for name in ("balanced_accuracy", "macro_f1", "weighted_f1", "auc_ovr_hard"):
        got = modules[name].compute(predictions=y_pred, references=y_true, n_classes=k)[name]
        assert got == getattr(M, name)(y_true, y_pred, k)
    assert modules["accuracy"].compute(predictions=y_pred, references=y_true)["accuracy"] == M.accuracy(y_true, y_pred)
    assert modules["auc_ovr_macro"].compute(prediction_scores=proba[:, :k], references=y_true)["auc_ovr_macro"] == \
        M.auc_ovr_macro(y_true, proba[:, :k])
    assert modules["ece"].compute(prediction_scores=proba, references=y_true, n_bins=10)["ece"] == \
        M.ece(y_true, proba, n_bins=10)
    # Without n_classes the modules infer one more than the largest label seen.
    labels = [0, 1, 2, 2]
    assert modules["macro_f1"].compute(predictions=labels, references=[0, 1, 1, 2])["macro_f1"] == \
        M.macro_f1([0, 1, 1, 2], labels, 3)
    # A single class present: no AUC, reported as None.
    assert modules["auc_ovr_hard"].compute(predictions=[1, 0], references=[1, 1], n_classes=2)["auc_ovr_hard"] is None


def test_binary_modules_equal_functions(modules):
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 60)
    y_pred = np.where(rng.random(60) < 0.7, y_true, 1 - y_true)
    scores = rng.random(60)
    for name in ("f1", "precision", "recall", "specificity"):
        assert modules[name].compute(predictions=y_pred, references=y_true)[name] == getattr(M, name)(y_true, y_pred)
        assert modules[name].compute(predictions=y_pred, references=y_true, positive=0)[name] == \
            getattr(M, name)(y_true, y_pred, 0)
    assert modules["auc"].compute(prediction_scores=scores, references=y_true)["auc"] == M.auc(y_true, scores)
    assert modules["precision"].compute(predictions=[0, 0], references=[1, 0])["precision"] is None


def test_segmentation_modules_equal_functions(modules):
    rng = np.random.default_rng(1)
    shape = (48, 64)
    truths, preds, pixels, hcs = [], [], [], []
    for _ in range(4):
        e = Ellipse(cx=rng.uniform(25, 40), cy=rng.uniform(20, 28), a=rng.uniform(12, 20), b=rng.uniform(8, 14),
                    angle=rng.uniform(-1, 1))
        truths.append(ellipse_mask(shape, e).astype(np.uint8))
        moved = Ellipse(e.cx + rng.normal(), e.cy + rng.normal(), e.a * 1.05, e.b, e.angle)
        preds.append(ellipse_mask(shape, moved))
        pixels.append(float(rng.uniform(0.1, 0.3)))
        hcs.append(e.perimeter * pixels[-1])
    preds[-1] = np.zeros(shape, dtype=bool)  # an empty prediction goes through the same conventions

    def mean(function, *columns):
        return float(np.mean([function(*row) for row in zip(*columns)]))

    assert modules["dice"].compute(predictions=preds, references=truths)["dice"] == mean(M.dice, preds, truths)
    assert modules["iou"].compute(predictions=preds, references=truths)["iou"] == mean(M.iou, preds, truths)
    for name in ("hd95_mm", "assd_mm"):
        got = modules[name].compute(predictions=preds, references=truths, pixel_size_mm=pixels)[name]
        assert got == mean(getattr(M, name), preds, truths, pixels)
    got = modules["hc_abs_diff_mm"].compute(predictions=preds, references=hcs, pixel_size_mm=pixels)["hc_abs_diff_mm"]
    assert got == mean(M.hc_abs_diff_mm, preds, hcs, pixels)
    median = modules["hc_abs_diff_mm_median"].compute(predictions=preds, references=hcs, pixel_size_mm=pixels)
    assert median["hc_abs_diff_mm_median"] == float(np.median([M.hc_abs_diff_mm(*row) for row in zip(preds, hcs, pixels)]))
    rate = modules["hc_no_ellipse_rate"].compute(predictions=preds, references=hcs, pixel_size_mm=pixels)
    assert rate["hc_no_ellipse_rate"] == 0.25  # the empty prediction
    signed = modules["hc_diff_mm"].compute(predictions=preds, references=hcs, pixel_size_mm=pixels)["hc_diff_mm"]
    assert signed == mean(M.hc_diff_mm, preds, hcs, pixels)


def test_module_rejects_bad_masks_and_options(modules):
    with pytest.raises(ValueError, match="same shape"):
        modules["dice"].compute(predictions=[np.ones((3, 4), np.uint8)], references=[np.ones((4, 3), np.uint8)])
    with pytest.raises(TypeError, match=r"accuracy takes no option\(s\) \['positive'\]"):
        modules["accuracy"].compute(predictions=[1, 0], references=[1, 1], positive=0)


def test_the_module_folder_is_a_hub_space():
    """The evaluate Space: its card's front matter names the SDK and the app file, which exists
    and loads the module beside it; its requirements install evaluate and fetal-bench."""
    from huggingface_hub import SpaceCard

    folder = M.evaluate_module_path().parent
    card = SpaceCard.load(folder / "README.md")
    assert (card.data.sdk, card.data.app_file) == ("gradio", "app.py")
    app = (folder / "app.py").read_text()
    assert 'evaluate.load("fetal_bench_metrics.py"' in app and "launch_gradio_widget(module)" in app
    requirements = [line.strip() for line in (folder / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert "fetal-bench" in requirements and any(line.startswith("evaluate") for line in requirements)
