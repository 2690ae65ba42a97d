"""Secret key material hidden in a record value: behind junk bytes, hex, base64, nested.

Why it exists. `keys.contains_secret_key_material` looks where an honest client puts a key
(binary from offset 0, armor blocks, a bare base64 blob). A member or client that wants a
private key to reach members not granted private keys packages it otherwise: one junk byte
in front, hex, base64 with a stray character, base64 of hex of the key. This scan looks
there too; the content check refuses a value when either one finds a secret.

Rules:
1. Binary is scanned at EVERY offset for a Secret-Key (5) or Secret-Subkey (7) packet
   header, and a candidate counts only if its body parses strictly as a v4-v6 key packet:
   a parsable public part for its algorithm (MPIs whose bit counts match their first byte,
   a curve OID, fixed-size native keys), then either unencrypted secret material that
   ends exactly where the packet does, or S2K usage with a known cipher and specifier.
   That is what keeps honest binary (images, encrypted mail) from being refused: a random
   match needs all of these at once (none in 3000 random 16 KiB blobs).
2. Text (and ASCII bytes) is searched for runs of hex and of base64 of at least
   `ENCODED_CHARACTERS_MIN` characters; each run is decoded at every alignment (a stray
   character in front shifts base64 by up to three) and the result scanned again, to a
   depth of `DECODE_DEPTH_MAX` (base64 of hex of a key is found).
3. Work is bounded: the bytes examined by one scan are capped (`SCAN_BYTES_MAX`); a value
   that needs more is reported as holding a secret (refused), never waved through.
4. Never raises.
"""

from __future__ import annotations

import binascii
import contextlib
import re
from typing import Any

from gossipnode.openpgp.packets import value_leaves

__all__ = ["hidden_secret"]

# The smallest secret key packet (Ed25519, unencrypted) is about 80 bytes: 64 characters of
# hex or base64 cannot hold one, and shorter runs (names, ids) are skipped cheaply.
ENCODED_CHARACTERS_MIN = 64
# base64 of hex of base64 of a key is found; more layers are not worth the work.
DECODE_DEPTH_MAX = 3
# A record value is at most 1 MiB (limits.record_bytes_max); each decoding layer adds at most
# about 4 decodings of every byte, so 64 MiB is ample for honest data and bounds the rest.
SCAN_BYTES_MAX = 64 * 1024 * 1024
# Public-key algorithms with a parsable public part (RFC 9580 5.5.5): MPI counts.
_MPI_ALGORITHMS = {1: 2, 2: 2, 3: 2, 16: 3, 17: 4, 20: 3}
_OID_ALGORITHMS = (18, 19, 22)  # ECDH, ECDSA, EdDSA (legacy): OID then MPI (ECDH: + KDF)
_NATIVE_KEY_BYTES = {25: 32, 26: 56, 27: 32, 28: 57}  # X25519, X448, Ed25519, Ed448
# Secret MPIs per algorithm (RSA: d, p, q, u; the others one scalar).
_SECRET_MPIS = {1: 4, 2: 4, 3: 4, 16: 1, 17: 1, 20: 1, 18: 1, 19: 1, 22: 1}
# S2K specifiers: simple, salted, iterated and salted, Argon2, GnuPG's private 101.
_S2K_SPECIFIERS = frozenset({0, 1, 3, 4, 101})
# Curve OIDs are short: the longest in RFC 9580 is 10 bytes.
OID_BYTES_MAX = 16

