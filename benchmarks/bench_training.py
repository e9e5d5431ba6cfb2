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
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from types import SimpleNamespace

CLASSIFIERS = ("resnet18", "resnet50", "densenet121", "densenet169", "efficientnet_b0", "mobilenet_v2", "vit_b_16")


def _case(name: str, args) -> tuple[dict, dict]:
    """(create_model options, TrainConfig options) for one case."""
    if name == "sam":
        cfg = {"backend": args.sam_backend, "variant": args.sam_variant, "pretrained": False}
        return cfg, {"optimizer": "adam", "lr": 1e-5, "weight_decay": 0.0}
    if name == "unet":
        return {"image_size": tuple(args.unet_size)}, {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4}
    return ({"labels": [f"c{i}" for i in range(5)], "pretrained": False, "image_size": (args.image_size, args.image_size)},
            {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 1e-4})


def bench(name: str, args) -> dict:
    import torch
    from accelerate import Accelerator

    from fetal_bench.models import create_model
    from fetal_bench.models import get_model_info
    from fetal_bench.tasks.kinds import kind_of
    from fetal_bench.training.config import TrainConfig
    from fetal_bench.training.loop import make_optimizer, optimization_step

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
    accelerator = Accelerator(mixed_precision=precision, cpu=args.device == "cpu")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["resnet18", "efficientnet_b0", "unet", "sam"],
                        help=f"models to time: {', '.join(CLASSIFIERS)}, unet, sononet16, sam")
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
