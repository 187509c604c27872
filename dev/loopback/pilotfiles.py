"""The pilot files the SiteDirector's pilot wrapper downloads, built for the loopback server.

``<dir>/pilot.tar`` (the stand-in ``dirac-pilot.py``), ``<dir>/pilot.json`` (CS servers, CEs),
``<dir>/checksums.sha512`` (as the wrapper verifies) and ``<dir>/diracosrc``, the
"preinstalled environment" script that puts the project's virtualenv (with DIRAC and the
extension) and the test CA in the pilot's environment. Served as ``file:<dir>`` through
``/Operations/Defaults/Pilot/pilotFileServer``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import tarfile
from pathlib import Path

PILOT_SCRIPT = Path(__file__).resolve().parent / "pilot" / "dirac-pilot.py"


def build_pilot_files(
    target: Path,
    cs_urls: list[str],
    venv_bin: Path,
    python_path: list[Path],
    cert_dir: Path,
    ces: dict[str, dict] | None = None,
) -> Path:
    """Write the pilot files into ``target`` and return the environment script's path."""
    target.mkdir(parents=True, exist_ok=True)
    data = PILOT_SCRIPT.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("dirac-pilot.py")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
    (target / "pilot.tar").write_bytes(buffer.getvalue())
    pilot_json = {"ConfigurationServers": cs_urls, "CEs": ces or {}}
    (target / "pilot.json").write_text(json.dumps(pilot_json, indent=1))
    lines = [
        f"{hashlib.sha512((target / name).read_bytes()).hexdigest()}  {name}"
        for name in ("pilot.json", "pilot.tar")
    ]
    (target / "checksums.sha512").write_text("\n".join(lines) + "\n")

    venv = venv_bin.parent
    rc = target / "diracosrc"
    rc.write_text(
        "# Preinstalled DIRAC environment for pilots (the project's virtualenv).\n"
        f"export VIRTUAL_ENV={shlex.quote(str(venv))}\n"
        f"export PATH={shlex.quote(str(venv_bin))}:$PATH\n"
        # DIRAC's JobWrapper runs realpath(sys.executable), the venv's base interpreter.
        f"export PYTHONPATH={shlex.quote(os.pathsep.join(str(p) for p in python_path))}\n"
        f"export X509_CERT_DIR=${{X509_CERT_DIR:-{shlex.quote(str(cert_dir))}}}\n"
    )
    os.chmod(rc, 0o644)
    return rc
