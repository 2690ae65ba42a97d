"""The OpenPGP verbs of the agent: import, show, search, export (control socket and HKP).

Rules:
1. Import merges: a key already stored live is merged with the new copy (openpgp/merge.py)
   and written only if the merge adds something; a key that adds nothing is reported
   "unchanged" and costs no write, no new version and no replication traffic.
2. A batch of keys is one `write_many`: one store transaction, one disk sync.
3. Certificates go to `consumers` (public packets only: `canonical_cert` refuses secret
   material); secret keys go to `private_keys`, where the core's own checks decide whether
   this member may hold them ("secret refused" otherwise).
4. Keys are named as `openpgp.lookup` says (fingerprint in any spelling, or key ID); a key
   ID that matches several stored keys is an error naming them.
5. A new key's derived fields (user IDs, e-mail, times, revoked) may come with it from the
   client, which read the certificate with Sequoia while the agent stored the previous
   batch: that overlap halves a bulk import. The control socket is the operator's (it
   can `put` any value), so they are only checked for form and for naming this key; a
   later merge recomputes them from the certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..core.errors import LocalProtocolError
from ..core.records import Record
from ..openpgp.keys import KeyParseError, read_public_cert
from ..openpgp.lookup import armor_keyring, key_id, matches, parse_key_ref
from ..openpgp.merge import (
    MergeError,
    additions,
    canonical_cert,
    derived_fields,
    fingerprint,
    merge_certs,
    merge_values,
)
from ..wire.cbor import CborError, decode_value, encode_value
from .control_api import KEY_DATASETS, from_json, to_json
from .control_errors import ControlError

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["KEY_DATASETS", "KEY_VERBS", "find_keys", "import_keys", "resolve_key",
           "search_keys"]

CONSUMERS = "consumers"
PRIVATE_KEYS = "private_keys"
# Keys per import request: a request is at most 4 MiB (control.REQUEST_BYTES_MAX) and an
# ordinary key 1-10 KiB of base64; 500 keys also keep one batch's work near 0.2 s, so the
# agent's event loop is never held long.
IMPORT_BATCH_KEYS_MAX = 500
# `keys search` answers with at most this many keys unless asked for fewer.
SEARCH_LIMIT_DEFAULT = 100
SEARCH_LIMIT_MAX = 10_000


class KeyLookupError(LookupError):
    """A key reference that names no key, or several (`str()` is one line)."""


def resolve_key(store: Any, dataset: str, text: str) -> str:
    """The record key `text` names in `dataset`: a key reference becomes the stored
    fingerprint (rule 4); other text, or other datasets, are left as they are."""
    ref = parse_key_ref(text) if dataset in KEY_DATASETS else None
    if ref is None:
        return text
    if ref.kind == "fingerprint":
        return ref.hex
    found = [r.key for r in store.scan(dataset) if key_id(r.key) == ref.hex]
    if len(found) > 1:
        raise KeyLookupError(f"key ID {ref.hex} matches {len(found)} keys: "
                             + ", ".join(found))
    return found[0] if found else ref.hex


def find_keys(store: Any, text: str, limit: int | None = None
              ) -> list[tuple[str, dict[str, Any]]]:
    """(fingerprint, value) of the live consumers `text` names: a key reference, else
    e-mail / user ID text (at most `limit` of those)."""
    ref = parse_key_ref(text)
    if ref is not None:
        key = resolve_key(store, CONSUMERS, text)
        record = store.get(CONSUMERS, key)
        return [] if record is None or record.value is None else [(key, _decode(record))]
    return search_keys(store, text, limit)


def search_keys(store: Any, text: str, limit: int | None = None) -> list[tuple[str, dict]]:
    """(fingerprint, value) of live consumers whose e-mail or a user ID contains `text`."""
    found = []
    for record in _live(store):
        value = _decode(record)
        if matches(value, text):
            found.append((record.key, value))
            if limit is not None and len(found) >= limit:
                break
    return found


def export_keys(store: Any, texts: list[str], everything: bool) -> tuple[bytes, list[str]]:
    """An armored keyring of the named consumers (or all), and the fingerprints in it."""
    if everything:
        chosen = [(r.key, _decode(r)) for r in _live(store)]
    else:
        chosen = []
        for text in texts:
            ref = parse_key_ref(text)
            if ref is None:
                raise KeyLookupError(f"{text!r} is not a fingerprint or a 16-digit key ID")
            found = find_keys(store, text)
            if not found:
                raise KeyLookupError(f"no key {text}")
            chosen.extend(found)
    certs = [value["cert"] for _, value in chosen if isinstance(value.get("cert"), bytes)]
    return armor_keyring(certs), [key for key, _ in chosen]


def import_keys(agent: Agent, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Import a batch of {"cert": bytes, "secret": bytes | None}; one row per key."""
    rows: list[dict[str, Any]] = []
    writes: list[tuple[str, str, bytes | None]] = []
    owners: list[tuple[int, str]] = []  # per write: (row index, "cert" or "secret")
    for entry in keys:
        row = _plan(agent.store, entry, writes)
        owners.extend((len(rows), kind) for kind in row.pop("_writes"))
        rows.append(row)
    if writes:
        try:
            results = agent.input(lambda now: agent.core.write_many(writes, now))
        except LocalProtocolError as error:
            results = [error] * len(writes)
        for (index, kind), result in zip(owners, results, strict=True):
            _report(rows[index], kind, result)
    return rows


