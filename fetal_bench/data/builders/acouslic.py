"""ACOUSLIC-AI (Zenodo 12697994, v1.1) -> fetal-bench `acouslic-iqa`: one row per sweep frame.

Official raw layout (what ``acouslic-ai-train-set.zip`` extracts to)::

    RAW/images/stacked_fetal_ultrasound/<uuid>.mha   one case: uint8, size (744, 562, 840) as
                                                      SimpleITK's (x, y, z); the six sweeps of
                                                      140 frames are stacked along z, sweep 1 first
    RAW/masks/stacked_fetal_abdomen/<uuid>.mha       same size: 0 background, 1 optimal plane,
                                                      2 suboptimal plane (fetal abdomen)
    RAW/circumferences/fetal_abdominal_circumferences_per_sweep.csv
                                                      uuid,subject_id,sweep_1_ac_mm,...,sweep_6_ac_mm
                                                      (empty where a sweep has no reference AC)

(Checked against public ACOUSLIC-AI code, not against the archive itself: see docs/image_quality.md.)

A frame is ``usable`` (label 1) when its mask has any foreground, the rule of He et al. (2025);
the 3-way ``plane_quality`` keeps the optimal/suboptimal distinction. Sweeps without a reference
AC are dropped as in the paper unless ``keep_unmeasured_sweeps``.

Memory: cases are read one sweep at a time (SimpleITK's streamed extraction of a z-range), and
rows go to the writer as they are made, so a build holds about one sweep of image and mask
(2 x 58 MB at the official size) whatever the number of cases.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Features, Image, Value
from tqdm.auto import tqdm

from fetal_bench._io import sha256_file
from fetal_bench.data.builders._common import (
    CIRCUMFERENCE_MM, SourceDigest, hash_fraction, hashed_split, parse_positive_float, read_csv,
)
from fetal_bench.data.catalog import ACOUSLIC_IQA
from fetal_bench.data.writer import BuildResult, ConfigSpec, encode_png, write_dataset
from fetal_bench.errors import DataError, FetalBenchError

CSV_NAME = "fetal_abdominal_circumferences_per_sweep.csv"
CSV_DIR = "circumferences"
IMAGE_DIR = Path("images") / "stacked_fetal_ultrasound"
MASK_DIR = Path("masks") / "stacked_fetal_abdomen"
N_SWEEPS = 6
AC_COLUMNS = tuple(f"sweep_{sweep}_ac_mm" for sweep in range(1, N_SWEEPS + 1))
CSV_HEADER = ("uuid", "subject_id", *AC_COLUMNS)
N_CASES = 300  # cases in the official release
OFFICIAL_SIZE = (744, 562, 840)  # SimpleITK (x, y, z) of every official stack
SPLIT_FRACTIONS = (("train", 0.7), ("validation", 0.1), ("test", 0.2))
# He et al.'s preprocessing: numpy.random.default_rng(this).permutation of the CSV's uuids, then
# the first int(0.7 n) cases train, up to int(0.8 n) validation, the rest test.
PAPER_SEED = 9872398152123123767126
SPLIT_RULES = ("subject", "paper")

LABELS = ("unusable", "usable")
PLANE_QUALITY = ("none", "optimal", "suboptimal")  # index = mask value
FEATURES = Features(
    {
        "id": Value("string"),
        "image": Image(),
        "label": ClassLabel(names=list(LABELS)),
        "plane_quality": ClassLabel(names=list(PLANE_QUALITY)),
        "mask": Image(),
        "case_id": Value("string"),
        "subject_id": Value("string"),
        "sweep": Value("int32"),
        "frame": Value("int32"),
        "pixel_size_mm": Value("float32"),
        "sweep_ac_mm": Value("float32"),
    }
)


@dataclass(frozen=True)
class Case:
    """One CSV row: a case (a six-sweep stack) and its per-sweep reference ACs (None: none)."""

    uuid: str
    subject_id: str
    ac_mm: tuple[float | None, ...]


def read_cases(csv_path: Path) -> list[Case]:
    """The cases listed in the circumferences CSV, checked (header, unique uuids, AC values)."""
    rows = read_csv(csv_path, expected_header=CSV_HEADER)
    cases, seen = [], set()
    for line, row in enumerate(rows, start=2):
        uuid = row["uuid"]
        if not uuid or "/" in uuid or "\\" in uuid:
            raise DataError(f"{csv_path}, line {line}: uuid {uuid!r} is not a file stem.",
                            "Use the unmodified CSV from the official download.")
        if uuid in seen:
            raise DataError(f"{csv_path}, line {line}: case {uuid} is listed twice.",
                            "Use the unmodified CSV from the official download.")
        seen.add(uuid)
        if not row["subject_id"]:
            raise DataError(f"{csv_path}, line {line}: case {uuid} has no subject_id.",
                            "Use the unmodified CSV from the official download.")
        cases.append(Case(uuid, row["subject_id"], tuple(_ac(row[c], csv_path, line, c) for c in AC_COLUMNS)))
    if not cases:
        raise DataError(f"{csv_path} lists no case.", "Use the unmodified CSV from the official download.")
    return cases


def _ac(value: str, path: Path, line: int, column: str) -> float | None:
    """A sweep's abdominal circumference in mm; empty (no reference measurement) is None."""
    if value == "" or value.lower() == "nan":
        return None
    return parse_positive_float(value, path=path, line=line, column=column, bounds=CIRCUMFERENCE_MM)


