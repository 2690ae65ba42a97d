"""Member snapshots (core/member_map.py) and the scope views built on them (core/scopes.py):
a snapshot never changes afterwards, and taking one after a change costs a bucket, not a
copy of every member. The oracle is a plain dict copied at every snapshot."""

from __future__ import annotations

import random

from gossipnode.config import MembershipConfig
from gossipnode.core.events import MemberChanged
from gossipnode.core.member_map import BUCKETS, MemberMapBuilder
from gossipnode.core.member_views import MemberViews
from gossipnode.core.membership import ALIVE, DEAD, LEFT, SUSPECT, Membership
from gossipnode.core.placement import ClusterPolicy


def test_snapshots_equal_a_plain_copy_taken_at_the_same_moment_whatever_follows():
    rng = random.Random(5)
    builder: MemberMapBuilder[int] = MemberMapBuilder()
    model: dict[bytes, int] = {}
    taken: list[tuple[object, dict[bytes, int]]] = []
    keys = [rng.randbytes(rng.choice((1, 8, 32))) for _ in range(300)] + [b""]
    for step in range(3000):
        key = rng.choice(keys)
        builder.set(key, step)
        model[key] = step
        if rng.random() < 0.1:
            taken.append((builder.snapshot(), dict(model)))
    for snapshot, expected in taken:
        assert dict(snapshot.items()) == expected
        assert len(snapshot) == len(expected)
        assert sorted(snapshot) == sorted(expected)
        assert sorted(snapshot.values()) == sorted(expected.values())
        for key in keys:
            assert (key in snapshot) == (key in expected)
            assert snapshot.get(key) == expected.get(key)
        assert b"missing-key" not in snapshot and snapshot.get(b"missing-key") is None


def test_iteration_order_depends_only_on_the_keys_and_the_changes():
    rng = random.Random(6)
    changes = [(rng.randbytes(32), n) for n in range(500)]
    first, second = MemberMapBuilder(), MemberMapBuilder()
    for key, value in changes:
        first.set(key, value)
        second.set(key, value)
    assert list(first.snapshot().items()) == list(second.snapshot().items())


def _membership(node_id: bytes) -> Membership:
    return Membership(MembershipConfig(), node_id=node_id, name="self",
                      address=("10.0.0.1", 7946), tags={}, incarnation=1,
                      rng=random.Random(1), now=0.0, sign=lambda data: b"s" * 64,
                      verify=lambda *args: True)


def _change(node_id: bytes, state: str) -> MemberChanged:
    return MemberChanged(node_id, f"m{node_id.hex()[:6]}", ("10.0.0.2", 7946), state, 1)


def test_a_view_after_one_member_change_shares_every_other_bucket_with_the_last_view():
    # A view per membership change used to copy every member: O(n) per change, O(n**2)
    # per node while n members join, are declared dead, and come back.
    rng = random.Random(7)
    views = MemberViews(_membership(rng.randbytes(32)), ClusterPolicy())
    members = [rng.randbytes(32) for _ in range(1000)]
    views.changed(_change(member, ALIVE) for member in members)
    before = views.view()
    views.changed([_change(members[17], DEAD)])
    after = views.view()
    assert after.members.shared_buckets(before.members) == BUCKETS - 1
    assert before.members[members[17]].state == ALIVE  # the old view is unchanged
    assert after.members[members[17]].state == DEAD
    assert len(after.members) == len(before.members) == 1001
    assert after.live(members[16]) and not after.live(members[17])
    # A view with no change in between shares everything.
    assert views.view().members.shared_buckets(after.members) == BUCKETS


def test_live_peers_and_holders_follow_every_change_of_liveness_and_tags():
    # The live peers and each dataset's holders are shared by the views between two
    # changes that can move them (a new member, a change of liveness or of tags), not
    # worked out again at every view. The oracle: a plain dict of each member's state and
    # tags, read afresh after every change.
    rng = random.Random(11)
    self_id = rng.randbytes(32)
    views = MemberViews(_membership(self_id), ClusterPolicy())
    members = [rng.randbytes(32) for _ in range(12)]
    model: dict[bytes, tuple[str, tuple[tuple[str, str], ...]]] = {}
    for _ in range(300):
        member = rng.choice(members)
        state = rng.choice((ALIVE, SUSPECT, DEAD, LEFT))
        tags = (("private_keys", rng.choice(("true", "false"))),)
        views.changed([MemberChanged(member, "m" + member.hex()[:6], ("10.0.0.2", 7946),
                                     state, 1, tags)])
        model[member] = (state, tags)
        view = views.view()
        live = sorted(m for m, (s, _) in model.items() if s in (ALIVE, SUSPECT))
        eligible = [m for m in live if dict(model[m][1])["private_keys"] == "true"]
        assert view.peers() == live
        assert list(view.push_targets("private_keys", "k")) == eligible
        assert list(view.push_targets("consumers", "k")) == live
