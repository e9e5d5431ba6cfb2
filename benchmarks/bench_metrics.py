"""Metric speed and agreement: fetal-bench's Dice + HD95 vs MONAI's on HC18-size masks.

``--n`` pairs of 540x800 masks are generated (seeded): the reference is an HC18-like head
ellipse (semi-axes, eccentricity, rotation and pixel size in HC18's ranges, sometimes running
off the frame); the prediction perturbs it the way a segmentation network errs: a shifted,
rescaled, rotated ellipse with a wobbly outline (low-order Fourier terms on the radius), and in
some images a spurious blob or a hole.

Each implementation then scores every pair, one image at a time as the harness does:

* fetal-bench: ``fetal_bench.metrics.dice`` and ``hd95_mm`` on numpy masks;
* MONAI: ``DiceMetric(include_background=True)`` and
  ``compute_hausdorff_distance(include_background=True, percentile=95, spacing=pixel size)`` on
  (1, 1, H, W) tensors made beforehand with ``torch.from_numpy`` (zero-copy, untimed).

Reported: wall time of each (after a discarded warm-up on the first few pairs), the ratio
MONAI / fetal-bench, and the largest absolute per-image difference (Dice; HD95 in mm and in
pixels). MONAI's Dice is also timed on stacked batches of 32, the way it is meant to be used.
MONAI runs with one torch thread by default (``--torch-threads``), the same single core that
fetal-bench's numpy/scipy code uses: on a shared machine whose cores are busy, torch's
multi-threaded kernels can run many times slower than one thread, which would measure the
machine's load rather than the implementations.
MONAI is a benchmark-only tool (``pip install monai``); without it only fetal-bench is
timed.

    python benchmarks/bench_metrics.py --n 1000 --json bench_metrics.json
    python benchmarks/bench_metrics.py --n 1000 --torch-threads 0   # torch's default threads
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 540, 800  # HC18's frame size


def _wobbly_ellipse(rows: np.ndarray, cols: np.ndarray, cx: float, cy: float, a: float, b: float, angle: float,
                    harmonics: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Pixels inside an ellipse whose normalised radius is modulated by 1 + sum_k h_k cos(k t + p_k)."""
    dx, dy = cols - cx, rows - cy
    cos, sin = math.cos(angle), math.sin(angle)
    u = (dx * cos + dy * sin) / a
    v = (-dx * sin + dy * cos) / b
    theta = np.arctan2(v, u)
    limit = 1.0 + sum(h * np.cos((k + 2) * theta + p) for k, (h, p) in enumerate(zip(harmonics, phases)))
    return u * u + v * v <= limit * limit


