"""The OpenPGP boundary: key files, secret-key detection, record values.

Keys are generated on the fly with pysequoia and read from GnuPG-made fixtures
(tests/data/openpgp/README.md says how they were made).
"""

from __future__ import annotations

import bz2
import zlib
from base64 import b64encode
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pysequoia import Cert
from pysequoia.packet import PacketPile, Tag

from gossipnode.core.errors import LocalProtocolError
from gossipnode.openpgp import (
    FILE_BYTES_MAX,
    KeyParseError,
    consumer_value,
    contains_secret_key_material,
    generate_key,
    keys,
    private_key_value,
    split_keys,
    value_holds_secret,
)
from gossipnode.openpgp.packets import armor_blocks, has_secret_packet, iter_packets
from gossipnode.wire.cbor import decode_value, encode_value

DATA = Path(__file__).parent / "data" / "openpgp"
SECRET_TAGS = (Tag.SecretKey, Tag.SecretSubkey)

# Generated once: pysequoia makes an Ed25519/Cv25519 key in about a millisecond, but the
# fuzz tests below need fixed inputs to mutate.
ALICE_SECRET = generate_key("Alice <alice@example.org>")
BOB_PUBLIC = generate_key("Bob <bob@example.org>", with_secret=False)
CAROL_SECRET = generate_key(
    "Carol <carol@example.org>", extra_user_ids=("Carol W <cw@example.net>",)
)


def sequoia_tags(data: bytes) -> list[Tag]:
    return [packet.tag for packet in PacketPile.from_bytes(data)]


def packet(tag: int, body: bytes) -> bytes:
    """A new-format packet with a five-octet length."""
    return bytes([0xC0 | tag, 0xFF]) + len(body).to_bytes(4, "big") + body


def secret_key_body() -> bytes:
    (parsed,) = split_keys(ALICE_SECRET)
    assert parsed.secret_key is not None
    tag, body = next(iter_packets(parsed.secret_key))
    assert tag == 5
    return body


# --- split_keys ---------------------------------------------------------------------------


def test_generated_secret_key_splits_into_public_and_secret_parts():
    (parsed,) = split_keys(ALICE_SECRET)
    assert parsed.user_ids == ("Alice <alice@example.org>",)
    assert parsed.email == "alice@example.org"
    assert len(parsed.fingerprint) == 40
    assert parsed.fingerprint == parsed.fingerprint.lower()
    assert parsed.secret_key is not None
    assert Tag.SecretKey in sequoia_tags(parsed.secret_key)
    assert Tag.SecretSubkey in sequoia_tags(parsed.secret_key)
    assert not any(tag in SECRET_TAGS for tag in sequoia_tags(parsed.public_cert))
    assert Tag.PublicKey in sequoia_tags(parsed.public_cert)
    assert not contains_secret_key_material(parsed.public_cert)
    assert contains_secret_key_material(ALICE_SECRET)
    assert contains_secret_key_material(parsed.secret_key)
    assert parsed.expires_unix_s is None
    assert parsed.revoked is False


def test_binary_and_armored_forms_parse_the_same():
    (armored,) = split_keys(ALICE_SECRET)
    assert armored.secret_key is not None
    (from_binary,) = split_keys(armored.secret_key)
    assert from_binary == armored


def test_public_only_file_has_no_secret():
    (parsed,) = split_keys(BOB_PUBLIC)
    assert parsed.secret_key is None
    assert parsed.user_ids == ("Bob <bob@example.org>",)
    assert not contains_secret_key_material(BOB_PUBLIC)
    assert not contains_secret_key_material(parsed.public_cert)


def test_armored_file_with_two_keys_gives_both_in_order():
    data = BOB_PUBLIC + b"\n" + ALICE_SECRET
    first, second = split_keys(data)
    assert first.user_ids == ("Bob <bob@example.org>",)
    assert first.secret_key is None
    assert second.user_ids == ("Alice <alice@example.org>",)
    assert second.secret_key is not None


