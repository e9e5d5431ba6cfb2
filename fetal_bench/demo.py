"""The end-to-end demo on the embedded phantom set (what `fetal-bench demo` runs).

It must run anywhere, offline, in a few minutes on a laptop CPU. Every part of the project adds
its step here as it lands, so the demo always shows the whole pipeline.

Deterministic: the baselines train for a fixed number of epochs (never a wall-clock budget), on
the CPU, seeded, so two runs print the same scores. A rerun into the same ``--out`` reuses the
finished training runs there (same settings, so the same weights) and rebuilds everything else;
``--overwrite`` deletes the demo's outputs first and redoes everything.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError

_MARKER = ".fetal-bench-demo"

# (model, task, model options, input HEIGHT x WIDTH, epochs, other training options). A fixed
# number of epochs, not a time budget: the same steps on every machine, so the same weights and
# scores. ``pretrained=False``: the demo runs offline, so no ImageNet download is attempted. The
# sizes keep each training to a few hundred image passes: ResNet-18 reaches about 0.9 validation
# accuracy by epoch 5-6 at 64x64; the small U-Net needs lr 1e-2 to leave the all-background mask
# within its 72 steps.
DEMO_BASELINES = (
    ("resnet18", "phantom-planes", {"pretrained": False}, (64, 64), 6, {}),
    ("unet", "phantom-head-seg", {"base_channels": 8, "depth": 3}, (64, 96), 6, {"lr": 1e-2}),
)
# What the demo writes inside --out; --overwrite deletes exactly these (and nothing else there).
_OUTPUTS = ("data", "runs", "results", "generators", "leaderboard", "demo-summary.json")


def _prepare(out_dir: Path, overwrite: bool, log: Callable[[str], None]) -> None:
    """Refuse a non-empty directory that an earlier demo did not make; say what a rerun does."""
    ours = (out_dir / _MARKER).exists()
    if out_dir.exists() and any(out_dir.iterdir()) and not ours and not overwrite:
        raise FetalBenchError(
            f"{out_dir} exists and was not made by `fetal-bench demo`.",
            "Pass another --out, or --overwrite to write into it anyway.",
        )
    if overwrite:
        for name in _OUTPUTS:  # only the demo's own outputs: --out may hold other files
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    elif ours:
        from rich.markup import escape  # log prints rich markup; the folder is the user's text

        log(f"Rerun in {escape(str(out_dir))}: finished training runs there are reused (same settings, same weights and "
            "scores); everything else is rebuilt. --overwrite starts from scratch.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("outputs of `fetal-bench demo`; safe to delete\n")


def run_demo(out_dir: str | Path, *, overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Run the demo; returns {what: where} for every output written."""
    from fetal_bench.data.builders import build_dataset
    from fetal_bench.data.loading import make_dataloader, open_dataset
    from fetal_bench.data.report import dataset_report
    from fetal_bench.generators.tiny_split import SYNTHETIC_SPLIT, run_generators_demo
    from fetal_bench.leaderboard import build_site

    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite, log)
    demo_start = time.perf_counter()
    outputs: dict[str, str] = {}

    log("[bold]1. Build the phantom datasets[/] (simulated ultrasound-like images, not clinical data)")
    start = time.perf_counter()
    phantom_dir = out_dir / "data" / "phantom"
    result = build_dataset("phantom", phantom_dir, overwrite=True)
    sizes = {config: {split: s.num_examples for split, s in splits.items()} for config, splits in result.configs.items()}
    log(f"   built {sizes} in {time.perf_counter() - start:.1f} s")
    outputs["phantom dataset (load_dataset(DIR, 'planes' | 'head'))"] = str(phantom_dir)

    log("[bold]2. Check it[/]: counts, duplicates, subject overlap between splits")
    reports = dataset_report(phantom_dir)
    report_path = out_dir / "data" / "phantom-report.json"
    write_json_atomic(report_path, {name: report.to_dict() for name, report in reports.items()})
    for name, report in reports.items():
        log(f"   {name}: rows {report.rows}; subjects shared between splits: {len(report.subject_overlap)}")
    outputs["dataset report"] = str(report_path)

    log("[bold]3. Stream it through the training loader[/]")
    for config, targets in (("planes", {"label_column": "label"}), ("head", {"mask_column": "mask"})):
        dataset = open_dataset(phantom_dir, config=config, split="train")
        loader = make_dataloader(dataset, image_size=(128, 128), batch_size=32, shuffle=True, seed=0, **targets)
        start = time.perf_counter()
        n = 0
        for batch in loader:
            n += batch["pixel_values"].shape[0]
        elapsed = time.perf_counter() - start
        log(f"   {config}: {n} images in {elapsed:.2f} s ({n / max(elapsed, 1e-9):.0f} images/s), "
            f"batch tensor {tuple(batch['pixel_values'].shape)}")
    results_dir = out_dir / "results"
    log("[bold]4. Train two baselines[/] (a fixed number of epochs: the same scores on every run) "
        "[bold]and score them[/]")
    scores = train_and_score(phantom_dir, out_dir / "runs", results_dir, log=log)
    for model, task, *_rest in DEMO_BASELINES:
        outputs[f"{model} checkpoint (fetal-bench evaluate --model {model} --checkpoint DIR)"] = str(
            out_dir / "runs" / f"{model}-{task}")
    outputs["result files"] = str(results_dir)

    log("[bold]5. Generate a synthetic split[/] with a tiny FU-LoRA and score its quality")
    generated = run_generators_demo(phantom_dir, out_dir / "generators", log=log)
    outputs.update(generated)
    _warn_untrained_features(generated, log)

    log("[bold]6. Build the leaderboard site[/] from the result files")
    site = build_site(results_dir, out_dir / "leaderboard", data={"phantom": phantom_dir},
                      synthetic_dirs=[generated[SYNTHETIC_SPLIT]])
    ranked = sum(1 for _, verdict in site.verdicts if verdict == "ranked")
    log(f"   {site.n_valid} result file(s) on {len(site.tasks)} task page(s); {ranked} verified from their "
        "predictions and ranked")
    outputs["leaderboard (open in a browser)"] = str(site.index)

    summary_path = out_dir / "demo-summary.json"
    write_json_atomic(summary_path, {"outputs": outputs, "phantom_fingerprint": result.fingerprint,
                                     "scores": scores})
    outputs["demo summary"] = str(summary_path)
    log(f"Done in {time.perf_counter() - demo_start:.0f} s. Run it again with the same --out to reuse the "
        "finished training runs (the same scores); --overwrite starts from scratch.")
    return outputs


