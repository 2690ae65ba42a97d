"""What every driver of a NodeCore puts around it, in one place: the agent
(runtime/agent.py) and the simulator (simulations/) both use this module, so that the
core a simulation exercises sees exactly the inputs the agent gives it.

- `decode_value`, `content_check()` and the certificate merges: what the core is
  constructed with (`core_arguments()` returns them as keyword arguments);
- `PeerCodec`: peer messages to bytes and back with the wire registry, with the CBOR depth
  limit the transport applies to a peer's frames;
- link limits: `LINK_QUEUE_MESSAGES_MAX`, `LINK_QUEUE_BYTES_MAX`, `DIAL_BACKOFF_S` of the
  outbound links;
- group commit: `WRITE_QUEUE_MAX`, `WRITE_BATCH_MAX` and `commit_writes`, which makes a
  batch of client writes durable with one `write_many` call and refuses the whole batch
  cleanly when the store fails (nothing of it was acknowledged, nothing of it is kept).

Layering: this module sits beside `config` above `core`, `wire` and `openpgp`; it never
imports trio or the runtime, so the simulator may use it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from .config import WireConfig
from .core.catalog import CERTIFICATE_DATASETS
from .core.errors import LocalProtocolError
from .core.records import Record
from .wire.cbor import CborError
from .wire.cbor import decode_value as decode_cbor_value
from .wire.messages import MessageRegistry
from .wire.peer_messages import PEER_MESSAGES

__all__ = [
    "DIAL_BACKOFF_S",
    "LINK_QUEUE_BYTES_MAX",
    "LINK_QUEUE_MESSAGES_MAX",
    "STORE_FAILURES",
    "WRITE_BATCH_MAX",
    "WRITE_QUEUE_MAX",
    "PeerCodec",
    "Write",
    "commit_writes",
    "content_check",
    "core_arguments",
    "decode_value",
]

# Client writes waiting for the next batch at most; more wait in their control connection.
WRITE_QUEUE_MAX = 1024
# Writes made durable together with one disk sync (group commit).
WRITE_BATCH_MAX = 256
# What a store raises when a write cannot be made durable: SQLite reports a failed sync
# or a full disk as sqlite3.Error (the transaction is rolled back), and an I/O error
# anywhere else surfaces as OSError.
STORE_FAILURES: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

# Messages queued on one outbound link (runtime/links.py). A push carries up to 64
# records, so this is about the peer_queue_records_max of the core; past it the link is
# closed and its queue dropped: a stuck peer never makes a node buffer without bound.
LINK_QUEUE_MESSAGES_MAX = 256
# Encoded bytes queued on one outbound link, whatever the count: 256 pushes of a few
# certificates fit, while a handful of full-state push-pulls or large pushes (up to
# wire.push_bytes_max each) cannot pile up unnoticed behind a stuck peer. The simulator's
# links (simulations/network.py) apply it to the bytes they queue; runtime/links.py queues
# messages before they are encoded and bounds them by count only.
LINK_QUEUE_BYTES_MAX = 16 * 1024 * 1024
# After a failed dial, wait this long before dialling the same address again; sends to
# that address meanwhile are dropped. Short: a refused dial on a LAN costs one round trip,
# and a longer wait would drop the first retry of a join whose seed was not up yet
# (membership/sync.py JOIN_RETRY_FIRST_S) and delay reaching a member back after a heal.
DIAL_BACKOFF_S = 0.25

# (dataset, key, value); value None is a delete.
Write = tuple[str, str, bytes | None]


def decode_value(data: bytes) -> dict[str, Any]:
    """A record value as a map. Raises ValueError (what the core expects) on bad CBOR."""
    try:
        return decode_cbor_value(data)
    except CborError as error:
        raise ValueError(str(error)) from None


def content_check() -> Callable[[Record], str | None]:
    """Check a record's value by content (openpgp/content.py): a strict canonical CBOR map,
    no secret key material outside private_keys and org_keys, data bound to its key.

    The OpenPGP code (and pysequoia, several MiB) is imported at the first record checked,
    not when the agent starts: an idle member never loads it."""

    def check(record: Record) -> str | None:
        from .openpgp.content import record_refusal

        return record_refusal(record.dataset, record.key, record.value)

    return check


def _merge_certificates(older: bytes, newer: bytes) -> bytes:
    # Imported at the first merge, like the content check above.
    from .openpgp.merge import merge_values

    return merge_values(older, newer)


def core_arguments() -> dict[str, Any]:
    """The keyword arguments every driver passes to the NodeCore constructor: the value
    decoder, the content check, and the certificate datasets' merge functions (those of
    openpgp/merge.py `value_merges`, loaded on first use)."""
    return {"decode_value": decode_value, "content_check": content_check(),
            "merges": dict.fromkeys(CERTIFICATE_DATASETS, _merge_certificates)}


class PeerCodec:
    """Peer messages <-> bytes, as the transport encodes and decodes them (the secure
    channel's framing and encryption are around these bytes, not part of them)."""

    def __init__(self, wire: WireConfig, registry: MessageRegistry = PEER_MESSAGES) -> None:
        self.registry = registry
        self.depth_max = wire.cbor_depth_max

    def encode(self, message: object) -> bytes:
        """Raises LocalProtocolError for a message outside the schema (our bug)."""
        return self.registry.encode(message)

    def decode(self, data: bytes) -> object:
        """Raises MessageError (a RemoteProtocolError) for bytes outside the schema."""
        return self.registry.decode(data, depth_max=self.depth_max)


def commit_writes(core: Any, writes: Sequence[Write],
                  now: float) -> list[Record | LocalProtocolError]:
    """One group commit: `core.write_many(writes, now)`, and per write the record written
    or the LocalProtocolError that refused it.

    A store failure refuses every write of the batch: the store rolled the transaction
    back before the core indexed or pushed anything (the core applies to the store
    first), so nothing of the batch is acknowledged, kept or sent."""
    try:
        return core.write_many(writes, now)
    except STORE_FAILURES as error:
        refusal = LocalProtocolError(f"the store failed, nothing was written: {error}")
        return [refusal] * len(writes)
