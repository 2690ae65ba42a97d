"""Digest roots, piggybacked first-hand: what each member says its data looks like, so that
any member can tell which members hold identical data (core/cluster_view.py groups them).

Rules:
1. A member advertises only its own roots (`set_local`: per dataset, the root's first
   ROOT_BYTES bytes and when it last changed), on the Ping, Ack and PushPull it sends
   anyway, to a member in its table when that member has not had the current roots (they
   changed since, or the datasets it may hear did) or had them ROOTS_REFRESH_S ago or more
   (a message lost on the way is made good). A quiet cluster pays one advertisement per
   pair and refresh interval. A pending member (pending.py) is sent them on each
   confirmation ping, unrecorded: the first exchange with a new member carries both ends'
   roots, so an immediate reconciliation with it (core/sync.py rules 4 and 8) opens no
   session over data that agrees.
2. A root travels with its age (milliseconds on the sender's monotonic clock), never a
   time: the receiver places the change on its own clock (`now - age`), so no two clocks
   are compared.
3. Roots are taken only from the sender the channel proved, about itself, and only from a
   member in the table (not pending, not ourselves): nobody can speak for another member,
   so nothing needs a signature. They are forgotten with the member (reaped).
4. An advertisement's shape is checked before anything is applied (checks.check_roots,
   a RemoteProtocolError); an entry naming a dataset this node does not know is dropped and
   counted (`roots_unknown`), the rest kept.
5. An advertisement names every dataset its sender holds that the recipient may hear
   (`audience`, set by core/cluster_view.py: the datasets the recipient holds whole in the
   sender's view), never one it is not granted. Per dataset, the root that changed later
   wins: an advertisement overtaken on another connection by a newer one does
   not turn the view back.
6. Every member hears every other member's roots within one probe cycle (each pings each,
   and each answers) plus the refresh: `stale_after_s` is twice that, for one lost message.
7. Roots answer roots: a Ping or a push-pull opening that carries the sender's roots is
   answered (the Ack, the answer) with ours, owed or not (`answering`). So a member that
   needs a peer's current roots (after the peer's return, core/immediate_rounds.py rule 5)
   gets them in one round trip by sending its own (`ask`: owed again, at once). An Ack
   answers nothing, so no exchange goes on; a steady cluster pays what it paid, one
   advertisement each way per pair and refresh interval, only in step.
8. A member's roots reach a seed it joins through in the third message of the join's
   push-pull (core/membership/sync.py rule 1), not in the opening: the opening goes to an
   address, and until the answer proves who holds it, nobody can say which roots it may
   hear.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

from ...config import MembershipConfig
from .members import Entry
from .messages import ROOT_BYTES, DatasetRoot, Roots
from .outbox import Outbox

__all__ = ["ROOTS_REFRESH_S", "AdvertisedRoots", "Audience", "RootAdverts", "stale_after_s"]

# recipient -> the datasets whose roots it may hear from this node (rule 5), or None: all.
Audience = Callable[[bytes], Container[str] | None]


def _everyone(recipient: bytes) -> None:
    return None

# A member re-sends unchanged roots to a member this often (rule 1): a lost message is made
# good within this, at ~100 bytes per pair and interval.
ROOTS_REFRESH_S = 30.0


def stale_after_s(config: MembershipConfig, members: int) -> float:
    """How long after a member's roots last arrived they are stale (rule 6): twice the
    refresh interval plus one probe cycle (`members` probes, at the slowest awareness)."""
    cycle_s = max(1, members) * config.probe_interval_s * (1 + config.awareness_max)
    return 2 * (ROOTS_REFRESH_S + cycle_s)


@dataclass(frozen=True, slots=True)
class AdvertisedRoots:
    """What one member last advertised: dataset -> (root, since when on our clock), and
    when the last advertisement arrived."""

    roots: dict[str, tuple[bytes, float]]
    heard_at: float


class RootAdverts:
    def __init__(self, outbox: Outbox, datasets: Iterable[str]) -> None:
        self._outbox = outbox
        self._known = frozenset(datasets)
        # dataset -> (root, changed at), this node's own; and its version, bumped per change.
        self._local: dict[str, tuple[bytes, float]] = {}
        self._current: dict[str, bytes] = {}  # the same roots without their times
        self._version = 0
        # Per audience (a frozenset, as core/cluster_view.py answers), the names of our
        # datasets it may hear, for the current roots: a few audiences serve every member.
        self._names: dict[frozenset[str], tuple[str, ...]] = {}
        self.audience: Audience = _everyone

    @property
    def local(self) -> dict[str, tuple[bytes, float]]:
        return dict(self._local)

    def set_local(self, roots: dict[str, bytes], now: float) -> None:
        """This node's roots now (dataset -> full root); those that changed date from now."""
        current = {name: root[:ROOT_BYTES] for name, root in roots.items()}
        if current == self._current:
            return
        self._current = current
        self._local = {
            name: (root, self._local[name][1] if self._local.get(name, (None,))[0] == root
                   else now)
            for name, root in sorted(current.items())
        }
        self._version += 1
        self._names = {}

    def advert_for(self, recipient: bytes, entry: Entry | None, now: float, *,
                   pending: bool = False, answering: bool = False) -> Roots:
        """Our roots for a message to `recipient` (its table `entry`, or None), if it is
        owed them, else () (rule 1); only those it may hear (rule 5). A `pending` recipient
        is owed them on every message, and nothing is recorded; so is a message
        `answering` one that carried the recipient's roots (rule 7)."""
        if not self._version or (entry is None and not pending):
            return ()
        heard = self.audience(recipient)
        if heard is None:
            names = tuple(self._local)
        elif type(heard) is frozenset:
            names = self._names.get(heard)
            if names is None:
                names = self._names[heard] = tuple(
                    name for name in self._local if name in heard)
        else:
            names = tuple(name for name in self._local if name in heard)
        if entry is not None:
            sent = entry.roots_sent
            if not answering and sent is not None and sent[0] == (self._version, names) and (
                    now - sent[1] < ROOTS_REFRESH_S):
                return ()
            entry.roots_sent = ((self._version, names), now)
        self._outbox.statistics["roots_sent"] += 1
        local = self._local
        return tuple([DatasetRoot(name, local[name][0], int(max(0.0, now - local[name][1]) * 1000))
                      for name in names])

    @staticmethod
    def ask(entry: Entry) -> None:
        """`entry` is owed our roots again at once, whatever it was sent (rule 7): the
        next message to it carries them, and its answer its own."""
        entry.roots_sent = None

    def receive(self, entry: Entry, roots: Roots, now: float) -> None:
        """Take `entry`'s own advertisement (checked for shape already; rules 3 to 5)."""
        entry.roots_heard_at = now
        # An advertisement names every dataset the sender holds: one it no longer names
        # (it lost its private-keys eligibility, say) is no longer its.
        named = {advertised.dataset for advertised in roots}
        for name in [name for name in entry.roots if name not in named]:
            del entry.roots[name]
        for advertised in roots:
            if advertised.dataset not in self._known:
                self._outbox.statistics["roots_unknown"] += 1
                continue
            since = now - advertised.age_ms / 1000
            held = entry.roots.get(advertised.dataset)
            if held is None or (held[0] != advertised.root and since >= held[1]):
                entry.roots[advertised.dataset] = (advertised.root, since)
        self._outbox.statistics["roots_received"] += 1
