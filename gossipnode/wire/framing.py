"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

Rules:
1. A frame's declared length is checked against `frame_bytes_max` as soon as its 4-byte
   prefix has arrived, before one byte of its body is buffered: a peer cannot make us
   allocate more than one frame's worth of memory by lying about a length.
2. `FrameDecoder` is sans-IO: the caller feeds whatever bytes the socket gave it and pulls
   complete frames out; it never reads or waits.
3. An oversized length is a `FrameError` (a RemoteProtocolError): the caller drops the peer.
   After an error the decoder refuses further input, so nothing past a bad frame is used.
"""

from __future__ import annotations

import struct

from ..core.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["LENGTH_PREFIX_BYTES", "FrameDecoder", "FrameError", "encode_frame"]

LENGTH_PREFIX_BYTES = 4
_LENGTH = struct.Struct(">I")


class FrameError(RemoteProtocolError):
    """The peer declared a frame over the limit, or sent more than the state allows."""


def encode_frame(payload: bytes, frame_bytes_max: int) -> bytes:
    """The wire form of one frame. Raises LocalProtocolError if `payload` is over the limit."""
    if len(payload) > frame_bytes_max:
        raise LocalProtocolError(
            f"frame of {len(payload)} bytes is over the limit of {frame_bytes_max} bytes "
            "(wire.frame_bytes_max)"
        )
    return _LENGTH.pack(len(payload)) + payload


def encode_length(length: int) -> bytes:
    """The 4-byte prefix alone (the secure channel authenticates it as associated data)."""
    return _LENGTH.pack(length)


class FrameDecoder:
    """Split a byte stream into frames of at most `frame_bytes_max` bytes each."""

    def __init__(self, frame_bytes_max: int) -> None:
        assert 0 < frame_bytes_max < 2**32, frame_bytes_max
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._failed: str | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed but not yet returned as frames."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append bytes from the peer. Raises FrameError once the stream is known bad."""
        if self._failed is not None:
            raise FrameError(self._failed)
        self._buffer += data
        self._check_length()

    def next_frame(self) -> bytes | None:
        """The next complete frame's body, or None until more bytes arrive.

        Raises:
            FrameError: the next frame declares a length over `frame_bytes_max`.
        """
        if self._failed is not None:
            raise FrameError(self._failed)
        length = self._check_length()
        if length is None or len(self._buffer) < LENGTH_PREFIX_BYTES + length:
            return None
        end = LENGTH_PREFIX_BYTES + length
        frame = bytes(self._buffer[LENGTH_PREFIX_BYTES:end])
        del self._buffer[:end]
        return frame

    def next_prefixed(self) -> tuple[bytes, bytes] | None:
        """Like `next_frame`, but returns (length prefix, body): for authenticating the prefix."""
        if len(self._buffer) < LENGTH_PREFIX_BYTES:
            return None
        prefix = bytes(self._buffer[:LENGTH_PREFIX_BYTES])
        body = self.next_frame()
        return None if body is None else (prefix, body)

    def take_buffer(self) -> bytes:
        """Remove and return every buffered byte (hands the rest of a stream to a new decoder)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _check_length(self) -> int | None:
        if len(self._buffer) < LENGTH_PREFIX_BYTES:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > self.frame_bytes_max:
            self._failed = (
                f"peer declared a frame of {length} bytes, over the limit of "
                f"{self.frame_bytes_max} bytes"
            )
            self._buffer.clear()
            raise FrameError(self._failed)
        return length
