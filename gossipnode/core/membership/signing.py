"""The canonical bytes a member signs for its own statements (`Alive`, `Left`).

Each field is length-prefixed and each kind of statement has its own domain prefix, so a
signature over one statement never verifies as another statement, another kind, or
anything else the identity key signs.
"""

from __future__ import annotations

import struct

from .messages import Tags

__all__ = ["alive_signed_bytes", "left_signed_bytes"]

# Domain separation: a signature over one kind of statement never verifies as another kind
# or as anything else the identity key signs.
ALIVE_DOMAIN = b"gossipnode/membership/alive/v1\x00"
LEFT_DOMAIN = b"gossipnode/membership/left/v1\x00"


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _tags_bytes(tags: Tags) -> bytes:
    return struct.pack(">I", len(tags)) + b"".join(
        _field(key.encode()) + _field(value.encode()) for key, value in tags
    )


def alive_signed_bytes(
    node_id: bytes, name: str, host: str, port: int, incarnation: int, tags: Tags
) -> bytes:
    """The canonical bytes an `Alive` signature covers: a domain prefix, then each field
    length-prefixed (4-byte big-endian), integers as 8-byte big-endian."""
    return b"".join(
        (
            ALIVE_DOMAIN,
            _field(node_id),
            _field(name.encode()),
            _field(host.encode()),
            struct.pack(">QQ", port, incarnation),
            _tags_bytes(tags),
        )
    )


def left_signed_bytes(node_id: bytes, incarnation: int) -> bytes:
    """The canonical bytes a `Left` signature covers."""
    return LEFT_DOMAIN + _field(node_id) + struct.pack(">Q", incarnation)
