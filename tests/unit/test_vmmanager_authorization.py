"""VMManager's authorization defaults in code, judged by DIRAC's own AuthManager for each role,
with NO Authorization section in the CS (before v0.2.0 that let anyone call all 19 methods).

As DIRAC's Service does: the hardcoded rule of a method is the handler's ``auth_<method>``
attribute, passed to ``AuthManager.authQuery`` beside the (empty) CS section. Run in a child
process because it loads a test Registry into gConfig.
"""

import json
import subprocess
import sys

CHECK = r'''
import json
from diraccfg import CFG
from DIRAC import gConfig
from DIRAC.Core.DISET.AuthManager import AuthManager
from JenniferDIRAC.WorkloadManagementSystem.Service.VMManagerHandler import VMManagerHandler

REGISTRY = """
Registry
{
  Users
  {
    operator
    {
      DN = /DC=org/CN=operator
    }
    jobadmin
    {
      DN = /DC=org/CN=jobadmin
    }
    physicist
    {
      DN = /DC=org/CN=physicist
    }
    pilotuser
    {
      DN = /DC=org/CN=pilot
    }
  }
  Groups
  {
    dirac_admin
    {
      Users = operator
      Properties = Operator, NormalUser
    }
    belle_jobadmin
    {
      Users = jobadmin
      Properties = JobAdministrator, NormalUser
    }
    belle_user
    {
      Users = physicist
      Properties = NormalUser
    }
    belle_pilot
    {
      Users = pilotuser
      Properties = GenericPilot, LimitedDelegation
    }
  }
  Hosts
  {
    sitedirector.example.org
    {
      DN = /DC=org/CN=sitedirector.example.org
      Properties = TrustedHost
    }
    vmdirector.example.org
    {
      DN = /DC=org/CN=vmdirector.example.org
      Properties = TrustedHost
    }
    worker.example.org
    {
      DN = /DC=org/CN=worker.example.org
      Properties = NoProperty
    }
  }
}
"""
gConfig.loadCFG(CFG().loadFromBuffer(REGISTRY))
ROLES = {
    "operator": {"DN": "/DC=org/CN=operator", "group": "dirac_admin"},
    "job administrator": {"DN": "/DC=org/CN=jobadmin", "group": "belle_jobadmin"},
    "SiteDirector host (CE)": {"DN": "/DC=org/CN=sitedirector.example.org", "group": "hosts"},
    "VMDirector host": {"DN": "/DC=org/CN=vmdirector.example.org", "group": "hosts"},
    "untrusted host": {"DN": "/DC=org/CN=worker.example.org", "group": "hosts"},
    "user": {"DN": "/DC=org/CN=physicist", "group": "belle_user"},
    "pilot": {"DN": "/DC=org/CN=pilot", "group": "belle_pilot"},
    "unregistered DN": {"DN": "/DC=org/CN=stranger"},
    "no certificate": {},
}
manager = AuthManager("/Systems/WorkloadManagement/Services/VMManager/Authorization")
# The handler's own methods (ping, echo, whoami... come from RequestHandler with their own rules).
methods = sorted(name[len("export_"):] for name in vars(VMManagerHandler) if name.startswith("export_"))
out = {"methods": methods, "hardcoded": {m: getattr(VMManagerHandler, "auth_" + m, None) for m in methods}, "allowed": {}}
for role, cred in ROLES.items():
    out["allowed"][role] = sorted(m for m in methods
                                  if manager.authQuery(m, dict(cred), getattr(VMManagerHandler, "auth_" + m, False)))
print("RESULT " + json.dumps(out))
'''

READS = {"getVMs", "getBackoff", "getBackoffs", "getHeartbeats", "getLogs", "getLogInfo", "getAccountingRecords",
         "getBootstrapIncidents", "getBootstraps", "getNoCapacity", "getVMChanges"}


def authorization():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_each_role_gets_exactly_what_it_needs_without_a_cs_authorization_section():
    out = authorization()
    methods = set(out["methods"])
    assert len(methods) == 28 and READS <= methods  # 19 of v0.1.0 + 5 bootstrap calls + addHeartbeats + 2 VMCapacity
    # + getVMChanges
    # Every exported method has a rule in code: a new method cannot be open by omission.
    assert all(out["hardcoded"][m] for m in methods), out["hardcoded"]
    allowed = {role: set(names) for role, names in out["allowed"].items()}
    for role in ("operator", "SiteDirector host (CE)", "VMDirector host"):
        assert allowed[role] == methods, role
    assert allowed["job administrator"] == READS
    for role in ("untrusted host", "user", "pilot", "unregistered DN", "no certificate"):
        assert allowed[role] == set(), (role, allowed[role])
