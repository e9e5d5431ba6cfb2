"""`fetal-bench doctor`: versions, lock match, known-bad pairs, weights, escaping; and the lock itself."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from fetal_bench import doctor as doctor_module
from fetal_bench.cli import cli
from fetal_bench.doctor import KNOWN_BAD_COMBINATIONS, REPORTED_PACKAGES, diagnose, read_lock

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"


def _doctor_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["doctor", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_report_names_every_package_with_its_installed_version():
    report = _doctor_json()
    assert [p["name"] for p in report["packages"]] == list(REPORTED_PACKAGES)
    for package in report["packages"]:
        assert package["installed"] == metadata.version(package["name"])
    assert report["torch"]["importable"] is True and report["torch"]["torchvision_importable"] is True
    assert report["environment"]["HF_HUB_OFFLINE"] == "1"  # set by the test session, reported as is
    assert {"hf_hub", "hf_datasets", "fetal_bench", "weights"} == set(report["caches"])
    assert [w["name"] for w in report["weights"]] == [
        "SonoNet-16", "SAM vit_b", "SAM vit_l", "SAM vit_h", "Stable Diffusion base", "FetalCLIP"]


def test_lock_comparison_uses_only_lines_for_this_platform(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# a comment\n"
        f"torch=={metadata.version('torch')} \\\n    --hash=sha256:{'0' * 64}\n"
        "peft==0.0.1 \\\n    --hash=sha256:" + "1" * 64 + "\n"
        "not-for-here==1.0 ; sys_platform == 'no-such-platform' \\\n    --hash=sha256:" + "2" * 64 + "\n"
    )
    assert read_lock(lock) == {"torch": metadata.version("torch"), "peft": "0.0.1"}
    report = _doctor_json("--lock", str(lock))
    rows = {p["name"]: p for p in report["packages"]}
    assert rows["torch"]["matches_lock"] is True
    assert rows["peft"]["matches_lock"] is False and rows["peft"]["locked"] == "0.0.1"
    assert rows["datasets"]["locked"] is None and rows["datasets"]["matches_lock"] is None
    assert report["lock"]["mismatches"] == [{"name": "peft", "installed": metadata.version("peft"), "locked": "0.0.1"}]
    assert report["ok"] is False


def test_the_environment_matches_the_committed_lock():
    """CI installs from the lock, so the tested environment is the locked one, package for package."""
    report = _doctor_json("--lock", str(LOCK))
    assert report["lock"]["found"] and report["lock"]["packages"] > 50
    assert report["lock"]["mismatches"] == []
    assert all(p["matches_lock"] for p in report["packages"] if p["locked"] is not None)


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        ({"transformers": "5.24.0", "peft": "0.21.2"}, True),
        ({"transformers": "5.23.1", "peft": "0.21.2"}, False),
        ({"transformers": "5.24.0", "peft": "0.22.0"}, False),
        ({"transformers": "5.24.0", "peft": None}, False),
    ],
)
def test_transformers_peft_gate_is_recognised(versions, expected):
    gate = next(c for c in KNOWN_BAD_COMBINATIONS if c.package == "transformers")
    assert gate.applies(versions) is expected
    assert gate.breaks_fetal_bench is False  # fetal-bench injects LoRA through peft itself


def test_known_bad_pairs_are_reported_with_their_fix(monkeypatch):
    installed = doctor_module._installed_versions()
    monkeypatch.setattr(doctor_module, "_installed_versions",
                        lambda: {**installed, "transformers": "5.24.0", "peft": "0.21.2", "torch": "2.13.0+cpu"})
    report = diagnose(LOCK)
    assert [w["problem"].split(":")[0] for w in report["notes"]] == ["transformers 5.24.0 with peft 0.21.2"]
    assert "peft >= 0.22" in report["notes"][0]["fix"]
    torch_problem = [p for p in report["problems"] if p["problem"].startswith("torch 2.13.0+cpu with torchvision")]
    assert len(torch_problem) == 1 and "requirements/lock.txt" in torch_problem[0]["fix"]
    assert report["ok"] is False


def test_weights_are_found_where_the_report_says_it_looks(tmp_path, monkeypatch):
    from fetal_bench.models.sononet import SONONET16_WEIGHTS

    monkeypatch.setenv("FETAL_BENCH_CACHE", str(tmp_path / "cache"))
    right = tmp_path / "SonoNet16.npz"
    right.write_bytes(b"\0" * SONONET16_WEIGHTS.size)
    monkeypatch.setenv("FETAL_BENCH_SONONET16", str(right))
    row = next(w for w in diagnose(LOCK)["weights"] if w["name"] == "SonoNet-16")
    assert row["present"] is True and row["path"] == str(right)
    assert row["looked_in"] == [str(right), str(tmp_path / "cache" / "weights" / "SonoNet16.npz")]
    right.write_bytes(b"\0" * 10)
    row = next(w for w in diagnose(LOCK)["weights"] if w["name"] == "SonoNet-16")
    assert row["present"] is False and row["note"] == f"size 10 differs from the published {SONONET16_WEIGHTS.size}"
    sam = next(w for w in diagnose(LOCK)["weights"] if w["name"] == "SAM vit_b")
    assert sam["present"] is False and sam["looked_in"] == [str(tmp_path / "cache" / "weights" / "sam_vit_b_01ec64.pth")]


def test_screen_report_prints_environment_values_as_text_not_markup(monkeypatch):
    hostile = "[link=file:///etc/passwd]click[/link]"
    monkeypatch.setenv("HF_ENDPOINT", hostile)
    result = CliRunner().invoke(cli, ["doctor", "--lock", str(LOCK)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # independent of the console's width
    assert hostile in text
    for heading in ("Packages", "Reference weights", "transformers", "matches lock", "SonoNet-16"):
        assert heading in text
    assert "0 installed differently" in text


def test_missing_lock_file_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["doctor", "--lock", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_lock_pins_every_declared_dependency_within_its_range():
    """A lock that falls behind pyproject.toml (a new dependency, a raised bound) fails here."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    pins = read_lock(LOCK)
    for requirement in declared:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared but not in requirements/lock.txt: regenerate the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"lock pins {name}=={pins[name]}, outside {requirement.specifier}: regenerate the lock")
