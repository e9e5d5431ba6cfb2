"""SonoNet-16: the port of the original weights classifies the 13 example frames as named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fetal_bench.errors import FetalBenchError
from fetal_bench.models import create_model, save_checkpoint
from fetal_bench.models.sononet import FETAL_PLANES_GROUPS, SONONET16_WEIGHTS, SONONET_LABELS
from fetal_bench.data.pinned_files import verify_file

# Example file name -> SonoNet class.
EXPECTED = {
    "3VV": "3VV", "4CH": "4CH", "ABDOMINAL": "Abdominal", "BRAIN-CB": "Brain (Cb.)", "BRAIN-TV": "Brain (Tv.)",
    "FEMUR": "Femur", "KIDNEYS": "Kidneys", "LIPS": "Lips", "LVOT": "LVOT", "PROFILE": "Profile", "RVOT": "RVOT",
    "SPINE-CORONAL": "Spine (cor.)", "SPINE-SAGITTAL": "Spine (sag.)",
}


@pytest.fixture(scope="module")
def sononet_files(shared_data):
    root = shared_data / "sononet16"
    frames = sorted((root / "example_images").glob("*.tiff"))
    assert len(frames) == 13
    return root / "SonoNet16.npz", frames


def test_architecture_matches_the_published_arrays():
    model = create_model("sononet16", weights=None)
    assert model.spec.labels == SONONET_LABELS and model.spec.image_size == (224, 288)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 15 and all(m.bias is None for m in convs)
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, 224, 288)).shape == (2, 14)


def test_pinned_checksums_match_the_shared_copy(sononet_files):
    npz, _ = sononet_files
    assert verify_file(npz, SONONET16_WEIGHTS) is None


def test_thirteen_of_thirteen_example_frames(sononet_files, tmp_path):
    """Through `fetal-bench predict`, from the .npz and from a converted checkpoint directory."""
    import csv

    from click.testing import CliRunner

    from fetal_bench.cli import cli

    npz, frames = sononet_files
    converted = tmp_path / "sononet16"
    save_checkpoint(create_model("sononet16", checkpoint=npz), converted)
    for checkpoint in (npz, converted):
        out = tmp_path / f"pred-{checkpoint.name}.csv"
        result = CliRunner().invoke(cli, ["predict", "--model", "sononet16", "--checkpoint", str(checkpoint),
                                          "--output", str(out), *map(str, frames)])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(out.open()))
        predicted = {row["file"].rsplit("/", 1)[-1].removesuffix(".tiff"): row["label"] for row in rows}
        assert predicted == EXPECTED
        assert all(abs(sum(float(row[label]) for label in SONONET_LABELS) - 1) < 1e-4 for row in rows)


def test_fetal_planes_head_pools_the_probabilities(sononet_files):
    npz, frames = sononet_files
    fine = create_model("sononet16", checkpoint=npz).eval()
    pooled = create_model("sononet16-planes", checkpoint=npz).eval()
    assert pooled.spec.labels == ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Other")
    x = torch.randn(3, 1, 224, 288)
    with torch.no_grad():
        p_fine = torch.softmax(fine(x), dim=1)
        p_pooled = torch.softmax(pooled(x), dim=1)
    for k, members in enumerate(FETAL_PLANES_GROUPS.values()):
        index = [SONONET_LABELS.index(m) for m in members]
        assert torch.allclose(p_pooled[:, k], p_fine[:, index].sum(dim=1), atol=1e-5)
    rows = _predict_rows(pooled, frames)
    by_name = {path.stem: label for path, label in rows}
    assert by_name["ABDOMINAL"] == "Fetal abdomen" and by_name["FEMUR"] == "Fetal femur"
    assert by_name["BRAIN-CB"] == by_name["BRAIN-TV"] == "Fetal brain"
    assert {by_name[k] for k in ("3VV", "4CH", "LVOT", "RVOT")} == {"Fetal thorax"}
    assert {by_name[k] for k in ("KIDNEYS", "LIPS", "PROFILE", "SPINE-CORONAL", "SPINE-SAGITTAL")} == {"Other"}


def _predict_rows(model, frames):
    import tempfile
    from pathlib import Path

    from fetal_bench.evaluation.predict_files import predict_files

    with tempfile.TemporaryDirectory() as tmp:
        result = predict_files(model.model_name, frames, Path(tmp) / "p.csv", model=model)
    return [(Path(row["file"]), row["label"]) for row in result.rows]


def test_fine_tuning_head_keeps_the_features(sononet_files):
    npz, _ = sononet_files
    base = create_model("sononet16", checkpoint=npz)
    tuned = create_model("sononet16", weights=npz, labels=["a", "b", "c"])
    assert tuned.spec.labels == ("a", "b", "c")
    assert torch.equal(base.features[0].weight, tuned.features[0].weight)
    assert tuned.adaptation[-2].out_channels == 3


def test_a_wrong_file_is_refused(tmp_path):
    bad = tmp_path / "SonoNet16.npz"
    np.savez(bad, np.zeros(3))
    with pytest.raises(FetalBenchError, match="not the published SonoNet16.npz"):
        create_model("sononet16", checkpoint=bad)
