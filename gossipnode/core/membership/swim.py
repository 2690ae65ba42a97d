"""The membership core: SWIM failure detection with the Lifeguard refinements, sans-IO.

Theory of operation (SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018; memberlist).
`Membership` is the one object the node holds; it checks each message's shape (checks.py)
and hands it to the part whose concern it is, each headed by its own rules:
- state.py: the member table and SWIM's precedence by incarnation, over its parts:
  arrivals.py (new members confirmed before they count, pending.py; names unique,
  names.py), claims.py (suspect and dead claims, bounded by what the subject signed),
  verified.py (signatures made, checked, and cached once verified), local_statements.py
  (our own alive statement, and the refutation of what is said about us).
- probing.py: the probe cycle, suspicion from failed probes (none from a probe whose timers
  ran late); relaying.py: indirect probes (only to known members' signed addresses,
  bounded per requester); confirming.py: confirmation pings that announce us.
- dissemination.py: piggybacked statements and gossip rounds, the dead included; news
  forwarded at once rather than at the next round; a refutation told to the accuser.
- sync.py: join, periodic push-pull, reconnecting to the dead.
- roots.py: this member's digest roots, piggybacked first-hand on pings, acks and
  push-pulls, and the roots the others advertised (core/cluster_view.py groups them).
- forced.py: force-leave bounds from administrator-signed records (`set_force_left`).
- outbox.py: the events, counters, broadcast queue and timers all the parts share.
- commands.py: what `Membership` is told to do (join, leave, force-leave, tags, roots,
  admission changed); queries.py: what it answers about the cluster (snapshots, counters,
  roots).
- messages.py: the statements and messages; signing.py: the bytes a member signs.

Leave signs `left` and spreads it; the shell may exit once `next_deadline()` is None
(commands.py rule 2). Dead and left members are forgotten `reap_after_s` after they went.

Incarnations: the shell passes the incarnation to start with and must pass a higher one
after a restart (persist `local_member.incarnation`, or use wall-clock milliseconds, which
only grow). Should it not, the node still recovers: a statement about itself from its
former life makes it refute with a higher incarnation.

Sender identity: `receive(sender, ...)` takes the node id proven by the secure channel.
Admission: `admitted(node_id)` says whether a node id may be a member at all (default: all
may); a member it refuses stays in the bounded pending set, given no data. When the answer
may have changed, the shell calls `admission_changed`: members now refused are set aside
into the pending set.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping

from ...config import MembershipConfig
from ..errors import LocalProtocolError
from ..events import Address
from ..records import NODE_ID_BYTES
from .awareness import Awareness
from .checks import check_message, check_name, check_tags, tags_tuple
from .commands import MembershipCommands
from .dissemination import GOSSIP, Disseminator
from .members import DEAD
from .messages import Ack, Alive, Nack, Ping, PingRequest, PushPull, Roots
from .outbox import Outbox
from .probing import PROBE, Prober
from .queries import MembershipQueries
from .roots import RootAdverts
from .state import MemberTable
from .sync import PUSH_PULL, RECONNECT, Sync, push_pull_interval_s

__all__ = ["Membership", "push_pull_interval_s"]

# handle_timer runs due timers in passes (a timer may set another already due); this many
# passes is far beyond any honest chain and stops a bug from looping forever.
TIMER_PASSES_MAX = 64


def _all_admitted(node_id: bytes) -> bool:
    return True


class Membership(MembershipCommands, MembershipQueries):
    """One member's view of the cluster. See the module docstring for the parts; what it
    answers about the cluster is in queries.py, what it is told to do in commands.py."""

    def __init__(
        self,
        config: MembershipConfig,
        *,
        node_id: bytes,
        name: str,
        address: Address,
        tags: Mapping[str, str],
        incarnation: int,
        rng: random.Random,
        now: float,
        sign: Callable[[bytes], bytes],
        verify: Callable[[bytes, bytes, bytes], bool],
        admitted: Callable[[bytes], bool] = _all_admitted,
        root_datasets: Iterable[str] = (),
    ) -> None:
        """`root_datasets`: the dataset names whose roots members may advertise (roots.py);
        others are dropped on receipt."""
        if len(node_id) != NODE_ID_BYTES:
            raise LocalProtocolError(f"a node id is {NODE_ID_BYTES} bytes")
        if incarnation < 0:
            raise LocalProtocolError("incarnation must not be negative")
        for setting in ("probe_interval_s", "gossip_interval_s", "push_pull_interval_s"):
            if not getattr(config, setting) > 0:
                raise LocalProtocolError(f"membership.{setting} must be positive")
        check_name(name, LocalProtocolError)
        pairs = tags_tuple(tags)
        check_tags(pairs, config.tags_bytes_max, LocalProtocolError)
        self._config = config
        self._node_id = node_id
        self._admitted = admitted
        self._outbox = Outbox()
        self._timers = self._outbox.timers
        self._awareness = Awareness(config.awareness_max)
        self._table = MemberTable(
            config,
            node_id=node_id,
            name=name,
            address=address,
            tags=pairs,
            incarnation=incarnation,
            now=now,
            sign=sign,
            verify=verify,
            admitted=admitted,
            outbox=self._outbox,
            awareness=self._awareness,
            on_new_member=lambda member: self._prober.probe_soon(member),
            on_pending=lambda member, at: self._prober.confirmations.confirm(member, at),
        )
        self._adverts = RootAdverts(self._outbox, root_datasets)
        # Random phases, so that members started together do not probe in lockstep.
        parts = {"rng": rng, "table": self._table, "outbox": self._outbox, "now": now}
        self._dissemination = Disseminator(config, **parts)
        self._prober = Prober(
            config, awareness=self._awareness, piggyback=self._dissemination.piggyback,
            roots=self._roots_for, **parts,
        )
        self._sync = Sync(config, roots=self._roots_for, **parts)
        # Set by leave(): we announced our leave and only finish spreading it.
        self.left = False

    def _roots_for(self, node_id: bytes, now: float, answering: bool = False) -> Roots:
        if node_id == self._node_id:
            return ()
        entry = self._table.members.get(node_id)
        return self._adverts.advert_for(node_id, entry, now, answering=answering,
                                        pending=entry is None and node_id in self._table.pending)

    # ---- inputs -----------------------------------------------------------------------

    def _held_alive(self, node_id: bytes) -> Alive | None:
        entry = self._table.members.get(node_id)
        return None if entry is None else entry.alive

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """Handle one message from `sender` (the node id the secure channel proved).

        Raises:
            RemoteProtocolError: a malformed message; nothing was applied. Statements with bad
                signatures are refused one by one (PeerRefused events), the rest applied.
        """
        check_message(message, self._config, self._held_alive)
        self._outbox.statistics[f"received_{type(message).__name__}"] += 1
        held = self._table.members.get(sender)
        if held is not None and held.state == DEAD and sender != self._node_id:
            self._dissemination.dead_spoke(sender, now)  # a partition healed, likely
        if not isinstance(message, Nack):
            updates = message.state if isinstance(message, PushPull) else message.updates
            incarnation = self._table.local.incarnation
            self._table.apply(updates, sender, now, from_push_pull=isinstance(message, PushPull))
            # Answered: whoever made us refute, and whoever claims about us what we refuted
            # already (it missed the refutation, and would hold us dead until a push-pull).
            current = self._table.local.incarnation
            if current > incarnation or ((updates.suspect or updates.dead) and any(
                claim.node_id == self._node_id and claim.incarnation < current
                for claim in (*updates.suspect, *updates.dead)
            )):
                self._dissemination.answer_accuser(sender, now)
        # After the statements: a suspect or dead sender whose message carries its
        # refutation is alive again by now, and is not told a claim it has just answered
        # (each such stale notice drew a second refutation message back after a heal).
        self._table.arrivals.heard_from(sender, now)
        roots = getattr(message, "roots", ())
        entry = self._table.members.get(sender)
        if roots and entry is not None and sender != self._node_id:
            self._adverts.receive(entry, roots, now)
        if isinstance(message, Ping):
            self._prober.on_ping(sender, message, now)
        elif isinstance(message, Ack):
            self._prober.on_ack(sender, message, now)
        elif isinstance(message, PingRequest):
            self._prober.relays.on_ping_request(sender, message, now)
        elif isinstance(message, Nack):
            self._prober.on_nack(sender, message)
        elif isinstance(message, PushPull):
            self._sync.on_push_pull(sender, message, now)
        self._dissemination.forward_news(now, sender)

    def handle_timer(self, now: float) -> None:
        """Run every timer due at `now`."""
        for _ in range(TIMER_PASSES_MAX):
            due = self._timers.pop_due(now)
            if not due:
                return
            for key in due:
                self._run_timer(key, now)
            self._dissemination.forward_news(now)
        raise AssertionError("timers keep falling due: a timer sets itself in the past")

    def _run_timer(self, key: object, now: float) -> None:
        if key == PROBE:
            self._prober.tick(now)
            self._dissemination.probe_the_dead(now)
        elif key == GOSSIP:
            self._dissemination.tick(now)
        elif key == PUSH_PULL:
            self._sync.tick(now)
        elif key == RECONNECT:
            self._sync.reconnect_tick(now)
        else:
            kind, value = key
            if kind == "probe_timeout":
                self._prober.timeout(value)
            elif kind == "relay":
                self._prober.relays.timeout(value)
            elif kind == "suspicion":
                self._table.claims.suspicion_timeout(value, now)
                entry = self._table.members.get(value)
                if entry is not None and entry.state == DEAD:
                    self._dissemination.tell_the_dead(entry)
            else:
                assert kind == "reap", key
                self._table.reap(value, now)
