"""The handshake's vocabulary: its error, what it needs of an identity, what it yields,
and the keyed hash every MAC, transcript and key is made with."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..core.errors import RemoteProtocolError
from .channel import SecureChannel

if TYPE_CHECKING:
    import nacl.public

__all__ = [
    "NO_COMMON_VERSION",
    "WRONG_SECRET",
    "HandshakeError",
    "HandshakeResult",
    "HandshakeState",
    "Signer",
    "format_versions",
    "keyed_hash",
    "versions_bytes",
]

# The two refusals a responder may send, named by the reason they carry.
WRONG_SECRET = "wrong cluster secret"
NO_COMMON_VERSION = "no common protocol version"


class HandshakeError(RemoteProtocolError):
    """The handshake failed; `str()` says why in one line."""


class Signer(Protocol):
    """What the handshake needs of an identity (gossipnode.identity.Identity fits)."""

    @property
    def node_id(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class HandshakeState:
    """What the initiator's and the responder's steps (handshake_initiator.py,
    handshake_responder.py) share of `Handshake` (handshake.py), which sets it: declared
    once, for both."""

    identity: Signer
    versions: tuple[int, ...]
    _ephemeral: nacl.public.PrivateKey | None
    _nonce: bytes
    _secret: bytes
    _hello_bytes: bytes
    _master: bytes
    _transcript: bytes
    _version: int
    _peer_id: bytes
    _send: Callable[[object], bytes]
    _refusal_mac: Callable[[str, tuple[int, ...]], bytes]
    _derive_master: Callable[[bytes], bytes]
    _check_identity: Callable[[bytes, bytes, bytes], None]
    _complete: Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """A proven peer: its node id, the negotiated version and the channel to talk on.

    Bytes that arrived after the handshake are already fed into `channel`.
    """

    peer_id: bytes
    version: int
    channel: SecureChannel


def format_versions(versions: tuple[int, ...]) -> str:
    """Versions as an operator reads them: "1-3" if contiguous, else "1,3"; "none" if empty."""
    if not versions:
        return "none"
    ordered = sorted(set(versions))
    # Arithmetic, not range(): a peer may list versions 0 and 2**64 - 1.
    if ordered[-1] - ordered[0] + 1 == len(ordered):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def keyed_hash(person: bytes, *parts: bytes, key: bytes = b"") -> bytes:
    """Keyed BLAKE2b-256 over length-prefixed parts, so no two part lists collide."""
    data = b"".join(struct.pack(">Q", len(part)) + part for part in parts)
    # hashlib's BLAKE2b is libsodium's crypto_generichash (the same function, person
    # zero-padded alike) without PyNaCl's per-call argument checks in Python: each
    # handshake hashes about twenty times.
    return hashlib.blake2b(data, digest_size=32, key=key, person=person).digest()


def versions_bytes(versions: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack(">Q", version) for version in versions)
