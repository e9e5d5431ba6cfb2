"""FETAL_PLANES_DB (Zenodo 3904280) and the African planes set (Zenodo 7540448) -> datasets.

Official raw layouts::

    FETAL_PLANES_DB:  RAW/FETAL_PLANES_DB_data.csv   ';'-separated:
                        Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train
                      RAW/Images/<Image_name>.png
    African planes:   RAW/African_planes_database.csv  Patient_num,Plane,Train,Center,Filename
                      RAW/<Center>/<Filename>.png

Both keep the publishers' plane names as ClassLabel names so that the Spanish and African
label spaces line up by name (the zero-shot task relies on that).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from datasets import ClassLabel, Features, Image, Value
from tqdm.auto import tqdm

from fetal_bench._io import sha256_file
from fetal_bench.data.builders._common import (
    SourceDigest,
    find_file,
    hash_fraction,
    partial_record,
    read_csv,
    read_image_bytes,
    split_absent,
)
from fetal_bench.data.catalog import FETAL_PLANES_AFRICA, FETAL_PLANES_ES, DatasetInfo
from fetal_bench.data.writer import BuildResult, ConfigSpec, write_dataset
from fetal_bench.errors import DataError

ES_CSV = "FETAL_PLANES_DB_data.csv"
ES_HEADER = ("Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train")
ES_PLANES = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other")
ES_ROWS = 12_400
ES_VALIDATION_FRACTION = 0.1

AFRICA_CSV = "African_planes_database.csv"
AFRICA_HEADER = ("Patient_num", "Plane", "Train", "Center", "Filename")
AFRICA_PLANES = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax")
AFRICA_COUNTRIES = ("Algeria", "Egypt", "Ghana", "Malawi", "Uganda")
AFRICA_ROWS = 450

ES_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "label": ClassLabel(names=list(ES_PLANES)),
        "brain_plane": Value("string"),
        "patient_id": Value("string"),
        "operator": Value("string"),
        "us_machine": Value("string"),
    }
)
AFRICA_FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "label": ClassLabel(names=list(AFRICA_PLANES)),
        "patient_id": Value("string"),
        "country": Value("string"),
    }
)


def _check_value(value: str, allowed, *, path: Path, line: int, column: str) -> str:
    if value not in allowed:
        raise DataError(
            f"{path}, line {line}: {column} = {value!r} is not one of {sorted(allowed)}.",
            "Use the unmodified CSV from the official download.",
        )
    return value


def _check_int(value: str, *, path: Path, line: int, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path}, line {line}: {column} = {value!r} is not an integer.",
                        "Use the unmodified CSV from the official download.") from None


def _present_images(items: list[dict], *, dataset: str, rows_expected: int, csv_path: Path,
                    warnings: list[str]) -> tuple[list[dict], dict | None]:
    """(the items whose image is present, the build's ``partial`` record or None).

    A listed image that is absent is left out and counted (a partial copy builds as a local
    revision, with the count and the missing share in build_info.json and the card); one that
    exists but is not a regular file is refused.
    """
    absent = split_absent([item["path"] for item in items], what="image(s)",
                          fix="Extract the official archive into --raw (images sit where the CSV says).")
    if len(items) != rows_expected:
        warnings.append(f"{csv_path.name} has {len(items)} rows; the official release has {rows_expected}.")
    if not absent.missing:
        return items, None
    if not absent.built:
        raise DataError(f"None of the {len(items)} images listed in {csv_path.name} is in {csv_path.parent} "
                        f"(e.g. {absent.missing[0]} is missing).",
                        "Extract the official archive into --raw (images sit where the CSV says).")
    warning, record = partial_record(absent, dataset=dataset, what="images", csv_name=csv_path.name)
    warnings.append(warning)
    missing = set(absent.missing)
    return [item for item in items if item["path"] not in missing], record


def _write(
    info: DatasetInfo,
    features: Features,
    items_by_split: dict[str, list[dict]],
    out_dir: Path,
    *,
    csv_path: Path,
    image_root: Path,
    group_columns: tuple[str, ...],
    warnings: list[str],
    partial: dict | None,
    overwrite: bool,
    progress: bool,
) -> BuildResult:
    digest = SourceDigest(f"{image_root.name}/")
    total = sum(len(items) for items in items_by_split.values())
    bar = tqdm(total=total, desc=info.name, unit="img", disable=not progress)

    def rows(items: list[dict]):
        for item in items:
            data, _ = read_image_bytes(item["path"])
            relative = item["path"].relative_to(image_root).as_posix()
            digest.add(relative, data)
            bar.update()
            yield {**item["row"], "image": {"bytes": data, "path": relative}}

    splits: dict[str, Callable] = {split: (lambda items=items: rows(items)) for split, items in items_by_split.items()}
    try:
        return write_dataset(
            out_dir,
            info,
            [ConfigSpec("default", features, splits, label_column="label",
                        group_columns=group_columns, subject_column="patient_id")],
            sources=[{"name": csv_path.name, "files": 1, "sha256": sha256_file(csv_path)}, digest],
            warnings=warnings,
            extra_build_info={"partial": partial} if partial else None,
            overwrite=overwrite,
        )
    finally:
        bar.close()


def es_split(patient_id: str, official_train: int, seed: int = FETAL_PLANES_ES.split_seed) -> str:
    """Split of a FETAL_PLANES_DB row: official test, else validation/train by patient hash."""
    if official_train == 0:
        return "test"
    return "validation" if hash_fraction(seed, patient_id) < ES_VALIDATION_FRACTION else "train"


def build_fetal_planes_es(raw_dir: Path, out_dir: Path, *, overwrite: bool = False, progress: bool = False) -> BuildResult:
    csv_path = find_file(raw_dir, ES_CSV, dataset="fetal-planes-es")
    records = read_csv(csv_path, expected_header=ES_HEADER, delimiter=";")
    image_dir = csv_path.parent / "Images"
    if not image_dir.is_dir():
        raise DataError(f"{image_dir} not found next to {csv_path.name}.",
                        "Extract FETAL_PLANES_ZENODO.zip completely into --raw (it holds Images/).")
    warnings: list[str] = []
    items_by_split: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    items = []
    for line, record in enumerate(records, start=2):
        plane = _check_value(record["Plane"], ES_PLANES, path=csv_path, line=line, column="Plane")
        official_train = _check_int(record["Train"], path=csv_path, line=line, column="Train")
        if official_train not in (0, 1):
            raise DataError(f"{csv_path}, line {line}: Train = {official_train} (expected 0 or 1).",
                            "Use the unmodified CSV from the official download.")
        patient_id = f"Patient{_check_int(record['Patient_num'], path=csv_path, line=line, column='Patient_num'):05d}"
        item = {
            "path": image_dir / f"{record['Image_name']}.png",
            "row": {
                "id": record["Image_name"],
                "label": ES_PLANES.index(plane),
                "brain_plane": record["Brain_plane"],
                "patient_id": patient_id,
                "operator": record["Operator"],
                "us_machine": record["US_Machine"],
            },
        }
        item["split"] = es_split(patient_id, official_train)
        items.append(item)
    # The split is decided on the complete CSV (by patient), so a partial copy keeps each image's split.
    _check_official_split_disjoint(_by_split(items, items_by_split), csv_path)
    present, partial = _present_images(items, dataset=FETAL_PLANES_ES.name, rows_expected=ES_ROWS, csv_path=csv_path,
                                       warnings=warnings)
    return _write(FETAL_PLANES_ES, ES_FEATURES, _by_split(present, items_by_split), out_dir, csv_path=csv_path,
                  image_root=image_dir, group_columns=("us_machine", "operator", "brain_plane"), warnings=warnings,
                  partial=partial, overwrite=overwrite, progress=progress)


def build_fetal_planes_africa(raw_dir: Path, out_dir: Path, *, overwrite: bool = False, progress: bool = False) -> BuildResult:
    csv_path = find_file(raw_dir, AFRICA_CSV, dataset="fetal-planes-africa")
    records = read_csv(csv_path, expected_header=AFRICA_HEADER)
    root = csv_path.parent
    warnings: list[str] = []
    items_by_split: dict[str, list[dict]] = {"train": [], "test": []}
    items = []
    for line, record in enumerate(records, start=2):
        plane = _check_value(record["Plane"], AFRICA_PLANES, path=csv_path, line=line, column="Plane")
        country = _check_value(record["Center"], AFRICA_COUNTRIES, path=csv_path, line=line, column="Center")
        official_train = _check_int(record["Train"], path=csv_path, line=line, column="Train")
        if official_train not in (0, 1):
            raise DataError(f"{csv_path}, line {line}: Train = {official_train} (expected 0 or 1).",
                            "Use the unmodified CSV from the official download.")
        number = _check_int(record["Patient_num"], path=csv_path, line=line, column="Patient_num")
        item = {
            "path": root / country / f"{record['Filename']}.png",
            "row": {
                "id": record["Filename"],
                "label": AFRICA_PLANES.index(plane),
                # Patient numbers restart in each country: only (country, number) identifies one.
                "patient_id": f"{country}-{number:03d}",
                "country": country,
            },
        }
        item["split"] = "train" if official_train == 1 else "test"
        items.append(item)
    _check_official_split_disjoint(_by_split(items, items_by_split), csv_path)
    present, partial = _present_images(items, dataset=FETAL_PLANES_AFRICA.name, rows_expected=AFRICA_ROWS,
                                       csv_path=csv_path, warnings=warnings)
    return _write(FETAL_PLANES_AFRICA, AFRICA_FEATURES, _by_split(present, items_by_split), out_dir, csv_path=csv_path,
                  image_root=root, group_columns=("country",), warnings=warnings, partial=partial, overwrite=overwrite,
                  progress=progress)


def _by_split(items: list[dict], splits: dict[str, list]) -> dict[str, list[dict]]:
    """``items`` grouped by their ``split``, every split of ``splits`` listed (in its order)."""
    grouped: dict[str, list[dict]] = {split: [] for split in splits}
    for item in items:
        grouped[item["split"]].append(item)
    return grouped


def _check_official_split_disjoint(items_by_split: dict[str, list[dict]], csv_path: Path) -> None:
    """The publishers' Train flag is patient-disjoint; refuse a CSV where it is not."""
    owner: dict[str, str] = {}
    for split, items in items_by_split.items():
        for item in items:
            patient = item["row"]["patient_id"]
            if owner.setdefault(patient, split) != split:
                raise DataError(
                    f"{csv_path}: patient {patient} has rows in both {owner[patient]!r} and {split!r} "
                    "(the official Train flag should keep patients apart).",
                    "Use the unmodified CSV from the official download.",
                )