def subject_split(subject_id: str, seed: int = ACOUSLIC_IQA.split_seed) -> str:
    """The split of every case of a subject (the default rule; see the catalog)."""
    return hashed_split(seed, subject_id, SPLIT_FRACTIONS)


def paper_splits(uuids: list[str]) -> dict[str, str]:
    """He et al.'s split of the CSV's cases, in the CSV's order (reproduces their test set).

    By case only: cases of one subject can land in different splits.
    """
    order = np.random.default_rng(PAPER_SEED).permutation(len(uuids))
    n = len(uuids)
    train_end, validation_end = int(0.7 * n), int((1 - 0.2) * n)
    return {uuids[i]: "train" if rank < train_end else "validation" if rank < validation_end else "test"
            for rank, i in enumerate(order)}


def find_raw_root(raw_dir: Path) -> Path:
    """The directory holding circumferences/, images/ and masks/ (RAW or one folder below it)."""
    candidates = [raw_dir, *sorted(p for p in raw_dir.iterdir() if p.is_dir())] if raw_dir.is_dir() else [raw_dir]
    for root in candidates:
        if (root / CSV_DIR / CSV_NAME).is_file():
            return root
    raise DataError(
        f"{CSV_DIR}/{CSV_NAME} not found in {raw_dir} (nor one folder below it).",
        "Point --raw at the extracted official acouslic-ai-train-set.zip (it holds circumferences/, images/ and "
        "masks/), or run `fetal-bench datasets download acouslic-iqa --to DIR`.",
    )


@dataclass(frozen=True)
class _Stack:
    """What a case's image and mask headers say (read without reading pixels)."""

    size: tuple[int, int, int]  # SimpleITK (x, y, z)
    pixel_size_mm: float

    @property
    def frames_per_sweep(self) -> int:
        return self.size[2] // N_SWEEPS


