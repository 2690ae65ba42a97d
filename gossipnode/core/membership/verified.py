"""Signatures of member statements: ours made, the others' checked, and those already
verified not verified again (a verified signature is cached by its digest).

Re-announced statements (a push-pull repeating the whole table every interval, a flood
replaying the same forged members) then cost one hash each, not an Ed25519 check. Only
successes are cached: a bad signature cannot fill the cache with entries of its own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from ..events import Address
from .messages import Alive, Left, Tags
from .outbox import Outbox
from .signing import alive_signed_bytes, left_signed_bytes

__all__ = ["Signatures", "VerifiedCache"]

# A digest this long makes an accidental collision of two statements unthinkable.
DIGEST_BYTES = 16


class VerifiedCache:
    """An LRU set of digests of (signer, signed bytes, signature) that verified."""

    __slots__ = ("_digests", "_verify", "capacity", "checks")

    def __init__(self, verify: Callable[[bytes, bytes, bytes], bool], capacity: int) -> None:
        assert capacity > 0
        self._verify = verify
        self.capacity = capacity
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self.checks = 0  # signature checks actually run

    def __len__(self) -> int:
        return len(self._digests)

    def verify(self, signer: bytes, signed: bytes, signature: bytes) -> bool:
        digest = hashlib.blake2b(
            signature + signer + signed, digest_size=DIGEST_BYTES
        ).digest()
        if digest in self._digests:
            self._digests.move_to_end(digest)
            return True
        self.checks += 1
        if not self._verify(signer, signed, signature):
            return False
        self._digests[digest] = None
        if len(self._digests) > self.capacity:
            self._digests.popitem(last=False)
        return True


class Signatures:
    """This member's signatures over its own statements, and the checks of others' (each
    verified once, then cached). A bad signature is refused: a PeerRefused to its sender."""

    def __init__(self, node_id: bytes, sign: Callable[[bytes], bytes],
                 verify: Callable[[bytes, bytes, bytes], bool], capacity: int,
                 outbox: Outbox) -> None:
        self._node_id = node_id
        self._sign = sign
        self._verified = VerifiedCache(verify, capacity)
        self._outbox = outbox

    @property
    def checks(self) -> int:
        return self._verified.checks

    def signed_alive(self, name: str, address: Address, incarnation: int, tags: Tags) -> Alive:
        host, port = address
        signed = alive_signed_bytes(self._node_id, name, host, port, incarnation, tags)
        return Alive(self._node_id, name, host, port, incarnation, tags, self._sign(signed))

    def signed_left(self, incarnation: int) -> Left:
        return Left(
            self._node_id, incarnation, self._sign(left_signed_bytes(self._node_id, incarnation))
        )

    def alive_ok(self, alive: Alive, sender: bytes) -> bool:
        signed = alive_signed_bytes(
            alive.node_id, alive.name, alive.host, alive.port, alive.incarnation, alive.tags
        )
        if self._verified.verify(alive.node_id, signed, alive.signature):
            return True
        self._outbox.refuse(sender, "an alive statement with a bad signature")
        return False

    def left_ok(self, left: Left, sender: bytes) -> bool:
        signed = left_signed_bytes(left.node_id, left.incarnation)
        if self._verified.verify(left.node_id, signed, left.signature):
            return True
        self._outbox.refuse(sender, "a left statement with a bad signature")
        return False
