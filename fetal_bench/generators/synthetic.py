"""Synthetic splits as datasets: provenance columns, the card, and the write itself.

A synthetic split has the features of the real set it imitates plus, on every row, how it was
made (:data:`PROVENANCE_COLUMNS`). It is written with :func:`fetal_bench.data.writer.write_dataset`
like every other dataset (Parquet + card + build_info.json, atomically); the card states that
the data are synthetic and embeds the whole generation config as a YAML block, which
``sample --config DIR|README.md|CONFIG.yaml`` reads back to regenerate the split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from fetal_bench.generators.config import CARD_MARKER, dump_yaml

__all__ = ["PROVENANCE_COLUMNS", "provenance_features", "synthetic_info", "write_synthetic"]

#: Column -> meaning, for the card.
PROVENANCE_COLUMNS: dict[str, str] = {
    "seed": "seed of the CPU torch.Generator that drew this image's initial noise (= run seed + index)",
    "prompt": "the text prompt the image was generated from",
    "generator": "the generator that made the row (fu-lora, mask-guided, mask-conditioned)",
    "generator_revision": "fetal-bench version and generator config version",
    "base_model": "the base diffusion model: Hub id@commit, a local path@sha256, or tiny@sha256",
    "lora_sha256": "sha256 of the pytorch_lora_weights.safetensors applied",
    "scheduler": "the sampling scheduler",
    "steps": "number of denoising steps",
    "guidance": "classifier-free guidance scale",
    "lora_scale": "LoRA scale at sampling",
    "config_sha256": "sha256 of the whole generation config (the card's YAML block, execution settings excluded)",
}

CITATIONS = {
    "fu-lora": (
        "@inproceedings{wang2024fulora,\n"
        "  title={Generative Diffusion Model Bootstraps Zero-shot Classification of Fetal Ultrasound "
        "Images In Underrepresented African Populations},\n"
        "  author={Wang, Fangyijie and Whelan, Kevin and Silvestre, Gu{\\'e}nol{\\'e} and Curran, Kathleen M.},\n"
        "  booktitle={MICCAI 2024 Workshop on Perinatal Imaging, Placental and Preterm Image Analysis (PIPPI)},\n"
        "  year={2024}, note={arXiv:2407.20072}\n}"
    ),
    "mask-guided": (
        "@inproceedings{wang2025maskguided,\n"
        "  title={Diffusion Model-based Data Augmentation Method for Fetal Head Ultrasound Segmentation},\n"
        "  author={Wang, Fangyijie and others},\n"
        "  booktitle={Irish Machine Vision and Image Processing Conference (IMVIP)},\n"
        "  year={2025}, note={arXiv:2506.23664}\n}"
    ),
}
CITATIONS["mask-conditioned"] = CITATIONS["mask-guided"]


def provenance_features() -> dict[str, Any]:
    from datasets import Value

    return {
        "seed": Value("int64"),
        "prompt": Value("string"),
        "generator": Value("string"),
        "generator_revision": Value("string"),
        "base_model": Value("string"),
        "lora_sha256": Value("string"),
        "scheduler": Value("string"),
        "steps": Value("int32"),
        "guidance": Value("float32"),
        "lora_scale": Value("float32"),
        "config_sha256": Value("string"),
    }


def generator_revision(generation: Mapping[str, Any]) -> str:
    from fetal_bench import __version__

    return f"fetal-bench {__version__}; {generation['generator']} config v{generation['config_version']}"


def _license(generation: Mapping[str, Any]) -> str:
    base = generation.get("base", {})
    if base.get("kind") == "tiny":
        return generation.get("source", {}).get("license") or "other"
    # Images made by Stable Diffusion v1 come under its licence's use restrictions.
    return "creativeml-openrail-m"


def synthetic_info(
    *,
    generation: Mapping[str, Any],
    title: str,
    summary: str,
    features: Mapping[str, str],
    reproduce: str,
    task_categories: Sequence[str],
):
    """The :class:`~fetal_bench.data.catalog.DatasetInfo` of a synthetic split."""
    from fetal_bench.data.catalog import DatasetInfo

    generator = str(generation["generator"])
    source = generation.get("source", {})
    description = "\n".join([
        summary,
        "",
        f"Made by `fetal-bench generate` from the real split `{source.get('split')}` of "
        f"`{source.get('dataset') or source.get('path')}`"
        + (f" (config `{source.get('config')}`)" if source.get("config") else "")
        + f", base model `{generation.get('base_model')}`, LoRA sha256 `{str(generation.get('lora_sha256'))[:16]}`.",
        "Every row records its seed, prompt and the generator settings; the whole generation config "
        "is below. Regenerate this split with:",
        "",
        "```bash",
        reproduce,
        "```",
        "",
        "### Generation config",
        "",
        CARD_MARKER,
        "```yaml",
        dump_yaml(generation).rstrip(),
        "```",
    ])
    return DatasetInfo(
        name=f"synthetic-{generator}",
        title=f"{title} (fetal-bench synthetic split): generated images, NOT clinical data",
        description=description,
        hub_id=None,
        revision=generator_revision(generation),
        license=_license(generation),
        citation=CITATIONS.get(generator, ""),
        homepage="https://github.com/fetal-bench/fetal-bench",
        features={**dict(features), **PROVENANCE_COLUMNS},
        splits={"train": "every generated (and accepted) sample"},
        split_rule="Synthetic: one split, `train`. Row i was generated from seed + i; see `seed`.",
        split_seed=int(generation["sample"]["seed"]),
        task_categories=tuple(task_categories),
        tags=("synthetic", "generated", "ultrasound", "fetal", generator),
        simulated=True,
    )


def write_synthetic(
    out_dir: str | Path,
    *,
    info,
    features,
    rows: Callable[[], Iterator[dict]],
    label_column: str | None,
    generation: Mapping[str, Any],
    notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
):
    """Write a synthetic split (config ``default``, split ``train``) with its card and build record."""
    from fetal_bench.data.writer import ConfigSpec, write_dataset

    spec = ConfigSpec("default", features, {"train": rows}, label_column=label_column)
    return write_dataset(
        out_dir,
        info,
        [spec],
        sources=[{"name": f"fetal-bench generate {generation['generator']}", "files": 0,
                  "sha256": str(generation.get("lora_sha256") or "")}],
        notes=list(notes),
        warnings=list(warnings),
        extra_build_info={"generation": dict(generation), **(dict(extra) if extra else {})},
        overwrite=overwrite,
    )
