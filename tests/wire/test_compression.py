"""Compressed peer messages: smaller on the wire, decoded to the same message, and inflated
only within a limit declared and checked before any work (no zip bomb gets through)."""

import zlib

import cbor2
import pytest

from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.wire.compression import deflate
from gossipnode.wire.deflate_dictionary import DICTIONARY
from gossipnode.wire.messages import MessageError, MessageRegistry
from gossipnode.wire.peer_messages import PEER_MESSAGES
from tests.wire.samples import ORIGIN


def raw_deflate(data: bytes, level: int = 6) -> bytes:
    """An independent raw DEFLATE stream (zlib with wbits -15 and the protocol's preset
    dictionary), not the module's own."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=DICTIONARY)
    return compressor.compress(data) + compressor.flush()


def envelope(size: int, stream: bytes) -> bytes:
    return cbor2.dumps([0, size, stream], canonical=True)


def batch(count: int) -> Push:
    records = tuple(
        Record("consumers", f"{n:040X}", cbor2.dumps({"cert": bytes(300), "n": n}),
               Version(1_700_000_000_000 + n, 0, ORIGIN))
        for n in range(count)
    )
    return Push(7, records)


def test_a_batch_of_records_goes_compressed_and_comes_back_equal():
    message = batch(50)
    plain = cbor2.dumps([20, 7, [[r.dataset, r.key, r.value, [r.version.wall_ms,
                                  r.version.counter, r.version.origin], r.signature]
                                 for r in message.records]], canonical=True)
    data = PEER_MESSAGES.encode(message)
    assert len(data) < len(plain) // 4
    outer = cbor2.loads(data)
    assert outer[0] == 0 and outer[1] == len(plain)
    inflater = zlib.decompressobj(-15, zdict=DICTIONARY)
    assert inflater.decompress(outer[2]) == plain
    assert PEER_MESSAGES.decode(data) == message


def test_a_small_message_goes_as_it_is():
    message = Push(1, ())
    data = PEER_MESSAGES.encode(message)
    assert cbor2.loads(data) == [20, 1, []]


def test_a_zip_bomb_is_refused_by_its_declared_size_before_inflating():
    registry = MessageRegistry(inflated_bytes_max=1024 * 1024)
    bomb = raw_deflate(bytes(64 * 1024 * 1024), 9)  # 64 MiB of zeros in about 64 KiB
    with pytest.raises(MessageError, match="declares"):
        registry.decode(envelope(64 * 1024 * 1024, bomb))


def test_a_stream_that_inflates_past_what_it_declared_is_refused():
    registry = MessageRegistry(inflated_bytes_max=1024 * 1024)
    bomb = raw_deflate(bytes(64 * 1024 * 1024), 9)
    with pytest.raises(MessageError, match="more than"):
        registry.decode(envelope(1000, bomb))


@pytest.mark.parametrize(
    ("stream", "size", "reason"),
    [
        (raw_deflate(b"\x82\x15\x01"), 5, "inflates to 3 bytes"),  # shorter than declared
        (raw_deflate(b"\x82\x15\x01")[:-2], 3, "does not end|malformed"),  # cut short
        (raw_deflate(b"\x82\x15\x01") + b"\x00", 3, "after its end"),  # trailing bytes
        (b"\xff\xff\xff\xff", 3, "malformed"),
    ],
)
def test_malformed_compressed_messages_are_refused(stream, size, reason):
    with pytest.raises(MessageError, match=reason):
        PEER_MESSAGES.decode(envelope(size, stream))


@pytest.mark.parametrize(
    "outer",
    [[0, 3], [0, "3", b""], [0, 3, "text"], [0, -1, b""], [0, 0, b""], [False, 3, b""]],
)
def test_a_malformed_envelope_is_refused(outer):
    with pytest.raises(MessageError):
        PEER_MESSAGES.decode(cbor2.dumps(outer, canonical=True))


def test_an_envelope_inside_an_envelope_is_refused():
    inner = envelope(3, raw_deflate(b"\x82\x15\x01"))
    with pytest.raises(MessageError, match="inside"):
        PEER_MESSAGES.decode(envelope(len(inner), raw_deflate(inner)))


def test_the_inflated_message_is_decoded_as_strictly_as_a_plain_one():
    not_canonical = b"\x82\x15\x19\x00\x01"  # [21, 1] with a non-shortest integer
    with pytest.raises(MessageError):
        PEER_MESSAGES.decode(envelope(len(not_canonical), raw_deflate(not_canonical)))


def test_one_certificate_goes_in_far_fewer_bytes_than_it_has():
    # A push of one `consumers` record with a Sequoia-made certificate: the preset
    # dictionary lets even a batch of one shrink.
    from gossipnode.openpgp import consumer_value, generate_key, split_keys
    (parsed,) = split_keys(generate_key("Ann <ann@example.com>", with_secret=False))
    value = cbor2.dumps(consumer_value(parsed), canonical=True)
    push = Push(1, (Record("consumers", parsed.fingerprint, value, Version(1, 0, ORIGIN)),))
    data = PEER_MESSAGES.encode(push)
    assert len(data) < 0.7 * len(value)
    assert PEER_MESSAGES.decode(data) == push


def test_type_id_zero_is_reserved():
    from gossipnode.core.errors import LocalProtocolError
    from tests.wire.samples import Item
    with pytest.raises(LocalProtocolError):
        MessageRegistry().register(0, Item)


@pytest.mark.parametrize("size", [256, 700, 1_500, 4_000, 15_000, 31_000, 33_000, 200_000])
def test_the_window_sized_to_the_message_gives_the_stream_of_the_largest_window(size):
    # Names, repeated text and random bytes mixed, as a batch of member statements is.
    import random
    rng = random.Random(size)
    parts: list[bytes] = []
    while sum(map(len, parts)) < size:
        parts.append(rng.choice([b"private_keys", b"gossipnode/0.1.0 proto/2", DICTIONARY[64:96]])
                     if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 64)))
    payload = b"".join(parts)[:size]
    assert deflate(payload) == raw_deflate(payload)
