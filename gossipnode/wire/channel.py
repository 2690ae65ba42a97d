"""The secure channel: every frame after the handshake is encrypted and authenticated.

Rules:
1. Each direction has its own 32-byte key (derived by the handshake) and its own frame
   counter, starting at 0. Frame n of a direction is sealed with ChaCha20-Poly1305 (IETF,
   libsodium via PyNaCl) under that direction's key with nonce = n (12 bytes, big-endian).
   Keys are never shared between directions, so a nonce is never reused under one key.
2. The 4-byte length prefix is sent in clear (the receiver needs it to find the frame's
   end) but is authenticated as associated data: a changed length fails like a changed
   body.
3. The receiver opens frame n with nonce n only. A replayed, reordered, dropped, truncated
   or altered frame therefore fails authentication; any failure is a `ChannelError` (a
   RemoteProtocolError) and the channel refuses all further input: the caller closes the
   connection. There is no resynchronisation, by design.
4. Sans-IO: `seal` returns bytes to write; `receive_data` takes bytes read; `next_payload`
   returns opened payloads. Nothing here reads, writes or waits.
"""

from __future__ import annotations

import typing

import nacl.bindings
import nacl.exceptions

from ..core.errors import LocalProtocolError, RemoteProtocolError
from .framing import FrameDecoder, FrameError, encode_length

__all__ = ["KEY_BYTES", "TAG_BYTES", "ChannelError", "SecureChannel"]

KEY_BYTES = nacl.bindings.crypto_aead_chacha20poly1305_ietf_KEYBYTES
TAG_BYTES = nacl.bindings.crypto_aead_chacha20poly1305_ietf_ABYTES
# The counter fills the last 8 bytes of the 12-byte nonce; 2**64 frames never happen, but
# the limit is still checked rather than let a nonce wrap.
COUNTER_MAX = 2**64 - 1
_NONCE_PAD = bytes(nacl.bindings.crypto_aead_chacha20poly1305_ietf_NPUBBYTES - 8)

_encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt


class ChannelError(RemoteProtocolError):
    """A frame that fails authentication, or is over the size limit."""


class SecureChannel:
    """One end of an authenticated, encrypted frame stream.

    Args:
        send_key: the key of frames we send (the peer's receive key).
        receive_key: the key of frames we receive.
        frame_bytes_max: the largest frame on the wire, tag included; the largest payload
            is `frame_bytes_max - TAG_BYTES`.
    """

    def __init__(self, send_key: bytes, receive_key: bytes, frame_bytes_max: int) -> None:
        assert len(send_key) == KEY_BYTES
        assert len(receive_key) == KEY_BYTES
        assert send_key != receive_key, "the two directions must not share a key"
        assert frame_bytes_max > TAG_BYTES, frame_bytes_max
        self._send_key = send_key
        self._receive_key = receive_key
        self._decoder = FrameDecoder(frame_bytes_max)
        self.frame_bytes_max = frame_bytes_max
        self.payload_bytes_max = frame_bytes_max - TAG_BYTES
        self.sent_frames = 0
        self.received_frames = 0
        self._failed: str | None = None

    def seal(self, payload: bytes) -> bytes:
        """The wire bytes of one frame carrying `payload`.

        Raises:
            LocalProtocolError: `payload` is over `payload_bytes_max`.
        """
        if len(payload) > self.payload_bytes_max:
            raise LocalProtocolError(
                f"payload of {len(payload)} bytes is over the limit of "
                f"{self.payload_bytes_max} bytes (wire.frame_bytes_max less the tag)"
            )
        if self.sent_frames > COUNTER_MAX:
            raise LocalProtocolError("send counter exhausted; reconnect")
        prefix = encode_length(len(payload) + TAG_BYTES)
        nonce = _NONCE_PAD + self.sent_frames.to_bytes(8, "big")
        self.sent_frames += 1
        return prefix + _encrypt(payload, prefix, nonce, self._send_key)

    def receive_data(self, data: bytes) -> None:
        """Take bytes read from the peer. Raises ChannelError once the stream is bad."""
        if self._failed is not None:
            raise ChannelError(self._failed)
        try:
            self._decoder.feed(data)
        except FrameError as error:
            self._fail(str(error))

    def next_payload(self) -> bytes | None:
        """The next opened payload, or None until a whole frame has arrived.

        Raises:
            ChannelError: the frame is oversized or fails authentication (replayed,
                reordered, truncated or altered).
        """
        if self._failed is not None:
            raise ChannelError(self._failed)
        try:
            frame = self._decoder.next_prefixed()
        except FrameError as error:
            self._fail(str(error))
        if frame is None:
            return None
        prefix, body = frame
        if len(body) < TAG_BYTES:
            self._fail(f"frame of {len(body)} bytes is shorter than its tag")
        nonce = _NONCE_PAD + self.received_frames.to_bytes(8, "big")
        try:
            payload = _decrypt(body, prefix, nonce, self._receive_key)
        except nacl.exceptions.CryptoError:
            self._fail(
                f"frame {self.received_frames} failed authentication "
                "(altered, replayed, reordered or truncated)"
            )
        self.received_frames += 1
        return payload

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet opened (a partial frame at close is a truncation)."""
        return self._decoder.buffered_bytes

    def _fail(self, reason: str) -> typing.NoReturn:
        self._failed = reason
        raise ChannelError(reason)
