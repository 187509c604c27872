"""dirac-vm-profile-check: an administrator checks profiles added in the CS, without code."""

import os
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent

CS = """
DIRAC
{
  Security
  {
    UseServerCertificate = no
  }
}
Resources
{
  Cloud
  {
    Profiles
    {
      MyVO
      {
        CVMFSRepositories = myvo.example.org
        Template = %(template)s
      }
      %(extra)s
    }
  }
}
"""


def run(tmp_path, *args, extra="", template="el9.cloud-config.j2"):
    cfg = tmp_path / "dirac.cfg"
    cfg.write_text(CS % {"extra": extra, "template": template})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIRAC", "X509"))}
    env.update(DIRAC_ROOT_PATH=str(tmp_path), DIRACSYSCONFIG=str(cfg))
    return subprocess.run([str(VENV_BIN / "dirac-vm-profile-check"), *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def test_every_profile_including_one_added_in_the_cs_is_valid(tmp_path):
    res = run(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("BelleII", "T2K-HyperK", "MyVO"):
        assert f"{name}: valid" in res.stdout
    assert "CVMFS: myvo.example.org" in res.stdout


def test_show_prints_the_document_with_its_files_readable(tmp_path):
    res = run(tmp_path, "MyVO", "--show")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "#cloud-config" in res.stdout and "BelleII" not in res.stdout
    # the files the VM receives base64 (and gzip) encoded are shown decoded
    assert "    JDIRAC_PILOT_USER=diracpilot\n" in res.stdout
    assert "    CVMFS_REPOSITORIES=myvo.example.org\n" in res.stdout
    assert "stand-in pilot wrapper" in res.stdout
    assert "encoding: b64" not in res.stdout and "encoding: gz+b64" not in res.stdout


def test_no_short_option_clash_with_dirac(tmp_path):
    # -s is DIRAC's --section: registering it again printed an error on every run
    res = run(tmp_path, "MyVO")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "has been already defined" not in res.stdout + res.stderr


def test_unknown_command_line_option_is_a_usage_error(tmp_path):
    res = run(tmp_path, "--no-such-option")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "no-such-option" in res.stdout + res.stderr


def test_bad_option_names_the_cs_option(tmp_path):
    res = run(tmp_path, extra="Broken\n      {\n        CVMFSQuotaMB = lots\n      }")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "/Resources/Cloud/Profiles/Broken/CVMFSQuotaMB" in res.stdout + res.stderr


def test_misspelled_profile_option_gets_the_closest_known_one(tmp_path):
    res = run(tmp_path, extra="Typo\n      {\n        CVMFSQuotaMb = 30000\n      }")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "/Resources/Cloud/Profiles/Typo/CVMFSQuotaMb: unknown profile option, did you mean CVMFSQuotaMB?" in (
        res.stdout + res.stderr
    )


def test_template_with_a_misspelled_module_is_reported(tmp_path):
    from JenniferDIRAC.Resources.Cloud.UserData.profiles import DEFAULT_TEMPLATE, TEMPLATES_DIR

    template = tmp_path / "typo.j2"
    template.write_text((TEMPLATES_DIR / DEFAULT_TEMPLATE).read_text().replace("\nruncmd:", "\nrun_cmd:"))
    res = run(tmp_path, "MyVO", template=str(template))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "run_cmd: unknown top-level key" in res.stdout


def test_unknown_profile_is_a_usage_error(tmp_path):
    res = run(tmp_path, "NoSuchProfile")
    assert res.returncode == 1
    assert "NoSuchProfile" in res.stdout + res.stderr
