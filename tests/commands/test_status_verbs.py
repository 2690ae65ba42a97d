"""members, status, info, health, metrics, monitor against two running agents, in human and
--json form, and how they fail without an agent."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest

from gossipnode.cli import _VERBS, _load_verbs, build_parser
from gossipnode.commands.status_verbs import parse_metrics

pytestmark = pytest.mark.slow


def test_members_table_lists_both_nodes_with_state_and_tags(cluster, cli):
    outcome = cli("members", "--config", cluster.a.config)
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0].split() == ["Name", "ID", "Address", "State", "Grants", "Tags", "Last",
                                "seen"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"a", "b"}
    assert cluster.a.address in rows["a"] and "(self)" in rows["a"]
    assert cluster.b.address in rows["b"] and " alive " in rows["b"]
    assert "private_keys=false" in rows["b"] and "wep=true" in rows["b"]
    assert " open " in rows["b"]  # no administrator key pinned: every member trusted
    # aligned: the Address column starts at the same offset on every line
    offsets = {line.index("127.0.0.1") for line in lines[1:]}
    assert len(offsets) == 1 and lines[0].index("Address") in offsets


def test_members_json_has_names_ids_states_and_boolean_tags(cluster, cli):
    outcome = cli("members", "--socket", cluster.b.socket, "--json")
    assert outcome.code == 0, outcome.err
    members = {m["name"]: m for m in outcome.json()}
    assert members["a"]["id"] == cluster.a.node_id
    assert members["b"]["id"] == cluster.b.node_id
    assert members["a"]["address"] == cluster.a.address
    assert {m["state"] for m in members.values()} == {"alive"}
    assert members["a"]["tags"]["private_keys"] is True
    assert members["b"]["tags"]["private_keys"] is False
    assert members["b"]["tags"]["wep"] is True


def test_socket_comes_from_the_environment(cluster, cli, monkeypatch):
    monkeypatch.setenv("GOSSIPNODE_SOCKET", str(cluster.b.socket))
    outcome = cli("status", "--json")
    assert outcome.code == 0, outcome.err
    assert outcome.json()["node"]["name"] == "b"


def test_no_socket_at_all_is_a_usage_error(cli, monkeypatch):
    monkeypatch.delenv("GOSSIPNODE_SOCKET", raising=False)
    outcome = cli("members")
    assert outcome.code == 2
    assert "GOSSIPNODE_SOCKET" in outcome.err and "--socket" in outcome.err
    assert len(outcome.err.splitlines()) == 1


def test_status_shows_node_datasets_and_peers_under_a_legend(cluster, cli):
    cluster.a.request("put", dataset="groups", key="status-probe", value={"n": 1})
    outcome = cli("status", "--config", cluster.a.config)
    assert outcome.code == 0, outcome.err
    text = outcome.out
    assert f"a ({cluster.a.node_id})" in text
    assert "Status=Up/Down/Suspect/Left" in text
    assert "|/ Sync=Converged/Behind/Repairing/Unknown" in text
    groups = next(line for line in text.splitlines() if line.startswith("groups "))
    digest = cluster.a.request("status")["datasets"]
    expected = next(d for d in digest if d["name"] == "groups")
    assert groups.split()[2] == str(expected["records"]) and expected["digest"] in groups
    assert re.search(r"^--\s+Name\s+ID\s+Grants\s+Synced\s+Moved\s+Lag\s+Withheld$", text,
                     re.MULTILINE)
    peer_row = next(line for line in text.splitlines() if re.match(r"^[UDSL][CBRU]  b ", line))
    assert peer_row.startswith("U")  # b is up
    assert "network " in text and "(local)" in text


def test_status_json_has_node_datasets_and_peers(cluster, cli):
    outcome = cli("status", "--socket", cluster.a.socket, "--json")
    assert outcome.code == 0, outcome.err
    status = outcome.json()
    assert status["node"]["name"] == "a" and status["node"]["id"] == cluster.a.node_id
    names = [d["name"] for d in status["datasets"]]
    assert "consumers" in names and "private_keys" in names and len(names) == 17
    for dataset in status["datasets"]:
        assert set(dataset) >= {"name", "records", "digest"}
    (peer,) = status["peers"]
    assert peer["name"] == "b" and peer["state"] == "alive"
    assert set(peer) >= {"sync", "sync_age_s", "pending_push_records", "withheld"}


def test_info_prints_consul_style_sections(cluster, cli):
    outcome = cli("info", "--config", cluster.a.config)
    assert outcome.code == 0, outcome.err
    lines = outcome.out.splitlines()
    sections = [line[:-1] for line in lines if not line.startswith("\t")]
    assert sections == sorted(sections) and {"agent", "membership", "wire"} <= set(sections)
    assert "\tname = a" in lines
    assert all(re.fullmatch(r"\t\w+ = .*", line) for line in lines if line.startswith("\t"))
    as_json = cli("info", "--config", cluster.a.config, "--json").json()
    assert as_json["agent"]["name"] == "a" and as_json["membership"]["members"] == 2


def test_health_is_healthy_with_two_live_members(cluster, cli):
    outcome = cli("health", "--config", cluster.a.config)
    assert outcome.code == 0, outcome.out + outcome.err
    assert outcome.out.startswith("healthy: 2 of 2 members alive")
    report = cli("health", "--config", cluster.a.config, "--json")
    assert report.code == 0
    assert report.json()["health"] == "healthy" and report.json()["reasons"] == []


def test_health_without_an_agent_exits_2_with_the_reason(tmp_path, cli):
    missing = tmp_path / "nobody.sock"
    outcome = cli("health", "--socket", missing)
    assert outcome.code == 2
    assert outcome.out.startswith("unreachable") and str(missing) in outcome.out
    report = cli("health", "--socket", missing, "--json")
    assert report.code == 2 and report.json()["health"] == "unreachable"


def test_other_verbs_without_an_agent_exit_2_on_one_line(tmp_path, cli):
    for verb in ("members", "status", "info", "metrics"):
        outcome = cli(verb, "--socket", tmp_path / "nobody.sock")
        assert outcome.code == 2
        assert outcome.out == "" and len(outcome.err.splitlines()) == 1
        assert "no agent answers" in outcome.err


def test_metrics_are_prometheus_text_with_prefix_and_units(cluster, cli):
    outcome = cli("metrics", "--config", cluster.a.config)
    assert outcome.code == 0, outcome.err
    text = outcome.out
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            families[name] = kind
    assert families, text
    # The process collector's standard names (as every Prometheus client library has them).
    standard = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"}
    assert standard <= set(families)
    for name, kind in families.items():
        assert name.startswith("gossipnode_") or name in standard
        assert kind in {"counter", "gauge", "summary", "histogram"}
        assert (kind == "counter") == name.endswith("_total"), name
    samples = parse_metrics(text)
    for sample in samples:
        assert any(sample["name"] == f or sample["name"].startswith(f + "_") for f in families)
    members = {s["labels"]["state"]: s["value"] for s in samples
               if s["name"] == "gossipnode_members"}
    assert members["alive"] == 2
    assert any(s["name"] == "gossipnode_gossip_messages_sent_total" and s["value"] > 0
               for s in samples)
    for direction in ("sent", "received"):
        assert any(s["name"] == f"gossipnode_gossip_bytes_{direction}_total"
                   and s["value"] > 0 for s in samples)
    records = {s["labels"]["dataset"] for s in samples if s["name"] == "gossipnode_records"}
    assert "consumers" in records
    # Counters move between the two calls (gossip goes on): compare the series, not values.
    as_json = cli("metrics", "--config", cluster.a.config, "--json").json()

    def series(rows):
        return sorted((r["name"], tuple(sorted(r["labels"].items()))) for r in rows)

    # Series only ever appear (a new message type, a first failed sync), never vanish.
    assert set(series(samples)) <= set(series(as_json))
    assert all(isinstance(r["value"], float) for r in as_json)


def test_monitor_streams_log_lines(cluster):
    command = [sys.executable, "-m", "gossipnode", "monitor", "--socket", str(cluster.a.socket),
               "--json", "--lines", "1"]
    monitor = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while monitor.poll() is None and time.monotonic() < deadline:
            # A connection that sends no handshake is dropped, and the agent logs it.
            with socket.create_connection(("127.0.0.1", cluster.a.port), timeout=5) as peer:
                peer.sendall(b"this is not a handshake" * 10)
            time.sleep(0.2)
        out, err = monitor.communicate(timeout=20)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait(timeout=10)
    assert monitor.returncode == 0, err
    (line,) = out.decode().splitlines()
    assert "gossipnode" in __import__("json").loads(line)["log"]


def test_every_verb_has_help_with_an_example(capsys):
    _load_verbs()
    names = [name for name, *_ in _VERBS]
    for expected in ("members", "status", "info", "health", "put", "get", "delete", "list",
                     "keys", "policy", "tags", "repair", "reseed", "owners", "metrics",
                     "monitor"):
        assert expected in names
    parser = build_parser()
    top = parser.format_help()
    assert "examples:" in top and "GOSSIPNODE_SOCKET" in top
    for name in names:
        assert name in top
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        assert "example: gossipnode " + name.split()[0] in capsys.readouterr().out
    for nested in (["keys", "import"], ["policy", "show"], ["policy", "wep"],
                   ["policy", "private-keys"], ["tags", "set"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*nested, "--help"])
        assert f"example: gossipnode {' '.join(nested)}" in capsys.readouterr().out


def test_every_member_state_has_one_distinct_status_code():
    from gossipnode.commands.status_verbs import STATE_CODES
    from gossipnode.core.membership.members import STATES

    assert set(STATE_CODES) == set(STATES)
    assert len(set(STATE_CODES.values())) == len(STATES)
