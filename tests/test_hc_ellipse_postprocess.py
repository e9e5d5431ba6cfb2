"""Sub-pixel head contours, the trimmed ellipse fit and the U-Net's ellipse post-processing (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetal_bench.errors import FetalBenchError
from fetal_bench.geometry import (
    Ellipse,
    ellipse_distances,
    ellipse_mask,
    fit_ellipse,
    fit_ellipse_robust,
    subpixel_boundary_points,
)
from fetal_bench.metrics.segmentation import dice, hc_scores, head_circumference_mm

HEAD = Ellipse(cx=200.3, cy=150.7, a=120.0, b=90.0, angle=0.3)
SHAPE = (300, 400)


def _soft_head(width: float = 1.5) -> np.ndarray:
    """A smooth head probability map whose 0.5 level set is exactly HEAD."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    inside = -ellipse_distances(HEAD, cols, rows)
    return 1.0 / (1.0 + np.exp(-inside / width))


def _with_leak(probability: np.ndarray) -> np.ndarray:
    """The head plus a confident blob running off its upper left side (a leak into the neck)."""
    leaked = probability.copy()
    leaked[60:120, 60:130] = np.maximum(leaked[60:120, 60:130], 0.9)
    return leaked


def test_distances_are_signed_and_first_order_accurate():
    on_axis = ellipse_distances(Ellipse(0.0, 0.0, 200.0, 100.0, 0.0), np.array([202.0, 198.0, 0.0]),
                                np.array([0.0, 0.0, 101.0]))
    # Sampson's distance (u^2 - a^2) / 2u on the major axis: 2 * 402 / 404 out, -2 * 398 / 396 in.
    assert on_axis == pytest.approx([804 / 404, -796 / 396, 201 / 202], abs=1e-12)


def test_subpixel_points_lie_on_the_half_probability_contour():
    probability = _soft_head()
    x, y = subpixel_boundary_points(probability, probability > 0.5)
    assert x.size == 842  # one per pixel edge the contour crosses
    assert np.abs(ellipse_distances(HEAD, x, y)).max() < 0.005
    fitted = fit_ellipse(x, y)
    assert fitted.perimeter == pytest.approx(HEAD.perimeter, abs=0.01)


def test_on_a_binary_mask_the_points_are_the_pixel_edges_not_the_centres():
    mask = ellipse_mask(SHAPE, HEAD)
    x, y = subpixel_boundary_points(mask.astype(float), mask)
    # Every point sits on a pixel edge: one coordinate is an integer, the other a half.
    assert np.all((x % 1 == 0.5) ^ (y % 1 == 0.5))
    edges = fit_ellipse(x, y).perimeter
    centres = head_circumference_mm(mask, 1.0)
    assert abs(edges - HEAD.perimeter) < 0.1  # on the outline
    assert centres == pytest.approx(HEAD.perimeter - math.pi, abs=0.5)  # half a pixel inside it


def test_subpixel_points_check_their_inputs():
    with pytest.raises(ValueError, match="same 2-D shape"):
        subpixel_boundary_points(np.zeros((4, 4)), np.zeros((4, 5), bool))


def test_the_trimmed_fit_ignores_a_leak_that_pulls_a_plain_fit_outwards():
    leaked = _with_leak(_soft_head())
    x, y = subpixel_boundary_points(leaked, leaked > 0.5)
    plain = fit_ellipse(x, y).perimeter - HEAD.perimeter
    robust = fit_ellipse_robust(x, y).perimeter - HEAD.perimeter
    assert plain > 30.0
    assert abs(robust) < 0.2


def test_the_trimmed_fit_leaves_a_clean_contour_alone():
    probability = _soft_head()
    x, y = subpixel_boundary_points(probability, probability > 0.5)
    assert fit_ellipse_robust(x, y) == fit_ellipse(x, y)


def _logits(probability: np.ndarray):
    torch = pytest.importorskip("torch")
    p = np.clip(probability, 1e-7, 1 - 1e-7)  # the map saturates to 1.0 deep inside the head
    logit = np.log(p / (1.0 - p))
    return torch.from_numpy(np.stack([np.zeros_like(logit), logit])).float()


