"""The handshake: two nodes prove who they are and agree on channel keys (sans-IO).

Theory of operation (three messages, each one frame of strict CBOR, see `messages.py`):

    initiator                                              responder
    Hello(versions, eI, nI, mac = hello mac)                      ->
                       <- Reply(v, eR, nR, idR, sigR(T2), mac = reply mac)
                          or Refusal(reason, versions, mac = refusal mac)
    Finish(idI, sigI(T4), mac = finish mac)                       ->

    hello mac   = H("gn-hello-mac", secret; versions, eI, nI)
    refusal mac = H("gn-refusal-mac", secret; Hello bytes, reason, versions)
    T2          = H("gn-t2"; Hello bytes, v, eR, nR, idR)         signed by the responder
    dh          = X25519(e_own, e_peer)
    master      = H("gn-master", secret; dh, T2)
    reply mac   = H("gn-reply-mac", master; T2, sigR)
    T3          = H("gn-t3"; T2, sigR, reply mac)
    T4          = H("gn-t4"; T3, idI)                              signed by the initiator
    finish mac  = H("gn-finish-mac", master; T4, sigI)
    final       = H("gn-final"; T4, sigI, finish mac)
    keys: initiator->responder = H("gn-key-i2r", master; final), the other way "gn-key-r2i"

    H(person, key; parts) is BLAKE2b with a 32-byte digest, keyed by `key` (unkeyed where
    none is named) and personalised by `person`, over each part as its length (8 bytes,
    big-endian) followed by its bytes. `versions` is one part, each version 8 bytes
    big-endian, and so is `v`; `reason` is UTF-8; "Hello bytes" is the Hello's CBOR frame
    as sent, without the length prefix of the framing. handshake_keys.py computes each
    value with one function that both sides call.

Rules:
1. Cluster secret first: the responder checks Hello's MAC against each secret it holds
   (newest first, for rotation) before any expensive work. No match is "wrong cluster
   secret": it answers with an unauthenticated Refusal saying so, then the caller closes.
2. Identities: each side signs the transcript hash with its Ed25519 identity key; node id
   = public key, so a signature that verifies proves the id. Signatures cover both
   ephemeral keys and both nonces, so an old handshake replayed fails (the responder's
   fresh eR/nR is in what the initiator must sign and MAC).
3. Forward secrecy: fresh X25519 keys per handshake; the session keys depend on the
   Diffie-Hellman result, the cluster secret and the whole transcript, via keyed BLAKE2b
   with a distinct `person` per use. Primitives are PyNaCl's (libsodium) only.
4. Versions: the responder picks the highest version both speak. With none in common it
   sends a Refusal (MAC'd with the secret, so the initiator can trust it) naming its
   versions; both sides report "no common protocol version: ours 1-1, theirs 2-3".
5. Replays: a listener's responders share a `ReplyCache`, so a replayed hello gets the
   cached reply and costs no signature or key exchange (handshake_cache.py).
6. Limits: handshake frames are at most `HANDSHAKE_FRAME_BYTES_MAX`; bytes past the
   handshake are kept, unread, and handed to the channel only once the peer is proven.
7. Errors: every failure is a `HandshakeError` (a RemoteProtocolError) with a distinct,
   readable reason. After one, send what `data_to_send()` holds (a refusal) and close.

This module drives the exchange (`Handshake`: state, bytes in and out, dispatch); the steps
of each side are in handshake_initiator.py and handshake_responder.py, the cryptography
(MACs, master key, identity proof, channel keys) in handshake_keys.py, the messages in
handshake_messages.py and the reply cache in handshake_cache.py.
"""

from __future__ import annotations

import nacl.public
import nacl.utils

