"""Training-data loading over several epochs: fetal-bench's loader vs torchvision ImageFolder.

The same PNG bytes are written twice: as an ``ImageFolder`` tree of files, and embedded in a
dataset directory written by fetal-bench's own writer (``fetal_bench.data.writer``, as
``fetal-bench datasets build`` writes it). Each case then builds its loader and runs
``--epochs`` full epochs at the same batch size, output size, shuffling and number of worker
processes, with the same per-image work (decode the PNG to 8-bit gray, antialiased bilinear
resize, per-image standardisation). The cases:

* ``imagefolder``: torchvision ``ImageFolder`` on the files;
* ``fetal-bench``: ``make_dataloader``, decoding every epoch;
* ``fetal-bench-cached``: ``make_dataloader(..., decoded_cache=True)`` starting from an empty
  cache, so the one-time decoding pass (and hashing the rows for the cache key) is timed: what
  a first training run pays;
* ``fetal-bench-cached-warm``: the same with the cache entry already there (a second run on the
  same rows, e.g. another learning rate);
* ``hf-decode`` (optional): ``datasets`` decodes the images itself (``Dataset.with_transform``).

Cases run interleaved, one round after another in one process, the first round discarded; the
median over ``--repeats`` rounds is reported with min-max, and "vs IF" is ImageFolder's median
time over the case's (> 1: faster than ImageFolder). The load average is printed before and
after (``--wait-quiet`` waits for a quiet machine). A second table times a full read of the
written Parquet shards (what ``load_dataset`` does when it first prepares a build) against the
same rows written the way fetal-bench wrote them before (zstd on every column including the PNG
bytes, 64-row row groups, no page index).

Images are HC18-sized (800x540) synthetic ultrasound-like frames, or real PNGs with
``--images-from`` (e.g. HC18's ``training_set``; ``*_Annotation.png`` files are skipped). The
files are in the page cache (just written): this compares warm-file-cache throughput.

    python benchmarks/bench_dataloader.py --n 500 --images-from HC18/training_set --json bench.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (add_common_arguments, check_machine, finish_machine, format_stats,  # noqa: E402
                     ratio, time_interleaved, write_json)

HEIGHT, WIDTH = 540, 800  # HC18's frame size
N_CLASSES = 2


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


def _write_built_dataset(root: Path, images: list[bytes], source: str) -> None:
    """The images as a dataset directory, through fetal-bench's writer (what a build writes)."""
    import datasets

    from fetal_bench.data.catalog import DatasetInfo
    from fetal_bench.data.writer import ConfigSpec, write_dataset

    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"class_{k}" for k in range(N_CLASSES)])})

    def rows():
        for i, data in enumerate(images):
            yield {"id": f"img_{i:05d}", "image": {"bytes": data, "path": None}, "label": i % N_CLASSES}

    info = DatasetInfo(name="bench-dataloader", title="bench_dataloader images (benchmark input, not published)",
                       description=f"Benchmark input: {source}.", hub_id=None, revision=None, license="other",
                       citation="", homepage="")
    write_dataset(root, info, [ConfigSpec("default", features, {"train": rows}, label_column="label")])


def _write_old_style(built: Path, old: Path) -> list[Path]:
    """The same shards as fetal-bench wrote them before: zstd everywhere, 64-row groups, no page index."""
    import pyarrow.parquet as pq

    old.mkdir(parents=True, exist_ok=True)
    written = []
    for shard in sorted((built / "data").glob("*.parquet")):
        target = old / shard.name
        pq.write_table(pq.read_table(shard), target, compression="zstd", row_group_size=64)
        written.append(target)
    return written


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


CASES = ("imagefolder", "fetal-bench", "fetal-bench-cached", "fetal-bench-cached-warm", "hf-decode")


def _make_loader(kind: str, *, folder: Path, dataset, size: int, batch_size: int, workers: int, seed: int):
    import torch
    from torch.utils.data import DataLoader

    from fetal_bench.data.loading import make_dataloader

    common = {"batch_size": batch_size, "shuffle": True, "num_workers": workers,
              "generator": torch.Generator().manual_seed(seed), "persistent_workers": workers > 0}
    if kind == "imagefolder":
        from torchvision import datasets as tv_datasets
        from torchvision import transforms

        tv = tv_datasets.ImageFolder(str(folder), loader=_gray_loader,
                                     transform=transforms.Compose([transforms.Resize((size, size)), _to_standardised_tensor]))
        return DataLoader(tv, **common)
    if kind.startswith("fetal-bench"):
        return make_dataloader(dataset, task="classification", image_size=(size, size), batch_size=batch_size,
                               shuffle=True, num_workers=workers, seed=seed, pin_memory=False,
                               decoded_cache=kind != "fetal-bench")
    if kind == "hf-decode":
        return DataLoader(dataset.with_transform(_HfDecodeTransform(size)), collate_fn=_collate_hf, **common)
    raise ValueError(kind)