def _plan(store: Any, entry: dict[str, Any], writes: list) -> dict[str, Any]:
    cert, secret = entry.get("cert"), entry.get("secret")
    row: dict[str, Any] = {"fingerprint": None, "user_id": None, "status": "error",
                           "added": None, "secret": None, "error": None, "_writes": []}
    if not isinstance(cert, bytes) or not (secret is None or isinstance(secret, bytes)):
        row["error"] = "each key needs 'cert' (bytes) and optionally 'secret' (bytes)"
        return row
    try:
        fpr = fingerprint(cert)
        row["fingerprint"] = fpr
        stored = store.get(CONSUMERS, fpr)
        old = _decode(stored) if stored is not None and stored.value is not None else None
        consumer_type = "internal" if secret is not None else "external"
        if old is not None and isinstance(old.get("cert"), bytes) and _holds_all(
            old, cert, consumer_type
        ):
            row["status"], row["user_id"] = "unchanged", (old.get("user_ids") or [None])[0]
        elif old is not None and isinstance(old.get("cert"), bytes):
            value = merge_values(stored.value, encode_value({"type": consumer_type,
                                                              "cert": cert}))
            merged = decode_value(value)
            row["user_id"] = (merged.get("user_ids") or [None])[0]
            if value == stored.value:
                row["status"] = "unchanged"
            else:
                added = additions(old["cert"], merged["cert"])
                row["status"] = "updated"
                row["added"] = added.text() if added else "type internal"
                writes.append((CONSUMERS, fpr, value))
                row["_writes"].append("cert")
        else:
            canonical = canonical_cert(cert)
            fields = _client_fields(entry.get("fields"), fpr)
            if fields is None:
                try:
                    fields = derived_fields(read_public_cert(canonical))
                except KeyParseError as error:
                    raise MergeError(str(error)) from None
            value = encode_value({"type": consumer_type, "cert": canonical, **fields})
            row["status"], row["user_id"] = "new", (fields["user_ids"] or [None])[0]
            writes.append((CONSUMERS, fpr, value))
            row["_writes"].append("cert")
    except (MergeError, CborError) as error:
        row["status"], row["error"] = "error", str(error)
        return row
    if secret is not None:
        secret_value = encode_value({"fingerprint": fpr, "secret_key": secret})
        current = store.get(PRIVATE_KEYS, fpr)
        if current is not None and current.value == secret_value:
            row["secret"] = "unchanged"
        else:
            writes.append((PRIVATE_KEYS, fpr, secret_value))
            row["_writes"].append("secret")
    return row


# The derived fields a client may send with a new key, and their types.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "fingerprint": (str,), "user_ids": (list,), "email": (str, type(None)),
    "created_unix_s": (int,), "expires_unix_s": (int, type(None)), "revoked": (bool,),
}


def _client_fields(fields: Any, fpr: str) -> dict[str, Any] | None:
    """The derived fields the client computed (Sequoia's reading, `keys_verbs`), if they
    are well-formed and name this key; None to compute them here (rule 5)."""
    if not isinstance(fields, dict) or set(fields) != set(_FIELD_TYPES):
        return None
    if any(type(fields[name]) not in types for name, types in _FIELD_TYPES.items()):
        return None
    if fields["fingerprint"] != fpr or not all(isinstance(u, str) for u in fields["user_ids"]):
        return None
    return fields


