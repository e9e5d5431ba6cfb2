"""The end-to-end demo on the embedded phantom set (what `fetal-bench demo` runs).

It must run anywhere, offline, in a couple of minutes on a laptop CPU. Every part of the
project adds its step here as it lands, so the demo always shows the whole pipeline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from fetal_bench._io import write_json_atomic
from fetal_bench.errors import FetalBenchError

_MARKER = ".fetal-bench-demo"

# (model, task, model options, input HEIGHT x WIDTH, epochs): each trains in well under a minute on
# two CPU cores (a 90 s cap guards slower machines). ``pretrained=False``: the demo runs offline,
# so no ImageNet download is attempted.
DEMO_BASELINES = (
    ("resnet18", "phantom-planes", {"pretrained": False}, (64, 64), 10),
    ("unet", "phantom-head-seg", {"base_channels": 8, "depth": 4}, (96, 128), 12),
)


def _prepare(out_dir: Path, overwrite: bool) -> None:
    """Refuse to write into a non-empty directory that an earlier demo did not make."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / _MARKER).exists() and not overwrite:
        raise FetalBenchError(
            f"{out_dir} exists and was not made by `fetal-bench demo`.",
            "Pass another --out, or --overwrite to write into it anyway.",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / _MARKER).write_text("outputs of `fetal-bench demo`; safe to delete\n")


def run_demo(out_dir: str | Path, *, overwrite: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Run the demo; returns {what: where} for every output written."""
    from fetal_bench.data.builders import build_dataset
    from fetal_bench.data.loading import make_dataloader, open_dataset
    from fetal_bench.data.report import dataset_report
    from fetal_bench.evaluation import evaluate
    from fetal_bench.generators.demo import SYNTHETIC_SPLIT, run_generators_demo
    from fetal_bench.leaderboard import build_site
    from fetal_bench.training import train

    out_dir = Path(out_dir)
    _prepare(out_dir, overwrite)
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
    for config, task in (("planes", "classification"), ("head", "segmentation")):
        dataset = open_dataset(phantom_dir, config=config, split="train")
        loader = make_dataloader(dataset, task=task, image_size=(128, 128), batch_size=32, shuffle=True, seed=0)
        start = time.perf_counter()
        n = 0
        for batch in loader:
            n += batch["pixel_values"].shape[0]
        elapsed = time.perf_counter() - start
        log(f"   {config}: {n} images in {elapsed:.2f} s ({n / max(elapsed, 1e-9):.0f} images/s), "
            f"batch tensor {tuple(batch['pixel_values'].shape)}")
    results_dir = out_dir / "results"
    scores: dict[str, dict[str, float]] = {}
    log("[bold]4. Train two baselines[/] (under a minute each on CPU) [bold]and score them[/]")
    for model, task, model_cfg, image_size, epochs in DEMO_BASELINES:
        run_dir = out_dir / "runs" / f"{model}-{task}"
        start = time.perf_counter()
        trained = train(model=model, task=task, data=str(phantom_dir), output=str(run_dir), model_cfg=model_cfg,
                        image_size=image_size, epochs=epochs, max_minutes=1.5, patience=0, progress=False,
                        overwrite=True, run_name=f"demo-{model}", log=lambda _message: None)
        result_file = evaluate(task, model=model, checkpoint=trained.output, data=phantom_dir, output=results_dir,
                               name=f"demo-{model}", description=f"fetal-bench demo: {model}, {trained.steps} steps on CPU",
                               n_resamples=200)
        main = result_file["scores"]["main_score"]
        value = result_file["scores"][main]
        scores[task] = {main: value["value"]}
        log(f"   {model} on {task}: {trained.steps} steps in {time.perf_counter() - start:.0f} s; "
            f"{main} {value['value']:.3f} [{value['ci95'][0]:.3f}, {value['ci95'][1]:.3f}]")
        outputs[f"{model} checkpoint (fetal-bench evaluate --model {model} --checkpoint DIR)"] = str(run_dir)
    outputs["result files"] = str(results_dir)

    log("[bold]5. Generate a synthetic split[/] with a tiny FU-LoRA and score its quality")
    generated = run_generators_demo(phantom_dir, out_dir / "generators", log=log)
    outputs.update(generated)

    log("[bold]6. Build the leaderboard site[/] from the result files")
    site = build_site(results_dir, out_dir / "leaderboard", synthetic_dirs=[generated[SYNTHETIC_SPLIT]])
    log(f"   {site.n_valid} result file(s) on {len(site.tasks)} task page(s)")
    outputs["leaderboard (open in a browser)"] = str(site.index)

    summary_path = out_dir / "demo-summary.json"
    write_json_atomic(summary_path, {"outputs": outputs, "phantom_fingerprint": result.fingerprint,
                                     "scores": scores})
    outputs["demo summary"] = str(summary_path)
    return outputs


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_demo("fetal-bench-demo"), indent=2))
