import pytest

from gossipnode.core.errors import LocalProtocolError
from gossipnode.wire.framing import FrameDecoder, FrameError, encode_frame


def test_frames_survive_any_split_of_the_stream():
    payloads = [b"", b"a", b"x" * 1000, bytes(range(256))]
    stream = b"".join(encode_frame(p, 1000) for p in payloads[:3]) + encode_frame(payloads[3], 1000)
    decoder = FrameDecoder(1000)
    received = []
    for byte in stream:
        decoder.feed(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            received.append(frame)
    assert received == payloads
    assert decoder.buffered_bytes == 0


def test_a_frame_of_exactly_the_maximum_is_accepted():
    decoder = FrameDecoder(16)
    decoder.feed(encode_frame(b"z" * 16, 16))
    assert decoder.next_frame() == b"z" * 16


def test_an_oversized_length_fails_on_the_prefix_before_any_body_is_buffered():
    decoder = FrameDecoder(4 * 1024 * 1024)
    with pytest.raises(FrameError, match="declared a frame of 4294967295 bytes"):
        decoder.feed(b"\xff\xff\xff\xff")
    assert decoder.buffered_bytes == 0
    # The decoder stays failed: nothing after a bad frame is ever used.
    with pytest.raises(FrameError):
        decoder.feed(encode_frame(b"ok", 10))
    with pytest.raises(FrameError):
        decoder.next_frame()


def test_one_byte_over_the_limit_is_refused():
    decoder = FrameDecoder(16)
    with pytest.raises(FrameError):
        decoder.feed((17).to_bytes(4, "big"))


def test_encoding_an_oversized_payload_is_our_error():
    with pytest.raises(LocalProtocolError, match="frame_bytes_max"):
        encode_frame(b"x" * 11, 10)


def test_take_buffer_hands_over_the_rest_of_the_stream():
    decoder = FrameDecoder(100)
    decoder.feed(encode_frame(b"one", 100) + b"\x00\x00")
    assert decoder.next_frame() == b"one"
    assert decoder.take_buffer() == b"\x00\x00"
    assert decoder.buffered_bytes == 0
