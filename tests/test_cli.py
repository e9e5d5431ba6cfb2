"""The `fetal-bench` command line, end to end through click."""

from __future__ import annotations

import json
import tarfile
import io

import pytest
from click.testing import CliRunner

from fetal_bench import __version__
from fetal_bench.cli import cli
from fake_raw import make_hc18_raw, png_bytes


@pytest.fixture()
def runner():
    return CliRunner()


def test_version_and_help(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(cli, ["datasets", "--help"])
    assert result.exit_code == 0 and "build" in result.output


def test_datasets_list_shows_catalog(runner):
    result = runner.invoke(cli, ["datasets", "list", "--json"])
    assert result.exit_code == 0
    entries = {entry["name"]: entry for entry in json.loads(result.output)}
    assert {"hc18", "fetal-planes-es", "fetal-planes-africa", "phantom"} <= set(entries)
    assert entries["hc18"]["zenodo_record"] == 1327317 and entries["hc18"]["revision"] == "v1.0"
    result = runner.invoke(cli, ["datasets", "list"])
    assert result.exit_code == 0 and "fetal-planes-africa" in result.output and "cc-by-4.0" in result.output


def test_build_and_info(runner, tmp_path):
    make_hc18_raw(tmp_path / "raw", subjects=10)
    result = runner.invoke(cli, ["datasets", "build", "hc18", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "Partial raw directory" in result.output and "fingerprint" in result.output
    result = runner.invoke(cli, ["datasets", "info", str(tmp_path / "out")])
    assert result.exit_code == 0 and "No subject_id is shared between splits." in result.output
    report = json.loads(runner.invoke(cli, ["datasets", "info", str(tmp_path / "out"), "--json"]).output)
    assert sum(report["default"]["rows"].values()) == 14 and report["default"]["ok"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["datasets", "build", "nope", "--out", "x"], "Unknown dataset 'nope'"),
        (["datasets", "build", "hc18", "--out", "x"], "needs the official raw files"),
        (["datasets", "build", "hc18", "--raw", "/does/not/exist", "--out", "x"], "does not exist"),
        (["datasets", "info", "/does/not/exist"], "not a directory"),
    ],
)
def test_bad_input_exits_2_with_problem_and_fix(runner, args, message, tmp_path):
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output and "Fix:" in result.output


def test_corrupt_raw_image_exits_2_naming_the_file(runner, tmp_path):
    make_hc18_raw(tmp_path / "raw", subjects=6)
    (tmp_path / "raw" / "training_set" / "002_HC.png").write_bytes(b"\x89PNG broken")
    result = runner.invoke(cli, ["datasets", "build", "hc18", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "002_HC.png" in result.output
    assert not (tmp_path / "out").exists()


def test_download_then_build_africa_from_a_local_mirror(runner, tmp_path, zenodo):
    """The official African archive layout, served by a local Zenodo stand-in, end to end."""
    rows = ["Patient_num,Plane,Train,Center,Filename"]
    members = {}
    for country, code in (("Malawi", "MWI"), ("Egypt", "EGY")):
        for patient in (1, 2, 3):
            for k, plane in enumerate(("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax")):
                name = f"patient{patient:03d}_{code}_plane{k}"
                rows.append(f"{patient},{plane},{patient % 2},{country},{name}")
                members[f"Zenodo_dataset/{country}/{name}.png"] = png_bytes(
                    __import__("numpy").full((8, 8), patient * 10 + k, dtype="uint8"))
    members["Zenodo_dataset/African_planes_database.csv"] = ("\n".join(rows) + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    zenodo.publish("Zenodo_dataset.tar.xz", buffer.getvalue(), record=7540448)
    zenodo.publish_record(7540448)  # the catalog pins no md5 for this file: the record API gives it

    raw = tmp_path / "raw"
    result = runner.invoke(cli, ["datasets", "download", "fetal-planes-africa", "--to", str(raw), "--mirror", zenodo.base])
    assert result.exit_code == 0, result.output
    assert (raw / "African_planes_database.csv").is_file() and (raw / "Malawi").is_dir()
    result = runner.invoke(cli, ["datasets", "build", "fetal-planes-africa", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    from datasets import load_dataset

    ds = load_dataset(str(tmp_path / "out"))
    assert len(ds["train"]) + len(ds["test"]) == 24 and set(ds["test"]["country"]) == {"Malawi", "Egypt"}


def test_download_failure_prints_manual_recipe(runner, tmp_path, zenodo):
    # Nothing published: the mirror answers 404 for the archive and the record.
    result = runner.invoke(cli, ["datasets", "download", "fetal-planes-africa", "--to", str(tmp_path), "--mirror", zenodo.base])
    assert result.exit_code == 2
    assert "zenodo.org/records/7540448" in result.output and "fetal-bench datasets build fetal-planes-africa" in result.output
