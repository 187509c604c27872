"""In every process started through Script.parseCommandLine (every dirac-* script), CEType = Cloud
builds JenniferDIRAC's CloudComputingElement, not DIRAC's stock one (DIRAC 9.1's ObjectLoader
loses the extension order on reloadRootModules; JenniferDIRAC corrects it)."""

import os
import subprocess
import sys
import textwrap

import pytest
from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader

from JenniferDIRAC.objectloader_order import correct_object_loader

OURS = "JenniferDIRAC.Resources.Computing.CloudComputingElement"
STOCK = "DIRAC.Resources.Computing.CloudComputingElement"

#: A DIRAC script as every dirac-* command runs: parseCommandLine first (it reloads the root
#: modules once the CS is enabled), then the CE factory as the SiteDirector uses it.
SCRIPT = textwrap.dedent(
    """
    import sys
    from DIRAC.Core.Base.Script import Script

    def main():
        if sys.argv[3] == "script":  # what the @Script wrapper of every dirac-* command does first
            from DIRAC.Core.Utilities.Extensions import extensionsByPriority

            extensionsByPriority()
        Script.parseCommandLine(ignoreErrors=False)
        from DIRAC.Core.Utilities.ObjectLoader import ObjectLoader
        from DIRAC.Resources.Computing.ComputingElementFactory import ComputingElementFactory

        loader = ObjectLoader()
        for _ in range(int(sys.argv[1])):
            loader.reloadRootModules()
        if sys.argv[2] == "break":  # the order DIRAC 9.1 leaves without the correction
            loader._ObjectLoader__rootModules = ["", "DIRAC", "JenniferDIRAC", ""]
        params = {"CloudType": "OPENSTACK", "Instance_Image": "name:img", "Instance_Flavor": "name:flv",
                  "InstallationName": "OrderTest"}
        result = ComputingElementFactory().getCE(ceType="Cloud", ceName="ce.order.test", ceParametersDict=params)
        assert result["OK"], result["Message"]
        print("BUILT", type(result["Value"]).__module__, loader._ObjectLoader__rootModules)

    main()
    """
)


def run_script(tmp_path, reloads, mode="keep", entry="script"):
    script = tmp_path / "dirac_order_probe.py"
    script.write_text(SCRIPT)
    (tmp_path / "etc").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    env["DIRAC_ROOT_PATH"] = str(tmp_path)
    return subprocess.run([sys.executable, str(script), str(reloads), mode, entry], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def built(res):
    (line,) = [line for line in res.stdout.splitlines() if line.startswith("BUILT ")]
    return line.split()[1]


@pytest.mark.parametrize("entry", ["script", "plain"])
def test_script_process_builds_our_cloud_ce(tmp_path, entry):
    # "script": DIRAC's extension list is computed (and cached) by the @Script wrapper before
    # ObjectLoader exists; "plain": ObjectLoader's first generation computes it.
    res = run_script(tmp_path, reloads=0, entry=entry)
    assert res.returncode == 0, res.stdout + res.stderr
    assert built(res) == OURS
    assert "stock" not in res.stdout + res.stderr


def test_order_survives_further_reloads(tmp_path):
    res = run_script(tmp_path, reloads=3)
    assert res.returncode == 0, res.stdout + res.stderr
    assert built(res) == OURS
    assert "['', 'JenniferDIRAC', 'DIRAC']" in res.stdout


def test_stock_class_built_anyway_is_a_loud_warning(tmp_path):
    res = run_script(tmp_path, reloads=0, mode="break")
    assert res.returncode == 0, res.stdout + res.stderr
    assert built(res) == STOCK
    assert "DIRAC's stock Resources.Computing.CloudComputingElement was loaded although JenniferDIRAC is installed" in (
        res.stdout + res.stderr
    )


def test_correction_is_idempotent_and_reloads_keep_extensions_first():
    loader = ObjectLoader()
    assert correct_object_loader() and correct_object_loader()
    for _ in range(3):
        loader.reloadRootModules()
        roots = [module for module in loader._ObjectLoader__rootModules if module]
        assert roots == ["JenniferDIRAC", "DIRAC"]
    result = loader.loadObject("Resources.Computing.CloudComputingElement")
    assert result["OK"] and result["Value"].__module__ == OURS
