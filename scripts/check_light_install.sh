#!/usr/bin/env bash
# The light install, proved: a fresh virtual environment with requirements/metrics.txt at the
# lock's versions and fetal-bench without its dependencies (no torch, diffusers, transformers,
# peft, accelerate, segment-anything) builds the phantom set and scores a classification and a
# segmentation submission, and the `evaluate` metric module computes a metric.
#
#   scripts/check_light_install.sh [VENV_DIR]     # reaches PyPI once; pip's cache makes reruns quick
#
# Not part of the test suite (it downloads ~150 MB of wheels the first time); tests/test_light_install.py
# runs it when FETAL_BENCH_LIGHT_VENV names a venv this script made (or set FETAL_BENCH_LIGHT_INSTALL=1
# to let the test make one). Prints the seconds each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
VENV=${1:-$WORK/venv}
PYTHON=${PYTHON:-python3}
start=$(date +%s)
if [ ! -x "$VENV/bin/fetal-bench" ]; then
    "$PYTHON" -m venv "$VENV"
    sed -E -n 's/^([A-Za-z0-9._-]+==[^ \\]+( ; [^\\]+)?).*/\1/p' requirements/lock.txt > "$WORK/constraints.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check -c "$WORK/constraints.txt" -r requirements/metrics.txt
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation "$ROOT" 2>/dev/null \
        || "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "$ROOT"
fi
installed=$(date +%s)
echo "install: $((installed - start)) s ($(du -sh "$VENV" | cut -f1))"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME="$WORK/hf" FETAL_BENCH_CACHE="$WORK/cache"
cd "$WORK"  # never the checkout: the installed package is what is tested
"$VENV/bin/python" - <<'PY'
import importlib.util
heavy = [name for name in ("torch", "torchvision", "diffusers", "transformers", "peft", "accelerate",
                           "segment_anything") if importlib.util.find_spec(name) is not None]
assert not heavy, f"the light venv has {heavy}"
print("no torch, diffusers, transformers, peft, accelerate or segment-anything installed")
PY
"$VENV/bin/fetal-bench" datasets build phantom --out phantom > build.log
"$VENV/bin/python" - <<'PY'
import io

import datasets
import numpy as np
import pandas as pd
from PIL import Image

datasets.disable_progress_bars()
test = datasets.load_dataset("phantom", "planes", split="test")
labels = ["abdomen", "brain", "femur", "thorax"]
proba = np.random.default_rng(0).dirichlet(np.ones(len(labels)), size=len(test))
pd.DataFrame({"id": test["id"], **{label: proba[:, k] for k, label in enumerate(labels)}}).to_csv(
    "planes.csv", index=False, float_format="%.3f")  # 3 decimals: within the tolerance
heads = datasets.load_dataset("phantom", "head", split="test")
import os
os.makedirs("masks", exist_ok=True)
for row in heads:
    mask = np.array(row["mask"]) > 0
    Image.fromarray(mask.astype(np.uint8) * 255).save(f"masks/{row['id']}.png")
PY
"$VENV/bin/fetal-bench" evaluate --task phantom-planes --predictions planes.csv --data phantom --output results \
    --bootstrap 100 > planes.log
"$VENV/bin/fetal-bench" evaluate --task phantom-head-seg --predictions masks --data phantom --output results \
    --bootstrap 100 > heads.log
grep -E "accuracy \(main\)|dice \(main\)" planes.log heads.log
"$VENV/bin/python" - <<'PY'
import json, sys
from pathlib import Path

from fetal_bench.metrics import load_evaluate_metric

results = sorted(Path("results").glob("*.json"))
assert len(results) == 2, results
heads = json.loads(next(p for p in results if "head" in p.name).read_text())
assert heads["scores"]["dice"]["value"] == 1.0, heads["scores"]["dice"]  # the reference masks themselves
metric = load_evaluate_metric("accuracy")  # the `evaluate` module, as a Space runs it
print("evaluate module:", metric.compute(predictions=[0, 1, 1], references=[0, 1, 0]))
assert "torch" not in sys.modules
print("scored without torch")
PY
echo "checks: $(( $(date +%s) - installed )) s"