def test_secret_block_after_public_block_is_detected():
    """Sequoia's PacketPile reads only the first armor block: the reason for going block
    by block and for the pure-Python walker."""
    data = BOB_PUBLIC + b"\n" + ALICE_SECRET
    assert not any(tag in SECRET_TAGS for tag in sequoia_tags(data))
    assert contains_secret_key_material(data)


def test_binary_concatenation_of_three_keys_gives_three():
    alice, bob, carol = (split_keys(key)[0] for key in (ALICE_SECRET, BOB_PUBLIC, CAROL_SECRET))
    assert alice.secret_key is not None
    assert carol.secret_key is not None
    data = alice.secret_key + bob.public_cert + carol.secret_key
    parsed = split_keys(data)
    assert [key.fingerprint for key in parsed] == [
        alice.fingerprint, bob.fingerprint, carol.fingerprint,
    ]
    assert [key.secret_key is not None for key in parsed] == [True, False, True]
    assert parsed[2].user_ids == ("Carol <carol@example.org>", "Carol W <cw@example.net>")


def test_expiry_is_reported():
    (parsed,) = split_keys(generate_key("Eve <eve@example.org>", validity_s=86_400))
    assert parsed.expires_unix_s is not None
    assert parsed.expires_unix_s - parsed.created_unix_s == 86_400


def test_gnupg_keys():
    (alice,) = split_keys((DATA / "alice.pub.asc").read_bytes())
    # gpg --quick-set-primary-uid made the "Work" user ID primary; Sequoia sorts it second.
    assert alice.user_ids == (
        "Alice Work <alice@work.example.com>",
        "Alice Example <alice@example.org>",
    )
    assert alice.email == "alice@work.example.com"
    assert alice.fingerprint == "6686f8dac1a44e428888c80eb3fa20c10dfe2ddf"
    assert alice.secret_key is None
    (alice_secret,) = split_keys((DATA / "alice.sec.asc").read_bytes())
    assert alice_secret.secret_key is not None
    assert alice_secret.public_cert == alice.public_cert

    (bob,) = split_keys((DATA / "bob.pub.gpg").read_bytes())
    (bob_secret,) = split_keys((DATA / "bob.sec.gpg").read_bytes())
    assert bob.secret_key is None
    assert bob_secret.secret_key is not None
    # Sequoia re-encodes packet headers (gpg writes old-format ones); the packets are equal.
    assert [body for _, body in iter_packets(bob_secret.secret_key)] == [
        body for _, body in iter_packets((DATA / "bob.sec.gpg").read_bytes())
    ]
    assert bob_secret.public_cert == bob.public_cert

    (carol,) = split_keys((DATA / "carol.sec.asc").read_bytes())  # passphrase-protected
    assert carol.secret_key is not None
    assert contains_secret_key_material((DATA / "carol.sec.asc").read_bytes())

    (dave,) = split_keys((DATA / "dave-revoked.pub.asc").read_bytes())
    assert dave.revoked is True
    assert alice.revoked is False


@pytest.mark.parametrize("name", ["alice.sec.asc", "bob.sec.gpg", "carol.sec.asc"])
def test_gnupg_secret_files_are_secret_and_their_public_parts_are_not(name):
    data = (DATA / name).read_bytes()
    assert contains_secret_key_material(data)
    assert has_secret_packet(data)
    (parsed,) = split_keys(data)
    assert not contains_secret_key_material(parsed.public_cert)


@pytest.mark.parametrize("name", ["alice.pub.asc", "bob.pub.gpg", "dave-revoked.pub.asc"])
def test_gnupg_public_files_are_not_secret(name):
    assert not contains_secret_key_material((DATA / name).read_bytes())


# --- errors ---------------------------------------------------------------------------------


