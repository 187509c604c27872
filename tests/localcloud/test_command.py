"""The standalone command prints a clouds.yaml that real clients can use, and stops cleanly."""

import os
import signal
import subprocess
import sys

import openstack
import yaml

MODULE = "JenniferLocalCloud"


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", MODULE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_until_ready(process):
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("# LocalCloud ready"):
            return "".join(lines)
    raise AssertionError(f"no ready line; stderr: {process.stderr.read()}")


def _stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_command_prints_usable_clouds_yaml():
    process = _start("--auth-type", "all", "--servers", "3", "--quota-instances", "7")
    try:
        config = yaml.safe_load(_read_until_ready(process))
        assert set(config["clouds"]) == {"localcloud-password", "localcloud-v3applicationcredential",
                                         "localcloud-v3oidcaccesstoken"}
        for entry in config["clouds"].values():
            conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
            assert len(list(conn.compute.servers())) == 3
            assert conn.compute.get_limits().absolute.instances == 7
    finally:
        _stop(process)


def test_command_writes_private_clouds_yaml(tmp_path):
    target = tmp_path / "clouds.yaml"
    process = _start("--clouds-yaml", str(target), "--cloud-name", "demo")
    try:
        output = _read_until_ready(process)
        assert "password" not in output  # secrets go to the file only
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        entry = yaml.safe_load(target.read_text())["clouds"]["demo"]
        conn = openstack.connect(load_yaml_config=False, load_envvars=False, **entry)
        assert [f.name for f in conn.compute.flavors()][:2] == ["m1.tiny", "m1.small"]
    finally:
        _stop(process)


def test_command_rejects_bad_port():
    done = subprocess.run([sys.executable, "-m", MODULE, "--port", "70000"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "--port must be 0..65535" in done.stderr


def test_console_script_runs():
    script = os.path.join(os.path.dirname(sys.executable), "jdirac-localcloud")
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "clouds.yaml" in done.stdout
