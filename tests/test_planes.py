"""FETAL_PLANES_DB and African planes converters."""

from __future__ import annotations

import json
import shutil

import pytest
from datasets import load_dataset

from fetal_bench.data.builders import build_dataset
from fetal_bench.data.builders.planes import AFRICA_PLANES, ES_PLANES
from fetal_bench.errors import DataError
from fake_raw import make_planes_images, write_africa_csv, write_es_csv

ES_ROWS = [
    # Image_name, Patient_num, Plane, Brain_plane, Operator, US_Machine, Train
    (f"Patient{p:05d}_Plane{k}_1_of_1", p, plane, "Not A Brain", "Op. 1", "Aloka", train)
    for p, train in ((1, 1), (2, 1), (3, 1), (4, 0), (5, 0), (6, 1), (7, 1), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1))
    for k, plane in enumerate(ES_PLANES)
]


@pytest.fixture()
def es_raw(tmp_path):
    root = tmp_path / "es"
    root.mkdir()
    write_es_csv(root / "FETAL_PLANES_DB_data.csv", ES_ROWS)
    make_planes_images(root / "FETAL_PLANES_DB_data.csv", dataset="fetal-planes-es")
    return root


@pytest.fixture()
def africa_raw(tmp_path):
    root = tmp_path / "africa"
    root.mkdir()
    rows = [(p, plane, p % 2, country, f"patient{p:03d}_{country[:3].upper()}_plane{k}")
            for country in ("Algeria", "Ghana") for p in range(1, 5) for k, plane in enumerate(AFRICA_PLANES)]
    write_africa_csv(root / "African_planes_database.csv", rows)
    make_planes_images(root / "African_planes_database.csv", dataset="fetal-planes-africa")
    return root


def test_es_splits_follow_official_flag_and_patients(es_raw, tmp_path):
    build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    ds = load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].features["label"].names == list(ES_PLANES)
    assert sorted(set(ds["test"]["patient_id"])) == ["Patient00004", "Patient00005"]
    train_patients = set(ds["train"]["patient_id"]) | set(ds["validation"]["patient_id"])
    assert not train_patients & set(ds["test"]["patient_id"])
    assert not set(ds["train"]["patient_id"]) & set(ds["validation"]["patient_id"])
    assert {"brain_plane", "operator", "us_machine"} <= set(ds["test"].features)


def test_es_image_in_archive_subfolder_is_found(es_raw, tmp_path):
    nested = tmp_path / "download"
    shutil.copytree(es_raw, nested / "FETAL_PLANES_ZENODO")
    build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=nested)
    assert (tmp_path / "out" / "README.md").exists()


def test_es_unknown_plane_is_an_error(es_raw, tmp_path):
    csv_path = es_raw / "FETAL_PLANES_DB_data.csv"
    csv_path.write_text(csv_path.read_text().replace("Fetal femur", "Fetal arm", 1))
    with pytest.raises(DataError, match="line .*Plane = 'Fetal arm'"):
        build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    assert not (tmp_path / "out").exists()


def test_es_corrupt_image_is_refused(es_raw, tmp_path):
    victim = next((es_raw / "Images").iterdir())
    victim.write_bytes(b"not a png")
    with pytest.raises(DataError, match=f"{victim.name}.*corrupt"):
        build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    assert not (tmp_path / "out").exists()


def test_es_partial_raw_directory_builds_the_images_present_as_a_local_revision(es_raw, tmp_path):
    complete = build_dataset("fetal-planes-es", tmp_path / "complete", raw_dir=es_raw)
    gone = sorted((es_raw / "Images").iterdir())[::4]  # 18 of the 72 images
    for path in gone:
        path.unlink()
    result = build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert info["partial"] == {"what": "images", "listed": 72, "built": 54, "missing": 18, "missing_share": 0.25,
                               "revision": "local", "missing_examples": [p.name for p in gone[:10]]}
    assert result.warnings[1] == (
        f"Partial raw directory: 54 of the 72 images listed in FETAL_PLANES_DB_data.csv were built; 18 (25.0%) are "
        f"missing (e.g. {', '.join(p.name for p in gone[:3])}). This build is a local revision of fetal-planes-es, "
        "not a published one.")
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("> **Partial build: a local revision, not fetal-planes-es v1.0.** 54 of the 72 images that the official "
            "CSV lists were present and built; 18 (25.0%) are missing") in card
    assert 'revision="v1.0"' not in card  # the card offers no Hub revision it is not
    ds = load_dataset(str(tmp_path / "out"))
    built = {row_id for split in ds for row_id in ds[split]["id"]}
    assert built == {row[0] for row in ES_ROWS} - {p.stem for p in gone}
    # Each image keeps the split it has in the complete build (splits are by patient, not by what is present).
    full = load_dataset(str(tmp_path / "complete"))
    split_of = {row_id: split for split in full for row_id in full[split]["id"]}
    assert all(split_of[row_id] == split for split in ds for row_id in ds[split]["id"])
    assert "partial" not in json.loads((tmp_path / "complete" / "build_info.json").read_text())
    assert "Partial build" not in (tmp_path / "complete" / "README.md").read_text()
    assert complete.warnings == ["FETAL_PLANES_DB_data.csv has 72 rows; the official release has 12400."]


def test_es_raw_directory_without_any_image_is_refused(es_raw, tmp_path):
    for path in (es_raw / "Images").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="None of the 72 images listed in FETAL_PLANES_DB_data.csv is in"):
        build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    assert not (tmp_path / "out").exists()


def test_es_directory_named_like_an_image_is_refused(es_raw, tmp_path):
    victim = next((es_raw / "Images").iterdir())
    victim.unlink()
    victim.mkdir()
    with pytest.raises(DataError, match=f"1 image\\(s\\) listed in the CSV are not regular files or are missing: .*{victim.name}"):
        build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)
    assert not (tmp_path / "out").exists()


