"""The handshake's MACs and the transcripts they cover are what handshake.py documents.

The expected values are written out here from that definition, with libsodium's BLAKE2b
(not the handshake's own hash helper), so a change to what either side signs or MACs,
whether in handshake_keys.py or in how the steps call it, shows as a mismatch.
"""

import nacl.bindings
import nacl.encoding
import nacl.hash
import nacl.public
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.identity import Identity
from gossipnode.wire.channel import SecureChannel
from gossipnode.wire.framing import FrameDecoder
from gossipnode.wire.handshake import Handshake
from gossipnode.wire.handshake_keys import finish_mac, reply_mac
from gossipnode.wire.handshake_messages import HANDSHAKE_MESSAGES, Finish, Hello, Reply

FRAME_BYTES_MAX = 1 << 20
SECRET = bytes(range(32))
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))


def H(person, *parts, key=b""):
    """handshake.py: BLAKE2b, 32-byte digest, keyed by `key`, personalised by `person`, over
    each part as its 8-byte big-endian length then its bytes."""
    data = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
    return nacl.hash.blake2b(data, digest_size=32, key=key, person=person,
                             encoder=nacl.encoding.RawEncoder)


def u64(number):
    return number.to_bytes(8, "big")


@settings(max_examples=50, deadline=None)
@given(master=st.binary(min_size=32, max_size=32), transcript=st.binary(min_size=32, max_size=32),
       signature=st.binary(min_size=64, max_size=64))
def test_the_reply_mac_is_the_masters_mac_over_t2_and_the_responders_signature(
        master, transcript, signature):
    assert reply_mac(master, transcript, signature) == H(
        b"gn-reply-mac", transcript, signature, key=master)


@settings(max_examples=50, deadline=None)
@given(master=st.binary(min_size=32, max_size=32), transcript=st.binary(min_size=32, max_size=32),
       signature=st.binary(min_size=64, max_size=64))
def test_the_finish_mac_is_the_masters_mac_over_t4_and_the_initiators_signature(
        master, transcript, signature):
    assert finish_mac(master, transcript, signature) == H(
        b"gn-finish-mac", transcript, signature, key=master)


def test_the_two_macs_are_not_interchangeable():
    master, transcript, signature = b"m" * 32, b"t" * 32, b"s" * 64
    assert reply_mac(master, transcript, signature) != finish_mac(master, transcript, signature)


@pytest.fixture
def known_ephemeral_keys(monkeypatch):
    """Each handshake's X25519 key, in the order they are made (initiator first): known to
    the test, which needs them to recompute the master key."""
    keys = [nacl.public.PrivateKey(bytes([n]) * 32) for n in (11, 22)]
    handed = list(keys)
    monkeypatch.setattr(nacl.public.PrivateKey, "generate", classmethod(
        lambda cls: handed.pop(0)))
    return keys


def frames(data):
    decoder = FrameDecoder(FRAME_BYTES_MAX)
    decoder.feed(data)
    found = []
    while (frame := decoder.next_frame()) is not None:
        found.append(frame)
    return found


def test_the_macs_and_signatures_on_the_wire_are_the_documented_ones(known_ephemeral_keys):
    initiator_key, responder_key = known_ephemeral_keys
    left = Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=FRAME_BYTES_MAX,
                               versions=(4, 5))
    right = Handshake.responder(BOB, (SECRET,), frame_bytes_max=FRAME_BYTES_MAX)
    hello_sent = left.data_to_send()
    right.receive_data(hello_sent)
    reply_sent = right.data_to_send()
    left.receive_data(reply_sent)
    finish_sent = left.data_to_send()
    right.receive_data(finish_sent)
    assert left.result and right.result
    [hello_bytes], [reply_bytes], [finish_bytes] = map(frames, (hello_sent, reply_sent,
                                                                finish_sent))
    hello = HANDSHAKE_MESSAGES.decode(hello_bytes)
    reply = HANDSHAKE_MESSAGES.decode(reply_bytes)
    finish = HANDSHAKE_MESSAGES.decode(finish_bytes)
    assert (type(hello), type(reply), type(finish)) == (Hello, Reply, Finish)

    versions = b"".join(map(u64, hello.versions))
    assert hello.mac == H(b"gn-hello-mac", versions, hello.ephemeral_key, hello.nonce,
                          key=SECRET)
    t2 = H(b"gn-t2", hello_bytes, u64(reply.version), reply.ephemeral_key, reply.nonce,
           reply.node_id)
    dh = nacl.bindings.crypto_scalarmult(bytes(initiator_key), reply.ephemeral_key)
    assert dh == nacl.bindings.crypto_scalarmult(bytes(responder_key), hello.ephemeral_key)
    master = H(b"gn-master", dh, t2, key=SECRET)
    nacl.signing.VerifyKey(BOB.node_id).verify(t2, reply.signature)
    assert reply.mac == H(b"gn-reply-mac", t2, reply.signature, key=master)

    t3 = H(b"gn-t3", t2, reply.signature, reply.mac)
    t4 = H(b"gn-t4", t3, finish.node_id)
    assert finish.node_id == ALICE.node_id
    nacl.signing.VerifyKey(ALICE.node_id).verify(t4, finish.signature)
    assert finish.mac == H(b"gn-finish-mac", t4, finish.signature, key=master)

    # The channel keys follow from the same transcript: a channel built from them alone
    # talks with each side.
    final = H(b"gn-final", t4, finish.signature, finish.mac)
    i2r = H(b"gn-key-i2r", final, key=master)
    r2i = H(b"gn-key-r2i", final, key=master)
    as_responder = SecureChannel(r2i, i2r, FRAME_BYTES_MAX)
    as_responder.receive_data(left.result.channel.seal(b"to bob"))
    assert as_responder.next_payload() == b"to bob"
    as_initiator = SecureChannel(i2r, r2i, FRAME_BYTES_MAX)
    as_initiator.receive_data(right.result.channel.seal(b"to alice"))
    assert as_initiator.next_payload() == b"to alice"
