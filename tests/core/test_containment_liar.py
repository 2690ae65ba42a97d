"""Containment against one lying member (docs/architecture.md invariants 2 and 8), in the
core, on virtual time. Members 0 (the victim) and 1 are honest and hold every grant; member 2,
the liar, is admitted and holds the cluster secret, its own identity and signing key, signs
tags that claim everything (`private_keys` and `wep` true), and speaks on its authenticated
links by hand: its own core still runs the membership (so it stays alive in every view), but
every data message to or from it (pushes, acknowledgements, reconciliation) is taken out of
the network here, and the test plays the liar's side with hand-made messages.

Every assertion is against literal sets (the keys written, the grants given), or, for the
mailboxes, an independent rendering of the documented placement rule (BLAKE2b-128 of node id
+ mailbox id, personalised "gossipnode-wep", the R highest), never the core's own eligibility
or placement functions.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from gossipnode.config import ReplicationConfig
from gossipnode.core.authority import signing_payload
from gossipnode.core.events import PeerRefused
from gossipnode.core.membership.messages import Dead, Gossip, Updates
from gossipnode.core.reconcile_messages import (
    FINGERPRINT,
    ROOT_BYTES,
    SALT_BYTES,
    SKIP,
    Entry,
    ReconcileAbort,
    ReconcileOpen,
    ReconcileTurn,
    encode_entry,
    parse_entries,
)
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push, PushAck
from gossipnode.core.sync import RESUME_AFTER_S
from gossipnode.driving import content_check
from gossipnode.openpgp import generate_key, split_keys
from gossipnode.wire.cbor import encode_value
from tests.core.node_harness import Cluster

VICTIM, HONEST, LIAR = 0, 1, 2
CLAIMS_EVERYTHING = {"private_keys": True, "wep": True}
# No regular round within a test unless it runs one: every session is the test's doing.
QUIET = ReplicationConfig(anti_entropy_interval_s=3600.0, tombstone_grace_s=7200.0)
DATA_MESSAGES = (Push, PushAck, ReconcileOpen, ReconcileTurn, ReconcileAbort)
PRIVATE_KEYS = [f"pk-{n:02}" for n in range(40)]
MAILBOXES = [f"box{n:03}" for n in range(150)]
CONSUMERS = [f"c{n:02}" for n in range(40)]
WEP_REPLICAS = 2  # the documented default
# Generous bounds on the key space a bound may hold (wall bytes + key), and ids per entry.
BOUND_BYTES_MAX = 6 + 1024
IDS_MAX = 1 << 16


class Liar:
    """The liar's data messages, played by hand. `inbox` holds (time, sender index, message)
    for every data message an honest member sent it, `seen` (time, message) for every
    message at all (membership ones too, which reach its core)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.rng = random.Random(11)
        self.inbox: list[tuple[float, int, object]] = []
        self.seen: list[tuple[float, object]] = []

        def dropping(sender, target, message):
            if target == LIAR:
                self.seen.append((cluster.now, message))
                if isinstance(message, DATA_MESSAGES):
                    self.inbox.append((cluster.now, sender, message))
                    return True
            return sender == LIAR and isinstance(message, DATA_MESSAGES)

        cluster.dropping = dropping

    @property
    def node_id(self) -> bytes:
        return self.cluster.nodes[LIAR].node_id

    def send(self, message: object, to: int = VICTIM) -> None:
        cluster = self.cluster
        cluster.nodes[to].receive(self.node_id, message, cluster.now)
        cluster._collect(to)

    def open(self, dataset: str, count: int) -> int:
        """Open a session over `dataset` claiming `count` records under a random root."""
        session = self.rng.getrandbits(63)
        self.send(ReconcileOpen(session, dataset, self.rng.randbytes(SALT_BYTES),
                                self.rng.randbytes(ROOT_BYTES), count))
        return session

    def replies(self, session: int, since: float = 0.0) -> list[object]:
        return [m for t, _, m in self.inbox
                if t >= since and getattr(m, "session", None) == session]

    def session_records(self, session: int) -> set[str]:
        """Keys of the records a session's turns carried to the liar."""
        return {record.key for message in self.replies(session)
                for record in getattr(message, "records", ())}

    def records(self, since: float = 0.0) -> dict[str, set[str]]:
        """Dataset -> keys of every record an honest member sent the liar since `since`."""
        got: dict[str, set[str]] = {}
        for t, _, message in self.inbox:
            if t >= since:
                for record in getattr(message, "records", ()):
                    got.setdefault(record.dataset, set()).add(record.key)
        return got


