"""How fast membership reacts, on virtual time: a join in one exchange, seeds retried soon,
a refutation told to the accuser, dead members reached again after a long partition, and a
starved prober that accuses nobody. Every wait is bounded in virtual seconds."""

from __future__ import annotations

import dataclasses

from gossipnode.config import MembershipConfig
from gossipnode.core.events import Send
from gossipnode.core.membership import (
    ALIVE,
    DEAD,
    Alive,
    Dead,
    Gossip,
    Ping,
    PushPull,
    Updates,
    alive_signed_bytes,
    suspicion_bounds_s,
)
from tests.core.membership.membership_helpers import (
    all_alive,
    converged,
    node_id,
    start_cluster,
)
from tests.core.membership.virtual_cluster import VirtualCluster

# Long enough that neither push-pull nor serf's reconnect can be what heals a partition in
# these tests: only the probe-interval rules can.
NEVER_S = 1e6


def test_a_joiner_is_learned_first_hand_by_every_member_in_one_exchange():
    # 15 members: more than the 8 piggybacks a statement gets (retransmit limit at n = 16),
    # so without its own alive statement on every confirmation ping, some members would
    # first have to ask the joiner for its state (an introduction).
    cluster, cores = start_cluster(15, seed=21)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 10.0)  # the join's gossip has died down
    introductions = sum(core.statistics().get("introductions", 0) for core in cores)
    joiner = cluster.add("joiner", tags={"version": "0.1.0"})
    joined_at = cluster.now
    cluster.join(joiner, [cores[3].local_member.address])
    everyone = [*cores, joiner]
    # Join push-pull to the seed, its full state back, a confirmation ping to each member
    # and its ack: four one-way trips of 1 ms, with room for the order of delivery.
    assert cluster.run_until_true(all_alive(everyone), joined_at + 0.01, check_every_s=0.001)
    assert sum(core.statistics().get("introductions", 0) for core in cores) == introductions
    assert joiner.statistics()["sent_PushPull"] == 1  # the list came in one exchange


def test_seeds_that_do_not_answer_are_retried_soon_then_at_the_configured_interval():
    config = MembershipConfig()
    cluster = VirtualCluster(config, seed=22)
    lonely = cluster.add("lonely")
    absent_seed = ("10.0.0.99", 7946)  # nobody listens there
    sent_at: list[float] = []
    cluster.measure = lambda message: sent_at.append(cluster.now) or 0
    cluster.join(lonely, [absent_seed])
    cluster.run_until(12.0)
    # First after half a second, then doubling up to join_retry_interval_s.
    expected = [0.0, 0.5, 1.5, 3.5, 5.5, 7.5, 9.5, 11.5]
    assert len(sent_at) == len(expected), sent_at
    assert all(abs(a - b) < 1e-9 for a, b in zip(sent_at, expected, strict=True)), sent_at


def test_a_member_made_to_refute_tells_its_accuser_at_once():
    cluster, cores = start_cluster(3, seed=23)
    converged(cluster, cores, within_s=20.0)
    accused, accuser = cores[0], cores[1]
    incarnation = accused.local_member.incarnation
    accused.receive(
        node_id(accuser),
        Gossip(Updates(dead=(Dead(node_id(accused), incarnation, node_id(accuser)),))),
        cluster.now,
    )
    answers = [
        event
        for event in accused.events()
        if isinstance(event, Send)
        and event.peer == node_id(accuser)
        and isinstance(event.message, Gossip)
        and any(
            alive.node_id == node_id(accused) and alive.incarnation == incarnation + 1
            for alive in event.message.updates.alive
        )
    ]
    assert len(answers) == 1
    assert answers[0].to == accuser.local_member.address
    assert accused.statistics().get("refutations_answered", 0) == 1


