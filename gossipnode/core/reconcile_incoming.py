"""What a reconciliation session takes from its peer (core/reconcile.py rule 6): each
message checked, its records and range entries gathered until the peer's turn ends, and the
turn then answered. `ReconcileSession` inherits it and holds the state it uses.

Rules (anything else raises RemoteProtocolError, and the session fails: `receive`):
1. An opening has a salt and a root of their exact sizes, a count of at most COUNT_MAX and
   a session id under 2**63 (`check_opening`); no session is made for another.
2. After the opening only turns of this session come, each numbered as the peer's next turn
   and none while our own turn is still being sent. A ReconcileAbort ends the session: it
   fails, and nothing more is sent.
3. A message is at most `message_bytes_max` bytes (`message_size`); one that carries a
   single record may be larger, up to `record_bytes_max` and room for its bounds: a record
   larger than a message travels alone.
4. An empty message that says more=True is no progress: it counts as a turn, does not move
   the deadline, and turns and such messages together number at most 2 * rounds_max. Any
   other message moves the deadline to `session_timeout_s` from now, never past the
   session's lifetime (2 * rounds_max * session_timeout_s).
5. Every record is of the session's dataset and within the limits (`check_record`); its
   scope is for the caller to check before it applies it.
6. A turn's range entries strictly increase, none follows the open-ended one, and there are
   at most 2 * (branching + 1) per range we left open, plus one; the turn covers the key
   space to its end. Whether each entry answers a range we left open is checked as it is
   answered (core/reconcile_turns.py).
7. A turn of SKIPs alone is the peer's last: the session is done. Any other is answered.
"""

from __future__ import annotations

from .errors import LocalProtocolError, RemoteProtocolError
from .reconcile_descent import COUNT_MAX
from .reconcile_messages import (
    REASON_CHARS_MAX,
    ROOT_BYTES,
    SALT_BYTES,
    SKIP,
    ReconcileAbort,
    ReconcileMessage,
    ReconcileOpen,
    ReconcileTurn,
    message_size,
    parse_entries,
)
from .records import check_record

__all__ = ["IncomingTurns"]


class IncomingTurns:
    """Taking in the peer's messages, for `ReconcileSession` (its base class). Uses the
    session's `session`, `dataset`, `done`, `failed`, `_config`, `_limits`, `_outbox`,
    `_writer`, `_expected_turn`, `_empty_messages`, `_deadline`, `_lifetime_end`,
    `_bound_bytes_max`, `_received`, `_open`, `_incoming`, `_incoming_lo` and `_answer`."""

    @staticmethod
    def check_opening(opening: ReconcileOpen) -> None:
        """Raises RemoteProtocolError for a malformed opening (before it waits its turn)."""
        if (
            len(opening.salt) != SALT_BYTES
            or len(opening.root) != ROOT_BYTES
            or not 0 <= opening.count <= COUNT_MAX
            or not 0 <= opening.session < 1 << 63
        ):
            raise RemoteProtocolError("malformed reconciliation opening")

    def _receive(self, message: ReconcileMessage, now: float) -> None:
        if isinstance(message, ReconcileAbort):
            self.failed = f"peer abandoned the session: {message.reason[:REASON_CHARS_MAX]}"
            self._outbox.clear()
            return
        if not isinstance(message, ReconcileTurn) or message.session != self.session:
            raise RemoteProtocolError("unexpected message in a reconciliation session")
        if message.turn != self._expected_turn or self._outbox or self._writer is not None:
            raise RemoteProtocolError(f"turn {message.turn} out of order")
        limit = self._config.message_bytes_max
        if len(message.records) == 1:
            # One record may be larger than a message; it then travels alone.
            limit = max(limit, self._limits.record_bytes_max + self._bound_bytes_max + 200)
        if message_size(message) > limit:
            raise RemoteProtocolError(f"reconciliation message over {limit} bytes")
        if message.more and not message.ranges and not message.records:
            # An empty message that promises more is no progress: it counts as a turn, and
            # does not move the deadline (else empty turns keep a session open for ever).
            self._empty_messages += 1
            if self._expected_turn + self._empty_messages > 2 * self._config.rounds_max:
                raise RemoteProtocolError(
                    f"session still open after {self._config.rounds_max} rounds "
                    "(empty messages count)"
                )
            return
        self._deadline = min(now + self._config.session_timeout_s, self._lifetime_end)
        for record in message.records:
            if record.dataset != self.dataset:
                raise RemoteProtocolError(f"record of {record.dataset!r} in another session")
            try:
                check_record(record, self._limits)
            except LocalProtocolError as error:
                raise RemoteProtocolError(f"bad record from peer: {error}") from None
        self._received.extend(message.records)
        entries = parse_entries(message.ranges, self._bound_bytes_max, self._config.items_max)
        entries_max = 2 * (self._config.branching + 1) * max(1, len(self._open)) + 1
        for entry in entries:
            if self._incoming and self._incoming[-1][1].hi is None:
                raise RemoteProtocolError("range entry after the open-ended one")
            if entry.hi is not None and entry.hi <= self._incoming_lo and self._incoming:
                raise RemoteProtocolError("range bounds must strictly increase")
            self._incoming.append((self._incoming_lo, entry))
            self._incoming_lo = entry.hi or b""
            if len(self._incoming) > entries_max:
                raise RemoteProtocolError("more range entries than the open ranges allow")
        if message.more:
            return
        if not self._incoming or self._incoming[-1][1].hi is not None:
            raise RemoteProtocolError("a turn must cover the key space to its end")
        self._expected_turn += 2
        if all(entry.mode == SKIP for _, entry in self._incoming):
            self.done = True  # the peer's last turn: it asked nothing more of us
            self._incoming, self._incoming_lo = [], b""
            return
        self._answer(message.turn + 1)
