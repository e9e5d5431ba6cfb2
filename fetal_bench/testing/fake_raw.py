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
