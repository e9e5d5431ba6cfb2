#!/usr/bin/env python3
"""Would a fresh install without the lock still work today? Run before refreshing the lock.

Builds a throwaway virtual environment with the newest versions that pyproject.toml's ranges
allow (no lock), then, in it: `fetal-bench doctor --json` (which versions drifted from the lock,
which known-bad pairs are installed), `fetal-bench demo`, and a fast subset of the tests. Prints
what drifted and what broke; exits 1 when any step failed. Not part of CI's verdict: it reaches
the package index and tests tomorrow's releases, which CI must not depend on.

    python scripts/check_drift.py                      # pip, newest allowed versions
    python scripts/check_drift.py --installer uv       # the same with uv (faster)
    python scripts/check_drift.py --keep /tmp/drift    # keep the venv and outputs to look into
    python scripts/check_drift.py --tests tests/test_generators.py tests/test_doctor.py

On a machine whose pip configuration caps versions (a `constraint` in pip.conf), pip honours the
cap: the report's first lines say which versions were actually installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = ("tests/test_doctor.py", "tests/test_generators.py", "tests/test_metrics_classification.py",
                 "tests/test_models.py", "tests/test_evaluate.py")
TAIL_CHARS = 3000


def run_step(name: str, command: list[str], env: dict[str, str], log_dir: Path, timeout: int) -> dict:
    """Run one step, keep its whole log, return its outcome."""
    began = time.monotonic()
    log = log_dir / f"{name}.log"
    with open(log, "w", encoding="utf-8") as handle:
        try:
            code = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = round(time.monotonic() - began, 1)
    print(f"  {name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds} s  [{log}]", flush=True)
    return {"step": name, "exit": code, "seconds": seconds, "log": str(log)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--installer", choices=("pip", "uv"), default="pip")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    parser.add_argument("--tests", nargs="*", default=list(DEFAULT_TESTS), help="Test files to run.")
    parser.add_argument("--timeout", type=int, default=3600, help="Seconds allowed per step.")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="fetal-bench-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    venv, logs = work / "venv", work / "logs"
    logs.mkdir(exist_ok=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    fetal_bench = python.parent / "fetal-bench"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(work / "hf-home"),
           "PYTHONUNBUFFERED": "1", "VIRTUAL_ENV": str(venv),
           "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print(f"Drift check in {work}", flush=True)
    steps = [run_step("venv", [sys.executable, "-m", "venv", str(venv)], env, logs, args.timeout)]
    if args.installer == "uv":
        install = [shutil.which("uv") or "uv", "pip", "install", "--python", str(python), "--upgrade", "-e", ".[dev]"]
    else:
        install = [str(python), "-m", "pip", "install", "--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev]"]
    steps.append(run_step("install-newest", install, env, logs, args.timeout))
    drift: dict = {}
    if steps[-1]["exit"] == 0:
        doctor = subprocess.run([str(fetal_bench), "doctor", "--json", "--lock",
                                 str(REPO / "requirements" / "lock.txt")],
                                cwd=REPO, env=env, capture_output=True, text=True, check=False)
        if doctor.returncode == 0:
            drift = json.loads(doctor.stdout)
        steps.append(run_step("demo", [str(fetal_bench), "demo", "--out", str(work / "demo"),
                                       "--overwrite"], env, logs, args.timeout))
        steps.append(run_step("tests", [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
                              env, logs, args.timeout))
    _print_summary(steps, drift)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(step["exit"] == 0 for step in steps) else 1


def _print_summary(steps: list[dict], drift: dict) -> None:
    print("\nVersions that differ from requirements/lock.txt (installed <- locked):")
    mismatches = drift.get("lock", {}).get("mismatches", [])
    for item in mismatches:
        print(f"  {item['name']}: {item['installed'] or 'missing'} <- {item['locked']}")
    if drift and not mismatches:
        print("  none: the newest allowed versions are the locked ones")
    for kind in ("problems", "warnings"):
        for item in drift.get(kind, []):
            print(f"{kind[:-1].capitalize()}: {item['problem']}\n  Fix: {item['fix']}")
    for step in steps:
        if step["exit"] != 0:
            text = Path(step["log"]).read_text(encoding="utf-8", errors="replace")
            print(f"\n--- {step['step']} failed; end of its log ---\n{text[-TAIL_CHARS:]}")
    broken = [s["step"] for s in steps if s["exit"] != 0]
    print("\nDrift check: " + ("everything passed" if not broken else "BROKE: " + ", ".join(broken)))


if __name__ == "__main__":
    sys.exit(main())
