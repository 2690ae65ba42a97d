"""The content check's shortcuts (openpgp/content.py and the scans behind it) stop nothing
they should: a short printable text leaf is skipped with one test, base64 runs are decoded
at their four alignments from one decoding, and the packet walker first asks in one pass
whether a packet could start. Each value below sits at one of those edges and holds secret
key material (a real key from `generate_key`, or the smallest packet each rule counts); it
must be refused in `consumers` (Sequoia too) and in any other public dataset."""

import base64
import binascii
import itertools
import random

import pytest

from gossipnode.openpgp import deep_scan, generate_key, packets, split_keys
from gossipnode.openpgp.content import record_refusal
from gossipnode.wire.cbor import encode_value
from tests import deep_scan_oracle

SECRET_KEY = split_keys(generate_key("Fay <fay@example.org>"))[0].secret_key
(_TAG, KEY_BODY), *_ = packets.split_packets(SECRET_KEY)
PACKET = bytes([0xC5, len(KEY_BODY)]) + KEY_BODY  # the primary secret key packet alone
# The smallest packet the strict scan counts (RFC 9580 5.5.2, 5.5.3): v4, RSA with 1-bit
# MPIs n and e, then S2K usage 254, AES-256, a simple S2K: 17 bytes with its header, so
# that base64 of it fits in a 64-character run behind junk.
TINY_LOCKED = bytes([0xC5, 15, 4, 0x60, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 254, 9, 0])
# The smallest one the packet walker counts: a version 4 and an algorithm (RSA).
TINY_WALKED = bytes([0xC5, 6, 4, 0, 0, 0, 0, 1])
DATASETS = ("consumers", "groups")


def refused(value) -> bool:
    answers = {record_refusal(d, "k", encode_value(value)) is not None for d in DATASETS}
    assert len(answers) == 1, value  # the same answer in consumers and elsewhere
    return answers.pop()


@pytest.mark.parametrize("junk", range(4))
def test_a_key_in_base64_behind_junk_is_found_at_every_alignment(junk):
    encoded = base64.b64encode(PACKET).decode()
    for text in ("!" * junk + encoded, "A" * junk + encoded, "A" * junk + encoded.rstrip("=")):
        assert refused({"note": text}), (junk, text[:8])
        assert refused({"note": text[:-1] if text.endswith("=") else text})


@pytest.mark.parametrize("cut", range(4))
def test_the_last_quantum_of_a_run_counts_at_every_length(cut):
    """The key packet ends the run: trimming characters after it, or junk before it, moves
    the run's last partial quantum, which must still decode to its bytes."""
    for junk in range(8):
        data = bytes(junk) + PACKET + bytes(cut)
        text = base64.b64encode(data).decode().rstrip("=")
        assert refused({"note": "?" + text})
        assert deep_scan_oracle.hidden_secret({"note": "?" + text})


def test_a_key_in_hex_is_found_at_both_nibble_alignments():
    for prefix in ("", "x", "0"):
        assert refused({"note": prefix + PACKET.hex()})
        assert refused({"note": prefix + PACKET.hex().upper() + "0"})


def test_a_key_nested_in_two_and_three_encodings_is_found():
    hex_in_base64 = base64.b64encode(b"!" + PACKET.hex().encode()).decode()
    assert refused({"note": hex_in_base64})
    three = base64.b64encode(binascii.hexlify(b"?" + base64.b64encode(b"!" + PACKET)))
    assert refused({"note": "-" + three.decode()})


def test_a_key_in_a_map_key_or_a_nested_list_is_found():
    encoded = base64.b64encode(b"\x00" + PACKET).decode()
    assert refused({encoded: 1})
    assert refused({"a": [["name", {"b": encoded}]]})
    assert refused({PACKET.decode("latin-1"): "x"})


def test_short_leaves_at_the_length_limit_are_still_scanned():
    """A leaf under 64 characters is skipped only when it is printable ASCII without
    dashes: the smallest packets each rule counts still reach the scans."""
    assert refused({"n": TINY_WALKED})
    # In text the walker reads UTF-8: U+0145 is the bytes C5 85, a tag 5 header with a
    # 133-byte body.
    assert refused({"n": "\u0145" + TINY_WALKED[2:].decode() + "\x00" * 127})
    assert refused({"n": TINY_LOCKED.decode("latin-1")})
    assert refused({TINY_LOCKED.decode("latin-1"): 1})
    assert refused({"n": "zz" + TINY_LOCKED.decode("latin-1")})
    # base64 of junk and the tiny packet: exactly 64 characters, the shortest run decoded.
    text = base64.b64encode(bytes(31) + TINY_LOCKED).decode()
    assert len(text) == 64 and text.isascii() and text.isprintable()
    assert refused({"n": text})
    # One character less is not a run (rule 2): both scanners let it through.
    assert not deep_scan_oracle.hidden_secret({"n": text[1:]})
    assert not refused({"n": text[1:]})


@pytest.mark.parametrize("length", [62, 63, 64, 65])
def test_printable_text_around_the_limit_is_let_through(length):
    for letters in ("abc", "ab+/=", "0123456789abcdef", "Mary, 23 Rue de l'Ecole"):
        text = "".join(itertools.islice(itertools.cycle(letters), length))
        assert not refused({"name": text, text: text})


def test_the_four_alignments_decode_as_four_separate_decodings_would():
    """Rule 2's alignments come from one decoding and bit shifts; binascii on each
    alignment, padded as the rule says, is the reference. Every length up to a few runs,
    every last-quantum size."""
    rng = random.Random(7)
    letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for length in range(200):
        cleaned = bytes(rng.choice(letters) for _ in range(length))
        expected = []
        for start in range(4):
            usable = cleaned[start:]
            usable = usable[:-1] if len(usable) % 4 == 1 else usable + b"=" * (-len(usable) % 4)
            if len(usable) >= deep_scan.ENCODED_CHARACTERS_MIN - 4:
                expected.append(binascii.a2b_base64(usable))
        assert deep_scan._base64_alignments(cleaned) == expected, length