def truncated_armor() -> bytes:
    lines = ALICE_SECRET.splitlines(keepends=True)
    return b"".join(lines[:8] + lines[-2:])  # body cut short, armor lines intact


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        (b"", "no OpenPGP key found"),
        (b"hello, world", ""),
        (b"\x00" * 64, ""),
        (lambda: split_keys(BOB_PUBLIC)[0].public_cert[:100], ""),
        (truncated_armor, ""),
        (lambda: ALICE_SECRET[:300], ""),
        (lambda: packet(11, b"b\x00\x00\x00\x00\x00hello"), "not a key file"),
        (lambda: bytes(packet(2, b"\x04\x20" + b"\x00" * 20)), ""),
    ],
)
def test_garbage_and_truncated_keys_give_one_line_errors(monkeypatch, data, reason_part):
    monkeypatch.setenv("RUST_BACKTRACE", "1")
    if callable(data):
        data = data()
    with pytest.raises(KeyParseError) as caught:
        split_keys(data)
    reason = str(caught.value)
    assert reason
    assert "\n" not in reason
    assert len(reason) <= keys.REASON_CHARACTERS_MAX
    assert reason_part in reason


def test_limits_are_checked():
    with pytest.raises(KeyParseError, match="over"):
        split_keys(b"\x00" * (FILE_BYTES_MAX + 1))


def test_per_key_and_per_file_limits(monkeypatch):
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    two_keys = split_keys(BOB_PUBLIC)[0].public_cert + alice.secret_key  # one binary chunk
    monkeypatch.setattr(keys, "KEYS_PER_FILE_MAX", 1)
    with pytest.raises(KeyParseError, match="more than 1 keys"):
        split_keys(two_keys)
    monkeypatch.setattr(keys, "KEYS_PER_FILE_MAX", 10)
    monkeypatch.setattr(keys, "KEY_BYTES_MAX", 500)
    with pytest.raises(KeyParseError, match="over 500 bytes"):
        split_keys(two_keys)


def test_unparsable_secret_subkey_is_refused_not_leaked():
    """Found by the fuzz test: Sequoia keeps a secret subkey packet it cannot parse (here:
    a bad checksum over the secret scalar) as an opaque packet and copies it verbatim into
    `bytes(cert)`. split_keys must refuse such a key."""
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    parts = list(iter_packets(alice.secret_key))
    tag, body = parts[-2]
    assert tag == 7  # the encryption subkey; its last two bytes are the secret's checksum
    parts[-2] = (tag, body[:-1] + bytes([body[-1] ^ 0xFF]))
    data = b"".join(packet(tag, body) for tag, body in parts)
    leaky = Cert.from_packets(list(PacketPile.from_bytes(data)))
    assert Tag.SecretSubkey in sequoia_tags(bytes(leaky))  # the hazard itself
    with pytest.raises(KeyParseError, match="malformed secret key packet"):
        split_keys(data)
    assert contains_secret_key_material(data)


def test_too_many_armor_blocks_are_refused_not_parsed_forever(monkeypatch):
    limit = keys.SEQUOIA_PARSES_PER_CHECK_MAX
    assert not contains_secret_key_material(BOB_PUBLIC * 3)
    assert contains_secret_key_material(BOB_PUBLIC * (limit + 1))
    # One budget for a whole value: many small public leaves add up.
    assert not value_holds_secret({"keys": [BOB_PUBLIC.decode()] * 3})
    assert value_holds_secret({"keys": [BOB_PUBLIC.decode()] * (limit + 1)})
    monkeypatch.setattr(keys, "KEYS_PER_FILE_MAX", 2)
    with pytest.raises(KeyParseError, match="armor blocks"):
        split_keys(BOB_PUBLIC * 3)


def test_text_input_is_checked_as_utf8():
    assert contains_secret_key_material(ALICE_SECRET.decode())
    assert not contains_secret_key_material(BOB_PUBLIC.decode())
    assert not contains_secret_key_material("alice@example.org")


