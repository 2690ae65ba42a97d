"""The harness's own mechanics: timers, skew, crash and restart, the DSL verbs."""

from dataclasses import dataclass

from gossipnode.core.events import Disconnect, Send
from gossipnode.openpgp import consumer_value, generate_key, split_keys
from gossipnode.wire.messages import MessageRegistry
from simulations.clock import EPOCH_S
from simulations.network import DIAL_TIMEOUT_S

from .standin import StandinCore


@dataclass(frozen=True, slots=True)
class Ping:
    number: int


RECORDER_MESSAGES = MessageRegistry()
RECORDER_MESSAGES.register(1, Ping)


class Recorder:
    """A core that records every input and sends Ping(n) to node 1 whenever told to."""

    message_registry = RECORDER_MESSAGES

    def __init__(self, config, *, store, node_id, rng, now, wall_ms, sign, verify, decode_value,
                 incarnation, content_check, merges):
        self.config, self.store, self.node_id = config, store, node_id
        self.wall_ms = wall_ms
        self.incarnation = incarnation
        self.inputs: list[tuple] = [("start", now)]
        self.outbox: list[object] = []
        self.deadline: float | None = None

    def join(self, seeds, now):
        self.inputs.append(("join", now))

    def receive(self, sender, message, now):
        self.inputs.append(("receive", now, sender, message, self.wall_ms()))

    def connection_lost(self, peer, now):
        self.inputs.append(("lost", now, peer))

    def handle_timer(self, now):
        self.inputs.append(("timer", now))
        self.deadline = None

    def next_deadline(self):
        return self.deadline

    def events(self):
        events, self.outbox = self.outbox, []
        return events


def _ping(cluster, source, target, number):
    source.core.outbox.append(Send(target.address, Ping(number)))
    cluster._input(source, lambda core, now: None)


