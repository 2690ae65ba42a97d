"""Data client verbs: put, get, delete, list (OpenPGP keys: keys_verbs.py).

Rules:
1. Values are JSON objects (maps); bytes inside them are written {"$bytes": BASE64}, the
   control socket's convention (runtime/control_values.py). The agent checks the dataset,
   the map, the size limit and the scope, and its one-line refusal is what the operator
   sees.
2. `put` and `delete` return after the agent has committed the write to its store (durable:
   it survives kill -9); replication to peers follows.
3. `get` prints the value alone as JSON, so `get ... > FILE` and `put --value-file FILE`
   round-trip; `--json` adds key and version. A missing record exits 1.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ..cli import EXIT_OK, UsageError, verb
from .connection import add_client_arguments, request
from .formatting import format_time_ms, print_json, print_table, summarize

# A --value-file is read up to this many bytes: a record is at most 1 MiB of CBOR
# (limits.record_bytes_max), which base64 and JSON grow by less than 4x.
VALUE_FILE_BYTES_MAX = 4 * 1024 * 1024


def _record_arguments(parser: argparse.ArgumentParser, json_help: str) -> None:
    add_client_arguments(parser, json_help=json_help)
    parser.add_argument("dataset", metavar="DATASET", help="a dataset (gossipnode datasets)")
    parser.add_argument("key", metavar="KEY", help="the record's key")


def _version_text(version: dict[str, Any]) -> str:
    return f"{format_time_ms(version['wall_ms'])}+{version['counter']} by {version['origin'][:13]}"


def _record_view(record: dict[str, Any]) -> dict[str, Any]:
    return {"key": record["key"], "value": record["value"], "version": record["version"]}


# --- put ----------------------------------------------------------------------------------------


def _put_arguments(parser: argparse.ArgumentParser) -> None:
    _record_arguments(parser, "print the stored record as a JSON object")
    value = parser.add_mutually_exclusive_group(required=True)
    value.add_argument("--value", metavar="JSON", help="the value: a JSON object")
    value.add_argument("--value-file", type=Path, metavar="FILE",
                       help="read the value (a JSON object) from FILE; - for stdin")


def _read_value(args: argparse.Namespace) -> dict[str, Any]:
    if args.value is not None:
        text, source = args.value, "--value"
    else:
        source = str(args.value_file)
        try:
            if source == "-":
                data = sys.stdin.buffer.read(VALUE_FILE_BYTES_MAX + 1)
            else:
                with args.value_file.open("rb") as file:
                    data = file.read(VALUE_FILE_BYTES_MAX + 1)
        except OSError as error:
            raise UsageError(f"{source}: {error.strerror or error}") from None
        if len(data) > VALUE_FILE_BYTES_MAX:
            raise UsageError(f"{source}: over {VALUE_FILE_BYTES_MAX} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{source}: not UTF-8 text") from None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{source}: not JSON: {error}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source}: the value must be a JSON object (a map), "
                         f"not {type(value).__name__}")
    return value


@verb(
    "put",
    "write a record; returns once it is durable on this node (replication follows)\n\n"
    'Bytes inside the value are written {"$bytes": "BASE64"}.\n'
    'example: gossipnode put groups sales --value \'{"members": ["ann", "bob"]}\' '
    "--config node.toml\n"
    "example: gossipnode get groups sales > sales.json; gossipnode put groups sales "
    "--value-file sales.json",
    _put_arguments,
)
def _put(args: argparse.Namespace) -> int:
    value = _read_value(args)
    record = request(args, "put", dataset=args.dataset, key=args.key, value=value)
    if args.json:
        print_json(_record_view(record))
    else:
        print(f"stored {args.dataset}/{args.key} (version {_version_text(record['version'])})")
    return EXIT_OK


# --- get ----------------------------------------------------------------------------------------


def _get_arguments(parser: argparse.ArgumentParser) -> None:
    _record_arguments(parser, "print an object with key, value and version")


@verb(
    "get",
    "print a record's value as JSON (exit 1 when the record does not exist)\n\n"
    "example: gossipnode get consumers 0123456789abcdef0123456789abcdef01234567 --json",
    _get_arguments,
)
def _get(args: argparse.Namespace) -> int:
    record = request(args, "get", dataset=args.dataset, key=args.key)
    print_json(_record_view(record) if args.json else record["value"])
    return EXIT_OK


# --- delete -------------------------------------------------------------------------------------


def _delete_arguments(parser: argparse.ArgumentParser) -> None:
    _record_arguments(parser, "print the tombstone as a JSON object")


@verb(
    "delete",
    "delete a record (a tombstone that replicates; exit 1 when there is no such record)\n\n"
    "example: gossipnode delete groups sales --config node.toml",
    _delete_arguments,
)
def _delete(args: argparse.Namespace) -> int:
    record = request(args, "delete", dataset=args.dataset, key=args.key)
    if args.json:
        print_json(_record_view(record))
    else:
        print(f"deleted {args.dataset}/{args.key} (version {_version_text(record['version'])})")
    return EXIT_OK


# --- list ---------------------------------------------------------------------------------------


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser, json_help='{"records": [{key, value, version}...], '
                         '"next": KEY or null}')
    parser.add_argument("dataset", metavar="DATASET", help="a dataset (gossipnode datasets)")
    parser.add_argument("--prefix", default="", metavar="P", help="only keys starting with P")
    parser.add_argument("--after", metavar="KEY",
                        help="start after KEY (the `next` of the previous page)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="at most N records per page (default 1000, at most 100000)")


@verb(
    "list",
    "list a dataset's records in key order, a page at a time (deleted records are not shown)\n\n"
    "When there is more, the last line says so and names the --after KEY of the next page\n"
    "(`next` in --json; null on the last page).\n"
    "example: gossipnode list web_messenger --prefix mbox-42/ --limit 10 --config node.toml\n"
    "example: gossipnode list consumers --after 0F3A...C2 --config node.toml",
    _list_arguments,
)
def _list(args: argparse.Namespace) -> int:
    arguments: dict[str, Any] = {"dataset": args.dataset, "prefix": args.prefix, "page": True}
    if args.limit is not None:
        arguments["limit"] = args.limit
    if args.after is not None:
        arguments["after"] = args.after
    page = request(args, "list", **arguments)
    records = [r for r in page["records"] if r["value"] is not None]
    if args.json:
        print_json({"records": [_record_view(r) for r in records], "next": page["next"]})
        return EXIT_OK
    print_table(
        ["Key", "Version", "Value"],
        [[r["key"], _version_text(r["version"]), summarize(r["value"])] for r in records],
    )
    if not records:
        print(f"(no records in {args.dataset}"
              + (f" with prefix {args.prefix!r}" if args.prefix else "")
              + (f" after {args.after!r})" if args.after else ")"))
    if page["next"] is not None:
        print(f"(more: continue with --after {shlex.quote(page['next'])})")
    return EXIT_OK