def sign_record(sign, dataset, key, value, version) -> Record:
    encoded = None if value is None else encode_value(value)
    return Record(dataset, key, encoded, version,
                  sign(signing_payload(dataset, key, version, encoded)))


def grant(cluster: Cluster, index: int, **grants: bool) -> None:
    """What `gossipnode grant` does, on the victim: sign with the administrator key, store."""
    admin_id, admin_sign = cluster.admin
    node_id = cluster.nodes[index].node_id
    value = {"admitted": True, "private_keys": False, "wep": False, **grants}
    version = Version(int(cluster.now * 1000) + 1, 0, admin_id)
    cluster.nodes[VICTIM].write_signed(
        sign_record(admin_sign, "cluster_policy", "grant/" + node_id.hex(), value, version),
        cluster.now)
    cluster._collect(VICTIM)


def liar_cluster(content_check=None, replication: ReplicationConfig = QUIET,
                 **liar_grants: bool) -> tuple[Cluster, Liar]:
    """Three members that all claim every tag; 0 and 1 granted everything, the liar
    `liar_grants` (admitted always). The victim holds PRIVATE_KEYS, MAILBOXES and CONSUMERS,
    and so does member 1 (pushes between honest members flow)."""
    cluster = Cluster([CLAIMS_EVERYTHING] * 3, administrated=True, replication=replication,
                      content_check=content_check)
    grant(cluster, VICTIM, private_keys=True, wep=True)
    grant(cluster, HONEST, private_keys=True, wep=True)
    grant(cluster, LIAR, **liar_grants)
    cluster.run_for(5)
    liar = Liar(cluster)
    for key in PRIVATE_KEYS:
        cluster.put(VICTIM, "private_keys", key, {"secret_key": key.encode()})
    for key in MAILBOXES:
        cluster.put(VICTIM, "web_messenger", key, {"owner": key})
    for key in CONSUMERS:
        cluster.put(VICTIM, "consumers", key, {"n": key})
    cluster.run_for(3)
    assert set(cluster.records(HONEST, "private_keys")) == set(PRIVATE_KEYS)
    return cluster, liar


def owners(mailbox: str, candidates: list[bytes]) -> set[bytes]:
    """The documented rendezvous rule, rendered independently (placement rule 2)."""
    def weight(node_id: bytes) -> bytes:
        return hashlib.blake2b(node_id + mailbox.encode(), digest_size=16,
                               person=b"gossipnode-wep").digest()
    return set(sorted(candidates, key=weight, reverse=True)[:WEP_REPLICAS])


def grant_keys(cluster: Cluster) -> set[str]:
    return {"grant/" + node.node_id.hex() for node in cluster.nodes}


# --- sending side -----------------------------------------------------------------------------


