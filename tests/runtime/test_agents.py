"""Real agent processes on 127.0.0.1 (slow: each test starts a small cluster)."""

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster

from gossipnode.client import AgentUnreachable, ClientError

pytestmark = pytest.mark.slow

FAST = """
[replication]
anti_entropy_interval_s = 1.0
"""


def keys(cluster, node, dataset):
    return {r["key"] for r in cluster.request(node, "list", dataset=dataset, limit=100000)}


def test_three_agents_converge_and_a_restarted_node_catches_up(tmp_path):
    with LocalCluster(tmp_path, 3, extra_toml=FAST) as cluster:
        cluster.start_all()
        cluster.wait_members()
        for node in range(3):
            cluster.request(node, "put", dataset="groups", key=f"g{node}", value={"n": node})
        cluster.wait_converged(timeout_s=30)
        assert all(keys(cluster, n, "groups") == {"g0", "g1", "g2"} for n in range(3))

        assert cluster.stop(2) == 0  # graceful: leaves the cluster and exits 0
        cluster.request(0, "put", dataset="groups", key="while-away", value={})
        cluster.request(1, "delete", dataset="groups", key="g0")
        cluster.start(2)
        cluster.wait_converged(timeout_s=30)
        assert keys(cluster, 2, "groups") == {"g1", "g2", "while-away"}


@pytest.mark.parametrize("durability", ["fsync", "periodic"])
def test_kill_9_during_a_burst_loses_no_acknowledged_write(tmp_path, durability):
    storage = f'\n[storage]\ndurability = "{durability}"\n'
    with LocalCluster(tmp_path, 2, extra_toml=FAST + storage) as cluster:
        cluster.start_all()
        cluster.wait_members()
        acknowledged = []
        stop = threading.Event()

        def burst():
            with cluster.client(0) as client:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    try:
                        client.request("put", dataset="consumers", key=f"user{i:05d}",
                                       value={"i": i, "pad": "x" * 1000})
                    except (AgentUnreachable, ClientError, OSError):
                        return
                    acknowledged.append(f"user{i:05d}")

        writer = threading.Thread(target=burst)
        writer.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 1500 and time.monotonic() < deadline and writer.is_alive():
            time.sleep(0.01)
        cluster.kill(0)  # SIGKILL in the middle of the burst
        stop.set()
        writer.join(timeout=60)
        assert len(acknowledged) >= 1500
        cluster.start(0)
        stored = keys(cluster, 0, "consumers")
        assert set(acknowledged) <= stored
        cluster.wait_converged(timeout_s=60)
        assert set(acknowledged) <= keys(cluster, 1, "consumers")


def test_node_away_past_the_tombstone_horizon_is_quarantined_until_reseed(tmp_path):
    horizon = FAST + "tombstone_grace_s = 4.0\n"
    with LocalCluster(tmp_path, 3, extra_toml=horizon) as cluster:
        cluster.start_all()
        cluster.wait_members()
        cluster.request(0, "put", dataset="groups", key="doomed", value={})
        cluster.request(0, "put", dataset="groups", key="kept", value={})
        cluster.wait_converged(timeout_s=30)
        cluster.stop(2)
        cluster.request(0, "delete", dataset="groups", key="doomed")
        time.sleep(6)  # past the horizon: the tombstone is collected on 0 and 1
        cluster.start(2)
        status = cluster.request(2, "status")
        assert status["node"]["quarantined"] is True
        assert "reseed" in status["node"]["quarantine_reason"]
        health = cluster.request(2, "health")
        assert health["health"] == "degraded"
        time.sleep(3)  # several anti-entropy intervals: nothing may flow either way
        assert "doomed" not in keys(cluster, 0, "groups")
        assert "doomed" in keys(cluster, 2, "groups")
        with pytest.raises(ClientError, match="quarantined"):
            cluster.request(2, "put", dataset="groups", key="new", value={})
        cluster.request(2, "reseed")
        cluster.wait_converged(timeout_s=30)
        assert keys(cluster, 2, "groups") == {"kept"}
        assert cluster.request(2, "status")["node"]["quarantined"] is False
