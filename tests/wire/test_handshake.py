from dataclasses import dataclass

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.core.errors import LocalProtocolError
from gossipnode.identity import Identity
from gossipnode.wire.handshake import (
    PROTOCOL_VERSIONS,
    Handshake,
    HandshakeError,
    format_versions,
)
from gossipnode.wire.handshake_cache import REPLY_CACHE_S, ReplyCache

FRAME_BYTES_MAX = 4 * 1024 * 1024
SECRET = b"s" * 32
OLD_SECRET = b"o" * 32
ALICE = Identity(nacl.signing.SigningKey(b"a" * 32))
BOB = Identity(nacl.signing.SigningKey(b"b" * 32))
MALLORY = Identity(nacl.signing.SigningKey(b"m" * 32))


@dataclass(frozen=True)
class Impostor:
    """Claims another node's id but can only sign with its own key."""

    claimed: Identity
    real: Identity

    @property
    def node_id(self):
        return self.claimed.node_id

    def sign(self, message):
        return self.real.sign(message)


def initiator(identity=ALICE, secrets=(SECRET,), **options):
    return Handshake.initiator(identity, secrets, frame_bytes_max=FRAME_BYTES_MAX, **options)


def responder(identity=BOB, secrets=(SECRET,), **options):
    return Handshake.responder(identity, secrets, frame_bytes_max=FRAME_BYTES_MAX, **options)


def run(left, right):
    """Shuttle bytes until both are done; returns what each side sent, for replays."""
    sent = {"left": [], "right": []}
    for _ in range(4):  # three messages; a fourth round would be a bug
        data = left.data_to_send()
        if data:
            sent["left"].append(data)
            right.receive_data(data)
        data = right.data_to_send()
        if data:
            sent["right"].append(data)
            left.receive_data(data)
        if left.result and right.result:
            return sent
    raise AssertionError("the handshake did not finish in three messages")


def test_two_nodes_authenticate_each_other_and_talk_both_ways():
    left, right = initiator(expected_peer=BOB.node_id), responder()
    run(left, right)
    assert left.result.peer_id == BOB.node_id
    assert right.result.peer_id == ALICE.node_id
    assert left.result.version == right.result.version == PROTOCOL_VERSIONS[-1]
    to_bob = left.result.channel.seal(b"hello bob")
    right.result.channel.receive_data(to_bob)
    assert right.result.channel.next_payload() == b"hello bob"
    left.result.channel.receive_data(right.result.channel.seal(b"hello alice"))
    assert left.result.channel.next_payload() == b"hello alice"


def test_each_handshake_derives_fresh_keys():
    first, second = initiator(), initiator()
    run(first, responder())
    run(second, responder())
    assert first.result.channel.seal(b"same") != second.result.channel.seal(b"same")


def test_bytes_pipelined_after_the_last_message_reach_the_channel():
    left, right = initiator(), responder()
    right.receive_data(left.data_to_send())
    left.receive_data(right.data_to_send())
    finish = left.data_to_send()
    right.receive_data(finish + left.result.channel.seal(b"early"))
    assert right.result.channel.next_payload() == b"early"


def test_the_highest_shared_version_wins():
    left, right = initiator(versions=(1, 2, 3)), responder(versions=(2, 3, 4))
    run(left, right)
    assert left.result.version == right.result.version == 3


def test_no_common_version_is_a_clear_refusal_on_both_sides():
    left, right = initiator(versions=(1,)), responder(versions=(2, 3))
    with pytest.raises(HandshakeError) as responder_error:
        right.receive_data(left.data_to_send())
    assert str(responder_error.value) == "no common protocol version: ours 2-3, theirs 1-1"
    with pytest.raises(HandshakeError) as initiator_error:
        left.receive_data(right.data_to_send())
    assert str(initiator_error.value) == "no common protocol version: ours 1-1, theirs 2-3"


def test_a_wrong_cluster_secret_is_refused_and_reported_to_the_initiator():
    left, right = initiator(secrets=(b"w" * 32,)), responder()
    with pytest.raises(HandshakeError, match="wrong cluster secret"):
        right.receive_data(left.data_to_send())
    with pytest.raises(HandshakeError, match=r"unauthenticated.*wrong cluster secret"):
        left.receive_data(right.data_to_send())
    assert left.result is None
    assert right.result is None


