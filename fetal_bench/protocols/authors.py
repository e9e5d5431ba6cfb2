"""The authors' training settings, per "paper" protocol, each with its source.

A protocol that says "paper" trains as the authors' own code did. This module lists, for every
field of :class:`~fetal_bench.training.config.TrainConfig`, what the authors' code does
(:class:`Authors`, with the file and line or notebook cell at a pinned commit), or what
fetal-bench does instead and why (:class:`Ours`: a documented difference), or why the field
cannot change what is trained there (:class:`Inert`). :func:`departures` compares a resolved
training config with the list: a setting that is neither the authors' value nor a labelled
difference of ours (gradient clipping the authors never used, bf16 where they trained in fp32) is
reported, and ``tests/test_protocol_authors.py`` fails on it. docs/reproducibility.md shows the
same settings side by side with the papers.

Values are in TrainConfig's vocabulary, as ``TrainConfig.to_dict()`` writes them (tuples as
lists). A value that differs between a protocol's runs is a mapping from the run's variant (or
arm) to the value; :class:`OneOf` allows any of several values (the five backbones).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["AUTHORS_SETTINGS", "Authors", "Inert", "NOT_TRAINING", "OneOf", "Ours", "departures", "iqa_config",
           "paper_settings"]

#: The authors' repositories at the commits every source below cites.
FU_LORA = "13204942/FU-LoRA@9b84b6ffe99c862810d091b5b611e0f8fff64b04"
FU_LORA_NB = f"{FU_LORA} Replicate_All_Planes_Classification.ipynb"
MASK_GUIDED = "13204942/Diffusion-based_DA_Fetal_Ultrasound_Segmentation@200ae09930581435d9febc67d160ce344c5b169c"
FT_SAM = f"{MASK_GUIDED} code/FT_SAM/code/src/ft_sam_ESTT.py"
SAM_DATA = f"{MASK_GUIDED} code/FT_SAM/code/src/utils/Datasets.py"
SAM_NB = f"{MASK_GUIDED} code/FT_SAM/code/new_sp_runner_head.ipynb"
IQA = "donglihe-hub/FetalCLIP-IQA@fbcbdd21cc5d3ea12b257735b5316319cec3f49a"


@dataclass(frozen=True)
class OneOf:
    """Any of these values (a setting the protocol varies over runs, each the authors')."""

    values: tuple

    def matches(self, value: Any) -> bool:
        return value in self.values


@dataclass(frozen=True)
class Authors:
    """What the authors' code does; ``source``: repository@commit, file:line or notebook cell."""

    value: Any
    source: str


@dataclass(frozen=True)
class Ours:
    """A documented difference: fetal-bench's value and why it is not the authors'."""

    value: Any
    why: str


@dataclass(frozen=True)
class Inert:
    """A field that cannot change what is trained in this protocol (and why)."""

    why: str


Entry = Authors | Ours | Inert

#: Fields that name where things are, or how a run is reported, never what is trained.
NOT_TRAINING = frozenset({"output", "data", "data_config", "synthetic", "synthetic_config", "num_workers", "progress",
                          "resume", "overwrite", "run_name", "checkpoint_every_steps", "log_every_steps",
                          "recipe"})  # recipe: what it fills (image_size, batch_size, model_cfg) is checked itself

_NO_EARLY_STOP = Inert("no early stopping and keep: last: never read")
_VALIDATION_ONLY = Inert("validation is logged only (keep: last, no early stopping): it selects nothing")

#: protocol -> TrainConfig field -> the authors' value (with source), ours (with why) or inert.
AUTHORS_SETTINGS: dict[str, dict[str, Entry]] = {
    "fu-lora-zero-shot": {
        "model": Authors(OneOf(("densenet169", "mobilenet_v2", "efficientnet_b0", "resnet18", "vit_b_16")),
                         f"{FU_LORA_NB} cell 32"),
        "task": Authors("planes-africa-zero-shot", f"{FU_LORA_NB} cells 8, 11 (African_test.csv, 233 images)"),
        "train_split": Authors("train+validation", f"{FU_LORA_NB} cells 0, 4 (all_train_no_cer.csv: the official "
                                                    "training rows without cervix)"),
        "val_split": Ours("validation", "logged only; the notebook logs 200 random training images (cell 42)"),
        "exclude_labels": Authors(["Maternal cervix"], f"{FU_LORA_NB} cells 13, 32"),
        "real_list": Authors({"ES": None, "ES+DA": None, "HB": "fu-lora-hb", "HB+DA": "fu-lora-hb"},
                             f"{FU_LORA_NB} cells 0, 4 (spain_train_1150_balanced.csv for HB)"),
        "real_per_class": Authors(None, f"{FU_LORA_NB} cells 0, 4: every row of the list"),
        "real_n": Authors(None, f"{FU_LORA_NB} cells 0, 4: every row of the list"),
        "synthetic_ratio": Authors(None, f"{FU_LORA_NB} cells 7, 38: a count per class, not a share"),
        "synthetic_per_class": Authors({"ES": None, "ES+DA": None, "HB": 1000, "HB+DA": 1000},
                                       f"{FU_LORA_NB} cells 7, 38 (synthetic_train_5000.csv)"),
        "synthetic_n": Authors(None, f"{FU_LORA_NB} cells 7, 38"),
        "model_cfg": Authors({"pretrained": True, "channels": 3, "normalize": "none"},
                             f"{FU_LORA_NB} cells 24 (Normalize([0,0,0], [1,1,1])), 25 (IMREAD_COLOR), 32 "
                             "(ImageNet weights)"),
        "image_size": Authors([224, 224], f"{FU_LORA_NB} cell 24 (Resize((224, 224)))"),
        "init_from": Authors(None, f"{FU_LORA_NB} cell 32: ImageNet weights"),
        "epochs": Authors(20, f"{FU_LORA_NB} cell 35"),
        "max_steps": Authors(None, f"{FU_LORA_NB} cell 47: every batch of every epoch"),
        "max_minutes": Authors(None, f"{FU_LORA_NB} cell 47: no time limit"),
        "batch_size": Authors(24, f"{FU_LORA_NB} cell 35"),
        "eval_batch_size": _VALIDATION_ONLY,
        "optimizer": Authors("sgd", f"{FU_LORA_NB} cell 35"),
        "lr": Authors(0.001, f"{FU_LORA_NB} cell 35"),
        "momentum": Authors(0.9, f"{FU_LORA_NB} cell 35"),
        "weight_decay": Authors(0.0, f"{FU_LORA_NB} cell 35 (no weight_decay argument)"),
        "scheduler": Authors("none", f"{FU_LORA_NB} cell 47 (no scheduler)"),
        "warmup_steps": Authors(0, f"{FU_LORA_NB} cell 47"),
        "grad_clip": Authors(0.0, f"{FU_LORA_NB} cell 47 (loss.backward(); optimizer.step(): no clipping)"),
        "mixed_precision": Authors("no", f"{FU_LORA_NB} cells 35, 47 (no autocast, no GradScaler: fp32)"),
        "augment": Ours({"ES": "none", "ES+DA": "fu-lora", "HB": "none", "HB+DA": "fu-lora"},
                        "cell 24's ranges (rotation ±15°, RandomResizedCrop scale 0.08-1, flip) composed into one "
                        "affine map and resampled once, not torchvision's sequence"),
        "patience": Authors(None, f"{FU_LORA_NB} cell 47 (early stopping commented out)"),
        "keep": Authors("last", f"{FU_LORA_NB} cells 49-51 (the model after epoch 20 is saved and scored)"),
        "min_delta": _NO_EARLY_STOP,
        "val_every_steps": _VALIDATION_ONLY,
        "box_jitter": Inert("classification: no box prompts"),
        "seed": Authors(0, f"{FU_LORA_NB} cell 24 (torch.manual_seed(0))"),
    },
    "sam-few-shot": {
        "model": Authors("sam", f"{FT_SAM}:162 (SamModel.from_pretrained('facebook/sam-vit-base'))"),
        "task": Ours("hc18-head-seg", "the authors' Spanish head masks and lists (sp_head_train) are not published"),
        "train_split": Ours("train", "the task's training split (theirs: sp_head_train, unpublished)"),
        "val_split": Ours("validation", "logged only; ft_sam selects its checkpoint on validation loss (lines 254-259)"),
        "exclude_labels": Inert("segmentation: no labels"),
        "real_list": Ours(None, "n rows drawn from the training split; their lists are unpublished"),
        "real_per_class": Inert("segmentation: no classes"),
        "real_n": Inert("the run's n (the protocol's shots; ft_sam --train_size, e.g. 500 in the notebook cell 22)"),
        "synthetic_ratio": Authors(None, f"{FT_SAM}:57 (--syn_size: a count)"),
        "synthetic_n": Inert("the run's synthetic count (ft_sam --syn_size)"),
        "synthetic_per_class": Inert("segmentation: no classes"),
        "model_cfg": Authors({"backend": "transformers", "variant": "vit_b", "pretrained": True, "image_size": [256, 256]},
                             f"{FT_SAM}:162; {SAM_NB} cell 22 (--image_size 256)"),
        "image_size": Inert("the input size is model_cfg.image_size"),
        "init_from": Authors(None, f"{FT_SAM}:162 (the published SAM weights)"),
        "epochs": Authors(20, f"{FT_SAM}:48; {SAM_NB} cell 22"),
        "max_steps": Authors(None, f"{FT_SAM}:184-207 (every batch)"),
        "max_minutes": Authors(None, f"{FT_SAM}:184-207 (no time limit)"),
        "batch_size": Authors(5, f"{FT_SAM}:51; {SAM_NB} cell 22"),
        "eval_batch_size": _VALIDATION_ONLY,
        "optimizer": Authors("adam", f"{FT_SAM}:170"),
        "lr": Authors(1e-05, f"{FT_SAM}:71"),
        "momentum": Inert("Adam has no momentum argument"),
        "weight_decay": Authors(0.0, f"{FT_SAM}:170"),
        "scheduler": Authors("none", f"{FT_SAM}:170-207 (no scheduler)"),
        "warmup_steps": Authors(0, f"{FT_SAM}:170-207"),
        "grad_clip": Authors(0.0, f"{FT_SAM}:203-207 (backward, then step: no clipping)"),
        "mixed_precision": Authors("no", f"{FT_SAM}:184-207 (no autocast: fp32)"),
        "augment": Ours("none", f"the notebook runs --data_agumentation SA ({SAM_NB} cell 22): rotation, HSV, "
                                "elastic, coarse dropout"),
        "patience": Authors(None, f"{FT_SAM}:184-259 (no early stopping)"),
        "keep": Ours("last", "ft_sam keeps the last new validation-loss minimum after epoch 6 (lines 254-259); the loop "
                             "selects on Dice and cannot restrict epochs"),
        "min_delta": _NO_EARLY_STOP,
        "val_every_steps": _VALIDATION_ONLY,
        "box_jitter": Ours([0.0, 20.0], f"uniform 0-20 px; {SAM_DATA}:66-69 moves each side by randint(0, 20) = 0-19"),
        "seed": Ours(0, f"{FT_SAM} sets no seed (runs are not reproducible); fetal-bench seeds every run"),
    },
}

# The IQA runs (`fetal-bench train MODEL --task acouslic-iqa`, the models' registered defaults):
# FetalCLIP-IQA's main.py trains every model with the same Lightning loop.
_IQA_COMMON: dict[str, Entry] = {
    "task": Authors("acouslic-iqa", f"{IQA} data.py, preprocess.py (usable = any abdomen pixel)"),
    "train_split": Authors("train", f"{IQA} preprocess.py (70/10/20 by case; `--split-rule paper` builds theirs)"),
    "val_split": Authors("validation", f"{IQA} main.py:160 (val_dataloader)"),
    "exclude_labels": Authors([], f"{IQA} preprocess.py (two classes)"),
    "real_list": Authors(None, f"{IQA} preprocess.py: every frame of the kept sweeps"),
    "real_per_class": Authors(None, f"{IQA} preprocess.py"),
    "real_n": Authors(None, f"{IQA} preprocess.py"),
    "synthetic_ratio": Authors(None, f"{IQA}: no synthetic data"),
    "synthetic_per_class": Authors(None, f"{IQA}: no synthetic data"),
    "synthetic_n": Authors(None, f"{IQA}: no synthetic data"),
    "model_cfg": Inert("the model's options (LoRA targets, weights) are checked by its builder; docs/image_quality.md"),
    "image_size": Inert("the model's input size (224, as theirs: FetalCLIP_config.json image_size)"),
    "init_from": Authors(None, f"{IQA} main.py:35-45, 88-89 (published weights)"),
    "epochs": Authors(5, f"{IQA} config/classification.yml, config/segmentation.yml (max_epochs: 5)"),
    "max_steps": Authors(None, f"{IQA} main.py:230-241 (no step limit)"),
    "max_minutes": Authors(None, f"{IQA} main.py:230-241 (no time limit)"),
    "batch_size": Authors(32, f"{IQA} config/classification.yml (batch_size: 32)"),
    "eval_batch_size": Inert("validation batches change no weight"),
    "optimizer": Authors("adamw", f"{IQA} model.py:139-140, 301-302"),
    "lr": Authors(0.0003, f"{IQA} model.py:51, 168"),
    "momentum": Inert("AdamW has no momentum argument"),
    "weight_decay": Authors(0.01, f"{IQA} model.py:140, 302 (torch.optim.AdamW's default)"),
    "scheduler": Authors("none", f"{IQA} model.py:139-140, 301-302 (configure_optimizers returns no scheduler)"),
    "warmup_steps": Authors(0, f"{IQA} model.py:139-140"),
    "grad_clip": Authors(0.0, f"{IQA} main.py:230-241 (L.Trainer without gradient_clip_val: no clipping)"),
    "mixed_precision": Ours("auto", f"theirs: precision='bf16-mixed' on a GPU ({IQA} main.py:236); auto is bf16 on a "
                                    "GPU that supports it, fp16 on an older one; on a CPU bf16 with bf16 units, else fp32"),
    "augment": Ours("ultrasound", f"theirs: two offline copies per frame ({IQA} preprocess.py: ColorJitter, CLAHE, "
                                  "Affine); fetal-bench augments online"),
    "patience": Ours(5, f"on validation F1; theirs EarlyStopping(patience=5) on val/loss ({IQA} main.py:216); neither "
                        "can stop a 5-epoch run"),
    "keep": Ours("best", f"best validation F1; theirs the lowest validation loss ({IQA} main.py:210-214 "
                         "ModelCheckpoint(monitor='val/loss'))"),
    "min_delta": Ours(0.0, "any improvement counts, as Lightning's default min_delta 0"),
    "val_every_steps": Authors(None, f"{IQA} main.py:230-241 (validation once per epoch)"),
    "box_jitter": Inert("no box prompts"),
    "seed": Ours(0, f"theirs: 5 unseeded trials ({IQA} config/classification.yml num_trials: 5)"),
}

AUTHORS_SETTINGS["acouslic-iqa:fetalclip_lora"] = {
    **_IQA_COMMON, "model": Authors("fetalclip_lora", f"{IQA} main.py:35-45, 192-205 (FetalCLIP, LoRA on c_fc, "
                                                       "c_proj, out_proj)")}
AUTHORS_SETTINGS["acouslic-iqa:vit_lora"] = {
    **_IQA_COMMON, "model": Ours("vit_lora", f"torchvision ViT-B/16; theirs timm "
                                             f"vit_large_patch14_clip_224.openai_ft_in12k_in1k ({IQA} main.py:57)")}
AUTHORS_SETTINGS["acouslic-iqa:unet-iqa"] = {
    **_IQA_COMMON, "model": Ours("unet-iqa", f"a U-Net; theirs FetalCLIP with a UNETR decoder ({IQA} model.py:157-158)"),
    "augment": Ours("ultrasound", "as the classifiers (theirs: offline copies)")}


def paper_settings(name: str) -> dict[str, Entry]:
    return AUTHORS_SETTINGS[name]


def iqa_config(model: str):
    """The resolved training config of ``fetal-bench train MODEL --task acouslic-iqa`` (defaults only)."""
    from fetal_bench.training.config import TrainConfig, resolve_config

    return resolve_config(TrainConfig(model=model, task="acouslic-iqa", output="unused", recipe="default"))


def _expected(value: Any, run: str | None) -> Any:
    if isinstance(value, dict) and run in value and all(isinstance(k, str) for k in value):
        return value[run]
    return value


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, OneOf):
        return expected.matches(actual)
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return float(expected) == float(actual)
        except (TypeError, ValueError):
            return False
    return expected == actual


def departures(name: str, config: dict[str, Any], run: str | None = None) -> list[str]:
    """What in a resolved training config (``TrainConfig.to_dict()``) is neither the authors'
    setting nor a labelled difference of ours; ``run``: the run's variant or arm where values
    differ between runs. Empty when the run trains as the authors did (or as documented)."""
    from fetal_bench.training.config import TrainConfig

    settings = AUTHORS_SETTINGS[name]
    problems = []
    for field in (f.name for f in fields(TrainConfig)):
        if field in NOT_TRAINING:
            continue
        entry = settings.get(field)
        if entry is None:
            problems.append(f"{field}={config.get(field)!r}: not in the authors' list (add its source or a label)")
        elif isinstance(entry, Inert):
            continue
        else:
            expected = _expected(entry.value, run)
            if not _same(expected, config.get(field)):
                what = f"the authors' {expected!r} ({entry.source})" if isinstance(entry, Authors) else \
                    f"the documented {expected!r} ({entry.why})"
                problems.append(f"{field}={config.get(field)!r}, not {what}")
    return problems