# Header bytes that can start a tag 5 or 7 packet: old format (tag << 2 | 0x80 plus a
# length type 0..3) and new format (0xC0 | tag).
_HEADER_BYTES = frozenset(
    {0x80 | (tag << 2) | length_type for tag in (5, 7) for length_type in range(4)}
    | {0xC0 | tag for tag in (5, 7)}
)
# A key packet's body starts with its version (4, 5 or 6), and the packet's header byte
# sits 1 to 6 bytes before it: 1 (old format, indeterminate length), 2 (a one-octet
# length), 3 (two octets), 5 (old format, four octets), 6 (new format, 0xFF and four).
_VERSION_DISTANCES = (1, 2, 3, 5, 6)
# Candidates are found from the version byte, in C: decoded text is full of header bytes
# (base64 of "xxxx" decodes to C7 1C 71 ...) but version bytes are rare in it, and a
# Python call per header byte cost about a millisecond per 1 KiB value.
_HEADER_CLASS = b"[" + b"".join(re.escape(bytes([b])) for b in sorted(_HEADER_BYTES)) + b"]"
_VERSION_AFTER_HEADER = re.compile(
    rb"[\x04-\x06](?:"
    + b"|".join(rb"(?<=%s.{%d})" % (_HEADER_CLASS, distance) for distance in _VERSION_DISTANCES)
    + rb")",
    re.DOTALL,
)
_HEX_CHARACTERS = b"0123456789ABCDEFabcdef"
_BASE64_CHARACTERS = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="
                      b" \t\n\r\x0b\x0c")  # URL-safe too, and whitespace (as `\s` is)
_HEX_RUN = re.compile(b"[%s]{%d,}" % (re.escape(_HEX_CHARACTERS), ENCODED_CHARACTERS_MIN))
_BASE64_RUN = re.compile(b"[%s]{%d,}" % (re.escape(_BASE64_CHARACTERS), ENCODED_CHARACTERS_MIN))
# A run to standard base64: URL-safe letters mapped back, padding and whitespace dropped
# (a run holds nothing else), in one C pass.
_TO_STANDARD_BASE64 = bytes.maketrans(b"-_", b"+/")
_NOT_IN_BASE64 = b"= \t\n\r\x0b\x0c"
# Run searches first ask, at C speed, whether any run is long enough: each byte becomes 1
# (in the alphabet) or 0, and `ENCODED_CHARACTERS_MIN` ones in a row are looked for. Most
# values have no such run, and the regular expression alone retries at every offset of a
# shorter run (about 50 us per KiB of prose, against about 2 for this test).
_LONG_RUN = b"\x01" * ENCODED_CHARACTERS_MIN


def _membership(alphabet: bytes) -> bytes:
    return bytes(1 if byte in alphabet else 0 for byte in range(256))


_HEX_MEMBERSHIP = _membership(_HEX_CHARACTERS)
# Each byte's class for `_scan`'s first look: 1 in the base64 alphabet, 2 a key version
# (4, 5, 6: every candidate of rule 1 has one), 0 any other.
_VERSION_CLASS = b"\x02"
_CLASSES = bytes(2 if byte in (4, 5, 6) else 1 if byte in _BASE64_CHARACTERS else 0
                 for byte in range(256))


def hidden_secret(value: Any) -> bool:
    """True if any str or bytes inside a decoded value (maps, lists, keys too) hides secret
    key material by rules 1 and 2, or would take more work than rule 3 allows."""
    budget = [SCAN_BYTES_MAX]
    for item in value_leaves(value):
        if isinstance(item, str):
            if len(item) < ENCODED_CHARACTERS_MIN and item.isascii() and item.isprintable():
                # No control character (so no key version byte: rule 1) and too short
                # for a run (rule 2): nothing to scan, in one test.
                budget[0] -= len(item)
                if budget[0] < 0:
                    return True
                continue
            if _scan(item.encode("utf-8", "surrogatepass"), 0, budget):
                return True
            if not item.isascii() and max(item) < "\u0100" and _scan(
                item.encode("latin-1"), 0, budget
            ):
                return True  # bytes smuggled as code points U+0000..U+00FF
        elif _scan(bytes(item), 0, budget):
            return True
    return False


def _scan(data: bytes, depth: int, budget: list[int]) -> bool:
    budget[0] -= len(data)
    if budget[0] < 0:
        return True
    if depth >= DECODE_DEPTH_MAX:
        return (b"\x04" in data or b"\x05" in data or b"\x06" in data) and _binary_secret(data)
    # One C pass says both whether a key version byte is present (rule 1 needs one) and
    # whether a run is long enough to decode (rule 2); most buffers have neither.
    classes = data.translate(_CLASSES)
    if _VERSION_CLASS in classes and _binary_secret(data):
        return True
    if _LONG_RUN not in classes:
        return False
    return any(_scan(decoded, depth + 1, budget) for decoded in _decodings(data))


