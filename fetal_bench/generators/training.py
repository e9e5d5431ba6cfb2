"""LoRA fine-tuning of a Stable Diffusion UNet (and optionally its text encoder) under accelerate.

Shared by every generator: FU-LoRA (class prompts), the paper's mask-guided method (3-channel
[ultrasound, ultrasound, outline] images) and the mask-conditioned variant (an extra UNet input
channel holding the mask). A generator hands :func:`train_lora` a :class:`TrainingData` (how to
get example ``i``) and the merged configuration; :class:`LoraTrainer` does the rest, read top to
bottom as a diffusers example script reads:

* LoRA adapters from a peft :class:`~peft.LoraConfig` on the configured modules
  (:mod:`fetal_bench.generators.lora`: module classes expand as kohya's "Standard" LoRA does),
  initialised from the training seed; for the conditioned variant the UNet's ``conv_in`` gains
  input channels whose weights start at zero (so step 0 is the base model) and is trained in full.
* :class:`accelerate.Accelerator` with fp16/bf16 mixed precision on GPU (frozen weights in that
  precision, trainable ones in fp32), optional gradient checkpointing, 8-bit AdamW when
  bitsandbytes and CUDA are there (torch AdamW otherwise), gradient clipping, any diffusers LR
  schedule. Several processes (``accelerate launch``) each take a slice of every batch.
* Determinism and exact resumption: every random draw of a training step (which example, flip,
  prompt dropout, VAE posterior sample, noise, timestep) comes from a generator seeded by
  ``(seed, position in the example stream)``, never from global RNG state. A checkpoint then only
  needs the trainable weights, the optimizer and LR-schedule state and the step: a resumed run
  continues bit-for-bit as if never interrupted (on the same hardware). Checkpoints are written
  atomically every ``train.checkpoint_every`` steps; a rerun of the same configuration resumes
  from the newest one.
* Output: the LoRA directory :mod:`fetal_bench.generators.lora` describes, its
  ``generator_config.json`` holding the configuration and hashes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fetal_bench.errors import FetalBenchError
from fetal_bench.generators.lora import (
    CONFIG_FILE,
    CONV_IN_FILE,
    LORA_FILE,
    add_adapter,
    canonical_safetensors,
    encode_text,
    expand_conv_in,
    peft_lora_config,
    tokenize,
)
from fetal_bench.training.rundir import RunDirectory, fingerprint

__all__ = ["LoraTrainer", "TrainingData", "train_lora"]

_SCHEMA_VERSION = 1
_KEEP_CHECKPOINTS = 2


@dataclass
class TrainingData:
    """What a generator trains on.

    ``get(i)`` returns example ``i`` as ``(pixels, prompt, condition)``: ``pixels`` uint8
    (3, R, R); ``prompt`` a string; ``condition`` None or a float32 (R, R) mask in [0, 1] for
    the conditioned variant. It is called once per use (decoding per step keeps memory flat).
    """

    n: int
    get: Callable[[int], tuple[np.ndarray, str, np.ndarray | None]]
    resolution: int
    extra_input_channels: int = 0
    #: Aspect-ratio buckets: example i's (width, height); ``get(i)`` returns that size. None =
    #: every example is ``resolution`` x ``resolution``.
    sizes: list[tuple[int, int]] | None = None


def _mix(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across runs and platforms, unlike hash())."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _freeze_skipped_layers(text_encoder, clip_skip: int | None) -> None:
    """Freeze the LoRA of CLIP layers that clip-skip leaves out of the embedding.

    They get no gradient (their output is never used), which DDP rejects as unused parameters;
    frozen, they are still saved (as initialised: lora_B = 0, no effect), like kohya's files.
    """
    import re

    if not clip_skip or clip_skip <= 1:
        return
    first_skipped = int(text_encoder.config.num_hidden_layers) - (int(clip_skip) - 1)
    for name, parameter in text_encoder.named_parameters():
        match = re.search(r"layers\.(\d+)\.", name)
        if "lora_" in name and match and int(match.group(1)) >= first_skipped:
            parameter.requires_grad_(False)


def _make_optimizer(groups: list[dict], train: dict, device) -> tuple[Any, str]:
    import torch

    from fetal_bench.tasks.inference import is_cuda

    name = str(train["optimizer"]).lower()
    kwargs = dict(betas=(float(train["adam_beta1"]), float(train["adam_beta2"])),
                  eps=float(train["adam_epsilon"]), weight_decay=float(train["weight_decay"]))
    if name not in ("adamw", "adamw8bit"):
        raise FetalBenchError(f"train.optimizer {name!r} is not supported.", "Use adamw or adamw8bit.")
    if name == "adamw8bit" and is_cuda(device):
        try:
            import bitsandbytes as bnb  # optional: only on CUDA machines that have it

            return bnb.optim.AdamW8bit(groups, **kwargs), "bitsandbytes.AdamW8bit"
        except ImportError:
            pass
    return torch.optim.AdamW(groups, **kwargs), "torch.AdamW"


def _total_steps(train: dict, data: TrainingData, per_step: int, seed: int) -> int:
    if train.get("max_steps"):
        return int(train["max_steps"])
    if data.sizes is not None:
        return int(train["epochs"]) * len(_ExampleOrder(data, int(train["repeats"]), per_step, seed).plan(0))
    stream = int(train["epochs"]) * int(train["repeats"]) * data.n
    return max(1, math.ceil(stream / per_step))


class _ExampleOrder:
    """Which example fills each slot of each step, from ``(seed, epoch)`` alone.

    Without buckets (every example the same size) the ``repeats * n`` example stream of each
    epoch is one seeded permutation, cut into consecutive steps. With buckets (``data.sizes``) a
    step's examples must share a size, as in kohya: each epoch's permuted stream is grouped by
    bucket, cut into batches of ``per_step`` (a bucket's last batch is filled up from the same
    bucket), and the batches are put in a seeded order.
    """

    def __init__(self, data: TrainingData, repeats: int, per_step: int, seed: int):
        self.data, self.stream, self.per_step, self.seed = data, repeats * data.n, per_step, seed
        self._epoch: int | None = None
        self._order: list = []

    def _permutation(self, epoch: int) -> list[int]:
        import torch

        generator = torch.Generator().manual_seed(_mix(self.seed, "epoch", epoch))
        return torch.randperm(self.stream, generator=generator).tolist()

    def plan(self, epoch: int) -> list:
        if self._epoch != epoch:
            order = [p % self.data.n for p in self._permutation(epoch)]
            if self.data.sizes is not None:
                order = self._bucket_batches(order, epoch)
            self._epoch, self._order = epoch, order
        return self._order

    def _bucket_batches(self, order: list[int], epoch: int) -> list[list[int]]:
        import torch

        groups: dict[tuple[int, int], list[int]] = {}
        for example in order:
            groups.setdefault(tuple(self.data.sizes[example]), []).append(example)
        batches = []
        for size in sorted(groups):
            members = groups[size]
            for start in range(0, len(members), self.per_step):
                batch = members[start : start + self.per_step]
                batch += [members[k % len(members)] for k in range(self.per_step - len(batch))]
                batches.append(batch)
        shuffle = torch.randperm(len(batches), generator=torch.Generator().manual_seed(_mix(self.seed, "batches", epoch)))
        return [batches[i] for i in shuffle.tolist()]

    def at(self, step: int, first: int, count: int) -> list[tuple[int, int]]:
        """``(random-stream key, example)`` for slots ``first .. first + count`` of ``step``."""
        keys = [step * self.per_step + first + k for k in range(count)]
        if self.data.sizes is None:
            return [(key, self.plan(key // self.stream)[key % self.stream]) for key in keys]
        if not hasattr(self, "_n_batches"):
            self._n_batches = len(self.plan(0))  # the same every epoch: the buckets' sizes do not change
        batch = self.plan(step // self._n_batches)[step % self._n_batches]
        return [(key, batch[first + k]) for k, key in enumerate(keys)]


def _trainable_state(models: dict) -> dict:
    return {
        f"{prefix}.{name}": p.detach().float().cpu().contiguous()
        for prefix, model in models.items() if model is not None
        for name, p in model.named_parameters() if p.requires_grad
    }


def _restore_trainable(models: dict):
    """A loader for :meth:`RunDirectory.restore`: copy saved trainable tensors into ``models``."""

    def load(state: dict) -> None:
        import torch

        for prefix, model in models.items():
            if model is None:
                continue
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if p.requires_grad:
                        p.copy_(state[f"{prefix}.{name}"].to(p.dtype))

    return load



def train_lora(
    *,
    base,
    config: dict[str, Any],
    data: TrainingData,
    output: str | Path,
    record: dict[str, Any],
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train a LoRA on ``data`` from ``base``; write it to ``output``; return its config record.

    ``record`` holds what the generator wants in ``generator_config.json`` besides what this
    function adds (base identity, data provenance, shape priors...). A finished ``output`` with
    the same configuration is returned as is; a different finished one is an error unless
    ``overwrite``; unfinished checkpoints of the same configuration are resumed.
    ``progress(step, total, loss)`` is called after every step (after its checkpoint).
    """
    return LoraTrainer(base=base, config=config, data=data, output=output, record=record,
                       overwrite=overwrite, progress=progress).train()


