"""The administrator key in the CLI process, and the administrative records it signs.

The administrator key is an Ed25519 pair that stays with the operator: the secret half is
read here, in the CLI process, from `--admin-key FILE` or $GOSSIPNODE_ADMIN_KEY, and signs
the administrative record before it is sent; it never reaches the agent, which only checks
the signature against the public keys pinned in node.toml (`admin_keys`). A verb that changes
an administrative record refuses to run without the key.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import stat
import time
from pathlib import Path
from typing import Any

from ..cli import UsageError
from ..client import ClientError
from .connection import request

__all__ = [
    "ADMIN_KEY_ENV",
    "AdminKey",
    "add_admin_key_argument",
    "load_admin_key",
    "public_key_text",
    "sign_and_put",
    "signed_fields",
]

# The signing code, the core's record rules and the CBOR codec are imported by the functions
# that use them: `policy`, `tags`, `join` and the rest load this module for its options.

ADMIN_KEY_ENV = "GOSSIPNODE_ADMIN_KEY"
SEED_BYTES = 32


class AdminKey:
    def __init__(self, seed: bytes) -> None:
        import nacl.signing

        self.signing_key = nacl.signing.SigningKey(seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature


def public_key_text(public_key: bytes) -> str:
    return base64.b64encode(public_key).decode()


def load_admin_key(path: Path | None) -> AdminKey:
    """The administrator key from `path`, else $GOSSIPNODE_ADMIN_KEY. Raises UsageError when
    neither is given, the file is unreadable or malformed, or others may read it."""
    if path is None:
        from_environment = os.environ.get(ADMIN_KEY_ENV)
        if not from_environment:
            raise UsageError(f"this changes an administrative record and needs the "
                             f"administrator key: give --admin-key FILE or set {ADMIN_KEY_ENV}")
        path = Path(from_environment)
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: cannot read the administrator key: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path}: the administrator key is readable by others; "
                         f"chmod 600 {path}")
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != SEED_BYTES:
        raise UsageError(f"{path}: not an administrator key (gossipnode admin keygen)")
    return AdminKey(seed)


def signed_fields(args: argparse.Namespace, key: AdminKey, record_key: str,
                  value: dict[str, Any]) -> dict[str, Any]:
    """`value` signed as the administrative record `record_key`: the request fields that
    `put_signed` (and a signed `force_leave`) take.

    The version is the administrator's clock, above the stored record's if that is ahead,
    with the administrator key as origin: the signature covers it, so the record cannot be
    stamped anew by anyone else."""
    from ..core.authority import signing_payload
    from ..core.placement import POLICY_DATASET
    from ..core.records import Version
    from ..wire.cbor import encode_value

    wall_ms = int(time.time() * 1000)
    try:
        current = request(args, "get", dataset=POLICY_DATASET, key=record_key)
        wall_ms = max(wall_ms, current["version"]["wall_ms"] + 1)
    except ClientError as error:
        if error.exit_code != 1:  # 1: no such record yet
            raise
    encoded = encode_value(value)
    version = Version(wall_ms, 0, key.public_key)
    signature = key.sign(signing_payload(POLICY_DATASET, record_key, version, encoded))
    return {
        "dataset": POLICY_DATASET, "key": record_key,
        "value": base64.b64encode(encoded).decode(), "wall_ms": wall_ms, "counter": 0,
        "signer": base64.b64encode(key.public_key).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


def sign_and_put(args: argparse.Namespace, key: AdminKey, record_key: str,
                 value: dict[str, Any]) -> dict[str, Any]:
    """Sign `value` as the administrative record `record_key` and store it through the
    agent (see `signed_fields`)."""
    return request(args, "put_signed", **signed_fields(args, key, record_key, value))


def add_admin_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-key", type=Path, metavar="FILE",
                        help=f"the administrator's secret key (default: ${ADMIN_KEY_ENV})")
