"""The README's two set-up commands are the ones CI runs, and they install from the lock."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    lines = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    return [line for line in lines if line]


def _ci_commands() -> list[list[str]]:
    """.ci/run's commands as argument lists, with pip's quiet flag dropped."""
    commands = []
    for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            commands.append([arg for arg in shlex.split(line) if arg != "-q"])
    return commands


def test_readme_first_screen_has_exactly_two_setup_commands():
    install, tests = _readme_commands()
    assert install == "pip install --require-hashes -r requirements/lock.txt && pip install --no-deps -e . && fetal-bench demo"
    assert tests == "python -m pytest"


def test_ci_runs_the_readme_commands_as_typed():
    install, tests = _readme_commands()
    ci = _ci_commands()
    for step in install.split("&&"):
        assert shlex.split(step) in ci, f"{step.strip()!r} from the README is not run by .ci/run"
    assert ci[-1] == shlex.split(tests)


def test_ci_installs_nothing_outside_the_lock():
    pip_installs = [c for c in _ci_commands() if c[:2] == ["pip", "install"] or c[1:4] == ["-m", "pip", "install"]]
    assert pip_installs == [["pip", "install", "--require-hashes", "-r", "requirements/lock.txt"],
                            ["pip", "install", "--no-deps", "-e", "."]]
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    pinned = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", lock, re.M)
    hashed = re.findall(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\n]*\\\n\s+--hash=sha256:[0-9a-f]{64}", lock, re.M)
    assert len(pinned) == len(hashed) > 50  # every pin carries its hashes


def test_the_wheel_ships_no_test_fixtures():
    """The fake raw layouts, the Zenodo stand-in and the leaderboard's made-up results live in
    tests/; the package holds what users and the demo run."""
    from setuptools import find_namespace_packages

    packages = find_namespace_packages(str(REPO), include=["fetal_bench*"])  # pyproject's packages.find
    assert "fetal_bench.testing" not in packages and "fetal_bench.metrics" in packages
    shipped = [path.relative_to(REPO).as_posix() for package in packages
               for path in (REPO / package.replace(".", "/")).glob("*.py")]
    fixtures = [path for path in shipped if path.rsplit("/", 1)[-1].startswith(("fake_", "testing"))]
    assert fixtures == []
    assert all((REPO / "tests" / name).is_file() for name in ("fake_raw.py", "fake_zenodo.py", "leaderboard_fixtures.py"))
