"""The handshake's cryptography, each step a function of what it needs (handshake.py says
when each is used): the MACs that prove the cluster secret, the transcript hashes that are
signed and MACed, the Diffie-Hellman master key, the check that a signature proves a node
id, and the session keys of the channel. Both sides call the same function for each value,
so what is signed or MACed is written once, here, as handshake.py defines it.

Primitives are PyNaCl's (libsodium) and hashlib's BLAKE2b (`keyed_hash`), with a distinct
`person` per use, so that no value made for one purpose is accepted for another.
"""

from __future__ import annotations

import struct

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from .channel import SecureChannel
from .handshake_types import HandshakeError, keyed_hash, versions_bytes

__all__ = [
    "check_identity",
    "derive_master",
    "final_transcript",
    "finish_mac",
    "finish_transcript",
    "hello_mac",
    "open_channel",
    "refusal_mac",
    "replied_transcript",
    "reply_mac",
    "reply_transcript",
]


def hello_mac(secret: bytes, versions: tuple[int, ...], eph: bytes, nonce: bytes) -> bytes:
    """The MAC of a Hello: proves the cluster secret before any public-key work."""
    return keyed_hash(b"gn-hello-mac", versions_bytes(versions), eph, nonce, key=secret)


def refusal_mac(secret: bytes, hello_bytes: bytes, reason: str,
                versions: tuple[int, ...]) -> bytes:
    """The MAC of a Refusal that answers `hello_bytes`: the initiator can trust it."""
    return keyed_hash(b"gn-refusal-mac", hello_bytes, reason.encode(), versions_bytes(versions),
                      key=secret)  # fmt: skip


def reply_transcript(hello_bytes: bytes, version: int, ephemeral_key: bytes, nonce: bytes,
                     node_id: bytes) -> bytes:
    """T2, what the responder signs: the hello as sent and the reply's fields before its
    signature."""
    return keyed_hash(b"gn-t2", hello_bytes, struct.pack(">Q", version), ephemeral_key, nonce,
                      node_id)  # fmt: skip


def reply_mac(master: bytes, transcript: bytes, signature: bytes) -> bytes:
    """The MAC of a Reply over T2 (`transcript`) and the responder's signature: proves the
    cluster secret and this very exchange, so a replayed reply fails."""
    return keyed_hash(b"gn-reply-mac", transcript, signature, key=master)


def replied_transcript(transcript: bytes, signature: bytes, mac: bytes) -> bytes:
    """T3, the transcript once the Reply is sent: T2, the reply's signature and MAC."""
    return keyed_hash(b"gn-t3", transcript, signature, mac)


def finish_transcript(replied: bytes, node_id: bytes) -> bytes:
    """T4, what the initiator signs: T3 and the initiator's node id."""
    return keyed_hash(b"gn-t4", replied, node_id)


def finish_mac(master: bytes, transcript: bytes, signature: bytes) -> bytes:
    """The MAC of a Finish over T4 (`transcript`) and the initiator's signature."""
    return keyed_hash(b"gn-finish-mac", transcript, signature, key=master)


def final_transcript(transcript: bytes, signature: bytes, mac: bytes) -> bytes:
    """The final transcript hash the channel keys come from: T4, the Finish's signature and
    MAC."""
    return keyed_hash(b"gn-final", transcript, signature, mac)


def derive_master(own: nacl.public.PrivateKey, peer_ephemeral: bytes, transcript: bytes,
                  secret: bytes) -> bytes:
    """The master key: the X25519 result keyed by the cluster secret over the transcript.

    Raises:
        HandshakeError: the peer's ephemeral key is a low-order point.
    """
    try:
        dh = nacl.bindings.crypto_scalarmult(bytes(own), peer_ephemeral)
    except nacl.exceptions.CryptoError:
        # libsodium refuses low-order points (an all-zero shared secret).
        raise HandshakeError("peer sent a weak ephemeral key") from None
    return keyed_hash(b"gn-master", dh, transcript, key=secret)


def check_identity(node_id: bytes, signature: bytes, transcript: bytes, *, own_id: bytes,
                   expected: bytes | None) -> None:
    """The signature proves `node_id`, which is not ours and is the one `expected`.

    Raises:
        HandshakeError: with the reason.
    """
    try:
        nacl.signing.VerifyKey(node_id).verify(transcript, signature)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise HandshakeError(
            f"bad signature: the peer cannot prove node id {node_id.hex()[:16]}"
        ) from None
    if node_id == own_id:
        raise HandshakeError("the peer has our own node id (connected to ourselves?)")
    if expected is not None and node_id != expected:
        raise HandshakeError(
            f"expected node {expected.hex()[:16]}, but the peer proved it is {node_id.hex()[:16]}"
        )


def open_channel(master: bytes, final: bytes, *, initiator: bool,
                 frame_bytes_max: int) -> SecureChannel:
    """The channel of a completed handshake: one key per direction, from the master key
    and the final transcript hash."""
    initiator_to_responder = keyed_hash(b"gn-key-i2r", final, key=master)
    responder_to_initiator = keyed_hash(b"gn-key-r2i", final, key=master)
    if initiator:
        return SecureChannel(initiator_to_responder, responder_to_initiator, frame_bytes_max)
    return SecureChannel(responder_to_initiator, initiator_to_responder, frame_bytes_max)
