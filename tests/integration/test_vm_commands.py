"""The dirac-vm-* admin commands, run as an administrator runs them (subprocess, local cfg)."""

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from diraccfg import CFG

from JenniferDIRAC.Resources.Cloud.references import make_vm_name, pilot_reference

UTC = dt.timezone.utc
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def env(vmdb, pilotdb, tmp_path):
    """Environment for a command: a DIRAC root with the test cfg (VMDB + PilotAgentsDB)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    extra = (
        "Systems\n{\n  WorkloadManagement\n  {\n    Databases\n    {\n      PilotAgentsDB\n      {\n"
        f"        DBName = {pilotdb}\n      }}\n    }}\n  }}\n}}\n"
        "DIRAC\n{\n  Setup = Test\n}\nLocalSite\n{\n  DisableAccounting = True\n}\n"
    )
    cfg = CFG().loadFromBuffer(vmdb.cfg).mergeWith(CFG().loadFromBuffer(extra))
    (root / "etc" / "dirac.cfg").write_text(str(cfg))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    environ.update(DIRAC_ROOT_PATH=str(root), DIRACSYSCONFIG=str(root / "etc" / "dirac.cfg"))
    environ["PATH"] = f"{VENV_BIN}:{environ.get('PATH', '')}"
    return environ


#: DIRAC's own warning when no CS server is configured (as in these tests).
NO_CS_WARNING = "Running without remote configuration"


def run(env, *args, timeout=120, raw=False):
    res = subprocess.run([str(VENV_BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    if not raw:
        res.stdout = "\n".join(line for line in res.stdout.splitlines() if line.strip() != NO_CS_WARNING)
    assert "Traceback" not in res.stdout + res.stderr, res.stdout + res.stderr
    return res


COMMANDS = ("dirac-vm-list", "dirac-vm-kill", "dirac-vm-logs", "dirac-vm-check-ce", "dirac-vm-profile-check")


@pytest.fixture
def bare_env(tmp_path):
    """A host with a local cfg and nothing else configured."""
    (tmp_path / "bare" / "etc").mkdir(parents=True)
    cfg = tmp_path / "bare" / "etc" / "dirac.cfg"
    cfg.write_text("DIRAC\n{\n}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    environ.update(DIRAC_ROOT_PATH=str(tmp_path / "bare"), DIRACSYSCONFIG=str(cfg))
    return environ


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_command_line_option_is_a_usage_error(bare_env, command):
    # DIRAC exits 2 on a getopt error; 2 means "state database unreachable" for these commands
    res = run(bare_env, command, "--no-such-option", "x")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no-such-option" in res.stdout + res.stderr


def test_without_vmdb_the_error_names_both_ways_to_configure_it(bare_env):
    res = run(bare_env, "dirac-vm-list")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "/Systems/WorkloadManagement/Databases/VMDB" in res.stderr
    assert "/Systems/WorkloadManagement/URLs/VMManager" in res.stderr


def add_vms(vmdb, pilotdb, mariadb):
    """Four VMs on two CEs, with pilot records for three of them."""
    now = dt.datetime.now(UTC)
    vms = []
    for ce, state, age_min in (("ce-a.example", "ACTIVE", 125), ("ce-a.example", "BUILD", 3),
                               ("ce-b.example", "ERROR", 30), ("ce-b.example", "ACTIVE", 61)):
        name = make_vm_name()
        vms.append({"vm_name": name, "vm_id": "id-" + name[-6:], "ce": ce, "site": "CLOUD.Test.uk",
                    "vo": "belle" if ce == "ce-a.example" else "t2k", "profile": "default",
                    "pilot_reference": pilot_reference(ce, name), "stamp": uuid.uuid4().hex,
                    "flavor": "m1.small", "cores": 1, "ram_mb": 2048,
                    "created": now - dt.timedelta(minutes=age_min)})
        vms[-1]["_state"] = state
    assert vmdb.db.recordVMs([{k: v for k, v in vm.items() if k != "_state"} for vm in vms])["OK"]
    assert vmdb.db.setVMStates({vm["vm_name"]: vm["_state"] for vm in vms})["OK"]
    for vm, status in zip(vms[:3], ("Running", "Submitted", "Failed")):
        mariadb.execute(
            "INSERT INTO PilotAgents (PilotJobReference, VO, GridType, Status, PilotStamp, SubmissionTime) "
            f"VALUES ('{vm['pilot_reference']}', '{vm['vo']}', 'Cloud', '{status}', '{vm['stamp']}', UTC_TIMESTAMP())",
            database=pilotdb,
        )
    return vms


def test_list_table_and_filters(env, vmdb, pilotdb, mariadb):
    vms = add_vms(vmdb, pilotdb, mariadb)
    assert vmdb.db.markVMsDeleted([vms[3]["vm_name"]], "orphan")["OK"]
    res = run(env, "dirac-vm-list")
    assert res.returncode == 0, res.stderr + res.stdout
    lines = res.stdout.strip().splitlines()
    assert lines[0].split() == ["SITE", "CE", "VM", "STATE", "AGE", "PILOT", "REFERENCE", "PILOT", "STATUS", "VO"]
    rows = {line.split()[2]: line.split() for line in lines[1:]}
    assert set(rows) == {vm["vm_name"] for vm in vms[:3]}  # the deleted VM is left out
    a, b, c = (rows[vm["vm_name"]] for vm in vms[:3])
    assert a == ["CLOUD.Test.uk", "ce-a.example", vms[0]["vm_name"], "ACTIVE", "2h05m",
                 vms[0]["pilot_reference"], "Running", "belle"]
    assert b[3:5] == ["BUILD", "3m"] and b[6] == "Submitted"
    assert c[3] == "ERROR" and c[6] == "Failed" and c[7] == "t2k"

    res = run(env, "dirac-vm-list", "--ce", "ce-b.example", "--all")
    assert res.returncode == 0
    states = {line.split()[2]: line.split()[3] for line in res.stdout.strip().splitlines()[1:]}
    assert states == {vms[2]["vm_name"]: "ERROR", vms[3]["vm_name"]: "DELETED"}
    res = run(env, "dirac-vm-list", "--state", "deleted")
    assert [line.split()[2] for line in res.stdout.strip().splitlines()[1:]] == [vms[3]["vm_name"]]
    res = run(env, "dirac-vm-list", "--vo", "belle", "--state", "BUILD")
    assert [line.split()[2] for line in res.stdout.strip().splitlines()[1:]] == [vms[1]["vm_name"]]
    res = run(env, "dirac-vm-list", "--site", "Nowhere")
    assert res.returncode == 0 and res.stdout.strip() == "No VMs match."


def test_list_json(env, vmdb, pilotdb, mariadb):
    vms = add_vms(vmdb, pilotdb, mariadb)
    res = run(env, "dirac-vm-list", "--json", "--ce", "ce-a.example", raw=True)
    assert res.returncode == 0, res.stderr
    # stdout is exactly one JSON document: DIRAC's own messages went to stderr
    documents = json.loads(res.stdout)
    assert NO_CS_WARNING in res.stderr
    assert [d["vm_name"] for d in documents] == [vms[1]["vm_name"], vms[0]["vm_name"]]  # newest first
    first = documents[1]
    assert first["state"] == "ACTIVE" and first["pilot_status"] == "Running" and first["cores"] == 1
    assert 125 * 60 - 5 <= first["age_seconds"] <= 125 * 60 + 60
    assert dt.datetime.fromisoformat(first["created"]).tzinfo is not None


def test_list_backoffs(env, vmdb):
    res = run(env, "dirac-vm-list", "--backoffs")
    assert res.returncode == 0 and res.stdout.strip() == "No CE is backing off."
    future = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    assert vmdb.db.setBackoff("ce-a.example", "default", future, "3 VMs fizzled")["OK"]
    assert vmdb.db.setBackoff("ce-b.example", "", dt.datetime.now(UTC) - dt.timedelta(minutes=1), "ERROR VM")["OK"]
    assert vmdb.db.claimProbe("ce-b.example", "", "jdirac-probe")["Value"]
    res = run(env, "dirac-vm-list", "--backoffs")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["CE", "PROFILE", "UNTIL", "(UTC)"]
    assert "ce-a.example  default" in lines[1] and "BACKING OFF" in lines[1] and "3 VMs fizzled" in lines[1]
    assert "ce-b.example" in lines[2] and "PROBING" in lines[2] and "jdirac-probe" in lines[2]
    # getopt's abbreviation of --json: still one document on stdout
    res = run(env, "dirac-vm-list", "--backoffs", "--js", "--ce", "ce-a.example", raw=True)
    (row,) = json.loads(res.stdout)
    assert row["failures"] == 1 and row["active"] is True and row["profile"] == "default"


def test_list_usage_and_unavailable_exit_codes(env, vmdb, tmp_path):
    res = run(env, "dirac-vm-list", "--state", "RUNNING")
    assert res.returncode == 1 and "Unknown state(s) RUNNING" in res.stderr
    # A host with neither the database nor a VMManager service URL configured.
    cfg = Path(env["DIRACSYSCONFIG"]).read_text().replace(f"DBName = {vmdb.dbname}", "")
    (tmp_path / "nodb" / "etc").mkdir(parents=True)
    (tmp_path / "nodb" / "etc" / "dirac.cfg").write_text(cfg)
    nodb = {**env, "DIRAC_ROOT_PATH": str(tmp_path / "nodb"), "DIRACSYSCONFIG": str(tmp_path / "nodb" / "etc" / "dirac.cfg")}
    res = run(nodb, "dirac-vm-list")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Cannot read the VM state" in res.stderr and "VMManager" in res.stderr
    assert "/Systems/WorkloadManagement/Databases/VMDB" in res.stderr


def test_list_gives_up_on_an_unreachable_pilotagentsdb(env, vmdb, pilotdb, mariadb, tmp_path):
    add_vms(vmdb, pilotdb, mariadb)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    path = Path(env["DIRACSYSCONFIG"])
    cfg = CFG().loadFromBuffer(path.read_text())
    cfg.setOption("Systems/WorkloadManagement/Databases/PilotAgentsDB/Host", "127.0.0.1")
    cfg.setOption("Systems/WorkloadManagement/Databases/PilotAgentsDB/Port", str(closed_port))
    path.write_text(str(cfg))
    # DIRAC's default retries (275 s per connection attempt, several attempts) would hang it for
    # minutes; the subprocess timeout is the bound
    res = run(env, "dirac-vm-list", timeout=90)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "WorkloadManagement/PilotAgentsDB" in res.stderr


# --- commands that reach the cloud through the CE: LocalCloud --------------------------------
CE = "cloud.cmd.test"
SITE = "CLOUD.Cmd.test"


@pytest.fixture
def cloud_env(env, local_cloud, tmp_path, monkeypatch, vmdb):
    """``env`` plus a Cloud CE in the CS (file and this process) against LocalCloud; gives
    (environ, CE object built by DIRAC's ComputingElementFactory)."""
    from DIRAC import gConfig
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    from JenniferDIRAC.WorkloadManagementSystem.Client import VMStateClient as client_module

    monkeypatch.setattr(client_module, "_db", vmdb.db)
    creds = local_cloud.credentials
    auth = tmp_path / "cloud.auth"
    auth.write_text(f"[DEFAULT]\nkey = {creds.username}\nsecret = {creds.password}\n")
    auth.chmod(0o600)
    params = {
        "CEType": "Cloud",
        "CloudType": "OPENSTACK",
        "Driver_ex_force_auth_url": local_cloud.base_url + "/identity",
        "Driver_ex_force_auth_version": "3.x_password",
        "Driver_ex_tenant_name": creds.project_name,
        "CloudAuth": str(auth),
        "Instance_Image": "name:EL9-x86_64",
        "Instance_Flavor": "name:m1.small",
        "Instance_Networks": "name:private",
        "InstallationName": "CmdTest",
        "Community": "testvo",
        "HTTPTimeout": "10",
    }
    options = "".join(f"            {k} = {v}\n" for k, v in params.items())
    resources = (
        "Resources\n{\n  Sites\n  {\n    CLOUD\n    {\n"
        f"      {SITE}\n      {{\n        CE = {CE}\n        CEs\n        {{\n          {CE}\n          {{\n"
        f"{options}            Queues\n            {{\n              default\n              {{\n"
        "                maxCPUTime = 100000\n                SI00 = 2000\n                ExtraPilotOptions = -M 1\n"
        "                MaxTotalJobs = 20\n                MaxWaitingJobs = 10\n"
        "              }\n            }\n          }\n        }\n      }\n    }\n  }\n}\n"
    )
    cfg_path = Path(env["DIRACSYSCONFIG"])
    cfg = CFG().loadFromBuffer(cfg_path.read_text()).mergeWith(CFG().loadFromBuffer(resources))
    cfg_path.write_text(str(cfg))
    gConfig.loadCFG(CFG().loadFromBuffer(resources))
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict={**params, "Site": SITE})
    assert result["OK"], result.get("Message")
    ce = result["Value"]
    ce.retryDelay = 0.0
    yield env, ce
    ce.shutdown()


