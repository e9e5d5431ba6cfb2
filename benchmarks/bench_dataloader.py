"""Training-loader throughput: fetal-bench's Parquet loader vs torchvision ImageFolder.

The same PNG bytes are written twice: as an ``ImageFolder`` tree of files, and embedded in a
built dataset directory (Parquet shards + a README.md with ``configs:``, as ``fetal-bench
datasets build`` writes them). One epoch of each is then timed at the same batch size, output
size, shuffling and number of worker processes, with the same per-image work (decode PNG to
8-bit gray, antialiased bilinear resize, per-image standardisation), so the ratio measures the
storage and wrapper overhead, not different image processing.

A third, optional row ("hf-decode") lets ``datasets`` decode the images itself
(``Dataset.with_transform`` on the decoded PIL images), the stock recipe that
``make_dataloader``'s decode-in-the-worker design replaces.

Images are HC18-sized (800x540) synthetic ultrasound-like frames (speckle, a fan-shaped field of
view, a bright skull ellipse), or real PNGs with ``--images-from`` (e.g. the HC18
``training_set``; ``*_Annotation.png`` files are skipped).

Timing: each loader first runs a discarded ``--warmup``-batch pass (it starts the persistent
worker processes and touches the data); then ``--repeats`` full epochs are timed, each from
``iter()`` to the last batch, interleaved across loaders, and the median images/s is reported.
"vs IF" is the median of per-repeat ratios (repeat r of each loader ran back to back). The
CPU-time column (this process + its workers, needs psutil) moves less than wall time when other
jobs share the machine. The files are in the page cache (just written, or read by the warm-up):
this compares warm-cache throughput. ``--workdir`` keeps the written data for later runs.

    python benchmarks/bench_dataloader.py --n 1000 --workers 0 2 --json bench.json
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 540, 800  # HC18's frame size
N_CLASSES = 2
_CARD = """---
license: apache-2.0
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# bench_dataloader synthetic dataset (not clinical data)
"""


# ------------------------------------------------------------------------------ the images


_GRID: dict[str, np.ndarray] = {}


def _grid() -> dict[str, np.ndarray]:
    """Coordinates, field of view and depth attenuation: the same for every frame."""
    if not _GRID:
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        # Fan-shaped field of view from an apex above the top edge.
        dx, dy = xx - WIDTH / 2, yy + 60
        fov = (np.abs(np.arctan2(dx, dy)) < 0.62) & (np.hypot(dx, dy) < HEIGHT + 40)
        _GRID.update(xx=xx, yy=yy, gain=(45 * np.exp(-yy / 900) * fov).astype(np.float32))
        # Rayleigh speckle by inverse-CDF lookup of uniform bytes: ~10x faster than rng.rayleigh.
        _GRID["rayleigh"] = np.sqrt(-2 * np.log1p(-(np.arange(256, dtype=np.float32) + 0.5) / 256))
    return _GRID


def _synthetic_png(index: int) -> bytes:
    """One ultrasound-like 8-bit frame, deterministic in ``index``."""
    from PIL import Image

    g = _grid()
    rng = np.random.default_rng(index)
    # A skull-like ellipse: a bright rim, darker brain inside.
    cy, cx = rng.uniform(200, 340), rng.uniform(330, 470)
    a, b, theta = rng.uniform(120, 180), rng.uniform(90, 140), rng.uniform(0, np.pi)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    u, v = g["xx"] - np.float32(cx), g["yy"] - np.float32(cy)
    radius = np.hypot((u * c + v * s) / np.float32(a), (v * c - u * s) / np.float32(b))
    tissue = np.where(radius < 0.93, np.float32(0.6), np.float32(1.0))
    rim = np.abs(radius - 1) < 0.08  # the exp() only where it is not ~0
    tissue[rim] += 2.5 * np.exp(-(((radius[rim] - 1) / 0.04) ** 2))
    # Pixel-level speckle: compresses about as badly as real B-mode images do.
    speckle = g["rayleigh"][rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)]
    pixels = np.minimum(speckle * tissue * g["gain"], 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _png_bytes(n: int, images_from: Path | None, jobs: int) -> list[bytes]:
    if images_from is not None:
        files = sorted(p for p in images_from.glob("*.png") if "annotation" not in p.name.lower())
        if not files:
            sys.exit(f"no PNG images in {images_from}")
        # Fewer files than n: cycle (the ids stay unique; the bytes repeat).
        return [files[i % len(files)].read_bytes() for i in range(n)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_synthetic_png, range(n), chunksize=16))


def _write_imagefolder(root: Path, images: list[bytes]) -> None:
    for i, data in enumerate(images):
        folder = root / f"class_{i % N_CLASSES}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img_{i:05d}.png").write_bytes(data)


def _write_built_dataset(root: Path, images: list[bytes], shard_rows: int) -> None:
    import datasets

    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=[f"class_{k}" for k in range(N_CLASSES)]),
        }
    )
    (root / "data").mkdir(parents=True)
    shards = max(1, -(-len(images) // shard_rows))
    for shard in range(shards):
        rows = range(shard * shard_rows, min(len(images), (shard + 1) * shard_rows))
        table = datasets.Dataset.from_dict(
            {
                "id": [f"img_{i:05d}" for i in rows],
                "image": [{"bytes": images[i], "path": None} for i in rows],
                "label": [i % N_CLASSES for i in rows],
            },
            features=features,
        )
        table.to_parquet(str(root / "data" / f"train-{shard:05d}-of-{shards:05d}.parquet"))
    (root / "README.md").write_text(_CARD)


# ------------------------------------------------------------------------------- the loaders


def _gray_loader(path: str):
    # torchvision's default loader converts to RGB; the data is gray, and so is ours.
    from PIL import Image

    with open(path, "rb") as handle:
        image = Image.open(handle)
        return image.convert("L") if image.mode != "L" else image.copy()


def _to_standardised_tensor(image):
    """PIL gray image -> (1, H, W) float32, per-image standardised: make_dataloader's default."""
    import torch

    pixels = np.asarray(image, dtype=np.float32)[None] * np.float32(1 / 255)
    pixels = (pixels - pixels.mean()) / max(float(pixels.std()), 1e-6)
    return torch.from_numpy(pixels)