def test_a_liar_granted_neither_private_keys_nor_wep_gets_neither_by_any_path():
    cluster, liar = liar_cluster()  # admitted only, though its tags claim everything
    # It claims an empty store over every dataset: the plain copy of reconcile.py rule 2b,
    # which streams the whole scope.
    sessions = {name: liar.open(name, 0) for name in
                ("private_keys", "web_messenger", "consumers", "cluster_policy")}
    cluster.run_for(1)
    for name in ("private_keys", "web_messenger"):
        assert [type(m) for m in liar.replies(sessions[name])] == [ReconcileAbort]
    # The attack itself works where the liar is owed the data (so the refusals above mean it).
    assert liar.records() == {"consumers": set(CONSUMERS), "cluster_policy": grant_keys(cluster)}
    # The honest members' own rounds with it, repairs and later writes add nothing restricted.
    cluster.nodes[VICTIM].repair(cluster.now, peer=liar.node_id)
    cluster._collect(VICTIM)
    cluster.put(VICTIM, "private_keys", "pk-late", {"secret_key": b"late"})
    cluster.put(VICTIM, "web_messenger", "box-late", {"owner": "late"})
    cluster.put(VICTIM, "network", "listen", {"address": "10.0.0.1"})  # node-local
    for index in (VICTIM, HONEST):
        cluster.nodes[index].sync.round(cluster.now)
        cluster._collect(index)
    cluster.run_for(10)
    got = liar.records()
    assert set(got) <= {"consumers", "cluster_policy"}
    # Not even an opening (a root and a count) over what it may not hold.
    opened = {m.dataset for _, _, m in liar.inbox if isinstance(m, ReconcileOpen)}
    assert "consumers" in opened and not opened & {"private_keys", "web_messenger", "network"}
    # Nor does it hear the root of a dataset it is not granted, on any membership message.
    heard = {r.dataset for _, m in liar.seen for r in getattr(m, "roots", ())}
    assert heard and not heard & {"private_keys", "web_messenger"}


def test_a_liar_owning_some_mailboxes_is_sent_exactly_those_it_shares():
    cluster, liar = liar_cluster(wep=True)  # a WEP owner like the others, granted
    ids = [node.node_id for node in cluster.nodes]
    owned = {m for m in MAILBOXES if ids[LIAR] in owners(m, ids)}
    shared = {m for m in owned if ids[VICTIM] in owners(m, ids)}
    # The test can tell too much from enough: some mailboxes are the liar's alone with
    # member 1 (the victim pushed them to their owners), some shared, some not the liar's.
    assert shared and shared < owned < set(MAILBOXES)
    assert liar.records().get("web_messenger") == owned  # the writes' pushes
    since = cluster.now
    session = liar.open("web_messenger", 0)  # "I hold no mailbox: send me all of them"
    cluster.run_for(1)
    # A session covers the mailboxes both ends own, whatever the liar claims.
    assert liar.session_records(session) == shared
    assert set(liar.records(since)) <= {"consumers", "cluster_policy", "web_messenger"}
    assert liar.records(since).get("web_messenger", set()) <= owned
    assert ReconcileAbort not in [type(m) for m in liar.replies(session)]
    assert "private_keys" not in liar.records()


def liar_answer(turn: ReconcileTurn) -> bytes:
    """The liar's next turn to an honest side's: for every range digest, one that matches
    nothing and claims many records, so that the honest side descends (lists ids, splits)
    rather than push records; for every list of ids, nothing wanted (the records the turn
    carries are the liar's side of it)."""
    parts, previous = [], b""
    for entry in parse_entries(turn.ranges, BOUND_BYTES_MAX, IDS_MAX):
        mode = FINGERPRINT if entry.mode == FINGERPRINT else SKIP
        mine = Entry(entry.hi, mode, 0, 1000 if mode == FINGERPRINT else 0)
        parts.append(encode_entry(previous, mine))
        previous = entry.hi or previous
    return b"".join(parts)


@pytest.mark.parametrize(("dataset", "granted", "revoked"), [
    ("private_keys", {"private_keys": True}, {}),
    ("web_messenger", {"wep": True}, {}),
    ("consumers", {}, {"admitted": False}),  # its admission itself
])
def test_a_session_in_flight_ends_when_the_liars_grant_is_revoked(dataset, granted, revoked):
    cluster, liar = liar_cluster(**granted)
    session = liar.open(dataset, 1000)  # a root that matches nothing: the victim splits
    cluster.run_for(0.1)
    first = liar.replies(session)
    assert [type(m) for m in first] == [ReconcileTurn]
    assert {e.mode for e in parse_entries(first[0].ranges, BOUND_BYTES_MAX, IDS_MAX)} == {
        FINGERPRINT}
    grant(cluster, LIAR, **revoked)  # admitted only, or not even that
    since = cluster.now
    # Written after the revocation: the liar may learn nothing of them, not even how many.
    for n in range(20):
        cluster.put(VICTIM, dataset, f"after-{n}", {"n": n})
    liar.send(ReconcileTurn(session, 2, False, liar_answer(first[0]), ()))
    cluster.run_for(1)
    after = liar.replies(session, since=since)
    # Ended when the revocation was applied (then "no such session" for the liar's turn);
    # a member no longer admitted is no member of the victim's: it is sent nothing at all.
    assert all(isinstance(m, ReconcileAbort) for m in after)
    assert bool(after) == revoked.get("admitted", True)
    assert dataset not in liar.records(since=since)


