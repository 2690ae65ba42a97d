"""The handshake's four messages and their size limits (the protocol is in handshake.py).

Every field has an exact or bounded size, so a handshake message can never exceed
`HANDSHAKE_FRAME_BYTES_MAX`, and the strict codec (messages.py) refuses anything else
before the handshake looks at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from .messages import Limit, MessageRegistry

__all__ = [
    "HANDSHAKE_FRAME_BYTES_MAX",
    "HANDSHAKE_MESSAGES",
    "NONCE_BYTES",
    "VERSIONS_MAX",
    "Finish",
    "Hello",
    "Refusal",
    "Reply",
]

# The largest handshake message is a Reply of ~220 bytes; a Refusal with its reason text
# stays under 400. 1 KiB bounds what an unauthenticated peer can make us buffer.
HANDSHAKE_FRAME_BYTES_MAX = 1024
# Versions one Hello may list: a range of releases, not an attack surface.
VERSIONS_MAX = 16
KEY_BYTES = 32
NONCE_BYTES = 32
MAC_BYTES = 32
SIGNATURE_BYTES = 64
NODE_ID_BYTES = 32
# A Refusal's reason is shown to operators; keep it to one short line.
REASON_BYTES_MAX = 200

_Key = Annotated[bytes, Limit(KEY_BYTES, minimum=KEY_BYTES)]
_Nonce = Annotated[bytes, Limit(NONCE_BYTES, minimum=NONCE_BYTES)]
_Mac = Annotated[bytes, Limit(MAC_BYTES, minimum=MAC_BYTES)]
_Versions = Annotated[tuple[int, ...], Limit(VERSIONS_MAX, minimum=1)]


@dataclass(frozen=True, slots=True)
class Hello:
    versions: _Versions
    ephemeral_key: _Key
    nonce: _Nonce
    mac: _Mac


@dataclass(frozen=True, slots=True)
class Reply:
    version: int
    ephemeral_key: _Key
    nonce: _Nonce
    node_id: Annotated[bytes, Limit(NODE_ID_BYTES, minimum=NODE_ID_BYTES)]
    signature: Annotated[bytes, Limit(SIGNATURE_BYTES, minimum=SIGNATURE_BYTES)]
    mac: _Mac


@dataclass(frozen=True, slots=True)
class Finish:
    node_id: Annotated[bytes, Limit(NODE_ID_BYTES, minimum=NODE_ID_BYTES)]
    signature: Annotated[bytes, Limit(SIGNATURE_BYTES, minimum=SIGNATURE_BYTES)]
    mac: _Mac


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Annotated[str, Limit(REASON_BYTES_MAX)]
    versions: Annotated[tuple[int, ...], Limit(VERSIONS_MAX)]
    # Empty when the responder could not authenticate (it does not share our secret).
    mac: Annotated[bytes, Limit(MAC_BYTES)]


HANDSHAKE_MESSAGES = MessageRegistry(bytes_max=64, text_bytes_max=REASON_BYTES_MAX, items_max=16)
HANDSHAKE_MESSAGES.register(1, Hello)
HANDSHAKE_MESSAGES.register(2, Reply)
HANDSHAKE_MESSAGES.register(3, Finish)
HANDSHAKE_MESSAGES.register(4, Refusal)