def _reader(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise DataError(f"{path} is not a readable MetaImage ({str(error).strip().splitlines()[-1]}).",
                        "Re-extract the official archive; the file may be truncated.") from None
    return reader


def _check_stack(case: Case, image_path: Path, mask_path: Path) -> _Stack:
    import SimpleITK as sitk

    image, mask = _reader(image_path), _reader(mask_path)
    size, mask_size = tuple(image.GetSize()), tuple(mask.GetSize())
    if image.GetDimension() != 3 or image.GetNumberOfComponents() != 1:
        raise DataError(f"{image_path} is not a 3-D single-channel stack (dimension {image.GetDimension()}, "
                        f"{image.GetNumberOfComponents()} components).", "Re-extract the official archive.")
    if image.GetPixelID() != sitk.sitkUInt8:
        raise DataError(f"{image_path} holds {sitk.GetPixelIDValueAsString(image.GetPixelID())} pixels, not 8-bit "
                        "unsigned integers.", "Re-extract the official archive.")
    if mask_size != size:
        raise DataError(f"Case {case.uuid}: the mask {mask_path} is {_size_text(mask_size)} but the image "
                        f"{image_path} is {_size_text(size)}.", "Re-extract the official archive; both must match.")
    if size[2] == 0 or size[2] % N_SWEEPS:
        raise DataError(f"Case {case.uuid}: {image_path} stacks {size[2]} frames, not a multiple of the "
                        f"{N_SWEEPS} sweeps.", "Re-extract the official archive (each stack holds 6 x 140 frames).")
    if mask.GetPixelID() not in (sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16):
        raise DataError(f"{mask_path} holds {sitk.GetPixelIDValueAsString(mask.GetPixelID())} values, not a label map.",
                        "Re-extract the official archive.")
    return _Stack(size=size, pixel_size_mm=float(image.GetSpacing()[0]))


def _size_text(size) -> str:
    return " x ".join(str(v) for v in size)


def _read_sweep(path: Path, stack: _Stack, sweep: int) -> tuple[object, np.ndarray]:
    """Frames of one sweep (1-based) as a (frames, y, x) array; only that z-range is read.

    Returns the SimpleITK image with a read-only numpy view of its buffer (no copy): keep the
    image while the view is used.
    """
    import SimpleITK as sitk

    reader = _reader(path)
    frames = stack.frames_per_sweep
    reader.SetExtractIndex([0, 0, (sweep - 1) * frames])
    reader.SetExtractSize([stack.size[0], stack.size[1], frames])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise DataError(f"Could not read sweep {sweep} of {path} ({str(error).strip().splitlines()[-1]}).",
                        "Re-extract the official archive; the file may be truncated.") from None
    return image, sitk.GetArrayViewFromImage(image)


def build_acouslic_iqa(
    raw_dir: Path,
    out_dir: Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    split_rule: str = "subject",
    keep_unmeasured_sweeps: bool = False,
    negative_keep_fraction: float = 1.0,
) -> BuildResult:
    """Build ``acouslic-iqa`` from the official layout in ``raw_dir``.

    Args:
        split_rule: ``"subject"`` (default: subject-disjoint hash split, see the catalog) or
            ``"paper"`` (He et al.'s seeded permutation of the cases; subjects may span splits).
        keep_unmeasured_sweeps: keep sweeps with no reference AC (the paper drops them).
        negative_keep_fraction: keep this fraction of the *train* split's unusable frames,
            chosen by a seeded hash of the row id (1.0: all). Validation and test keep every frame.
    """
    if split_rule not in SPLIT_RULES:
        raise FetalBenchError(f"Unknown split rule {split_rule!r} for acouslic-iqa.", f"Use one of: {', '.join(SPLIT_RULES)}.")
    if not 0 < negative_keep_fraction <= 1:
        raise FetalBenchError(f"negative_keep_fraction = {negative_keep_fraction} is not in (0, 1].",
                              "Give the fraction of unusable training frames to keep, e.g. 0.25.")
    root = find_raw_root(raw_dir)
    csv_path = root / CSV_DIR / CSV_NAME
    cases = read_cases(csv_path)
    present, warnings, partial = _survey(root, cases)
    assignment = (paper_splits([case.uuid for case in cases]) if split_rule == "paper"
                  else {case.uuid: subject_split(case.subject_id) for case in cases})
    # Every header is checked before the first row is written: a bad file fails the build in seconds.
    stacks = {case.uuid: _check_stack(case, root / IMAGE_DIR / f"{case.uuid}.mha", root / MASK_DIR / f"{case.uuid}.mha")
              for case in present}
    frames = _Frames(root, present, assignment, stacks, keep_unmeasured_sweeps=keep_unmeasured_sweeps,
                     negative_keep_fraction=negative_keep_fraction, progress=progress)
    notes = frames.notes()
    if split_rule == "paper" and (leak := _subject_leak(present, assignment)):
        warnings.append(leak)
    info = ACOUSLIC_IQA
    if split_rule == "paper":
        info = dataclasses.replace(
            info, split_seed=PAPER_SEED,
            split_rule=("He et al. (2025)'s split: numpy.random.default_rng(seed).permutation of the CSV's cases "
                        "(CSV order); the first int(0.7 n) train, then up to int(0.8 n) validation, the rest test. "
                        "Case-level, NOT subject-disjoint: cases of one subject can be in different splits."))
    splits = {split: (lambda split=split: frames.rows(split, notes)) for split, _ in SPLIT_FRACTIONS}
    options = {"split_rule": split_rule, "keep_unmeasured_sweeps": keep_unmeasured_sweeps,
               "negative_keep_fraction": negative_keep_fraction}
    try:
        return write_dataset(
            out_dir,
            info,
            # Subject-disjoint builds are checked by subject (which implies by case); the paper's by case.
            [ConfigSpec("default", FEATURES, splits, label_column="label", group_columns=("plane_quality",),
                        subject_column="subject_id" if split_rule == "subject" else "case_id")],
            sources=[{"name": f"{CSV_DIR}/{CSV_NAME}", "files": 1, "sha256": sha256_file(csv_path)},
                     frames.images_digest, frames.masks_digest],
            warnings=warnings,
            notes=notes,
            extra_build_info={"options": options, **({"partial": partial} if partial else {})},
            overwrite=overwrite,
        )
    finally:
        frames.bar.close()


def _survey(root: Path, cases: list[Case]) -> tuple[list[Case], list[str], dict | None]:
    """The cases whose stacks are there, warnings about what the raw directory lacks or adds, and
    the build's ``partial`` record (None when every listed case is there)."""
    warnings: list[str] = []
    if len(cases) != N_CASES:
        warnings.append(f"{CSV_NAME} lists {len(cases)} cases; the official release has {N_CASES}.")
    present, absent = _present_cases(root, cases)
    if absent:
        warnings.append(
            f"Partial raw directory: {len(present)} of the {len(cases)} cases in {CSV_NAME} have their image and mask "
            f"stacks ({len(absent)} absent, e.g. {absent[0].uuid}); the splits hold only the cases present.")
    partial = None if not absent else {
        "what": "cases", "listed": len(cases), "built": len(present), "missing": len(absent),
        "missing_share": round(len(absent) / len(cases), 6), "revision": "local",
        "missing_examples": [case.uuid for case in absent[:10]]}
    listed = {case.uuid for case in cases}
    unlisted = sorted(p.stem for p in (root / IMAGE_DIR).glob("*.mha") if p.stem not in listed)
    if unlisted:
        warnings.append(f"{len(unlisted)} stack(s) in {IMAGE_DIR} are not in {CSV_NAME} and were skipped (e.g. {unlisted[0]}).")
    return present, warnings, partial


class _Frames:
    """The rows of each split, a frame per row, read sweep by sweep; the digests of the files read."""

    def __init__(self, root: Path, present: list[Case], assignment: dict[str, str], stacks: dict, *,
                 keep_unmeasured_sweeps: bool, negative_keep_fraction: float, progress: bool):
        self.root, self.stacks = root, stacks
        self.keep_unmeasured_sweeps, self.negative_keep_fraction = keep_unmeasured_sweeps, negative_keep_fraction
        self.by_split: dict[str, list[Case]] = {split: [] for split, _ in SPLIT_FRACTIONS}
        for case in present:
            self.by_split[assignment[case.uuid]].append(case)
        self.present = present
        total = sum(len(self.sweeps_of(case)) * stacks[case.uuid].frames_per_sweep for case in present)
        self.bar = tqdm(total=total, desc="acouslic-iqa", unit="frame", disable=not progress)
        self.images_digest = SourceDigest(f"{IMAGE_DIR.as_posix()}/")
        self.masks_digest = SourceDigest(f"{MASK_DIR.as_posix()}/")
        self.mixed: list[str] = []  # frames whose mask holds both optimal and suboptimal pixels

    def sweeps_of(self, case: Case) -> list[int]:
        return [s for s in range(1, N_SWEEPS + 1) if self.keep_unmeasured_sweeps or case.ac_mm[s - 1] is not None]

    def notes(self) -> list[str]:
        notes = []
        odd = sorted({stack.size for stack in self.stacks.values()} - {OFFICIAL_SIZE})
        if odd:
            notes.append(f"Stacks of another size than the official {_size_text(OFFICIAL_SIZE)}: "
                         f"{', '.join(map(_size_text, odd))}.")
        dropped = sum(N_SWEEPS - len(self.sweeps_of(case)) for case in self.present)
        if dropped and not self.keep_unmeasured_sweeps:
            notes.append(f"{dropped} sweep(s) without a reference abdominal circumference were left out, as in He et al. "
                         "(2025); `--keep-unmeasured-sweeps` keeps them.")
        if self.negative_keep_fraction < 1:
            notes.append(f"Train split: {self.negative_keep_fraction:g} of the unusable frames kept (hash of the row id "
                         f"with seed {ACOUSLIC_IQA.split_seed}); validation and test keep every frame.")
        return notes

    def rows(self, split: str, notes: list[str]):
        """The split's rows; ``notes`` learns how many frames had mixed masks once they are counted."""
        thin = split == "train" and self.negative_keep_fraction < 1
        for case in sorted(self.by_split[split], key=lambda c: c.uuid):
            image_path, mask_path = self.root / IMAGE_DIR / f"{case.uuid}.mha", self.root / MASK_DIR / f"{case.uuid}.mha"
            self.images_digest.add_file(image_path.name, image_path)
            self.masks_digest.add_file(mask_path.name, mask_path)
            for sweep in self.sweeps_of(case):
                yield from self._sweep_rows(case, sweep, image_path, mask_path, thin)
        if self.mixed:
            notes[:] = [n for n in notes if not n.startswith("Frames whose mask")] + [
                f"Frames whose mask holds both optimal and suboptimal pixels count as optimal: {len(self.mixed)} "
                f"(e.g. {self.mixed[0]})."]

    def _sweep_rows(self, case: Case, sweep: int, image_path: Path, mask_path: Path, thin: bool):
        stack = self.stacks[case.uuid]
        image_stack, frames = _read_sweep(image_path, stack, sweep)
        mask_stack, masks = _read_sweep(mask_path, stack, sweep)
        if masks.min() < 0 or masks.max() > 2:  # min/max: no copy of the sweep
            stray = sorted(set(np.unique(masks).tolist()) - {0, 1, 2})
            raise DataError(f"Case {case.uuid}, sweep {sweep}: {mask_path} holds values {stray}; "
                            "masks hold 0 (background), 1 (optimal) and 2 (suboptimal).",
                            "Re-extract the official archive.")
        for frame in range(stack.frames_per_sweep):
            self.bar.update()
            mask = masks[frame]
            optimal, suboptimal = bool((mask == 1).any()), bool((mask == 2).any())
            row_id = f"{case.uuid}-s{sweep}-f{frame:03d}"
            if optimal and suboptimal:
                self.mixed.append(row_id)
            usable = optimal or suboptimal
            if thin and not usable and hash_fraction(ACOUSLIC_IQA.split_seed, row_id) >= self.negative_keep_fraction:
                continue
            yield {
                "id": row_id,
                "image": {"bytes": encode_png(frames[frame]), "path": f"{row_id}.png"},
                "label": int(usable),
                # Optimal wins when a mask holds both (not seen in the release; counted in the notes).
                "plane_quality": 1 if optimal else 2 if suboptimal else 0,
                "mask": {"bytes": encode_png(mask.astype(np.uint8)), "path": f"{row_id}_mask.png"},
                "case_id": case.uuid,
                "subject_id": case.subject_id,
                "sweep": sweep,
                "frame": frame,
                "pixel_size_mm": stack.pixel_size_mm,
                "sweep_ac_mm": case.ac_mm[sweep - 1],
            }
        del frames, masks, image_stack, mask_stack  # the views first, then their buffers


def _present_cases(root: Path, cases: list[Case]) -> tuple[list[Case], list[Case]]:
    """Cases with both stacks, and cases with neither (a partial copy); one without the other is an error."""
    present, absent, broken = [], [], []
    for case in cases:
        image, mask = root / IMAGE_DIR / f"{case.uuid}.mha", root / MASK_DIR / f"{case.uuid}.mha"
        if image.is_file() and mask.is_file():
            present.append(case)
        elif image.is_file() or mask.is_file():
            broken.append(mask if image.is_file() else image)
        else:
            absent.append(case)
    if broken:
        shown = ", ".join(str(p) for p in broken[:5]) + (f" and {len(broken) - 5} more" if len(broken) > 5 else "")
        raise DataError(f"{len(broken)} stack(s) have their image or mask but not both; missing: {shown}.",
                        "Re-extract the official archive into --raw: every case has images/stacked_fetal_ultrasound/"
                        "<uuid>.mha and masks/stacked_fetal_abdomen/<uuid>.mha.")
    if not present:
        raise DataError(f"None of the {len(cases)} cases in {CSV_NAME} has its stacks under {root / IMAGE_DIR} and "
                        f"{root / MASK_DIR}.", "Extract the complete official archive into --raw.")
    return present, absent


def _subject_leak(cases: list[Case], assignment: dict[str, str]) -> str | None:
    """A warning when the paper's case-level split puts one subject's cases in two splits."""
    splits_of: dict[str, set[str]] = {}
    for case in cases:
        splits_of.setdefault(case.subject_id, set()).add(assignment[case.uuid])
    spanning = sorted(subject for subject, splits in splits_of.items() if len(splits) > 1)
    if not spanning:
        return None
    return (f"Paper split: {len(spanning)} subject(s) have cases in two splits (e.g. subject {spanning[0]}), as in "
            "He et al.'s split; the default `--split-rule subject` keeps subjects apart.")
