"""HC18 (Zenodo 1327317) -> fetal-bench `hc18` dataset.

Official raw layout (what the Zenodo archives extract to)::

    RAW/training_set/NNN_[k]HC.png              image, 8-bit grayscale (800x540, a few 786x542)
    RAW/training_set/NNN_[k]HC_Annotation.png   ellipse OUTLINE of the skull, values {0, 255}
    RAW/training_set_pixel_size_and_HC.csv      filename,pixel size(mm),head circumference (mm)
    RAW/test_set/NNN_HC.png                     optional: 335 challenge images, labels hidden
    RAW/test_set_pixel_size.csv                 optional: filename,pixel size(mm)

The mask is the filled outline. `NNN_2HC.png` etc. are further images of exam NNN, so
splits are by exam (the `subject_id` column, a published name kept), never by image. An exam is
not a woman: HC18 has 1,334 images from 551 women and publishes no woman id.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fetal_bench._io import sha256_file
from fetal_bench.data.builders._common import (
    CIRCUMFERENCE_MM, PIXEL_SIZE_MM, Absent, SourceDigest, find_file, hashed_split, parse_positive_float,
    partial_record, read_csv, read_image_bytes, split_absent,
)
from fetal_bench.data.catalog import HC18, HC18_SIZE_SHIFT
from fetal_bench.data.schemas import head_biometry_features
from fetal_bench.data.writer import BuildResult, ConfigSpec, encode_png, write_dataset
from fetal_bench.errors import DataError, FetalBenchError
from fetal_bench.geometry import ellipse_mask, fit_ellipse

N_LABELLED = 999  # images in the official training set
N_CHALLENGE = 335  # images in the official test set
TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TEST_CSV = "test_set_pixel_size.csv"
TRAIN_HEADER = ("filename", "pixel size(mm)", "head circumference (mm)")
TEST_HEADER = ("filename", "pixel size(mm)")
SPLIT_FRACTIONS = (("train", 0.7), ("validation", 0.1), ("test", 0.2))
# Every official image and annotation is an 8-bit grayscale PNG (all 1,998 files of the shared
# copy are mode L): another mode means an edited file, refused rather than silently embedded.
GRAYSCALE = ("L",)
FORMAT = "the HC18 format (8-bit grayscale PNG)"
_FILENAME = re.compile(r"^(?P<subject>\d{3})_(?P<k>\d?)HC\.png$")

FEATURES = head_biometry_features()

# The hc18-size-shift protocol (the catalog's split rule says why an exam-number cut is a head-size cut).
SPLIT_RULES = ("subject", "size-shift")
SIZE_SHIFT_FIRST_TEST_EXAM = 600


def subject_split(subject_id: str, seed: int = HC18.split_seed) -> str:
    """The split a subject belongs to (see the catalog's split rule)."""
    return hashed_split(seed, subject_id, SPLIT_FRACTIONS)


def size_shift_split(subject_id: str) -> str:
    """The split of exam ``subject_id`` in ``hc18-size-shift`` (see the catalog's split rule)."""
    if int(subject_id) >= SIZE_SHIFT_FIRST_TEST_EXAM:
        return "test"
    return "train" if subject_split(subject_id) == "train" else "validation"


def outline_to_mask(outline: np.ndarray, *, source: Path | str = "annotation") -> tuple[np.ndarray, str]:
    """Filled head mask (uint8 0/1) from an HC18 ellipse-outline annotation, and how it was made.

    A closed outline is filled as drawn ("filled"). Where the head runs off the frame the drawn
    outline is cut by the image border and encloses nothing; there the mask is the ellipse
    fitted to the outline pixels, clipped to the frame ("ellipse-fit").
    """
    from scipy.ndimage import binary_fill_holes

    rim = outline > 127
    if rim.sum() < 6:
        raise DataError(f"{source}: the annotation holds no outline.", "Re-extract the official archive.")
    filled = binary_fill_holes(rim)
    # A closed outline encloses far more pixels than it has; an open one fills nothing extra.
    if filled.sum() >= 2 * rim.sum():
        return filled.astype(np.uint8), "filled"
    rows, cols = np.nonzero(rim)
    try:
        ellipse = fit_ellipse(cols, rows)
    except ValueError as error:
        raise DataError(
            f"{source}: the annotation outline is not closed and no ellipse fits it ({error}).",
            "Re-extract the official archive; annotations are ellipses.",
        ) from None
    mask = ellipse_mask(rim.shape, ellipse) | rim
    return mask.astype(np.uint8), "ellipse-fit"


def _check_filename(name: str, *, path: Path, row: int) -> str:
    match = _FILENAME.match(name)
    if not match:
        raise DataError(f"{path}, line {row}: file name {name!r} is not of the form NNN_HC.png / NNN_2HC.png.",
                        "Use the unmodified CSV from the official download.")
    return match["subject"]


_FIX = "Re-extract the official archive into --raw (a directory or special file stands where an image should be)."


def _labelled_items(raw_dir: Path) -> tuple[Path, list[dict], list[str], dict | None]:
    """(the CSV, one item per labelled image present, warnings, the ``partial`` record or None):
    every value in its plausible range, checked before anything is written. A listed image whose
    image or annotation file is absent is left out and counted (a partial copy); one that exists
    but is not a regular file is refused."""
    train_csv = find_file(raw_dir, TRAIN_CSV, dataset="hc18")
    rows = read_csv(train_csv, expected_header=TRAIN_HEADER)
    image_dir = train_csv.parent / "training_set"
    if not image_dir.is_dir():
        image_dir = find_file(raw_dir, "training_set", dataset="hc18")
    warnings: list[str] = []

    labelled = []
    for line, row in enumerate(rows, start=2):
        name = row["filename"]
        subject = _check_filename(name, path=train_csv, row=line)
        image_path = image_dir / name
        annotation_path = image_dir / name.replace(".png", "_Annotation.png")
        labelled.append(
            {
                "name": name,
                "subject": subject,
                "image_path": image_path,
                "annotation_path": annotation_path,
                "pixel_size_mm": parse_positive_float(row["pixel size(mm)"], path=train_csv, line=line,
                                                      column="pixel size(mm)", bounds=PIXEL_SIZE_MM),
                "hc_mm": parse_positive_float(row["head circumference (mm)"], path=train_csv, line=line,
                                              column="head circumference (mm)", bounds=CIRCUMFERENCE_MM),
            }
        )
    if len({item["name"] for item in labelled}) != len(labelled):
        raise DataError(f"{train_csv} lists a file name twice.", "Use the unmodified CSV from the official download.")
    listed = {item["name"] for item in labelled}
    labelled, partial = _present(labelled, ("image_path", "annotation_path"), warnings, what="labelled images",
                                 csv_name=TRAIN_CSV)
    if len(labelled) < N_LABELLED:
        warnings.append(
            f"Partial raw directory: {len(labelled)} of the {N_LABELLED} labelled HC18 images are listed in "
            f"{TRAIN_CSV} ({N_LABELLED - len(labelled)} missing); the splits hold only the subjects present."
        )
    unlisted = sorted(p.name for p in image_dir.glob("*HC.png") if p.name not in listed)
    if unlisted:
        warnings.append(f"{len(unlisted)} image(s) in {image_dir} are not in {TRAIN_CSV} and were skipped (e.g. {unlisted[0]}).")
    return train_csv, labelled, warnings, partial


def _present(items: list[dict], keys: tuple[str, ...], warnings: list[str], *, what: str,
             csv_name: str) -> tuple[list[dict], dict | None]:
    """The items all of whose files (``keys``) are present, and the ``partial`` record when some are not."""
    absent = split_absent([item[key] for item in items for key in keys], what="files", fix=_FIX)
    if not absent.missing:
        return items, None
    missing = set(absent.missing)
    gone = [any(item[key] in missing for key in keys) for item in items]
    present = [item for item, out in zip(items, gone) if not out]
    by_item = Absent(len(items), tuple(item[keys[0]] for item, out in zip(items, gone) if out))
    warning, record = partial_record(by_item, dataset=HC18.name, what=what, csv_name=csv_name)
    warnings.append(warning)
    return present, record


def build_hc18(raw_dir: Path, out_dir: Path, *, overwrite: bool = False, progress: bool = False,
               split_rule: str = "subject") -> BuildResult:
    """Build ``hc18`` from the official layout in ``raw_dir``.

    ``split_rule``: ``"subject"`` (default: the v1.0 exam-disjoint hash split) or ``"size-shift"``
    (the ``hc18-size-shift`` dataset: small heads to train/validation, large ones to test).
    Images missing from ``raw_dir`` make a partial build (a local revision), as for every builder.
    """
    if split_rule not in SPLIT_RULES:
        raise FetalBenchError(f"Unknown split rule {split_rule!r} for hc18.", f"Use one of: {', '.join(SPLIT_RULES)}.")
    train_csv, labelled, warnings, partial = _labelled_items(raw_dir)
    challenge, challenge_partial = _challenge_items(raw_dir, warnings)
    if not labelled:
        raise DataError(f"None of the labelled images listed in {TRAIN_CSV} is in {train_csv.parent}.",
                        "Extract training_set.zip into --raw (training_set/ next to the CSV).")
    partials = {key: value for key, value in (("partial", partial), ("partial_challenge_test", challenge_partial))
                if value}
    assign = size_shift_split if split_rule == "size-shift" else subject_split

    by_split: dict[str, list[dict]] = {split: [] for split, _ in SPLIT_FRACTIONS}
    for item in sorted(labelled, key=lambda item: item["name"]):
        by_split[assign(item["subject"])].append(item)

    fitted: list[str] = []  # annotations cut by the frame border, filled from a fitted ellipse
    notes: list[str] = []
    images_digest = SourceDigest("training_set/")
    challenge_digest = SourceDigest("test_set/")
    bar = tqdm(total=len(labelled) + len(challenge), desc="hc18", unit="img", disable=not progress)

    def labelled_rows(items):
        from PIL import Image as PILImage

        for item in items:
            image_bytes, size = read_image_bytes(item["image_path"], modes=GRAYSCALE, expected=FORMAT)
            annotation_bytes, annotation_size = read_image_bytes(item["annotation_path"], modes=GRAYSCALE,
                                                                 expected=FORMAT)
            images_digest.add(item["name"], image_bytes)
            images_digest.add(item["annotation_path"].name, annotation_bytes)
            if annotation_size != size:
                raise DataError(
                    f"{item['annotation_path']} is {annotation_size[0]}x{annotation_size[1]} but its image is "
                    f"{size[0]}x{size[1]}.", "Re-extract the official archive.")
            with PILImage.open(io.BytesIO(annotation_bytes)) as annotation:
                outline = np.asarray(annotation.convert("L"))
            mask, method = outline_to_mask(outline, source=item["annotation_path"])
            if method != "filled":
                fitted.append(item["name"])
                notes[:] = [
                    f"{len(fitted)} annotation outline(s) run off the image border, so their masks are the "
                    f"ellipse fitted to the outline, clipped to the frame: {', '.join(fitted)}."
                ]
            bar.update()
            yield {
                "id": item["name"][: -len(".png")],
                "image": {"bytes": image_bytes, "path": item["name"]},
                "mask": {"bytes": encode_png(mask), "path": item["name"].replace(".png", "_mask.png")},
                "subject_id": item["subject"],
                "pixel_size_mm": item["pixel_size_mm"],
                "head_circumference_mm": item["hc_mm"],
            }

    def challenge_rows():
        for item in challenge:
            image_bytes, _ = read_image_bytes(item["image_path"], modes=GRAYSCALE, expected=FORMAT)
            challenge_digest.add(item["name"], image_bytes)
            bar.update()
            yield {
                # The official test images reuse training names (000_HC.png ...): prefix keeps ids unique.
                "id": "test_" + item["name"][: -len(".png")],
                "image": {"bytes": image_bytes, "path": item["name"]},
                "mask": None,
                "subject_id": "test_" + item["subject"],
                "pixel_size_mm": item["pixel_size_mm"],
                "head_circumference_mm": None,
            }

    splits = {split: (lambda items=items: labelled_rows(items)) for split, items in by_split.items()}
    if challenge:
        splits["challenge_test"] = challenge_rows
    # The digests fill in while rows stream; the writer reads them once every row is written.
    sources = [{"name": TRAIN_CSV, "files": 1, "sha256": sha256_file(train_csv)}, images_digest]
    if challenge:
        sources.append(challenge_digest)
    info = HC18 if split_rule == "subject" else HC18_SIZE_SHIFT
    try:
        result = write_dataset(
            out_dir,
            info,
            [ConfigSpec("default", FEATURES, splits, subject_column="subject_id")],
            sources=sources,
            warnings=warnings,
            notes=notes,
            extra_build_info=partials or None,
            overwrite=overwrite,
        )
    finally:
        bar.close()
    return result


def _challenge_items(raw_dir: Path, warnings: list[str]) -> tuple[list[dict], dict | None]:
    """The official test images, if their directory and CSV are present (they are optional)."""
    candidates = [raw_dir / "test_set", *sorted(raw_dir.glob("*/test_set"))]
    test_dir = next((c for c in candidates if c.is_dir()), None)
    csv_candidates = [raw_dir / TEST_CSV, *sorted(raw_dir.glob(f"*/{TEST_CSV}"))]
    test_csv = next((c for c in csv_candidates if c.is_file()), None)
    if test_dir is None or test_csv is None:
        absent = " and ".join(n for n, p in (("test_set/", test_dir), (TEST_CSV, test_csv)) if p is None)
        warnings.append(f"{absent} not found: no `challenge_test` split (the {N_CHALLENGE} unlabelled official test images).")
        return [], None
    rows = read_csv(test_csv, expected_header=TEST_HEADER)
    items = []
    for line, row in enumerate(rows, start=2):
        name = row["filename"]
        subject = _check_filename(name, path=test_csv, row=line)
        path = test_dir / name
        items.append({"name": name, "subject": subject, "image_path": path,
                      "pixel_size_mm": parse_positive_float(row["pixel size(mm)"], path=test_csv, line=line,
                                                            column="pixel size(mm)", bounds=PIXEL_SIZE_MM)})
    items, partial = _present(items, ("image_path",), warnings, what="challenge test images", csv_name=TEST_CSV)
    if len(items) < N_CHALLENGE:
        warnings.append(f"Partial test set: {len(items)} of the {N_CHALLENGE} challenge test images.")
    return sorted(items, key=lambda item: item["name"]), partial


def build_hc18_size_shift(raw_dir: Path, out_dir: Path, *, overwrite: bool = False,
                          progress: bool = False) -> BuildResult:
    """Build ``hc18-size-shift`` (the same raw files as ``hc18``, split by head size)."""
    return build_hc18(raw_dir, out_dir, overwrite=overwrite, progress=progress, split_rule="size-shift")