class LoraTrainer:
    """One LoRA training run: set up models, optimizer and schedule, resume, step, save."""

    def __init__(self, *, base, config: dict[str, Any], data: TrainingData, output: str | Path,
                 record: dict[str, Any], overwrite: bool = False,
                 progress: Callable[[int, int, float], None] | None = None):
        from fetal_bench.generators.config import config_sha256

        self.base, self.config, self.data, self.record = base, config, data, record
        self.output, self.overwrite, self.progress = Path(output), overwrite, progress
        self.train_cfg, self.lora_cfg = config["train"], config["lora"]
        self.seed = int(self.train_cfg["seed"])
        self.key = fingerprint({"config": config_sha256(config), "base": record.get("base"), "data": record.get("data")})

    def train(self) -> dict[str, Any]:
        finished = self._finished_run()
        if finished is not None:
            return finished
        self._set_up_accelerator()
        self._add_adapters()
        self._place_models()
        self._set_up_optimization()
        start = self._resume()
        loss_value = float("nan")
        began = time.perf_counter()
        self.output.mkdir(parents=True, exist_ok=True)
        every = int(self.train_cfg.get("checkpoint_every") or 0)
        for step in range(start, self.total):
            loss_value = self.training_step(step)
            done = step + 1
            if every and done % every == 0 and done < self.total:
                self._save_snapshot(done)
            if self.progress is not None:
                self.progress(done, self.total, loss_value)
        return self._finish(start, loss_value, time.perf_counter() - began)

    def _finished_run(self) -> dict[str, Any] | None:
        """The record of a finished run of this configuration in ``output`` (None: train); clears
        ``output``'s LoRA files when ``overwrite``."""
        final = self.output / CONFIG_FILE
        if final.is_file():
            existing = json.loads(final.read_text())
            if existing.get("resume_key") == self.key and not self.overwrite:
                return existing
            if not self.overwrite:
                raise FetalBenchError(
                    f"{self.output} already holds a LoRA trained with another configuration or data.",
                    "Pick another --output, or pass --overwrite to replace it.",
                )
        if self.overwrite and self.output.exists():
            for name in (CONFIG_FILE, LORA_FILE, CONV_IN_FILE, "checkpoints"):
                target = self.output / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
        return None

    def _set_up_accelerator(self) -> None:
        import torch

        from fetal_bench.training.loop import accelerator_for

        cuda = torch.cuda.is_available()
        self.mixed = str(self.train_cfg.get("mixed_precision") or "no") if cuda else "no"
        # cpu=True where there is no CUDA, so that a launcher's CPU processes form one (gloo) group.
        self.accelerator = accelerator_for(self.mixed, cpu=not cuda)
        self.device = self.accelerator.device
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.mixed, torch.float32)

    def _add_adapters(self) -> None:
        """Freeze the base; add the UNet's (and text encoder's) LoRA and any extra input channels."""
        unet, vae, text_encoder = self.base.unet, self.base.vae, self.base.text_encoder
        for module in (unet, vae, text_encoder):
            module.requires_grad_(False)
        expand_conv_in(unet, self.data.extra_input_channels)
        self.unet_lora = peft_lora_config(self.lora_cfg, "unet_targets", unet)
        add_adapter(unet, self.unet_lora, _mix(self.seed, "lora-init", "unet"))
        self.train_te = bool(self.lora_cfg.get("train_text_encoder"))
        self.te_lora = None
        if self.train_te:
            self.te_lora = peft_lora_config(self.lora_cfg, "text_encoder_targets", text_encoder)
            add_adapter(text_encoder, self.te_lora, _mix(self.seed, "lora-init", "text_encoder"))
            _freeze_skipped_layers(text_encoder, self.train_cfg.get("clip_skip"))
        if self.data.extra_input_channels:
            unet.conv_in.requires_grad_(True)

    def _place_models(self) -> None:
        """Models on the device in the training precision (trainable weights stay fp32)."""
        import torch

        unet, vae, text_encoder = self.base.unet, self.base.vae, self.base.text_encoder
        for module in (vae, unet, text_encoder):
            module.to(self.device)
            if self.weight_dtype != torch.float32:
                module.to(dtype=self.weight_dtype)
        # Trainable weights stay fp32 under mixed precision (fp16 weights cannot take small updates).
        for module in (unet, text_encoder):
            for p in module.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        if self.train_cfg.get("gradient_checkpointing"):
            unet.enable_gradient_checkpointing()
            if self.train_te:
                # transformers 5 renamed it (the old name warns); older versions only have the old one.
                enable = (getattr(text_encoder, "activation_checkpointing_enable", None)
                          or text_encoder.gradient_checkpointing_enable)
                enable()
        unet.train()
        text_encoder.train(self.train_te)

    def _set_up_optimization(self) -> None:
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler

        train, accelerator = self.train_cfg, self.accelerator
        unet, text_encoder = self.base.unet, self.base.text_encoder
        self.groups = [{"params": [p for p in unet.parameters() if p.requires_grad], "lr": float(train["unet_lr"])}]
        if self.train_te:
            self.groups.append({"params": [p for p in text_encoder.parameters() if p.requires_grad],
                                "lr": float(train["text_encoder_lr"])})
        optimizer, self.optimizer_name = _make_optimizer(self.groups, train, self.device)
        self.per_process = int(train["batch_size"])
        per_step = self.per_process * accelerator.num_processes
        self.total = _total_steps(train, self.data, per_step, self.seed)
        # accelerate's prepared scheduler steps once per process at every optimizer step, so its
        # horizon is counted in process-steps (as in diffusers' training scripts).
        lr_scheduler = get_scheduler(str(train["lr_scheduler"]), optimizer=optimizer,
                                     num_warmup_steps=int(train["warmup_steps"]) * accelerator.num_processes,
                                     num_training_steps=self.total * accelerator.num_processes)
        if self.train_te:
            self.unet, self.text_encoder, self.optimizer, self.lr_scheduler = accelerator.prepare(
                unet, text_encoder, optimizer, lr_scheduler)
        else:
            self.unet, self.optimizer, self.lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
            self.text_encoder = text_encoder
        self.models = {"unet": accelerator.unwrap_model(self.unet),
                       "text_encoder": accelerator.unwrap_model(self.text_encoder) if self.train_te else None}
        self.noise_scheduler = DDPMScheduler.from_config(self.base.scheduler_config)
        self.order = _ExampleOrder(self.data, int(train["repeats"]), per_step, self.seed)

    def _resume(self) -> int:
        """The step to start from: the newest snapshot of this configuration's, else 0."""
        self.run = RunDirectory(self.output, fingerprint=self.key, keep_last=_KEEP_CHECKPOINTS)
        latest = self.run.latest()
        if latest is None:
            return 0
        self.run.restore(latest, weights=_restore_trainable(self.models), optimizer=self.optimizer,
                         scheduler=self.lr_scheduler)
        return latest.step

    def training_step(self, step: int) -> float:
        """One optimisation step: noise this step's examples' latents, predict, backward, update."""
        import torch
        import torch.nn.functional as F

        latents, noise, timesteps, prompts, conds = self._noised_batch(step)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.data.extra_input_channels:
            masks = torch.stack(conds).to(self.device)
            small = F.interpolate(masks, size=noisy.shape[-2:], mode="area") * 2.0 - 1.0
            noisy = torch.cat([noisy, small], dim=1)
        prediction = self._predict_noise(noisy, timesteps, prompts)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss = F.mse_loss(prediction.float(), target.float())
        self.accelerator.backward(loss)
        if self.accelerator.sync_gradients and self.train_cfg.get("max_grad_norm"):
            params = [p for group in self.groups for p in group["params"]]
            self.accelerator.clip_grad_norm_(params, float(self.train_cfg["max_grad_norm"]))
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(self.accelerator.gather(loss.detach()[None]).mean())

    def _noised_batch(self, step: int):
        """This process's examples of ``step``: their latents, noise, timesteps, prompts and
        conditions, every random draw from the example's own seeded generator."""
        import torch

        scaling = float(self.base.vae.config.scaling_factor)
        factor, channels = self.base.vae_scale_factor, int(self.base.vae.config.latent_channels)
        dropout = float(self.train_cfg.get("prompt_dropout") or 0.0)
        random_flip = bool(self.train_cfg.get("random_flip"))
        slots = self.order.at(step, self.accelerator.process_index * self.per_process, self.per_process)
        pixels, prompts, conds, noise, steps_t, eps = [], [], [], [], [], []
        for position, example in slots:
            g = torch.Generator().manual_seed(_mix(self.seed, "sample", position))
            image, prompt, cond = self.data.get(example)
            x = torch.from_numpy(np.ascontiguousarray(image)).float().div(127.5).sub(1.0)
            c = None if cond is None else torch.from_numpy(np.ascontiguousarray(cond, dtype=np.float32))[None]
            flip, drop = torch.rand(2, generator=g).tolist()
            if random_flip and flip < 0.5:
                x = x.flip(-1)
                c = None if c is None else c.flip(-1)
            if drop < dropout:
                prompt = ""
            latent_shape = (channels, image.shape[-2] // factor, image.shape[-1] // factor)
            eps.append(torch.randn(latent_shape, generator=g))
            noise.append(torch.randn(latent_shape, generator=g))
            steps_t.append(int(torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (1,), generator=g)))
            pixels.append(x)
            prompts.append(prompt)
            conds.append(c)
        x = torch.stack(pixels).to(self.device, dtype=self.weight_dtype)
        with torch.no_grad():
            posterior = self.base.vae.encode(x).latent_dist
            latents = (posterior.mean + posterior.std * torch.stack(eps).to(self.device, posterior.mean.dtype)) * scaling
        timesteps = torch.tensor(steps_t, device=self.device, dtype=torch.long)
        return latents.float(), torch.stack(noise).to(self.device), timesteps, prompts, conds

    def _predict_noise(self, noisy, timesteps, prompts: list[str]):
        import torch

        ids = tokenize(self.base.tokenizer, prompts).to(self.device)
        clip_skip = self.train_cfg.get("clip_skip")
        with self.accelerator.autocast():
            if self.train_te:
                hidden = encode_text(self.text_encoder, ids, clip_skip)
            else:
                with torch.no_grad():
                    hidden = encode_text(self.text_encoder, ids, clip_skip)
            return self.unet(noisy.to(self.weight_dtype), timesteps, hidden.to(self.weight_dtype)).sample

    def _save_snapshot(self, done: int) -> None:
        if self.accelerator.is_main_process:
            self.run.save(done, weights=_trainable_state(self.models), optimizer=self.optimizer,
                          scheduler=self.lr_scheduler)
        self.accelerator.wait_for_everyone()

    def _finish(self, start: int, loss_value: float, runtime_s: float) -> dict[str, Any]:
        """Write the LoRA and its generator_config.json (main process); every process returns it."""
        self.accelerator.wait_for_everyone()
        result: dict[str, Any] = {}
        if self.accelerator.is_main_process:
            training = {"steps": self.total, "resumed_from_step": start or None, "examples": self.data.n,
                        "batch_size_per_process": self.per_process, "num_processes": self.accelerator.num_processes,
                        "optimizer": self.optimizer_name, "mixed_precision": self.mixed, "device": str(self.device),
                        "final_loss": None if math.isnan(loss_value) else loss_value, "runtime_s": round(runtime_s, 3)}
            result = _save_final(self.output, self.models, self.unet_lora, self.te_lora, self.data, self.record,
                                 self.config, self.key, training=training)
            self.run.clear()
        self.accelerator.wait_for_everyone()
        return result or json.loads((self.output / CONFIG_FILE).read_text())


