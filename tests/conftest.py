"""Test-wide settings: offline Hugging Face, a private HF cache, and the real reference data.

The real files (``../shared/data`` in the development layout) are found through the
``FETAL_BENCH_SHARED_DATA`` environment variable, which ``.ci/run`` sets; tests that need them
skip cleanly where it is unset.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub/datasets: never touch the network or the shared cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# One private folder per test session for the HF cache and fetal-bench's own cache (decoded
# images, fingerprints, weights): tests never read or fill the user's ~/.cache, and nothing is
# left behind in /tmp when the session ends.
_SESSION_DIR = tempfile.mkdtemp(prefix="fetal-bench-tests-")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ.setdefault("HF_HOME", os.path.join(_SESSION_DIR, "hf-home"))
os.environ.setdefault("FETAL_BENCH_CACHE", os.path.join(_SESSION_DIR, "fetal-bench-cache"))

import pytest  # noqa: E402

SHARED_DATA_ENV = "FETAL_BENCH_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real reference data; skips the test where it is not available."""
    root = os.environ.get(SHARED_DATA_ENV)
    if not root or not Path(root).is_dir():
        pytest.skip(f"real reference data not available (set {SHARED_DATA_ENV})")
    return Path(root)


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Path:
    """The embedded phantom set, built once per test session (tests only read it)."""
    from fetal_bench.data.builders import build_dataset

    out = tmp_path_factory.mktemp("phantom") / "phantom"
    build_dataset("phantom", out)
    return out


@pytest.fixture(scope="session")
def phantom_dir(phantom) -> Path:
    """The same session build, under the name the training and model tests use."""
    return phantom


@pytest.fixture
def fu_lora_lists(shared_data, monkeypatch) -> Path:
    """The FU-LoRA authors' lists from the shared copy (fetal-bench downloads them, pinned by
    sha256, where there is a network; tests never do)."""
    folder = shared_data / "fu_lora_lists"
    if not folder.is_dir():
        pytest.skip("the shared data has no fu_lora_lists/")
    monkeypatch.setenv("FETAL_BENCH_FU_LORA_LISTS", str(folder))
    return folder


# The local stand-in for Zenodo, as a fixture for every test module.
from fake_zenodo import zenodo  # noqa: E402,F401


@pytest.fixture(scope="session")
def hc18_real_build(shared_data, tmp_path_factory):
    """The shared HC18 copy built once per session (about 30 s): (build dir, BuildResult)."""
    from fetal_bench.data.builders import build_dataset

    out = tmp_path_factory.mktemp("hc18-real") / "hc18"
    result = build_dataset("hc18", out, raw_dir=shared_data / "hc18")
    return out, result


@pytest.fixture(scope="session")
def hc18_size_shift_real_build(shared_data, tmp_path_factory):
    """The shared HC18 copy built once per session as hc18-size-shift (about 30 s): the build dir."""
    from fetal_bench.data.builders import build_dataset

    out = tmp_path_factory.mktemp("hc18-size-shift-real") / "hc18-size-shift"
    build_dataset("hc18-size-shift", out, raw_dir=shared_data / "hc18")
    return out


@pytest.fixture(scope="session")
def africa_real_build(shared_data, tmp_path_factory):
    """The shared African planes copy (all 450 images) built once per session (a few seconds)."""
    from fetal_bench.data.builders import build_dataset

    out = tmp_path_factory.mktemp("africa-real") / "fetal-planes-africa"
    result = build_dataset("fetal-planes-africa", out, raw_dir=shared_data / "african_planes")
    return out, result
