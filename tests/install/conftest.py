"""Fixtures of the wheel-install tests: the sdist and wheel built from a copy of the checkout, and
a fresh virtualenv with DIRAC from PyPI and that wheel installed (not editable).

Nothing here writes into the checkout. uv's default cache is the one dev/setup.sh fills, so on a
machine where `make test` ran once the virtualenv costs seconds (hardlinks from the cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"
PYTHON = "3.11"


def uv(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run uv as dev/setup.sh does (python3 -m uv), failing with its output."""
    python3 = shutil.which("python3") or sys.executable
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    res = subprocess.run([python3, "-m", "uv", *args], capture_output=True, text=True, timeout=timeout,
                         cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (
        f"uv {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-5000:]}"
    )
    return res


def checkout_files() -> list[str]:
    """The checkout's files as a clean clone has them: tracked, plus new ones not ignored yet."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    return sorted(p for p in out.decode().split("\0") if p and (REPO / p).is_file())


def build_outputs_in_checkout() -> dict[str, int | None]:
    """What a build in the checkout would leave behind (mtime, None if absent)."""
    paths = [REPO / "build", REPO / "dist", *REPO.glob("*.egg-info"), *REPO.glob("JenniferDIRAC/*.egg-info"),
             REPO / "localcloud" / "build", REPO / "localcloud" / "dist", *REPO.glob("localcloud/*.egg-info")]
    return {str(p): (p.stat().st_mtime_ns if p.exists() else None) for p in paths}


def copy_files(files: list[str], dest: Path) -> None:
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """sdist and wheel built by `uv build` from a copy of the checkout's files (as `git archive`
    exports them on a clean clone), so setuptools' build/ and egg-info land in the copy."""
    root = tmp_path_factory.mktemp("dist")
    src = root / "src"
    files = checkout_files()
    copy_files(files, src)
    before = build_outputs_in_checkout()
    t0 = time.monotonic()
    built = uv("build", "--python", PYTHON, "--out-dir", str(root / "out"), str(src))
    seconds = time.monotonic() - t0
    (wheel,) = (root / "out").glob("*.whl")
    (sdist,) = (root / "out").glob("*.tar.gz")
    return types.SimpleNamespace(wheel=wheel, sdist=sdist, files=files, seconds=seconds,
                                 log=built.stdout + built.stderr,
                                 checkout_before=before, checkout_after=build_outputs_in_checkout())


@pytest.fixture(scope="session")
def wheel_venv(dist, tmp_path_factory):
    """A fresh Python 3.11 virtualenv beside DIRAC, as an administrator has one: DIRAC[server] from
    PyPI (versions of requirements/lock.txt, gfal2-python overridden away as it cannot be built
    without the gfal2 C library), then the wheel installed non-editable, as README says."""
    return beside_dirac(tmp_path_factory.mktemp("wheelvenv"), str(dist.wheel))


@pytest.fixture(scope="session")
def localcloud_dist(tmp_path_factory):
    """sdist and wheel of JenniferDIRAC-LocalCloud, built by `uv build` from a copy of localcloud/
    (as README builds it from the export of a clone)."""
    root = tmp_path_factory.mktemp("localcloud-dist")
    files = [f for f in checkout_files() if f.startswith("localcloud/")]
    copy_files(files, root / "src")
    before = build_outputs_in_checkout()
    built = uv("build", "--python", PYTHON, "--out-dir", str(root / "out"), str(root / "src" / "localcloud"))
    (wheel,) = (root / "out").glob("*.whl")
    (sdist,) = (root / "out").glob("*.tar.gz")
    return types.SimpleNamespace(wheel=wheel, sdist=sdist, files=files, log=built.stdout + built.stderr,
                                 checkout_before=before, checkout_after=build_outputs_in_checkout())


@pytest.fixture(scope="session")
def localcloud_venv(dist, localcloud_dist, tmp_path_factory):
    """A fresh virtualenv beside DIRAC with `JenniferDIRAC[localcloud]` installed from a directory
    holding both distributions' archives (`--find-links`), as README says for the demo and tests."""
    root = tmp_path_factory.mktemp("localcloudvenv")
    found = root / "dist"
    found.mkdir()
    for archive in (dist.wheel, dist.sdist, localcloud_dist.wheel, localcloud_dist.sdist):
        shutil.copy2(archive, found / archive.name)
    return beside_dirac(root, "--find-links", str(found), "JenniferDIRAC[localcloud]")


def beside_dirac(root: Path, *install: str) -> types.SimpleNamespace:
    """A fresh virtualenv in root: DIRAC[server] from PyPI, then `uv pip install <install>`."""
    venv = root / "venv"
    pins = ["-c", str(REQUIREMENTS / "lock.txt"), "--override", str(REQUIREMENTS / "overrides.txt")]
    t0 = time.monotonic()
    uv("venv", "--python", PYTHON, str(venv), cwd=root)
    python = venv / "bin" / "python"
    uv("pip", "install", "--python", str(python), *pins, "DIRAC[server]", cwd=root)
    uv("pip", "install", "--python", str(python), *pins, *install, cwd=root)
    seconds = time.monotonic() - t0
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([str(python), "-I", "-c", purelib],
                          capture_output=True, text=True, check=True, cwd=root).stdout.strip()
    return types.SimpleNamespace(root=root, venv=venv, python=python, bin=venv / "bin",
                                 site_packages=Path(site), seconds=seconds)


@pytest.fixture
def wheel_env(wheel_venv, tmp_path):
    """Environment of a command run from the wheel install: its bin first on PATH (the Debian
    `cloud-init` after it), no PYTHONPATH, no DIRAC or X509 variables of the caller, a private
    HOME (no ~/.dirac.cfg), and a working directory outside the checkout."""
    return isolated_env(wheel_venv, tmp_path)


@pytest.fixture
def localcloud_env(localcloud_venv, tmp_path):
    """wheel_env's environment for the `JenniferDIRAC[localcloud]` install."""
    return isolated_env(localcloud_venv, tmp_path)


def isolated_env(venv: types.SimpleNamespace, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIRAC", "X509", "PYTHON", "VIRTUAL_ENV", "UV_"))}
    env.update(HOME=str(home), PATH=f"{venv.bin}:/usr/local/bin:/usr/bin:/bin")
    return env