def roots_heard(liar: Liar, since: float) -> set[str]:
    return {r.dataset for t, m in liar.seen if t >= since for r in getattr(m, "roots", ())}


def test_pushes_and_roots_in_flight_stop_at_the_revocation():
    cluster, liar = liar_cluster(private_keys=True)
    cluster.put(VICTIM, "private_keys", "pk-late", {"secret_key": b"late"})
    cluster.run_for(0.1)  # pushed to the liar, never acknowledged (the liar keeps silent)
    assert "pk-late" in liar.records().get("private_keys", set())
    assert "private_keys" in roots_heard(liar, 0.0)
    grant(cluster, LIAR)
    revoked = cluster.now
    cluster.put(VICTIM, "private_keys", "pk-later", {"secret_key": b"later"})  # a new root
    cluster.run_for(40)  # every retry of that push falls due, and every root refresh
    assert "private_keys" not in liar.records(since=revoked)
    heard = roots_heard(liar, revoked)
    assert "consumers" in heard and "private_keys" not in heard


def test_handoffs_go_to_granted_members_only_and_a_liars_acks_release_nothing():
    """The victim loses its grants: its private keys and mailboxes must move to member 1,
    the only other member granted them; the liar, whose tags claim both, gets none of them,
    and acknowledging every push id there is cannot make the victim drop a record early."""
    cluster, liar = liar_cluster()
    cluster.put(VICTIM, "private_keys", "pk-victim-only", {"secret_key": b"v"})
    cluster.put(VICTIM, "web_messenger", "box-victim-only", {"owner": "v"})
    cluster.blocked |= {(VICTIM, HONEST), (HONEST, VICTIM)}  # member 1 hears nothing yet
    handed = cluster.now
    grant(cluster, VICTIM)  # admitted only, now
    cluster.run_for(0.5)
    for push_id in range(1, 2000):  # "I hold them all"
        liar.send(PushAck(push_id, ()))
    cluster.run_for(1)
    assert "pk-victim-only" in cluster.records(VICTIM, "private_keys")  # not released
    assert "box-victim-only" in cluster.records(VICTIM, "web_messenger")
    cluster.heal()
    cluster.run_for(30)
    assert set(liar.records(handed)) <= {"consumers", "cluster_policy"}
    assert cluster.records(VICTIM, "private_keys") == {}
    assert cluster.records(VICTIM, "web_messenger") == {}
    assert {"pk-victim-only", *PRIVATE_KEYS} <= set(cluster.records(HONEST, "private_keys"))
    assert {"box-victim-only", *MAILBOXES} <= set(cluster.records(HONEST, "web_messenger"))


@pytest.mark.parametrize("revoked", [True, False])
def test_a_waiting_opening_is_judged_by_the_grants_when_it_goes(revoked):
    cluster, liar = liar_cluster(private_keys=True)
    ids = [node.node_id for node in cluster.nodes]
    victim = cluster.nodes[VICTIM]
    # The liar's opening waits while the victim answers member 1 over private keys (one
    # moving session per dataset), and its grant is revoked meanwhile (or not: the control).
    honest = cluster.nodes[HONEST]
    honest.store.remove("private_keys", tuple(PRIVATE_KEYS[:30]))
    honest.digests.build(honest._ctx.view)
    honest.sync._start_sessions(ids[VICTIM], ("private_keys",), cluster.now)
    cluster._collect(HONEST)
    cluster.run_for(0.006)  # the opening reached the victim, which answered it
    waiting = liar.open("private_keys", 0)
    assert liar.replies(waiting) == [] and victim.anti_entropy.waiting == 1
    if revoked:
        grant(cluster, LIAR)
    cluster.run_for(15)
    replies = liar.replies(waiting)
    if revoked:
        assert [type(m) for m in replies] == [ReconcileAbort]
    else:
        assert liar.session_records(waiting) == set(PRIVATE_KEYS)


