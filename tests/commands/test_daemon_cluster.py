"""A daemon operators can trust, running: secret rotation by SIGHUP, health for paging,
signals that never end the agent without leaving, membership verbs, the audit log and
/metrics over HTTP (real agent processes; one small cluster, many checks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import CONFIG_TAIL, free_port, stop_all, wait_for

pytestmark = pytest.mark.slow

# Quick failure detection, still patient enough for a loaded test machine.
FAST_MEMBERSHIP = CONFIG_TAIL.replace("probe_interval_s = 2.0\nprobe_timeout_s = 1.5",
                                      "probe_interval_s = 1.0\nprobe_timeout_s = 0.8")
# Dead-member detection and leaves take a few probe rounds; bounded well above them.
MEMBERSHIP_WAIT_S = 60.0
CURL_TIMEOUT_S = 20


def health(cli, agent) -> tuple[int, list[str]]:
    outcome = cli("health", "--config", agent.config, "--json")
    return outcome.code, outcome.json()["reasons"]


def states(agent) -> dict[str, str]:
    return {m["name"]: m["state"] for m in agent.request("members")}


def curl(url: str, *options: str) -> tuple[int, str]:
    done = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *options, url],
                          capture_output=True, text=True, timeout=CURL_TIMEOUT_S, check=True)
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def test_rotation_health_signals_membership_verbs_audit_and_metrics(tmp_path, new_agent, cli):
    metrics_port = free_port()
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    a = new_agent(tmp_path / "one", "a", config_tail=FAST_MEMBERSHIP)
    # metrics_listen is a top-level key: it goes before the first [section].
    a.config.write_text(f'metrics_listen = "127.0.0.1:{metrics_port}"\n'
                        + a.config.read_text())
    # b (and later c) hold a new cluster secret: a refuses them until a's list is rotated.
    b = new_agent(tmp_path / "two", "b", join=a, config_tail=FAST_MEMBERSHIP)
    c = new_agent(tmp_path / "two", "c", config_tail=FAST_MEMBERSHIP)
    agents = [a, b, c]
    try:
        a.start()
        b.start()
        # b knows its seed but nobody answers; a sees wrong-secret connections keep coming.
        wait_for(lambda: health(cli, b)[0] == 1 and any(
            r.startswith("knows no other member although it has seeds")
            for r in health(cli, b)[1]), "b to report that it joined nobody")
        wait_for(lambda: any("connections refused for wrong secret" in r
                             for r in health(cli, a)[1]), "a to report refused connections")
        drops = cli("status", "--config", a.config, "--json").json()
        assert drops["connection_drop_counts"]["wrong_secret"] >= 2
        assert all(d["age_s"] >= 0 and d["at"] > 0 for d in drops["connection_drops"])

        # Rotation without a restart: a now accepts b's secret too (connects with its own).
        old_secret = tmp_path / "one" / "cluster.secret"
        new_secret = tmp_path / "two" / "cluster.secret"
        listed = f'secret_files = ["{old_secret}"]'
        assert listed in a.config.read_text()
        # Newest first: a connects with the new secret and still accepts the old one.
        a.config.write_text(a.config.read_text().replace(
            listed, f'secret_files = ["{new_secret}", "{old_secret}"]'))
        os.kill(a.process.pid, signal.SIGHUP)
        wait_for(lambda: states(a) == {"a": "alive", "b": "alive"}
                 and states(b) == {"a": "alive", "b": "alive"}, "b to join after the reload",
                 timeout_s=MEMBERSHIP_WAIT_S)
        assert "reloaded: cluster secrets" in a.log.read_text()
        # b's own refused attempts age out of the health window (30 s) once they stop.
        wait_for(lambda: health(cli, a) == (0, []) and health(cli, b) == (0, []),
                 "both healthy once the secret is shared", timeout_s=MEMBERSHIP_WAIT_S)

        # A broken file keeps the running config; signals that would kill a plain process
        # are logged and ignored.
        good = a.config.read_text()
        a.config.write_text(good + "\nthis is not toml [[\n")
        os.kill(a.process.pid, signal.SIGHUP)
        os.kill(a.process.pid, signal.SIGUSR2)
        wait_for(lambda: "received SIGUSR2: ignored" in a.log.read_text(), "SIGUSR2 logged")
        assert "reload failed, keeping the running configuration" in a.log.read_text()
        a.config.write_text(good)
        assert a.request("ping")["name"] == "a" and states(b)["a"] == "alive"

        # Reserved tags are the agent's own.
        reserved = cli("tags", "set", "version=9", "--config", a.config)
        assert reserved.code == 2 and "set by the agent itself" in reserved.err

        # /metrics over HTTP, checked with Prometheus' own parser.
        code, body = curl(f"http://127.0.0.1:{metrics_port}/metrics")
        assert code == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(body)
                   for s in family.samples}
        assert samples[("gossipnode_peer_pending_push_records", (("peer", "b"),))] >= 0
        assert samples[("process_resident_memory_bytes", ())] > 10 * 1024 * 1024
        assert samples[("process_open_fds", ())] > 3
        assert samples[("process_cpu_seconds_total", ())] > 0
        assert samples[("gossipnode_connection_drops_total", (("kind", "wrong_secret"),))] >= 2
        assert curl(f"http://127.0.0.1:{metrics_port}/nothing")[0] == 404
        assert curl(f"http://127.0.0.1:{metrics_port}/metrics", "-X", "POST")[0] == 405

        # Runtime membership verbs: c joins by address, then leaves (and exits).
        c.start()
        joined = cli("join", a.address, "--config", c.config, "--json")
        assert joined.code == 0, joined.err
        assert joined.json()["joined"] == "a"
        wait_for(lambda: states(b).get("c") == "alive", "b to learn of c",
                 timeout_s=MEMBERSHIP_WAIT_S)
        left = cli("leave", "--config", c.config)
        assert left.code == 0 and left.out.startswith("c left the cluster and stopped"), left
        assert c.process.wait(timeout=MEMBERSHIP_WAIT_S) == 0
        wait_for(lambda: states(a).get("c") == "left", "a to see c left")
        audit = [line for line in c.log.read_text().splitlines() if "audit:" in line]
        assert any(" join " in line and "(uid " in line and '"address": ' in line
                   for line in audit), audit

        # b dies without a word: a pages about it until an operator forces it out.
        b.process.kill()
        b.process.wait(timeout=10)
        wait_for(lambda: states(a).get("b") == "dead", "a to find b dead",
                 timeout_s=MEMBERSHIP_WAIT_S)
        code, reasons = health(cli, a)
        assert code == 1 and any(r.startswith("member b (") and "is dead" in r
                                 for r in reasons), reasons
        alive_refused = cli("force-leave", "a", "--config", a.config)
        assert alive_refused.code == 2 and "local node" in alive_refused.err
        forced = cli("force-leave", "b", "--config", a.config, "--json")
        assert forced.code == 0 and forced.json()["removed"] == "b", forced.err
        assert "b" not in states(a)
        assert health(cli, a) == (0, [])
        audit = [line.split("gossipnode.audit: ", 1)[1] for line in a.log.read_text().splitlines()
                 if "audit:" in line and "force_leave" in line]
        user = f"root (uid 0, pid {os.getpid()})" if os.getuid() == 0 else "(uid "
        assert len(audit) == 2 and all(user in line for line in audit), audit
        assert audit[0].endswith("refused: this is the local node: use `gossipnode leave`")
        assert json.loads(audit[1].split(": ok ", 1)[1]) == {
            "id": forced.json()["id"], "removed": "b", "replicated": False}  # open: local

        # SIGTERM: a leaves gracefully and exits 0.
        a.terminate()
        assert a.process.wait(timeout=MEMBERSHIP_WAIT_S) == 0
        assert "leaving the cluster" in a.log.read_text()
    finally:
        stop_all(agents)
