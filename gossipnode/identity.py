"""Node identity and cluster secrets: the key files an operator creates with `init`/`keygen`.

A node id is the node's Ed25519 public key (32 bytes). Operators see it as base32 in four
groups of 13 characters (`format_node_id`), and as its first group in tables (`short_id`).

The identity file holds the 32-byte Ed25519 seed, base64, mode 0600. A cluster secret file
holds 32 random bytes, base64, mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import nacl.utils

__all__ = [
    "SECRET_BYTES",
    "Identity",
    "IdentityError",
    "create_identity",
    "format_node_id",
    "generate_secret",
    "load_identity",
    "load_secret",
    "parse_node_id",
    "short_id",
    "write_private_file",
]

SECRET_BYTES = 32
SEED_BYTES = 32


class IdentityError(Exception):
    """A key file that is missing, unreadable, malformed, or would be overwritten."""


@dataclass(frozen=True)
class Identity:
    signing_key: nacl.signing.SigningKey

    @property
    def node_id(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte Ed25519 signature."""
        return self.signing_key.sign(message).signature


# Node ids formatted at most: a cluster has a few hundred members, and every write's reply
# names its origin, so the same few ids are formatted again and again.
FORMATTED_IDS_CACHED = 4096


def format_node_id(node_id: bytes) -> str:
    return _format_node_id(bytes(node_id))


@functools.lru_cache(maxsize=FORMATTED_IDS_CACHED)
def _format_node_id(node_id: bytes) -> str:
    text = base64.b32encode(node_id).decode().rstrip("=")
    return "-".join(text[i : i + 13] for i in range(0, len(text), 13))


def short_id(node_id: bytes) -> str:
    return format_node_id(node_id)[:13]


def parse_node_id(text: str) -> bytes:
    """Inverse of format_node_id. Raises ValueError."""
    compact = text.replace("-", "").upper()
    try:
        node_id = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except binascii.Error:
        raise ValueError(f"{text!r} is not a node id") from None
    if len(node_id) != 32:
        raise ValueError(f"{text!r} is not a node id")
    return node_id


def write_private_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 and write `data`; refuse to overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"{path}: already exists; refusing to overwrite it") from None
    except OSError as error:
        raise IdentityError(f"{path}: cannot create: {error.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def create_identity(path: Path) -> Identity:
    seed = nacl.utils.random(SEED_BYTES)
    write_private_file(path, base64.b64encode(seed) + b"\n")
    return Identity(nacl.signing.SigningKey(seed))


def load_identity(path: Path) -> Identity:
    return Identity(nacl.signing.SigningKey(_read_base64(path, SEED_BYTES, "identity key")))


def generate_secret() -> bytes:
    return nacl.utils.random(SECRET_BYTES)


def load_secret(path: Path) -> bytes:
    return _read_base64(path, SECRET_BYTES, "cluster secret")


def _read_base64(path: Path, size: int, what: str) -> bytes:
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        raise IdentityError(f"{path}: no such file (the {what})") from None
    except OSError as error:
        raise IdentityError(f"{path}: cannot read the {what}: {error.strerror}") from None
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise IdentityError(f"{path}: the {what} is not base64") from None
    if len(data) != size:
        raise IdentityError(f"{path}: the {what} must be {size} bytes, found {len(data)}")
    return data
