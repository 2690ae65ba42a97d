"""The audit line names the action and the short arguments an operator typed, never a value,
a key file's content or anything nested in a list or a map."""

from __future__ import annotations

import logging

import pytest

from gossipnode.runtime.audit import audit

SECRET_MARK = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


def test_nested_and_long_arguments_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    key = {"fingerprint": "AB" * 20, "secret": SECRET_MARK + "x" * 500}
    with caplog.at_level(logging.INFO, logger="gossipnode.audit"):
        audit("alice(uid=1000,pid=7)", "keys_import",
              {"verb": "keys_import", "keys": [key, key], "dataset": "consumers",
               "blob": "y" * 5000, "value": {"secret": SECRET_MARK}, "force": True}, "ok")
    (line,) = [r.getMessage() for r in caplog.records]
    assert SECRET_MARK not in line and "yyyy" not in line
    assert "<list of 2>" in line and "<5000 characters>" in line
    assert '"dataset": "consumers"' in line and '"force": true' in line
    assert "alice(uid=1000,pid=7)" in line and "keys_import" in line
