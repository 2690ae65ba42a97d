"""Replayed hellos cost the responder a lookup, not a signature and a key exchange.

A hello that proves the cluster secret makes the responder generate an ephemeral key, run
X25519 and sign a transcript. Anyone who once saw a hello on the wire can replay it as
often as they like, and it still proves the secret. So the responder keeps, per hello (by
digest), the reply it made and the state to finish that handshake:

1. A replay within `REPLY_CACHE_S` gets the very same reply bytes; nothing is computed.
   Only the original initiator holds the ephemeral private key behind the hello, so only
   it can finish; a replayer's Finish fails its MAC.
2. Once a handshake finishes, its entry keeps the reply bytes only (the ephemeral key and
   the master secret are forgotten, for forward secrecy): replays still cost nothing and
   can never finish.
3. At most `REPLY_CACHE_ENTRIES_MAX` entries (the oldest go first), each forgotten after
   `REPLY_CACHE_S`: memory stays bounded, and a secret-holder who makes fresh hellos pays
   for each one as it always did.
Sans-IO: the caller passes `now` (any monotonic clock).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import nacl.public

__all__ = ["REPLY_CACHE_S", "CachedReply", "ReplyCache"]

# A replay within this gets the cached reply. Longer than any handshake timeout, so a
# replay flood costs one computation per hello per interval at most.
REPLY_CACHE_S = 30.0
# Distinct hellos remembered: legitimate handshakes per 30 s on a busy node, many times.
REPLY_CACHE_ENTRIES_MAX = 1024


@dataclass(slots=True)
class CachedReply:
    """What a responder needs to answer a hello again and, while unfinished, to finish."""

    created: float
    reply: bytes  # the reply frame, as written
    secret: bytes
    version: int
    transcript: bytes
    master: bytes  # b"" once finished
    ephemeral: nacl.public.PrivateKey | None  # None once finished


class ReplyCache:
    __slots__ = ("_entries", "hits")

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, CachedReply] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(hello_frame: bytes) -> bytes:
        return hashlib.blake2b(hello_frame, digest_size=16).digest()

    def get(self, key: bytes, now: float) -> CachedReply | None:
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
        return entry

    def put(self, key: bytes, entry: CachedReply) -> None:
        self._expire(entry.created)
        self._entries[key] = entry
        while len(self._entries) > REPLY_CACHE_ENTRIES_MAX:
            self._entries.popitem(last=False)

    def finished(self, key: bytes) -> None:
        """Rule 2: forget the secrets of a finished handshake, keep its reply."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.ephemeral = None
            entry.master = b""

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.created + REPLY_CACHE_S > now:
                return
            del self._entries[key]