def test_rotation_accepts_the_old_secret_and_connects_with_the_first():
    # A node that already has the new secret first still accepts a node on the old one.
    run(initiator(secrets=(OLD_SECRET,)), responder(secrets=(SECRET, OLD_SECRET)))
    # And a node with both connects with the new one, which a node on only the old refuses.
    left, right = initiator(secrets=(SECRET, OLD_SECRET)), responder(secrets=(OLD_SECRET,))
    with pytest.raises(HandshakeError, match="wrong cluster secret"):
        right.receive_data(left.data_to_send())


def test_a_forged_initiator_identity_is_refused():
    left, right = initiator(identity=Impostor(ALICE, MALLORY)), responder()
    right.receive_data(left.data_to_send())
    left.receive_data(right.data_to_send())
    with pytest.raises(HandshakeError, match="bad signature"):
        right.receive_data(left.data_to_send())
    assert right.result is None


def test_a_forged_responder_identity_is_refused():
    left, right = initiator(), responder(identity=Impostor(BOB, MALLORY))
    right.receive_data(left.data_to_send())
    with pytest.raises(HandshakeError, match="bad signature"):
        left.receive_data(right.data_to_send())
    assert left.result is None


def test_an_unexpected_peer_is_refused():
    left, right = initiator(expected_peer=MALLORY.node_id), responder()
    right.receive_data(left.data_to_send())
    with pytest.raises(HandshakeError, match=r"expected node .* but the peer proved it is"):
        left.receive_data(right.data_to_send())


def test_connecting_to_ourselves_is_refused():
    left, right = initiator(identity=BOB), responder(identity=BOB)
    right.receive_data(left.data_to_send())
    with pytest.raises(HandshakeError, match="our own node id"):
        left.receive_data(right.data_to_send())


def test_a_replayed_initiator_handshake_is_refused():
    recorded = run(initiator(), responder())["left"]
    replay_target = responder()
    replay_target.receive_data(recorded[0])  # the hello alone is only a MAC'd greeting
    with pytest.raises(HandshakeError, match="MAC mismatch"):
        replay_target.receive_data(recorded[1])
    assert replay_target.result is None


def test_a_replayed_responder_handshake_is_refused():
    recorded = run(initiator(), responder())["right"]
    replay_target = initiator()
    with pytest.raises(HandshakeError, match="MAC mismatch"):
        replay_target.receive_data(recorded[0])
    assert replay_target.result is None


@pytest.mark.parametrize("position", [6, 40, 80, 150, -40, -1])
def test_a_tampered_reply_is_refused(position):
    left, right = initiator(), responder()
    right.receive_data(left.data_to_send())
    reply = bytearray(right.data_to_send())
    reply[position] ^= 0x40
    with pytest.raises(HandshakeError):
        left.receive_data(bytes(reply))
    assert left.result is None


def test_an_oversized_handshake_frame_is_refused_before_buffering():
    with pytest.raises(HandshakeError, match=r"malformed handshake: .*over the limit"):
        responder().receive_data(b"\x00\x10\x00\x00")


def test_a_second_hello_before_our_turn_is_refused():
    hello = initiator().data_to_send()
    with pytest.raises(HandshakeError, match=r"unexpected Hello \(expected Finish\)"):
        responder().receive_data(hello + hello)


def test_a_message_out_of_turn_is_refused():
    left, right = initiator(), responder()
    right.receive_data(left.data_to_send())
    reply = right.data_to_send()
    with pytest.raises(HandshakeError, match="unexpected Reply"):
        responder().receive_data(reply)


def test_a_failed_handshake_stays_failed():
    right = responder()
    with pytest.raises(HandshakeError):
        right.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(HandshakeError):
        right.receive_data(initiator().data_to_send())


def test_misuse_is_our_error():
    with pytest.raises(LocalProtocolError, match="at least one cluster secret"):
        Handshake.initiator(ALICE, (), frame_bytes_max=FRAME_BYTES_MAX)
    with pytest.raises(LocalProtocolError, match="16 to 64 bytes"):
        Handshake.responder(BOB, (SECRET, b"short"), frame_bytes_max=FRAME_BYTES_MAX)
    with pytest.raises(LocalProtocolError, match="protocol versions"):
        Handshake.initiator(ALICE, (SECRET,), frame_bytes_max=FRAME_BYTES_MAX, versions=())


