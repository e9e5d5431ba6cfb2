"""Raw directories in the official layouts, filled with small generated images.

Tests use them to exercise the converters end to end without the real downloads: the same
file names, CSV headers and folder structure as the publishers', with tiny synthetic pixels.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from fetal_bench.geometry import Ellipse, ellipse_mask, mask_boundary


def png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_hc18_raw(
    root: Path,
    subjects: int = 12,
    *,
    size: tuple[int, int] = (96, 128),
    extra_images_every: int = 3,
    seed: int = 0,
    with_test_set: bool = False,
) -> dict[str, Ellipse]:
    """Write an HC18-layout raw directory; returns {file name: the annotated ellipse}.

    Every ``extra_images_every``-th subject gets a second image (``NNN_2HC.png``), as in HC18.
    """
    rng = np.random.default_rng(seed)
    train_dir = root / "training_set"
    train_dir.mkdir(parents=True, exist_ok=True)
    ellipses: dict[str, Ellipse] = {}
    rows = []
    for subject in range(subjects):
        names = [f"{subject:03d}_HC.png"]
        if extra_images_every and subject % extra_images_every == 0:
            names.append(f"{subject:03d}_2HC.png")
        for name in names:
            ellipse, image, outline = _head(rng, size)
            (train_dir / name).write_bytes(png_bytes(image))
            (train_dir / name.replace(".png", "_Annotation.png")).write_bytes(png_bytes(outline))
            pixel = float(rng.uniform(0.1, 0.2))
            rows.append([name, f"{pixel:.9f}", f"{ellipse.perimeter * pixel:.2f}"])
            ellipses[name] = ellipse
    with open(root / "training_set_pixel_size_and_HC.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "pixel size(mm)", "head circumference (mm)"])
        writer.writerows(rows)
    if with_test_set:
        test_dir = root / "test_set"
        test_dir.mkdir(exist_ok=True)
        test_rows = []
        for subject in range(4):
            name = f"{subject:03d}_HC.png"
            _, image, _ = _head(rng, size)
            (test_dir / name).write_bytes(png_bytes(image))
            test_rows.append([name, "0.15"])
        with open(root / "test_set_pixel_size.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "pixel size(mm)"])
            writer.writerows(test_rows)
    return ellipses


def _head(rng: np.random.Generator, size: tuple[int, int]):
    height, width = size
    ellipse = Ellipse(
        cx=float(rng.uniform(0.4, 0.6) * width),
        cy=float(rng.uniform(0.4, 0.6) * height),
        a=float(rng.uniform(0.25, 0.32) * width),
        b=float(rng.uniform(0.2, 0.3) * height),
        angle=float(rng.uniform(-math.pi / 2, math.pi / 2)),
    )
    mask = ellipse_mask(size, ellipse)
    outline = mask_boundary(mask).astype(np.uint8) * 255
    image = (rng.random(size) * 80).astype(np.uint8)
    image[outline > 0] = 230
    return ellipse, image, outline


def make_planes_images(csv_path: Path, *, dataset: str, size: tuple[int, int] = (8, 8)) -> int:
    """Write a tiny PNG at the path where each row of an official planes CSV expects its image.

    ``dataset`` is ``"fetal-planes-es"`` (``Images/<Image_name>.png``) or
    ``"fetal-planes-africa"`` (``<Center>/<Filename>.png``). Returns the number written.
    """
    root = csv_path.parent
    data = png_bytes(np.zeros(size, dtype=np.uint8))
    count = 0
    with open(csv_path, newline="", encoding="utf-8") as handle:
        if dataset == "fetal-planes-es":
            reader = csv.reader(handle, delimiter=";")
            next(reader)
            (root / "Images").mkdir(exist_ok=True)
            for row in reader:
                (root / "Images" / f"{row[0].strip()}.png").write_bytes(data)
                count += 1
        elif dataset == "fetal-planes-africa":
            for row in csv.DictReader(handle):
                (root / row["Center"]).mkdir(exist_ok=True)
                (root / row["Center"] / f"{row['Filename']}.png").write_bytes(data)
                count += 1
        else:
            raise ValueError(f"unknown planes dataset {dataset!r}")
    return count


def write_es_csv(path: Path, rows: list[tuple]) -> None:
    """A FETAL_PLANES_DB-format CSV (';'-separated, the official padded 'Train ' column)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        handle.write("Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train \n")
        for row in rows:
            handle.write(";".join(str(v) for v in row) + " \n")


