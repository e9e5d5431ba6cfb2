"""Release fetal-bench/hc18 from Zenodo 1327317 (see dataset_scripts/README.md)."""

from _cli import run

from fetal_bench.data.release import ReleaseCheck

# train/validation/test sizes follow from the subject-hash rule; what the official release fixes
# is 999 labelled images plus 335 challenge images.
CHECK = ReleaseCheck(rows={"default": {"challenge_test": 335}}, total_rows={"default": 999 + 335})

if __name__ == "__main__":
    run("hc18", CHECK)
