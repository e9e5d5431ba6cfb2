"""Metric speed and agreement: fetal-bench's Dice, HD95 and ASSD against MONAI's, HC18-size masks.

``--n`` pairs of 540x800 masks are generated (seeded): the reference is an HC18-like head
ellipse (semi-axes, eccentricity, rotation and pixel size in HC18's ranges, sometimes running
off the frame); the prediction perturbs it the way a segmentation network errs: a shifted,
rescaled, rotated ellipse with a wobbly outline (low-order Fourier terms on the radius), and in
some images a spurious blob or a hole.

Every case scores all pairs one image per call, as the evaluation harness does:

* ``dice``: ``fetal_bench.metrics.dice`` vs MONAI's ``DiceMetric(include_background=True)``
  (MONAI's Dice is also timed on stacked batches of 32, the way it is meant to be used);
* ``surface``: ``fetal_bench.metrics.hd95_and_assd_mm`` (both scores from one pass, what the
  harness needs per image) vs MONAI's two calls ``compute_hausdorff_distance(percentile=95)``
  and ``compute_average_surface_distance(symmetric=True)``, both with ``include_background=True,
  spacing=pixel size``; fetal-bench's separate ``hd95_mm`` + ``assd_mm`` are timed as well;
* ``total``: dice + surface.

MONAI gets (1, 1, H, W) tensors made beforehand with ``torch.from_numpy`` (zero-copy,
untimed) and one torch thread by default (``--torch-threads``), the single core fetal-bench's
numpy/numba code uses. Timing is ``benchmarks/_common.py``'s: load average before and after,
cases interleaved round by round in one process, a discarded warm-up round, the median of
``--repeats`` rounds with min and max. Reported: the ratios MONAI / fetal-bench of the medians
and the largest absolute per-image differences (Dice; HD95 and ASSD in mm and in pixels). The
run fails (exit 1) when an HD95 or ASSD differs by more than 1e-3 mm: speed does not count
without the same numbers. MONAI is a benchmark-only tool (``pip install monai``); without it
only fetal-bench is timed.

The default (200 pairs, 5 rounds) takes about a minute on two quiet cores:

    python benchmarks/bench_metrics.py --wait-quiet 600 --json bench_metrics.json
    python benchmarks/bench_metrics.py --n 1000 --repeats 3 --torch-threads 0   # torch's default threads
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_common_arguments,
    check_machine,
    finish_machine,
    format_stats,
    ratio,
    summarise,
    time_interleaved,
    write_json,
)

#: Largest HD95/ASSD difference from MONAI accepted, in mm. MONAI interpolates the 95th
#: percentile in float32 (``torch.quantile``), which moves it where it falls between two distances
#: far apart: 8.1e-4 mm on one of the default pairs, where ``torch.quantile`` of our distances in
#: float32 gives MONAI's value and in float64 ours, exactly. Anything larger is a disagreement.
TOLERANCE_MM = 1e-3

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


def _fetal_bench_cases(pairs, out: dict) -> dict:
    """Timed callables for fetal-bench; each leaves its per-image values in ``out``."""
    from fetal_bench.metrics import assd_mm, dice, hd95_and_assd_mm, hd95_mm

    def run_dice():
        out["dice"] = np.array([dice(pred, truth) for pred, truth, _ in pairs])

    def run_surface():
        out["surface"] = np.array([hd95_and_assd_mm(pred, truth, px) for pred, truth, px in pairs])

    def run_two_calls():
        out["two_calls"] = np.array([(hd95_mm(pred, truth, px), assd_mm(pred, truth, px)) for pred, truth, px in pairs])

    return {"fetal-bench dice": run_dice, "fetal-bench hd95+assd (one call)": run_surface,
            "fetal-bench hd95_mm + assd_mm": run_two_calls}


def _monai_cases(pairs, out: dict) -> dict:
    import torch
    from monai.metrics import DiceMetric, compute_average_surface_distance, compute_hausdorff_distance

    tensors = [(torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None], px)
               for pred, truth, px in pairs]
    dice_metric = DiceMetric(include_background=True, reduction="none")

    def run_dice():
        out["dice"] = np.array([float(dice_metric(p, t)[0, 0]) for p, t, _ in tensors])

    def run_dice_batched():
        for start in range(0, len(tensors), 32):
            chunk = tensors[start:start + 32]
            dice_metric(torch.cat([p for p, _, _ in chunk]), torch.cat([t for _, t, _ in chunk]))

    def run_surface():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's deprecation notices, once per call
            out["surface"] = np.array([
                (float(compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=px)[0, 0]),
                 float(compute_average_surface_distance(p, t, include_background=True, symmetric=True,
                                                        spacing=px)[0, 0]))
                for p, t, px in tensors])

    return {"MONAI dice": run_dice, "MONAI dice (batches of 32)": run_dice_batched,
            "MONAI hd95 + assd": run_surface}


def _with_cpu_time(cases: dict) -> tuple[dict, dict]:
    """The cases, each also recording its process CPU time per round (warm-up included).

    On a busy machine wall time also measures the other jobs; CPU time much less so, which
    makes it a useful second reading (the wall-time medians remain the figures to quote).
    """
    cpu: dict[str, list[float]] = {name: [] for name in cases}

    def timed(name, run):
        def call():
            start = time.process_time()
            run()
            cpu[name].append(time.process_time() - start)
        return call

    return {name: timed(name, run) for name, run in cases.items()}, cpu


def _agreement(ours: dict, monai: dict, pixel_sizes: np.ndarray) -> dict:
    """Largest per-image differences, fetal-bench vs MONAI, and between our two surface paths."""
    surface = np.abs(ours["surface"] - monai["surface"])
    return {
        "dice": float(np.max(np.abs(ours["dice"] - monai["dice"]))),
        "hd95_mm": float(surface[:, 0].max()), "hd95_px": float((surface[:, 0] / pixel_sizes).max()),
        "assd_mm": float(surface[:, 1].max()), "assd_px": float((surface[:, 1] / pixel_sizes).max()),
        "one_call_vs_two_calls_mm": float(np.max(np.abs(ours["surface"] - ours["two_calls"]))),
    }


def _ratios(stats: dict) -> dict:
    surface_ours = stats["fetal-bench hd95+assd (one call)"]["median"]
    total_ours = stats["fetal-bench dice"]["median"] + surface_ours
    total_monai = stats["MONAI dice"]["median"] + stats["MONAI hd95 + assd"]["median"]
    return {
        "dice": ratio(stats, "MONAI dice", "fetal-bench dice"),
        "surface": ratio(stats, "MONAI hd95 + assd", "fetal-bench hd95+assd (one call)"),
        "surface_two_calls": ratio(stats, "MONAI hd95 + assd", "fetal-bench hd95_mm + assd_mm"),
        "total": round(total_monai / total_ours, 3),
    }


def _print_report(report: dict, n: int) -> None:
    print(f"\nseconds for {n} images, one image per call (median [min-max] of {report['repeats']} rounds):")
    for name, stats in report["seconds"].items():
        print(format_stats(name, stats, width=34) + f"   {1e3 * stats['median'] / n:7.3f} ms/image")
    if "ratio_monai_over_fetal_bench" in report:
        r, d = report["ratio_monai_over_fetal_bench"], report["max_abs_diff"]
        print(f"\nMONAI / fetal-bench: dice {r['dice']:.1f}x, hd95+assd {r['surface']:.1f}x "
              f"(our two separate calls: {r['surface_two_calls']:.1f}x), total {r['total']:.1f}x")
        c = report["cpu_ratio_monai_over_fetal_bench"]
        print(f"  the same in process CPU time: dice {c['dice']:.1f}x, hd95+assd {c['surface']:.1f}x "
              f"(two calls: {c['surface_two_calls']:.1f}x), total {c['total']:.1f}x")
        print(f"largest per-image |difference|: dice {d['dice']:.1e}; hd95 {d['hd95_mm']:.1e} mm "
              f"({d['hd95_px']:.1e} px); assd {d['assd_mm']:.1e} mm ({d['assd_px']:.1e} px); "
              f"our one call vs two calls {d['one_call_vs_two_calls_mm']:.1e} mm")
    means = report["means"]
    print(f"mean Dice {means['dice']:.4f}, mean HD95 {means['hd95_mm']:.3f} mm, mean ASSD {means['assd_mm']:.3f} mm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of mask pairs (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated masks")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for MONAI (default 1, like fetal-bench's single-threaded "
                             "numpy/numba; 0 keeps torch's default)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        import monai  # noqa: F401
        import torch
    except ImportError:
        torch = None
        print("MONAI is not installed (pip install monai): timing fetal-bench only.", file=sys.stderr)
    if torch is not None and args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)

    start = time.perf_counter()
    pairs = make_pairs(args.n, args.seed)
    pixel_sizes = np.array([px for _, _, px in pairs])
    print(f"{args.n} pairs of {HEIGHT}x{WIDTH} masks generated in {time.perf_counter() - start:.1f} s", file=sys.stderr)

    ours, theirs = {}, {}
    cases = _fetal_bench_cases(pairs, ours)
    if torch is not None:
        cases.update(_monai_cases(pairs, theirs))
    cases, cpu = _with_cpu_time(cases)
    machine = check_machine(args)
    stats = time_interleaved(cases, repeats=args.repeats)
    cpu_stats = {name: summarise(runs[1:]) for name, runs in cpu.items()}  # without the warm-up round
    report = {"n": args.n, "seed": args.seed, "shape": [HEIGHT, WIDTH], "repeats": args.repeats,
              "torch_threads": None if torch is None else torch.get_num_threads(), "seconds": stats,
              "cpu_seconds": cpu_stats,
              "means": {"dice": float(ours["dice"].mean()), "hd95_mm": float(ours["surface"][:, 0].mean()),
                        "assd_mm": float(ours["surface"][:, 1].mean())}}
    if torch is not None:
        report["ratio_monai_over_fetal_bench"] = _ratios(stats)
        report["cpu_ratio_monai_over_fetal_bench"] = _ratios(cpu_stats)
        report["max_abs_diff"] = _agreement(ours, theirs, pixel_sizes)
        report["tolerance_mm"] = TOLERANCE_MM
    report.update(finish_machine(machine))
    _print_report(report, args.n)
    write_json(args.json_path, report)
    differences = report.get("max_abs_diff", {})
    worst = max(differences.get("hd95_mm", 0.0), differences.get("assd_mm", 0.0),
                differences.get("one_call_vs_two_calls_mm", 0.0))
    if worst > TOLERANCE_MM or not math.isfinite(worst):
        print(f"FAILED: surface distances differ by {worst:.2e} mm > {TOLERANCE_MM} mm", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
