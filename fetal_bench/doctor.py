"""`fetal-bench doctor`: one report of the environment, for bug reports and for "why does it fail here?".

It says which versions of the packages fetal-bench stands on are installed and whether they
are the ones of the tested lock (``requirements/lock.txt``), what torch can run on, which
offline switches and cache folders are in force, which reference weights are present and where
they are looked for, and which known-bad combinations of versions are installed, each with its
fix. Nothing here downloads anything or changes the environment.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["KNOWN_BAD_COMBINATIONS", "KnownBadCombination", "REPORTED_PACKAGES", "default_lock_path",
           "diagnose", "read_lock"]

#: The packages whose versions decide whether fetal-bench works, in the order the report lists them.
REPORTED_PACKAGES = ("torch", "torchvision", "datasets", "huggingface_hub", "diffusers", "transformers", "peft",
                     "accelerate", "evaluate", "safetensors", "numpy", "segment-anything", "open_clip_torch")

#: Environment switches that change where fetal-bench and the HF libraries look or whether they go online.
ENVIRONMENT_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "FETAL_BENCH_OFFLINE",
                         "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ENDPOINT", "FETAL_BENCH_CACHE",
                         "CUDA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class KnownBadCombination:
    """Two installed versions that are known not to work together, and what breaks.

    ``breaks_fetal_bench`` False: the pair breaks a path of another library that fetal-bench
    does not take (reported as a note, for users' own scripts: the tested lock may hold such a
    pair); True: a fetal-bench command fails (a problem).
    """

    package: str
    specifier: str
    other: str
    other_specifier: str
    problem: str
    fix: str
    breaks_fetal_bench: bool

    def applies(self, versions: dict[str, str | None]) -> bool:
        from packaging.specifiers import SpecifierSet

        mine, theirs = versions.get(self.package), versions.get(self.other)
        if mine is None or theirs is None:
            return False
        return (SpecifierSet(self.specifier).contains(mine, prereleases=True)
                and SpecifierSet(self.other_specifier).contains(theirs, prereleases=True))


KNOWN_BAD_COMBINATIONS = (
    KnownBadCombination(
        "transformers", ">=5.24", "peft", "<0.22",
        "transformers >= 5.24 refuses every peft below 0.22 in its own LoRA integration (model.add_adapter, "
        "load_adapter), so diffusers' `pipe.load_lora_weights` fails on any LoRA with text-encoder weights. "
        "fetal-bench itself injects and loads LoRAs through peft and is not affected; your own scripts that "
        "call those methods are.",
        "For your own scripts: install peft >= 0.22 once it is released, or `pip install 'transformers<5.24'`.",
        breaks_fetal_bench=False,
    ),
    KnownBadCombination(
        "torch", "==2.13.0+cpu", "torchvision", ">=0",
        "The CPU-only torch 2.13.0 wheel has no torchvision that imports beside it "
        "('operator torchvision::nms does not exist'); segment-anything and the classifiers need torchvision.",
        "Install the tested pair from the lock: `pip install --require-hashes -r requirements/lock.txt`.",
        breaks_fetal_bench=True,
    ),
)

_LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?\s*$")


def default_lock_path() -> Path | None:
    """``requirements/lock.txt`` of the source checkout fetal-bench runs from, if there is one."""
    candidate = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
    return candidate if candidate.is_file() else None


def read_lock(path: str | os.PathLike) -> dict[str, str]:
    """The pinned version of every package the lock installs on *this* interpreter and platform.

    Lines whose environment marker does not hold here (another Python or platform) are left out.
    """
    from packaging.markers import InvalidMarker, Marker
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _LOCK_LINE.match(line.strip())
        if not match:
            continue
        name, version, marker = match.groups()
        try:
            if marker and not Marker(marker).evaluate():
                continue
        except InvalidMarker:
            continue
        pins[canonicalize_name(name)] = version
    return pins


def _installed_versions() -> dict[str, str]:
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(canonicalize_name(name), dist.version)
    return versions


def _torch_report() -> tuple[dict[str, Any], list[dict[str, str]]]:
    """What torch can run on; problems when torch or torchvision cannot be imported."""
    problems: list[dict[str, str]] = []
    report: dict[str, Any] = {"importable": False, "cuda_available": False, "cuda_version": None,
                              "devices": [], "mps_available": False, "torchvision_importable": False}
    try:
        import torch
    except (ImportError, OSError) as err:
        problems.append({"problem": f"torch does not import: {err}",
                         "fix": "Install from the lock: `pip install --require-hashes -r requirements/lock.txt`."})
        return report, problems
    report["importable"] = True
    report["cuda_available"] = bool(torch.cuda.is_available())
    report["cuda_version"] = torch.version.cuda
    if report["cuda_available"]:
        report["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    report["mps_available"] = bool(mps is not None and mps.is_available())
    try:
        import torchvision  # noqa: F401  (the import itself is the check: a mismatched pair fails here)

        report["torchvision_importable"] = True
    except (ImportError, OSError, RuntimeError) as err:
        problems.append({"problem": f"torchvision does not import beside torch {torch.__version__}: {err}",
                         "fix": "Install the matching pair from the lock: "
                                "`pip install --require-hashes -r requirements/lock.txt`."})
    return report, problems


def _weights_report() -> list[dict[str, Any]]:
    """Each reference weights file: present or not, and every place fetal-bench looks for it."""
    from fetal_bench.data.pinned_files import weights_dir

    def local(name: str, filename: str, env_var: str, expected_size: int | None, how: str) -> dict[str, Any]:
        places = ([os.environ[env_var]] if os.environ.get(env_var) else []) + [str(weights_dir() / filename)]
        found = next((p for p in places if Path(p).is_file()), None)
        note = None
        if found and expected_size is not None and Path(found).stat().st_size != expected_size:
            note = f"size {Path(found).stat().st_size} differs from the published {expected_size}"
        return {"name": name, "present": found is not None and note is None, "path": found,
                "looked_in": places, "env_var": env_var, "note": note, "how": how}

    from fetal_bench.models.sam import OFFICIAL_CHECKPOINTS
    from fetal_bench.models.sononet import SONONET16_WEIGHTS

    rows = [local("SonoNet-16", SONONET16_WEIGHTS.filename, "FETAL_BENCH_SONONET16", SONONET16_WEIGHTS.size,
                  f"downloaded on first use from {SONONET16_WEIGHTS.url}, or put the file there")]
    for variant, spec in OFFICIAL_CHECKPOINTS.items():
        rows.append(local(f"SAM {variant}", spec.filename, f"FETAL_BENCH_SAM_{variant.upper()}", spec.size,
                          f"downloaded on first use from {spec.url}, or put the file there"))
    rows.append(_stable_diffusion_report())
    rows.append({"name": "FetalCLIP", "present": None, "path": None, "looked_in": [], "env_var": None, "note": None,
                 "how": "non-commercial weights you request from the FetalCLIP authors; never searched for: "
                        "pass --model-opt weights=PATH (training) or --checkpoint PATH"})
    return rows


def _stable_diffusion_report() -> dict[str, Any]:
    from huggingface_hub import constants, try_to_load_from_cache

    from fetal_bench.generators.config import default_config

    base = default_config("fu-lora")["base"]
    cached = try_to_load_from_cache(base["model"], "unet/diffusion_pytorch_model.safetensors",
                                    revision=base.get("revision"))
    path = cached if isinstance(cached, str) else None
    return {"name": "Stable Diffusion base", "present": path is not None, "path": path,
            "looked_in": [f"{constants.HF_HUB_CACHE} ({base['model']}@{base.get('revision')})"], "env_var": None,
            "note": None, "how": "downloaded by the Hub client on first `generate ... train` with a network"}


def diagnose(lock_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The whole report as plain data (what ``doctor --json`` prints)."""
    from packaging.utils import canonicalize_name

    import fetal_bench

    installed = _installed_versions()
    lock_file = Path(lock_path) if lock_path is not None else default_lock_path()
    locked = read_lock(lock_file) if lock_file is not None and lock_file.is_file() else None
    packages = []
    for name in REPORTED_PACKAGES:
        key = canonicalize_name(name)
        pinned = None if locked is None else locked.get(key)
        packages.append({"name": name, "installed": installed.get(key), "locked": pinned,
                         "matches_lock": None if pinned is None else installed.get(key) == pinned})
    mismatches = [] if locked is None else [
        {"name": name, "installed": installed.get(name), "locked": version}
        for name, version in sorted(locked.items()) if installed.get(name) != version
    ]
    torch_report, problems = _torch_report()
    versions = {name: installed.get(canonicalize_name(name)) for name in
                {c.package for c in KNOWN_BAD_COMBINATIONS} | {c.other for c in KNOWN_BAD_COMBINATIONS}}
    notes: list[dict[str, str]] = []
    for combination in KNOWN_BAD_COMBINATIONS:
        if combination.applies(versions):
            (problems if combination.breaks_fetal_bench else notes).append(
                {"problem": f"{combination.package} {versions[combination.package]} with "
                            f"{combination.other} {versions[combination.other]}: {combination.problem}",
                 "fix": combination.fix})
    if lock_file is not None and locked is None:
        problems.append({"problem": f"The lock file {lock_file} does not exist.",
                         "fix": "Pass --lock with the path of requirements/lock.txt from a fetal-bench checkout."})
    return {
        "fetal_bench": fetal_bench.__version__,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable, "platform": platform.platform()},
        "packages": packages,
        "lock": {"path": None if lock_file is None else str(lock_file), "found": locked is not None,
                 "packages": None if locked is None else len(locked), "mismatches": mismatches},
        "torch": torch_report,
        "environment": {name: os.environ.get(name) for name in ENVIRONMENT_VARIABLES},
        "caches": _cache_report(),
        "weights": _weights_report(),
        "problems": problems,
        "notes": notes,
        "ok": not problems and not mismatches,
    }


def _cache_report() -> dict[str, str]:
    from huggingface_hub import constants

    from fetal_bench.data.pinned_files import weights_dir

    report = {"hf_hub": str(constants.HF_HUB_CACHE)}
    try:
        import datasets

        report["hf_datasets"] = str(datasets.config.HF_DATASETS_CACHE)
    except ImportError:
        report["hf_datasets"] = "datasets is not installed"
    report["fetal_bench"] = str(weights_dir().parent)
    report["weights"] = str(weights_dir())
    return report
