"""A holders basis that follows another takes its lists from the previous one's, changed
members only (core/live_holders.py): the answers must be those of a pass over every member,
whatever changed in between, and no chain of bases may grow."""

from __future__ import annotations

import random

from gossipnode.core.placement import ClusterPolicy
from gossipnode.core.scopes import MemberView, ScopeView

SELF = b"\x00" * 32
KEYS = {"private_keys": "true"}
NO_KEYS = {"private_keys": "false"}


def _id(n: int) -> bytes:
    return bytes([n]) * 32


def _view(states: dict[int, tuple[str, dict[str, str]]], version: int,
          policy: ClusterPolicy) -> ScopeView:
    members = {SELF: MemberView(SELF, "self", "alive", KEYS)}
    members.update({_id(n): MemberView(_id(n), f"n{n}", state, tags)
                    for n, (state, tags) in states.items()})
    return ScopeView(SELF, members, policy, holders_version=version)


def _model(states: dict[int, tuple[str, dict[str, str]]], policy: ClusterPolicy
           ) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(peers, holders of `groups`, holders of `private_keys`), worked out by hand: live
    means alive or suspect; private keys need the tag and no denial."""
    live = sorted(_id(n) for n, (state, _) in states.items() if state in ("alive", "suspect"))
    keys = [n for n in live if states[n[0]][1].get("private_keys") == "true"
            and n not in policy.private_keys_denied]
    return live, live, keys


def _answers(view: ScopeView) -> tuple[list[bytes], list[bytes], list[bytes]]:
    return (view.peers(), list(view.push_targets("groups", "g")),
            list(view.push_targets("private_keys", "k")))


def test_a_followed_basis_answers_as_a_full_pass_after_every_kind_of_change():
    policy = ClusterPolicy()
    states = {n: ("alive", KEYS if n % 3 else NO_KEYS) for n in range(1, 60)}
    previous = _view(states, 0, policy)
    assert _answers(previous) == _model(states, policy)
    changes = {
        5: ("suspect", states[5][1]),  # still live
        7: ("dead", states[7][1]),  # gone
        8: ("left", states[8][1]),
        9: ("alive", NO_KEYS),  # tags: no longer holds private keys
        3: ("alive", KEYS),  # tags: now holds them
        70: ("alive", KEYS),  # new
        71: ("dead", KEYS),  # new and dead
    }
    states.update(changes)
    current = _view(states, 1, policy)
    current.follow_holders(previous, {_id(n) for n in changes})
    assert _answers(current) == _model(states, policy)
    # The previous view hands its lists on and keeps none: no chain of bases.
    assert previous._live.carried_peers is None and previous._live.carried == {}


def test_a_basis_nobody_asked_passes_its_lists_and_changes_on_to_the_next():
    policy = ClusterPolicy()
    states = {n: ("alive", KEYS) for n in range(1, 40)}
    first = _view(states, 0, policy)
    _answers(first)
    states[4] = ("dead", KEYS)
    second = _view(states, 1, policy)
    second.follow_holders(first, {_id(4)})  # never asked
    states[4] = ("alive", KEYS)
    states[6] = ("dead", KEYS)
    third = _view(states, 2, policy)
    third.follow_holders(second, {_id(4), _id(6)})
    assert third._live.carried["groups"][0] is first._live.by_dataset["groups"]
    assert third._live.carried["groups"][1] == {_id(4), _id(6)}
    assert _answers(third) == _model(states, policy)


def test_random_changes_over_many_bases_always_answer_as_a_full_pass():
    rng = random.Random(7)
    policy = ClusterPolicy(private_keys_denied=frozenset({_id(11)}))
    states = {n: ("alive", KEYS if rng.random() < 0.7 else NO_KEYS) for n in range(1, 120)}
    view = _view(states, 0, policy)
    for version in range(1, 200):
        changed = set()
        for _ in range(rng.choice((1, 1, 2, 5, 40))):  # now and then too many to derive
            n = rng.randrange(1, 130)
            states[n] = (rng.choice(("alive", "suspect", "dead", "left")),
                         KEYS if rng.random() < 0.7 else NO_KEYS)
            changed.add(_id(n))
        following = _view(states, version, policy)
        following.follow_holders(view, changed)
        if rng.random() < 0.8:  # some bases are never asked
            assert _answers(following) == _model(states, policy)
        view = following
