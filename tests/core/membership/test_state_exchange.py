"""The push-pull exchange by difference (core/membership/exchange.py): members that agree
swap a summary, not their signed statements; members that differ swap what differs."""

from __future__ import annotations

import random

import pytest

from gossipnode.core.errors import RemoteProtocolError
from gossipnode.core.membership import SUSPECT, PushPull, Suspect, Updates
from gossipnode.core.membership.exchange import answer, opening, wanted_state
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.core.membership.membership_helpers import converged, node_id, start_cluster

MEMBERS = 20
# serf's state exchange: about 100 bytes per member each way.
SERF_BYTES_PER_MEMBER = 100


def size(message: object) -> int:
    return len(PEER_MESSAGES.encode(message))


def test_members_that_agree_swap_a_summary_and_no_statement_but_the_openers():
    cluster, cores = start_cluster(MEMBERS, seed=3)
    converged(cluster, cores, within_s=30.0)
    a, b = cores[1], cores[2]
    first = opening(a._table, random.Random(1))
    assert [alive.node_id for alive in first.state.alive] == [node_id(a)]
    assert len(first.state) == 1 and len(first.have) == MEMBERS * 8
    reply = answer(b._table, first)
    assert len(reply.state) == 0 and reply.wanted == b""
    assert wanted_state(a._table, reply) is None
    exchanged = size(first) + size(reply)
    full = size(PushPull(True, a._table.full_state()))
    full += size(PushPull(False, b._table.full_state()))
    assert exchanged < full / 8
    assert exchanged < MEMBERS * SERF_BYTES_PER_MEMBER / 2


def test_members_that_differ_swap_only_the_statements_that_differ():
    cluster, cores = start_cluster(5, seed=4)
    converged(cluster, cores, within_s=20.0)
    a, b, c = cores[1], cores[2], cores[3]
    # b suspects c (it missed a probe); a does not know yet.
    claim = Suspect(node_id(c), c.local_member.incarnation, node_id(cores[4]))
    b.receive(node_id(cores[4]), PushPull(False, Updates(suspect=(claim,))), cluster.now)
    assert b.member(node_id(c)).state == SUSPECT
    first = opening(a._table, random.Random(2))
    reply = answer(b._table, first)
    assert [s.node_id for s in reply.state.suspect] == [node_id(c)]
    assert [alive.node_id for alive in reply.state.alive] == [node_id(c)]
    # b asks for a's differing belief about c, and nothing else.
    rest = wanted_state(a._table, reply)
    assert rest is not None and [alive.node_id for alive in rest.state.alive] == [node_id(c)]
    a.receive(node_id(b), reply, cluster.now)
    assert a.member(node_id(c)).state == SUSPECT


def test_a_push_pull_without_a_summary_is_answered_with_the_full_state():
    cluster, cores = start_cluster(5, seed=5)
    converged(cluster, cores, within_s=20.0)
    a, b = cores[1], cores[2]
    introduction = PushPull(True, Updates(alive=(a._table.local.alive,)))
    reply = answer(b._table, introduction)
    assert len(reply.state.alive) == 5 and reply.salt == b""


def test_a_malformed_summary_is_refused_before_anything_is_applied():
    cluster, cores = start_cluster(3, seed=6)
    converged(cluster, cores, within_s=20.0)
    a, b = cores[1], cores[2]
    good = opening(a._table, random.Random(3))
    too_many = b"\x00" * 8 * (cluster.config.members_max + 1)
    for bad in (
        PushPull(True, good.state, salt=b"short", have=good.have),
        PushPull(True, good.state, salt=good.salt, have=good.have + b"\x01"),
        PushPull(True, good.state, salt=good.salt, have=too_many),
        PushPull(True, good.state, salt=b"", have=good.have),
    ):
        with pytest.raises(RemoteProtocolError):
            b.receive(node_id(a), bad, cluster.now)
    b.receive(node_id(a), good, cluster.now)  # the well-formed one is taken


def test_admission_decides_who_is_a_member_and_a_change_sets_members_aside():
    """Under an admission predicate, a node id it refuses never enters the table, whatever
    it sends; members refused after a change leave the table for the bounded pending set,
    and come back at once when admitted again."""
    from gossipnode.config import MembershipConfig
    from tests.core.membership.virtual_cluster import VirtualCluster

    cluster = VirtualCluster(MembershipConfig(), seed=7)
    refused: set[bytes] = set()
    cores = [cluster.add(f"node-{i}", admitted=lambda n: n not in refused) for i in range(3)]
    outsider = cores[2]
    refused.add(node_id(outsider))
    for core in cores[1:]:
        cluster.join(core, [cores[0].local_member.address])
    cluster.run_until(cluster.now + 20.0)
    for core in cores[:2]:
        assert core.member(node_id(outsider)) is None
        assert node_id(outsider) in [p[0] for p in core.pending_members()]
    assert cores[1].member(node_id(cores[0])).state == "alive"

    refused.clear()
    for core in cores[:2]:
        core.admission_changed(cluster.now)
        assert core.member(node_id(outsider)).state == "alive"  # at once: it spoke to us

    refused.add(node_id(cores[1]))
    assert cores[0].admission_changed(cluster.now) == [node_id(cores[1])]
    assert cores[0].member(node_id(cores[1])) is None
    cluster.run_until(cluster.now + 10.0)
    assert cores[0].member(node_id(cores[1])) is None  # it keeps probing us: still pending
