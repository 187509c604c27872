"""Per-VM tokens: one VM, an expiry, a server-side secret."""

import os

import pytest

from JenniferDIRAC.WorkloadManagementSystem.Security.VMTokens import (
    SecretFileError,
    TokenAuthority,
    TokenExpired,
    TokenInvalid,
    create_secret_file,
    read_secret_file,
)

SECRET = b"s" * 40
OTHER_SECRET = b"o" * 40


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_issued_token_verifies_for_its_vm_only_until_expiry():
    clock = Clock()
    authority = TokenAuthority([SECRET], clock=clock)
    token = authority.issue("jdirac-" + "a" * 32, 3600)
    verified = authority.verify(token)
    assert verified.vm_name == "jdirac-" + "a" * 32
    assert verified.expires == int(clock.now) + 3600
    clock.now += 3599
    assert authority.verify(token).vm_name.endswith("a" * 32)
    clock.now += 1
    with pytest.raises(TokenExpired):
        authority.verify(token)


def test_token_cannot_be_moved_to_another_vm_or_extended():
    authority = TokenAuthority([SECRET], clock=Clock())
    token = authority.issue("jdirac-vm1", 60)
    prefix, name, expires, signature = token.split(".")
    with pytest.raises(TokenInvalid):
        authority.verify(".".join((prefix, "jdirac-vm2", expires, signature)))
    with pytest.raises(TokenInvalid):
        authority.verify(".".join((prefix, name, str(int(expires) + 86400), signature)))


def test_token_from_another_secret_is_refused_and_rotation_keeps_old_tokens_valid():
    clock = Clock()
    old = TokenAuthority([OTHER_SECRET], clock=clock).issue("jdirac-vm1", 60)
    with pytest.raises(TokenInvalid):
        TokenAuthority([SECRET], clock=clock).verify(old)
    rotated = TokenAuthority([SECRET, OTHER_SECRET], clock=clock)
    assert rotated.verify(old).vm_name == "jdirac-vm1"
    new = rotated.issue("jdirac-vm1", 60)
    with pytest.raises(TokenInvalid):
        TokenAuthority([OTHER_SECRET], clock=clock).verify(new)


@pytest.mark.parametrize(
    "garbage",
    ["", "jdv1", "jdv1.a.b.c", "jdv2.jdirac-x.1.abc", "jdv1.jdirac-x.-1.abc", "jdv1.../..", "x" * 1000,
     "jdv1.jdirac x.1.abc", "jdv1.jdirac-x.99999999999999999.abc", "jdv1.jdirac-x.1.\u00e9"],
)
def test_malformed_tokens_are_invalid(garbage):
    with pytest.raises(TokenInvalid):
        TokenAuthority([SECRET], clock=Clock()).verify(garbage)


def test_issue_refuses_names_that_would_make_ambiguous_tokens():
    authority = TokenAuthority([SECRET])
    for bad in ("", "a.b", "../x", "a" * 65):
        with pytest.raises(ValueError):
            authority.issue(bad, 60)
    with pytest.raises(ValueError):
        authority.issue("jdirac-vm", 0)


def test_short_secret_refused():
    with pytest.raises(SecretFileError):
        TokenAuthority([b"short"])


def test_secret_file_checks(tmp_path):
    path = tmp_path / "secret"
    create_secret_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    secrets = read_secret_file(path)
    assert len(secrets) == 1 and len(secrets[0]) >= 32
    with pytest.raises(FileExistsError):
        create_secret_file(path)

    os.chmod(path, 0o644)
    with pytest.raises(SecretFileError, match="chmod 600"):
        read_secret_file(path)

    empty = tmp_path / "empty"
    empty.write_text("# only a comment\n\n")
    os.chmod(empty, 0o600)
    with pytest.raises(SecretFileError, match="holds no secret"):
        read_secret_file(empty)

    with pytest.raises(SecretFileError, match="cannot read"):
        read_secret_file(tmp_path / "missing")


def test_secret_never_appears_in_errors(tmp_path):
    path = tmp_path / "secret"
    path.write_text("tooshort-secret-value\n")
    os.chmod(path, 0o600)
    with pytest.raises(SecretFileError) as caught:
        read_secret_file(path)
    assert "tooshort-secret-value" not in str(caught.value)


def test_names_and_expiries_are_checked_whole_and_ascii_only():
    clock = Clock()
    authority = TokenAuthority([SECRET], clock=clock)
    with pytest.raises(ValueError):
        authority.issue("jdirac-vm\n", 60)  # "$" would accept the trailing newline
    token = authority.issue("jdirac-vm", 60)
    prefix, name, expires, signature = token.split(".")
    with pytest.raises(TokenInvalid):
        authority.verify(".".join((prefix, name + "\n", expires, signature)))
    # Superscript digits pass str.isdigit() but not int(): refused as malformed, never a crash.
    superscript = expires[:-1] + "\u00b9"
    with pytest.raises(TokenInvalid):
        authority.verify(".".join((prefix, name, superscript, signature)))
    with pytest.raises(TokenInvalid):
        authority.verify(".".join((prefix, name, "\u0661" * 10, signature)))  # Arabic-Indic digits


@pytest.mark.parametrize("mode", [0o640, 0o660, 0o620, 0o604, 0o700 | 0o040])
def test_secret_file_readable_or_writable_by_the_group_is_refused(tmp_path, mode):
    path = tmp_path / "group.secret"
    create_secret_file(path)
    os.chmod(path, mode)
    with pytest.raises(SecretFileError) as caught:
        read_secret_file(path)
    message = str(caught.value)
    assert str(path) in message and f"{mode:04o}" in message and "0600" in message
    os.chmod(path, 0o600)
    assert read_secret_file(path)
    os.chmod(path, 0o400)  # read-only for the owner is fine
    assert read_secret_file(path)
