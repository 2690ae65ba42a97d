import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.core.errors import LocalProtocolError
from gossipnode.wire.channel import TAG_BYTES, ChannelError, SecureChannel

KEY_A = b"\x01" * 32
KEY_B = b"\x02" * 32


def pair(frame_bytes_max=1024):
    return SecureChannel(KEY_A, KEY_B, frame_bytes_max), SecureChannel(
        KEY_B, KEY_A, frame_bytes_max
    )


def open_all(channel, data):
    channel.receive_data(data)
    payloads = []
    while (payload := channel.next_payload()) is not None:
        payloads.append(payload)
    return payloads


def test_payloads_cross_both_ways_in_order():
    left, right = pair()
    frames = b"".join(left.seal(p) for p in (b"one", b"", b"three"))
    assert open_all(right, frames) == [b"one", b"", b"three"]
    assert open_all(left, right.seal(b"back")) == [b"back"]


def test_the_payload_is_not_sent_in_clear():
    left, _ = pair()
    assert b"secret payload" not in left.seal(b"secret payload")


def test_a_replayed_frame_closes_the_channel():
    left, right = pair()
    frame = left.seal(b"pay 10")
    assert open_all(right, frame) == [b"pay 10"]
    with pytest.raises(ChannelError, match="failed authentication"):
        open_all(right, frame)
    # Once failed, it stays failed, even for a genuine next frame.
    with pytest.raises(ChannelError):
        open_all(right, left.seal(b"next"))


def test_reordered_frames_close_the_channel():
    left, right = pair()
    first, second = left.seal(b"first"), left.seal(b"second")
    with pytest.raises(ChannelError, match="frame 0 failed authentication"):
        open_all(right, second + first)


def test_a_dropped_frame_closes_the_channel():
    left, right = pair()
    left.seal(b"lost")
    with pytest.raises(ChannelError):
        open_all(right, left.seal(b"after"))


def test_a_frame_from_the_other_direction_is_refused():
    left, _right = pair()
    with pytest.raises(ChannelError):
        open_all(left, left.seal(b"reflected"))


@pytest.mark.parametrize("position", [0, 3, 4, 10, -1])
def test_any_altered_byte_closes_the_channel(position):
    left, right = pair()
    frame = bytearray(left.seal(b"0123456789abcdef"))
    frame[position] ^= 0x01
    # A following frame, so that a length altered upwards still has bytes to span.
    with pytest.raises(ChannelError):
        open_all(right, bytes(frame) + left.seal(b"following frame"))


def test_a_truncated_frame_is_never_delivered():
    left, right = pair()
    frame = left.seal(b"whole")
    assert open_all(right, frame[:-1]) == []
    assert right.buffered_bytes == len(frame) - 1


def test_an_oversized_declared_length_closes_the_channel():
    _, right = pair(frame_bytes_max=1024)
    with pytest.raises(ChannelError, match="over the limit"):
        open_all(right, (1025).to_bytes(4, "big"))


def test_a_frame_shorter_than_its_tag_closes_the_channel():
    _, right = pair()
    with pytest.raises(ChannelError, match="shorter than its tag"):
        open_all(right, (3).to_bytes(4, "big") + b"abc")


def test_sealing_over_the_payload_limit_is_our_error():
    left, _ = pair(frame_bytes_max=100)
    left.seal(b"x" * (100 - TAG_BYTES))
    with pytest.raises(LocalProtocolError):
        left.seal(b"x" * (101 - TAG_BYTES))


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_channel_error(data):
    _, right = pair()
    with contextlib.suppress(ChannelError):
        assert open_all(right, data) == []