def test_secret_packet_only_sequoia_recognizes_is_detected():
    """A secret subkey with an unknown key version: the walker calls the body implausible
    (rule 3 of packets.py), Sequoia still reports the Secret-Subkey tag. The union of both
    answers is what keeps it out of `consumers`."""
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    tag, secret_body = list(iter_packets(alice.secret_key))[-2]
    assert tag == 7
    parts = list(iter_packets(alice.public_cert))
    parts[-2] = (7, bytes([0x7F]) + secret_body[1:])  # in place of the public subkey
    data = b"".join(packet(tag, body) for tag, body in parts)
    assert not has_secret_packet(data)
    assert Tag.SecretSubkey in sequoia_tags(data)
    assert contains_secret_key_material(data)
    with pytest.raises(KeyParseError):
        split_keys(data)


# --- record values ------------------------------------------------------------------------


def test_consumer_value_is_public_and_encodable():
    (parsed,) = split_keys(ALICE_SECRET)
    value = consumer_value(parsed)
    assert value["type"] == "internal"
    assert value["fingerprint"] == parsed.fingerprint
    assert value["email"] == "alice@example.org"
    assert value["cert"] == parsed.public_cert
    decoded = decode_value(encode_value(value))
    assert decoded == value
    assert not value_holds_secret(decoded)
    (bob,) = split_keys(BOB_PUBLIC)
    assert consumer_value(bob)["type"] == "external"
    assert consumer_value(parsed, consumer_type="external")["type"] == "external"
    with pytest.raises(LocalProtocolError):
        consumer_value(bob, consumer_type="admin")


def test_private_key_value_holds_the_secret():
    (parsed,) = split_keys(ALICE_SECRET)
    value = private_key_value(parsed)
    assert value == {"fingerprint": parsed.fingerprint, "secret_key": parsed.secret_key}
    assert value_holds_secret(decode_value(encode_value(value)))
    with pytest.raises(LocalProtocolError):
        private_key_value(split_keys(BOB_PUBLIC)[0])


def test_value_with_secret_nested_in_a_list_is_detected():
    (parsed,) = split_keys(ALICE_SECRET)
    honest = consumer_value(split_keys(BOB_PUBLIC)[0])
    assert not value_holds_secret(honest)
    sneaky_armored = {
        **honest, "devices": [{"name": "phone", "keys": ["x", ALICE_SECRET.decode()]}],
    }
    assert value_holds_secret(sneaky_armored)
    sneaky_binary = {**honest, "devices": [[1, 2, {"blob": parsed.secret_key}]]}
    assert value_holds_secret(decode_value(encode_value(sneaky_binary)))
    sneaky_key = {**honest, ALICE_SECRET.decode(): 1}
    assert value_holds_secret(sneaky_key)
    sneaky_text = {**honest, "note": "see below\n" + ALICE_SECRET.decode() + "\nthanks"}
    assert value_holds_secret(sneaky_text)


# --- the pure-Python walker ----------------------------------------------------------------


def old_format(tag: int, body: bytes, length_type: int) -> bytes:
    header = bytes([0x80 | (tag << 2) | length_type])
    if length_type == 3:
        return header + body
    size = (1, 2, 4)[length_type]
    return header + len(body).to_bytes(size, "big") + body


def new_format_partial(tag: int, body: bytes) -> bytes:
    """Partial body lengths: chunks of 32 bytes, then a final one-octet length."""
    out = bytearray([0xC0 | tag])
    position = 0
    while len(body) - position > 32:
        out += bytes([0xE0 | 5]) + body[position:position + 32]
        position += 32
    rest = body[position:]
    return bytes(out + bytes([len(rest)]) + rest)


@pytest.mark.parametrize("length_type", [1, 2, 3])
def test_walker_reads_old_format_headers(length_type):
    body = secret_key_body()
    assert has_secret_packet(old_format(5, body, length_type))
    assert has_secret_packet(old_format(7, body, length_type))
    assert not has_secret_packet(old_format(6, body, length_type))