def test_a_partition_longer_than_the_dead_gossip_time_heals_within_a_few_probe_intervals():
    config = dataclasses.replace(
        MembershipConfig(), push_pull_interval_s=NEVER_S, reconnect_interval_s=NEVER_S
    )
    cluster, cores = start_cluster(5, seed=24, config=config)
    converged(cluster, cores, within_s=20.0)
    side_a, side_b = cores[:2], cores[2:]
    for core in side_a:
        cluster.groups[node_id(core)] = 1

    def split() -> bool:
        return all(
            core.states()[node_id(other)] == DEAD
            for side, other_side in ((side_a, side_b), (side_b, side_a))
            for core in side
            for other in other_side
        )

    assert cluster.run_until_true(split, cluster.now + 60.0)
    # Long past dead_gossip_s: nobody is "recently dead" any more.
    cluster.run_until(cluster.now + 3 * config.dead_gossip_s)
    cluster.groups.clear()
    healed_at = cluster.now
    # Each probe interval every member reaches one member it holds dead (3 or 2 of them),
    # which refutes and answers; the refutations then spread by gossip.
    assert cluster.run_until_true(all_alive(cores), healed_at + 6 * config.probe_interval_s)
    cluster.run_until(cluster.now + 5.0)
    for core in cores:
        assert set(core.states().values()) == {ALIVE}


def test_a_starved_prober_accuses_nobody():
    cluster, cores = start_cluster(5, seed=25)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 10.0)
    prober = cores[1]
    raised = prober.statistics().get("suspicions_raised", 0)
    probes = prober.statistics().get("probes", 0)
    # Stop the prober just after it sent a ping, before the ack is back (1 ms each way).
    assert cluster.run_until_true(
        lambda: prober.statistics().get("probes", 0) > probes,
        cluster.now + 5.0,
        check_every_s=0.0005,
    )
    cluster.paused[node_id(prober)] = cluster.now + 3.0
    cluster.run_until(cluster.now + 20.0)
    assert prober.statistics().get("suspicions_withheld", 0) >= 1
    # (The others may suspect the prober: it did not answer for 3 s. It refutes.)
    assert prober.statistics().get("suspicions_raised", 0) == raised
    # ... and goes on probing at its usual pace (its lateness did not stretch its interval).
    assert prober.statistics().get("probes", 0) >= probes + 15
    for core in cores:
        assert set(core.states().values()) == {ALIVE}


def test_the_starved_prober_scenario_does_accuse_without_the_lateness_rule(monkeypatch):
    """The scenario above would raise a suspicion if the prober took its own lateness for
    the target's silence: with the rule switched off, it does."""
    from gossipnode.core.membership import probing

    monkeypatch.setattr(probing, "LATE_TIMER_FRACTION", float("inf"))
    cluster, cores = start_cluster(5, seed=25)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 10.0)
    prober = cores[1]
    raised = prober.statistics().get("suspicions_raised", 0)
    probes = prober.statistics().get("probes", 0)
    assert cluster.run_until_true(
        lambda: prober.statistics().get("probes", 0) > probes,
        cluster.now + 5.0,
        check_every_s=0.0005,
    )
    cluster.paused[node_id(prober)] = cluster.now + 3.0
    cluster.run_until(cluster.now + 20.0)
    assert prober.statistics().get("suspicions_raised", 0) > raised


def test_a_joiner_whose_seed_comes_up_late_joins_within_a_second_of_it():
    cluster = VirtualCluster(MembershipConfig(), seed=26)
    early = [cluster.add(f"early-{i}") for i in range(4)]
    seed_address = ("10.0.0.1", 6999)
    for core in early:
        cluster.join(core, [seed_address])
    cluster.run_until(2.7)  # the seed starts late, while the others wait for it
    seed = cluster.add("seed", address=seed_address)
    started_at = cluster.now
    everyone = [seed, *early]
    # Retries at 0.5, 1.5, 3.5 s: the one at 3.5 s finds it.
    assert cluster.run_until_true(all_alive(everyone), started_at + 1.0, check_every_s=0.01)


