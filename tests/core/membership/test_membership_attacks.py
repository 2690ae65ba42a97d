"""An insider's attacks on the membership core (one identity that holds the cluster secret,
or as many fresh identities as it likes), each ending with every honest member alive in
every view."""

from __future__ import annotations

import random

import pytest

from gossipnode.config import MembershipConfig
from gossipnode.core.errors import LocalProtocolError, RemoteProtocolError
from gossipnode.core.events import Send
from gossipnode.core.membership import (
    ALIVE,
    Ack,
    Alive,
    Dead,
    Gossip,
    Ping,
    PingRequest,
    PushPull,
    Suspect,
    Updates,
    alive_signed_bytes,
)
from tests.core.membership.membership_helpers import all_alive, converged, node_id, start_cluster
from tests.core.membership.virtual_cluster import VirtualCluster

INCARNATION_MAX = 2**64 - 1


def forged_member(cluster: VirtualCluster, rng: random.Random, name: str, port: int) -> Alive:
    """A self-signed alive statement of a fresh identity (anyone with the secret can)."""
    subject, sign = cluster.signing.new_identity(rng)
    signed = alive_signed_bytes(subject, name, "10.9.0.1", port, 1, ())
    return Alive(subject, name, "10.9.0.1", port, 1, (), sign(signed))


def honest_view_intact(cores) -> None:
    expected = {node_id(core): ALIVE for core in cores}
    for core in cores:
        assert core.states() == expected, core.local_member.name


# ---- claims bounded by what the subject signed -------------------------------------------------


@pytest.mark.parametrize("claim", [Dead, Suspect])
def test_a_claim_above_any_signed_incarnation_evicts_nobody(claim):
    cluster, cores = start_cluster(5, seed=3)
    converged(cluster, cores, within_s=20.0)
    attacker = cores[4]
    victims = cores[:4]
    for victim in victims:  # one message per member, about every other member
        statements = tuple(
            claim(node_id(subject), INCARNATION_MAX, node_id(attacker))
            for subject in victims
            if subject is not victim
        )
        field = "dead" if claim is Dead else "suspect"
        cluster.deliver(victim, node_id(attacker), Gossip(Updates(**{field: statements})))
    assert all(core.statistics()["claims_over_signed"] >= 3 for core in victims)
    cluster.run_until(cluster.now + 30.0)
    honest_view_intact(cores)


def test_a_dead_claim_about_a_member_sent_to_that_member_does_not_crash_it():
    cluster, cores = start_cluster(3, seed=4)
    converged(cluster, cores, within_s=20.0)
    victim, attacker = cores[0], cores[1]
    before = victim.local_member.incarnation
    for incarnation in (INCARNATION_MAX, before + 1):
        message = Gossip(Updates(dead=(Dead(node_id(victim), incarnation, node_id(attacker)),)))
        cluster.deliver(victim, node_id(attacker), message)  # raised struct.error before
    assert victim.local_member.incarnation == before  # nothing we signed was claimed
    honest_view_intact(cores)
    # A claim at the incarnation we did sign is refuted, with a higher one.
    message = Gossip(Updates(dead=(Dead(node_id(victim), before, node_id(attacker)),)))
    cluster.deliver(victim, node_id(attacker), message)
    assert victim.local_member.incarnation == before + 1
    cluster.run_until(cluster.now + 10.0)
    honest_view_intact(cores)


def test_a_member_wrongly_declared_dead_refutes_within_seconds():
    """Dead members are gossiped to for a while, so the one wrongly declared dead hears it
    and refutes long before the next push-pull (30 s)."""
    cluster, cores = start_cluster(6, seed=5)
    converged(cluster, cores, within_s=20.0)
    victim = cores[2]
    cluster.groups[node_id(victim)] = 1  # cut off until the others declare it dead
    assert cluster.run_until_true(
        lambda: all(c.states()[node_id(victim)] == "dead" for c in cores if c is not victim),
        cluster.now + 60.0,
    )
    cluster.groups.clear()
    healed_at = cluster.now
    assert cluster.run_until_true(all_alive(cores), healed_at + 60.0)
    assert cluster.now - healed_at < 10.0, cluster.now - healed_at


# ---- member tables bounded per source --------------------------------------------------------


