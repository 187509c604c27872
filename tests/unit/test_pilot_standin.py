"""The stand-in pilot parses the SiteDirector's options and writes the real pilot's local config."""

import importlib.util
import json
from pathlib import Path

from dev.loopback.pilotfiles import PILOT_SCRIPT, build_pilot_files

spec = importlib.util.spec_from_file_location("standin_pilot", PILOT_SCRIPT)
pilot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pilot)

# As the SiteDirector writes them (_getPilotOptions) plus a queue's ExtraPilotOptions.
SITEDIRECTOR_OPTIONS = [
    "--preinstalledEnv=/opt/env/diracosrc",
    "-N",
    "cloud-ce",
    "-Q",
    "cloud-queue",
    "-n",
    "CLOUD.Loopback.local",
    "--wnVO=loopback",
    "-o",
    "/LocalSite/SharedArea=/shared",
    "-M",
    "1",
    "--StopAfterFailedMatches=1",
    "--pilotUUID",
    "0123456789abcdef0123456789abcdef",
]


def test_sitedirector_options_are_understood():
    params = pilot.Params(SITEDIRECTOR_OPTIONS)
    assert (params.ce_name, params.queue, params.site, params.vo) == (
        "cloud-ce",
        "cloud-queue",
        "CLOUD.Loopback.local",
        "loopback",
    )
    assert params.pilot_uuid == "0123456789abcdef0123456789abcdef"
    assert params.max_cycles == 1 and params.stop_after_failed_matches == 1
    assert params.preinstalled_env == "/opt/env/diracosrc"


def test_cloud_reference_comes_from_pilot_uuid(monkeypatch):
    monkeypatch.setenv("PILOT_UUID", "openstack://cloud-ce/abc")
    monkeypatch.setenv("DIRAC_PILOT_STAMP", "f" * 32)
    assert pilot.submitter_info() == ("CLOUD", "openstack://cloud-ce/abc")
    monkeypatch.delenv("PILOT_UUID")
    assert pilot.submitter_info() == ("DIRAC", "f" * 32)


def test_local_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pilot.json").write_text(
        json.dumps({"ConfigurationServers": ["dips://localhost:1/Configuration/Server"]})
    )
    params = pilot.Params(SITEDIRECTOR_OPTIONS)
    pilot.load_json(params)
    tree = pilot.local_config(params, "CLOUD", "openstack://cloud-ce/abc", str(tmp_path))
    text = pilot.cfg_text(tree)
    assert tree["DIRAC"]["Configuration"]["Servers"] == "dips://localhost:1/Configuration/Server"
    assert tree["LocalSite"]["PilotReference"] == "openstack://cloud-ce/abc"
    assert tree["LocalSite"]["PilotStamp"] == "0123456789abcdef0123456789abcdef"
    assert tree["LocalSite"]["LocalCE"] == "InProcess"
    assert tree["LocalSite"]["SharedArea"] == "/shared"
    from diraccfg import CFG

    assert CFG().loadFromBuffer(text).getOption("LocalSite/GridCE") == "cloud-ce"


def test_pilot_files_verify_as_the_wrapper_checks_them(tmp_path):
    import hashlib
    import tarfile

    rc = build_pilot_files(
        tmp_path,
        ["dips://localhost:1/Configuration/Server"],
        Path("/opt/venv/bin"),
        [Path("/opt/venv/lib")],
        Path("/ca"),
    )
    for line in (tmp_path / "checksums.sha512").read_text().splitlines():
        digest, name = line.split("  ", 1)
        assert hashlib.sha512((tmp_path / name).read_bytes()).hexdigest() == digest
    with tarfile.open(tmp_path / "pilot.tar") as tar:
        assert tar.getnames() == ["dirac-pilot.py"]
    assert "export PATH=/opt/venv/bin:$PATH" in rc.read_text()


def test_missing_configuration_server_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert pilot.main(["-N", "ce", "--preinstalledEnv=/x"]) == 1
    assert "no configuration server" in capsys.readouterr().out
