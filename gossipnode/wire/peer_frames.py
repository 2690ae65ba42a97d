"""What one sealed frame of an authenticated peer connection carries (protocol version 4):
one or more messages, deflated in the connection's context unless they carry secret keys.

    payload = mode || body
      mode 0: body is the bundle as it is
      mode 1: body is the bundle deflated in the connection's context (compression.py)
    bundle  = canonical CBOR array of 1 to FRAME_MESSAGES_MAX byte strings, each the
              encoding of one registered message (messages.py)

Rules:
1. Bundling: messages queued for a peer at the same moment go in one frame (a length
   prefix and a 16-byte tag for all, and one flush), as long as the bundle stays under
   `BUNDLE_BYTES_MAX`; a larger message goes alone. Order is kept.
2. Secret key material (records of `SECRET_KEY_DATASETS`) never enters a compression
   context: a message carrying any goes alone, in mode 0. A context shared with data an
   outsider can choose (a certificate anyone may upload) would otherwise let an
   eavesdropper learn, from frame lengths, how well a guess matched the secret (the
   CRIME attack on TLS compression).
3. The receiver bounds everything before it decodes: the frame's size (channel), the
   inflated bundle (`bundle_bytes_max`, checked before inflating), the count of messages
   (by the bundle's head, wire/cbor_heads.py);
   the bundle is strict canonical CBOR. Each message's bytes are decoded by the caller,
   which can check a message's size by its type before decoding it. Any violation is a
   `FrameContentError` (a RemoteProtocolError): the connection is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.catalog import SECRET_KEY_DATASETS
from ..core.errors import LocalProtocolError, RemoteProtocolError
from . import cbor
from .cbor_heads import ARRAY, read_head
from .compression import Deflater, Inflater, deflate_bound

__all__ = [
    "BUNDLE_BYTES_MAX",
    "FRAME_MESSAGES_MAX",
    "FrameContentError",
    "FrameReader",
    "FrameWriter",
    "carries_secret_keys",
    "frame_bytes_bound",
]

MODE_PLAIN = 0
MODE_DEFLATED = 1
# Messages of one bundle at most: a bound on the work one frame may ask of the receiver,
# above what one drain of a link's queues (64 urgent + 256 bulk messages) can hold.
FRAME_MESSAGES_MAX = 1024
# Small messages are bundled up to this many encoded bytes: a probe never waits for more
# than this to be compressed and sent before it; a record batch (up to
# reconcile.message_bytes_max, 512 KiB) goes alone.
BUNDLE_BYTES_MAX = 64 * 1024
# A bundle's array head and one byte-string head per message, at most.
_HEAD_BYTES = 9


class FrameContentError(RemoteProtocolError):
    """A frame whose mode, bundle or inflated size is not what the protocol allows."""


def carries_secret_keys(message: object) -> bool:
    """True for a message with records of a dataset that may hold secret key material."""
    return any(record.dataset in SECRET_KEY_DATASETS
               for record in getattr(message, "records", ()))


def frame_bytes_bound(message_bytes: int) -> int:
    """The largest payload a message of `message_bytes` encoded bytes makes, alone."""
    return 1 + deflate_bound(message_bytes + 2 * _HEAD_BYTES)


class FrameWriter:
    """The sending side of one connection: messages in, frame payloads out."""

    def __init__(self) -> None:
        self._deflater = Deflater()

    def frames(self, messages: Sequence[tuple[bytes, bool]]) -> list[bytes]:
        """Payloads for `(encoded message, carries secret keys)` pairs, in order (rules 1, 2)."""
        payloads: list[bytes] = []
        bundle: list[bytes] = []
        used = 0
        for data, secret in messages:
            if bundle and (secret or used + len(data) > BUNDLE_BYTES_MAX
                           or len(bundle) == FRAME_MESSAGES_MAX):
                payloads.append(self._seal(bundle, compress=True))
                bundle, used = [], 0
            if secret:
                payloads.append(self._seal([data], compress=False))
                continue
            bundle.append(data)
            used += len(data)
        if bundle:
            payloads.append(self._seal(bundle, compress=True))
        return payloads

    def _seal(self, bundle: list[bytes], *, compress: bool) -> bytes:
        body = cbor.encode(bundle)
        if not compress:
            return bytes([MODE_PLAIN]) + body
        return bytes([MODE_DEFLATED]) + self._deflater.compress(body)


class FrameReader:
    """The receiving side of one connection: frame payloads in, encoded messages out."""

    def __init__(self, bundle_bytes_max: int) -> None:
        if bundle_bytes_max <= 0:
            raise LocalProtocolError("bundle_bytes_max must be positive")
        self.bundle_bytes_max = bundle_bytes_max
        self._inflater = Inflater()

    def messages(self, payload: bytes) -> list[bytes]:
        """The encoded messages of one frame, in order. Raises FrameContentError."""
        if not payload:
            raise FrameContentError("an empty frame")
        mode = payload[0]
        if mode == MODE_DEFLATED:
            try:
                body = self._inflater.inflate(payload[1:], self.bundle_bytes_max)
            except RemoteProtocolError as error:
                raise FrameContentError(str(error)) from None
        elif mode == MODE_PLAIN:
            body = payload[1:]
            if len(body) > self.bundle_bytes_max:
                raise FrameContentError(
                    f"a bundle of {len(body)} bytes, over the limit of {self.bundle_bytes_max}")
        else:
            raise FrameContentError(f"unknown frame mode {mode}")
        try:
            # Its declared count first: a bundle of a million empty strings is refused at
            # its head, not after cbor2 has built them all.
            major, _, count, _ = read_head(body, 0)
            if major == ARRAY and count > FRAME_MESSAGES_MAX:
                raise FrameContentError(
                    f"a bundle is an array of 1 to {FRAME_MESSAGES_MAX} messages")
            bundle = cbor.decode(body, depth_max=2)
        except cbor.CborError as error:
            raise FrameContentError(f"bundle: {error}") from None
        if not isinstance(bundle, list) or not 0 < len(bundle) <= FRAME_MESSAGES_MAX:
            raise FrameContentError(
                f"a bundle is an array of 1 to {FRAME_MESSAGES_MAX} messages")
        if not all(type(item) is bytes for item in bundle):
            raise FrameContentError("a bundle holds messages as byte strings")
        return bundle
