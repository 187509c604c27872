"""From a built wheel to a first VM, as a DIRAC administrator installs and checks JenniferDIRAC.

`uv build` makes the sdist and wheel from a copy of the checkout; the wheel is installed (not
editable) into a fresh virtualenv beside DIRAC from PyPI; from that install, with the working
directory outside the checkout and no PYTHONPATH, the admin commands run as subprocesses against
a local cfg, and one VM is submitted to LocalCloud through DIRAC's own queue resolution (what the
SiteDirector does) and its user data checked by cloud-init's schema tool. These are the README's
installation commands.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from diraccfg import CFG

pytestmark = [pytest.mark.install, pytest.mark.slow]

CE = "cloud.wheel.test"
SITE = "CLOUD.Wheel.test"
VO = "wheelvo"
REPO = Path(__file__).resolve().parents[2]


# --- the archives --------------------------------------------------------------------------------
def test_wheel_ships_every_file_of_the_package(dist):
    """Every file below JenniferDIRAC/ in the checkout (templates, cfg, sql, ...) is in the wheel,
    and nothing else of the checkout is."""
    with zipfile.ZipFile(dist.wheel) as wheel:
        shipped = {n for n in wheel.namelist() if not n.endswith("/") and ".dist-info/" not in n}
    expected = {f for f in dist.files if f.startswith("JenniferDIRAC/")}
    assert "JenniferDIRAC/Resources/Cloud/UserData/templates/el9.cloud-config.j2" in expected
    assert sorted(expected - shipped) == [], "missing from the wheel"
    assert sorted(shipped - expected) == [], "in the wheel but not in the checkout"


def test_no_data_directory_is_left_to_setuptools_guessing(dist):
    """setuptools warns when a directory it ships as data is not a declared package (the
    templates directory under `packages = find:`); such a directory is one setting away from
    being dropped again."""
    assert "Package would be ignored" not in dist.log
    assert "is absent from the `packages` configuration" not in dist.log


def sdist_members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        return {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}


def test_sdist_is_the_checkout(dist):
    members = sdist_members(dist.sdist)
    assert "localcloud/setup.cfg" in dist.files
    assert sorted(set(dist.files) - members - {".gitignore"}) == []
    assert "PKG-INFO" in members and not any(m.endswith((".pyc", ".pyo")) for m in members)


def wheel_metadata(wheel: Path) -> tuple[list[str], list[str]]:
    """(file names outside .dist-info, METADATA lines) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    return [n for n in names if ".dist-info/" not in n], lines


def test_the_wheel_has_no_emulator(dist):
    """LocalCloud executes user data: a DIRAC server's JenniferDIRAC wheel holds none of it and
    requires it only through the `localcloud` extra."""
    files, metadata = wheel_metadata(dist.wheel)
    assert [f for f in files if "LocalCloud" in f or f.startswith("localcloud/")] == []
    assert {f.split("/", 1)[0] for f in files} == {"JenniferDIRAC"}
    requires = [line for line in metadata if line.startswith("Requires-Dist:")]
    on_localcloud = [line for line in requires if "localcloud" in line.lower()]
    assert on_localcloud == ['Requires-Dist: JenniferDIRAC-LocalCloud==0.2.0; extra == "localcloud"'], requires
    assert "Provides-Extra: localcloud" in metadata


def test_localcloud_archives_are_its_folder(localcloud_dist):
    files, metadata = wheel_metadata(localcloud_dist.wheel)
    package = [f.removeprefix("localcloud/") for f in localcloud_dist.files
               if f.startswith("localcloud/JenniferLocalCloud/")]
    assert "JenniferLocalCloud/boot/runner.py" in package
    assert sorted(files) == sorted(package)
    assert "Name: JenniferDIRAC-LocalCloud" in metadata and "Version: 0.2.0" in metadata
    requires = sorted(line for line in metadata if line.startswith("Requires-Dist:"))
    assert requires == ["Requires-Dist: PyYAML", "Requires-Dist: werkzeug>=3.0"]
    assert not [line for line in metadata if "jenniferdirac" in line.lower() and "Requires" in line]
    members = sdist_members(localcloud_dist.sdist)
    expected = {f.removeprefix("localcloud/") for f in localcloud_dist.files}
    assert sorted(expected - members) == [], "missing from the LocalCloud sdist"


