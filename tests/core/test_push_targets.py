"""Eager pushes to `all`-scope datasets: the holders are worked out once per scope view, not
at every write (core/scopes.py `push_targets`), and each write goes to `push_fanout` of them
drawn uniformly, never back to where it came from (core/replication.py)."""

from __future__ import annotations

import random
from collections import Counter

from gossipnode.core.replication import _draw
from gossipnode.core.scopes import ScopeView

from .node_harness import Cluster


def test_writes_between_two_membership_changes_work_out_the_holders_once(monkeypatch):
    cluster = Cluster([{"private_keys": True}] * 8)
    cluster.run_for(10)
    asked = []
    original = ScopeView.peers
    monkeypatch.setattr(ScopeView, "peers", lambda view: asked.append(view) or original(view))
    for n in range(20):
        cluster.put(0, "groups", f"g{n}", {"members": ["ann"]})
    assert len(asked) <= 2  # once for the view (the harness's writes move no member)
    cluster.run_for(5)
    for index in range(8):
        assert len(cluster.records(index, "groups")) == 20


def test_a_draw_is_uniform_over_the_holders_and_never_the_excluded_one():
    holders = tuple(bytes([n]) * 32 for n in range(10))
    rng = random.Random(3)
    counts: Counter[bytes] = Counter()
    for _ in range(5000):
        drawn = _draw(rng, holders, holders[4], 3, 1)
        assert len(drawn) == len(set(drawn)) == 3
        counts.update(drawn)
    assert holders[4] not in counts and len(counts) == 9
    assert all(abs(count - 5000 * 3 / 9) < 0.15 * 5000 * 3 / 9 for count in counts.values())
    assert sorted(_draw(rng, holders[:2], None, 3, 0)) == sorted(holders[:2])  # fewer: all
    assert _draw(rng, holders[:1], holders[0], 3, 1) == []
