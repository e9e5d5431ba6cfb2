"""Training-step throughput of the baselines: optimisation steps/s and images/s.

Each case builds a model with ``fetal_bench.models.create_model`` (random weights: the speed
does not depend on them) and times the trainer's own step function
(``fetal_bench.training.loop.optimization_step``: forward under accelerate's autocast, the task
kind's loss (Dice+CE or cross-entropy), backward, gradient clipping, optimiser step) on in-memory
random batches of the
model's input size. Data loading is left out on purpose: ``benchmarks/bench_dataloader.py``
measures it; here only the model's cost is measured, which is what decides the hardware.

SAM is timed as the protocol trains it: encoders frozen (run under ``no_grad``), mask decoder
trained, box prompts from the masks. On a CPU use ``--sam-variant tiny`` (or expect tens of
seconds per ViT-B step); on a GPU the default ViT-B at 256x256 inputs (1024x1024 into the encoder)
is the paper's setting, with mixed precision (bf16 where supported).

    python benchmarks/bench_training.py                          # CPU defaults, a few minutes
    python benchmarks/bench_training.py --device cuda --cases resnet18 vit_b_16 sam --batch-size 32 --json gpu.json

Reported per case: the median step time over ``--steps`` timed steps after ``--warmup`` discarded
ones, steps/s, images/s, and (CUDA) peak memory.

**The ceiling report** (``--ceiling``; the default when no ``--cases`` is given) answers how much of
the machine the trainer uses, in one run:

* the machine's own limit: the GFLOP/s of a large square matrix product (``--gemm-size``, 2n^3
  FLOPs) in fp32 and in bf16 (on a CPU without bf16 units the bf16 figure shows it);
* two of our recipes' training steps, each in fp32 and under bf16 autocast: the HC18 U-Net recipe
  (160x240, 16 base channels, batch 8, AdamW 1e-3, clipping 1.0: ``leaderboard/reproduce.sh
  hc18-unet``) and the African ResNet-18 (gray 128x128, batch 32, AdamW 3e-4: the
  ``resnet18-africa-scratch`` step). FLOPs per step are counted once with
  ``torch.utils.flop_counter.FlopCounterMode`` (forward + backward; the optimiser's element-wise
  work is not counted), so achieved GFLOP/s = FLOPs / step time, and the fraction of the GEMM
  limit of the same precision follows;
* the trainer's step (``optimization_step`` under an ``accelerate.Accelerator``) against a bare
  PyTorch loop on the same model, batch and loss (``torch.autocast`` for bf16,
  ``clip_grad_norm_``, ``step``, ``zero_grad``): trainer / bare, the overhead the trainer adds.

Every side runs ``--step-repeat`` steps per timed call, interleaved round by round with the others
(``benchmarks/_common.py``), median of ``--repeats`` rounds after a warm-up round; each side has its
own copy of the model and optimiser, so no side inherits another's state.

    python benchmarks/bench_training.py --wait-quiet 600 --json benchmarks/results/bench_training.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import check_machine, finish_machine, ratio, time_interleaved, write_json  # noqa: E402

CLASSIFIERS = ("resnet18", "resnet50", "densenet121", "densenet169", "efficientnet_b0", "mobilenet_v2", "vit_b_16")


def _case(name: str, args) -> tuple[dict, dict]:
    """(create_model options, TrainConfig options) for one case."""
    if name == "sam":
        cfg = {"backend": args.sam_backend, "variant": args.sam_variant, "pretrained": False}
        return cfg, {"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0}
    if name == "unet":
        return {"image_size": tuple(args.unet_size)}, {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4}
    if name == "sononet16":  # its input size is the published network's (224x288); no weights are needed
        return {"labels": [f"c{i}" for i in range(5)]}, {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4}
    return ({"labels": [f"c{i}" for i in range(5)], "pretrained": False, "image_size": (args.image_size, args.image_size)},
            {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4})


def bench(name: str, args) -> dict:
    import torch

    from fetal_bench.models import create_model
    from fetal_bench.models import get_model_info
    from fetal_bench.tasks.kinds import kind_of
    from fetal_bench.training.config import TrainConfig
    from fetal_bench.training.loop import accelerator_for, make_optimizer, optimization_step

    model_cfg, train_cfg = _case(name, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model(name, **model_cfg)
    spec = model.spec
    config = TrainConfig(model=name, task="bench", output="unused", batch_size=args.batch_size, grad_clip=1.0,
                         mixed_precision=args.mixed_precision, **train_cfg)
    precision = args.mixed_precision
    if precision == "auto":
        precision = "no" if args.device == "cpu" else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    accelerator = accelerator_for(precision, cpu=args.device == "cpu")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(config, params)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    device = accelerator.device
    generator = torch.Generator().manual_seed(0)
    height, width = spec.image_size
    batch_size = args.sam_batch_size if name == "sam" else args.batch_size
    pixels = torch.randn(batch_size, spec.channels, height, width, generator=generator).to(device)
    batch = {"pixel_values": pixels}
    # Both targets: the objective takes the one it learns from.
    batch["labels"] = torch.randint(0, len(spec.labels), (batch_size,), generator=generator).to(device)
    masks = torch.zeros(batch_size, height, width, dtype=torch.int64)
    masks[:, height // 4: 3 * height // 4, width // 5: 4 * width // 5] = 1
    batch["masks"] = masks.to(device)
    info = get_model_info(name)
    task = SimpleNamespace(name="bench", positive_label=None)
    objective = kind_of(spec.task_type).objective(task, info, spec, box_jitter=config.box_jitter)
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimization_step(model, batch, objective, optimizer, accelerator, params, grad_clip=config.grad_clip,
                          seed=config.seed * 1_000_003 + step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    row = {"case": name if name != "sam" else f"sam-{args.sam_backend}-{args.sam_variant}",
           "input": f"{spec.channels}x{height}x{width}", "batch": batch_size, "precision": precision,
           "trainable_params_m": round(sum(p.numel() for p in params) / 1e6, 2),
           "step_s": round(median, 4), "steps_per_s": round(1 / median, 3), "images_per_s": round(batch_size / median, 2)}
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return row


#: Our recipes whose training steps the ceiling report times: (create_model options, batch, optimiser).
RECIPES = {
    "unet-hc18": ("unet", {"image_size": (160, 240), "base_channels": 16}, 8,
                  {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4}),
    "resnet18-africa": ("resnet18", {"labels": ["abdomen", "brain", "femur", "thorax"], "pretrained": False,
                                     "image_size": (128, 128)}, 32,
                        {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4}),
}
PRECISIONS = ("fp32", "bf16")


def gemm_gflops(size: int, dtype, *, repeats: int, device: str = "cpu") -> dict:
    """The machine's measured limit: GFLOP/s of an n x n x n matrix product (2 n^3 FLOPs)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)

    def product():
        torch.mm(a, b, out=out)
        if device == "cuda":
            torch.cuda.synchronize()

    seconds = time_interleaved({"gemm": product}, repeats=repeats, warmup=2)["gemm"]
    return {"size": size, "seconds": seconds["median"], "gflops": round(2 * size ** 3 / seconds["median"] / 1e9, 1)}