def test_building_writes_nothing_into_the_checkout(dist, localcloud_dist):
    assert dist.checkout_after == dist.checkout_before
    assert localcloud_dist.checkout_after == localcloud_dist.checkout_before
    assert not (REPO / "build").exists() and not (REPO / "localcloud" / "build").exists()
    assert REPO not in dist.wheel.parents and REPO not in localcloud_dist.wheel.parents


# --- the install ---------------------------------------------------------------------------------
def run(env, cwd, *args, timeout=180):
    return subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_the_package_is_imported_from_the_wheel_install(wheel_venv, wheel_env, tmp_path):
    probe = (
        "import json, sys, JenniferDIRAC\n"
        "from importlib.metadata import distribution\n"
        "from importlib.resources import files\n"
        "templates = files('JenniferDIRAC.Resources.Cloud.UserData').joinpath('templates')\n"
        "print(json.dumps({'file': JenniferDIRAC.__file__, 'path': sys.path,\n"
        "  'direct_url': distribution('JenniferDIRAC').read_text('direct_url.json'),\n"
        "  'templates': sorted(p.name for p in templates.iterdir())}))\n"
    )
    res = run(wheel_env, tmp_path, str(wheel_venv.python), "-c", probe)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert Path(found["file"]).is_relative_to(wheel_venv.site_packages), found["file"]
    assert not [p for p in found["path"] if p and Path(p).resolve().is_relative_to(REPO)]
    assert found["direct_url"] is None or '"editable": true' not in found["direct_url"]
    assert {"el9.cloud-config.j2", "debian.cloud-config.j2", "vm-boot.sh"} <= set(found["templates"])


PROBE_LOCALCLOUD = (
    "import json, importlib.util\n"
    "from importlib.metadata import PackageNotFoundError, version\n"
    "def installed(name):\n"
    "    try:\n"
    "        return version(name)\n"
    "    except PackageNotFoundError:\n"
    "        return None\n"
    "spec = importlib.util.find_spec('JenniferLocalCloud')\n"
    "print(json.dumps({'spec': spec and spec.origin, 'version': installed('JenniferDIRAC-LocalCloud'),\n"
    "                  'jenniferdirac': installed('JenniferDIRAC')}))\n"
)


def test_the_plain_install_has_no_localcloud(wheel_venv, wheel_env, tmp_path):
    res = run(wheel_env, tmp_path, str(wheel_venv.python), "-c", PROBE_LOCALCLOUD)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"spec": None, "version": None, "jenniferdirac": "0.2.0"}
    assert not (wheel_venv.bin / "jdirac-localcloud").exists()
    assert [p.name for p in wheel_venv.site_packages.iterdir() if "localcloud" in p.name.lower()] == []


SERVE_LOCALCLOUD = r"""
import json, sys, urllib.request
import JenniferDIRAC, JenniferLocalCloud
from JenniferLocalCloud import LocalCloud
with LocalCloud() as cloud:
    with urllib.request.urlopen(cloud.auth_url, timeout=30) as answer:
        identity = json.load(answer)["version"]["id"]
print(json.dumps({"localcloud": JenniferLocalCloud.__file__, "jenniferdirac": JenniferDIRAC.__file__,
                  "identity": identity, "path": sys.path}))
"""