from ..core.errors import LocalProtocolError
from .framing import FrameDecoder, FrameError, encode_frame
from .handshake_cache import ReplyCache
from .handshake_initiator import InitiatorSteps
from .handshake_keys import check_identity, derive_master, open_channel, refusal_mac
from .handshake_messages import (
    HANDSHAKE_FRAME_BYTES_MAX,
    HANDSHAKE_MESSAGES,
    NONCE_BYTES,
    VERSIONS_MAX,
    Finish,
    Hello,
    Refusal,
    Reply,
)
from .handshake_responder import ResponderSteps
from .handshake_types import (
    NO_COMMON_VERSION,
    WRONG_SECRET,
    HandshakeError,
    HandshakeResult,
    Signer,
    format_versions,
)
from .messages import MessageError

__all__ = [
    "HANDSHAKE_FRAME_BYTES_MAX",
    "NO_COMMON_VERSION",
    "PROTOCOL_VERSIONS",
    "WRONG_SECRET",
    "Handshake",
    "HandshakeError",
    "HandshakeResult",
    "Signer",
    "format_versions",
]

# The protocol versions this build speaks. Bump when a message schema changes.
# 2: a record carries an optional signature (signed datasets, core/authority.py).
# 3: Ping, Ack and PushPull carry the sender's digest roots (core/membership/roots.py).
# 4: frames bundle messages and deflate them in one context per connection
#    (wire/peer_frames.py); record batches have their compact form (wire/record_codec.py);
#    reconciliation turns may carry coded entries (core/reconcile_ranges.py).
# 5: a push-pull carries a summary (salt, have, wanted: core/membership/exchange.py).
PROTOCOL_VERSIONS: tuple[int, ...] = (5,)

# Cluster secrets key BLAKE2b, which takes keys of up to 64 bytes; fewer than 16 bytes
# (128 bits) would be guessable. `gossipnode keygen` writes 32.
SECRET_BYTES_MIN = 16
SECRET_BYTES_MAX = 64


