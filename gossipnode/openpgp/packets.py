"""A small pure-Python OpenPGP packet walker: does this blob hold secret key packets?

Why it exists. `contains_secret_key_material` is the content check that keeps private keys
out of the public `consumers` dataset (docs/architecture.md, invariant 2). Sequoia is the primary
parser, but a check that guards containment should not hinge on one parser's quirks:
Sequoia's `PacketPile.from_bytes` reads only the FIRST armor block of a text (a public
block followed by a private block reads as public), and it rejects a whole blob for a
trailing defect even when a secret key packet came before it. This walker looks at the
bytes the way an attacker or a careless client could package a key, and the caller takes
the union of both answers: a secret found by either one counts.

Rules of the walker:
1. Encodings looked at: binary packets from offset 0; every armor block
   (`-----BEGIN PGP ...` to `-----END PGP ...`) anywhere in the data; and a blob that is
   base64 and nothing else (a key stored as base64 without armor). It does not scan
   arbitrary offsets: OpenPGP packets carry no magic number, so a scan would refuse
   honest data (a UTF-8 "Ł" is the byte 0xC5, a new-format tag-5 header).
2. Packet headers: old format (RFC 4880 4.2.1, including indeterminate length) and new
   format (RFC 9580 4.2.1, including partial body lengths). The walk stops silently at
   the first header that is malformed, has an unassigned tag, or runs past the end.
3. A secret key packet is tag 5 (Secret-Key) or 7 (Secret-Subkey) whose body starts like
   a key: a known version and a plausible public-key algorithm. This keeps random bytes
   that happen to look like a header from counting, while every real secret key counts,
   encrypted or not.
4. Compressed Data packets (tag 8) are opened (ZIP, ZLIB, BZip2; output capped) and their
   contents walked, to a bounded depth: a key inside a compressed message is still a key.
5. Never raises on any input; every loop is bounded by the input length.
"""

from __future__ import annotations

import binascii
import bz2
import re
import zlib
from collections.abc import Iterator

__all__ = [
    "armor_blocks",
    "encode_packet",
    "has_secret_packet",
    "iter_packets",
    "split_packets",
    "value_leaves",
]

SECRET_KEY_TAG = 5
SECRET_SUBKEY_TAG = 7
COMPRESSED_DATA_TAG = 8
# RFC 9580 section 5 assigns tags 1..21; 0 is reserved and 40..63 are experimental. Only
# walking assigned tags keeps non-OpenPGP binaries (a JPEG starts 0xFF = tag 63) out.
ASSIGNED_TAGS = frozenset(range(1, 22))
# Key packet versions: 2 and 3 (RFC 4880, RSA only), 4 (RFC 4880), 5 (LibrePGP), 6 (RFC 9580).
KEY_VERSIONS = frozenset({2, 3, 4, 5, 6})
# Public-key algorithm ids: RFC 9580 9.1 (1..3, 16..22, 25..28), the post-quantum draft
# composites (29..40, pysequoia already offers ML-DSA suites), private/experimental 100..110.
KEY_ALGORITHMS = frozenset({*range(1, 4), *range(16, 23), *range(25, 41), *range(100, 111)})
# A key packet body is at least version (1) + created (4) + algorithm (1) bytes.
KEY_BODY_BYTES_MIN = 6

# Nested compression is legal but pointless; 4 levels is more than any real message uses.
COMPRESSION_DEPTH_MAX = 4
# Decompressed output is capped per packet: a key is well under 1 MiB (the split_keys cap),
# so 16 MiB is generous and stops a decompression bomb from exhausting memory.
DECOMPRESSED_BYTES_MAX = 16 * 1024 * 1024
# A bare base64 blob shorter than this decodes to fewer bytes than the smallest key packet
# (an Ed25519 secret key packet is about 90 bytes); it also skips short names and words.
BARE_BASE64_CHARACTERS_MIN = 64