class _HfDecodeTransform:
    """For ``Dataset.with_transform``: datasets has already decoded ``image`` to PIL."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, batch: dict) -> dict:
        from PIL import Image

        pixels = [
            _to_standardised_tensor(
                (im if im.mode == "L" else im.convert("L")).resize((self.size, self.size), Image.BILINEAR)
            )
            for im in batch["image"]
        ]
        return {"pixel_values": pixels, "label": batch["label"], "id": batch["id"]}


def _collate_hf(rows: list[dict]) -> dict:
    import torch

    return {
        "pixel_values": torch.stack([r["pixel_values"] for r in rows]),
        "labels": torch.tensor([r["label"] for r in rows]),
        "id": [r["id"] for r in rows],
    }


def _make_loader(kind: str, *, folder: Path, dataset, size: int, batch_size: int, workers: int, seed: int):
    import torch
    from torch.utils.data import DataLoader

    from fetal_bench.data.loading import make_dataloader

    common = {
        "batch_size": batch_size,
        "shuffle": True,
        "num_workers": workers,
        "generator": torch.Generator().manual_seed(seed),
        "persistent_workers": workers > 0,
    }
    if kind == "imagefolder":
        from torchvision import datasets as tv_datasets
        from torchvision import transforms

        tv = tv_datasets.ImageFolder(
            str(folder),
            loader=_gray_loader,
            transform=transforms.Compose([transforms.Resize((size, size)), _to_standardised_tensor]),
        )
        return DataLoader(tv, **common)
    if kind == "fetal-bench":
        return make_dataloader(
            dataset, task="classification", image_size=(size, size), batch_size=batch_size,
            shuffle=True, num_workers=workers, seed=seed, pin_memory=False,
        )
    if kind == "hf-decode":
        return DataLoader(dataset.with_transform(_HfDecodeTransform(size)), collate_fn=_collate_hf, **common)
    raise ValueError(kind)


def _warm_up(loader, batches: int) -> float:
    """Start the (persistent) workers and touch the data; the partial epoch is thrown away."""
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i + 1 >= batches:
            break
    return time.perf_counter() - start


def _cpu_seconds() -> float | None:
    """User+system CPU time of this process and its live children (the loader workers).

    Unlike wall time, it barely moves when other jobs share the machine, so it is the steadier
    measure of how much work a loader does per image. None without psutil.
    """
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def _time_epoch(loader) -> dict:
    """One full epoch, from iter() (workers already running) to the last batch."""
    cpu_start, start = _cpu_seconds(), time.perf_counter()
    images = 0
    for batch in loader:
        # ImageFolder batches are (pixels, labels) pairs, ours are dicts.
        images += len(batch[0] if isinstance(batch, (list, tuple)) else batch["pixel_values"])
    elapsed, cpu_end = time.perf_counter() - start, _cpu_seconds()
    cpu_ms = None if cpu_start is None or cpu_end is None else (cpu_end - cpu_start) / images * 1e3
    return {"images": images, "seconds": elapsed, "images_per_s": images / elapsed, "cpu_ms_per_image": cpu_ms}


# ------------------------------------------------------------------------------------ main


def _summarise(results: dict[tuple[str, int], list[dict]], warmup_s: dict[tuple[str, int], float]) -> list[dict]:
    """Medians per (loader, workers), and ratios to ImageFolder.

    A ratio is the median of per-repeat ratios: repeat r of every loader ran back to back, so
    pairing them cancels most of the drift a shared machine adds between repeats.
    """
    rows = []
    for (kind, workers), runs in results.items():
        base = results.get(("imagefolder", workers))
        rates = [r["images_per_s"] for r in runs]
        cpu = [r["cpu_ms_per_image"] for r in runs if r["cpu_ms_per_image"] is not None]
        row = {"loader": kind, "num_workers": workers, "images_per_s": statistics.median(rates),
               "min": min(rates), "max": max(rates), "cpu_ms_per_image": statistics.median(cpu) if cpu else None,
               "ratio_vs_imagefolder": None, "cpu_ratio_vs_imagefolder": None,
               "warmup_s": warmup_s[kind, workers], "runs": runs}
        if base:
            row["ratio_vs_imagefolder"] = statistics.median(
                ours["images_per_s"] / theirs["images_per_s"] for ours, theirs in zip(runs, base)
            )
            if cpu:
                row["cpu_ratio_vs_imagefolder"] = statistics.median(
                    theirs["cpu_ms_per_image"] / ours["cpu_ms_per_image"] for ours, theirs in zip(runs, base)
                )
        rows.append(row)
    return rows


def _print_table(rows: list[dict]) -> None:
    print(f"{'workers':>7}  {'loader':<12} {'images/s':>9} {'(min-max)':>11} {'vs IF':>6}   "
          f"{'CPU ms/img':>10} {'vs IF':>6}")
    for row in rows:
        ratio = f"{row['ratio_vs_imagefolder']:.2f}x" if row["ratio_vs_imagefolder"] else "-"
        cpu = f"{row['cpu_ms_per_image']:.2f}" if row["cpu_ms_per_image"] is not None else "-"
        cpu_ratio = f"{row['cpu_ratio_vs_imagefolder']:.2f}x" if row["cpu_ratio_vs_imagefolder"] else "-"
        spread = f"({row['min']:.0f}-{row['max']:.0f})"
        print(f"{row['num_workers']:>7}  {row['loader']:<12} {row['images_per_s']:>9.1f} {spread:>11} {ratio:>6}   "
              f"{cpu:>10} {cpu_ratio:>6}")
    print("vs IF: median over repeats of ours/ImageFolder (images/s) and ImageFolder/ours (CPU time); "
          "> 1 means ours is faster/cheaper")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224, help="square output side (default 224)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values (default 0 2)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs per cell; the median is reported")
    parser.add_argument("--warmup", type=int, default=5,
                        help="batches of a discarded first pass per loader (starts workers, warms caches)")
    parser.add_argument("--loaders", nargs="+", default=["imagefolder", "fetal-bench", "hf-decode"],
                        choices=["imagefolder", "fetal-bench", "hf-decode"])
    parser.add_argument("--images-from", type=Path, help="use the PNGs in this directory instead of synthetic ones")
    parser.add_argument("--shard-rows", type=int, default=500, help="rows per Parquet shard")
    parser.add_argument("--workdir", type=Path, help="where to write the data (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dataloader-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A private, offline HF cache: the one-time Parquet -> Arrow preparation is measured from
    # cold, and the user's cache is left alone. Set before datasets is imported.
    os.environ["HF_HOME"] = str(workdir / "hf-home")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        return _run(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    import datasets
    import PIL
    import torch
    import torchvision

    from fetal_bench.data.loading import open_dataset

    datasets.disable_progress_bars()
    folder, built = workdir / "imagefolder", workdir / "built"
    source = str(args.images_from.resolve()) if args.images_from else f"synthetic {WIDTH}x{HEIGHT} gray"
    manifest_path = workdir / "manifest.json"
    manifest = {"n": args.n, "source": source, "shard_rows": args.shard_rows}
    # The HF cache always starts empty, so the Parquet -> Arrow preparation is timed cold.
    shutil.rmtree(workdir / "hf-home", ignore_errors=True)
    t0 = time.perf_counter()
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("data") == manifest:
        mean_png_kb = json.loads(manifest_path.read_text())["mean_png_kib"]
        t1 = t2 = time.perf_counter()
        print(f"reusing the data in {workdir} (generation and writing skipped)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(built, ignore_errors=True)
        manifest_path.unlink(missing_ok=True)
        images = _png_bytes(args.n, args.images_from, jobs=os.cpu_count() or 1)
        t1 = time.perf_counter()
        _write_imagefolder(folder, images)
        _write_built_dataset(built, images, args.shard_rows)
        t2 = time.perf_counter()
        mean_png_kb = sum(map(len, images)) / len(images) / 1024
        manifest_path.write_text(json.dumps({"data": manifest, "mean_png_kib": mean_png_kb}))
        del images
    dataset = open_dataset(built, split="train")  # first load: Parquet -> Arrow cache
    t3 = time.perf_counter()
    print(f"{args.n} images ({source}, mean PNG {mean_png_kb:.0f} KiB): generated in {t1 - t0:.1f} s, "
          f"written in {t2 - t1:.1f} s; first open_dataset (Parquet -> Arrow cache) {t3 - t2:.1f} s")

    results: dict[tuple[str, int], list[dict]] = {}
    warmup_s: dict[tuple[str, int], float] = {}
    for workers in args.workers:
        loaders = {
            kind: _make_loader(kind, folder=folder, dataset=dataset, size=args.image_size,
                               batch_size=args.batch_size, workers=workers, seed=args.seed)
            for kind in args.loaders
        }
        for kind, loader in loaders.items():
            warmup_s[kind, workers] = _warm_up(loader, args.warmup)
        for _ in range(args.repeats):
            for kind, loader in loaders.items():  # interleaved: drift on a shared machine hits all alike
                results.setdefault((kind, workers), []).append(_time_epoch(loader))
        del loaders, loader  # shuts the persistent workers down before the next setting
        gc.collect()

    rows = _summarise(results, warmup_s)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbatch {args.batch_size}, {args.image_size}x{args.image_size}, shuffle, median of {args.repeats} full "
          f"epochs after a {args.warmup}-batch warm-up; {os.cpu_count()} CPUs, load average {load:.1f}")
    _print_table(rows)

    if args.json:
        payload = {
            "benchmark": "bench_dataloader",
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "data": {"source": source, "n": args.n, "mean_png_kib": mean_png_kb,
                     "prepare_s": t3 - t2, "write_s": t2 - t1},
            "environment": {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "torch": torch.__version__,
                            "torchvision": torchvision.__version__, "datasets": datasets.__version__,
                            "pillow": PIL.__version__, "load_average_1min_at_end": load},
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