def _recipe_batch(spec, batch_size: int, device) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)
    height, width = spec.image_size
    batch = {"pixel_values": torch.randn(batch_size, spec.channels, height, width, generator=generator).to(device),
             "labels": torch.randint(0, len(spec.labels), (batch_size,), generator=generator).to(device)}
    masks = torch.zeros(batch_size, height, width, dtype=torch.int64)
    masks[:, height // 4: 3 * height // 4, width // 5: 4 * width // 5] = 1  # a head-sized blob
    batch["masks"] = masks.to(device)
    return batch


def _step_flops(model, batch: dict, objective) -> int:
    """FLOPs of one forward + backward (fp32), counted by PyTorch's own operator table."""
    from torch.utils.flop_counter import FlopCounterMode

    probe = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        objective.loss(probe(batch["pixel_values"]), batch).backward()
    return int(counter.get_total_flops())


def recipe_sides(name: str, precision: str, args) -> tuple[dict, dict]:
    """The timed sides of one recipe in one precision ({side: callable}) and what describes it."""
    import torch

    from fetal_bench.models import create_model, get_model_info
    from fetal_bench.tasks.kinds import kind_of
    from fetal_bench.training.config import TrainConfig
    from fetal_bench.training.loop import accelerator_for, make_optimizer, optimization_step

    model_name, model_cfg, batch_size, optimiser = RECIPES[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        template = create_model(model_name, **model_cfg)
    spec = template.spec
    config = TrainConfig(model=model_name, task="bench", output="unused", batch_size=batch_size, grad_clip=1.0,
                         **optimiser)
    objective = kind_of(spec.task_type).objective(SimpleNamespace(name="bench", positive_label=None),
                                                  get_model_info(model_name), spec, box_jitter=config.box_jitter)
    batch = _recipe_batch(spec, batch_size, torch.device(args.device))

    # The trainer: accelerate's Accelerator and the trainer's own step function.
    accelerator = accelerator_for("bf16" if precision == "bf16" else "no", cpu=args.device == "cpu")
    model = copy.deepcopy(template).train()
    params = [p for p in model.parameters() if p.requires_grad]
    model, optimizer = accelerator.prepare(model, make_optimizer(config, params))

    def trainer():
        for step in range(args.step_repeat):
            optimization_step(model, batch, objective, optimizer, accelerator, params, grad_clip=1.0, seed=step)

    # The bare loop: what a user writes by hand in plain PyTorch, with the same loss.
    bare_model = copy.deepcopy(template).to(args.device).train()
    bare_params = [p for p in bare_model.parameters() if p.requires_grad]
    bare_optimizer = make_optimizer(config, bare_params)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def bare():
        for _ in range(args.step_repeat):
            with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                logits = bare_model(batch["pixel_values"])
            loss = objective.loss(logits, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bare_params, 1.0)
            bare_optimizer.step()
            bare_optimizer.zero_grad(set_to_none=True)

    height, width = spec.image_size
    about = {"model": model_name, "input": f"{spec.channels}x{height}x{width}", "batch": batch_size,
             "flops_per_step": _step_flops(copy.deepcopy(template).to(args.device).train(), batch, objective)}
    return {f"{name} trainer {precision}": trainer, f"{name} bare {precision}": bare}, about


def ceiling_report(args) -> dict:
    """The ceiling report: GEMM limits, recipe steps in fp32/bf16, trainer against the bare loop.

    accelerate keeps one process-wide precision, and every Accelerator reads it: so each precision
    is one phase (``accelerator_for`` resets the state when the precision changes), in which
    the trainer and the bare loop of every recipe are interleaved. The bf16 speed-up compares the
    phases' medians (the bare loops' ratio is reported beside it as a check)."""
    import torch

    machine = check_machine(args)
    gemm = {precision: gemm_gflops(args.gemm_size, torch.float32 if precision == "fp32" else torch.bfloat16,
                                   repeats=args.repeats, device=args.device) for precision in PRECISIONS}
    for precision, row in gemm.items():
        print(f"GEMM {row['size']}^3 {precision}: {row['gflops']} GFLOP/s", flush=True)
    seconds, about = {}, {}
    for precision in PRECISIONS:
        sides = {}
        for name in args.recipes:
            recipe, about[name] = recipe_sides(name, precision, args)
            sides.update(recipe)
        seconds.update(time_interleaved(sides, repeats=args.repeats))
    recipes = {}
    for name in args.recipes:
        row = {**about[name], "step_repeat": args.step_repeat,
               "seconds_per_call": {side: stats for side, stats in seconds.items() if side.startswith(name + " ")},
               "precisions": {}}
        for precision in PRECISIONS:
            trainer, bare = f"{name} trainer {precision}", f"{name} bare {precision}"
            step = seconds[trainer]["median"] / args.step_repeat
            achieved = about[name]["flops_per_step"] / step / 1e9
            row["precisions"][precision] = {
                "trainer_step_s": round(step, 4), "bare_step_s": round(seconds[bare]["median"] / args.step_repeat, 4),
                "trainer_over_bare": ratio(seconds, trainer, bare), "achieved_gflops": round(achieved, 1),
                "fraction_of_gemm": round(achieved / gemm[precision]["gflops"], 3)}
        row["bf16_speedup"] = ratio(seconds, f"{name} trainer fp32", f"{name} trainer bf16")
        row["bf16_speedup_bare"] = ratio(seconds, f"{name} bare fp32", f"{name} bare bf16")
        recipes[name] = row
        print(f"\n{name} ({row['model']}, {row['input']}, batch {row['batch']}, "
              f"{row['flops_per_step'] / 1e9:.1f} GFLOP per step)")
        for precision, figures in row["precisions"].items():
            print(f"  {precision}: trainer {figures['trainer_step_s']:.3f} s/step, bare {figures['bare_step_s']:.3f} s "
                  f"(trainer/bare {figures['trainer_over_bare']:.3f}); {figures['achieved_gflops']} GFLOP/s = "
                  f"{figures['fraction_of_gemm']:.1%} of the {precision} GEMM")
        print(f"  bf16 speed-up: trainer {row['bf16_speedup']:.2f}x, bare loop {row['bf16_speedup_bare']:.2f}x",
              flush=True)
    report = {"gemm": gemm, "recipes": recipes, **finish_machine(machine)}
    if not report["machine"]["quiet"]:
        print("\nWARNING: the machine was not quiet for the whole run: do not quote these figures.", file=sys.stderr)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=None,
                        help=f"throughput table of these models: {', '.join(CLASSIFIERS)}, unet, sononet16, sam "
                             "(without --cases: the ceiling report)")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES),
                        help="ceiling report: the recipes to time")
    parser.add_argument("--gemm-size", type=int, default=2048, help="ceiling report: the GEMM's side n")
    parser.add_argument("--repeats", type=int, default=5, help="ceiling report: timed rounds after a warm-up round")
    parser.add_argument("--step-repeat", type=int, default=3, help="ceiling report: training steps per timed call")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="ceiling report: wait up to this long for a quiet machine (default: warn only)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=16, help="classifiers, U-Net, SonoNet")
    parser.add_argument("--sam-batch-size", type=int, default=5, help="SAM (the paper's batch size)")
    parser.add_argument("--image-size", type=int, default=224, help="classifier input side")
    parser.add_argument("--unet-size", type=int, nargs=2, default=[256, 384])
    parser.add_argument("--sam-backend", choices=["transformers", "segment-anything"], default="transformers")
    parser.add_argument("--sam-variant", choices=["tiny", "vit_b", "vit_l", "vit_h"], default=None,
                        help="default: tiny on CPU, vit_b on CUDA")
    parser.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"], default="auto")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    args.sam_variant = args.sam_variant or ("tiny" if args.device == "cpu" else "vit_b")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    env = {"python": platform.python_version(), "torch": torch.__version__, "device": args.device,
           "cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
           "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None}
    if args.cases is None:
        report = ceiling_report(args)
        write_json(args.json_path, {"report": "ceiling", **report})
        return 0
    print(json.dumps(env))
    rows = []
    for name in args.cases:
        row = bench(name, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    header = ("case", "input", "batch", "precision", "step_s", "steps_per_s", "images_per_s")
    print("\n" + " | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump({"environment": env, "args": vars(args), "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