# What the walk can find, as a test of the bytes in C: a secret key packet needs a tag 5/7
# header byte and a key version 1, 2, 3, 5 or 6 bytes after it (where the header puts the
# body: an indeterminate, one-octet or partial, two-octet, four-octet, five-octet length),
# and a compressed packet needs a tag 8 header byte. Bytes with neither (text, base64 of
# text) are not walked at all: a chain of well-formed packets costs a Python step each.
_SECRET_HEADER_BYTES = b"\x94\x95\x96\x97\x9c\x9d\x9e\x9f\xc5\xc7"
# (One character class first, so that the regular expression engine skips
# the bytes that cannot start a match in C, then lookbehinds say which case it is.)
_MAY_HOLD_SECRET = re.compile(
    rb"[\x02-\x06\xa0-\xa3\xc8](?:(?<=[\xa0-\xa3\xc8])|"
    + b"|".join(rb"(?<=[%s].{%d})" % (re.escape(_SECRET_HEADER_BYTES), distance)
                for distance in (1, 2, 3, 5, 6))
    + rb")",
    re.DOTALL,
)
# The first byte of a `_MAY_HOLD_SECRET` match, as a translation table (1: such a byte):
# one C pass (about 1 us per KiB) rules text out before the expression, which takes
# about 5 us per KiB to find nothing in it.
_MAY_HOLD_FIRST = bytes(1 if 2 <= byte <= 6 or 0xA0 <= byte <= 0xA3 or byte == 0xC8 else 0
                        for byte in range(256))
_ARMOR_BEGIN = re.compile(rb"-----BEGIN PGP ([A-Z0-9 ,/]{1,40})-----")
_BARE_BASE64 = re.compile(rb"[A-Za-z0-9+/=\s]+")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def has_secret_packet(data: bytes) -> bool:
    """True if `data` holds a Secret-Key or Secret-Subkey packet in any encoding of rule 1."""
    if _binary_has_secret(data, depth=0):
        return True
    for _kind, block in armor_blocks(data):
        decoded = decode_armor_block(block)
        if decoded is not None and _binary_has_secret(decoded, depth=0):
            return True
    if len(data) >= BARE_BASE64_CHARACTERS_MIN and _BARE_BASE64.fullmatch(data):
        # Base64 and nothing else: dropping padding and whitespace leaves the letters.
        decoded = _decode_letters(data.translate(None, b"= \t\n\r\x0b\x0c"))
        if decoded is not None and _binary_has_secret(decoded, depth=0):
            return True
    return False


def armor_blocks(data: bytes, blocks_max: int | None = None) -> list[tuple[str, bytes]]:
    """The complete armor blocks in `data`, in order, as (kind, block bytes with both lines),
    at most `blocks_max` of them (None: all).

    `kind` is the armor label ("PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK", ...). A BEGIN
    without a matching END is not a block.
    """
    blocks: list[tuple[str, bytes]] = []
    position = 0
    while blocks_max is None or len(blocks) < blocks_max:
        begin = _ARMOR_BEGIN.search(data, position)
        if begin is None:
            return blocks
        kind = begin.group(1)
        end_line = b"-----END PGP " + kind + b"-----"
        end = data.find(end_line, begin.end())
        if end < 0:
            return blocks
        stop = end + len(end_line)
        blocks.append((kind.decode("ascii"), data[begin.start():stop]))
        position = stop
    return blocks


def decode_armor_block(block: bytes) -> bytes | None:
    """The binary inside one armor block (headers and checksum dropped), or None."""
    lines = block.splitlines()[1:-1]
    index = 0
    # Armor headers ("Comment: ...") run up to the first blank line.
    while index < len(lines) and b":" in lines[index]:
        index += 1
    body: list[bytes] = []
    for line in lines[index:]:
        stripped = line.strip()
        if stripped.startswith(b"="):  # the optional CRC-24 checksum line ends the body
            break
        body.append(stripped)
    return _decode_base64(b"".join(body))


