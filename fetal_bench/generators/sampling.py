"""Resumable, sharded, multi-process sampling into a synthetic Hugging Face dataset directory.

A sampling run is a fixed list of :class:`Item` (index, label, prompt, seed, condition). The
list is cut into shards of ``shard_size`` consecutive items; each shard is rendered in batches
and written to ``WORK/shard-NNNNN.parquet`` atomically (rows already encoded with the final
features), after a ``shard-NNNNN.json`` sidecar listing the samples it rejected. A shard's
Parquet file is its completion marker: a rerun skips those shards, so an interrupted run loses
at most the shards in flight and never duplicates a row. When every shard exists, the main
process streams them in order into :func:`fetal_bench.data.writer.write_dataset` (Parquet shards +
card + build_info.json, atomically) and removes the work directory.

Several processes (``accelerate launch --num_processes N``) split the *pending shards* with
``Accelerator.split_between_processes``; a shard's content depends only on its items and the
batch size, so the output is the same bytes whatever the number of processes or interruptions.

Per-image determinism: the initial latents of item ``i`` come from a CPU
:class:`torch.Generator` seeded with ``item.seed`` (= ``seed + i``), and every stochastic
scheduler step gets the same per-image generators, so an image does not depend on which other
images share its batch except through floating-point summation order (different batch sizes
can change the last bits, hence the recorded ``execution.batch_size``).
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fetal_bench.errors import FetalBenchError

__all__ = [
    "SCHEDULERS",
    "Item",
    "ShardedRun",
    "initial_latents",
    "make_scheduler",
    "run_sharded",
]

#: Scheduler names accepted by ``--scheduler`` -> diffusers class.
SCHEDULERS: dict[str, str] = {
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
}


@dataclass
class Item:
    """One image to generate."""

    index: int
    label: int
    prompt: str
    seed: int
    condition: dict[str, Any] | None = None


def process_state():
    """accelerate's process state; on a machine without CUDA, CPU processes (gloo) under a launcher.

    ``PartialState()`` only forms a multi-process CPU group when told ``cpu=True``; without it,
    ``accelerate launch --cpu --num_processes N`` would start N processes that each think they
    are alone (and each render every shard).
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def make_scheduler(name: str, base_config: dict):
    """A diffusers scheduler by short name, configured like the base's own (betas, offsets)."""
    import diffusers

    if name not in SCHEDULERS:
        raise FetalBenchError(f"Unknown scheduler {name!r}.", f"Use one of: {', '.join(SCHEDULERS)}.")
    return getattr(diffusers, SCHEDULERS[name]).from_config(base_config)


def step_kwargs(scheduler, generators) -> dict:
    """Extra ``scheduler.step`` arguments: the per-image generators where the scheduler takes them."""
    accepted = inspect.signature(scheduler.step).parameters
    return {"generator": generators} if "generator" in accepted else {}


