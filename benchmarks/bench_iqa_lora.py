"""Training speed of the IQA LoRA baseline (`vit_lora`): optimisation steps and frames per second.

Two measurements, both at the paper's settings (batch 32, 224x224, AdamW 3e-4, LoRA r=8/16/0.1):

* ``step``: the model alone, on random tensors already on the device: forward, backward and
  optimizer step under the training loop's mixed precision (bf16 on a GPU that supports it).
  ``--warmup`` steps are discarded, then ``--steps`` are timed; peak GPU memory is reported.
* ``train`` (with ``--end-to-end``): ``fetal_bench.training.train`` on a generated ACOUSLIC-layout
  build (``make_acouslic_raw``, official 744x562 frames), loader and validation included; reported
  from the run's own clock (``train_time_s``) over the frames seen.

The backbone starts from random weights unless ``--pretrained`` (speed does not depend on them).

    python benchmarks/bench_iqa_lora.py --steps 20 --json iqa_lora.json
    python benchmarks/bench_iqa_lora.py --end-to-end --cases 4 --workers 8
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path


def bench_steps(args) -> dict:
    import torch

    from fetal_bench.models import create_model

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create_model("vit_lora", variant=args.variant, pretrained=args.pretrained,
                         image_size=(args.size, args.size)).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)
    x = torch.randn(args.batch, model.spec.channels, args.size, args.size, device=device)
    y = torch.randint(0, 2, (args.batch,), device=device)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "mode": "step", "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(), "bf16": use_bf16, "batch": args.batch, "size": args.size,
        "variant": args.variant, "trainable_parameters": sum(p.numel() for p in params),
        "steps_per_s": round(args.steps / elapsed, 3), "images_per_s": round(args.steps * args.batch / elapsed, 1),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }


def bench_train(args) -> dict:
    from fetal_bench.data.builders import build_dataset
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the raw layouts are test fixtures
    from fake_raw import make_acouslic_raw
    from fetal_bench.training import train

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-iqa-"))
    raw, built = work / "raw", work / "built"
    if not (built / "build_info.json").is_file():
        make_acouslic_raw(raw, splits=(args.cases, 1, 1), shared_subject=False, frames_per_sweep=140, size=(744, 562))
        start = time.perf_counter()
        build_dataset("acouslic-iqa", built, raw_dir=raw, overwrite=True)
        print(f"built {built} in {time.perf_counter() - start:.0f} s")
    result = train(model="vit_lora", task="acouslic-iqa", data=str(built), output=str(work / "run"), overwrite=True,
                   model_cfg={"pretrained": args.pretrained, "variant": args.variant}, epochs=1,
                   num_workers=args.workers, progress=False, max_steps=args.steps or None)
    frames = min(result.n_train, result.steps * 32)
    return {"mode": "train", "n_train": result.n_train, "steps": result.steps, "train_time_s": result.train_time_s,
            "frames_per_s": round(frames / result.train_time_s, 1) if result.train_time_s else None,
            "workers": args.workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--variant", default="vit_b_16", choices=["vit_b_16", "tiny"])
    parser.add_argument("--pretrained", action="store_true", help="Load ImageNet weights (else random).")
    parser.add_argument("--device", default=None)
    parser.add_argument("--end-to-end", action="store_true", help="Also time fetal_bench.training.train on generated frames.")
    parser.add_argument("--cases", type=int, default=4, help="Training cases of the generated build (--end-to-end).")
    parser.add_argument("--workers", type=int, default=4, help="Loader processes (--end-to-end).")
    parser.add_argument("--workdir", default=None, help="Keep the generated build here for later runs.")
    parser.add_argument("--json", default=None, help="Also write the results to this file.")
    args = parser.parse_args()
    args.pretrained = "auto" if args.pretrained else False
    results = [bench_steps(args)]
    if args.end_to_end:
        results.append(bench_train(args))
    for row in results:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
