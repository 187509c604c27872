"""Reading the #cloud-config documents the CE writes, as the tests of several folders need."""

from __future__ import annotations


def pilot_environment(cloud_config: str) -> dict[str, str]:
    """The variables the pilot is started with: the `export NAME=value` lines of the files the
    cloud-config writes."""
    import base64
    import shlex

    import yaml

    env = {}
    for item in yaml.safe_load(cloud_config).get("write_files", []):
        content = item.get("content", "")
        if item.get("encoding") in ("b64", "base64"):
            content = base64.b64decode(content).decode()
        for line in content.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export "):].partition("=")
                env[name] = shlex.split(value)[0] if value else ""
    return env


def vm_settings(cloud_config: str) -> dict[str, str]:
    """NAME=value settings of the root-only /etc/jdirac/vm.env the cloud-config writes."""
    import base64
    import shlex

    import yaml

    for item in yaml.safe_load(cloud_config).get("write_files", []):
        if item.get("path") != "/etc/jdirac/vm.env":
            continue
        content = item.get("content", "")
        if item.get("encoding") in ("b64", "base64"):
            content = base64.b64decode(content).decode()
        return {
            name: (shlex.split(value) or [""])[0]
            for name, _, value in (line.partition("=") for line in content.splitlines() if "=" in line)
        }
    return {}
