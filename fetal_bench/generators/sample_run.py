"""One sampling run of a generator's LoRA: what FU-LoRA and mask-guided sampling share.

Both generators' ``sample`` take the same options (:class:`SampleOptions`) and go through the
same steps (:class:`SampleRun`): resolve the sampling settings (explicit options > a synthetic
split's generation config > the LoRA's defaults), load the pipeline with the LoRA, choose the
classes, record the generation config (its hash is every row's ``config_sha256``), list the
items (seed per item: ``seed + index``), render them in resumable shards, and write the
synthetic split with its card. A generator adds what is its own: items' conditions, how a
batch is rendered into rows, its columns and the words of its card.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from fetal_bench.errors import FetalBenchError
from fetal_bench.generators.common import SamplingSetup, check_output, generation_sha256, load_generation, prepare_pipeline

__all__ = ["SampleOptions", "SampleRun"]

#: The options that go into :class:`~fetal_bench.generators.common.SamplingSetup`.
_SETUP_OPTIONS = ("per_class", "seed", "steps", "guidance", "lora_scale", "scheduler", "batch_size", "shard_size",
                  "classes")


@dataclass
class SampleOptions:
    """What every generator's ``sample`` accepts besides its LoRA and output.

    ``per_class`` images per trained class (or per class of ``classes``), seeds ``seed + index``;
    ``base``/``revision``: the base model to sample on (default: the one the LoRA was trained on);
    ``steps``, ``guidance``, ``lora_scale``, ``scheduler``: sampling settings (default: the LoRA's);
    ``batch_size``, ``shard_size``: execution; ``config``: a synthetic split's generation config
    (its directory, README.md or a YAML file) to reproduce, explicit options overriding it;
    ``work_dir`` (default ``OUTPUT.work``) holds finished shards, so a rerun resumes; ``on_shard(done,
    total)`` is called after each shard.
    """

    per_class: int | None = None
    seed: int | None = None
    base: str | None = None
    revision: str | None = None
    steps: int | None = None
    guidance: float | None = None
    lora_scale: float | None = None
    scheduler: str | None = None
    batch_size: int | None = None
    shard_size: int | None = None
    classes: list[str] | None = None
    config: str | Path | None = None
    work_dir: str | Path | None = None
    keep_work: bool = False
    overwrite: bool = False
    on_shard: Callable[[int, int], None] | None = None


class SampleRun:
    """The shared steps of one sampling run; a generator calls them in order."""

    def __init__(self, output: str | Path, options: SampleOptions):
        self.output = Path(output)
        self.options = options
        self.generation_in = load_generation(options.config)

    def use_lora(self, lora_dir: Path, lora_record: dict[str, Any]) -> None:
        """The LoRA to sample (``lora_record``: its generator_config.json) and the settings it implies."""
        self.lora_dir, self.lora_record = lora_dir, lora_record
        setup_options = {name: getattr(self.options, name) for name in _SETUP_OPTIONS}
        self.setup = SamplingSetup(lora_record, self.generation_in, setup_options)
        check_output(self.output, self.options.overwrite)

    def chosen_classes(self) -> list[dict[str, Any]]:
        """The trained classes to sample: all, or those named by ``classes`` (case-insensitive)."""
        trained = self.lora_record["data"]["classes"]
        wanted = self.setup.sample.get("classes")
        if not wanted:
            return list(trained)
        lowered = {str(w).lower() for w in wanted}
        chosen = [c for c in trained if c["name"].lower() in lowered]
        if not chosen:
            raise FetalBenchError(f"None of the classes {wanted} was trained.",
                                  f"Trained classes: {[c['name'] for c in trained]}.")
        return chosen

    def load_pipeline(self) -> None:
        """The base the LoRA was trained on (or ``base``) with the LoRA applied, on this process's device."""
        self.model, self.pipe, self.state = prepare_pipeline(
            self.lora_dir, self.lora_record, self.setup.sample, base=self.options.base, revision=self.options.revision,
            generation_in=self.generation_in)

    def record_generation(self, generator: str, classes: Sequence[dict], resolution: int, *, source_keys: Sequence[str],
                          identity: dict | None = None, lora: dict | None = None, data: dict | None = None,
                          sampling: dict | None = None) -> dict[str, Any]:
        """The generation config the split records (and hashes): the shared fields, with the
        generator's own in their places (``identity`` after the generator's name, ``lora`` after
        the LoRA's path, ``data`` after the text settings, ``sampling`` after the sample settings)."""
        from fetal_bench.generators.base import base_label

        record, config = self.lora_record, self.lora_record["config"]
        self.sample_cfg = {**self.setup.sample, "classes": [c["name"] for c in classes]}
        self.generation = {
            "generator": generator, **(identity or {}),
            "config_version": record["config_version"],
            "lora_path": str(Path(record.get("lora_file") or self.lora_dir).resolve()), **(lora or {}),
            "lora_sha256": record["lora_sha256"],
            "lora_config_sha256": record["config_sha256"],
            "base": self.model.identity,
            "base_model": base_label(self.model.identity),
            "resolution": resolution,
            "clip_skip": config["train"].get("clip_skip"), **(data or {}),
            "source": {k: record["data"].get(k) for k in source_keys},
            "sample": self.sample_cfg, **(sampling or {}),
            "execution": self.setup.execution,
        }
        self.resolution = resolution
        return self.generation

    def items(self, classes: Sequence[dict], condition: Callable[[dict, int], dict] | None = None) -> list:
        """``per_class`` items per class, item ``i`` seeded ``seed + i``; ``condition(class, seed)``
        gives an item's condition (the mask-conditioned variant's requested ellipse)."""
        from fetal_bench.generators.sampling import Item

        per, run_seed = int(self.sample_cfg["per_class"]), int(self.sample_cfg["seed"])
        items = []
        for k, c in enumerate(classes):
            for j in range(per):
                index = k * per + j
                item = Item(index=index, label=int(c["label"]), prompt=c["prompt"], seed=run_seed + index)
                if condition is not None:
                    item.condition = condition(c, item.seed)
                items.append(item)
        return items

    def row_id(self, item) -> str:
        return f"{self.generation['generator']}-s{int(self.sample_cfg['seed'])}-{item.index:06d}"

    def provenance_columns(self) -> dict[str, Any]:
        """The columns every row of the split carries about how it was made (``config_sha256``:
        the generation config's hash, which identifies the whole run)."""
        from fetal_bench.generators.synthetic import generator_revision

        sample, generation = self.sample_cfg, self.generation
        return {
            "generator": generation["generator"],
            "generator_revision": generator_revision(generation),
            "base_model": generation["base_model"],
            "lora_sha256": generation["lora_sha256"],
            "scheduler": str(sample["scheduler"]),
            "steps": int(sample["steps"]),
            "guidance": float(sample["guidance"]),
            "lora_scale": float(sample["lora_scale"]),
            "config_sha256": generation_sha256(generation),
        }

    def pipeline_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~fetal_bench.generators.sampling.pipeline_images`."""
        sample = self.sample_cfg
        return dict(resolution=self.resolution, steps=int(sample["steps"]), guidance=float(sample["guidance"]),
                    clip_skip=self.generation["clip_skip"], negative_prompt=str(sample.get("negative_prompt") or ""),
                    vae_scale_factor=self.model.vae_scale_factor)

    def render_shards(self, items: list, render: Callable, features):
        """Render every pending shard (resumable; several processes split them)."""
        from fetal_bench.generators import sampling as smp

        work = Path(self.options.work_dir) if self.options.work_dir else self.output.with_name(self.output.name + ".work")
        self.started = time.perf_counter()
        self.run = smp.run_sharded(items=items, render=render, features=features, work_dir=work,
                                   plan={"config_sha256": generation_sha256(self.generation)},
                                   batch_size=self.setup.execution["batch_size"],
                                   shard_size=self.setup.execution["shard_size"], on_shard=self.options.on_shard)
        return self.run

    def timing_note(self, n: int, made: str) -> str:
        """How long the run took and on what, e.g. ``8 images sampled in 1.2 s on cpu (batch 8, ...)``."""
        execution = self.setup.execution
        return (f"{n} {made} in {time.perf_counter() - self.started:.1f} s on {self.state.device} "
                f"(batch {execution['batch_size']}, shard {execution['shard_size']}, "
                f"{self.state.num_processes} process(es))")

    def write(self, *, info, features, notes: Sequence[str], extra: dict | None = None):
        """The synthetic split, its card and build record; the work directory removed (unless kept)."""
        from fetal_bench.generators import sampling as smp
        from fetal_bench.generators.synthetic import write_synthetic

        result = write_synthetic(self.output, info=info, features=features, rows=self.run.rows_iter,
                                 label_column="label", generation=self.generation, notes=notes, extra=extra,
                                 overwrite=self.options.overwrite)
        smp.finish(self.run, self.options.keep_work)
        return result

    def finish_without_writing(self) -> None:
        from fetal_bench.generators import sampling as smp

        smp.finish(self.run, self.options.keep_work)