def test_a_push_pull_of_forged_members_costs_only_the_pending_set():
    config = MembershipConfig(pending_members_max=64, pending_expiry_s=20.0)
    cluster, cores = start_cluster(4, seed=6, config=config)
    converged(cluster, cores, within_s=20.0)
    attacker_id, _ = cluster.signing.new_identity(cluster.rng)
    rng = random.Random(1)
    forged = tuple(forged_member(cluster, rng, f"fake-{i}", 20000 + i) for i in range(4093))
    for core in cores:
        cluster.deliver(core, attacker_id, PushPull(False, Updates(alive=forged)))
        assert len(core.pending_members()) <= 64
        assert len(core.members()) == 4
    checks = [core.statistics()["signature_checks"] for core in cores]
    # One message costs at most a pending set's worth of checks (plus the honest members').
    assert all(count <= 64 + 8 for count in checks), checks
    # Re-announcing the same members costs no signature checks: they are cached.
    for core in cores:
        cluster.deliver(core, attacker_id, PushPull(False, Updates(alive=forged[:64])))
    assert [core.statistics()["signature_checks"] for core in cores] == checks
    # A new, legitimate member still joins, and is seen alive by everyone.
    newcomer = cluster.add("newcomer", tags={"version": "0.1.0"})
    cluster.join(newcomer, [cores[1].local_member.address])
    converged(cluster, [*cores, newcomer], within_s=20.0)
    # The flood is forgotten: memory back at its baseline.
    cluster.run_until(cluster.now + 30.0)
    assert all(not core.pending_members() for core in cores)
    honest_view_intact([*cores, newcomer])


def test_a_flooding_source_evicts_its_own_pending_members_first():
    config = MembershipConfig(pending_members_max=16)
    cluster = VirtualCluster(config, seed=7)
    observer = cluster.add("observer")
    honest_source, _ = cluster.signing.new_identity(cluster.rng)
    attacker_id, _ = cluster.signing.new_identity(cluster.rng)
    rng = random.Random(2)
    honest = tuple(forged_member(cluster, rng, f"real-{i}", 21000 + i) for i in range(4))
    cluster.deliver(observer, honest_source, Gossip(Updates(alive=honest)))
    flood = tuple(forged_member(cluster, rng, f"fake-{i}", 22000 + i) for i in range(60))
    for start in range(0, 60, 10):
        cluster.deliver(observer, attacker_id, Gossip(Updates(alive=flood[start : start + 10])))
    pending = {entry[0] for entry in observer.pending_members()}
    assert {alive.node_id for alive in honest} <= pending
    assert len(pending) == 16


def test_a_member_not_admitted_stays_pending_and_gets_no_place_in_the_view():
    cluster = VirtualCluster(MembershipConfig(), seed=8)
    first = cluster.add("first")
    outsider_id, outsider_sign = cluster.signing.new_identity(cluster.rng)
    refused = {outsider_id}
    gated = cluster.add("gated", admitted=lambda member: member not in refused)
    cluster.join(first, [gated.local_member.address])
    converged(cluster, [first, gated], within_s=10.0)
    signed = alive_signed_bytes(outsider_id, "outsider", "10.9.0.9", 9, 1, ())
    outsider = Alive(outsider_id, "outsider", "10.9.0.9", 9, 1, (), outsider_sign(signed))
    cluster.deliver(gated, outsider_id, Gossip(Updates(alive=(outsider,))))  # speaks itself
    assert gated.member(outsider_id) is None
    assert [entry[0] for entry in gated.pending_members()] == [outsider_id]


# ---- indirect probes -----------------------------------------------------------------------


def test_ping_requests_only_reach_known_members_at_their_signed_addresses():
    cluster, cores = start_cluster(4, seed=9)
    converged(cluster, cores, within_s=20.0)
    relay, attacker = cores[0], cores[1]
    relay.events()
    known = {core.local_member.address for core in cores}
    rng = random.Random(3)
    for sequence in range(20_000):
        target = cores[2] if sequence % 2 else cores[3]
        host = f"192.0.2.{rng.randrange(1, 255)}"
        request = PingRequest(sequence, node_id(target), host, rng.randrange(1, 65535),
                              host, 9, Updates())  # fmt: skip
        relay.receive(node_id(attacker), request, cluster.now)
    sends = [event for event in relay.events() if isinstance(event, Send)]
    assert {event.to for event in sends} <= known
    config = MembershipConfig()
    assert relay.statistics()["relays_running"] <= config.relays_per_requester_max
    assert relay.statistics()["relays_refused"] >= 20_000 - config.relays_per_requester_max
    # A requester that is no member is refused outright.
    stranger, _ = cluster.signing.new_identity(cluster.rng)
    relay.receive(stranger, PingRequest(1, node_id(cores[2]), "192.0.2.1", 1, "192.0.2.1", 1,
                                        Updates()), cluster.now)  # fmt: skip
    assert not [event for event in relay.events() if isinstance(event, Send)]
    cluster.run_until(cluster.now + 5.0)
    assert relay.statistics()["relays_running"] == 0
    honest_view_intact(cores)


