"""The Makefile does each set-up step once: `make run` needs no npm at all (the page's
libraries are in the package), and npm ci runs again only when package-lock.json changes.

`make -n` prints what it would run, on a copy of the Makefile beside stamps of known age.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each set-up step's stamp and what it is made from (`.venv/.installed: pyproject.toml`).
STAMP_RULE = re.compile(r"^(\S+/\.installed): (\S+)$", re.MULTILINE)


def stamp_rules() -> list[tuple[str, str]]:
    rules = STAMP_RULE.findall((ROOT / "Makefile").read_text().replace("$(VENV)", ".venv"))
    assert (".venv/.installed", "pyproject.toml") in rules
    assert ("node_modules/.installed", "package-lock.json") in rules
    return rules


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    for _, source in stamp_rules():
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, tmp_path / source)
    return tmp_path


def would_run(checkout: Path, target: str) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is missing: the README's commands need it")
    # Under `make test` (CI), MAKELEVEL makes the inner make print "Entering directory …",
    # whose tmp path names the test (…needs_npm0): only the commands themselves are read.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return done.stdout


def set_up(checkout: Path) -> None:
    """As after a first `make setup`: every stamp newer than what it was made from."""
    for stamp, source in stamp_rules():
        (checkout / stamp).parent.mkdir(parents=True, exist_ok=True)
        (checkout / stamp).touch()
        os.utime(checkout / source, (1_000_000_000, 1_000_000_000))


def test_make_run_never_needs_npm(checkout: Path) -> None:
    assert "npm" not in would_run(checkout, "run")  # a fresh clone: no node_modules at all
    set_up(checkout)
    assert would_run(checkout, "run").splitlines() == [".venv/bin/python -m server"]


def test_setup_runs_npm_ci_again_only_for_a_new_lock(checkout: Path) -> None:
    assert "npm ci" in would_run(checkout, "setup")
    set_up(checkout)
    assert "npm" not in would_run(checkout, "setup")
    assert "pip" not in would_run(checkout, "setup")
    (checkout / "package-lock.json").touch()
    assert "npm ci" in would_run(checkout, "setup")