def test_a_new_members_slow_first_answer_is_forgiven_but_a_dead_newcomer_is_still_found():
    cluster, cores = start_cluster(4, seed=27)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 10.0)
    newcomer = cluster.add("newcomer", tags={"version": "0.1.0"})
    # Its first answers take longer than a probe interval (two fresh connections on a
    # member that is still starting), then it is quick.
    cluster.extra_delay_s[node_id(newcomer)] = 1.2
    cluster.join(newcomer, [cores[0].local_member.address])
    everyone = [*cores, newcomer]
    raised = [core.statistics().get("suspicions_raised", 0) for core in cores]
    assert cluster.run_until_true(all_alive(everyone), cluster.now + 10.0)
    assert cluster.run_until_true(
        lambda: sum(core.statistics().get("first_probes_forgiven", 0) for core in cores) >= 1,
        cluster.now + 10.0,
    )
    cluster.extra_delay_s.clear()
    cluster.run_until(cluster.now + 20.0)
    assert [core.statistics().get("suspicions_raised", 0) for core in cores] == raised
    # A newcomer that dies at once is still declared dead: one probe later than otherwise.
    late = cluster.add("short-lived", tags={"version": "0.1.0"})
    cluster.join(late, [cores[0].local_member.address])
    assert cluster.run_until_true(all_alive([*everyone, late]), cluster.now + 10.0)
    cluster.crash(node_id(late))
    config = MembershipConfig()
    _, maximum_s = suspicion_bounds_s(
        config.suspicion_mult, config.suspicion_max_timeout_mult, config.probe_interval_s, 6
    )
    # The usual bound (two rounds of the 5 others, the probe that ends, the longest
    # suspicion, a second of gossip) plus the one probe interval of the forgiven probe.
    bound_s = 2 * 5 * config.probe_interval_s + 2 * config.probe_interval_s + maximum_s + 1.0
    assert cluster.run_until_true(
        lambda: all(core.states()[node_id(late)] == DEAD for core in everyone),
        cluster.now + bound_s,
    )


def test_a_claim_we_refuted_already_is_answered_and_one_above_our_incarnation_is_not():
    # A claimant that missed our refutation must hear our alive statement; a member lying
    # with a claim above anything we signed gets nothing (and moves nothing).
    cluster, cores = start_cluster(3, seed=23)
    converged(cluster, cores, within_s=20.0)
    accused, claimant = cores[0], cores[1]
    incarnation = accused.local_member.incarnation
    accused.receive(node_id(claimant), Gossip(Updates(
        dead=(Dead(node_id(accused), incarnation, node_id(claimant)),))), cluster.now)
    accused.events()
    current = accused.local_member.incarnation
    assert current == incarnation + 1

    def answers_after(claim_incarnation: int) -> list[Send]:
        accused.receive(node_id(claimant), Gossip(Updates(
            dead=(Dead(node_id(accused), claim_incarnation, node_id(claimant)),))), cluster.now)
        return [
            event for event in accused.events()
            if isinstance(event, Send) and event.peer == node_id(claimant)
            and isinstance(event.message, Gossip)
            and any(alive.node_id == node_id(accused) and alive.incarnation == current
                    for alive in event.message.updates.alive)
        ]

    # The same claim again at once: it crossed our answer, which the claimant gets anyway
    # (dissemination.py rule 6: once per accuser, incarnation and probe interval).
    assert answers_after(incarnation) == []
    cluster.run_until(cluster.now + MembershipConfig().probe_interval_s)
    assert len(answers_after(incarnation)) == 1  # still stale an interval on: answered
    assert answers_after(current + 5) == []  # over what we signed: a lie, not answered
    assert accused.local_member.incarnation == current
    assert accused.states()[node_id(accused)] == ALIVE


def _holders(cores, subject: bytes) -> int:
    return sum(1 for core in cores if core.member(subject).tags.get("bench") == "tagged")


