"""Deflate for large peer messages, with inflation that is bounded before it starts.

Why: most bytes between members are record values in batches (a reconciliation turn, a
push), and a batch repeats itself: dataset names, origins, map keys, and in OpenPGP
certificates the issuer fingerprints, algorithm preferences and notation names of every
signature. Raw DEFLATE (zlib from the standard library, no header or checksum: the secure
channel already authenticates every frame) takes a batch of certificates from about 1,490
to about 780 bytes per record; primed with a preset dictionary (wire/deflate_dictionary.py)
it does nearly as well for a batch of one. Small messages (probes, acks) are left alone: below
`COMPRESS_MIN_BYTES` deflate rarely pays for its block header.

Rules:
1. `deflate` is used only when it makes the message smaller; the caller sends the
   original otherwise.
2. `inflate` is strict: the sender declares the inflated size, the receiver checks it
   against its limit BEFORE inflating, inflates at most that many bytes (plus one, to see
   a lie), and refuses a stream that inflates to more or fewer bytes, does not end, or has
   bytes after its end. A zip bomb therefore costs the receiver at most its limit.
"""

from __future__ import annotations

import zlib

from ..core.errors import RemoteProtocolError
from .deflate_dictionary import DICTIONARY

__all__ = ["COMPRESS_LEVEL", "COMPRESS_MIN_BYTES", "InflateError", "deflate", "inflate"]

# Messages shorter than this are sent as they are: a deflate block header plus the
# envelope's few bytes eat the gain of short, mostly random payloads (signed probes).
COMPRESS_MIN_BYTES = 256
# zlib's default: level 9 gains under 0.1 % on certificate batches at twice the time.
COMPRESS_LEVEL = 6
# Raw DEFLATE (no zlib header or Adler-32: 6 bytes a message), with a window of at most
# 2**15 bytes; the receiver always inflates with the largest window.
_WBITS = -15
_WINDOW_BITS_MIN = 9
# zlib keeps this many bytes of lookahead out of the window (MIN_LOOKAHEAD).
_LOOKAHEAD_BYTES = 262


class InflateError(RemoteProtocolError):
    """A compressed message that is over the limit, malformed, or not what it declared."""


def deflate(payload: bytes) -> bytes:
    """The raw DEFLATE stream of `payload`.

    The window is the smallest that holds the dictionary, the payload and zlib's lookahead:
    setting up a compressor costs in proportion to its window (a 32 KiB one is most of the
    time a short message takes), and a window that holds everything finds every match the
    largest one would, so the stream is byte for byte the same (tests/wire hold this)."""
    needed = len(DICTIONARY) + len(payload) + _LOOKAHEAD_BYTES
    bits = min(-_WBITS, max(_WINDOW_BITS_MIN, needed.bit_length()))
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -bits, zdict=DICTIONARY)
    return compressor.compress(payload) + compressor.flush()


def inflate(data: bytes, size: int, size_max: int) -> bytes:
    """Inflate `data`, which must give exactly `size` bytes, `size` at most `size_max`.

    Raises InflateError (one line) otherwise; never allocates more than `size_max + 1`.
    """
    if not 0 < size <= size_max:
        raise InflateError(f"compressed message declares {size} bytes, limit {size_max}")
    decompressor = zlib.decompressobj(_WBITS, zdict=DICTIONARY)
    try:
        out = decompressor.decompress(data, size + 1)
    except zlib.error as error:
        raise InflateError(f"compressed message is malformed: {error}") from None
    if len(out) != size or not decompressor.eof:
        raise InflateError(
            f"compressed message inflates to {'more than ' if len(out) > size else ''}"
            f"{len(out)} bytes{'' if decompressor.eof else ' and does not end'}, "
            f"declared {size}"
        )
    if decompressor.unused_data or decompressor.unconsumed_tail:
        raise InflateError("compressed message has bytes after its end")
    return out
