"""Setup verbs: `datasets`, `keygen`, `init`, `validate`; what an operator runs before a node
has an agent to talk to. Each imports what it uses where it runs, so `gossipnode init` loads
the configuration and the identity, and a client verb loads none of this module.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import EXIT_OK, UsageError, print_table, verb

# --- datasets -------------------------------------------------------------------------------


def _datasets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list")


@verb(
    "datasets",
    "list the data catalog: every dataset and who holds it\n\nexample: gossipnode datasets --json",
    _datasets_arguments,
)
def _datasets(args: argparse.Namespace) -> int:
    import json

    from ..core.catalog import DATASETS

    rows = [
        {"name": d.name, "scope": d.scope.value, "description": d.description} for d in DATASETS
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(["Dataset", "Scope", "Description"], [list(r.values()) for r in rows])
    return EXIT_OK


# --- keygen ---------------------------------------------------------------------------------


def _keygen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="write the secret to FILE (mode 0600)")


@verb(
    "keygen",
    "make a new random cluster secret (32 bytes, base64)\n\n"
    "Every member of a cluster needs the same secret file (secret_files in node.toml).\n"
    "example: gossipnode keygen --out /etc/gossipnode/cluster.secret",
    _keygen_arguments,
)
def _keygen(args: argparse.Namespace) -> int:
    import base64

    from ..identity import generate_secret, write_private_file

    text = base64.b64encode(generate_secret()) + b"\n"
    if args.out is None:
        sys.stdout.write(text.decode())
    else:
        write_private_file(args.out, text)
        print(f"wrote a new cluster secret to {args.out}", file=sys.stderr)
    return EXIT_OK


# --- init -----------------------------------------------------------------------------------


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, required=True, help="the node's data directory")
    parser.add_argument("--name", required=True, help="the node's name, unique in the cluster")
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on for peers")
    parser.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a seed member to join through (repeatable)",
    )
    parser.add_argument(
        "--secret-file", type=Path, required=True, help="the cluster secret (gossipnode keygen)"
    )
    parser.add_argument(
        "--admin-pubkey",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="an administrator public key to pin (gossipnode admin keygen; repeatable); "
        "without one, init refuses unless --open is given",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="pin no administrator key: every holder of the cluster secret is trusted with "
        "all data (for a test bench; a production node pins --admin-pubkey)",
    )
    parser.add_argument("--wep", action="store_true", help="this node runs Web Email Protection")
    parser.add_argument(
        "--no-private-keys",
        action="store_true",
        help="this node must never hold internal users' private keys",
    )


_NODE_TOML = """\
# gossipnode node configuration, written by `gossipnode init`.
# Check it with `gossipnode validate --config {config}`; run it with
# `gossipnode agent --config {config}`. Relative paths are relative to this file.

# The node's name, unique in the cluster. Its identity is identity.key beside this file:
# node id {node_id}
name = {name}
# Where the store, the identity key and the control socket live.
data_dir = {data_dir}
# Address peers connect to (TCP).
listen = {listen}
# Seed members to join through; any one that answers is enough.
join = [{join}]
# Cluster secrets, newest first: we connect with the first and accept any, so a new secret
# can be rolled through a running cluster.
secret_files = [{secret}]
# The local control socket for the gossipnode CLI (mode 0600).
control_socket = {socket}
# Administrator public keys (base64). Policy, grants and admissions count only when signed
# by one of them; this node takes part in replication once an administrator admitted it
# (gossipnode admit). Rotate by adding the new key, re-signing, then removing the old one.
# Empty: the cluster runs open and trusts every holder of the cluster secret.
admin_keys = [{admin_keys}]
# Log lines on stderr: "text" or "json" (one object per line).
log_format = "text"

[tags]
# Runs the Web Email Protection service, so may hold WEP mailboxes.
wep = {wep}
# Accepts internal users' private keys (the cluster policy must permit it too).
private_keys = {private_keys}

