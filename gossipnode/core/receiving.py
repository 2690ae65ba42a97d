"""Receiving: one reconciliation message from a peer taken through its session, and the
records it brings checked before they are applied (sync.py rule 3).

Of the records a message brings, one held exactly (another session or a push brought it) is
a no-op; one that admission refuses is reported against the sender (`NodeContext.refuse`);
one outside this node's own scope is dropped; the rest are applied together and not pushed
onwards (applying.py rule 4). The session's replies go back to the sender, and a completed
session marks the node synced. Refusing a quarantined node's sessions (sync.py rule 2) and
starting the sessions that waited (sync.py rule 7) are the scheduler's.
"""

from __future__ import annotations

from collections.abc import Callable

from .admission import Admission
from .anti_entropy import AntiEntropy
from .context import NodeContext
from .lifecycle import Lifecycle
from .records import Record

__all__ = ["Apply", "Receiving"]

# (records, source, now): apply records a session brought.
Apply = Callable[[list[Record], bytes | None, float], object]


class Receiving:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, anti_entropy: AntiEntropy,
                 admission: Admission, apply: Apply) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._anti_entropy = anti_entropy
        self._admission = admission
        self._apply = apply

    def receive(self, sender: bytes, message: object, now: float) -> None:
        """One reconciliation message from `sender`, of a session either end opened."""
        ctx = self._ctx

        def absorb(received: list[Record]) -> None:
            accepted = []
            held = ctx.store.get_many((r.dataset, r.key) for r in received)  # read at once
            for record in received:
                stored = held.get((record.dataset, record.key))
                if stored == record:
                    continue  # held exactly (another session or a push brought it): no-op
                reason = self._admission.refusal(sender, record, stored)
                if reason is None and ctx.view.holds(ctx.node_id, record.dataset, record.key):
                    accepted.append(record)
                elif reason is not None:
                    ctx.refuse(sender, f"{record.dataset}/{record.key}: {reason}")
            self._apply(accepted, sender, now)

        replies, _, completed = self._anti_entropy.receive(sender, message, ctx.view, now,
                                                           absorb=absorb)
        for reply in replies:
            ctx.send(sender, reply)
        if completed:
            self._lifecycle.synced()