def _holds_all(old: dict[str, Any], cert: bytes, consumer_type: str) -> bool:
    """Whether the stored value already holds every packet of `cert` (and the type it
    would get): the common re-import, answered without Sequoia (rule 1)."""
    if consumer_type == "internal" and old.get("type") != "internal":
        return False
    return merge_certs(old["cert"], cert) == old["cert"]


def _report(row: dict[str, Any], kind: str, result: Record | LocalProtocolError) -> None:
    refused = isinstance(result, LocalProtocolError)
    if kind == "secret":
        row["secret"] = f"refused: {result}" if refused else "stored"
    elif refused:
        row["status"], row["added"], row["error"] = "error", None, str(result)


def _live(store: Any) -> Iterator[Record]:
    return (r for r in store.replicated(CONSUMERS) if r.value is not None)


def _decode(record: Record) -> dict[str, Any]:
    assert record.value is not None
    return decode_value(record.value)


# --- control verbs ------------------------------------------------------------------------------


def _summary(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"fingerprint": key, "key_id": key_id(key),
            **{name: value.get(name) for name in (
                "type", "user_ids", "email", "created_unix_s", "expires_unix_s", "revoked")}}


async def _keys_import(agent: Agent, request: dict[str, Any]) -> Any:
    keys = from_json(request.get("keys"))
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise ControlError("argument 'keys' must be a list of objects")
    if len(keys) > IMPORT_BATCH_KEYS_MAX:
        raise ControlError(f"at most {IMPORT_BATCH_KEYS_MAX} keys per request")
    return import_keys(agent, keys)


async def _keys_known(agent: Agent, request: dict[str, Any]) -> Any:
    """Per fingerprint, whether a live consumer holds it (the client then skips reading
    keys the agent will merge itself)."""
    names = request.get("fingerprints")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ControlError("argument 'fingerprints' must be a list of strings")
    if len(names) > IMPORT_BATCH_KEYS_MAX:
        raise ControlError(f"at most {IMPORT_BATCH_KEYS_MAX} fingerprints per request")
    found = [agent.store.get(CONSUMERS, name) if name else None for name in names]
    return [record is not None and record.value is not None for record in found]


async def _keys_show(agent: Agent, request: dict[str, Any]) -> Any:
    text = request.get("key")
    if not isinstance(text, str) or parse_key_ref(text) is None:
        raise ControlError("argument 'key' must be a fingerprint or a 16-digit key ID")
    try:
        found = find_keys(agent.store, text)
    except KeyLookupError as error:
        raise ControlError(str(error), exit_code=1) from None
    if not found:
        raise ControlError(f"no key {text}", exit_code=1)
    key, value = found[0]
    secret = agent.store.get(PRIVATE_KEYS, key)
    return {**_summary(key, value), "cert": to_json(value.get("cert")),
            "secret_held": secret is not None and secret.value is not None}


async def _keys_search(agent: Agent, request: dict[str, Any]) -> Any:
    text, limit = request.get("text"), request.get("limit", SEARCH_LIMIT_DEFAULT)
    if not isinstance(text, str) or not text.strip():
        raise ControlError("argument 'text' must be a non-empty string")
    if type(limit) is not int or not 1 <= limit <= SEARCH_LIMIT_MAX:
        raise ControlError(f"argument 'limit' must be an integer from 1 to {SEARCH_LIMIT_MAX}")
    return [_summary(key, value) for key, value in search_keys(agent.store, text, limit)]


async def _keys_export(agent: Agent, request: dict[str, Any]) -> Any:
    texts, everything = request.get("keys") or [], request.get("all") is True
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ControlError("argument 'keys' must be a list of key references")
    if not texts and not everything:
        raise ControlError("name keys to export, or ask for all of them")
    try:
        armored, fingerprints = export_keys(agent.store, texts, everything)
    except KeyLookupError as error:
        raise ControlError(str(error), exit_code=1) from None
    return {"armored": armored.decode("ascii"), "fingerprints": fingerprints}


KEY_VERBS = {
    "keys_import": _keys_import,
    "keys_known": _keys_known,
    "keys_show": _keys_show,
    "keys_search": _keys_search,
    "keys_export": _keys_export,
}