def _training_run(kind: str, epochs: int, cache: Path, **loader_options):
    """A callable that builds the loader and runs ``epochs`` full epochs, as a training run does."""
    from fetal_bench.data import decoded_cache

    def run() -> int:
        if kind == "fetal-bench-cached":
            shutil.rmtree(cache / "decoded", ignore_errors=True)  # a first run: nothing decoded yet
        decoded_cache._KEYS.clear()  # a new run re-derives the cache key from the rows
        loader = _make_loader(kind, **loader_options)
        images = 0
        for _ in range(epochs):
            for batch in loader:
                # ImageFolder batches are (pixels, labels) pairs, ours are dicts.
                images += len(batch[0] if isinstance(batch, (list, tuple)) else batch["pixel_values"])
        del loader  # shuts persistent workers down inside the timed region, for every case alike
        return images

    return run


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="number of images (default 500)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training run (default 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224, help="square output side (default 224)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers values (default 0 2)")
    parser.add_argument("--loaders", nargs="+", default=list(CASES[:4]), choices=CASES,
                        help="cases to time (default: all but hf-decode); imagefolder is the reference")
    parser.add_argument("--images-from", type=Path, help="use the PNGs in this directory instead of synthetic ones")
    parser.add_argument("--workdir", type=Path, help="where to write the data (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=0)
    add_common_arguments(parser, repeats=3)
    args = parser.parse_args(argv)
    if "imagefolder" not in args.loaders:
        parser.error("--loaders must include imagefolder, the reference")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-dataloader-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # A private, offline HF cache and fetal-bench cache: the user's caches are left alone. Set
    # before datasets is imported.
    os.environ.update({"HF_HOME": str(workdir / "hf-home"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "FETAL_BENCH_CACHE": str(workdir / "fetal-bench-cache")})
    try:
        return _run(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _prepare(args: argparse.Namespace, workdir: Path) -> dict:
    """Write (or reuse) the ImageFolder tree, the built set and its old-style copy."""
    source = str(args.images_from.resolve()) if args.images_from else f"synthetic {WIDTH}x{HEIGHT} gray"
    manifest_path, wanted = workdir / "manifest.json", {"n": args.n, "source": source, "writer": 2}
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("data") == wanted:
        print(f"reusing the data in {workdir}")
        return json.loads(manifest_path.read_text())
    for name in ("imagefolder", "built", "old-style"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    images = _png_bytes(args.n, args.images_from, jobs=os.cpu_count() or 1)
    _write_imagefolder(workdir / "imagefolder", images)
    _write_built_dataset(workdir / "built", images, source)
    _write_old_style(workdir / "built", workdir / "old-style")
    sizes = {name: sum(p.stat().st_size for p in (workdir / name).rglob("*.parquet")) for name in ("built", "old-style")}
    manifest = {"data": wanted, "source": source, "mean_png_kib": sum(map(len, images)) / len(images) / 1024,
                "parquet_bytes": sizes}
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def _time_parquet(workdir: Path, repeats: int) -> dict:
    import pyarrow.parquet as pq

    def reader(folder: Path):
        files = sorted(folder.rglob("*.parquet"))
        return lambda: [pq.read_table(f) for f in files]

    return time_interleaved({"datasets' options (now)": reader(workdir / "built"),
                             "zstd everywhere (before)": reader(workdir / "old-style")}, repeats=max(repeats, 5))


def _run(args: argparse.Namespace, workdir: Path) -> int:
    import datasets

    from fetal_bench.data.loading import open_dataset

    datasets.disable_progress_bars()
    machine = check_machine(args)
    data = _prepare(args, workdir)
    shutil.rmtree(workdir / "hf-home", ignore_errors=True)  # the Parquet -> Arrow preparation, timed cold
    start = time.perf_counter()
    dataset = open_dataset(workdir / "built", split="train")
    prepare_s = time.perf_counter() - start
    old_kib, new_kib = (data["parquet_bytes"][k] / 1024 for k in ("old-style", "built"))
    print(f"{args.n} images ({data['source']}, mean PNG {data['mean_png_kib']:.0f} KiB); first open_dataset "
          f"(Parquet -> Arrow) {prepare_s:.2f} s; Parquet {new_kib:.0f} KiB ({100 * (new_kib / old_kib - 1):+.2f}% vs before)")

    parquet = _time_parquet(workdir, args.repeats)
    print("\nfull read of the Parquet shards (pyarrow.parquet.read_table):")
    for name, stats in parquet.items():
        print(format_stats(name, stats))
    parquet_speedup = ratio(parquet, "zstd everywhere (before)", "datasets' options (now)")
    print(f"  speed-up {parquet_speedup:.2f}x")

    loaders = {}
    for workers in args.workers:
        options = dict(folder=workdir / "imagefolder", dataset=dataset, size=args.image_size,
                       batch_size=args.batch_size, workers=workers, seed=args.seed)
        cases = {kind: _training_run(kind, args.epochs, workdir / "fetal-bench-cache", **options) for kind in args.loaders}
        stats = time_interleaved(cases, repeats=args.repeats)
        loaders[str(workers)] = {"seconds": stats,
                                 "ratio_vs_imagefolder": {k: ratio(stats, "imagefolder", k) for k in stats}}
    _print_loaders(args, loaders)
    report = {"benchmark": "bench_dataloader", "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "data": {**data, "prepare_s": round(prepare_s, 3)},
              "parquet_read_s": parquet, "parquet_read_speedup": parquet_speedup,
              "loaders": loaders, **finish_machine(machine)}
    write_json(args.json_path, report)
    return 0


def _print_loaders(args: argparse.Namespace, loaders: dict) -> None:
    print(f"\n{args.epochs} epochs of {args.n} images per run (loader built inside the run), batch {args.batch_size}, "
          f"{args.image_size}x{args.image_size}, shuffled; median of {args.repeats} interleaved rounds after a warm-up round")
    print(f"{'workers':>7}  {'loader':<24} {'seconds':>8} {'(min-max)':>15} {'images/s':>9} {'vs IF':>6}")
    for workers, result in loaders.items():
        for kind, stats in result["seconds"].items():
            rate = args.n * args.epochs / stats["median"]
            spread = f"({stats['min']:.2f}-{stats['max']:.2f})"
            print(f"{workers:>7}  {kind:<24} {stats['median']:>8.2f} {spread:>15} {rate:>9.1f} "
                  f"{result['ratio_vs_imagefolder'][kind]:>5.2f}x")
    print("vs IF: ImageFolder's median time / the case's; > 1 means faster than ImageFolder")


if __name__ == "__main__":
    sys.exit(main())