def train_and_score(phantom_dir: Path, runs_dir: Path, results_dir: Path, *,
                    log: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Step 4: train each of :data:`DEMO_BASELINES` for its fixed epochs and score it.

    A finished run already in ``runs_dir`` with the same settings is reused as it is (the loop
    sees it is done); ``results_dir`` is rebuilt, so it holds exactly this run's result files.
    Returns {task: {main score: value}}.
    """
    from fetal_bench.evaluation import evaluate
    from fetal_bench.tasks import get_task
    from fetal_bench.training import train

    if results_dir.is_dir():
        shutil.rmtree(results_dir)  # the demo's own: rebuilt from the runs below
    scores: dict[str, dict[str, float]] = {}
    for model, task, model_cfg, image_size, epochs, options in DEMO_BASELINES:
        run_dir = runs_dir / f"{model}-{task}"
        start = time.perf_counter()
        messages: list[str] = []
        trained = train(model=model, task=task, data=str(phantom_dir), output=str(run_dir), model_cfg=model_cfg,
                        image_size=image_size, epochs=epochs, patience=0, progress=True, mixed_precision="no",
                        run_name=f"demo-{model}", log=messages.append, **options)
        reused = any("holds a finished run" in message for message in messages)
        # The predictions are saved so the leaderboard can score them again (it ranks only what it verified).
        predictions = results_dir / "predictions" / f"demo-{model}{get_task(task).kind.predictions_suffix}"
        predictions.parent.mkdir(parents=True, exist_ok=True)
        result_file = evaluate(task, model=model, checkpoint=trained.output, data=phantom_dir, output=results_dir,
                               name=f"demo-{model}", n_resamples=200, save_predictions=predictions,
                               description=f"fetal-bench demo: {model}, {trained.steps} steps ({epochs} epochs) on CPU")
        main = result_file["scores"]["main_score"]
        value = result_file["scores"][main]
        scores[task] = {main: value["value"]}
        how = "reused from an earlier run" if reused else f"trained in {time.perf_counter() - start:.0f} s"
        log(f"   {model} on {task}: {main} {value['value']:.3f} [{value['ci95'][0]:.3f}, {value['ci95'][1]:.3f}] "
            f"after {trained.steps} steps ({how})")
    return scores


def _warn_untrained_features(generated: dict[str, str], log: Callable[[str], None]) -> None:
    """Repeat the score's loud warning when its features come from no trained network."""
    path = next((Path(where) for what, where in generated.items() if what == "synthetic-quality result"), None)
    if path is None or not path.is_file():
        return
    quality = json.loads(path.read_text(encoding="utf-8"))
    if quality.get("feature_extractor", {}).get("trained") is False:
        log("   [bold yellow]Warning:[/] these FID/KID values use a random, untrained feature network: they "
            "compare pixel statistics, not image quality (see docs/generators.md)")


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_demo("fetal-bench-demo"), indent=2))
