"""The loopback test CA: kept credentials are reused only while they stay valid."""

import datetime

from dev.loopback import certs


def test_credentials_are_reused_while_valid_and_made_again_before_they_expire(tmp_path, monkeypatch):
    grid, user = tmp_path / "grid-security", tmp_path / "user"
    monkeypatch.setattr(certs, "VALIDITY", datetime.timedelta(hours=2))  # expires within a day
    short = certs.make_credentials(grid, user)
    short_lived = short.host_cert.read_bytes()
    monkeypatch.setattr(certs, "VALIDITY", datetime.timedelta(days=30))
    renewed = certs.make_credentials(grid, user)
    assert renewed.host_cert.read_bytes() != short_lived
    files = (renewed.ca_cert, renewed.host_cert, renewed.user_cert, renewed.user_key)
    kept = {p: p.read_bytes() for p in files}
    again = certs.make_credentials(grid, user)
    assert {p: p.read_bytes() for p in kept} == kept
    assert again == renewed