def write_africa_csv(path: Path, rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Patient_num", "Plane", "Train", "Center", "Filename"])
        writer.writerows(rows)


def make_acouslic_raw(
    root: Path,
    *,
    splits: tuple[int, int, int] = (3, 1, 1),
    shared_subject: bool = True,
    frames_per_sweep: int = 4,
    size: tuple[int, int] = (48, 36),
    seed: int = 0,
) -> dict[str, dict]:
    """Write an ACOUSLIC-AI-layout raw directory of tiny ``.mha`` stacks (SimpleITK).

    ``splits`` subjects fall in train/validation/test under the default subject rule (their ids
    are picked so); with ``shared_subject`` the first train subject has two cases, as some
    ACOUSLIC-AI subjects do. ``size`` is (width, height); each stack holds 6 sweeps of
    ``frames_per_sweep`` frames. Sweep s of case i has a reference AC unless (s + i) % 3 == 0.
    In every sweep, frame 1 shows an optimal-plane abdomen (mask value 1) and, in even sweeps,
    frame 2 a suboptimal one (value 2); the other frames are unusable.

    Returns ``{uuid: {"subject_id", "ac_mm" (6 values or None), "plane_quality" (6 x frames)}}``.
    """
    import SimpleITK as sitk

    from fetal_bench.data.builders.acouslic import AC_COLUMNS, CSV_HEADER, N_SWEEPS, subject_split

    rng = np.random.default_rng(seed)
    width, height = size
    subjects: list[str] = []
    wanted = {"train": splits[0], "validation": splits[1], "test": splits[2]}
    candidate = 0
    while any(wanted.values()):
        split = subject_split(str(candidate))
        if wanted[split]:
            wanted[split] -= 1
            subjects.append(str(candidate))
        candidate += 1
    case_subjects = list(subjects)
    if shared_subject:
        first_train = next(s for s in subjects if subject_split(s) == "train")
        case_subjects.insert(0, first_train)
    image_dir = root / "images" / "stacked_fetal_ultrasound"
    mask_dir = root / "masks" / "stacked_fetal_abdomen"
    csv_dir = root / "circumferences"
    for directory in (image_dir, mask_dir, csv_dir):
        directory.mkdir(parents=True, exist_ok=True)
    cases: dict[str, dict] = {}
    rows = []
    depth = N_SWEEPS * frames_per_sweep
    yy, xx = np.mgrid[0:height, 0:width]
    for index, subject in enumerate(case_subjects):
        uuid = f"{index:08x}-{int(rng.integers(0, 16**4)):04x}-4000-8000-{int(rng.integers(0, 16**12)):012x}"
        image = (rng.random((depth, height, width)) * 90).astype(np.uint8)
        mask = np.zeros((depth, height, width), dtype=np.uint8)
        quality = np.zeros((N_SWEEPS, frames_per_sweep), dtype=np.int64)
        for sweep in range(1, N_SWEEPS + 1):
            for frame, value in ((1, 1), (2, 2)):
                if frame >= frames_per_sweep or (value == 2 and sweep % 2):
                    continue
                cx, cy = rng.uniform(0.35, 0.65) * width, rng.uniform(0.35, 0.65) * height
                inside = ((xx - cx) / (0.25 * width)) ** 2 + ((yy - cy) / (0.25 * height)) ** 2 <= 1
                z = (sweep - 1) * frames_per_sweep + frame
                mask[z][inside] = value
                image[z][inside] = 200
                quality[sweep - 1, frame] = value
        for array, directory in ((image, image_dir), (mask, mask_dir)):
            stack = sitk.GetImageFromArray(array)  # numpy (z, y, x) -> SimpleITK size (x, y, z)
            stack.SetSpacing((0.28, 0.28, 1.0))
            sitk.WriteImage(stack, str(directory / f"{uuid}.mha"), useCompression=True)
        ac = [None if (sweep + index) % 3 == 0 else round(float(rng.uniform(150, 350)), 3)
              for sweep in range(1, N_SWEEPS + 1)]
        rows.append([uuid, subject, *("" if v is None else f"{v}" for v in ac)])
        cases[uuid] = {"subject_id": subject, "ac_mm": ac, "plane_quality": quality}
    with open(csv_dir / "fetal_abdominal_circumferences_per_sweep.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)
    assert len(AC_COLUMNS) == N_SWEEPS
    return cases
