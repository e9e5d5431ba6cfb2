"""Generator throughput: LoRA training steps/s and sampling images/s, fetal-bench vs a plain pipeline.

Models are built from configs with random weights (no weights can be downloaded where this
runs): ``--size sd15`` builds Stable Diffusion 1.5-sized components (UNet 860M, VAE 84M, CLIP
ViT-L/14 text encoder 123M parameters, SD 1.5's configs) at 512 x 512; ``--size tiny`` the tiny
test pipeline at 64 x 64 (to check the script on a CPU). Random weights cost the same FLOPs as
trained ones, so the timings stand for the real models.

Rows:

* ``train fetal-bench``: :func:`fetal_bench.generators.training.train_lora` (its ``LoraTrainer``) with the FU-LoRA
  defaults (rank/alpha 128 on to_q/k/v/out.0 + text-encoder LoRA, batch 1, AdamW8bit when
  bitsandbytes is installed, fp16 mixed precision on GPU, clip-skip 2); ``--grad-checkpointing``
  adds a row with gradient checkpointing on. Steps/s over the steps after ``--warmup``.
* ``train fp32``: the same loop without mixed precision (what a plain fp32 LoRA loop costs).
* ``sample fetal-bench``: the FU-LoRA sampling path (LoRA at 0.3, Euler, 20 steps, CFG 7, fp16
  and PyTorch SDPA attention on GPU, ``--batch`` images per forward pass).
* ``sample fetal-bench, 50 PNDM steps``: the same with the plain pipeline's scheduler and steps,
  separating the precision/batching gain from the fewer-steps gain.
* ``sample plain pipeline``: ``StableDiffusionPipeline`` left at its defaults: fp32, its PNDM
  scheduler, 50 steps, guidance 7.5, one image per call.

Images/s counts finished images after one warm-up call; GPU timings synchronise first.

    python benchmarks/bench_generators.py --size sd15 --json bench_generators.json   # on a GPU
    python benchmarks/bench_generators.py --size tiny                                # anywhere
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SD15_UNET = {
    "sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32,
}
SD15_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4, "norm_num_groups": 32, "sample_size": 512,
}
SD15_TEXT = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
    "max_position_embeddings": 77, "vocab_size": 49408, "hidden_act": "quick_gelu", "projection_dim": 768,
}


def build_base(size: str):
    """A BaseModel of random weights: SD 1.5-sized or tiny."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from fetal_bench.generators.base import BaseModel
    from fetal_bench.generators.tiny import SCHEDULER_CONFIG, build_tiny_components, build_tiny_tokenizer

    if size == "tiny":
        c = build_tiny_components()
        return BaseModel(c.unet, c.vae, c.text_encoder, c.tokenizer, dict(c.scheduler.config),
                         {"kind": "benchmark", "id": "tiny", "revision": None})
    tokenizer = build_tiny_tokenizer()  # ids < 200: valid for CLIP's 49408-token embedding
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD15_UNET).eval()
    vae = AutoencoderKL(**SD15_VAE, scaling_factor=0.18215).eval()
    text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT, bos_token_id=0, eos_token_id=2, pad_token_id=1)).eval()
    return BaseModel(unet, vae, text, tokenizer, {**SCHEDULER_CONFIG, "skip_prk_steps": True},
                     {"kind": "benchmark", "id": "sd15-sized-random", "revision": None})


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def bench_train(size: str, steps: int, warmup: int, *, mixed: str, checkpointing: bool, workdir: Path):
    from fetal_bench.generators.config import default_config, merge_config
    from fetal_bench.generators.training import TrainingData, train_lora

    base = build_base(size)
    sizes = {"unet": _params(base.unet), "vae": _params(base.vae), "text_encoder": _params(base.text_encoder),
             "resolution": base.native_resolution}
    resolution = base.native_resolution
    config = merge_config(default_config("fu-lora"), {
        "data": {"resolution": resolution},
        "train": {"max_steps": warmup + steps, "mixed_precision": mixed, "gradient_checkpointing": checkpointing,
                  "checkpoint_every": 0},
    })
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (3, resolution, resolution), dtype=np.uint8) for _ in range(8)]
    data = TrainingData(len(images), lambda i: (images[i], "a photo of fetal abdomen", None), resolution)
    stamps: list[float] = []

    def progress(step, total, loss):
        _sync()
        stamps.append(time.perf_counter())

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train_lora(base=base, config=config, data=data, output=workdir / f"lora-{mixed}-{checkpointing}",
                        record={"base": base.identity, "data": {"classes": []}}, overwrite=True, progress=progress)
    timed = stamps[warmup - 1 :] if warmup else [stamps[0], *stamps]
    rate = (len(timed) - 1) / (timed[-1] - timed[0])
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return rate, result, peak, workdir / f"lora-{mixed}-{checkpointing}", sizes


