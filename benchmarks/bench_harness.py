"""Harness overhead: `fetal_bench.evaluate(task, model=..., checkpoint=...)` against a bare PyTorch loop.

All three cases run the same model (restored from the same checkpoint with ``create_model``), on
the same evaluation split, with the same batch size, the same loader (``make_dataloader`` with
the model's spec: images only, resized to the model's size, the same normalisation), the same
device and the same autocast (bfloat16/float16 on CUDA, none on a CPU):

* **bare loop**: open the split (``open_dataset``); restore the model; iterate the loader
  under ``torch.inference_mode()``; run the forward pass; turn the outputs into predictions
  (softmax for a classifier; for a segmenter each image's logits resized bilinearly to its
  native size and argmaxed, through the model's post-processing:
  ``fetal_bench.models.seg_postprocess.mask_from_logits``, as in the harness).
* **bare loop + metrics**: the same, plus what a user's own scoring script must do to get the
  numbers: decode the reference masks (or labels) at native resolution, then, for a segmenter,
  per image Dice, IoU, HD95 and ASSD (``hd95_and_assd_mm``: one boundary search for both) and
  the four head-circumference scores (``hc_scores``: one ellipse fit), then their means; for a
  classifier accuracy and macro-F1 over the task's labels. The benchmark checks that these means equal the
  harness's scores exactly, so the two sides provably compute the same per-image scores.
* **harness**: ``fetal_bench.evaluate``: all of the above, plus the content fingerprint of the
  split (from the fingerprint cache after the first run), subject-level bootstrap intervals
  (``--n-resamples``), per-group scores, provenance (sha256 of the weights), schema validation
  and the atomic result write.

Reported: the median (min-max) wall time of each case over ``--repeats`` interleaved rounds after
one warm-up round (``benchmarks/_common.py``), the ratios harness / bare loop + metrics (the
target: at most 1.05) and harness / bare loop, the median seconds of each phase per case, and
what the split's content fingerprint costs without its cache.

    python benchmarks/bench_harness.py                                   # phantom head, random U-Net
    python benchmarks/bench_harness.py --task hc18-head-seg --data runs/reproduce/hc18 \
        --checkpoint runs/reproduce/hc18-unet-160x240-18ep --repeats 5 --json bench_harness_hc18.json
    python benchmarks/bench_harness.py --task phantom-planes --model resnet18
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_common_arguments, check_machine, finish_machine, format_stats, ratio, time_interleaved, write_json,
)


def _phantom(workdir: Path) -> Path:
    from fetal_bench.data.builders import build_dataset

    out = workdir / "phantom"
    build_dataset("phantom", out, overwrite=True)
    return out


def _random_checkpoint(model_name: str, task, workdir: Path) -> Path:
    """A randomly initialised checkpoint: timing does not depend on what the weights learned."""
    from fetal_bench.models import create_model, save_checkpoint

    cfg = {"labels": list(task.labels), "pretrained": False} if task.type == "classification" else {}
    model = create_model(model_name, **cfg)
    out = workdir / f"{model_name}-random"
    save_checkpoint(model, out)
    return out


class _Laps:
    """Seconds per phase of one bare-loop run, named as the harness names its own."""

    def __init__(self):
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now


def _autocast(device):
    import torch

    if device.type == "cuda":  # as fetal_bench.tasks.inference does
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return contextlib.nullcontext()


def _predict(model, task, dataset, batch_size, device, laps):
    """Masks at native size (segmentation) or class probabilities (classification)."""
    import torch

    from fetal_bench.data.loading import make_dataloader
    from fetal_bench.models.seg_postprocess import mask_from_logits

    spec = model.spec
    loader = make_dataloader(dataset, image_size=tuple(spec.image_size), batch_size=batch_size, shuffle=False,
                             channels=spec.channels, normalize=spec.normalize, label_column=None, mask_column=None)
    postprocess = (getattr(model, "model_cfg", None) or {}).get("postprocess")
    outputs = []
    with torch.inference_mode(), _autocast(device):
        for batch in loader:
            logits = model(batch["pixel_values"].to(device, non_blocking=True)).float()
            if task.type == "classification":
                outputs.append(torch.softmax(logits, dim=1).cpu().numpy())
                continue
            for i in range(logits.shape[0]):
                height, width = batch["original_size"][i].tolist()
                outputs.append(mask_from_logits(logits[i], (int(height), int(width)), postprocess))
    laps.mark("predictions")
    return outputs


def _segmentation_means(task, dataset, masks, laps) -> dict[str, float]:
    """Per-image scores of every task metric, averaged (the harness's point estimates)."""
    from fetal_bench import metrics as M
    from fetal_bench.metrics.segmentation import hc_scores

    truth = [np.asarray(mask) > 0 for mask in dataset[task.mask_column]]
    pixel = dataset["pixel_size_mm"]
    hc_truth = dataset["head_circumference_mm"]  # both segmentation tasks have it
    laps.mark("truth")
    rows = []
    for pred, ref, spacing, hc in zip(masks, truth, pixel, hc_truth):
        surface = M.hd95_and_assd_mm(pred, ref, float(spacing))
        rows.append({"dice": M.dice(pred, ref), "iou": M.iou(pred, ref), "hd95_mm": surface.hd95_mm,
                     "assd_mm": surface.assd_mm, **hc_scores(pred, float(hc), float(spacing))})
    laps.mark("per_image_metrics")
    means = {metric: float(np.mean([row[metric] for row in rows])) for metric in task.metrics if metric in rows[0]}
    means["hc_abs_diff_mm_median"] = float(np.median([row["hc_abs_diff_mm"] for row in rows]))
    return means


def _classification_means(task, dataset, proba_chunks, laps, model_labels) -> dict[str, float]:
    """Accuracy and macro-F1 over the task's rows; an argmax on an extra class (e.g. "Other") is
    an error, as in the harness."""
    from fetal_bench import metrics as M
    from fetal_bench.tasks.classification import classification_truth

    truth = classification_truth(task, dataset)
    laps.mark("truth")
    columns = list(task.labels) + [label for label in task.allowed_extra_labels if label in model_labels]
    proba = np.concatenate(proba_chunks)[:, [list(model_labels).index(label) for label in columns]]
    predicted = proba.argmax(axis=1)
    position = {row_id: i for i, row_id in enumerate(dataset["id"])}
    pick = np.array([position[row_id] for row_id in truth.ids])
    k = len(task.labels)
    scores = {"accuracy": M.accuracy(truth.y_true, np.minimum(predicted[pick], k)),
              "macro_f1": M.macro_f1(truth.y_true, np.minimum(predicted[pick], k), k)}
    laps.mark("per_image_metrics")
    return scores


def bare_loop(task, model_name, checkpoint, data, *, batch_size, device, with_metrics: bool):
    """One bare run: (phase seconds, metric means or None)."""
    import torch

    from fetal_bench.data.opening import open_dataset
    from fetal_bench.models import create_model

    laps = _Laps()
    dataset = open_dataset(data, config=task.dataset.config, split=task.eval_split)
    laps.mark("data")
    model = create_model(model_name, checkpoint=checkpoint).eval().to(torch.device(device))
    laps.mark("model_load")
    outputs = _predict(model, task, dataset, batch_size, torch.device(device), laps)
    if not with_metrics:
        return laps.seconds, None
    if task.type == "segmentation":
        return laps.seconds, _segmentation_means(task, dataset, outputs, laps)
    return laps.seconds, _classification_means(task, dataset, outputs, laps, model.spec.labels)


def _check_same_scores(bare: dict[str, float], harness: dict) -> list[str]:
    """Metrics whose bare-loop mean differs from the harness's value (should be none)."""
    return [f"{metric}: bare {value!r} != harness {harness[metric]['value']!r}"
            for metric, value in bare.items()
            if metric in harness and harness[metric]["value"] is not None
            and not np.isclose(value, harness[metric]["value"], rtol=1e-12, atol=1e-12)]


def _median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    return {phase: round(statistics.median(run.get(phase, 0.0) for run in runs), 4) for phase in runs[0]}


def _uncached_fingerprint_s(dataset) -> float:
    from fetal_bench.data.fingerprint import split_fingerprint

    start = time.perf_counter()
    split_fingerprint(dataset)
    return round(time.perf_counter() - start, 4)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="phantom-head-seg")
    parser.add_argument("--data", help="a local build of the task's dataset (default: the phantom set, built here)")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--checkpoint", help="default: a randomly initialised one")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--device", default=None)
    # 2 timed rounds (+1 warm-up) of 3 cases keep the default run (phantom, U-Net, 2 CPU cores) within ~5 minutes
    add_common_arguments(parser, repeats=2)
    args = parser.parse_args(argv)

    import torch

    from fetal_bench import evaluate, get_task
    from fetal_bench.data.opening import open_dataset

    task = get_task(args.task)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    machine = check_machine(args)
    phases: dict[str, list[dict]] = {"bare loop": [], "bare loop + metrics": [], "harness": []}
    last: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = Path(args.data) if args.data else _phantom(workdir)
        checkpoint = Path(args.checkpoint) if args.checkpoint else _random_checkpoint(args.model, task, workdir)
        dataset = open_dataset(data, config=task.dataset.config, split=task.eval_split)

        def run_bare(with_metrics: bool, name: str):
            seconds, means = bare_loop(task, args.model, checkpoint, data, batch_size=args.batch_size,
                                       device=device, with_metrics=with_metrics)
            phases[name].append(seconds)
            last[name] = means

        def run_harness():
            result = evaluate(task.name, model=args.model, checkpoint=checkpoint, data=data, output=workdir / "results",
                              batch_size=args.batch_size, n_resamples=args.n_resamples, device=device)
            phases["harness"].append(result["_phases_s"])
            last["harness"] = result["scores"]

        cases = {"bare loop": lambda: run_bare(False, "bare loop"),
                 "bare loop + metrics": lambda: run_bare(True, "bare loop + metrics"),
                 "harness": run_harness}
        stats = time_interleaved(cases, repeats=args.repeats)
        fingerprint_s = _uncached_fingerprint_s(dataset)
        rows = len(dataset)

    mismatches = _check_same_scores(last["bare loop + metrics"], last["harness"])
    report = {
        "task": task.name, "model": args.model, "checkpoint": str(args.checkpoint or "random"), "rows": rows,
        "batch_size": args.batch_size, "n_resamples": args.n_resamples, "device": device, "repeats": args.repeats,
        "seconds": stats,
        "ratio_harness_to_bare_with_metrics": ratio(stats, "harness", "bare loop + metrics"),
        "ratio_harness_to_bare": ratio(stats, "harness", "bare loop"),
        # the warm-up round is left out, as in the timings
        "phases_median_s": {name: _median_phases(runs[1:]) for name, runs in phases.items()},
        # the warm-up evaluation: its "data" phase computed the fingerprint unless the cache held it
        "harness_first_run_phases_s": phases["harness"][0],
        "fingerprint_uncached_s": fingerprint_s,
        "same_scores": not mismatches, "score_mismatches": mismatches,
        **finish_machine(machine),
    }
    _print(report)
    write_json(args.json_path, report)
    return 0 if not mismatches else 1


def _print(report: dict) -> None:
    print(f"{report['task']}, {report['model']}, {report['rows']} rows, batch {report['batch_size']}, "
          f"{report['n_resamples']} resamples, {report['device']}:")
    for name, stats in report["seconds"].items():
        print(format_stats(name, stats))
    print(f"  harness / (bare loop + metrics)  {report['ratio_harness_to_bare_with_metrics']:.3f}x  (target <= 1.05)")
    print(f"  harness / bare loop              {report['ratio_harness_to_bare']:.3f}x")
    print("  phases (median s):")
    for name, phases in report["phases_median_s"].items():
        print(f"    {name:<22}" + "  ".join(f"{phase} {value:.3f}" for phase, value in phases.items()))
    print(f"  content fingerprint without its cache: {report['fingerprint_uncached_s']:.3f} s")
    if report["score_mismatches"]:
        print("  ERROR: the bare loop and the harness computed different scores:", *report["score_mismatches"],
              sep="\n    ")
    else:
        print("  the bare loop's means equal the harness's scores: both computed the same per-image scores")


if __name__ == "__main__":
    sys.exit(main())
