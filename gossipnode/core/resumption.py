"""The resumption of reconciliation sessions cut short (sync.py rule 5).

A session cut because its connection was lost or because it stalled (anti_entropy.py rule 6)
is opened again with the same peer over the same datasets `RESUME_AFTER_S` later, by whichever
end saw the cut, rather than at the next round: after a heal, links that overflow under the
burst of pushes would otherwise leave the two sides apart for a whole interval.

1. The cuts of one peer are gathered under one timer, ("resume", peer); what is cut while it
   is set joins the same resumption.
2. The wait doubles with each resume that a completed session with the peer did not follow;
   after `RESUMES_MAX` of them the regular rounds take over.
3. A peer no longer live is forgotten when its timer falls due; a quarantined node resumes
   nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from .anti_entropy import AntiEntropy
from .context import NodeContext
from .lifecycle import Lifecycle

__all__ = ["RESUMES_MAX", "RESUME_AFTER_S", "TIMER_RESUME", "Resumption"]

# The node's timer key of the resumption of cut sessions with a peer: ("resume", peer).
TIMER_RESUME = "resume"
# A cut session is opened again after this: past the links' dial backoff
# (driving.DIAL_BACKOFF_S), so the new session goes over a new connection at once, and
# short next to the 3 s an operator expects a healed cluster to take to agree.
RESUME_AFTER_S = 0.5
# Resumes in a row with one peer without a completed session between them (rule 2):
# 0.5 + 1 + 2 + 4 s of waits cover a link that keeps failing for several seconds; a peer
# that still cannot finish one is left to the regular rounds.
RESUMES_MAX = 4

# (peer, datasets, now): open the scheduler's sessions.
StartSessions = Callable[[bytes, Sequence[str], float], None]


class Resumption:
    def __init__(self, ctx: NodeContext, lifecycle: Lifecycle, anti_entropy: AntiEntropy,
                 start_sessions: StartSessions) -> None:
        self._ctx = ctx
        self._lifecycle = lifecycle
        self._anti_entropy = anti_entropy
        self._start_sessions = start_sessions
        # Per peer, the datasets of its cut sessions waiting to be opened again, and
        # (resumes in a row, time of the last) for the backoff.
        self._to_resume: dict[bytes, set[str]] = {}
        self._resumes: dict[bytes, tuple[int, float]] = {}

    def cut(self, now: float) -> None:
        """Schedule the resumption of the sessions cut since the last call (rules 1, 2)."""
        ctx = self._ctx
        for peer, datasets in self._anti_entropy.take_cut().items():
            attempts, last = self._resumes.get(peer, (0, -math.inf))
            synced_at = self._anti_entropy.peer_sync(peer).synced_at
            if synced_at is not None and synced_at >= last:
                attempts = 0  # a session completed since the last resume: start afresh
            if attempts >= RESUMES_MAX:
                ctx.counters["sessions_resume_given_up"] += len(datasets)
                continue
            self._to_resume.setdefault(peer, set()).update(datasets)
            key = (TIMER_RESUME, peer)
            if key not in ctx.timers:
                ctx.timers.set(key, now + RESUME_AFTER_S * 2 ** attempts)
            self._resumes[peer] = (attempts, last)

    def due(self, peers: Iterable[bytes], now: float) -> None:
        """The resumptions whose timers fell due (rule 3)."""
        ctx = self._ctx
        for peer in peers:
            datasets = self._to_resume.pop(peer, set())
            attempts, _ = self._resumes.get(peer, (0, now))
            if not ctx.view.live(peer):
                self._resumes.pop(peer, None)  # gone: nothing to resume, nothing to remember
                continue
            self._resumes[peer] = (attempts + 1, now)
            if not datasets or self._lifecycle.quarantined():
                continue
            ctx.counters["sessions_resumed"] += len(datasets)
            self._start_sessions(peer, sorted(datasets), now)
