"""A CE's own Context_Template: checked against cloud-init's schema once per template content."""

import pytest

from JenniferDIRAC.Resources.Cloud.references import make_stamp, make_vm_name, pilot_reference
from JenniferDIRAC.Resources.Cloud.UserData import PilotContext, Profile, render_user_data
from JenniferDIRAC.Resources.Cloud.UserData import templatecheck
from JenniferDIRAC.Resources.Cloud.UserData.errors import ConfigurationError
from JenniferDIRAC.Resources.Cloud.UserData.profiles import DEFAULT_TEMPLATE, TEMPLATES_DIR
from JenniferDIRAC.Resources.Cloud.UserData.readable import readable_cloud_config


def context():
    name = make_vm_name()
    return PilotContext(pilot_reference=pilot_reference("ce.test", name), pilot_stamp=make_stamp(),
                        wrapper="#!/bin/bash\necho pilot\n", vm_name=name, ce_name="ce.test", site="CLOUD.T.uk")


@pytest.fixture
def template(tmp_path):
    path = tmp_path / "ce.cloud-config.j2"
    path.write_text((TEMPLATES_DIR / DEFAULT_TEMPLATE).read_text())
    templatecheck.forget_verdicts()
    yield path
    templatecheck.forget_verdicts()


@pytest.fixture
def validations(monkeypatch):
    calls = []
    real = templatecheck.validate_cloud_config

    def counting(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(templatecheck, "validate_cloud_config", counting)
    return calls


def check(template):
    text = render_user_data(context(), Profile(name="default"), template_path=template)
    return templatecheck.check_ce_template(template, text, "default")


def test_valid_template_is_validated_once_per_content(template, validations):
    assert check(template) == "" and check(template) == ""
    assert len(validations) == 1
    template.write_text(template.read_text() + "\n# a comment changes the content\n")
    check(template)
    assert len(validations) == 2


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda t: t.replace("\nruncmd:", "\nrunkmd:"), "runkmd: unknown top-level key"),
        (lambda t: t + "\nbroken: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_template_names_context_template(template, validations, change, problem):
    template.write_text(change(template.read_text()))
    for _ in range(2):  # the verdict is kept: refused again without validating again
        with pytest.raises(ConfigurationError) as failure:
            check(template)
        assert failure.value.option == "Context_Template" and problem in str(failure.value)
    assert len(validations) == 1


def test_template_errors_name_context_template_not_the_profile(template):
    template.write_text("#cloud-config\n{% if %}\n")
    with pytest.raises(ConfigurationError) as failure:
        render_user_data(context(), Profile(name="BelleII"), template_path=template)
    assert failure.value.option == "Context_Template"
    assert "Profiles/BelleII" not in str(failure.value)


def test_readable_document_decodes_files():
    text = render_user_data(context(), Profile(name="default"))
    shown = readable_cloud_config(text)
    assert shown.startswith("#cloud-config\n")
    assert "export PILOT_UUID=cloud://ce.test/" in shown
    assert "echo pilot" in shown and "encoding:" not in shown
