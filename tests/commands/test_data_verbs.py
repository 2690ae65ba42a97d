"""put, get, delete and list against two running agents: human and --json
output, replication to the other node, and the error paths (unknown dataset, values that are
not maps, records over the size limit, missing records)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow



def test_put_get_round_trip_in_human_and_json_form(cluster, cli):
    value = {"members": ["ann", "bob"], "limit": 3, "blob": {"$bytes": "AAEC"}}
    put = cli("put", "groups", "sales", "--value", json.dumps(value), "--config",
              cluster.a.config)
    assert put.code == 0, put.err
    assert put.out.startswith("stored groups/sales (version ")
    got = cli("get", "groups", "sales", "--config", cluster.a.config)
    assert got.code == 0, got.err
    assert got.json() == value  # bytes come back as {"$bytes": ...} too
    record = cli("get", "groups", "sales", "--config", cluster.a.config, "--json").json()
    assert record["key"] == "sales" and record["value"] == value
    assert record["version"]["origin"] == cluster.a.node_id
    assert isinstance(record["version"]["wall_ms"], int)


def test_get_output_feeds_put_value_file(cluster, cli, tmp_path):
    cli("put", "mail_settings", "example.org", "--value", '{"archive": "imap://x"}',
        "--config", cluster.a.config)
    saved = tmp_path / "value.json"
    saved.write_text(cli("get", "mail_settings", "example.org", "--config", cluster.a.config).out)
    put = cli("put", "mail_settings", "example.net", "--value-file", saved, "--config",
              cluster.a.config, "--json")
    assert put.code == 0, put.err
    assert put.json()["value"] == {"archive": "imap://x"}


def test_a_put_on_one_node_can_be_read_on_the_other(cluster, cli, wait):
    assert cli("put", "org_keys", "org-1", "--value", '{"n": 1}', "--config",
               cluster.a.config).code == 0
    wait(lambda: cli("get", "org_keys", "org-1", "--config", cluster.b.config).code == 0,
         "org_keys/org-1 to reach b")
    assert cli("get", "org_keys", "org-1", "--config", cluster.b.config).json() == {"n": 1}


def test_get_of_a_missing_record_exits_1(cluster, cli):
    outcome = cli("get", "groups", "no-such-group", "--config", cluster.a.config)
    assert outcome.code == 1
    assert outcome.out == ""
    assert outcome.err.strip() == "gossipnode get: no record groups/no-such-group"


def test_delete_removes_the_record_and_a_second_delete_exits_1(cluster, cli):
    cli("put", "keyservers", "ks1", "--value", '{"url": "hkps://k"}', "--config",
        cluster.a.config)
    deleted = cli("delete", "keyservers", "ks1", "--config", cluster.a.config)
    assert deleted.code == 0 and deleted.out.startswith("deleted keyservers/ks1")
    assert cli("get", "keyservers", "ks1", "--config", cluster.a.config).code == 1
    assert cli("delete", "keyservers", "ks1", "--config", cluster.a.config).code == 1
    listed = cli("list", "keyservers", "--config", cluster.a.config, "--json").json()
    assert "ks1" not in [r["key"] for r in listed["records"]]


def test_list_with_prefix_and_limit(cluster, cli):
    for key in ("mbox-1/m1", "mbox-1/m2", "mbox-1/m3", "mbox-2/m1"):
        assert cli("put", "learn_mode", key, "--value", json.dumps({"k": key}), "--config",
                   cluster.a.config).code == 0
    listed = cli("list", "learn_mode", "--prefix", "mbox-1/", "--config", cluster.a.config,
                 "--json")
    assert listed.code == 0, listed.err
    page = listed.json()
    assert [r["key"] for r in page["records"]] == ["mbox-1/m1", "mbox-1/m2", "mbox-1/m3"]
    assert page["next"] is None
    assert all(set(r) == {"key", "value", "version"} for r in page["records"])
    limited = cli("list", "learn_mode", "--limit", "2", "--config", cluster.a.config, "--json")
    assert [r["key"] for r in limited.json()["records"]] == ["mbox-1/m1", "mbox-1/m2"]
    assert limited.json()["next"] == "mbox-1/m2"
    rest = cli("list", "learn_mode", "--limit", "2", "--after", "mbox-1/m2", "--config",
               cluster.a.config)
    assert [line.split()[0] for line in rest.out.splitlines()[1:3]] == ["mbox-1/m3", "mbox-2/m1"]
    assert "(more: continue with --after mbox-2/m1)" not in rest.out  # exactly 2 were left
    table = cli("list", "learn_mode", "--prefix", "mbox-2/", "--config", cluster.a.config)
    lines = table.out.splitlines()
    assert lines[0].split() == ["Key", "Version", "Value"]
    assert lines[1].startswith("mbox-2/m1 ") and '{"k":"mbox-2/m1"}' in lines[1]
    empty = cli("list", "learn_mode", "--prefix", "zzz", "--config", cluster.a.config)
    assert empty.code == 0 and "(no records in learn_mode" in empty.out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["put", "nope", "k", "--value", "{}"], "unknown dataset 'nope'"),
        (["get", "nope", "k"], "unknown dataset 'nope'"),
        (["list", "nope"], "unknown dataset 'nope'"),
        (["put", "groups", "k", "--value", "[1, 2]"], "must be a JSON object (a map)"),
        (["put", "groups", "k", "--value", '"text"'], "must be a JSON object (a map)"),
        (["put", "groups", "k", "--value", "{not json"], "not JSON"),
        (["put", "groups", "k", "--value", json.dumps({"big": "x" * 1_100_000})],
         "over the limit of 1048576 bytes"),
        (["put", "groups", "k", "--value", '{"b": {"$bytes": "!!"}}'], "must be base64"),
        (["list", "groups", "--limit", "0"], "'limit' must be an integer"),
    ],
)
def test_bad_data_requests_fail_with_one_clear_line(cluster, cli, arguments, message):
    outcome = cli(*arguments, "--config", cluster.a.config)
    assert outcome.code == 2
    assert outcome.out == ""
    assert len(outcome.err.splitlines()) == 1
    assert message in outcome.err


def test_value_file_errors(cluster, cli, tmp_path):
    missing = cli("put", "groups", "k", "--value-file", tmp_path / "absent.json", "--config",
                  cluster.a.config)
    assert missing.code == 2 and "No such file" in missing.err
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe{}")
    assert "not UTF-8" in cli("put", "groups", "k", "--value-file", binary, "--config",
                              cluster.a.config).err


def test_put_and_get_through_the_installed_command(cluster, tmp_path):
    """The same verbs as a real process, with the socket from the environment."""
    environment = {"GOSSIPNODE_SOCKET": str(cluster.b.socket), "PATH": "/usr/bin:/bin",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gossipnode", *arguments], env=environment,
                              capture_output=True, text=True, timeout=60, check=False)

    assert run("put", "trusted_keys", "t1", "--value", '{"ok": true}').returncode == 0
    got = run("get", "trusted_keys", "t1", "--json")
    assert got.returncode == 0 and json.loads(got.stdout)["value"] == {"ok": True}
    missing = run("get", "trusted_keys", "t2")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