def test_pings_from_strangers_are_answered_at_a_bounded_rate():
    cluster, cores = start_cluster(2, seed=10)
    converged(cluster, cores, within_s=20.0)
    core = cores[0]
    core.events()
    for sequence in range(5000):
        stranger = bytes([1 + sequence % 250]) * 31 + bytes([sequence // 250])
        ping = Ping(sequence, node_id(core), f"198.51.100.{sequence % 250 + 1}", 7, Updates())
        core.receive(stranger, ping, cluster.now)
    sends = [event for event in core.events() if isinstance(event, Send)]
    burst = MembershipConfig().confirm_pings_burst
    # Each answered stranger gets an ack and one small introduction (our alive alone).
    assert sum(isinstance(event.message, Ack) for event in sends) <= burst + 1
    assert len(sends) <= 2 * (burst + 1)
    assert all(len(event.message.state) == 1 for event in sends
               if isinstance(event.message, PushPull))  # fmt: skip


# ---- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evil\nINFO member x is dead", "\x1b[2Jclear", "", "a b",
                                  "x" * 65])  # fmt: skip
def test_a_name_with_control_characters_is_refused_on_the_way_in(name):
    cluster, cores = start_cluster(2, seed=11)
    converged(cluster, cores, within_s=10.0)
    subject, sign = cluster.signing.new_identity(cluster.rng)
    signed = alive_signed_bytes(subject, name, "10.9.0.1", 1, 1, ())
    alive = Alive(subject, name, "10.9.0.1", 1, 1, (), sign(signed))
    with pytest.raises(RemoteProtocolError, match="printable"):
        cores[0].receive(subject, Gossip(Updates(alive=(alive,))), cluster.now)
    assert cores[0].member(subject) is None
    with pytest.raises(LocalProtocolError):
        cluster.add(name or "\x00")


def test_a_tag_with_control_characters_is_refused_on_the_way_in():
    cluster, cores = start_cluster(2, seed=12)
    converged(cluster, cores, within_s=10.0)
    subject, sign = cluster.signing.new_identity(cluster.rng)
    tags = (("version", "1.0\r\n\x1b[31m"),)
    signed = alive_signed_bytes(subject, "tagged", "10.9.0.1", 1, 1, tags)
    alive = Alive(subject, "tagged", "10.9.0.1", 1, 1, tags, sign(signed))
    with pytest.raises(RemoteProtocolError, match="printable"):
        cores[0].receive(subject, Gossip(Updates(alive=(alive,))), cluster.now)


def test_a_joiner_with_a_live_members_name_is_refused_on_both_sides():
    cluster, cores = start_cluster(3, seed=13)
    converged(cluster, cores, within_s=20.0)
    holder = cores[1]
    impostor = cluster.add(holder.local_member.name)
    cluster.join(impostor, [cores[0].local_member.address])
    cluster.run_until(cluster.now + 20.0)
    honest_view_intact(cores)  # nobody took the impostor in
    refusals = {}
    for observer, event in cluster.refusals:
        if "names are unique" in event.reason:
            refusals.setdefault(observer, []).append(event.reason)
    assert node_id(impostor) in refusals  # the joiner sees why
    assert node_id(cores[0]) in refusals  # and so does the member it asked
    assert all(len(reasons) == 1 for reasons in refusals.values())  # once each
    assert any(holder.local_member.name in reason for reason in refusals[node_id(impostor)])


# ---- statements we hold ----------------------------------------------------------------


def test_statements_we_hold_are_not_checked_again_and_look_alikes_still_are(monkeypatch):
    # Gossip repeats each statement a dozen times and every full state repeats all we
    # hold: checks.py rule 1 checks a statement equal to the one we hold only once.
    import dataclasses

    from gossipnode.core.membership import checks

    cluster, cores = start_cluster(4, seed=14)
    converged(cluster, cores, within_s=10.0)
    asker, answerer, receiver = cores[1], cores[0], cores[2]
    answerer.receive(node_id(asker), PushPull(True, Updates()), cluster.now)
    full_state = next(event.message for event in answerer.events()
                      if isinstance(event, Send) and isinstance(event.message, PushPull))
    assert len(full_state.state.alive) == 4
    checked = []
    original = checks.check_tags
    monkeypatch.setattr(checks, "check_tags",
                        lambda *args: checked.append(args) or original(*args))
    receiver.receive(node_id(answerer), full_state, cluster.now)
    assert checked == []
    # Equal under == but not of the same types (1.0 == 1): checked, and refused.
    held = next(a for a in full_state.state.alive if a.node_id == node_id(asker))
    look_alike = dataclasses.replace(held, incarnation=float(held.incarnation))
    assert look_alike == held
    with pytest.raises(RemoteProtocolError):
        receiver.receive(node_id(answerer), Gossip(Updates(alive=(look_alike,))), cluster.now)
    honest_view_intact(cores)