@pytest.mark.parametrize("revoked", [True, False])
def test_a_cut_session_is_resumed_only_while_the_liar_is_granted(revoked):
    cluster, liar = liar_cluster(private_keys=True)
    victim = cluster.nodes[VICTIM]
    victim.sync._start_sessions(liar.node_id, ("private_keys",), cluster.now)
    cluster._collect(VICTIM)
    cluster.run_for(0.01)
    victim.connection_lost(cluster.configs[LIAR].listen, cluster.now)
    cluster._collect(VICTIM)
    if revoked:
        grant(cluster, LIAR)
    since = cluster.now
    cluster.run_for(RESUME_AFTER_S + 1)
    resumed = [m for t, _, m in liar.inbox if t >= since and isinstance(m, ReconcileOpen)
               and m.dataset == "private_keys"]
    assert len(resumed) == (0 if revoked else 1)


# --- receiving side ---------------------------------------------------------------------------


def held(cluster: Cluster, index: int) -> dict[str, set[str]]:
    """Dataset -> live keys, on member `index`, of every dataset a test here writes."""
    store = cluster.stores[index]
    return {name: {r.key for r in store.replicated(name) if r.value is not None}
            for name in ("consumers", "groups", "private_keys", "web_messenger")}


def test_a_liars_records_pass_every_check_on_every_path_in():
    """Pushes (a handoff is one), a session the liar opens, and its answer to a session the
    victim opens: each refuses what the liar may not write (private keys, not granted),
    secret key material outside private_keys, node-local data, and a stale private key
    over its deletion; each takes what the liar may write (the positive control)."""
    cluster, liar = liar_cluster(content_check())  # admitted only
    victim = cluster.nodes[VICTIM]
    secret = split_keys(generate_key("Mallory <mallory@example.org>"))[0].secret_key
    cluster.delete(VICTIM, "private_keys", PRIVATE_KEYS[0])  # a revoked key
    cluster.run_for(1)
    stale = next(r for r in cluster.stores[HONEST].replicated("private_keys")
                 if r.key == PRIVATE_KEYS[1])  # as the liar might have kept it, then deleted
    cluster.delete(VICTIM, "private_keys", PRIVATE_KEYS[1])
    cluster.run_for(1)
    before = held(cluster, VICTIM)
    stamp = Version(int(cluster.now * 1000), 0, liar.node_id)
    victim_id = victim.node_id
    _, liar_sign = cluster.identities[LIAR]

    def plain(dataset, key, value):
        return Record(dataset, key, encode_value(value), stamp)

    refused = [
        sign_record(liar_sign, "private_keys", "pk-liar", {"secret_key": b"x"}, stamp),
        sign_record(liar_sign, "private_keys", PRIVATE_KEYS[2], {"secret_key": b"x"},
                    Version(stamp.wall_ms, 0, victim_id)),  # posing as the victim's write
        sign_record(liar_sign, "private_keys", PRIVATE_KEYS[0], {"secret_key": b"x"}, stamp),
        plain("groups", "hex-secret", {"n": secret.hex()}),
        plain("consumers", "c-secret", {"cert": secret}),
        plain("web_messenger", "box-secret", {"body": secret}),
        plain("network", "liar", {"listen": "0.0.0.0"}),
    ]
    liar.send(Push(1, (*refused, stale, plain("groups", "by-push", {"n": 1}))))
    acks = [m for _, _, m in liar.inbox if isinstance(m, PushAck) and m.push_id == 1]
    assert [a.refused for a in acks] == [tuple(range(len(refused)))]

    # In a session the liar opens: records ride along with its turn.
    for dataset, bad in (("groups", refused[3]), ("consumers", refused[4])):
        session = liar.open(dataset, 1000)
        cluster.run_for(0.1)
        (turn,) = liar.replies(session)
        ok = plain(dataset, f"{dataset}-by-session", {"n": 2})
        liar.send(ReconcileTurn(session, 2, False, liar_answer(turn), (bad, ok)))
    # In its answer to a session the victim opens (an empty store: "send me all").
    liar.inbox.clear()
    started = victim.repair(cluster.now, peer=liar.node_id, dataset="groups")
    cluster._collect(VICTIM)
    cluster.run_for(0.1)
    answer = Entry(None, FINGERPRINT, 0, 0)
    liar.send(ReconcileTurn(started.sessions[0], 1, False, encode_entry(b"", answer),
                            (refused[3], plain("groups", "by-answer", {"n": 3}))))
    cluster.run_for(1)
    after = held(cluster, VICTIM)
    assert after == {**before, "groups": before["groups"] | {"by-push", "groups-by-session",
                                                             "by-answer"},
                     "consumers": before["consumers"] | {"consumers-by-session"}}
    assert not list(cluster.stores[VICTIM].scan("network"))