def test_without_postprocess_the_mask_is_the_argmax_of_the_resized_logits():
    import torch
    import torch.nn.functional as F

    from fetal_bench.models.seg_postprocess import mask_from_logits

    logits = torch.randn(2, 12, 18, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(logits[None], size=(54, 80), mode="bilinear", align_corners=False)[0].argmax(0) > 0
    assert np.array_equal(mask_from_logits(logits, (54, 80), None), expected.numpy())


def test_the_ellipse_postprocess_returns_the_head_without_its_leak():
    from fetal_bench.models.seg_postprocess import mask_from_logits

    truth = ellipse_mask(SHAPE, HEAD)
    leaked = _with_leak(_soft_head())
    argmax = mask_from_logits(_logits(leaked), SHAPE, None)
    fitted = mask_from_logits(_logits(leaked), SHAPE, {"method": "ellipse", "offset_px": 0.0})
    assert dice(argmax, truth) < 0.98
    assert dice(fitted, truth) > 0.999
    # The filled ellipse measures what a rasterised ellipse does: half a pixel inside, all round.
    assert head_circumference_mm(fitted, 1.0) == pytest.approx(HEAD.perimeter - math.pi, abs=0.5)
    assert hc_scores(argmax, HEAD.perimeter, 1.0)["hc_diff_mm"] > 20.0


def test_a_second_round_lobe_joined_by_a_neck_is_cut_off():
    """A first-trimester trunk marked as head, touching it (HC18 023_2HC): the ellipse is the head's."""
    from fetal_bench.models.seg_postprocess import head_ellipse_from_probability, main_lobe, mask_from_logits

    head = Ellipse(cx=130.0, cy=150.0, a=70.0, b=60.0, angle=0.2)
    trunk = Ellipse(cx=262.0, cy=160.0, a=62.0, b=50.0, angle=-0.3)
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    probability = np.maximum(*(1.0 / (1.0 + np.exp(ellipse_distances(e, cols, rows) / 1.5)) for e in (head, trunk)))
    probability[140:170, 195:205] = 0.95  # the neck between them, narrower than either
    region, ellipse = head_ellipse_from_probability(probability)
    assert region.sum() < 1.1 * ellipse_mask(SHAPE, head).sum()
    assert ellipse.perimeter == pytest.approx(head.perimeter, rel=0.01)
    fitted = mask_from_logits(_logits(probability), SHAPE, {"method": "ellipse", "offset_px": 0.0})
    assert dice(fitted, ellipse_mask(SHAPE, head)) > 0.99
    # One convex region, however elongated, is never cut; nor is a small bump on a head.
    elongated = ellipse_mask(SHAPE, Ellipse(200.0, 150.0, 180.0, 40.0, 0.1))
    assert np.array_equal(main_lobe(elongated), elongated)
    bumped = ellipse_mask(SHAPE, HEAD) | ellipse_mask(SHAPE, Ellipse(95.0, 100.0, 25.0, 20.0, 0.0))
    assert np.array_equal(main_lobe(bumped), bumped)


def test_an_offset_widens_both_semi_axes():
    from fetal_bench.models.seg_postprocess import mask_from_logits

    logits = _logits(_soft_head())
    widened = mask_from_logits(logits, SHAPE, {"method": "ellipse", "offset_px": 2.0})
    expected = ellipse_mask(SHAPE, Ellipse(HEAD.cx, HEAD.cy, HEAD.a + 2.0, HEAD.b + 2.0, HEAD.angle))
    assert (widened != expected).sum() < 20  # the fit is within a few thousandths of a pixel


def test_no_head_gives_the_empty_mask():
    from fetal_bench.models.seg_postprocess import mask_from_logits

    logits = _logits(np.full(SHAPE, 0.1))
    assert not mask_from_logits(logits, SHAPE, {"method": "ellipse", "offset_px": 0.0}).any()


def test_calibration_finds_the_offset_that_removes_the_mean_hc_error():
    from fetal_bench.models.seg_postprocess import calibrate_ellipse_offset

    heads = [HEAD, Ellipse(190.0, 160.0, 100.0, 80.0, -0.7), Ellipse(210.5, 140.2, 140.0, 120.0, 1.1)]
    spacing = 0.1
    targets = [head.perimeter * spacing for head in heads]  # HC of the analytic ellipses
    offset, summary = calibrate_ellipse_offset(heads + [None], [SHAPE] * 4, targets + [170.0], [spacing] * 4)
    # Boundary-pixel centres lie half a pixel inside a rasterised ellipse: widen by about that.
    assert 0.4 < offset < 0.6
    assert summary["n_images"] == 3 and summary["n_without_ellipse"] == 1
    assert summary["mean_signed_error_mm_before"] == pytest.approx(-math.pi * spacing, abs=0.05)
    assert abs(summary["mean_signed_error_mm_after"]) < 0.005


def test_calibration_without_any_ellipse_is_a_clear_error():
    from fetal_bench.models.seg_postprocess import calibrate_ellipse_offset

    with pytest.raises(FetalBenchError, match="No calibration image"):
        calibrate_ellipse_offset([None], [SHAPE], [170.0], [0.1])


@pytest.mark.parametrize("bad, message", [
    ([1.0], "must be a mapping"),
    ({"method": "ellipse", "offset_px": 0.0, "radius": 3}, "unknown keys"),
    ({"method": "circle"}, "not one of"),
    ({"method": "ellipse", "offset_px": float("nan")}, "offset_px must be a number"),
    ({"method": "ellipse", "offset_px": 50.0}, "offset_px must be a number"),
    ({"method": "ellipse", "offset_px": True}, "offset_px must be a number"),
])
def test_a_bad_postprocess_config_is_refused(bad, message):
    from fetal_bench.models.seg_postprocess import check_postprocess

    with pytest.raises(FetalBenchError, match=message):
        check_postprocess(bad)


def test_the_unet_config_carries_its_postprocess():
    from fetal_bench.models.unet import build_unet

    plain = build_unet(image_size=(32, 48), base_channels=2, depth=2)
    assert "postprocess" not in plain.model_cfg  # older checkpoints' configs are unchanged
    model = build_unet(image_size=(32, 48), base_channels=2, depth=2,
                       postprocess={"method": "ellipse", "offset_px": 1})
    assert model.model_cfg["postprocess"] == {"method": "ellipse", "offset_px": 1.0}
    with pytest.raises(FetalBenchError, match="not one of"):
        build_unet(image_size=(32, 48), base_channels=2, depth=2, postprocess={"method": "snake"})


def test_calibrating_on_a_scored_split_is_refused(tmp_path):
    from fetal_bench.models.seg_postprocess import calibrate_checkpoint

    for split in ("validation", "test", "train+test"):
        with pytest.raises(FetalBenchError, match="scored on"):
            calibrate_checkpoint(tmp_path, tmp_path, split=split)
    with pytest.raises(FetalBenchError, match="calibration target"):
        calibrate_checkpoint(tmp_path, tmp_path, target="median")


def test_a_saved_checkpoint_restores_its_postprocess(tmp_path):
    from fetal_bench.models import create_model, save_checkpoint

    postprocess = {"method": "ellipse", "offset_px": 0.75, "calibration": {"split": "train", "n_images": 3}}
    model = create_model("unet", image_size=(32, 48), base_channels=2, depth=2, postprocess=postprocess)
    save_checkpoint(model, tmp_path / "ckpt", training={"task": "hc18-head-seg"}, run_name="r")
    restored = create_model("unet", checkpoint=tmp_path / "ckpt")
    assert restored.model_cfg["postprocess"] == postprocess


def test_flip_average_is_an_inference_option_of_the_config():
    import torch

    from fetal_bench.models.unet import UNet, build_unet

    torch.manual_seed(0)
    model = build_unet(image_size=(32, 48), base_channels=2, depth=2).eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.inference_mode():
        plain = model(x)
        model.model_cfg["postprocess"] = {"method": "ellipse", "offset_px": 0.0, "flip_average": True}
        averaged = model(x)
        expected = (plain + UNet.forward(model, x.flip(-1)).flip(-1)) / 2
        assert torch.allclose(averaged, expected)
        assert not torch.allclose(averaged, plain)
        model.train()  # training never averages: the loss sees the network's own logits
        assert torch.equal(model(x), UNet.forward(model, x))
    from fetal_bench.models.seg_postprocess import check_postprocess

    with pytest.raises(FetalBenchError, match="flip_average"):
        check_postprocess({"method": "ellipse", "flip_average": "yes"})


def test_models_calibrate_fits_and_saves_the_offset_on_the_train_split(phantom, tmp_path, monkeypatch):
    """The CLI wiring end to end on the phantom heads. The network is replaced by probability maps
    that are the reference masks themselves, so the fitted offsets are known: fitting the masks'
    own HC needs (almost) none, fitting the reference HC a measurable one. Weights stay as they were."""
    import json

    import torch
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from fetal_bench.cli import cli
    from fetal_bench.data import open_dataset
    from fetal_bench.models import create_model, save_checkpoint
    from fetal_bench.models import seg_postprocess

    train = open_dataset(phantom, config="head", split="train")
    reference = {row["id"]: (np.asarray(row["mask"]) > 0).astype(np.float32) for row in train}
    seen = {}

    def masks_as_probabilities(model, dataset, **kwargs):
        seen["ids"] = sorted(dataset["id"])
        seen["flip_average"] = model.model_cfg["postprocess"]["flip_average"]
        return dict(reference)

    monkeypatch.setattr(seg_postprocess, "split_probabilities", masks_as_probabilities)
    checkpoint = tmp_path / "unet"
    save_checkpoint(create_model("unet", image_size=(32, 48), base_channels=2, depth=2), checkpoint,
                    training={"task": "phantom-head-seg"}, run_name="tiny")
    weights = load_file(checkpoint / "model.safetensors")

    offsets = {}
    for target in ("reference_mask", "reference_hc"):
        result = CliRunner().invoke(cli, ["models", "calibrate", str(checkpoint), "--data", str(phantom),
                                          "--config", "head", "--target", target, "--flip-average"])
        assert result.exit_code == 0, result.output
        assert "ellipse offset" in result.output
        postprocess = json.loads((checkpoint / "config.json").read_text())["cfg"]["postprocess"]
        assert postprocess["method"] == "ellipse" and postprocess["flip_average"] is True
        assert postprocess["calibration"]["split"] == "train" and postprocess["calibration"]["target"] == target
        assert postprocess["calibration"]["n_images"] == len(reference)
        assert abs(postprocess["calibration"]["mean_signed_error_mm_after"]) < 0.05
        offsets[target] = postprocess["offset_px"]
    assert seen == {"ids": sorted(reference), "flip_average": True}
    assert abs(offsets["reference_mask"]) < 0.5
    # the phantom's HC is its analytic ellipse's, larger than what boundary-pixel centres measure
    assert offsets["reference_hc"] > offsets["reference_mask"] + 0.2
    after = load_file(checkpoint / "model.safetensors")
    assert after.keys() == weights.keys() and all(torch.equal(after[k], weights[k]) for k in weights)
    restored = create_model("unet", checkpoint=checkpoint)
    assert restored.model_cfg["postprocess"]["offset_px"] == offsets["reference_hc"]

    from fetal_bench.cli.models import calibrate_command

    target_option = next(p for p in calibrate_command.params if p.name == "target")
    assert tuple(target_option.type.choices) == seg_postprocess.CALIBRATION_TARGETS  # the CLI offers them all
    refused = CliRunner().invoke(cli, ["models", "calibrate", str(checkpoint), "--data", str(phantom),
                                       "--config", "head", "--split", "test"])
    assert refused.exit_code != 0 and "scored on" in refused.output
