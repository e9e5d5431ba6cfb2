"""The light install (requirements/metrics.txt): scoring a submission needs no torch.

Two checks. The cheap one runs always: in a fresh interpreter of this environment, scoring a
classification and a segmentation submission imports none of torch, torchvision, diffusers,
transformers, peft, accelerate or segment-anything. The real one runs
``scripts/check_light_install.sh`` (a venv with requirements/metrics.txt and fetal-bench
``--no-deps``, torch absent) when ``FETAL_BENCH_LIGHT_VENV`` names such a venv (made by the script,
reused) or ``FETAL_BENCH_LIGHT_INSTALL=1`` lets it make one (about 2 minutes and 150 MB of
downloads from PyPI the first time; pip's cache serves reruns).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate", "segment_anything")

_SCORE = """
import sys
import numpy as np, pandas as pd
from PIL import Image
from fetal_bench.data.opening import open_dataset
from fetal_bench.evaluation import evaluate

phantom, out = sys.argv[1], sys.argv[2]
test = open_dataset(phantom, config="planes", split="test")
labels = ["abdomen", "brain", "femur", "thorax"]
proba = np.random.default_rng(0).dirichlet(np.ones(4), size=len(test))
pd.DataFrame({"id": test["id"], **{l: proba[:, k] for k, l in enumerate(labels)}}).to_csv(out + "/p.csv", index=False)
evaluate("phantom-planes", predictions=out + "/p.csv", data=phantom, output=out + "/results", n_resamples=20)
import os
os.makedirs(out + "/masks")
for row in open_dataset(phantom, config="head", split="test"):
    Image.fromarray((np.array(row["mask"]) > 0).astype(np.uint8) * 255).save(f"{out}/masks/{row['id']}.png")
result = evaluate("phantom-head-seg", predictions=out + "/masks", data=phantom, output=out + "/results", n_resamples=20)
assert result["scores"]["dice"]["value"] == 1.0
print(sorted(m for m in sys.modules if m.split(".")[0] in %r))
""" % (HEAVY,)


def test_scoring_imports_no_torch(phantom, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", _SCORE, str(phantom), str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "[]", run.stdout[-2000:]


def test_the_light_venv_scores_without_torch():
    venv = os.environ.get("FETAL_BENCH_LIGHT_VENV")
    if not venv and os.environ.get("FETAL_BENCH_LIGHT_INSTALL") != "1":
        pytest.skip("set FETAL_BENCH_LIGHT_VENV=DIR (a venv of scripts/check_light_install.sh) or "
                    "FETAL_BENCH_LIGHT_INSTALL=1 (makes one from PyPI, ~2 min)")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "check_light_install.sh"), *([venv] if venv else [])],
                         env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "no torch, diffusers, transformers, peft, accelerate or segment-anything installed" in run.stdout
    assert "scored without torch" in run.stdout
