"""One side of an anti-entropy session over one dataset scope (docs/architecture.md).

Theory of operation (range-based reconciliation over `merkle.Digest`, after Negentropy):

1. The initiator opens with its 128-bit root and item count (turn 0). Equal: the responder
   answers with one SKIP and both are done, one round trip.
2. Then the sides take turns. A turn answers every range the other side left open and leaves
   open the ranges it needs answered. For a range the peer sent a FINGERPRINT of, we:
   a. SKIP it if our sum and count are equal;
   b. push all our items in it if the peer has none there (this is the plain copy, streamed
      in capped messages, when a side is empty or far behind);
   c. if we hold exactly one item more and our sum minus theirs is the leaf digest of one of
      our items there, push that item (a lone difference costs no descent at all);
   d. list our item ids (ITEMS) if we hold at most `items_max` items there;
   e. echo our own FINGERPRINT for the same range if the peer holds at most `items_max` items
      there or exactly one more than we do (so that the peer does (c) or (d), which is cheaper
      than splitting);
   f. otherwise split it into `branching` ranges of equal item counts and send each one's
      FINGERPRINT.
   For ITEMS from the peer we push our items it did not list and WANT the ids we lack; for
   WANT we push the wanted items. Differences therefore move record by record: we never send
   a record the peer's ids or sums show it holds.
3. A turn with no FINGERPRINT, ITEMS or WANT left open is the last one: its sender is done when
   it has sent it, its receiver when it has received it.
4. Every message is at most `message_bytes_max` bytes (`message_size`); a long turn is cut into
   messages with `more=True` on all but the last. Pushed records are read through `fetch`
   only when the message that carries them is built, so a streamed copy holds little memory.
5. The session never writes: received records wait in `take_received_records()` for the
   caller, who merges them into its store (last-writer-wins, so a stale or duplicate record
   is harmless) and updates the digest. The digest may change between turns; at worst a
   difference is left for the next session.
6. The peer's ranges must lie inside the ranges we left open, with the modes that answer
   them; counts, ids and sizes are bounded; turns are numbered and at most 2 * rounds_max
   (core/reconcile_incoming.py checks each message, core/reconcile_turns.py each range).
   Anything else raises RemoteProtocolError, fails the session and queues a
   ReconcileAbort for the peer. No answer for `session_timeout_s` fails it too: only a
   message that carries something moves that deadline (an empty `more=True` message counts
   as a turn instead), and no session outlives 2 * rounds_max * session_timeout_s.
7. Differences spread thinly over a large scope (most ranges of the first split differ) are
   found instead by the coded exchange of core/reconcile_coded.py: an estimate, then the
   cells of an invertible Bloom lookup table (core/coded_cells.py) over the whole scope,
   peeled by the receiver, at about 20 bytes per difference whatever the scope's size. Its
   entries cover the whole key space, alone in their turn; every range-descent answer is
   allowed under them, which is how either side falls back to descent.
8. Only the winning version of a key should travel. The caller applies what a message brought
   before the session builds its answer (anti_entropy.py), and with `skip_replaced` an item
   chosen to be pushed whose key now holds another version (the peer's newer one, just
   applied) is not sent: the peer holds that version already. Not for datasets that merge
   versions (the stored one is then the merge, which the peer lacks): their sessions send what
   `fetch` returns.

The answers of rule 2 are core/reconcile_descent.py, those of rule 7 core/reconcile_coded.py,
and how a turn is answered and queued (rules 2, 3 and 7) core/reconcile_turns.py; what the
peer sends is checked and taken in by core/reconcile_incoming.py (rule 6). This module holds
the session's state machine: its creation, its deadlines, and what it hands out.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..config import LimitsConfig, ReconcileConfig
from .errors import LocalProtocolError, RemoteProtocolError
from .merkle import WALL_BYTES, Digest
from .reconcile_coded import CodedAnswers
from .reconcile_descent import DescentAnswers
from .reconcile_incoming import IncomingTurns
from .reconcile_messages import (
    FINGERPRINT,
    FINGERPRINT_MASK,
    REASON_CHARS_MAX,
    SALT_BYTES,
    SKIP,
    Entry,
    FetchMany,
    ReconcileAbort,
    ReconcileMessage,
    ReconcileOpen,
    TurnWriter,
)
from .reconcile_turns import OpenRange, TurnAnswers
from .records import Record

__all__ = ["ReconcileSession"]


class ReconcileSession(IncomingTurns, TurnAnswers, CodedAnswers, DescentAnswers):
    """One side of one session. Create with `initiate` or `respond`; then feed `receive`,
    drain `messages_to_send`, collect `take_received_records`, and drive `handle_timer`.

    Args (of both constructors):
        digest: the local digest of the scope being reconciled; read, never written.
        fetch: the current local record of a key, or None if it is gone or no longer in the
            scope. Only what `fetch` returns is ever sent, so it is where the caller enforces
            containment (a record outside the peer's scope must come back as None).
        config, limits: the node's `reconcile` and `limits` sections.
        fetch_many: reads several keys' records at once (what `fetch` would return for each,
            those found by key); pushed records are then read in batches.
        skip_replaced: an item chosen to be pushed whose key `fetch` finds at another version
            by the time it is sent is not sent (rule 8).

    State: `done` (finished; every difference seen was exchanged), `failed` (a reason, or
    None). Received records are checked for dataset and limits; their scope is for the
    caller to check before applying them.
    """

    def __init__(
        self,
        session: int,
        digest: Digest,
        fetch: Callable[[str], Record | None],
        config: ReconcileConfig,
        limits: LimitsConfig,
        salt: bytes,
        now: float,
        *,
        skip_replaced: bool = False,
        fetch_many: FetchMany | None = None,
    ) -> None:
        self.session = session
        self._skip_replaced = skip_replaced
        self._fetch_many = fetch_many
        self.dataset = digest.dataset
        self.done = False
        self.failed: str | None = None
        self._digest = digest
        self._fetch = fetch
        self._config = config
        self._limits = limits
        self._salt = salt
        self._deadline = now + config.session_timeout_s
        # Whatever the peer sends, the session ends by then: each of its 2 * rounds_max
        # turns may take up to session_timeout_s, and no more.
        self._lifetime_end = now + 2 * config.rounds_max * config.session_timeout_s
        # Messages that carried nothing (no range entry, no record) but said more=True.
        self._empty_messages = 0
        self._bound_bytes_max = WALL_BYTES + limits.key_bytes_max
        self._expected_turn = 0
        self._open: list[OpenRange] = []
        self._open_los: list[bytes] = []
        self._incoming: list[tuple[bytes, Entry]] = []
        self._incoming_lo = b""
        self._received: list[Record] = []
        self._outbox: list[ReconcileMessage] = []
        self._writer: TurnWriter | None = None  # our turn, while it is being sent
        # The peer's coded cells so far (start, size, bytes), while we peel them.
        self._coded_received: list[tuple[int, int, bytes]] = []

    # -- creating --------------------------------------------------------------------------

    @classmethod
    def initiate(cls, session: int, digest: Digest, fetch: Callable[[str], Record | None],
                 config: ReconcileConfig, limits: LimitsConfig, rng: random.Random,
                 now: float, *, skip_replaced: bool = False,
                 fetch_many: FetchMany | None = None) -> ReconcileSession:  # fmt: skip
        """Start a session: its ReconcileOpen is the first of `messages_to_send()`."""
        salt = rng.getrandbits(8 * SALT_BYTES).to_bytes(SALT_BYTES, "big")
        self = cls(session, digest, fetch, config, limits, salt, now,
                   skip_replaced=skip_replaced, fetch_many=fetch_many)
        self._outbox.append(ReconcileOpen(session, self.dataset, salt, digest.root, digest.count))
        self._set_open([OpenRange(b"", None, FINGERPRINT)])
        self._expected_turn = 1
        return self

    @classmethod
    def respond(cls, opening: ReconcileOpen, digest: Digest,
                fetch: Callable[[str], Record | None], config: ReconcileConfig,
                limits: LimitsConfig, now: float, *, skip_replaced: bool = False,
                fetch_many: FetchMany | None = None) -> ReconcileSession:  # fmt: skip
        """Answer a peer's ReconcileOpen; the answer waits in `messages_to_send()`.

        Raises RemoteProtocolError for a malformed opening (no session is made then)."""
        if opening.dataset != digest.dataset:
            raise LocalProtocolError("the opening is for another dataset than the digest")
        cls.check_opening(opening)
        self = cls(opening.session, digest, fetch, config, limits, opening.salt, now,
                   skip_replaced=skip_replaced, fetch_many=fetch_many)
        if opening.root == digest.root and opening.count == digest.count:
            self._queue_turn(1, [Entry(None, SKIP)], [])
        else:
            self._set_open([OpenRange(b"", None, FINGERPRINT)])
            root_low = int.from_bytes(opening.root, "big") & FINGERPRINT_MASK
            self._incoming = [(b"", Entry(None, FINGERPRINT, root_low, opening.count))]
            self._answer(1)
        self._expected_turn = 2
        return self

    # -- inputs ----------------------------------------------------------------------------

    def receive(self, message: ReconcileMessage, now: float) -> None:
        """Take one message of this session from the peer.

        Raises RemoteProtocolError if it breaks the protocol: the session is then failed and
        a ReconcileAbort waits in `messages_to_send()`."""
        if self.done or self.failed is not None:
            return
        try:
            self._receive(message, now)
        except RemoteProtocolError as error:
            self._fail(str(error))
            raise

    def handle_timer(self, now: float) -> None:
        """Abandon the session if the peer has been silent for `session_timeout_s`."""
        if not self.done and self.failed is None and now >= self._deadline:
            self._fail("stalled: no answer within reconcile.session_timeout_s")

    # -- outputs ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return None if self.done or self.failed is not None else self._deadline

    def take_received_records(self) -> list[Record]:
        """Records the peer sent since the last call, for the caller to merge and apply."""
        records, self._received = self._received, []
        return records

    def messages_to_send(self, max_messages: int | None = None) -> list[ReconcileMessage]:
        """Up to `max_messages` messages for the peer (all when None), in order."""
        out: list[ReconcileMessage] = []
        while max_messages is None or len(out) < max_messages:
            if self._outbox:
                out.append(self._outbox.pop(0))
            elif self._writer is not None:
                out.append(self._writer.next_message())
                if not self._writer.pending:
                    self.done = self._writer.final
                    self._writer = None
            else:
                break
        return out

    def _fail(self, reason: str) -> None:
        self.failed = reason
        self._writer = None
        self._outbox = [ReconcileAbort(self.session, reason[:REASON_CHARS_MAX])]
