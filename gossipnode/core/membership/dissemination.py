"""Dissemination: piggybacked statements and gossip rounds.

Rules:
1. Every accepted change is queued (broadcast.py) and piggybacked on pings, acks and ping
   requests, each statement `retransmit_mult * ceil(log10(n + 1))` times (memberlist).
2. Each gossip interval, while anything is queued, `gossip_fanout` members get a Gossip
   message: the same one, one batch counted once per recipient, so that it is encoded once
   (memberlist takes a batch per recipient; the statements spread alike). The targets are
   drawn from the alive and suspect members and from those we declared dead within
   `dead_gossip_s` (memberlist's GossipToTheDeadTime): a member wrongly declared dead hears
   it and refutes in seconds, not at the next push-pull.
3. When we declare a member dead ourselves, it is told at once (one Gossip carrying the
   statement), for the same reason.
4. After a leave we gossip only while there is something left to tell someone; the
   `left` flag then ends the timer.
5. Every probe interval, one member we hold dead gets its own death notice (one small
   message): alive after all (a partition healed, a pause ended), it refutes at once.
   Gossip queues empty within a second or two, so rule 2 alone would not reach it after a
   partition of more than a few seconds. Members declared dead within `dead_gossip_s`
   are drawn first; otherwise any dead member (until reaped), so that a partition longer
   than that still heals within a few probe intervals rather than waiting for a
   reconnect or a push-pull. Bounded: one notice per probe interval, however many are
   dead (a dial to a member still down costs the shell one failed connect).
6. Whoever made us refute (a suspect or dead claim about us that we accepted) is sent our
   new alive statement at once, directly: the accuser may hold us dead and so neither
   probe nor gossip to us, and would otherwise learn of the refutation only through
   others. One small message per refutation. So is whoever tells us a claim about us that
   we refuted already (it missed the refutation), but once per accuser, incarnation and
   probe interval: an accuser's claims sent before our answer reached it (its gossip
   retransmits the claim several times, its notices cross our answer) need no second
   answer. After a partition every member of one side holds every member of the other
   dead, and one answer per such message was most of the traffic of the heal (8,641 of
   21,711 gossip messages at 100 members); a lost answer is repeated an interval later.
7. News goes on at once: when a message or a timer of ours queues an alive or left
   statement that has not been sent yet (a member's new tags or address, a refutation, a
   leave), a gossip round runs at once, to `gossip_fanout` members other than the one it
   came from, instead of at the next tick. Suspect and dead claims wait for the tick as
   before: on a starved host a false suspicion would otherwise reach every member in
   milliseconds, while the refutation must wait for the starved subject. Spreading the
   news then takes about log(n) message delays, not log(n) gossip intervals (a tag change
   reached all of 50 members in a median of 0.42 virtual seconds over 20 seeds with 1 ms
   links, now 0.07; 45 or more of the 49 others have it within 20 ms). Bounded: such a
   round runs only when no round sent anything within the last `gossip_interval_s`, so at
   most two rounds go out per interval (in a busy cluster, whose ticks send every
   interval, news waits for the tick as before), and it draws on the same retransmit
   count as the ticks, so a statement is sent no more times in all. The ticks keep their
   own random phases, so members the first wave missed (about e**-fanout of them) hear it
   from the many members that then hold it, within a fraction of an interval.
8. A member we hold dead that speaks to us has most likely come back with a partition that
   healed, and the others we hold dead with it: each of them (those declared dead within
   `dead_gossip_s` first, at most HEAL_NOTICES_MAX) gets its death notice at once, instead of
   one per probe interval by rule 5, so that after a heal every member refutes within a
   round trip of the first message across. Bounded: one such sweep per probe interval.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict

from ...config import MembershipConfig
from .members import Entry
from .messages import Dead, Gossip, Updates
from .outbox import Outbox
from .state import MemberTable

__all__ = ["Disseminator"]

GOSSIP = "gossip"
# Death notices one sweep of rule 8 sends: the members of the far side of a partition in a
# small cluster; in a large one, the rest hear the refutations of these by gossip, and rule
# 5 reaches them in turn.
HEAL_NOTICES_MAX = 8
# Accusers remembered as answered (rule 6): one per member we may track, so an honest
# cluster never evicts one it needs; beyond, the oldest are forgotten (answered again).
ANSWERED_MAX = 4096


class Disseminator:
    def __init__(
        self,
        config: MembershipConfig,
        *,
        rng: random.Random,
        table: MemberTable,
        outbox: Outbox,
        now: float,
    ) -> None:
        self._config = config
        self._rng = rng
        self._table = table
        self._outbox = outbox
        self.left = False
        # When a gossip round last sent something (rule 7), or None.
        self._sent_at: float | None = None
        self._swept_at: float | None = None  # the last sweep of rule 8
        # Accuser -> (our incarnation, when) of the last answer it was sent (rule 6).
        self._answered: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        outbox.timers.set(GOSSIP, now + rng.uniform(0, config.gossip_interval_s))

    def retransmit_limit(self) -> int:
        # memberlist: retransmit_mult * ceil(log10(n + 1)) sends per statement.
        return self._config.retransmit_mult * math.ceil(math.log10(len(self._table.members) + 1))

    def piggyback(self, reserved_bytes: int = 0) -> Updates:
        """Queued statements for one message, within `gossip_message_bytes_max` less
        `reserved_bytes` (what the caller adds itself)."""
        if not self._outbox.broadcasts:
            return Updates()
        return self._outbox.broadcasts.take(
            self._config.gossip_message_bytes_max - reserved_bytes, self.retransmit_limit()
        )

    def recently_dead(self, now: float) -> list[Entry]:
        """Members we declared dead within `dead_gossip_s`, latest first: O(their number),
        read from the end of the table's deaths in order."""
        members = self._table.members
        return [members[node_id] for node_id in self._recently_dead_ids(now)]

    def _recently_dead_ids(self, now: float) -> list[bytes]:
        """The node ids of `recently_dead`, in its order. After a partition half the
        cluster is recently dead, and every gossip round draws from them."""
        horizon = now - self._config.dead_gossip_s
        recent = []
        for node_id, died_at in reversed(self._table.dead.items()):
            if died_at < horizon:
                break
            recent.append(node_id)
        return recent

    def tick(self, now: float) -> None:
        if self._outbox.broadcasts:
            self._round(now)
        if not self.left or (self._outbox.broadcasts and self._table.reachable):
            self._outbox.timers.set(GOSSIP, now + self._config.gossip_interval_s)

    def forward_news(self, now: float, source: bytes | None = None) -> None:
        """Rule 7: a gossip round now, if a queued statement was never sent and no round
        sent anything within the last gossip interval; `source` (the member the news came
        from) is not among the targets."""
        if self.left or not self._outbox.broadcasts.fresh:
            return
        if self._sent_at is not None and now - self._sent_at < self._config.gossip_interval_s:
            return
        self._outbox.statistics["news_forwarded"] += 1
        self._round(now, source)

    def _round(self, now: float, source: bytes | None = None) -> None:
        """One batch to `gossip_fanout` members (rule 2), none of them `source`."""
        chosen = self._targets(now, source)
        if not chosen:
            return
        updates = self._outbox.broadcasts.take(
            self._config.gossip_message_bytes_max, self.retransmit_limit(), len(chosen)
        )
        if updates:
            self._sent_at = now
            message = Gossip(updates)
            for node_id in chosen:
                self._outbox.send(self._table.members[node_id].address, message, node_id)

    def _targets(self, now: float, source: bytes | None) -> list[bytes]:
        """`gossip_fanout` members drawn uniformly from the reachable and the recently
        dead, `source` left out: drawn by index, in O(fanout) for the reachable (a list of
        every reachable member per round cost O(n), five times a second)."""
        reachable = self._table.reachable
        dead = [] if self.left else self._recently_dead_ids(now)
        total = len(reachable) + len(dead)
        excluded = int(source is not None and (source in reachable or source in dead))
        wanted = min(self._config.gossip_fanout, total - excluded)
        # One more than wanted when `source` is among them: dropping it (or else the last
        # draw) leaves a uniform draw from the others.
        drawn = self._rng.sample(range(total), min(total, wanted + excluded))
        items, count = reachable.items, len(reachable)
        chosen = [items[i] if i < count else dead[i - count] for i in drawn]
        return [node_id for node_id in chosen if node_id != source][:wanted]

    def tell_the_dead(self, entry: Entry) -> None:
        """Send a member we believe dead its own death notice (rules 3 and 5)."""
        notice = Dead(entry.node_id, entry.incarnation, self._table.local.node_id)
        self._outbox.send(entry.address, Gossip(Updates(dead=(notice,))), entry.node_id)

    def probe_the_dead(self, now: float) -> None:
        """Rule 5: one random dead member, a recently dead one if any, gets its death
        notice."""
        if self.left:
            return
        dead = self.recently_dead(now) or [
            self._table.members[node_id] for node_id in self._table.dead
        ]
        if dead:
            self.tell_the_dead(self._rng.choice(dead))

    def dead_spoke(self, sender: bytes, now: float) -> None:
        """Rule 8: `sender`, a member we hold dead, spoke to us: tell the others we hold
        dead at once."""
        swept = self._swept_at
        if self.left or (swept is not None and now - swept < self._config.probe_interval_s):
            return
        self._swept_at = now
        recent = self.recently_dead(now)
        chosen = {entry.node_id: entry for entry in recent if entry.node_id != sender}
        for node_id in self._table.dead:
            if len(chosen) >= HEAL_NOTICES_MAX:
                break
            if node_id != sender:
                chosen.setdefault(node_id, self._table.members[node_id])
        for entry in list(chosen.values())[:HEAL_NOTICES_MAX]:
            self.tell_the_dead(entry)
        self._outbox.statistics["heal_notices"] += min(len(chosen), HEAL_NOTICES_MAX)

    def answer_accuser(self, sender: bytes, now: float) -> None:
        """Rule 6: send the member that made us refute our new alive statement, once per
        incarnation and probe interval."""
        entry = self._table.members.get(sender)
        if self.left or entry is None or sender == self._table.local.node_id:
            return
        incarnation = self._table.local.incarnation
        answered = self._answered.get(sender)
        if (answered is not None and answered[0] == incarnation
                and now - answered[1] < self._config.probe_interval_s):
            self._outbox.statistics["refutations_not_repeated"] += 1
            return
        self._answered[sender] = (incarnation, now)
        self._answered.move_to_end(sender)
        while len(self._answered) > ANSWERED_MAX:
            self._answered.popitem(last=False)
        self._outbox.statistics["refutations_answered"] += 1
        updates = Updates(alive=(self._table.local.alive,))
        self._outbox.send(entry.address, Gossip(updates), sender)
