#!/usr/bin/env bash
# Regenerate requirements/lock.txt: the exact, hash-checked environment that CI tests and that the
# README's install command gives. Run it on purpose (after scripts/check_drift.py), review the diff,
# run the tests, commit. Needs uv (`pip install uv`); reaches PyPI.
#
# --universal: one lock for Linux, macOS and Windows and every Python the project supports, with
# environment markers where they differ (CI tests CPython 3.11 on Linux x86_64).
# --constraint requirements/torch-pin.txt: the torch/torchvision pair is raised by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile pyproject.toml \
    --extra dev \
    --universal \
    --python-version 3.10 \
    --generate-hashes \
    --index-url https://pypi.org/simple \
    --constraint requirements/torch-pin.txt \
    --custom-compile-command "scripts/update_lock.sh" \
    --output-file requirements/lock.txt \
    "$@"
