"""Deflate for the frames of one connection: one compression context per direction, kept
from frame to frame, with inflation that is bounded before it starts.

Why a context per connection rather than per message: most messages between two members
repeat what went before on the same connection (a member's signed statement gossiped
again, the next probe to the same node id, thirteen sessions opened at once, one record
batch after another with the same map keys and certificate structure). Deflate finds those
repetitions only within what it has seen; a fresh context per message pays for every
string again. Primed with the preset dictionary (wire/deflate_dictionary.py), even the
first frame of a connection compresses.

Rules:
1. The sender compresses each frame's bytes into its context and ends with a sync flush
   (the frame's bytes are complete and byte-aligned; the context goes on). The four bytes
   every sync flush ends with (00 00 ff ff) are not sent: the receiver appends them
   (as WebSocket's permessage-deflate does, RFC 7692).
2. Frames are inflated in the order they were sealed (the channel guarantees it), each with
   `size_max` given BEFORE inflating: at most `size_max + 1` bytes are produced, so a zip
   bomb costs the receiver at most its limit. A frame that inflates to more, ends the
   stream, or leaves bytes unused is refused (`InflateError`, a RemoteProtocolError), and
   the connection with it: a context cannot resynchronise.
3. Contexts are made on first use, so a connection that only ever receives never holds a
   compressor (about 160 KiB, resident as its window fills), and one that only sends
   never holds an inflater.
"""

from __future__ import annotations

import zlib

from ..core.errors import RemoteProtocolError
from .deflate_dictionary import DICTIONARY

__all__ = ["COMPRESS_LEVEL", "Deflater", "InflateError", "Inflater", "deflate_bound"]

# zlib's default: level 9 gains under 0.2 % on certificate batches at twice the time.
COMPRESS_LEVEL = 6
# Raw DEFLATE with the largest window: no zlib header or Adler-32 (the secure channel
# already authenticates every frame).
_WBITS = -15
# The compressor's hash table: zlib's default (8) is 64 KiB, zeroed when a context starts and
# so resident for as long as the connection lives; at 6 it is 16 KiB. Measured after a
# context's first small frame: 96 KiB resident at 8, 48 KiB at 6 (one context per peer: 2.3
# MiB of an agent's memory at 50 members). Only the sender's matching changes (the same
# bytes for membership traffic, +0.9 % for batches of certificates); the receiver inflates
# the same format.
_MEM_LEVEL = 6
# What every sync flush ends with: an empty stored block's length and its complement.
SYNC_TRAILER = b"\x00\x00\xff\xff"


class InflateError(RemoteProtocolError):
    """A compressed frame that is over the limit, malformed, or ends the stream."""


def deflate_bound(size: int) -> int:
    """The most bytes `Deflater.compress` may return for `size` bytes of input: incompressible
    data goes in stored blocks of 5 header bytes each (zlib's own deflateBound, rounded up),
    plus the flush."""
    return size + (size >> 12) + (size >> 14) + 64


class Deflater:
    """The sending side's context."""

    def __init__(self) -> None:
        self._compressor: zlib._Compress | None = None

    def compress(self, data: bytes) -> bytes:
        """`data` compressed into the context, sync-flushed, without the flush's trailer."""
        if self._compressor is None:
            self._compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, _WBITS,
                                                _MEM_LEVEL, zdict=DICTIONARY)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(SYNC_TRAILER)
        return out[: -len(SYNC_TRAILER)]


class Inflater:
    """The receiving side's context."""

    def __init__(self) -> None:
        self._decompressor: zlib._Decompress | None = None

    def inflate(self, data: bytes, size_max: int) -> bytes:
        """The bytes of one frame compressed by the peer's `Deflater`, at most `size_max`.

        Raises InflateError (one line) otherwise; never allocates more than `size_max + 1`.
        """
        if self._decompressor is None:
            self._decompressor = zlib.decompressobj(_WBITS, zdict=DICTIONARY)
        decompressor = self._decompressor
        try:
            out = decompressor.decompress(data + SYNC_TRAILER, size_max + 1)
        except zlib.error as error:
            raise InflateError(f"compressed frame is malformed: {error}") from None
        if len(out) > size_max:
            raise InflateError(f"compressed frame inflates to more than {size_max} bytes")
        if decompressor.eof or decompressor.unused_data or decompressor.unconsumed_tail:
            raise InflateError("compressed frame ends the stream or has bytes after its end")
        return out
