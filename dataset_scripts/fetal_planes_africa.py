"""Release fetal-bench/fetal-planes-africa from Zenodo 7540448 (see dataset_scripts/README.md)."""

from _cli import run

from fetal_bench.data.release import ReleaseCheck

CHECK = ReleaseCheck(rows={"default": {"train": 217, "test": 233}})

if __name__ == "__main__":
    run("fetal-planes-africa", CHECK)
