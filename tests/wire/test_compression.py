"""Frames of a connection: messages bundled, deflated in one context per direction (so a
repetition costs little however far apart it is sent), never with secret keys, and inflated
only within a limit given before any work (no zip bomb gets through)."""

import random
import zlib

import cbor2
import pytest

from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push, PushAck
from gossipnode.wire.compression import Deflater, InflateError, Inflater
from gossipnode.wire.deflate_dictionary import DICTIONARY
from gossipnode.wire.peer_frames import (
    BUNDLE_BYTES_MAX,
    FRAME_MESSAGES_MAX,
    FrameContentError,
    FrameReader,
    FrameWriter,
    carries_secret_keys,
)
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.wire.samples import ORIGIN

LIMIT = 4 * 1024 * 1024


def reference_inflater():
    """An independent raw DEFLATE reader (zlib, wbits -15, the protocol's dictionary)."""
    return zlib.decompressobj(-15, zdict=DICTIONARY)


def reference_frame(body: bytes, level: int = 9) -> bytes:
    """`body` deflated as the first frame of a context, without the flush's trailer."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=DICTIONARY)
    return (compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def certificate_push(push_id: int, seed: int) -> Push:
    rng = random.Random(seed)
    value = cbor2.dumps({"cert": rng.randbytes(200) + bytes(200), "type": "external"},
                        canonical=True)
    return Push(push_id, (Record("consumers", f"{seed:040X}", value,
                                 Version(1_700_000_000_000 + seed, 0, ORIGIN)),))


def test_frames_inflate_in_order_to_what_was_sent_and_repeats_cost_little():
    deflater, reference = Deflater(), reference_inflater()
    inflater = Inflater()
    message = PEER_MESSAGES.encode(certificate_push(1, 1))
    sizes = []
    for _ in range(3):
        frame = deflater.compress(message)
        sizes.append(len(frame))
        assert reference.decompress(frame + b"\x00\x00\xff\xff") == message
        assert inflater.inflate(frame, LIMIT) == message
    assert sizes[1] < sizes[0] // 10  # the context remembers the first frame
    assert sizes[2] < sizes[0] // 10


def test_a_zip_bomb_is_refused_at_the_limit_given_before_inflating():
    with pytest.raises(InflateError, match="more than 1048576 bytes"):
        Inflater().inflate(reference_frame(bytes(64 * 1024 * 1024)), 1024 * 1024)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\xff\xff\xff\xff", "malformed"),
        # A final block: the stream would end, and the next frame could not be read.
        (zlib.compressobj(6, zlib.DEFLATED, -15, zdict=DICTIONARY).compress(b"abc") + b"\x03\x00",
         "ends the stream"),
    ],
)
def test_malformed_compressed_frames_are_refused(frame, reason):
    with pytest.raises(InflateError, match=reason):
        Inflater().inflate(frame, LIMIT)


def test_small_messages_queued_together_share_one_frame_and_come_back_in_order():
    messages = [PEER_MESSAGES.encode(PushAck(n, ())) for n in range(50)]
    (payload,) = FrameWriter().frames([(m, False) for m in messages])
    assert payload[0] == 1
    body = reference_inflater().decompress(payload[1:] + b"\x00\x00\xff\xff")
    assert cbor2.loads(body) == messages
    assert FrameReader(LIMIT).messages(payload) == messages


def test_bundles_are_cut_at_their_byte_and_message_bounds():
    small = PEER_MESSAGES.encode(Push(1, ()))
    big = [random.Random(0).randbytes(BUNDLE_BYTES_MAX // 2 + 1) for _ in range(3)]
    payloads = FrameWriter().frames([(b, False) for b in big])
    assert len(payloads) == 3
    many = [small] * (FRAME_MESSAGES_MAX + 1)
    payloads = FrameWriter().frames([(m, False) for m in many])
    reader = FrameReader(LIMIT)
    assert [len(reader.messages(p)) for p in payloads] == [FRAME_MESSAGES_MAX, 1]


def test_messages_with_secret_keys_go_alone_and_never_enter_the_context():
    secret = Push(2, (Record("private_keys", "K", cbor2.dumps({"secret_key": b"S" * 40}),
                             Version(1, 0, ORIGIN)),))
    assert carries_secret_keys(secret)
    assert not carries_secret_keys(certificate_push(1, 1))
    assert not carries_secret_keys(PushAck(1, ()))
    encoded = [PEER_MESSAGES.encode(m) for m in (PushAck(1, ()), secret, PushAck(3, ()))]
    writer, reader = FrameWriter(), FrameReader(LIMIT)
    payloads = writer.frames([(encoded[0], False), (encoded[1], True), (encoded[2], False)])
    assert [p[0] for p in payloads] == [1, 0, 1]
    assert payloads[1] == b"\x00" + cbor2.dumps([encoded[1]], canonical=True)
    # The context after the secret frame is what it would be without it.
    separate = FrameWriter()
    assert [separate.frames([(e, False)])[0] for e in (encoded[0], encoded[2])] == [
        payloads[0], payloads[2]]
    assert [reader.messages(p) for p in payloads] == [[encoded[0]], [encoded[1]], [encoded[2]]]


def test_a_plain_bundle_over_the_limit_is_refused_before_decoding():
    payload = b"\x00" + cbor2.dumps([bytes(2000)], canonical=True)
    with pytest.raises(FrameContentError, match="over the limit of 1000"):
        FrameReader(1000).messages(payload)


def test_one_certificate_goes_in_far_fewer_bytes_than_it_has():
    # A push of one `consumers` record with a Sequoia-made certificate: the preset
    # dictionary lets even the first frame of a connection shrink.
    from gossipnode.openpgp import consumer_value, generate_key, split_keys
    (parsed,) = split_keys(generate_key("Ann <ann@example.com>", with_secret=False))
    value = cbor2.dumps(consumer_value(parsed), canonical=True)
    push = Push(1, (Record("consumers", parsed.fingerprint, value, Version(1, 0, ORIGIN)),))
    (payload,) = FrameWriter().frames([(PEER_MESSAGES.encode(push), False)])
    assert len(payload) < 0.7 * len(value)
    (data,) = FrameReader(LIMIT).messages(payload)
    assert PEER_MESSAGES.decode(data) == push


def test_type_id_zero_is_reserved():
    from gossipnode.core.errors import LocalProtocolError
    from gossipnode.wire.messages import MessageRegistry
    from tests.wire.samples import Item
    with pytest.raises(LocalProtocolError):
        MessageRegistry().register(0, Item)
