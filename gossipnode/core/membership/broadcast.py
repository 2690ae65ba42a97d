"""The broadcast queue: statements waiting to be piggybacked, each sent a bounded number of
times.

Rules:
1. One queued statement per subject: a newer statement about a member replaces the older
   one, which is then not worth sending (memberlist's invalidation by name).
2. Each statement is sent at most `limit` times, where the caller computes
   limit = retransmit_mult * ceil(log10(n + 1)) for n members (memberlist's formula): enough
   that, with high probability, epidemic spread reaches every member. A dead claim (only
   ever our own suspicion timer's: claims.py) is sent `DEAD_SENDS_FACTOR` times that: it
   confirms others' suspicions only first-hand, so nobody passes it on (state.py rule 2),
   and a member still suspecting when the others' timers ran out needs two such claims
   or waits out a long timeout (21 s instead of 9 at 50 members, in 6 of 100 virtual
   crashes with `limit` sends; in none with twice that).
3. A batch takes the least-transmitted statements first, newest first among equals, and
   stops at `bytes_max` estimated bytes, so a message stays small.

Statements are kept in buckets by transmit count, so a batch costs O(batch), not O(queue).
"""

from __future__ import annotations

from .messages import Alive, Dead, Left, Suspect, Updates, statement_size_bytes

__all__ = ["BroadcastQueue"]

Statement = Alive | Left | Suspect | Dead

# How many times `limit` a dead claim is sent (rule 2).
DEAD_SENDS_FACTOR = 2


class BroadcastQueue:
    __slots__ = ("_buckets", "_fresh", "_transmits")

    def __init__(self) -> None:
        # transmits -> {subject node id: (statement, its estimated size)}, in insertion
        # order (oldest first). The size is estimated once, not at every take.
        self._buckets: dict[int, dict[bytes, tuple[Statement, int]]] = {}
        self._transmits: dict[bytes, int] = {}
        # How many alive and left statements are queued and never sent (`fresh`), kept as
        # statements come and go: asked at every message received, and a scan of the
        # unsent ones cost O(queue) each time while a flood of claims was queued.
        self._fresh = 0

    def __len__(self) -> int:
        return len(self._transmits)

    def __contains__(self, node_id: bytes) -> bool:
        return node_id in self._transmits

    @property
    def fresh(self) -> bool:
        """Whether a queued alive or left statement has not been sent yet (news that a
        member is well, or chose to go; suspect and dead claims are not counted)."""
        return self._fresh > 0

    def queued(self, node_id: bytes) -> Statement | None:
        transmits = self._transmits.get(node_id)
        return None if transmits is None else self._buckets[transmits][node_id][0]

    def push(self, statement: Statement) -> None:
        """Queue `statement`, replacing any queued statement about the same member."""
        self._drop(statement.node_id)
        self._put(statement.node_id, (statement, statement_size_bytes(statement)), 0)

    def take(self, bytes_max: int, limit: int, sends: int = 1) -> Updates:
        """A batch of at most `bytes_max` estimated bytes, to go to `sends` members; counts
        `sends` transmits for each statement (so a statement goes out at most
        limit + sends - 1 times; a dead claim, DEAD_SENDS_FACTOR * limit + sends - 1)."""
        picked: list[tuple[bytes, tuple[Statement, int], int]] = []
        budget = bytes_max
        for transmits in sorted(self._buckets):
            for node_id, item in reversed(self._buckets[transmits].items()):
                if item[1] > budget:
                    break  # statements are of similar sizes: stop rather than scan the queue
                budget -= item[1]
                picked.append((node_id, item, transmits))
            else:
                continue
            break
        # `_drop` then `_put` of each picked statement, spelled out (a call and a lookup
        # less each): the statement moves to the end of the bucket `transmits + sends`, or
        # out of the queue once sent `sends_max` times.
        buckets, counts = self._buckets, self._transmits
        for node_id, item, transmits in picked:
            bucket = buckets[transmits]
            del bucket[node_id]
            if not bucket:
                del buckets[transmits]
            statement = item[0]
            news = isinstance(statement, Alive | Left)
            if transmits == 0 and news:
                self._fresh -= 1
            sends_max = limit * DEAD_SENDS_FACTOR if isinstance(statement, Dead) else limit
            after = transmits + sends
            if after < sends_max:
                buckets.setdefault(after, {})[node_id] = item
                counts[node_id] = after
                if after == 0 and news:
                    self._fresh += 1
            else:
                del counts[node_id]
        return _batch(item[0] for _, item, _ in picked)

    def _put(self, node_id: bytes, item: tuple[Statement, int], transmits: int) -> None:
        self._buckets.setdefault(transmits, {})[node_id] = item
        self._transmits[node_id] = transmits
        if transmits == 0 and isinstance(item[0], Alive | Left):
            self._fresh += 1

    def _drop(self, node_id: bytes) -> None:
        transmits = self._transmits.pop(node_id, None)
        if transmits is not None:
            bucket = self._buckets[transmits]
            if transmits == 0 and isinstance(bucket[node_id][0], Alive | Left):
                self._fresh -= 1
            del bucket[node_id]
            if not bucket:
                del self._buckets[transmits]


def _batch(statements) -> Updates:
    alive, left, dead, suspect = [], [], [], []
    for statement in statements:
        if isinstance(statement, Alive):
            alive.append(statement)
        elif isinstance(statement, Left):
            left.append(statement)
        elif isinstance(statement, Dead):
            dead.append(statement)
        else:
            suspect.append(statement)
    return Updates(tuple(alive), tuple(left), tuple(dead), tuple(suspect))