def test_a_tag_change_reaches_a_cluster_of_50_in_message_delays_not_gossip_intervals():
    # dissemination.py rule 7: each member forwards the news when it arrives. Without it,
    # the tagger's own round reaches 3 members and the rest wait for gossip ticks
    # (200 ms apart): about 0.4 virtual s for 50 members.
    config = MembershipConfig()
    cluster, cores = start_cluster(50, seed=30, config=config)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 40.0)  # the join's gossip has died down
    tagger, others = cores[7], [core for i, core in enumerate(cores) if i != 7]
    subject = node_id(tagger)
    transmits = 0

    def count(message: object) -> int:
        nonlocal transmits
        updates = getattr(message, "updates", None)
        alive = () if updates is None else updates.alive
        transmits += sum(1 for a in alive if a.node_id == subject and a.tags)
        return 0

    cluster.measure = count
    changed_at = cluster.now
    cluster.call(tagger, "set_tags", {"bench": "tagged"})
    # 20 one-way delays of 1 ms: a tenth of one gossip interval.
    cluster.run_until(changed_at + 20 * cluster.latency_s)
    assert _holders(others, subject) >= 40, _holders(others, subject)
    # The few the first wave missed hear it from the many that hold it, at their ticks.
    assert cluster.run_until_true(
        lambda: _holders(others, subject) == len(others),
        changed_at + 2 * config.gossip_interval_s,
        check_every_s=0.001,
    )
    # No more sends than the retransmit budget: each member passes the statement on at
    # most limit + fanout - 1 times (broadcast.py), piggybacks included.
    cluster.run_until(cluster.now + 10.0)
    limit = config.retransmit_mult * 2  # ceil(log10(50 + 1)) = 2
    assert 0 < transmits <= len(cores) * (limit + config.gossip_fanout - 1)


def test_news_arriving_all_the_time_sends_at_most_two_gossip_rounds_per_interval():
    # A member fed fresh statements at every millisecond (here: refutations of one
    # member, each at a higher incarnation) forwards at most one round between ticks.
    config = MembershipConfig()
    cluster, cores = start_cluster(10, seed=31, config=config)
    converged(cluster, cores, within_s=20.0)
    cluster.run_until(cluster.now + 40.0)
    listener, speaker = cores[0], cores[1]
    speaker_id = node_id(speaker)
    sign = cluster.signers[speaker_id]
    alive = speaker.local_member
    started_at = cluster.now
    listener.events()
    rounds_sent = 0
    for step in range(200):  # one second of virtual time
        incarnation = alive.incarnation + 1 + step
        signed = alive_signed_bytes(speaker_id, alive.name, *alive.address, incarnation, ())
        statement = Alive(speaker_id, alive.name, *alive.address, incarnation, (), sign(signed))
        now = started_at + step * 0.005
        listener.handle_timer(now)
        listener.receive(speaker_id, Gossip(Updates(alive=(statement,))), now)
        rounds_sent += sum(
            1 for event in listener.events()
            if isinstance(event, Send) and isinstance(event.message, Gossip)
        )
    intervals = 1.0 / config.gossip_interval_s
    assert rounds_sent <= (2 * intervals + 1) * config.gossip_fanout
    # ... yet it did forward news between its ticks (more than one round per interval).
    assert listener.statistics()["news_forwarded"] >= 1


def test_only_alive_and_left_news_is_forwarded_at_once():
    # A suspicion waits for the tick (dissemination.py rule 7); a refutation does not.
    from gossipnode.core.membership.broadcast import BroadcastQueue
    from gossipnode.core.membership.messages import Suspect

    queue = BroadcastQueue()
    queue.push(Suspect(b"s" * 32, 3, b"r" * 32))
    assert not queue.fresh
    queue.push(Alive(b"a" * 32, "a", "10.0.0.1", 7000, 4, (), b"x" * 64))
    assert queue.fresh
    queue.take(4096, limit=8, sends=3)  # both sent once: nothing is news any more
    assert not queue.fresh