def bench_sample_ours(size: str, lora_dir: Path, lora_config: dict, n: int, batch: int, *, scheduler: str,
                      steps: int, guidance: float):
    from fetal_bench.generators import sampling as smp
    from fetal_bench.generators.common import apply_lora

    base = build_base(size)
    pipe = base.pipeline()
    apply_lora(pipe, lora_dir, lora_config, 0.3)
    pipe.scheduler = smp.make_scheduler(scheduler, base.scheduler_config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe.to(device)
    if device == "cuda":
        pipe.to(dtype=torch.float16)
    pipe.set_progress_bar_config(disable=True)
    resolution = base.native_resolution

    def call(start: int, count: int):
        items = [smp.Item(i, 0, "a photo of fetal abdomen", i) for i in range(start, start + count)]
        smp.pipeline_images(pipe, items, resolution=resolution, steps=steps, guidance=guidance, clip_skip=2,
                            negative_prompt="", vae_scale_factor=base.vae_scale_factor)

    call(0, batch)  # warm-up
    _sync()
    begin = time.perf_counter()
    done = 0
    while done < n:
        count = min(batch, n - done)
        call(done, count)
        done += count
    _sync()
    return done / (time.perf_counter() - begin)


def bench_sample_plain(size: str, n: int):
    """StableDiffusionPipeline at its defaults: fp32, PNDM, 50 steps, guidance 7.5, one image per call."""
    base = build_base(size)
    pipe = base.pipeline()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    resolution = base.native_resolution
    pipe("a photo of fetal abdomen", height=resolution, width=resolution)  # warm-up
    _sync()
    begin = time.perf_counter()
    for _ in range(n):
        pipe("a photo of fetal abdomen", height=resolution, width=resolution)
    _sync()
    return n / (time.perf_counter() - begin)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["sd15", "tiny"], default="sd15")
    parser.add_argument("--train-steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--sample-images", type=int, default=16, help="images timed per sampling row")
    parser.add_argument("--plain-images", type=int, default=4, help="images timed for the plain pipeline")
    parser.add_argument("--batch", type=int, default=8, help="fetal-bench sampling batch size")
    parser.add_argument("--grad-checkpointing", action="store_true", help="also time gradient checkpointing")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    import diffusers

    cuda = torch.cuda.is_available()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rate, lora_config, peak, lora_dir, sizes = bench_train(args.size, args.train_steps, args.warmup,
                                                              mixed="fp16", checkpointing=False, workdir=workdir)
        rows.append({"row": "train fetal-bench (fp16 mixed on GPU, LoRA r128 + TE)", "steps_per_s": rate,
                     "optimizer": lora_config["training"]["optimizer"],
                     "mixed_precision": lora_config["training"]["mixed_precision"], "peak_gib": peak})
        if args.grad_checkpointing:
            rate_gc, _, peak_gc, _, _ = bench_train(args.size, args.train_steps, args.warmup, mixed="fp16",
                                                    checkpointing=True, workdir=workdir)
            rows.append({"row": "train fetal-bench + gradient checkpointing", "steps_per_s": rate_gc,
                         "peak_gib": peak_gc})
        rate32, _, peak32, _, _ = bench_train(args.size, args.train_steps, args.warmup, mixed="no",
                                              checkpointing=False, workdir=workdir)
        rows.append({"row": "train fp32 (no mixed precision)", "steps_per_s": rate32, "peak_gib": peak32})
        rows.append({"row": f"sample fetal-bench (Euler 20 steps, CFG 7, batch {args.batch})",
                     "images_per_s": bench_sample_ours(args.size, lora_dir, lora_config, args.sample_images,
                                                       args.batch, scheduler="euler", steps=20, guidance=7.0)})
        rows.append({"row": f"sample fetal-bench, 50 PNDM steps, CFG 7.5, batch {args.batch}",
                     "images_per_s": bench_sample_ours(args.size, lora_dir, lora_config, args.sample_images,
                                                       args.batch, scheduler="pndm", steps=50, guidance=7.5)})
    rows.append({"row": "sample plain StableDiffusionPipeline (fp32, PNDM 50 steps, CFG 7.5, batch 1)",
                 "images_per_s": bench_sample_plain(args.size, args.plain_images)})

    report = {
        "size": args.size,
        "models": sizes,
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "settings": vars(args) | {"json": str(args.json) if args.json else None},
        "rows": rows,
    }
    width = max(len(r["row"]) for r in rows)
    print(f"{args.size}: UNet {sizes['unet'] / 1e6:.2f}M, VAE {sizes['vae'] / 1e6:.2f}M, text "
          f"{sizes['text_encoder'] / 1e6:.2f}M params, {sizes['resolution']} px, on {report['device']}")
    for r in rows:
        value = f"{r['steps_per_s']:.2f} steps/s" if "steps_per_s" in r else f"{r['images_per_s']:.2f} images/s"
        peak = f"  (peak {r['peak_gib']:.1f} GiB)" if r.get("peak_gib") else ""
        print(f"{r['row']:<{width}}  {value}{peak}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