def live_names(cloud):
    """Names of the servers neither deleted nor being deleted (Nova lists those for a while)."""
    return {s.name for s in cloud.compute.servers.values() if s.status != "DELETED" and s.task_state != "deleting"}


@pytest.fixture
def wrapper_file(tmp_path):
    path = tmp_path / "wrapper.sh"
    path.write_text("#!/bin/bash\necho pilot\n")
    return str(path)


def test_kill_dry_run_then_by_reference_then_by_ce(cloud_env, local_cloud, vmdb, wrapper_file):
    env, ce = cloud_env
    refs = ce.submitJob(wrapper_file, "", 3)["Value"]
    assert len(refs) == 3
    names = [ref.rsplit("/", 1)[1] for ref in refs]
    assert live_names(local_cloud) == set(names)

    res = run(env, "dirac-vm-kill", "--ce", CE, "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Dry run: 3 VM(s) would be deleted." in res.stdout
    assert live_names(local_cloud) == set(names)

    res = run(env, "dirac-vm-kill", refs[0] + ":::somestamp", "--reason", "test kill")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Deleted {names[0]} ({CE})" in res.stdout
    assert live_names(local_cloud) == set(names[1:])
    (vm,) = vmdb.db.getVMs(names=names[0])["Value"]
    assert vm["deleted"] is not None and vm["delete_reason"] == "test kill"

    res = run(env, "dirac-vm-kill", refs[0])  # already deleted: nothing to do
    assert res.returncode == 4 and "No live VM matches" in res.stderr

    res = run(env, "dirac-vm-kill", "--ce", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 VM(s) deleted, 0 failed." in res.stdout
    assert live_names(local_cloud) == set()
    assert vmdb.db.getVMs(active_only=True)["Value"] == []


def test_kill_usage_and_cloud_failure(cloud_env, local_cloud, vmdb, wrapper_file):
    env, ce = cloud_env
    res = run(env, "dirac-vm-kill")
    assert res.returncode == 1 and "--ce or --state" in res.stderr
    res = run(env, "dirac-vm-kill", "--state", "RUNNING")
    assert res.returncode == 1
    ref = ce.submitJob(wrapper_file, "", 1)["Value"][0]
    # The CE's cloud password no longer works: nothing deleted, nothing marked.
    Path(ce.ceParameters["CloudAuth"]).write_text("[DEFAULT]\nkey = nobody\nsecret = wrong\n")
    res = run(env, "dirac-vm-kill", ref)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Could not delete 1 VM(s)" in res.stderr and "wrong" not in res.stderr
    assert len(live_names(local_cloud)) == 1
    assert vmdb.db.getVMs(active_only=True)["Value"][0]["pilot_reference"] == ref


def test_logs_console_and_uploaded(cloud_env, local_cloud, vmdb, wrapper_file, tmp_path):
    env, ce = cloud_env
    ref = ce.submitJob(wrapper_file, "", 1)["Value"][0]
    name = ref.rsplit("/", 1)[1]
    assert vmdb.db.storeLog(name, "shutdown_message", b"300 Nothing to do\n")["OK"]
    assert vmdb.db.storeLog(name, "boot", b"cloud-init finished\n")["OK"]

    res = run(env, "dirac-vm-logs", ref)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"==== console log of {name} ({CE}) ====" in res.stdout
    assert f"==== uploaded shutdown_message log of {name} ({CE}) ====\n300 Nothing to do" in res.stdout
    assert "cloud-init finished" in res.stdout

    res = run(env, "dirac-vm-logs", name, "--kind", "boot", "--no-console", "--output-dir", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / f"{name}.uploaded-boot.log").read_bytes() == b"cloud-init finished\n"
    assert not (tmp_path / "out" / f"{name}.console.log").exists()

    ce.killJob([ref])
    vmdb.db.markVMsDeleted([name], "done")
    res = run(env, "dirac-vm-logs", name)
    assert res.returncode == 0
    assert "No console log" in res.stderr and "300 Nothing to do" in res.stdout

    res = run(env, "dirac-vm-logs", "jdirac-" + "0" * 32)
    assert res.returncode == 4 and "No VM" in res.stderr


def check_lines(stdout, queue=None):
    """{check name: (verdict, rest of the line)} of dirac-vm-check-ce output (of one queue)."""
    checks, current = {}, None
    for line in stdout.splitlines():
        if line.startswith("CE "):
            current = line.split()[-1]
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("OK", "WARN", "FAIL", "SKIP") and queue in (None, current):
            name = parts[1]
            while name in checks:  # several WARN option lines
                name += "+"
            checks[name] = (parts[0], parts[2] if len(parts) > 2 else "")
    return checks


def ce_path(option):
    return f"Resources/Sites/CLOUD/{SITE}/CEs/{CE}/{option}"


def set_ce_option(env, option, value):
    """Set a CE (or ``Queues/<queue>/...``) option in the command's cfg, sections made as needed."""
    path = Path(env["DIRACSYSCONFIG"])
    *sections, name = ce_path(option).split("/")
    change = node = {}
    for section in sections:
        node = node.setdefault(section, {})
    node[name] = value
    path.write_text(str(CFG().loadFromBuffer(path.read_text()).mergeWith(CFG().loadFromDict(change))))


def test_check_ce_all_good(cloud_env):
    env, _ = cloud_env
    set_ce_option(env, "Context_EndpointURL", "https://vm-endpoint.example.org:8449")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines()[0] == f"CE {CE} queue default"
    checks = check_lines(res.stdout)
    # a real CE configuration (DIRAC's own queue options included) warns about nothing
    assert list(checks) == ["config", "endpoint", "auth", "image", "flavor", "network", "quota", "user-data"]
    assert checks["endpoint"][1] == "VMs fetch their pilot wrapper once from https://vm-endpoint.example.org:8449"
    assert {verdict for verdict, _ in checks.values()} == {"OK"}, res.stdout
    assert "m1.small: 1 cores" in checks["flavor"][1]
    assert "0 VM(s) of this CE (CmdTest/cloud.cmd.test)" in checks["auth"][1]
    assert re.match(r"the CE offers \d+ more VM\(s\) now \(limited by ", checks["quota"][1])
    assert re.search(r"^\d+ of \d+ bytes \((gzip|plain).*valid cloud-config$", checks["user-data"][1])


def test_check_ce_warns_without_a_contextualization_endpoint(cloud_env):
    env, _ = cloud_env
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    verdict, detail = check_lines(res.stdout)["endpoint"]
    assert verdict == "WARN"
    assert "the pilot wrapper and its proxy go in user data" in detail
    assert detail.endswith("[CS option: /Resources/Cloud/Endpoint/URL]")


def test_check_ce_names_the_option_to_fix(cloud_env, local_cloud):
    env, _ = cloud_env
    set_ce_option(env, "Instance_Flavor", "name:m1.nonexistent")
    local_cloud.compute.set_quota(instances=0, cores=-1, ram=-1)
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 3, res.stdout + res.stderr
    checks = check_lines(res.stdout)
    assert checks["flavor"][0] == "FAIL" and "[CS option: Instance_Flavor]" in checks["flavor"][1]
    assert checks["image"][0] == "OK" and checks["quota"][0] == "SKIP"

    set_ce_option(env, "Instance_Flavor", "name:m1.small")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 0  # a full quota is a warning, not a failure
    assert check_lines(res.stdout)["quota"][0] == "WARN"
    assert "offers 0 more VM(s) now (limited by project quota" in check_lines(res.stdout)["quota"][1]


def test_check_ce_reports_what_the_ce_offers_for_every_queue(cloud_env, local_cloud):
    env, _ = cloud_env
    local_cloud.compute.set_quota(instances=10, cores=-1, ram=-1)
    set_ce_option(env, "QuotaShare", "30%")
    set_ce_option(env, "Queues/small/maxCPUTime", "1000")
    set_ce_option(env, "Queues/small/SI00", "2000")
    set_ce_option(env, "Queues/small/MaxWaitingJobs", "1")
    set_ce_option(env, "Queues/small/MaxTotalJobs", "5")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    default, small = check_lines(res.stdout, "default"), check_lines(res.stdout, "small")
    # 10 instances in the project, 30% of them for this CE: 3 (not "room for 10")
    assert default["quota"] == ("OK", "the CE offers 3 more VM(s) now (limited by QuotaShare; 0 running, 0 starting)")
    assert small["quota"][1].startswith("the CE offers 1 more VM(s) now (limited by MaxWaitingJobs")

    set_ce_option(env, "MaxStartingVMs", "2")
    res = run(env, "dirac-vm-check-ce", CE)
    assert check_lines(res.stdout, "default")["quota"][1].startswith("the CE offers 2 more VM(s) now (limited by MaxStartingVMs")


def test_check_ce_warns_about_misspelled_options(cloud_env):
    env, _ = cloud_env
    set_ce_option(env, "Instance_Flavour", "name:m1.large")
    set_ce_option(env, "Queues/default/QuotaShares", "50%")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 0, res.stdout + res.stderr
    warnings = [line for line in res.stdout.splitlines() if line.startswith("WARN  option")]
    assert len(warnings) == 2, res.stdout
    assert "Instance_Flavour: unknown CE option (ignored), did you mean Instance_Flavor?" in warnings[0]
    assert warnings[0].endswith("[CS option: Instance_Flavour]")
    assert "QuotaShares: unknown CE option (ignored), did you mean QuotaShare?" in warnings[1]


def test_check_ce_unknown_profile_fails_naming_the_option(cloud_env):
    env, _ = cloud_env
    set_ce_option(env, "Context_Profile", "NoSuchProfile")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 3, res.stdout + res.stderr
    verdict, detail = check_lines(res.stdout)["user-data"]
    assert verdict == "FAIL" and "no profile 'NoSuchProfile'" in detail and detail.endswith("[CS option: Context_Profile]")


BROKEN_TEMPLATES = {
    "jinja": lambda text: text.replace("{{", "{%", 1),
    "unknown-key": lambda text: text.replace("\nruncmd:", "\nrunkmd:"),
    "yaml": lambda text: text + "\nbroken: [unclosed\n",
}


@pytest.mark.parametrize("broken", sorted(BROKEN_TEMPLATES))
def test_check_ce_and_submit_refuse_a_broken_context_template(cloud_env, local_cloud, tmp_path, wrapper_file, broken):
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    from JenniferDIRAC.Resources.Cloud.UserData.profiles import DEFAULT_TEMPLATE, TEMPLATES_DIR

    env, ce = cloud_env
    template = tmp_path / f"{broken}.cloud-config.j2"
    template.write_text(BROKEN_TEMPLATES[broken]((TEMPLATES_DIR / DEFAULT_TEMPLATE).read_text()))
    set_ce_option(env, "Context_Template", str(template))
    set_ce_option(env, "Context_Profile", "BelleII")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 3, res.stdout + res.stderr
    verdict, detail = check_lines(res.stdout)["user-data"]
    assert verdict == "FAIL" and detail.endswith("[CS option: Context_Template]"), res.stdout
    assert "Profiles/BelleII" not in res.stdout

    params = {**ce.ceParameters, "Context_Template": str(template)}
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict=params)
    assert result["OK"], result.get("Message")
    result = result["Value"].submitJob(wrapper_file, "", 2)
    assert not result["OK"] and "Context_Template" in result["Message"], result
    assert live_names(local_cloud) == set()  # no VM boots with it


def test_check_ce_bad_credentials_and_unknown_ce(cloud_env):
    env, ce = cloud_env
    Path(ce.ceParameters["CloudAuth"]).write_text("[DEFAULT]\nkey = nobody\nsecret = s3cr3t-wrong\n")
    res = run(env, "dirac-vm-check-ce", CE)
    assert res.returncode == 3
    checks = check_lines(res.stdout)
    assert checks["auth"][0] == "FAIL" and "[CS option: CloudAuth]" in checks["auth"][1]
    assert [checks[name][0] for name in ("image", "flavor", "network", "quota", "user-data")] == ["SKIP"] * 5
    assert "s3cr3t-wrong" not in res.stdout + res.stderr
    res = run(env, "dirac-vm-check-ce", "no.such.ce")
    assert res.returncode == 1 and "no.such.ce is not configured" in res.stderr


def test_ce_logs_unknown_options_with_the_closest_known_one(cloud_env, caplog):
    from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

    _, ce = cloud_env
    params = {**ce.ceParameters, "Instance_Flavour": "name:m1.large"}
    result = ComputingElementFactory().getCE(ceType="Cloud", ceName=CE, ceParametersDict=params)
    assert result["OK"], result.get("Message")
    assert "CS option Instance_Flavour: unknown CE option (ignored), did you mean Instance_Flavor?" in caplog.text


def test_logs_escape_what_the_vm_sent(cloud_env, vmdb, wrapper_file, tmp_path):
    env, ce = cloud_env
    name = ce.submitJob(wrapper_file, "", 1)["Value"][0].rsplit("/", 1)[1]
    hostile = b"ok\x1b]0;pwned\x07\x1b[2J\rend\n"
    assert vmdb.db.storeLog(name, "boot", hostile)["OK"]
    res = run(env, "dirac-vm-logs", name, "--no-console")
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout and "\r" not in res.stdout
    assert "ok\\x1b]0;pwned\\x07\\x1b[2J\\rend" in res.stdout
    res = run(env, "dirac-vm-logs", name, "--no-console", "--output-dir", str(tmp_path / "out"))
    assert (tmp_path / "out" / f"{name}.uploaded-boot.log").read_bytes() == hostile  # files keep the bytes


def test_endpoint_secret_create_refuse_existing_and_rotate(bare_env, tmp_path):
    from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import TokenAuthority

    path = tmp_path / "vm-endpoint.secret"
    res = run(bare_env, "dirac-vm-endpoint-secret", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert first.strip() not in res.stdout + res.stderr  # the secret is never printed
    token = TokenAuthority.from_secret_file(path).issue_for_vm("jdirac-" + "a" * 32, 3600)

    # an existing file is never overwritten (create_secret_file raised a traceback)
    res = run(bare_env, "dirac-vm-endpoint-secret", str(path))
    assert res.returncode == 1 and "exists: not overwritten (use --rotate" in res.stderr
    assert path.read_text() == first

    res = run(bare_env, "dirac-vm-endpoint-secret", "--rotate", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and lines[1] == first.strip() and lines[0] != lines[1]
    assert path.stat().st_mode & 0o777 == 0o600
    rotated = TokenAuthority.from_secret_file(path)
    assert rotated.verify(token).vm_name == "jdirac-" + "a" * 32  # tokens of running VMs stay valid
    assert rotated.issue_for_vm("jdirac-" + "b" * 32, 3600) != token

    res = run(bare_env, "dirac-vm-endpoint-secret", "--rotate", str(tmp_path / "missing.secret"))
    assert res.returncode == 1 and "Cannot rotate" in res.stderr