def _decodings(data: bytes) -> list[bytes]:
    """Every decoding of the long hex and base64 runs of `data` (which has a run of the
    base64 alphabet long enough: hex digits are a subset of it)."""
    found = []
    if _LONG_RUN in data.translate(_HEX_MEMBERSHIP):
        for run in _HEX_RUN.findall(data):
            for start in (0, 1):
                usable = run[start:len(run) - (len(run) - start) % 2]
                with contextlib.suppress(binascii.Error):
                    found.append(binascii.unhexlify(usable))
    for run in _BASE64_RUN.findall(data):
        found.extend(_base64_alignments(run.translate(_TO_STANDARD_BASE64, _NOT_IN_BASE64)))
    return found


def _base64_alignments(cleaned: bytes) -> list[bytes]:
    """The decodings of `cleaned` (standard base64 letters only) from its characters 0, 1,
    2 and 3 on, each with its last quantum (its padding was dropped with the junk: padded
    again, it decodes to its 1 or 2 bytes; a lone last character holds no byte), skipping
    those shorter than `ENCODED_CHARACTERS_MIN` - 4 characters once padded.

    Each character is 6 bits, so starting at character k is reading the bit stream of the
    whole run from bit 6k: one C decoding of the run (zero-padded to whole quanta) is the
    first alignment, and a shift gives each other one (four decodings cost about 1.7 times
    as much for a 1 KiB run)."""
    length = len(cleaned)
    found: list[bytes] = []
    for start in range(4):
        characters = length - start
        tail = characters % 4
        if (characters - 1 if tail == 1 else characters + (4 - tail) % 4) < (
            ENCODED_CHARACTERS_MIN - 4
        ):
            break  # shorter still from the next start on
        size = 3 * characters // 4  # whole bytes in 6 bits per character
        if not found:
            whole = binascii.a2b_base64(cleaned + b"A" * (-length % 4))
            stream, whole_bytes = int.from_bytes(whole, "big"), len(whole)
            found.append(whole[:size])
        else:  # bits 6k on, in whole bytes: the last `size` bytes once shifted down
            shifted = stream >> (8 * whole_bytes - 6 * start - 8 * size)
            found.append(shifted.to_bytes(whole_bytes, "big")[-size:])
    return found


def _binary_secret(data: bytes) -> bool:
    # The caller has seen a version byte: without one, the expression below costs about
    # 5 us per KiB to match nothing (decoded base64 of text is full of header bytes).
    view = memoryview(data)
    for version in _VERSION_AFTER_HEADER.finditer(data):
        body_start = version.start()
        for distance in _VERSION_DISTANCES:
            offset = body_start - distance
            if offset < 0 or data[offset] not in _HEADER_BYTES:
                continue
            body = _packet_body(data, offset)  # is the version where this header says?
            if (body is not None and body[0] == body_start
                    and _strict_secret_key(view[body[0]:body[1]])):
                return True
    return False


def _packet_body(data: bytes, offset: int) -> tuple[int, int] | None:
    """(start, end) of a tag 5/7 packet's body at `offset`, without copying, or None."""
    header = data[offset]
    position = offset + 1
    if position >= len(data):
        return None
    if header & 0x40:
        first = data[position]
        if first < 192:
            length, position = first, position + 1
        elif first < 224:
            if position + 2 > len(data):
                return None
            length, position = ((first - 192) << 8) + data[position + 1] + 192, position + 2
        elif first == 255:
            if position + 5 > len(data):
                return None
            length = int.from_bytes(data[position + 1:position + 5], "big")
            position += 5
        else:
            return None  # partial lengths are not allowed for key packets
    else:
        length_type = header & 0x03
        if length_type == 3:
            return position, len(data)
        size = (1, 2, 4)[length_type]
        if position + size > len(data):
            return None
        length = int.from_bytes(data[position:position + size], "big")
        position += size
    if position + length > len(data):
        return None
    return position, position + length