def make_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """n (prediction, reference, pixel size mm) triples of HC18-size boolean masks."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    pairs = []
    no_wobble = np.zeros(1)
    for _ in range(n):
        pixel_size = rng.uniform(0.052, 0.25)  # HC18's range of pixel sizes (mm)
        a = rng.uniform(90, 330)  # semi-major axis in pixels
        b = a * rng.uniform(0.7, 0.92)
        # Mostly inside the frame; about one head in ten runs off an edge.
        cx = rng.uniform(0.3, 0.7) * WIDTH if rng.random() > 0.1 else rng.uniform(0.05, 0.95) * WIDTH
        cy = rng.uniform(0.35, 0.65) * HEIGHT
        angle = rng.uniform(-math.pi / 2, math.pi / 2)
        truth = _wobbly_ellipse(rows, cols, cx, cy, a, b, angle, no_wobble, no_wobble)
        scale = rng.normal(1.0, 0.03)
        pred = _wobbly_ellipse(rows, cols, cx + rng.normal(0, 4), cy + rng.normal(0, 4), a * scale,
                               b * scale * rng.normal(1.0, 0.02), angle + rng.normal(0, 0.05),
                               harmonics=rng.normal(0, 0.01, 4), phases=rng.uniform(0, 2 * math.pi, 4))
        if rng.random() < 0.3:  # a false-positive blob elsewhere
            pred |= _wobbly_ellipse(rows, cols, rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(5, 30),
                                    rng.uniform(5, 20), rng.uniform(-1.5, 1.5), no_wobble, no_wobble)
        if rng.random() < 0.1:  # a hole
            pred &= ~_wobbly_ellipse(rows, cols, cx + rng.normal(0, a / 4), cy + rng.normal(0, b / 4),
                                     rng.uniform(5, 25), rng.uniform(5, 25), 0.0, no_wobble, no_wobble)
        pairs.append((pred, truth, float(pixel_size)))
    return pairs


def _time_ours(pairs):
    from fetal_bench.metrics import dice, hd95_mm

    dice_values, hd_values = np.empty(len(pairs)), np.empty(len(pairs))
    for pred, truth, px in pairs[:5]:  # warm-up: imports, caches
        dice(pred, truth), hd95_mm(pred, truth, px)
    t0 = time.perf_counter()
    for i, (pred, truth, _) in enumerate(pairs):
        dice_values[i] = dice(pred, truth)
    t1 = time.perf_counter()
    for i, (pred, truth, px) in enumerate(pairs):
        hd_values[i] = hd95_mm(pred, truth, px)
    t2 = time.perf_counter()
    return dice_values, hd_values, t1 - t0, t2 - t1


def _time_monai(pairs):
    import torch
    from monai.metrics import DiceMetric, compute_hausdorff_distance

    tensors = [(torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None], px) for p, t, px in pairs]
    dice_metric = DiceMetric(include_background=True, reduction="none")
    dice_values, hd_values = np.empty(len(pairs)), np.empty(len(pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notices, once per call
        for p, t, px in tensors[:5]:
            dice_metric(p, t), compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=px)
        t0 = time.perf_counter()
        for i, (p, t, _) in enumerate(tensors):
            dice_values[i] = float(dice_metric(p, t)[0, 0])
        t1 = time.perf_counter()
        for i, (p, t, px) in enumerate(tensors):
            hd_values[i] = float(compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=px)[0, 0])
        t2 = time.perf_counter()
        # MONAI's Dice is built for batches (on GPU): also time it on stacked batches of 32.
        t3 = time.perf_counter()
        for start in range(0, len(tensors), 32):
            chunk = tensors[start:start + 32]
            dice_metric(torch.cat([p for p, _, _ in chunk]), torch.cat([t for _, t, _ in chunk]))
        t4 = time.perf_counter()
    return dice_values, hd_values, t1 - t0, t2 - t1, t4 - t3


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
           # Other jobs on the machine slow multi-threaded torch more than single-threaded numpy.
           "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    for name in ("numpy", "scipy", "torch", "monai", "fetal-bench"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of mask pairs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated masks")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for MONAI (default 1, like fetal-bench's single-threaded "
                             "numpy/scipy; 0 keeps torch's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")

    if args.torch_threads > 0:
        try:
            import torch

            torch.set_num_threads(args.torch_threads)
        except ImportError:
            pass
    t0 = time.perf_counter()
    pairs = make_pairs(args.n, args.seed)
    pixel_sizes = np.array([px for _, _, px in pairs])
    print(f"{args.n} pairs of {HEIGHT}x{WIDTH} masks generated in {time.perf_counter() - t0:.1f} s")

    ours_dice, ours_hd, ours_dice_s, ours_hd_s = _time_ours(pairs)
    result: dict = {
        "n": args.n, "seed": args.seed, "shape": [HEIGHT, WIDTH], "torch_threads_arg": args.torch_threads,
        "environment": _versions(),
        "fetal_bench": {"dice_s": ours_dice_s, "hd95_s": ours_hd_s, "total_s": ours_dice_s + ours_hd_s,
                        "mean_dice": float(ours_dice.mean()), "mean_hd95_mm": float(ours_hd.mean())},
    }
    try:
        import monai  # noqa: F401
    except ImportError:
        monai_available = False
        print("MONAI is not installed (pip install monai): timing fetal-bench only.")
    else:
        monai_available = True
    if monai_available:
        monai_dice, monai_hd, monai_dice_s, monai_hd_s, monai_dice_batched_s = _time_monai(pairs)
        hd_diff_mm = np.abs(ours_hd - monai_hd)
        result["monai"] = {"dice_s": monai_dice_s, "hd95_s": monai_hd_s, "total_s": monai_dice_s + monai_hd_s,
                           "dice_batched32_s": monai_dice_batched_s}
        result["ratio_monai_over_fetal_bench"] = {
            "dice": monai_dice_s / ours_dice_s, "hd95": monai_hd_s / ours_hd_s,
            "total": (monai_dice_s + monai_hd_s) / (ours_dice_s + ours_hd_s),
        }
        result["max_abs_diff"] = {
            "dice": float(np.max(np.abs(ours_dice - monai_dice))),
            "hd95_mm": float(hd_diff_mm.max()),
            "hd95_px": float(np.max(hd_diff_mm / pixel_sizes)),
        }

    threads = result["environment"].get("torch_threads")
    print(f"\nwall time over {args.n} images, one image per call; MONAI with {threads} torch thread(s); "
          f"1-min load average {result['environment']['load_average_1min']:.1f} on {os.cpu_count()} CPUs")
    print(f"{'metric':<8} {'fetal-bench s':>14} {'MONAI s':>9} {'MONAI/ours':>11} {'max |diff|':>26}")
    rows = [("dice", ours_dice_s, "dice"), ("hd95", ours_hd_s, "hd95"), ("total", ours_dice_s + ours_hd_s, "total")]
    for label, ours_s, key in rows:
        if monai_available:
            monai_s = result["monai"][f"{key}_s"]
            ratio = result["ratio_monai_over_fetal_bench"][key]
            diff = {"dice": f"{result['max_abs_diff']['dice']:.2e}",
                    "hd95": f"{result['max_abs_diff']['hd95_mm']:.2e} mm ({result['max_abs_diff']['hd95_px']:.2e} px)",
                    "total": ""}[key]
            print(f"{label:<8} {ours_s:>14.3f} {monai_s:>9.3f} {ratio:>11.2f} {diff:>26}")
        else:
            print(f"{label:<8} {ours_s:>14.3f} {'-':>9} {'-':>11} {'-':>26}")
    if monai_available:
        print(f"(MONAI Dice on batches of 32: {result['monai']['dice_batched32_s']:.3f} s, "
              f"{result['monai']['dice_batched32_s'] / ours_dice_s:.1f}x fetal-bench's per-image loop)")
    print(f"\nper image: fetal-bench {1e3 * (ours_dice_s + ours_hd_s) / args.n:.2f} ms"
          + (f", MONAI {1e3 * result['monai']['total_s'] / args.n:.2f} ms" if monai_available else "")
          + f"; mean Dice {ours_dice.mean():.4f}, mean HD95 {ours_hd.mean():.3f} mm")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
