"""The deep scan finds a secret key packet behind junk whatever header encodes it (RFC 9580
4.2: old format with 1, 2, 4 length octets or none, new format with 1, 2 or 5), also when
the junk before it is dense with header bytes and key versions; honest text is let through
(openpgp/deep_scan.py, reached through the content check)."""

import base64
import binascii
import os

import pytest

from gossipnode.openpgp import generate_key, packets, split_keys
from gossipnode.openpgp.content import record_refusal
from gossipnode.wire.cbor import encode_value

SECRET_KEY = split_keys(generate_key("Dora <dora@example.org>"))[0].secret_key
# The primary key's packet body (tag 5), taken apart here by the RFC's header rules.
(_TAG, KEY_BODY), *_ = packets.split_packets(SECRET_KEY)
# A locked RSA key packet built by hand (RFC 9580 5.5.2, 5.5.3): version 4, RSA, a
# 2048-bit n, e = 65537, then S2K usage 254 with AES-256 and an iterated-salted S2K. Over
# 192 bytes, so that it also takes the new format's two-octet length.
RSA_LOCKED_BODY = (bytes([4]) + b"\x60\x00\x00\x00" + bytes([1])
                   + b"\x08\x00" + b"\xc1" + os.urandom(255)
                   + b"\x00\x11\x01\x00\x01"
                   + bytes([254, 9, 3, 8]) + os.urandom(8) + bytes([96]) + os.urandom(40))
# Junk before the key: bytes that start secret-key headers, key versions and compressed
# packets everywhere, but that hold no key themselves.
JUNK = b"\x00" + b"\xc7\x1c\x71\xc5\x04\x9c\x05\x97\x06\xc8\xa0" * 30


def old_format(tag, body, length_octets):
    if length_octets is None:
        return bytes([0x80 | tag << 2 | 3]) + body
    length_type = {1: 0, 2: 1, 4: 2}[length_octets]
    return (bytes([0x80 | tag << 2 | length_type]) + len(body).to_bytes(length_octets, "big")
            + body)


def new_format(tag, body, length_octets):
    length = len(body)
    if length_octets == 1:
        header = bytes([length])
    elif length_octets == 2:
        header = bytes([((length - 192) >> 8) + 192, (length - 192) & 0xFF])
    else:
        header = b"\xff" + length.to_bytes(4, "big")
    return bytes([0xC0 | tag]) + header + body


def forms():
    found = {}
    for name, body in (("ed25519", KEY_BODY), ("locked rsa", RSA_LOCKED_BODY)):
        for tag in (5, 7):
            for octets in (1, 2, 4, None):
                if octets == 1 and len(body) > 255:
                    continue
                found[f"{name} tag {tag} old format {octets}"] = old_format(tag, body, octets)
            for octets in (1, 2, 5):
                if (octets == 1 and len(body) >= 192) or (octets == 2 and len(body) < 192):
                    continue
                found[f"{name} tag {tag} new format {octets}"] = new_format(tag, body, octets)
    return found


@pytest.mark.parametrize("form", sorted(forms()))
def test_a_secret_key_packet_behind_dense_junk_is_found_in_every_header_format(form):
    packet = forms()[form]
    for value in ({"blob": JUNK + packet}, {"note": "zz" + base64.b64encode(JUNK + packet)
                                                                   .decode()},
                  {"note": binascii.hexlify(JUNK + packet).decode()}):
        assert record_refusal("groups", "g", encode_value(value)) is not None, value.keys()


@pytest.mark.parametrize("value", [
    {"pad": "x" * 1000},
    {"blob": JUNK},
    {"note": base64.b64encode(JUNK).decode()},
    {"text": "The quick brown fox jumps over the lazy dog. " * 30},
    {"members": [f"user{i}@example.org" for i in range(50)]},
])
def test_honest_values_dense_with_header_bytes_are_let_through(value):
    assert record_refusal("groups", "g", encode_value(value)) is None
    assert record_refusal("consumers", "c", encode_value(value)) is None