class Handshake(InitiatorSteps, ResponderSteps):
    """One side of a handshake. Build with `initiator(...)` or `responder(...)`.

    Drive it like h11: write `data_to_send()` to the peer, feed what the peer sends to
    `receive_data()`, until `result` is set (success) or HandshakeError is raised.
    """

    def __init__(
        self,
        initiator: bool,
        identity: Signer,
        secrets: tuple[bytes, ...],
        *,
        frame_bytes_max: int,
        versions: tuple[int, ...] = PROTOCOL_VERSIONS,
        expected_peer: bytes | None = None,
        reply_cache: ReplyCache | None = None,
        now: float = 0.0,
    ) -> None:
        if not secrets:
            raise LocalProtocolError("at least one cluster secret is needed")
        if any(not SECRET_BYTES_MIN <= len(secret) <= SECRET_BYTES_MAX for secret in secrets):
            raise LocalProtocolError(
                f"cluster secrets must be {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes"
            )
        if not versions or len(versions) > VERSIONS_MAX:
            raise LocalProtocolError(f"between 1 and {VERSIONS_MAX} protocol versions needed")
        self.is_initiator = initiator
        self.identity = identity
        self.secrets = tuple(secrets)
        self.versions = tuple(sorted(set(versions)))
        self.expected_peer = expected_peer
        self.frame_bytes_max = frame_bytes_max
        self.result: HandshakeResult | None = None
        self._decoder = FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX)
        self._outgoing = bytearray()
        # The responder makes its ephemeral key only for a hello that proves the secret, so
        # a flood of strangers costs no key generation.
        self._ephemeral: nacl.public.PrivateKey | None = None
        self._nonce = nacl.utils.random(NONCE_BYTES)
        self._failed: str | None = None
        # Filled in as the handshake proceeds.
        self._secret = b""
        self._hello_bytes = b""
        self._master = b""
        self._transcript = b""
        self._version = 0
        self._peer_id = b""
        self._reply_cache = reply_cache
        self._now = now
        self._cache_key = b""
        if initiator:
            self._secret = self.secrets[0]
            self._ephemeral = nacl.public.PrivateKey.generate()
            self._send_hello()
            self._expecting: type = Reply
        else:
            self._expecting = Hello

    @classmethod
    def initiator(
        cls,
        identity: Signer,
        secrets: tuple[bytes, ...],
        *,
        frame_bytes_max: int,
        versions: tuple[int, ...] = PROTOCOL_VERSIONS,
        expected_peer: bytes | None = None,
    ) -> Handshake:
        """The dialing side. `expected_peer`: the node id we mean to reach, or None (a seed)."""
        return cls(
            True,
            identity,
            secrets,
            frame_bytes_max=frame_bytes_max,
            versions=versions,
            expected_peer=expected_peer,
        )

    @classmethod
    def responder(
        cls,
        identity: Signer,
        secrets: tuple[bytes, ...],
        *,
        frame_bytes_max: int,
        versions: tuple[int, ...] = PROTOCOL_VERSIONS,
        reply_cache: ReplyCache | None = None,
        now: float = 0.0,
    ) -> Handshake:
        """The accepting side; it accepts any of `secrets` (newest first). With
        `reply_cache` (shared by a listener's handshakes; `now` from a monotonic clock), a
        replayed hello is answered from the cache (handshake_cache.py)."""
        return cls(
            False,
            identity,
            secrets,
            frame_bytes_max=frame_bytes_max,
            versions=versions,
            reply_cache=reply_cache,
            now=now,
        )

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer now (possibly empty)."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def receive_data(self, data: bytes) -> None:
        """Take bytes from the peer; may complete the handshake (`result` set).

        Raises:
            HandshakeError: with a one-line reason; the caller flushes `data_to_send()`
                and closes the connection.
        """
        if self._failed is not None:
            raise HandshakeError(self._failed)
        try:
            self._receive(data)
        except HandshakeError as error:
            self._failed = str(error)
            raise
        except (FrameError, MessageError) as error:
            self._failed = f"malformed handshake: {error}"
            raise HandshakeError(self._failed) from None

    # -- the state machine ------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self.result is not None:
            # After the handshake, bytes belong to the channel; the caller should use it.
            raise LocalProtocolError("handshake is complete; feed the channel instead")
        self._decoder.feed(data)
        while self.result is None:
            frame = self._decoder.next_frame()
            if frame is None:
                break
            message = HANDSHAKE_MESSAGES.decode(frame)
            if isinstance(message, Refusal) and self._expecting is Reply:
                self._on_refusal(message)
            if not isinstance(message, self._expecting):
                raise HandshakeError(
                    f"unexpected {type(message).__name__} (expected {self._expecting.__name__})"
                )
            if isinstance(message, Hello):
                self._on_hello(message, frame)
            elif isinstance(message, Reply):
                self._on_reply(message)
            else:
                assert isinstance(message, Finish)
                self._on_finish(message)

    def _send(self, message: object) -> bytes:
        frame = HANDSHAKE_MESSAGES.encode(message)
        self._outgoing += encode_frame(frame, HANDSHAKE_FRAME_BYTES_MAX)
        return frame

    def _refusal_mac(self, reason: str, versions: tuple[int, ...]) -> bytes:
        return refusal_mac(self._secret, self._hello_bytes, reason, versions)

    def _check_identity(self, node_id: bytes, signature: bytes, transcript: bytes) -> None:
        check_identity(node_id, signature, transcript, own_id=self.identity.node_id,
                       expected=self.expected_peer)

    def _derive_master(self, peer_ephemeral: bytes) -> bytes:
        assert self._ephemeral is not None
        return derive_master(self._ephemeral, peer_ephemeral, self._transcript, self._secret)

    def _complete(self, final: bytes) -> None:
        channel = open_channel(self._master, final, initiator=self.is_initiator,
                               frame_bytes_max=self.frame_bytes_max)
        # Bytes the peer sent right after its last handshake message belong to the channel.
        channel.receive_data(self._decoder.take_buffer())
        self.result = HandshakeResult(self._peer_id, self._version, channel)
        self._ephemeral = None  # forget it: forward secrecy
        self._master = b""
