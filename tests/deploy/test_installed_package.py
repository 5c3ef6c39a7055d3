"""The wheel is the whole product: built from this tree, installed in a fresh virtualenv (no
Node.js, no clone on the import path), started from another folder, it serves the page, its
files and its libraries; `python -m server`, `chatrelay` and the Procfile's gunicorn alike.

One build and one install for the module (pip fetches the dependencies as a user's would).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.server_process import server_env
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.subprocess
PAGE_FILES = ["/static/js/main.js", "/static/app.css", "/vendor/marked.js", "/vendor/katex.js"]


@dataclass
class Installed:
    venv: Path
    elsewhere: Path  # an empty folder: nothing of the clone beside the process
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def copy_of_the_tree(to: Path) -> Path:
    """The files git would commit now (tracked, and new ones not ignored), as a clone has."""
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, to / name)
    return to


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield copy_of_the_tree(tmp_path_factory.mktemp("clone"))


@pytest.fixture(scope="module")
def wheel(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", tree, "-w", wheels)
    (built,) = wheels.glob("chatrelay-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    # venv makes it from the base interpreter: none of this project's virtualenv is visible.
    run(sys.executable, "-m", "venv", "--clear", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    site_packages = run(
        venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"
    ).strip()
    return Installed(venv, tmp_path_factory.mktemp("elsewhere"), Path(site_packages))


def clean_env(installed: Installed, **values: str) -> dict[str, str]:
    env = server_env(**values)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join(
        [str(installed.venv / "bin"), *(p for p in env["PATH"].split(os.pathsep) if p)]
    )
    return env


async def serving(
    command: list[str], cwd: Path, env: dict[str, str], port: int
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, start_new_session=True
    )

    async def answers() -> bool:
        assert process.returncode is None, f"{command} exited {process.returncode}"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await wait_until(answers, f"{command} answers /healthz", timeout_s=60)
    return process


async def stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        os.killpg(process.pid, signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=40)


async def assert_serves_the_page(port: int) -> None:
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/") as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert '<script type="module" src="/static/js/main.js">' in await page.text()
        for path in PAGE_FILES:
            async with session.get(url + path) as response:
                assert response.status == 200, path
                assert response.content_type in {
                    "text/javascript",
                    "application/javascript",
                    "text/css",
                }, path
                served = await response.read()
            if path.startswith("/vendor/"):
                assert served == (ROOT / "server" / path.lstrip("/")).read_bytes(), path


def test_the_wheel_holds_the_page_and_its_libraries(wheel: Path) -> None:
    names = set(run(sys.executable, "-m", "zipfile", "-l", wheel).split())
    for needed in ("index.html", "js/main.js", "app.css", "marked.js", "katex.js", "idb.js"):
        assert any(name.endswith(needed) and name.startswith("server/") for name in names)
    entry_points = [name for name in names if name.endswith("entry_points.txt")]
    assert entry_points, "no console command"


@pytest.mark.parametrize("command", [["python", "-m", "server"], ["chatrelay"]])
async def test_installed_it_serves_the_page_from_another_folder(
    installed: Installed, command: list[str], unused_tcp_port: int
) -> None:
    executable = installed.venv / "bin" / command[0]
    process = await serving(
        [str(executable), *command[1:], "--port", str(unused_tcp_port)],
        installed.elsewhere,
        clean_env(installed),
        unused_tcp_port,
    )
    try:
        await assert_serves_the_page(unused_tcp_port)
    finally:
        assert await stop(process) == 0


async def test_the_procfile_runs_from_an_installed_package(
    installed: Installed, unused_tcp_port: int
) -> None:
    # A platform's folder: the Procfile and the installed package, python on PATH.
    (installed.elsewhere / "Procfile").write_text((ROOT / "Procfile").read_text())
    web = re.search(r"^web:\s*(.+)$", (ROOT / "Procfile").read_text(), re.MULTILINE)
    assert web is not None
    env = clean_env(installed, PORT=str(unused_tcp_port), WEB_CONCURRENCY="1")
    process = await serving(["sh", "-c", web.group(1)], installed.elsewhere, env, unused_tcp_port)
    try:
        await assert_serves_the_page(unused_tcp_port)
    finally:
        assert await stop(process) == 0


async def test_a_page_file_missing_is_a_start_up_error_naming_it(installed: Installed) -> None:
    katex = installed.site_packages / "server" / "vendor" / "katex.js"
    hidden = katex.with_name("katex.js.away")
    katex.rename(hidden)
    try:
        process = await asyncio.create_subprocess_exec(
            installed.python,
            "-m",
            "server",
            cwd=installed.elsewhere,
            env=clean_env(installed),
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        hidden.rename(katex)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2
    assert len(lines) == 1 and "katex.js" in lines[0], lines


def test_building_leaves_nothing_untracked(wheel: Path, tree: Path) -> None:
    # `pip install .` builds in the tree as `pip wheel` did (build/, *.egg-info): ignored.
    assert (tree / "build").is_dir()
    run("git", "init", "-q", cwd=tree)
    status = run("git", "status", "--porcelain", "--untracked-files=all", cwd=tree)
    left = [line for line in status.splitlines() if re.search(r"\b(build|dist)/|egg-info", line)]
    assert left == []