def iter_packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, body) of each well-formed packet from offset 0, stopping at the first bad one."""
    offset = 0
    while offset < len(data):
        parsed = _parse_packet(data, offset)
        if parsed is None:
            return
        tag, body, offset = parsed
        yield tag, body


def split_packets(data: bytes) -> list[tuple[int, bytes]] | None:
    """(tag, body) of every packet of `data`, or None unless the packets cover `data`
    exactly (a malformed header, an unassigned tag, or trailing bytes)."""
    found: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        parsed = _parse_packet(data, offset)
        if parsed is None:
            return None
        tag, body, offset = parsed
        found.append((tag, body))
    return found


def encode_packet(tag: int, body: bytes) -> bytes:
    """One packet with a new-format header (RFC 9580 4.2.1): the one encoding this project
    writes, so equal packets are equal bytes whatever header the input used."""
    length = len(body)
    if length < 192:
        header = bytes((length,))
    elif length < 8384:
        length -= 192
        header = bytes(((length >> 8) + 192, length & 0xFF))
    else:
        header = b"\xff" + length.to_bytes(4, "big")
    return bytes((0xC0 | tag,)) + header + body


def _binary_has_secret(data: bytes, depth: int) -> bool:
    if b"\x01" not in data.translate(_MAY_HOLD_FIRST) or not _MAY_HOLD_SECRET.search(data):
        return False
    for tag, body in iter_packets(data):
        if tag in (SECRET_KEY_TAG, SECRET_SUBKEY_TAG) and _looks_like_key(body):
            return True
        if tag == COMPRESSED_DATA_TAG and depth < COMPRESSION_DEPTH_MAX:
            inner = _decompress(body)
            if inner is not None and _binary_has_secret(inner, depth + 1):
                return True
    return False


def _looks_like_key(body: bytes) -> bool:
    if len(body) < KEY_BODY_BYTES_MIN or body[0] not in KEY_VERSIONS:
        return False
    # v2/v3 keys carry a 2-byte validity period before the algorithm octet.
    algorithm_offset = 7 if body[0] in (2, 3) else 5
    return len(body) > algorithm_offset and body[algorithm_offset] in KEY_ALGORITHMS


def _parse_packet(data: bytes, offset: int) -> tuple[int, bytes, int] | None:
    """(tag, body, next offset) of the packet at `offset`, or None if it is malformed."""
    header = data[offset]
    if not header & 0x80:
        return None
    if header & 0x40:  # new format: 6-bit tag, lengths of RFC 9580 4.2.1.1
        tag = header & 0x3F
        if tag not in ASSIGNED_TAGS:
            return None
        return _new_format_body(data, offset + 1, tag)
    tag = (header >> 2) & 0x0F
    if tag not in ASSIGNED_TAGS:
        return None
    length_type = header & 0x03
    position = offset + 1
    if length_type == 3:  # indeterminate: the packet runs to the end of the data
        return tag, data[position:], len(data)
    length_bytes = (1, 2, 4)[length_type]
    if position + length_bytes > len(data):
        return None
    length = int.from_bytes(data[position:position + length_bytes], "big")
    position += length_bytes
    if position + length > len(data):
        return None
    return tag, data[position:position + length], position + length


def _new_format_body(data: bytes, position: int, tag: int) -> tuple[int, bytes, int] | None:
    chunks: list[bytes] = []
    # Each partial chunk consumes at least one byte, so this loop ends within len(data).
    while True:
        if position >= len(data):
            return None
        first = data[position]
        partial = False
        if first < 192:
            length, position = first, position + 1
        elif first < 224:
            if position + 2 > len(data):
                return None
            length = ((first - 192) << 8) + data[position + 1] + 192
            position += 2
        elif first == 255:
            if position + 5 > len(data):
                return None
            length = int.from_bytes(data[position + 1:position + 5], "big")
            position += 5
        else:
            length, position, partial = 1 << (first & 0x1F), position + 1, True
        if position + length > len(data):
            return None
        chunks.append(data[position:position + length])
        position += length
        if not partial:
            return tag, b"".join(chunks), position


def _decompress(body: bytes) -> bytes | None:
    if not body:
        return None
    algorithm, payload = body[0], body[1:]
    try:
        if algorithm == 0:
            return payload
        if algorithm in (1, 2):  # 1 = ZIP (raw deflate), 2 = ZLIB
            wbits = -15 if algorithm == 1 else 15
            inflater = zlib.decompressobj(wbits)
            return inflater.decompress(payload, DECOMPRESSED_BYTES_MAX)
        if algorithm == 3:
            return bz2.BZ2Decompressor().decompress(payload, DECOMPRESSED_BYTES_MAX)
    except (zlib.error, OSError, EOFError, ValueError):
        return None
    return None


def _decode_base64(text: bytes) -> bytes | None:
    return _decode_letters(_NOT_BASE64.sub(b"", text))


def _decode_letters(cleaned: bytes) -> bytes | None:
    """`cleaned` (base64 letters only) decoded, its last partial quantum padded."""
    if len(cleaned) % 4 == 1:  # a lone trailing character carries no whole byte
        cleaned = cleaned[:-1]
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        return None


def value_leaves(value: object) -> Iterator[str | bytes | bytearray | memoryview]:
    """Every str or bytes inside a decoded record value, at any depth: map keys and values,
    list and tuple items. Other leaves (numbers, booleans, None) are skipped. The one walk
    behind every secret-material check of a value."""
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, str | bytes | bytearray | memoryview):
            yield item