def initial_latents(items: Sequence[Item], shape: tuple[int, int, int]):
    """Initial noise for ``items``: item by item from a CPU generator seeded with its seed."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(int(item.seed)) for item in items]
    latents = torch.stack([torch.randn(shape, generator=g) for g in generators])
    return latents, generators


@dataclass
class ShardedRun:
    """What :func:`run_sharded` produced (only complete on the main process)."""

    is_main_process: bool
    n_shards: int
    rejected: list[dict] = field(default_factory=list)
    rows_iter: Callable[[], Iterator[dict]] | None = None
    work_dir: Path | None = None


def _shard_path(work_dir: Path, j: int, suffix: str) -> Path:
    return work_dir / f"shard-{j:05d}.{suffix}"


def run_sharded(
    *,
    items: Sequence[Item],
    render: Callable[[list[Item]], tuple[list[dict], list[dict]]],
    features,
    work_dir: Path,
    plan: dict[str, Any],
    batch_size: int,
    shard_size: int,
    on_shard: Callable[[int, int], None] | None = None,
) -> ShardedRun:
    """Render every pending shard of ``items`` into ``work_dir``; return how to read them back.

    ``render(batch)`` returns ``(rows, rejected)``: rows as ``features`` encodes them, and one
    dict per rejected item (with at least ``index`` and ``reason``). ``plan`` identifies the
    run; a work directory left by a different plan is an error (never mixed). ``on_shard(done,
    total)`` is called after each shard this process writes.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fetal_bench._io import atomic_file, write_json_atomic

    if batch_size < 1 or shard_size < 1:
        raise FetalBenchError("batch_size and shard_size must be >= 1.", "Pass positive sizes.")
    state = process_state()
    n_shards = max(1, math.ceil(len(items) / shard_size))
    plan = {**plan, "n_items": len(items), "shard_size": shard_size, "batch_size": batch_size}
    plan_path = work_dir / "plan.json"
    if state.is_main_process:
        work_dir.mkdir(parents=True, exist_ok=True)
        if plan_path.is_file():
            existing = json.loads(plan_path.read_text())
            if existing != json.loads(json.dumps(plan, default=str)):
                raise FetalBenchError(
                    f"Work directory {work_dir} belongs to a different sampling run.",
                    "Delete it (or pass another --work-dir) to start over, or rerun with the "
                    "options of the interrupted run to resume it.",
                )
        else:
            write_json_atomic(plan_path, json.loads(json.dumps(plan, default=str)))
    state.wait_for_everyone()

    pending = [j for j in range(n_shards) if not _shard_path(work_dir, j, "parquet").is_file()]
    # Every process must see the same pending list: nobody writes before all have looked.
    state.wait_for_everyone()
    schema = features.arrow_schema
    done = n_shards - len(pending)
    with state.split_between_processes(pending) as mine:
        for j in mine:
            shard = list(items[j * shard_size : (j + 1) * shard_size])
            rows: list[dict] = []
            rejected: list[dict] = []
            for start in range(0, len(shard), batch_size):
                batch_rows, batch_rejected = render(shard[start : start + batch_size])
                rows += batch_rows
                rejected += batch_rejected
            encoded = [features.encode_example(row) for row in rows]
            # The sidecar first, the Parquet (the completion marker) last.
            write_json_atomic(_shard_path(work_dir, j, "json"), {"rows": len(encoded), "rejected": rejected})
            with atomic_file(_shard_path(work_dir, j, "parquet"), "wb") as handle:
                pq.write_table(pa.Table.from_pylist(encoded, schema=schema), handle, compression="zstd")
            done += 1
            if on_shard is not None:
                on_shard(done, n_shards)
    state.wait_for_everyone()

    run = ShardedRun(is_main_process=state.is_main_process, n_shards=n_shards, work_dir=work_dir)
    if not state.is_main_process:
        return run
    missing = [j for j in range(n_shards) if not _shard_path(work_dir, j, "parquet").is_file()]
    if missing:  # pragma: no cover - only if another process died without raising here
        raise FetalBenchError(
            f"{len(missing)} shard(s) are missing in {work_dir} (e.g. {missing[:3]}).",
            "Rerun the same command: finished shards are kept and only the missing ones are made.",
        )
    for j in range(n_shards):
        sidecar = _shard_path(work_dir, j, "json")
        if sidecar.is_file():
            run.rejected += json.loads(sidecar.read_text()).get("rejected", [])

    def rows_iter() -> Iterator[dict]:
        for j in range(n_shards):
            table = pq.read_table(_shard_path(work_dir, j, "parquet"))
            yield from table.to_pylist()

    run.rows_iter = rows_iter
    return run


def finish(run: ShardedRun, keep_work: bool = False) -> None:
    """Remove the work directory once the dataset is written (unless ``keep_work``)."""
    if run.is_main_process and run.work_dir is not None and not keep_work:
        shutil.rmtree(run.work_dir, ignore_errors=True)


