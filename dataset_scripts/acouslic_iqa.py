"""Release fetal-bench/acouslic-iqa from Zenodo 12697994 v1.1 (see dataset_scripts/README.md).

Rows follow from the sweeps that have a reference abdominal circumference (140 frames each; the
paper's rule), so no per-split row count is pinned here. What the release check does hold: no
build warning, so the CSV lists the official 300 cases and every case has its image and mask
stacks, and no subject is shared between splits. Licence CC BY-NC-SA 4.0 (the card says so).
"""

from _cli import run

from fetal_bench.data.release import ReleaseCheck

CHECK = ReleaseCheck(rows={})

if __name__ == "__main__":
    run("acouslic-iqa", CHECK)