def test_walker_reads_new_format_partial_lengths():
    body = secret_key_body()
    data = new_format_partial(5, body)
    assert [tag for tag, _ in iter_packets(data)] == [5]
    assert next(iter_packets(data))[1] == body
    assert has_secret_packet(data)


def test_walker_finds_secret_after_a_public_key_and_before_garbage():
    (bob,) = split_keys(BOB_PUBLIC)
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    data = bob.public_cert + alice.secret_key + b"\xff trailing garbage"
    with pytest.raises(KeyParseError):
        split_keys(data)
    assert contains_secret_key_material(data)


@pytest.mark.parametrize("algorithm", [0, 1, 2, 3])
def test_walker_opens_compressed_packets(algorithm):
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    compress = {
        0: lambda data: data,
        1: lambda data: zlib.compress(data)[2:-4],  # raw deflate
        2: zlib.compress,
        3: bz2.compress,
    }[algorithm]
    message = packet(8, bytes([algorithm]) + compress(alice.secret_key))
    assert contains_secret_key_material(message)
    (bob,) = split_keys(BOB_PUBLIC)
    public_message = packet(8, bytes([algorithm]) + compress(bob.public_cert))
    assert not contains_secret_key_material(public_message)


def test_bare_base64_secret_is_detected():
    (alice,) = split_keys(ALICE_SECRET)
    assert alice.secret_key is not None
    assert contains_secret_key_material(b64encode(alice.secret_key))
    assert not contains_secret_key_material(b64encode(alice.public_cert))


def test_text_that_only_looks_like_a_header_is_not_secret():
    # "Ł" is UTF-8 C5 81: a new-format tag-5 header with a 129-byte length.
    name = "Łukasz Żółć " * 20
    assert name.encode()[0] == 0xC5
    assert not value_holds_secret({"name": name, "email": "lukasz@example.org"})
    assert not contains_secret_key_material(b"\xff\xd8\xff\xe0" + b"\x00" * 200)  # a JPEG start


def test_armor_blocks_are_found_anywhere():
    data = b"prefix " + BOB_PUBLIC + b" middle " + ALICE_SECRET + b" -----BEGIN PGP MESSAGE-----"
    kinds = [kind for kind, _ in armor_blocks(data)]
    assert kinds == ["PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK"]


# --- fuzz ------------------------------------------------------------------------------------


def _samples() -> list[bytes]:
    (alice,) = split_keys(ALICE_SECRET)
    (bob,) = split_keys(BOB_PUBLIC)
    assert alice.secret_key is not None
    return [
        ALICE_SECRET, BOB_PUBLIC, alice.secret_key, bob.public_cert,
        bob.public_cert + alice.secret_key, (DATA / "bob.sec.gpg").read_bytes(),
    ]


SAMPLES = _samples()


@st.composite
def mutated_keys(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_keys(), st.binary(max_size=256)))
def test_fuzz_only_key_parse_error_escapes(data):
    reasons: list[str] = []
    try:
        parsed = split_keys(data)
    except KeyParseError as error:
        reasons.append(str(error))
        parsed = []
    assert all(reason and "\n" not in reason for reason in reasons)
    detected = contains_secret_key_material(data)
    assert isinstance(detected, bool)
    for key in parsed:
        # Whatever split_keys calls secret, the content check must call secret too; and a
        # public projection never is.
        if key.secret_key is not None:
            assert detected
        assert not contains_secret_key_material(key.public_cert)


record_values = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=40), st.binary(max_size=80),
              st.sampled_from(SAMPLES)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(record_values)
def test_value_holds_secret_agrees_with_its_leaves(value):
    leaves: list[bytes] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.items())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, str):
            leaves.append(item.encode())
        elif isinstance(item, bytes):
            leaves.append(item)
    expected = any(contains_secret_key_material(leaf) for leaf in leaves)
    assert value_holds_secret(value) is expected