def test_africa_partial_raw_directory_builds_with_the_missing_share(africa_raw, tmp_path):
    gone = sorted((africa_raw / "Ghana").iterdir())[:4]
    for path in gone:
        path.unlink()
    build_dataset("fetal-planes-africa", tmp_path / "out", raw_dir=africa_raw)
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert {k: info["partial"][k] for k in ("listed", "built", "missing", "missing_share", "revision")} == {
        "listed": 32, "built": 28, "missing": 4, "missing_share": 0.125, "revision": "local"}
    assert "not fetal-planes-africa v1.0" in (tmp_path / "out" / "README.md").read_text()
    ds = load_dataset(str(tmp_path / "out"))
    assert sum(len(ds[split]) for split in ds) == 28


def test_es_wrong_delimiter_header(es_raw, tmp_path):
    csv_path = es_raw / "FETAL_PLANES_DB_data.csv"
    csv_path.write_text(csv_path.read_text().replace(";", ","))
    with pytest.raises(DataError, match="unexpected header"):
        build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=es_raw)


def test_africa_official_split_and_country(africa_raw, tmp_path):
    build_dataset("fetal-planes-africa", tmp_path / "out", raw_dir=africa_raw)
    ds = load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "test"}
    assert ds["test"].features["label"].names == list(AFRICA_PLANES)
    assert set(ds["test"]["country"]) == {"Algeria", "Ghana"}
    # Patient numbers restart per country: ids carry the country.
    assert "Algeria-001" in set(ds["train"]["patient_id"]) and "Ghana-001" in set(ds["train"]["patient_id"])


@pytest.mark.real_data
def test_real_fetal_planes_db_csv(shared_data, tmp_path):
    root = tmp_path / "es"
    root.mkdir()
    shutil.copy(shared_data / "fetal_planes_db" / "FETAL_PLANES_DB_data.csv", root)
    assert make_planes_images(root / "FETAL_PLANES_DB_data.csv", dataset="fetal-planes-es") == 12_400
    result = build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=root)
    assert result.warnings == []
    ds = load_dataset(str(tmp_path / "out"))
    assert sum(len(ds[s]) for s in ds) == 12_400
    assert len(ds["test"]) == 5_271
    assert len(ds["train"]) + len(ds["validation"]) == 7_129
    assert ds["test"].features["label"].names == list(ES_PLANES)
    counts = result.configs["default"]
    total = {name: sum(s.label_counts.get(name, 0) for s in counts.values()) for name in ES_PLANES}
    assert total == {"Fetal abdomen": 711, "Fetal brain": 3092, "Fetal femur": 1040, "Fetal thorax": 1718,
                     "Maternal cervix": 1626, "Other": 4213}
    patients = {s: set(ds[s]["patient_id"]) for s in ds}
    assert not patients["train"] & patients["test"] and not patients["validation"] & patients["test"]
    assert not patients["train"] & patients["validation"]


@pytest.mark.real_data
def test_real_shared_fetal_planes_db_builds_its_100_images_as_a_local_revision(shared_data, tmp_path):
    """The shared folder holds the complete CSV and the 100 images of the FU-LoRA authors' list."""
    from fetal_bench.data.provenance import dataset_record

    result = build_dataset("fetal-planes-es", tmp_path / "out", raw_dir=shared_data / "fetal_planes_db")
    info = json.loads((tmp_path / "out" / "build_info.json").read_text())
    assert {k: info["partial"][k] for k in ("listed", "built", "missing", "revision")} == {
        "listed": 12_400, "built": 100, "missing": 12_300, "revision": "local"}
    assert info["partial"]["missing_share"] == pytest.approx(12_300 / 12_400)
    ds = load_dataset(str(tmp_path / "out"))
    assert set(ds) == {"train", "validation"}  # all 100 are official-train images; no test split
    assert sum(len(ds[split]) for split in ds) == 100
    total = {name: sum(s.label_counts.get(name, 0) for s in result.configs["default"].values()) for name in ES_PLANES}
    assert total == {"Fetal abdomen": 20, "Fetal brain": 20, "Fetal femur": 20, "Fetal thorax": 20,
                     "Maternal cervix": 0, "Other": 20}
    assert dataset_record(tmp_path / "out", config="default", split="train", dataset=ds["train"])["revision"] == "local"
    assert "99.2%) are missing" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.real_data
def test_real_african_planes_csv(shared_data, tmp_path):
    root = tmp_path / "africa"
    root.mkdir()
    shutil.copy(shared_data / "african_planes" / "African_planes_database.csv", root)
    assert make_planes_images(root / "African_planes_database.csv", dataset="fetal-planes-africa") == 450
    result = build_dataset("fetal-planes-africa", tmp_path / "out", raw_dir=root)
    ds = load_dataset(str(tmp_path / "out"))
    assert len(ds["train"]) + len(ds["test"]) == 450
    assert len(ds["test"]) == 233 and len(ds["train"]) == 217
    assert ds["test"].features["label"].names == list(AFRICA_PLANES)
    countries = {}
    for split in ds:
        for country in ds[split]["country"]:
            countries[country] = countries.get(country, 0) + 1
    assert countries == {"Algeria": 100, "Egypt": 100, "Malawi": 100, "Uganda": 75, "Ghana": 75}
    # The official split (the CSV's Train column): 233 test images, 39-52 per country.
    assert result.configs["default"]["test"].group_counts["country"] == {
        "Algeria": 52, "Egypt": 52, "Ghana": 39, "Malawi": 51, "Uganda": 39}