def test_a_member_held_dead_whose_message_carries_its_refutation_is_not_told_it_is_dead():
    # After a partition each side holds the other dead; the first message of a member back
    # from the other side mostly carries its refutation already. Telling it the stale claim
    # would only draw a second refutation message back: two messages per pair after a heal.
    cluster, cores = start_cluster(3, seed=24)
    converged(cluster, cores, within_s=20.0)
    observer, returning, accuser = cores
    incarnation = returning.local_member.incarnation
    claim = Gossip(Updates(dead=(Dead(node_id(returning), incarnation, node_id(accuser)),)))
    observer.receive(node_id(accuser), claim, cluster.now)
    observer.handle_timer(cluster.now + 60.0)  # its own suspicion runs out (state.py rule 10)
    observer.events()
    assert observer.states()[node_id(returning)] == DEAD
    returning.receive(node_id(accuser), claim, cluster.now)  # it refutes, answering
    refutation = next(event.message for event in returning.events()
                      if isinstance(event, Send) and isinstance(event.message, Gossip)
                      and event.message.updates.alive)
    observer.receive(node_id(returning), refutation, cluster.now)
    assert observer.states()[node_id(returning)] == ALIVE
    told = [event for event in observer.events()
            if isinstance(event, Send) and event.peer == node_id(returning)
            and isinstance(event.message, Gossip)
            and (event.message.updates.dead or event.message.updates.suspect)]
    assert told == []


def test_a_join_pulls_one_full_state_whatever_the_number_of_seeds_and_retries_them_all():
    # Every seed's full state cost each joiner one full state per seed: 3,000 of up to
    # 1,000 statements when 1,000 members started together with 3 seeds.
    cluster, cores = start_cluster(6, seed=25)
    converged(cluster, cores, within_s=20.0)
    seeds = [core.local_member.address for core in cores[:3]]
    joiner = cluster.add("joiner", tags={"version": "0.1.0"})
    cluster.join(joiner, seeds)
    assert cluster.run_until_true(all_alive([*cores, joiner]), cluster.now + 1.0)
    assert joiner.statistics()["sent_PushPull"] == 1
    # Seeds that do not answer: after the first wait, every seed is asked.
    lonely = cluster.add("lonely")
    absent = [("10.0.0.97", 7946), ("10.0.0.98", 7946), ("10.0.0.99", 7946)]
    cluster.join(lonely, absent)
    assert lonely.statistics()["sent_PushPull"] == 1
    cluster.run_until(cluster.now + 0.6)
    assert lonely.statistics()["sent_PushPull"] == 1 + len(absent)


def test_a_member_first_heard_of_in_gossip_is_pinged_at_the_next_probe_tick_not_at_once():
    # It has most likely just joined and is pinging every member its seed named: its own
    # ping confirms it, and ours would only cross it (confirming.py rule 1). Named in a
    # full state we asked for, it is pinged at once, as before.
    cluster, cores = start_cluster(3, seed=26)
    converged(cluster, cores, within_s=10.0)
    observer, teller = cores[0], cores[1]
    newcomer = cluster.add("newcomer", tags={"version": "0.1.0"})
    newcomer_id = node_id(newcomer)
    newcomer.join([("10.0.0.99", 7946)], cluster.now)  # its opening carries its statement
    statement = next(a for event in newcomer.events() if isinstance(event, Send)
                     and isinstance(event.message, PushPull)
                     for a in event.message.state.alive if a.node_id == newcomer_id)
    cluster.crash(newcomer_id)  # silent from now on: only our own ping can confirm it

    def pings_to_newcomer(core) -> int:
        return sum(1 for event in core.events() if isinstance(event, Send)
                   and isinstance(event.message, Ping) and event.message.target == newcomer_id)

    observer.receive(node_id(teller), Gossip(Updates(alive=(statement,))), cluster.now)
    assert pings_to_newcomer(observer) == 0
    assert [p[0] for p in observer.pending_members()] == [newcomer_id]
    pinged = []
    cluster.measure = lambda message: pinged.append(message) or 0
    cluster.run_until(cluster.now + 2 * MembershipConfig().probe_interval_s)
    assert any(isinstance(m, Ping) and m.target == newcomer_id for m in pinged)
    other = cores[2]
    other.receive(node_id(teller), PushPull(False, Updates(alive=(statement,))), cluster.now)
    assert pings_to_newcomer(other) == 1
