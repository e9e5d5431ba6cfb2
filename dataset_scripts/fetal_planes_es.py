"""Release fetal-bench/fetal-planes-es from Zenodo 3904280 (see dataset_scripts/README.md)."""

from _cli import run

from fetal_bench.data.release import ReleaseCheck

CHECK = ReleaseCheck(rows={"default": {"train": 6432, "validation": 697, "test": 5271}})

if __name__ == "__main__":
    run("fetal-planes-es", CHECK)
