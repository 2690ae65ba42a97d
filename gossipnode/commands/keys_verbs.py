"""The `keys` verbs: import, show, search and export OpenPGP keys.

Rules:
1. `keys import FILE` parses on the client (size caps first, one-line errors). A keyring of
   public certificates is split by the packet walker (fast, canonical); a file with secret
   keys or anything unusual goes through Sequoia (`openpgp.split_keys`). Keys travel to
   the agent in batches, with their derived fields (Sequoia's reading, made by a worker
   thread for the next batch while the agent stores the current one); the agent merges
   each with its stored copy (runtime/keys_api.py) and answers per key: new, updated (and
   what was added), unchanged, secret refused.
2. Progress goes to stderr for files of `PROGRESS_KEYS_MIN` keys or more; an interrupted
   import (Ctrl-C) says how many keys were stored before it stopped, and exits 130.
3. Keys are named by fingerprint (any case, spaces, 0x) or 16-digit key ID; `keys export`
   writes one armored keyring (`gpg --import` reads it) to stdout or `--out FILE`.
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, UsageError, verb
from .connection import add_client_arguments, connect, request
from .formatting import format_time_ms, print_json, print_pairs, print_table

# Keys per request: the agent takes at most 500 (keys_api.IMPORT_BATCH_KEYS_MAX).
IMPORT_BATCH_KEYS = 500
# Files with at least this many keys report progress on stderr, at most once a second.
PROGRESS_KEYS_MIN = 1000
PROGRESS_INTERVAL_S = 1.0
EXIT_INTERRUPTED = 130


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    importer = actions.add_parser(
        "import", help="import (merge) the OpenPGP keys of a file",
        description="import the OpenPGP keys of FILE (ASCII-armored or binary): each public\n"
        "certificate is merged into consumers, secret key material goes to private_keys\n\n"
        "example: gossipnode keys import alice.sec.asc --config node.toml",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_client_arguments(importer, json_help="a JSON list: one object per key")
    importer.add_argument("file", type=Path, metavar="FILE", help="the key file; - for stdin")
    show = actions.add_parser("show", help="show one key (fingerprint or 16-digit key ID)")
    add_client_arguments(show, json_help="print a JSON object")
    show.add_argument("key", metavar="KEY", help="fingerprint (any case, spaces, 0x) or key ID")
    search = actions.add_parser("search", help="find keys by e-mail or user ID text")
    add_client_arguments(search, json_help="print a JSON list")
    search.add_argument("text", metavar="TEXT", help="text to find, case-insensitive")
    search.add_argument("--limit", type=int, default=100, metavar="N",
                        help="at most N keys (default 100)")
    export = actions.add_parser("export", help="write an armored keyring gpg imports")
    add_client_arguments(export, json_help="print the fingerprints exported as JSON")
    export.add_argument("keys", nargs="*", metavar="KEY", help="fingerprints or key IDs")
    export.add_argument("--all", action="store_true", help="every key in consumers")
    export.add_argument("--out", type=Path, metavar="FILE", help="write here, not to stdout")


@verb(
    "keys",
    "OpenPGP keys: `keys import FILE`, `keys show KEY`, `keys search TEXT`,\n"
    "`keys export [KEY ...] [--all] [--out FILE]`\n\n"
    "Imports merge: a key already held gains what the file adds (user IDs, subkeys,\n"
    "signatures, revocations) and loses nothing; a key that adds nothing is not rewritten.\n"
    "example: gossipnode keys import users.asc --config /var/lib/gossipnode/node.toml\n"
    "example: gossipnode keys export --all --out keyring.asc --config node.toml",
    _keys_arguments,
)
def _keys(args: argparse.Namespace) -> int:
    action = {"import": _import, "show": _show, "search": _search, "export": _export}
    return action[args.keys_action](args)


# --- import -------------------------------------------------------------------------------------


def _read_key_file(path: Path) -> bytes:
    from ..openpgp import FILE_BYTES_MAX

    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(FILE_BYTES_MAX + 1)
        else:
            with path.open("rb") as file:
                data = file.read(FILE_BYTES_MAX + 1)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None
    if len(data) > FILE_BYTES_MAX:
        raise UsageError(f"{path}: over {FILE_BYTES_MAX} bytes; import it in parts")
    return data


def _entries(path: Path) -> list[dict[str, Any]]:
    """One {"cert": bytes, "secret": bytes, "fields": ...} per key of the file; "fields"
    (Sequoia's reading) comes with keys read by `split_keys`, the others get it in
    `_with_fields` while the previous batch is in flight."""
    from ..openpgp import KEYS_PER_FILE_MAX, KeyParseError, split_keys
    from ..openpgp.merge import derived_fields, split_certs

    data = _read_key_file(path)
    certs = split_certs(data, KEYS_PER_FILE_MAX)
    if certs is not None:
        return [{"cert": cert} for cert in certs]
    try:
        keys = split_keys(data)
    except KeyParseError as error:
        raise UsageError(f"{path}: {error}") from None
    return [{"cert": k.public_cert, "fields": derived_fields(k),
             **({"secret": k.secret_key} if k.secret_key is not None else {})}
            for k in keys]


def _with_fields(batch: list[dict[str, Any]], known: list[bool]) -> list[dict[str, Any]]:
    """The batch as the request carries it: bytes as {"$bytes": ...}, and the derived
    fields of each key the agent does not hold yet, where Sequoia reads them here (else
    the agent reads the key itself and reports why it cannot). A key the agent holds is
    merged there, and its fields recomputed there: reading it here would be wasted."""
    from ..openpgp.keys import KeyParseError, read_public_cert
    from ..openpgp.merge import derived_fields

    out = []
    for entry, held in zip(batch, known, strict=True):
        fields = entry.get("fields")
        if fields is None and not held:
            try:
                fields = derived_fields(read_public_cert(entry["cert"]))
            except KeyParseError:
                fields = None
        wire = {"cert": _b64(entry["cert"]), "fields": fields}
        if "secret" in entry:
            wire["secret"] = _b64(entry["secret"])
        out.append(wire)
    return out


def _import(args: argparse.Namespace) -> int:
    from concurrent.futures import Future, ThreadPoolExecutor  # this verb's alone

    entries = _entries(args.file)
    rows: list[dict[str, Any]] = []
    started = last_report = time.monotonic()
    batches = [entries[i:i + IMPORT_BATCH_KEYS] for i in range(0, len(entries),
                                                                 IMPORT_BATCH_KEYS)]
    # One worker prepares the next batch while the agent stores this one (rule 1).
    with ThreadPoolExecutor(max_workers=1) as worker:
        try:
            with connect(args) as client:
                def prepare(index: int) -> Future[list[dict[str, Any]]]:
                    known = client.request("keys_known", fingerprints=[
                        _fingerprint(entry["cert"]) for entry in batches[index]])
                    return worker.submit(_with_fields, batches[index], known)

                pending = prepare(0) if batches else None
                for index in range(len(batches)):
                    assert pending is not None
                    batch = pending.result()
                    if index + 1 < len(batches):
                        pending = prepare(index + 1)
                    rows.extend(client.request("keys_import", keys=batch))
                    now = time.monotonic()
                    if (len(entries) >= PROGRESS_KEYS_MIN
                            and now - last_report >= PROGRESS_INTERVAL_S):
                        last_report = now
                        rate = len(rows) / max(now - started, 1e-9)
                        print(f"keys import: {len(rows)}/{len(entries)} keys done "
                              f"({rate:.0f} keys/s)", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            stored = sum(1 for row in rows if row["status"] in ("new", "updated"))
            print(f"gossipnode keys: interrupted after {len(rows)} of {len(entries)} keys; "
                  f"{stored} stored", file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.json:
        print_json(rows)
    else:
        print_table(["Fingerprint", "User ID", "Result"],
                    [[row["fingerprint"] or "-", row["user_id"] or "-", _result(row)]
                     for row in rows])
        print(_summary_line(rows))
    failed = any(row["error"] or (row["secret"] or "").startswith("refused") for row in rows)
    return EXIT_FAILED if failed else EXIT_OK


def _result(row: dict[str, Any]) -> str:
    if row["error"]:
        text = f"refused: {row['error']}"
    elif row["status"] == "updated":
        text = f"updated: added {row['added']}"
    else:
        text = row["status"]
    if row["secret"]:
        text += f"; secret {row['secret']}"
    return text


def _summary_line(rows: list[dict[str, Any]]) -> str:
    counts = Counter(row["status"] for row in rows)
    refused = sum(1 for row in rows if (row["secret"] or "").startswith("refused"))
    return (f"{len(rows)} keys: {counts['new']} new, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {refused} secret refused, "
            f"{counts['error']} refused")


def _fingerprint(cert: bytes) -> str:
    """The key's fingerprint, or "" for a certificate the walker cannot read (the agent
    then reports why)."""
    from ..openpgp.merge import MergeError, fingerprint

    try:
        return fingerprint(cert)
    except MergeError:
        return ""


def _b64(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode("ascii")}


# --- show, search, export -----------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    key = request(args, "keys_show", key=args.key)
    if args.json:
        print_json(key)
        return EXIT_OK
    print_pairs([
        ("Fingerprint", key["fingerprint"]), ("Key ID", key["key_id"]),
        ("Type", key["type"] or "-"), ("User IDs", "; ".join(key["user_ids"] or []) or "-"),
        ("E-mail", key["email"] or "-"), ("Created", _time(key["created_unix_s"])),
        ("Expires", _time(key["expires_unix_s"]) if key["expires_unix_s"] else "never"),
        ("Revoked", "yes" if key["revoked"] else "no"),
        ("Secret key held", "yes" if key["secret_held"] else "no"),
    ])
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 10_000:
        raise UsageError("--limit must be from 1 to 10000")
    keys = request(args, "keys_search", text=args.text, limit=args.limit)
    if args.json:
        print_json(keys)
        return EXIT_OK
    print_table(["Fingerprint", "User ID", "Revoked"],
                [[k["fingerprint"], (k["user_ids"] or ["-"])[0], "yes" if k["revoked"] else "no"]
                 for k in keys])
    if not keys:
        print(f"(no key matches {args.text!r})")
    return EXIT_OK if keys else EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    if bool(args.keys) == args.all:
        raise UsageError("name keys to export, or give --all (not both)")
    answer = request(args, "keys_export", keys=list(args.keys), all=args.all)
    armored = answer["armored"]
    if args.out is not None:
        try:
            args.out.write_text(armored, encoding="ascii")
        except OSError as error:
            raise UsageError(f"{args.out}: {error.strerror or error}") from None
    if args.json:
        print_json(answer["fingerprints"])
    elif args.out is not None:
        print(f"exported {len(answer['fingerprints'])} keys to {args.out}")
    else:
        sys.stdout.write(armored)
    return EXIT_OK


def _time(unix_s: int | None) -> str:
    return "-" if unix_s is None else format_time_ms(unix_s * 1000)