def test_the_localcloud_extra_from_the_two_archives(localcloud_venv, localcloud_env, localcloud_dist, tmp_path):
    """`JenniferDIRAC[localcloud]` with --find-links to the built archives brings the emulator:
    its command, its package (the files of its wheel) and a LocalCloud that answers."""
    res = run(localcloud_env, tmp_path, str(localcloud_venv.python), "-c", PROBE_LOCALCLOUD)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert (found["version"], found["jenniferdirac"]) == ("0.2.0", "0.2.0")
    assert Path(found["spec"]).is_relative_to(localcloud_venv.site_packages)

    res = run(localcloud_env, tmp_path, str(localcloud_venv.bin / "jdirac-localcloud"), "--help")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("usage: jdirac-localcloud") and "--boot" in res.stdout

    res = run(localcloud_env, tmp_path, str(localcloud_venv.python), "-c", SERVE_LOCALCLOUD)
    assert res.returncode == 0, res.stdout + res.stderr
    served = json.loads(res.stdout)
    assert served["identity"].startswith("v3")
    for module in ("localcloud", "jenniferdirac"):
        assert Path(served[module]).is_relative_to(localcloud_venv.site_packages), served[module]
    assert not [p for p in served["path"] if p and Path(p).resolve().is_relative_to(REPO)]
    with zipfile.ZipFile(localcloud_dist.wheel) as wheel:
        for name in ("JenniferLocalCloud/__init__.py", "JenniferLocalCloud/boot/runner.py"):
            assert (localcloud_venv.site_packages / name).read_bytes() == wheel.read(name), name


@pytest.fixture
def site_cfg(vmdb, pilotdb, local_cloud, tmp_path):
    """A local cfg as an administrator writes one: the databases, one cloud CE on LocalCloud
    (password credentials in a private CloudAuth file), one queue."""
    creds = local_cloud.credentials
    auth = tmp_path / "cloud.auth"
    auth.write_text(f"[DEFAULT]\nkey = {creds.username}\nsecret = {creds.password}\n")
    auth.chmod(0o600)
    text = f"""
DIRAC
{{
  Setup = Test
  Security
  {{
    UseServerCertificate = no
  }}
}}
LocalSite
{{
  DisableAccounting = True
}}
Systems
{{
  WorkloadManagement
  {{
    Databases
    {{
      PilotAgentsDB
      {{
        DBName = {pilotdb}
      }}
    }}
  }}
}}
Resources
{{
  Sites
  {{
    CLOUD
    {{
      {SITE}
      {{
        CE = {CE}
        CEs
        {{
          {CE}
          {{
            CEType = Cloud
            CloudType = OPENSTACK
            Driver_ex_force_auth_url = {local_cloud.base_url}/identity
            Driver_ex_force_auth_version = 3.x_password
            Driver_ex_tenant_name = {creds.project_name}
            CloudAuth = {auth}
            Instance_Image = name:EL9-x86_64
            Instance_Flavor = name:m1.small
            Instance_Networks = name:private
            InstallationName = WheelTest
            HTTPTimeout = 10
            Queues
            {{
              default
              {{
                maxCPUTime = 100000
                SI00 = 2000
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
"""
    cfg = CFG().loadFromBuffer(vmdb.cfg).mergeWith(CFG().loadFromBuffer(text))
    path = tmp_path / "site.cfg"
    path.write_text(str(cfg))
    return path


