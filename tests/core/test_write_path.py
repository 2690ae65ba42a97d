"""What one write costs the cluster (core/replication.py rule 1, core/admission.py rule 3):
a member does not forward what the record's origin already pushed to every member that must
hold it, members beyond the origin's fan-out still get it by forwarding, and a record a
member holds already, exactly, is not content-checked again."""

import dataclasses

from gossipnode.config import ReplicationConfig
from gossipnode.core.replication import Push, PushAck
from tests.core.node_harness import Cluster

ALL = {"wep": True, "private_keys": True}
# Anti-entropy far away: within a test's few seconds only pushes and forwards carry records.
NO_REPAIR = dict(anti_entropy_interval_s=600.0)


def pushed_records(cluster, mark=0):
    """(from, to, key) of every record carried by a push since `mark`."""
    return [(a, b, r.key) for a, b, m in cluster.sent[mark:] if isinstance(m, Push)
            for r in m.records]


def test_in_a_cluster_the_origin_covers_each_member_gets_each_write_once():
    cluster = Cluster([ALL] * 3, replication=ReplicationConfig(push_fanout=3, **NO_REPAIR))
    cluster.run_for(5)
    mark = len(cluster.sent)
    for i in range(10):
        cluster.put(0, "groups", f"g{i}", {"i": i})
    cluster.run_for(2)
    carried = pushed_records(cluster, mark)
    assert sorted(carried) == sorted((0, peer, f"g{i}") for peer in (1, 2) for i in range(10))
    for node in range(3):
        assert set(cluster.records(node, "groups")) == {f"g{i}" for i in range(10)}


def test_members_beyond_the_origins_fanout_get_the_write_by_forwarding():
    cluster = Cluster([ALL] * 6, replication=ReplicationConfig(push_fanout=2, **NO_REPAIR))
    cluster.run_for(10)
    mark = len(cluster.sent)
    cluster.put(0, "groups", "g", {})
    cluster.run_for(2)
    pushes = pushed_records(cluster, mark)
    direct = {b for a, b, _ in pushes if a == 0}
    assert len(direct) == 2  # the origin reached two of five peers...
    reached = {node for node in range(1, 6) if "g" in cluster.records(node, "groups")}
    forwarded_to = {b for a, b, _ in pushes if a != 0} - direct - {0}
    # ... and members it did not push to got the write from those it did (an epidemic with a
    # fan-out of two: whether it reaches all five without anti-entropy depends on the draws).
    assert forwarded_to and forwarded_to <= reached
    assert len(reached) >= 4


def test_a_record_held_exactly_is_not_checked_again_but_a_different_value_is():
    checked = []

    def content_check(record):
        checked.append(record.key)
        return "forged" if record.value == b"\xa1aa\x01" else None

    cluster = Cluster([ALL] * 2, replication=ReplicationConfig(**NO_REPAIR),
                      content_check=content_check)
    cluster.run_for(5)
    cluster.put(0, "groups", "g", {"b": 2})
    cluster.run_for(1)
    assert "g" in cluster.records(1, "groups")
    (push,) = [m for a, b, m in cluster.sent if (a, b) == (0, 1) and isinstance(m, Push)]
    origin = cluster.nodes[0].node_id
    checked.clear()
    receiver = cluster.nodes[1]

    receiver.receive(origin, push, cluster.now)  # the same push again: held exactly
    (ack,) = [e.message for e in receiver.events() if isinstance(getattr(e, "message", None),
                                                                  PushAck)]
    assert checked == [] and ack.refused == ()

    same_version = dataclasses.replace(push.records[0], value=b"\xa1aa\x01")
    receiver.receive(origin, Push(push.push_id + 1000, (same_version,)), cluster.now)
    (ack,) = [e.message for e in receiver.events() if isinstance(getattr(e, "message", None),
                                                                  PushAck)]
    assert checked == ["g"] and ack.refused == (0,)