def _strict_secret_key(body: memoryview) -> bool:
    """Rule 1: does `body` parse as a v4, v5 or v6 secret key packet: public part, usage
    octet, and what must follow it? (v2/v3 keys are RSA keys of the 1990s; the packet
    walker still finds them at offset 0.)"""
    if len(body) < 8 or body[0] not in (4, 5, 6):
        return False
    version, algorithm, position = body[0], body[5], 6
    if version in (5, 6):
        if position + 4 > len(body):
            return False
        material = int.from_bytes(body[position:position + 4], "big")
        position += 4
        end = _public_part(body, position, algorithm)
        if end is None or end != position + material:
            return False
    else:
        end = _public_part(body, position, algorithm)
        if end is None:
            return False
    return _secret_part(body, end, version, algorithm)


def _secret_part(body: memoryview, position: int, version: int, algorithm: int) -> bool:
    """After the public part: the usage octet and what it announces (RFC 9580 5.5.3)."""
    if position >= len(body):
        return False
    usage, position = body[position], position + 1
    if usage == 0:  # unencrypted: the secret material, then (v4) a two-byte checksum
        end = _secret_material(body, position, algorithm)
        return end is not None and len(body) - end == (2 if version == 4 else 0)
    if usage not in (253, 254, 255):
        return False  # a bare cipher id (the oldest form) is left to the walker
    if version in (5, 6):
        position += 1  # the count of the parameters that follow
    if position + 2 > len(body):
        return False
    cipher = body[position]
    specifier = body[position + 2] if usage == 253 else body[position + 1]
    if usage == 253 and not 1 <= body[position + 1] <= 3:  # AEAD mode: EAX, OCB, GCM
        return False
    return 1 <= cipher <= 13 and specifier in _S2K_SPECIFIERS


def _secret_material(body: memoryview, position: int, algorithm: int) -> int | None:
    if algorithm in _NATIVE_KEY_BYTES:
        end = position + _NATIVE_KEY_BYTES[algorithm]
        return end if end <= len(body) else None
    count = _SECRET_MPIS.get(algorithm)
    if count is None:
        return None
    found: int | None = position
    for _ in range(count):
        found = _mpi(body, found) if found is not None else None
    return found


def _public_part(body: memoryview, position: int, algorithm: int) -> int | None:
    """The offset just past the public key material of `algorithm`, or None."""
    if algorithm in _NATIVE_KEY_BYTES:
        end = position + _NATIVE_KEY_BYTES[algorithm]
        return end if end <= len(body) else None
    if algorithm in _OID_ALGORITHMS:
        if position >= len(body):
            return None
        oid_length = body[position]
        if not 1 <= oid_length <= OID_BYTES_MAX or position + 1 + oid_length > len(body):
            return None
        if body[position + 1] not in (0x2A, 0x2B):  # every curve OID starts 1.2 or 1.3
            return None
        end = _mpi(body, position + 1 + oid_length)
        if end is None or algorithm != 18:
            return end
        if end + 4 > len(body) or body[end] != 3 or body[end + 1] != 1:  # KDF parameters
            return None
        return end + 4
    count = _MPI_ALGORITHMS.get(algorithm)
    if count is None:
        return None
    for _ in range(count):
        position = _mpi(body, position)
        if position is None:
            return None
    return position


def _mpi(body: memoryview, position: int) -> int | None:
    """Past one MPI at `position` whose bit count matches its first byte, or None."""
    if position + 2 > len(body):
        return None
    bits = int.from_bytes(body[position:position + 2], "big")
    size = (bits + 7) // 8
    if bits == 0 or position + 2 + size > len(body):
        return None
    if body[position + 2].bit_length() != (bits - 1) % 8 + 1:
        return None
    return position + 2 + size