def test_a_timer_fires_at_its_deadline_whatever_the_wall_clock_says(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    node = cluster.nodes[0]
    cluster.skew(node, 3.0)
    node.core.deadline = EPOCH_S + 10.0
    cluster._arm_timer(node)
    cluster.jump(node, -7.0)  # a wall clock step after arming moves no timer either
    cluster.run_for(20.0)
    assert node.core.inputs[-1] == ("timer", EPOCH_S + 10.0)
    assert cluster.queue.now == EPOCH_S + 20.0


def test_skew_and_jump_step_the_wall_clock_a_node_sees_not_its_now(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    source, target = cluster.nodes
    cluster.skew(target, -2.0)
    _ping(cluster, source, target, 1)
    cluster.run_for(1.0)
    cluster.jump(target, 5.0)
    _ping(cluster, source, target, 2)
    cluster.run_for(1.0)
    received = [entry for entry in target.core.inputs if entry[0] == "receive"]
    assert [entry[3] for entry in received] == [Ping(1), Ping(2)]
    (_, first_now, sender, _, first_wall_ms), (_, second_now, _, _, second_wall_ms) = received
    assert EPOCH_S < first_now < EPOCH_S + 0.1
    assert EPOCH_S + 1.0 < second_now < EPOCH_S + 1.1
    assert (EPOCH_S - 2.0) * 1000 < first_wall_ms < (EPOCH_S - 1.9) * 1000
    assert (EPOCH_S + 4.0) * 1000 < second_wall_ms < (EPOCH_S + 4.1) * 1000
    assert sender == source.node_id


def test_crash_loses_in_flight_messages_but_keeps_the_store(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    source, target = cluster.nodes
    target.store.set_meta("durable", b"yes")
    old_core = target.core
    _ping(cluster, source, target, 1)  # in flight: latency is at least 1 ms
    cluster.crash(target)
    cluster.run_for(1.0)
    assert not [e for e in old_core.inputs if e[0] == "receive"]
    cluster.restart(target)
    assert target.core is not old_core
    assert target.core.incarnation == 2
    assert target.core.store is target.store
    assert target.store.get_meta("durable") == b"yes"
    _ping(cluster, source, target, 2)
    cluster.run_for(1.0)
    assert [e[3] for e in target.core.inputs if e[0] == "receive"] == [Ping(2)]


def test_a_message_to_a_crashed_node_fails_the_senders_connection(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    source, target = cluster.nodes
    cluster.crash(target)
    _ping(cluster, source, target, 1)
    cluster.run_for(1.0)
    assert [e[2] for e in source.core.inputs if e[0] == "lost"] == [target.address]


def test_a_partition_holds_open_links_until_the_heal_and_fails_new_dials(make_cluster):
    cluster = make_cluster(nodes=3, core=Recorder)
    a, b, c = cluster.nodes
    _ping(cluster, a, b, 0)  # the link a-b is open before the partition
    cluster.run_for(1.0)
    cluster.partition([a], [b, c])
    _ping(cluster, a, b, 1)
    _ping(cluster, a, c, 2)  # no link to c yet: the dial times out
    cluster.run_for(DIAL_TIMEOUT_S + 1.0)
    assert [e[3] for e in b.core.inputs if e[0] == "receive"] == [Ping(0)]
    assert [e[2] for e in a.core.inputs if e[0] == "lost"] == [c.address]
    cluster.heal()
    cluster.run_for(1.0)
    assert [e[3] for e in b.core.inputs if e[0] == "receive"] == [Ping(0), Ping(1)]
    assert [e for e in c.core.inputs if e[0] == "receive"] == []


def test_messages_cross_the_wire_codec_and_bytes_are_the_encoded_length(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    source, target = cluster.nodes
    for number in range(3):
        _ping(cluster, source, target, number)
    cluster.run_for(1.0)
    received = [e[3] for e in target.core.inputs if e[0] == "receive"]
    assert received == [Ping(0), Ping(1), Ping(2)]
    sent = [m for m in source.core.inputs]  # the receiver got decoded copies, not ours
    assert all(type(message) is Ping for message in received)
    assert sent
    encoded = sum(len(RECORDER_MESSAGES.encode(Ping(number))) for number in range(3))
    assert (cluster.messages, cluster.bytes) == (3, encoded)


def test_a_disconnect_resets_the_link_and_both_ends_see_connection_lost(make_cluster):
    cluster = make_cluster(nodes=2, core=Recorder)
    source, target = cluster.nodes
    _ping(cluster, source, target, 1)
    cluster.run_for(1.0)
    source.core.outbox.append(Disconnect(target.address, "misbehaved"))
    _ping(cluster, source, target, 2)  # queued behind the disconnect: a new connection
    cluster.run_for(1.0)
    assert [e[2] for e in source.core.inputs if e[0] == "lost"] == [target.address]
    assert [e[2] for e in target.core.inputs if e[0] == "lost"] == [source.address]
    assert [e[3] for e in target.core.inputs if e[0] == "receive"] == [Ping(1), Ping(2)]


def test_stand_in_cluster_converges_after_writes(make_cluster):
    cluster = make_cluster(nodes=10)
    cluster.run_for(3.0)
    writer = cluster.nodes[4]
    pending = cluster.write(writer, "consumers", "alice", {"name": "Alice"})
    assert not pending.done  # acknowledged when its group commit has synced
    cluster.run_for(0.1)
    assert pending.done
    assert cluster.run_until_converged(60.0) is not None
    record = pending.record
    assert record is not None
    assert all(node.store.get("consumers", "alice") == record for node in cluster.nodes)
    assert not cluster.checkers.violations


def test_writes_made_together_share_one_group_commit(make_cluster):
    cluster = make_cluster(nodes=3)
    cluster.run_for(3.0)
    node = cluster.nodes[0]
    batches = []
    write_many = node.core.write_many
    node.core.write_many = lambda writes, now: batches.append(len(writes)) or write_many(
        writes, now)
    first = [cluster.write(node, "groups", f"g{n}", {"n": n}) for n in range(5)]
    cluster.run_for(0.0005)  # within the first sync: these wait for the next batch
    second = [cluster.write(node, "groups", f"h{n}", {"n": n}) for n in range(3)]
    cluster.run_for(1.0)
    assert batches == [5, 3]
    assert all(p.record is not None for p in first + second)


def test_write_refused_by_the_core_is_counted_not_acknowledged(make_cluster):
    cluster = make_cluster(nodes=5)
    ineligible = cluster.nodes[4]  # default_tags: every fifth node declines private keys
    pending = cluster.write(ineligible, "private_keys", "user", {"key": "secret"})
    cluster.run_for(1.0)
    assert pending.record is None
    assert "may not hold private keys" in pending.error
    assert cluster.refused == 1
    assert not cluster.checkers.acknowledged


def test_the_agents_content_check_runs_on_simulated_writes(make_cluster):
    cluster = make_cluster(nodes=2)
    key = split_keys(generate_key("Alice <alice@example.org>"))[0]
    public = cluster.write(cluster.nodes[0], "consumers", "alice", consumer_value(key))
    leaky = cluster.write(cluster.nodes[0], "consumers", "leaky",
                          {**consumer_value(key), "cert": key.secret_key})
    cluster.run_for(1.0)
    assert public.record is not None
    assert leaky.record is None
    assert "secret key material is not allowed" in leaky.error


def test_a_failing_disk_refuses_writes_cleanly_and_crashes_on_replicated_ones(make_cluster):
    cluster = make_cluster(nodes=4)
    cluster.run_for(3.0)
    node = cluster.nodes[1]
    kept = cluster.write(node, "groups", "kept", {"n": 1})
    cluster.run_for(0.1)
    cluster.fail_storage(node, 5.0)
    refused = cluster.write(node, "groups", "kept", {"n": 2})
    cluster.run_for(0.1)
    assert kept.record is not None
    assert refused.record is None and "the store failed" in refused.error
    assert node.store.get("groups", "kept") == kept.record
    assert node.core is not None  # a refused client write does not stop the node
    cluster.write(cluster.nodes[2], "groups", "pushed", {"n": 3})
    cluster.run_for(2.0)
    assert node.core is None  # a replicated write hit the failing disk: fail-stop
    assert cluster.event_counts["crashes on a failing disk"] == 1
    cluster.heal()
    assert cluster.run_until_converged(60.0) is not None
    assert not cluster.checkers.violations


def test_same_seed_same_run_different_seed_different_run(make_cluster):
    def fingerprint(seed):
        cluster = make_cluster(nodes=6, seed=seed, core=StandinCore)
        cluster.run_for(5.0)
        cluster.write(cluster.nodes[1], "groups", "g", {"n": 1})
        cluster.run_for(20.0)
        return cluster.steps, cluster.messages, cluster.bytes, [n.node_id for n in cluster.nodes]
    assert fingerprint(3) == fingerprint(3)
    assert fingerprint(3) != fingerprint(4)
