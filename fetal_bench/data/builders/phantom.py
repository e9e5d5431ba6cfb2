"""The embedded phantom set: simulated images generated in-process, no download needed."""

from __future__ import annotations

from pathlib import Path

from fetal_bench.data import phantom
from fetal_bench.data.catalog import PHANTOM
from fetal_bench.data.writer import BuildResult, ConfigSpec, write_dataset


def build_phantom(out_dir: Path, *, overwrite: bool = False, progress: bool = False, seed: int = 0) -> BuildResult:
    splits = tuple(phantom.SPLIT_SIZES["planes"])
    configs = [
        ConfigSpec(
            "planes",
            phantom.planes_features(),
            {split: (lambda split=split: phantom.iter_planes_examples(split, seed=seed)) for split in splits},
            label_column="label",
            group_columns=("site",),
            subject_column="patient_id",
        ),
        ConfigSpec(
            "head",
            phantom.head_features(),
            {split: (lambda split=split: phantom.iter_head_examples(split, seed=seed)) for split in phantom.SPLIT_SIZES["head"]},
            subject_column="subject_id",
        ),
    ]
    return write_dataset(
        out_dir,
        PHANTOM,
        configs,
        sources=[{"name": "fetal_bench.data.phantom", "files": 0, "sha256": "", "seed": seed}],
        notes=[f"Generated in-process by fetal_bench.data.phantom with seed {seed}; the same seed gives the same bytes."],
        overwrite=overwrite,
    )