def check_lines(stdout):
    """{check: verdict} of dirac-vm-check-ce's lines."""
    return {parts[1]: parts[0] for parts in (line.split(None, 2) for line in stdout.splitlines())
            if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL", "SKIP")}


def test_admin_commands_from_the_wheel_install(wheel_venv, wheel_env, site_cfg, tmp_path):
    bin_ = wheel_venv.bin
    res = run(wheel_env, tmp_path, str(bin_ / "dirac-vm-profile-check"), f"--cfg={site_cfg}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BelleII: valid" in res.stdout and "T2K-HyperK: valid" in res.stdout

    res = run(wheel_env, tmp_path, str(bin_ / "dirac-vm-check-ce"), f"--cfg={site_cfg}", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    checks = check_lines(res.stdout)
    checked = [checks.get(name) for name in ("auth", "image", "flavor", "network", "user-data")]
    assert checked == ["OK"] * 5, res.stdout
    assert "Traceback" not in res.stderr

    # The same cfg through DIRACSYSCONFIG instead of --cfg.
    env = {**wheel_env, "DIRACSYSCONFIG": str(site_cfg)}
    res = run(env, tmp_path, str(bin_ / "dirac-vm-list"), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout) == []
    res = run(env, tmp_path, str(bin_ / "dirac-vm-list"))
    assert res.returncode == 0 and "No VMs match." in res.stdout, res.stdout + res.stderr

    res = run(env, tmp_path, str(bin_ / "dirac-vm-list"), "--no-such-option")
    assert res.returncode == 1, res.stdout + res.stderr
    res = run(wheel_env, tmp_path, str(bin_ / "dirac-vm-check-ce"), f"--cfg={site_cfg}", "no.such.ce")
    assert res.returncode == 1 and "no.such.ce" in res.stderr, res.stdout + res.stderr


SUBMIT = r"""
import json, sys
from DIRAC.Core.Base.Script import Script
Script.parseCommandLine(ignoreErrors=False)
site, ce_name, vo, wrapper, checkout = Script.getPositionalArgs()
from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import getQueuesResolved
# What the SiteDirector does: queues from the CS, one CE object per queue by ComputingElementFactory.
sites = getQueues(siteList=[site], ceList=[ce_name])
assert sites["OK"], sites
queues = getQueuesResolved(sites["Value"], vo=vo, instantiateCEs=True)
assert queues["OK"], queues
(queue,) = queues["Value"].values()
ce = queue["CE"]
result = ce.submitJob(wrapper, "", 1)
from_checkout = sorted(name for name, module in list(sys.modules.items())
                       if (getattr(module, "__file__", None) or "").startswith(checkout + "/"))
print("RESULT " + json.dumps({"result": result, "ce_module": sys.modules[type(ce).__module__].__file__,
                              "from_checkout": from_checkout}, default=str))
"""


def user_data_text(server) -> str:
    raw = base64.b64decode(server.user_data)
    return gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()


def test_one_vm_submitted_from_the_wheel_install(wheel_venv, wheel_env, site_cfg, local_cloud, tmp_path):
    script = tmp_path / "submit_one_vm.py"
    script.write_text(SUBMIT)
    wrapper = tmp_path / "pilot-wrapper.sh"
    wrapper.write_text("#!/bin/bash\necho 'pilot wrapper running'\n")
    res = run(wheel_env, tmp_path, str(wheel_venv.python), str(script), f"--cfg={site_cfg}",
              SITE, CE, VO, str(wrapper), str(REPO))
    lines = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-5000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["from_checkout"] == []
    assert Path(out["ce_module"]).is_relative_to(wheel_venv.site_packages)
    assert out["result"]["OK"], out["result"]
    (reference,) = out["result"]["Value"]
    assert re.fullmatch(rf"cloud://{re.escape(CE)}/jdirac-[0-9a-f]{{32}}", reference)

    (server,) = [s for s in local_cloud.compute.servers.values() if s.status != "DELETED"]
    assert reference.endswith("/" + server.name)
    document = tmp_path / "user-data.yaml"
    document.write_text(user_data_text(server))
    schema = subprocess.run([shutil.which("cloud-init") or "/usr/bin/cloud-init", "schema", "--config-file",
                             str(document)], capture_output=True, text=True, timeout=120)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    assert "Valid cloud-config" in schema.stdout

    # The administrator sees it.
    res = run(wheel_env, tmp_path, str(wheel_venv.bin / "dirac-vm-list"), f"--cfg={site_cfg}", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert [vm["vm_name"] for vm in json.loads(res.stdout)] == [server.name]

