"""Harness overhead: `fetal-bench evaluate --model` against a bare PyTorch loop.

Both run the same model (restored from the same checkpoint), on the same evaluation split, with
the same batch size and preprocessing (``make_dataloader`` with the model's spec), on the same
device:

* **bare loop**: restore the model, iterate the loader under ``torch.inference_mode()``, run the
  forward pass and turn outputs into predictions (softmax for a classifier; for a segmenter the
  logits resized to each image's native size and argmaxed, which is what any score needs);
* **bare loop + per-image metrics**: the same, then the task's metrics per image with
  ``fetal_bench.metrics`` (Dice, IoU, HD95, ASSD, HC error; or accuracy/F1/AUC): what a user's own
  evaluation script would do, without intervals;
* **harness**: ``fetal_bench.evaluate(task, model=..., checkpoint=...)``: validation of the data,
  prediction, every metric, subject-level bootstrap intervals (``--n-resamples``), per-group
  scores, provenance (weights sha256, dataset fingerprint) and the atomic result write.

Reported: the median wall time of each over ``--repeats`` runs (after one warm-up) and the ratios
harness / bare loop and harness / (bare loop + metrics).

    python benchmarks/bench_harness.py                                   # phantom head, random U-Net
    python benchmarks/bench_harness.py --task hc18-head-seg --data /tmp/hc18 \\
        --model unet --checkpoint /tmp/runs/hc18-unet --json bench_harness.json
    python benchmarks/bench_harness.py --task phantom-planes --model resnet18
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _phantom(workdir: Path) -> Path:
    from fetal_bench.data.builders import build_dataset

    out = workdir / "phantom"
    build_dataset("phantom", out, overwrite=True)
    return out


def _random_checkpoint(model_name: str, task, workdir: Path) -> Path:
    """A randomly initialised checkpoint: timing does not depend on what the weights learned."""
    from fetal_bench.models import create_model, save_checkpoint

    cfg = {"labels": list(task.labels)} if task.type == "classification" else {}
    if task.type == "classification":
        cfg["pretrained"] = False
    model = create_model(model_name, **cfg)
    out = workdir / f"{model_name}-random"
    save_checkpoint(model, out)
    return out


def bare_loop(task, model_name, checkpoint, dataset, *, batch_size, device, with_metrics: bool):
    import torch
    import torch.nn.functional as F

    from fetal_bench import metrics as M
    from fetal_bench.data.loading import make_dataloader
    from fetal_bench.models import create_model

    model = create_model(model_name, checkpoint=checkpoint).eval().to(device)
    spec = model.spec
    kwargs = {"normalize": spec.normalize} if getattr(spec, "normalize", None) else {}
    segmentation = task.type == "segmentation"
    loader = make_dataloader(dataset, task=task.type, image_size=tuple(spec.image_size), batch_size=batch_size,
                             shuffle=False, channels=spec.channels,
                             label_column=None if segmentation else task.label_column,
                             mask_column=task.mask_column if segmentation else None, **kwargs)
    truth_masks = dataset[task.mask_column] if segmentation and with_metrics else None
    pixel = dataset["pixel_size_mm"] if segmentation and "pixel_size_mm" in dataset.column_names else None
    hc = dataset["head_circumference_mm"] if segmentation and with_metrics else None
    predictions, row = [], 0
    with torch.inference_mode():
        for batch in loader:
            logits = model(batch["pixel_values"].to(device)).float()
            if not segmentation:
                predictions.append(torch.softmax(logits, dim=1).cpu().numpy())
                continue
            for i in range(logits.shape[0]):
                height, width = batch["original_size"][i].tolist()
                full = F.interpolate(logits[i : i + 1], size=(int(height), int(width)), mode="bilinear",
                                     align_corners=False)[0]
                mask = (full.argmax(dim=0) > 0).cpu().numpy()
                if with_metrics:
                    truth = np.asarray(truth_masks[row]) > 0
                    predictions.append((M.dice(mask, truth), M.iou(mask, truth), M.hd95_mm(mask, truth, pixel[row]),
                                        M.assd_mm(mask, truth, pixel[row]), M.hc_abs_diff_mm(mask, hc[row], pixel[row])))
                else:
                    predictions.append(mask)
                row += 1
    if with_metrics and not segmentation:
        proba = np.concatenate(predictions)
        labels = np.asarray(dataset[task.label_column])
        k = proba.shape[1]
        return (M.accuracy(labels, proba.argmax(1)), M.macro_f1(labels, proba.argmax(1), k),
                M.auc_ovr_macro(labels, proba))
    return predictions


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="phantom-head-seg")
    parser.add_argument("--data", help="a local build of the task's dataset (default: the phantom set, built here)")
    parser.add_argument("--model", default="unet")
    parser.add_argument("--checkpoint", help="default: a randomly initialised one")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)

    import torch

    from fetal_bench import evaluate, get_task
    from fetal_bench.data.loading import open_dataset

    task = get_task(args.task)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        data = Path(args.data) if args.data else _phantom(workdir)
        checkpoint = Path(args.checkpoint) if args.checkpoint else _random_checkpoint(args.model, task, workdir)
        dataset = open_dataset(data, config=task.dataset.config, split=task.eval_split)

        def run_bare():
            bare_loop(task, args.model, checkpoint, dataset, batch_size=args.batch_size, device=device, with_metrics=False)

        def run_bare_metrics():
            bare_loop(task, args.model, checkpoint, dataset, batch_size=args.batch_size, device=device, with_metrics=True)

        def run_harness():
            evaluate(task.name, model=args.model, checkpoint=checkpoint, data=data, output=workdir / "results",
                     batch_size=args.batch_size, n_resamples=args.n_resamples, device=device)

        cases = {"bare loop": run_bare, "bare loop + metrics": run_bare_metrics, "harness": run_harness}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for repeat in range(args.repeats + 1):
            for name, run in cases.items():  # interleaved, so drifting machine load hits all alike
                start = time.perf_counter()
                run()
                if repeat:  # the first round warms caches and imports
                    times[name].append(time.perf_counter() - start)

    median = {name: statistics.median(values) for name, values in times.items()}
    report = {
        "task": task.name, "model": args.model, "checkpoint": str(args.checkpoint or "random"),
        "rows": len(dataset), "batch_size": args.batch_size, "n_resamples": args.n_resamples, "device": device,
        "seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "median_s": {name: round(v, 3) for name, v in median.items()},
        "ratio_harness_to_bare": round(median["harness"] / median["bare loop"], 3),
        "ratio_harness_to_bare_with_metrics": round(median["harness"] / median["bare loop + metrics"], 3),
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "machine": platform.machine()},
    }
    print(f"{task.name}, {args.model}, {len(dataset)} rows, batch {args.batch_size}, {device}:")
    for name, value in median.items():
        print(f"  {name:<22} {value:8.2f} s (median of {args.repeats})")
    print(f"  harness / bare loop             {report['ratio_harness_to_bare']:.2f}x")
    print(f"  harness / bare loop + metrics   {report['ratio_harness_to_bare_with_metrics']:.2f}x")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
