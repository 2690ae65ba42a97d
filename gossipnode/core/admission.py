"""Admission: what this node lets into its store, from a local write or from a peer, and the
hybrid logical clock that stamps local writes and observes remote ones.

Rules:
1. A local write is checked before it is stamped: a value is encoded bytes; no replicated
   write while quarantined; a private key only on an eligible member; the catalog and the
   limits (`check_record`); then the content check (no secret key material outside the
   datasets meant for it, values are CBOR maps). A refused write raises LocalProtocolError.
2. Containment (Invariant 2), receiving side: a record from a peer is refused when this node
   may not hold it (node-local datasets always; private keys unless eligible; mailboxes
   unless it runs WEP with replication on), when it breaks the catalog or limits, or when
   the content check rejects it. Each refusal is reported (PeerRefused) and counted.
3. Authority (core/authority.py, authorization.py): a record from a peer that is not
   admitted is refused (administrative records excepted: their signature speaks for
   them), and so is a signed-dataset record whose signature or origin's grants do not hold.
   A local write of an administrative record is refused under administrators (it comes
   signed from the CLI: `admit_signed`); a local private key is signed with this node's key.
   The content check is skipped for a record this node holds already, exactly (same version,
   same value): it was checked when it was stored, nothing new would be stored, and in a
   cluster where every write reaches a member twice (a push and a forward, or a push and a
   reconciliation) that halves the check's cost.
4. Every admitted remote record moves the clock forward (`HybridClock.observe`), which also
   refuses a version too far in the future (`clock_drift_max_s`).
5. Stamps come from the injected wall clock (`NodeContext.wall_ms`), never from `now`:
   the monotonic time of the inputs has no meaning on another node.
6. Containment of what is held: whether a record from a peer is refused never depends on
   what this node holds under its key, but for the content check skipped on a record held
   exactly (rule 3), which passed that check when it was stored. A member that may not
   write a key learns nothing from the refusal (core/handoff.py rule 4 removes, on the
   sender, what no one can accept any more).
7. No resurrection (Invariant 5): a record that passes every other check is refused, last,
   when it is a collected delete replayed (core/replays.py: older than the tombstone
   horizon, nothing held under its key, and this node settled in the dataset). It is
   reported and counted like any refusal (and in `replays_refused`), but a push's answer
   lists it as taken (`screen`), as it would a key held: under rule 6 the answer must not
   tell whether this node holds the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .authority import Authority
from .authorization import local_write_check, peer_refusal, sign_local
from .catalog import dataset as lookup_dataset
from .context import NodeContext
from .errors import LocalProtocolError, ProtocolError
from .hlc import HybridClock
from .lifecycle import Lifecycle
from .records import Record, Version, check_record
from .replays import ReplayGuard
from .scopes import PRIVATE_KEYS, WEB_MESSENGER

__all__ = ["REPLAYED", "Admission", "ContentCheck"]

ContentCheck = Callable[[Record], str | None]


class _Unread:
    """The stored record was not read yet (`refusal`)."""


_UNREAD = _Unread()
# The reason given for a replay refused (rule 7).
REPLAYED = ("older than the tombstone horizon and neither held nor deleted here: a delete "
            "collected long ago, replayed")


class Admission:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle,
                 content_check: ContentCheck | None, authority: Authority,
                 sign: Callable[[bytes], bytes]) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._content_check = content_check
        self._authority = authority
        self._sign = sign
        self.replays = ReplayGuard(ctx, lifecycle)
        self.clock = HybridClock(
            ctx.node_id, int(ctx.config.replication.clock_drift_max_s * 1000)
        )

    def restarted(self, newest: Version | None) -> None:
        """After a restart the wall clock may be behind what we stamped before."""
        if newest is not None:
            self.clock.observe(newest, max(newest.wall_ms, self._ctx.wall_ms()))

    def prepare(self, dataset: str, key: str, value: bytes | None) -> Record:
        """Check a local write and stamp it (rule 1). Raises LocalProtocolError."""
        if value is not None and not isinstance(value, bytes):
            raise LocalProtocolError("the value must be encoded bytes (a CBOR map)")
        info = lookup_dataset(dataset)
        if info.replicated and self._lifecycle.quarantined():
            raise LocalProtocolError(
                "this node is quarantined (away longer than the tombstone grace period); "
                "run `gossipnode reseed` before writing replicated data"
            )
        ctx = self._ctx
        if dataset == PRIVATE_KEYS and not ctx.view.private_keys_eligible(ctx.node_id):
            raise LocalProtocolError(
                "this node may not hold private keys (its private_keys tag or the cluster "
                "policy says no); write them on an eligible member"
            )
        local_write_check(dataset, self._authority)
        record = Record(dataset, key, value, self.clock.stamp(ctx.wall_ms()))
        check_record(record, ctx.config.limits)
        if value is not None and self._content_check is not None:
            reason = self._content_check(record)
            if reason is not None:
                raise LocalProtocolError(reason)
        return sign_local(record, self._sign)

    def admit_signed(self, record: Record) -> None:
        """Check a record signed elsewhere (an administrative record the CLI signed) as a
        peer's would be, but for the sender. Raises LocalProtocolError."""
        try:
            check_record(record, self._ctx.config.limits)
            reason = self._authority.refusal(record, self._ctx.view.policy.granted)
            if reason is None and record.value is not None and self._content_check is not None:
                reason = self._content_check(record)
            if reason is not None:
                raise LocalProtocolError(reason)
            self.clock.observe(record.version, self._ctx.wall_ms())
        except ProtocolError as error:
            raise LocalProtocolError(str(error)) from None

    def screen(self, sender: bytes,
               records: Sequence[Record]) -> tuple[list[Record], list[int]]:
        """Records from `sender`: (those admitted, indices of those refused). Each refusal
        is reported as PeerRefused; a replay refused is not listed (rule 7)."""
        accepted, refused = [], []
        # What this node holds of them, read at once (rules 2 and 3 compare with it).
        held = self._ctx.store.get_many((r.dataset, r.key) for r in records)
        for index, record in enumerate(records):
            reason = self.refusal(sender, record, held.get((record.dataset, record.key)))
            if reason is None:
                accepted.append(record)
                continue
            if reason is not REPLAYED:
                refused.append(index)
            self._ctx.refuse(sender, f"{record.dataset}/{record.key}: {reason}")
        return accepted, refused

    def refusal(self, sender: bytes, record: Record,
                stored: Record | _Unread | None = _UNREAD) -> str | None:
        """Why this node must not store a record from `sender` (rules 2, 3 and 7), or None.
        `stored`: what this node holds under the record's key (None: nothing), if the
        caller read it already."""
        ctx = self._ctx
        if isinstance(stored, _Unread):
            stored = ctx.store.get(record.dataset, record.key)
        try:
            info = lookup_dataset(record.dataset)
            if not info.replicated:
                return "node-local data is never accepted from a peer"
            check_record(record, ctx.config.limits)
            # Rule 6: judged whatever this node holds under the key (a shortcut for a key
            # held newer answered "held" to a sender not granted private keys: whether we
            # hold it, and how new it is, for every key it cared to name).
            reason = peer_refusal(sender, record, ctx.view, self._authority)
            if reason is not None:
                return reason
            if record.dataset == PRIVATE_KEYS and not ctx.view.private_keys_eligible(
                ctx.node_id
            ):
                return "this member may not hold private keys"
            if record.dataset == WEB_MESSENGER and not (
                ctx.view.policy.wep_replication and ctx.view.runs_wep(ctx.node_id)
            ):
                return "this member does not hold WEP mailboxes"
            if (record.value is not None and self._content_check is not None
                    and not _held_exactly(stored, record)):
                reason = self._content_check(record)
                if reason is not None:
                    return reason
            if self.replays.replayed(record, stored):  # rule 7, after every other check
                return REPLAYED
            self.clock.observe(record.version, ctx.wall_ms())
        except ProtocolError as error:
            return str(error)
        return None


def _held_exactly(current: Record | None, record: Record) -> bool:
    return (current is not None and current.version == record.version
            and current.value == record.value)