def pipeline_images(pipe, batch: Sequence[Item], *, resolution: int, steps: int, guidance: float,
                    clip_skip: int | None, negative_prompt: str, vae_scale_factor: int):
    """RGB float images (B, R, R, 3) in [0, 1] for ``batch`` from a StableDiffusionPipeline.

    Prompt embeddings are computed here (:func:`~fetal_bench.generators.lora.encode_text`) so
    clip-skip applies to the positive and the negative prompt alike, and the initial latents are
    drawn per item (:func:`initial_latents`).
    """
    import torch

    from fetal_bench.generators.lora import encode_text, tokenize

    device, dtype = pipe.unet.device, pipe.unet.dtype
    shape = (pipe.unet.config.in_channels, resolution // vae_scale_factor, resolution // vae_scale_factor)
    latents, generators = initial_latents(batch, shape)
    with torch.no_grad():
        ids = tokenize(pipe.tokenizer, [item.prompt for item in batch]).to(device)
        negative_ids = tokenize(pipe.tokenizer, [negative_prompt] * len(batch)).to(device)
        embeds = encode_text(pipe.text_encoder, ids, clip_skip)
        negative_embeds = encode_text(pipe.text_encoder, negative_ids, clip_skip)
        return pipe(
            prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, latents=latents.to(device, dtype),
            generator=generators, num_inference_steps=int(steps), guidance_scale=float(guidance),
            height=resolution, width=resolution, output_type="np",
        ).images


def conditioned_images(pipe, batch: Sequence[Item], masks, *, resolution: int, steps: int, guidance: float,
                       clip_skip: int | None, negative_prompt: str, vae_scale_factor: int):
    """Like :func:`pipeline_images` for a UNet with an extra mask input channel.

    ``masks`` float (B, 1, R, R) in [0, 1]; they are area-downsampled to the latent size, mapped
    to [-1, 1] as in training, and given to both the conditional and the unconditional branch
    of classifier-free guidance (guidance acts on the prompt only, the mask is always honoured).
    """
    import torch
    import torch.nn.functional as F

    from fetal_bench.generators.lora import encode_text, tokenize

    unet, vae, scheduler = pipe.unet, pipe.vae, pipe.scheduler
    device, dtype = unet.device, unet.dtype
    shape = (vae.config.latent_channels, resolution // vae_scale_factor, resolution // vae_scale_factor)
    latents, generators = initial_latents(batch, shape)
    latents = latents.to(device, torch.float32)
    cfg = guidance > 1.0
    with torch.no_grad():
        ids = tokenize(pipe.tokenizer, [item.prompt for item in batch]).to(device)
        embeds = encode_text(pipe.text_encoder, ids, clip_skip)
        if cfg:
            negative_ids = tokenize(pipe.tokenizer, [negative_prompt] * len(batch)).to(device)
            embeds = torch.cat([encode_text(pipe.text_encoder, negative_ids, clip_skip), embeds])
        small = F.interpolate(masks.to(device, torch.float32), size=shape[1:], mode="area") * 2.0 - 1.0
        if cfg:
            small = torch.cat([small, small])
        scheduler.set_timesteps(int(steps), device=device)
        latents = latents * scheduler.init_noise_sigma
        extra = step_kwargs(scheduler, generators)
        for t in scheduler.timesteps:
            x = torch.cat([latents, latents]) if cfg else latents
            x = scheduler.scale_model_input(x, t)
            x = torch.cat([x, small], dim=1).to(dtype)
            eps = unet(x, t, encoder_hidden_states=embeds.to(dtype)).sample.float()
            if cfg:
                uncond, cond = eps.chunk(2)
                eps = uncond + guidance * (cond - uncond)
            latents = scheduler.step(eps, t, latents, **extra).prev_sample
        image = vae.decode((latents / vae.config.scaling_factor).to(vae.dtype)).sample.float()
        image = (image / 2 + 0.5).clamp(0, 1)
        return image.permute(0, 2, 3, 1).cpu().numpy()