def _save_final(output: Path, models: dict, unet_lora, te_lora, data: TrainingData, record: dict,
                config: dict, key: str, training: dict) -> dict[str, Any]:
    import tempfile

    import diffusers
    import peft
    import torch
    import transformers
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from fetal_bench import __version__
    from fetal_bench._io import sha256_file, write_json_atomic
    from fetal_bench.generators.config import config_sha256

    unet = models["unet"]
    layers = {"unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
              "unet_lora_adapter_metadata": _metadata(unet_lora)}
    if models["text_encoder"] is not None:
        layers["text_encoder_lora_layers"] = convert_state_dict_to_diffusers(
            get_peft_model_state_dict(models["text_encoder"]))
        layers["text_encoder_lora_adapter_metadata"] = _metadata(te_lora)
    # diffusers writes straight into its directory: write into a temporary one beside the
    # output and move the file in, so a crash never leaves a truncated weights file.
    with tempfile.TemporaryDirectory(dir=output, prefix=".lora-tmp-") as tmp:
        StableDiffusionPipeline.save_lora_weights(tmp, safe_serialization=True, **layers)
        canonical_safetensors(Path(tmp) / LORA_FILE)
        (Path(tmp) / LORA_FILE).replace(output / LORA_FILE)
    files = {LORA_FILE: sha256_file(output / LORA_FILE)}
    if data.extra_input_channels:
        conv = unet.conv_in
        with tempfile.TemporaryDirectory(dir=output, prefix=".conv-tmp-") as tmp:
            save_file({"weight": conv.weight.detach().float().cpu().contiguous(),
                       "bias": conv.bias.detach().float().cpu().contiguous()}, str(Path(tmp) / CONV_IN_FILE))
            canonical_safetensors(Path(tmp) / CONV_IN_FILE)
            (Path(tmp) / CONV_IN_FILE).replace(output / CONV_IN_FILE)
        files[CONV_IN_FILE] = sha256_file(output / CONV_IN_FILE)
    payload = {
        "schema_version": _SCHEMA_VERSION,
        "generator": config["generator"],
        "variant": config.get("variant"),
        "config_version": config["config_version"],
        "config": config,
        "config_sha256": config_sha256(config),
        "resume_key": key,
        **record,
        "resolution": data.resolution,
        "extra_input_channels": data.extra_input_channels,
        "lora_sha256": files[LORA_FILE],
        "files": files,
        "training": training,
        "software": {"fetal_bench": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
                     "peft": peft.__version__, "transformers": transformers.__version__},
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(output / CONFIG_FILE, payload)
    return payload


def _metadata(lora_config) -> dict[str, Any]:
    """A peft LoraConfig as the weights file's metadata, every set in it a sorted list: peft keeps
    ``target_modules`` (and, when given, ``exclude_modules`` and the like) as sets, iterated in an
    order that changes from process to process (string hashing), so the file's bytes and the
    ``lora_sha256`` every synthetic row records would too. diffusers writes the dict with sorted
    keys; the lists are the only order left to fix."""
    return _sorted_sets(lora_config.to_dict())


def _sorted_sets(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted((_sorted_sets(v) for v in value), key=lambda v: (type(v).__name__, v if isinstance(v, str) else repr(v)))
    if isinstance(value, dict):
        return {k: _sorted_sets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sorted_sets(v) for v in value]
    return value