# Every interval and limit has a default; see README.md, "Configuration reference".
"""


def _toml_string(text: str) -> str:
    import json

    return json.dumps(text)  # a JSON string is a valid TOML basic string


@verb(
    "init",
    "create a node: data directory, identity key and a commented node.toml\n\n"
    "example: gossipnode init --data-dir /var/lib/gossipnode --name pgp-a \\\n"
    "           --listen 10.0.0.1:7946 --join 10.0.0.2:7946 --secret-file cluster.secret",
    _init_arguments,
)
def _init(args: argparse.Namespace) -> int:
    from ..config import ConfigError, format_address, parse_address
    from ..config_file import load_config
    from ..identity import create_identity, format_node_id, load_secret, write_private_file

    try:
        listen = parse_address(args.listen)
        seeds = [parse_address(seed) for seed in args.join]
    except ValueError as error:
        raise UsageError(f"bad address: {error}") from None
    secret_file = args.secret_file.resolve()
    load_secret(secret_file)
    admin_keys = [_read_admin_pubkey(path) for path in args.admin_pubkey]
    if not admin_keys and not args.open:
        # Secure by default: without an administrator nobody is granted anything, and a
        # node that trusts every holder of the cluster secret must be asked for by name.
        raise UsageError("pin an administrator key with --admin-pubkey FILE (make one with "
                         "`gossipnode admin keygen`), or pass --open to trust every holder "
                         "of the cluster secret")
    if admin_keys and args.open:
        raise UsageError("--open and --admin-pubkey exclude each other")
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # an existing directory too: the node's secrets live here
    config_file = data_dir / "node.toml"
    identity_file = data_dir / "identity.key"
    if config_file.exists():
        raise UsageError(f"{config_file}: already exists; refusing to overwrite it")
    identity = create_identity(identity_file)
    node_id = format_node_id(identity.node_id)
    text = _NODE_TOML.format(
        config=config_file,
        node_id=node_id,
        name=_toml_string(args.name),
        data_dir=_toml_string("."),
        listen=_toml_string(format_address(listen)),
        join=", ".join(_toml_string(format_address(seed)) for seed in seeds),
        secret=_toml_string(str(secret_file)),
        socket=_toml_string("control.sock"),
        admin_keys=", ".join(_toml_string(key) for key in admin_keys),
        wep="true" if args.wep else "false",
        private_keys="false" if args.no_private_keys else "true",
    )
    write_private_file(config_file, text.encode())
    try:
        load_config(config_file)
    except ConfigError:
        config_file.unlink()
        identity_file.unlink()
        raise
    print(node_id)
    if admin_keys:
        print(f"admit this node: gossipnode admit {node_id} --admin-key FILE", file=sys.stderr)
    else:
        print("--open: this node trusts every holder of the cluster secret "
              "(see README.md, \"Administrators and grants\")", file=sys.stderr)
    return EXIT_OK


def _read_admin_pubkey(path: Path) -> str:
    from ..config import parse_admin_key

    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read the administrator public key: {error}") from None
    try:
        parse_admin_key(text)
    except ValueError as error:
        raise UsageError(f"{path}: not an administrator public key: {error}") from None
    return text


# --- validate -------------------------------------------------------------------------------


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the node.toml to check")


@verb(
    "validate",
    "check a node.toml exactly as the agent will load it (exit 0, or 2 with the reason)\n\n"
    "example: gossipnode validate --config /var/lib/gossipnode/node.toml",
    _validate_arguments,
)
def _validate(args: argparse.Namespace) -> int:
    from ..identity import format_node_id
    from ..runtime.preflight import prepare  # the very checks `agent` runs at start

    prepared = prepare(args.config)
    config, node_id = prepared.config, format_node_id(prepared.identity.node_id)
    print(f"{args.config}: valid (node {config.name}, id {node_id})")
    return EXIT_OK
