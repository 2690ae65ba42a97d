"""Signatures already verified are not verified again (DESIGN: a verified signature is
cached by its digest).

Re-announced statements (a push-pull repeating the whole table every interval, a flood
replaying the same forged members) then cost one hash each, not an Ed25519 check. Only
successes are cached: a bad signature cannot fill the cache with entries of its own.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["VerifiedCache"]

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