def test_a_liar_cannot_smuggle_another_dataset_or_local_data_into_a_session():
    cluster, liar = liar_cluster()
    before = held(cluster, VICTIM)
    stamp = Version(int(cluster.now * 1000), 0, liar.node_id)
    session = liar.open("groups", 1000)
    cluster.run_for(0.1)
    (turn,) = liar.replies(session)
    smuggled = Record("web_messenger", "box-smuggled", encode_value({"n": 1}), stamp)
    liar.send(ReconcileTurn(session, 2, False, liar_answer(turn), (smuggled,)))
    liar.open("network", 0)  # node-local: no session, and the liar is cut off
    cluster.run_for(1)
    assert held(cluster, VICTIM) == before
    refusals = [e for i, e in cluster.reported if i == VICTIM and isinstance(e, PeerRefused)]
    assert [e.peer for e in refusals] == [liar.node_id] * 2
    assert "another session" in refusals[0].reason and "unknown dataset" in refusals[1].reason


# --- membership lies ----------------------------------------------------------------------------


def test_a_false_death_claim_wins_the_liar_no_mailbox():
    """A liar granted WEP owns some mailboxes. It tells the victim that member 1, alive and
    well, is dead (one gossip message at member 1's own incarnation, which a suspect or dead
    claim may carry), and at once claims an empty store over the mailboxes: were member 1's
    place given to the liar on its word alone, every mailbox the victim shares with member 1
    would be the liar's for the moment before member 1 refutes."""
    cluster, liar = liar_cluster(wep=True)
    ids = [node.node_id for node in cluster.nodes]
    shared = {m for m in MAILBOXES if {ids[VICTIM], ids[LIAR]} <= owners(m, ids)}
    assert shared
    incarnation = cluster.nodes[VICTIM].membership.member(ids[HONEST]).incarnation
    liar.send(Gossip(Updates(dead=(Dead(ids[HONEST], incarnation, liar.node_id),))))
    session = liar.open("web_messenger", 0)
    cluster.run_for(5)
    assert liar.session_records(session) <= shared
    everything = liar.records()
    assert everything.get("web_messenger", set()) <= {
        m for m in MAILBOXES if ids[LIAR] in owners(m, ids)}
    assert cluster.nodes[VICTIM].membership.member(ids[HONEST]).state == "alive"


def test_a_refusal_tells_the_liar_nothing_of_the_private_keys_held():
    """Were a private key the victim holds newer acknowledged as held, and one it lacks
    refused, one push per fingerprint would tell a member not granted private keys which
    keys are held, and (by the versions it names) how new each one is."""
    cluster, liar = liar_cluster()  # admitted only
    _, liar_sign = cluster.identities[LIAR]
    probes = [sign_record(liar_sign, "private_keys", key, {"secret_key": b"x"},
                          Version(1, 0, liar.node_id))  # older than anything held
              for key in (PRIVATE_KEYS[5], "pk-nonexistent")]
    liar.send(Push(7, tuple(probes)))
    acks = [m.refused for _, _, m in liar.inbox if isinstance(m, PushAck)]
    assert acks == [(0, 1)]
