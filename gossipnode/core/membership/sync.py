"""Full-state sync: join, periodic push-pull, and reconnecting to the dead.

Rules:
1. Join sends a push-pull to one seed, drawn at random, and queues our own alive statement
   for gossip, so that we announce ourselves as well as pull the whole member list at once.
   One seed's full state is enough (the others learn us from our pings and gossip), and
   asking every seed cost each joiner one full state per seed: with 3 seeds, members
   started together at 1,000 pulled 3,000 full states of up to 1,000 statements in their
   first 50 ms. While we know nobody (that seed did not answer), the push-pull timer
   retries every seed, first after `JOIN_RETRY_FIRST_S`, then
   at twice the wait each time up to `join_retry_interval_s`: members started together
   find a seed that came up a moment after them at once, and a member whose seeds are
   down for long costs one failed dial per seed per `join_retry_interval_s`.
   The opening to a seed carries no digest roots (it goes to an address: nobody can say
   yet which roots its holder may hear, roots.py rule 8); once the seed's answer proves who
   it is, our reply to that answer carries the roots it may hear, so that the seed's
   immediate round with us (core/sync.py rules 4 and 8) opens no session over data that
   agrees. The same holds for any exchange whose opening carried none (a seed of rule 4, a
   member held dead of rule 3).
2. Every push-pull interval (longer in large clusters, whose full state is larger) we swap
   full state with one random member, the dead included, so that long partitions heal.
3. After serf's reconnect: every `reconnect_interval_s`, with probability dead / alive, we
   swap full state with one member we believe dead, so that the two sides of a healed
   partition find each other well before the next push-pull. A healthy cluster spends
   nothing on it.
4. No islands: every push-pull interval we also swap full state with one configured seed
   that no member we hold alive or suspect advertises. Joins lost before anyone knew
   anyone can otherwise leave a new cluster in groups that each know somebody, so none
   retries its seeds, and that never meet. A cluster whose seeds are all live members
   spends nothing on it; a seed written differently from the address its member
   advertises costs one push-pull per interval.
5. Each swap is by difference (exchange.py): a summary first, then only the statements
   that differ, so members that agree swap a few bytes per member.
6. A push-pull that wants a reply is answered at the sender's advertised address (the
   sender confirmed itself by sending it, rule 6 of state.py); a sender that was refused
   (its name is taken, or it is not admitted) is answered too, at the address it signed,
   so that it sees the reason.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ...config import MembershipConfig
from ..events import Address
from . import exchange
from .members import ALIVE, DEAD, LEFT, SUSPECT
from .messages import PushPull, Roots
from .outbox import Outbox
from .state import MemberTable

__all__ = ["Sync", "push_pull_interval_s"]

PUSH_PULL = "push_pull"
RECONNECT = "reconnect"
# The first retry of the seeds after a join nobody answered (rule 1). Agents started
# together come up a fraction of a second apart, so a seed that was not listening yet
# usually is half a second later. Above the shell's dial backoff after a failed dial
# (driving.DIAL_BACKOFF_S), so the retry is not dropped by it.
JOIN_RETRY_FIRST_S = 0.5
# Openings without roots whose answers we still expect (rule 1): a join's retry goes to
# every seed at once, and a seed or reconnect push-pull adds one per interval; beyond, the
# oldest are forgotten and their answers get no roots (the next ping carries them).
BARE_OPENINGS_MAX = 16


def push_pull_interval_s(config: MembershipConfig, members: int) -> float:
    """The push-pull interval for `members` members: `push_pull_interval_s`, times
    ceil(log2(n) - log2(threshold)) + 1 above `push_pull_scale_threshold` (memberlist)."""
    interval_s, threshold = config.push_pull_interval_s, config.push_pull_scale_threshold
    if threshold <= 0 or members <= threshold:
        return interval_s
    return interval_s * (math.ceil(math.log2(members) - math.log2(threshold)) + 1)


class Sync:
    def __init__(
        self,
        config: MembershipConfig,
        *,
        rng: random.Random,
        table: MemberTable,
        outbox: Outbox,
        roots: Callable[..., Roots],
        now: float,
    ) -> None:
        self._config = config
        self._rng = rng
        self._table = table
        self._outbox = outbox
        # (recipient, now[, answering]): our digest roots for a push-pull to a member, when
        # it is owed them or the push-pull answers one that carried its roots (roots.py).
        self._roots = roots
        self._seeds: tuple[Address, ...] = ()
        # The salts of our openings that carried no roots, oldest first (rule 1).
        self._bare: OrderedDict[bytes, bool] = OrderedDict()
        # The wait before the next retry of the seeds while we know nobody (rule 1).
        self._join_retry_s = min(JOIN_RETRY_FIRST_S, config.join_retry_interval_s)
        timers = outbox.timers
        timers.set(PUSH_PULL, now + rng.uniform(0.5, 1) * config.push_pull_interval_s)
        timers.set(RECONNECT, now + rng.uniform(0.5, 1) * config.reconnect_interval_s)

    def join(self, seeds: Sequence[Address], now: float) -> None:
        own = self._table.local.address
        self._seeds = tuple(tuple(seed) for seed in seeds if tuple(seed) != own)
        if self._seeds:  # every seed is retried soon if this one does not answer (tick)
            self._outbox.send(self._rng.choice(self._seeds), self._bare_opening())
            self._outbox.broadcasts.push(self._table.local.alive)
            self._join_retry_s = min(JOIN_RETRY_FIRST_S, self._config.join_retry_interval_s)
            self._retry_seeds_later(now)

    def stop(self) -> None:
        self._outbox.timers.cancel(PUSH_PULL)
        self._outbox.timers.cancel(RECONNECT)

    def _opening(self, roots: Roots = ()) -> PushPull:
        return exchange.opening(self._table, self._rng, roots)

    def _bare_opening(self) -> PushPull:
        """An opening without roots, to a seed's address or a member held dead; the reply
        to its answer carries our roots, if owed (rule 1)."""
        opening = exchange.opening(self._table, self._rng)
        self._bare[opening.salt] = True
        while len(self._bare) > BARE_OPENINGS_MAX:
            self._bare.popitem(last=False)
        return opening

    def on_push_pull(self, sender: bytes, message: PushPull, now: float) -> None:
        if not message.reply_wanted:
            entry = self._table.members.get(sender)
            if entry is None or entry.state == LEFT:
                return
            # Our roots if our opening could not carry them (rule 1): only in the answer to
            # such an opening, never in reply to a third message (no exchange goes on).
            bare = self._bare.pop(message.salt, False) if message.salt else False
            roots = self._roots(sender, now) if bare else ()
            rest = exchange.wanted_state(self._table, message, roots)
            if rest is not None:
                self._outbox.send(entry.address, rest, sender)
            return
        entry = self._table.members.get(sender)
        if entry is not None:
            if entry.state != LEFT:
                # Roots answer roots (roots.py rule 7).
                roots = self._roots(sender, now, bool(message.roots))
                reply = exchange.answer(self._table, message, roots)
                self._outbox.send(entry.address, reply, sender)
            return
        # Not a member (refused for its name, not admitted, or over the limit): it still
        # gets our state, so that it sees why (its own refusal of the name's holder).
        own = next((alive for alive in message.state.alive if alive.node_id == sender), None)
        if own is not None:
            self._outbox.send(
                (own.host, own.port), exchange.answer(self._table, message), sender
            )

    def tick(self, now: float) -> None:
        interval_s = push_pull_interval_s(self._config, len(self._table.members))
        self._outbox.timers.set(PUSH_PULL, now + interval_s)
        self._outbox.statistics["push_pulls"] += 1
        others = [
            entry
            for entry in self._table.members.values()
            if entry is not self._table.local and entry.state != LEFT
        ]
        if others:
            self._join_retry_s = min(JOIN_RETRY_FIRST_S, self._config.join_retry_interval_s)
            partner = self._rng.choice(others)
            opening = self._opening(self._roots(partner.node_id, now))
            self._outbox.send(partner.address, opening, partner.node_id)
            unseen = self._unseen_seeds()
            if unseen:
                self._outbox.statistics["seed_push_pulls"] += 1
                seed = self._rng.choice(unseen)
                self._outbox.send(seed, self._bare_opening())
        else:
            if self._seeds:
                self._retry_seeds_later(now)
            for seed in self._seeds:
                self._outbox.send(seed, self._bare_opening())

    def _retry_seeds_later(self, now: float) -> None:
        """Rule 1: the next retry of the seeds, each wait twice the last, up to the cap."""
        self._outbox.timers.set(PUSH_PULL, now + self._join_retry_s)
        self._join_retry_s = min(2 * self._join_retry_s, self._config.join_retry_interval_s)

    def _unseen_seeds(self) -> list[Address]:
        """Seeds that no member we hold alive or suspect advertises (rule 4)."""
        if not self._seeds:
            return []
        seen = {tuple(entry.address) for entry in self._table.members.values()
                if entry.state in (ALIVE, SUSPECT)}
        return [seed for seed in self._seeds if seed not in seen]

    def reconnect_tick(self, now: float) -> None:
        self._outbox.timers.set(RECONNECT, now + self._config.reconnect_interval_s)
        dead = [e for e in self._table.members.values() if e.state == DEAD]
        if not dead:
            return
        alive = sum(1 for e in self._table.members.values() if e.state in (ALIVE, SUSPECT))
        if self._rng.random() < len(dead) / max(1, alive):
            partner = self._rng.choice(dead)
            self._outbox.statistics["reconnects"] += 1
            self._outbox.send(
                partner.address, self._bare_opening(), partner.node_id
            )
