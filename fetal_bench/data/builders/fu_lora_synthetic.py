"""The FU-LoRA authors' synthetic set (Zenodo record 13228158) as a fetal-bench dataset.

The paper's hybrid (HB) classifiers used 5,000 of the authors' generated images, 1,000 per
class, named in their ``synthetic_train_5000.csv`` (``Image_name,Plane,Train``; fetched
pinned by sha256: :mod:`fetal_bench.data.fu_lora_lists`). Their notebook reads
each image as ``synthetic_train_5000/<Image_name>.png`` (``Replicate_All_Planes_Classification.ipynb``,
github.com/13204942/FU-LoRA at 9b84b6f, cell 25). The layout of the Zenodo archive itself could
not be checked offline, so the builder does not assume folders: it finds each listed
``<Image_name>.png`` anywhere under the raw directory (exactly once), labels it from the list,
and reports other PNG files it skipped.
"""

from __future__ import annotations

from pathlib import Path

from datasets import ClassLabel, Features, Image, Value

from fetal_bench.data.builders._common import SourceDigest, read_image_bytes
from fetal_bench.data.builders.planes import ES_PLANES
from fetal_bench.data.catalog import get_dataset_info
from fetal_bench.data.writer import BuildResult, ConfigSpec, write_dataset
from fetal_bench.errors import DataError

NAME = "fu-lora-synthetic"
# FETAL_PLANES_DB's class names, so the set mixes with a fetal-planes-es build without remapping.
FEATURES = Features({
    "id": Value("string"),
    "image": Image(),
    "label": ClassLabel(names=list(ES_PLANES)),
    "generator": Value("string"),
})
_MAX_FILES = 200_000  # the record holds thousands of PNGs; far more means the wrong directory


def _index_pngs(raw_dir: Path, wanted: set[str]) -> tuple[dict[str, Path], int]:
    """Listed stem -> its file; the number of other PNG files seen. Duplicates are an error."""
    found: dict[str, Path] = {}
    others = 0
    for count, path in enumerate(sorted(raw_dir.rglob("*.png"))):
        if count >= _MAX_FILES:
            raise DataError(f"{raw_dir} holds more than {_MAX_FILES:,} PNG files.",
                            "Point --raw at the extracted Zenodo 13228158 download only.")
        if path.stem not in wanted:
            others += 1
            continue
        if path.stem in found:
            raise DataError(f"{path.stem}.png is in {raw_dir} twice: {found[path.stem]} and {path}.",
                            "Keep one copy of the record's synthetic_train_5000 images under --raw.")
        found[path.stem] = path
    return found, others


def build_fu_lora_synthetic(raw_dir: Path, out_dir: Path, *, overwrite: bool = False,
                            progress: bool = False) -> BuildResult:
    from fetal_bench.data.fu_lora_lists import AUTHORS_COMMIT, AUTHORS_REPO, LISTS, synthetic_images

    listed = synthetic_images()
    files, others = _index_pngs(raw_dir, set(listed))
    missing = sorted(set(listed) - set(files))
    if missing:
        raise DataError(f"{len(missing)} of the {len(listed)} images of synthetic_train_5000.csv are not under "
                        f"{raw_dir} (e.g. {', '.join(m + '.png' for m in missing[:3])}).",
                        "Download and extract every file of https://zenodo.org/records/13228158 into --raw.")
    warnings = [f"{others} PNG files under {raw_dir.name}/ are not in synthetic_train_5000.csv and were skipped."] \
        if others else []
    digest = SourceDigest("images")

    def rows():
        for stem, plane in listed.items():
            data, _ = read_image_bytes(files[stem])
            relative = files[stem].relative_to(raw_dir).as_posix()
            digest.add(relative, data)
            yield {"id": stem, "image": {"bytes": data, "path": relative}, "label": ES_PLANES.index(plane),
                   "generator": "fu-lora (authors' release)"}

    list_path, list_sha = LISTS["synthetic_train_5000.csv"]
    return write_dataset(
        out_dir, get_dataset_info(NAME),
        [ConfigSpec("default", FEATURES, {"train": rows}, label_column="label")],
        sources=[{"name": f"{AUTHORS_REPO}@{AUTHORS_COMMIT[:7]}:{list_path}", "files": 1, "sha256": list_sha}, digest],
        warnings=warnings,
        notes=[f"Images and labels as listed by the authors' {list_path} ({len(listed)} rows)."],
        overwrite=overwrite,
    )