@pytest.mark.parametrize(
    ("versions", "text"),
    [((1,), "1-1"), ((3, 1, 2), "1-3"), ((1, 3), "1,3"), ((2, 2, 3), "2-3"), ((), "none")],
)
def test_versions_are_shown_as_ranges(versions, text):
    assert format_versions(versions) == text


def test_a_hostile_version_list_is_refused_cheaply():
    # Versions 0 and 2**64 - 1: formatting them must not build the range between.
    left, right = initiator(versions=(0, 2**64 - 1)), responder()
    with pytest.raises(HandshakeError, match=r"theirs 0,18446744073709551615"):
        right.receive_data(left.data_to_send())


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_to_a_responder_only_ever_raise_handshake_error(data):
    right = responder()
    try:
        right.receive_data(data)
    except HandshakeError:
        return
    assert right.result is None


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_to_an_initiator_only_ever_raise_handshake_error(data):
    left = initiator()
    left.data_to_send()
    try:
        left.receive_data(data)
    except HandshakeError:
        return
    assert left.result is None


class CountingSigner:
    """BOB, counting the signatures it makes (the expensive step a replay must not cost)."""

    def __init__(self):
        self.signatures = 0

    @property
    def node_id(self):
        return BOB.node_id

    def sign(self, message):
        self.signatures += 1
        return BOB.sign(message)


def test_a_replayed_hello_is_answered_from_the_cache_and_can_never_finish():
    cache = ReplyCache()
    signer = CountingSigner()
    recorded = run(initiator(), responder(signer, reply_cache=cache, now=0.0))
    hello, finish = recorded["left"]
    assert signer.signatures == 1
    replies = set()
    for moment in range(100):  # a replay flood within the cache's window
        target = responder(signer, reply_cache=cache, now=float(moment) / 10)
        target.receive_data(hello)
        replies.add(target.data_to_send())
        with pytest.raises(HandshakeError, match="replayed"):
            target.receive_data(finish)
        assert target.result is None
    assert signer.signatures == 1  # no signature (nor key exchange) per replay
    assert replies == set(recorded["right"][:1])  # the same reply bytes every time
    assert len(cache) == 1


def test_an_unfinished_handshake_still_finishes_from_a_cached_reply():
    """The original initiator may retransmit (a new connection) before finishing: the
    cached state lets it finish, and the keys work."""
    cache = ReplyCache()
    signer = CountingSigner()
    left = initiator()
    hello = left.data_to_send()
    first = responder(signer, reply_cache=cache, now=0.0)
    first.receive_data(hello)
    first.data_to_send()  # that connection is lost before the reply arrives
    second = responder(signer, reply_cache=cache, now=1.0)
    second.receive_data(hello)
    left.receive_data(second.data_to_send())
    second.receive_data(left.data_to_send())
    assert left.result and second.result
    assert signer.signatures == 1
    frame = left.result.channel.seal(b"hello")
    second.result.channel.receive_data(frame)
    assert second.result.channel.next_payload() == b"hello"


def test_a_replay_after_the_window_costs_again_and_the_cache_stays_bounded():
    cache = ReplyCache()
    signer = CountingSigner()
    hello = initiator().data_to_send()
    responder(signer, reply_cache=cache, now=0.0).receive_data(hello)
    responder(signer, reply_cache=cache, now=REPLY_CACHE_S + 1).receive_data(hello)
    assert signer.signatures == 2
    assert len(cache) == 1


def test_the_keyed_hash_is_libsodiums_keyed_blake2b_with_a_person():
    import nacl.encoding
    import nacl.hash

    from gossipnode.wire.handshake_types import keyed_hash

    for person, parts, key in [(b"gn-t3", (b"a", b""), b""),
                               (b"gn-reply-mac", (b"x" * 100,), b"k" * 32),
                               (b"p" * 16, (), b"k" * 64)]:
        data = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
        assert keyed_hash(person, *parts, key=key) == nacl.hash.blake2b(
            data, digest_size=32, key=key, person=person, encoder=nacl.encoding.RawEncoder)
