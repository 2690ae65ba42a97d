"""The local demo: three gossipnode agents on 127.0.0.1, real OpenPGP keys, a partition.

1. Make an administrator key (it stays with the operator), start three agents that pin its
   public half (pgp-a, pgp-b run WEP; pgp-c may not hold private keys), and admit them:
   pgp-a and pgp-b are granted private keys and WEP, pgp-c only admission.
2. Load sample data: users with OpenPGP keys made on the fly (public certificates into
   `consumers`, secret keys into `private_keys`), a group, a WEP mailbox with a message.
3. Show `gossipnode status` converging, and that pgp-c holds no private key.
4. Cut pgp-c off, write on both sides, show the difference; heal; show convergence again.
5. Stop everything the demo started.

    sh scripts/demo.sh [--keep DIR]      (--keep leaves the data directories in DIR)
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local_cluster import ROOT, LocalCluster

from gossipnode.openpgp import generate_key

NAMES = ("pgp-a", "pgp-b", "pgp-c")
USERS = ("alice@example.org", "bob@example.org", "carol@example.org")
FAST = "\n[replication]\nanti_entropy_interval_s = 2.0\n"


def step(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def gossipnode(cluster: LocalCluster, node: int, *args: str, show: bool = True) -> str:
    if show:
        shown = " ".join(f"'{a}'" if " " in a or "{" in a else a for a in args)
        print(f"$ gossipnode {shown}    # on {cluster.names[node]}", flush=True)
    command = [*args, "--socket", str(cluster.socket_path(node))]
    result = subprocess.run([sys.executable, "-m", "gossipnode", *command], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    if show:
        print(result.stdout, end="", flush=True)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"gossipnode {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def run(root: Path) -> None:
    step("making an administrator key (kept by the operator, never on a node)")
    admin_key = root / "admin.key"
    root.mkdir(parents=True, exist_ok=True)
    print(f"$ gossipnode admin keygen --out {admin_key}")
    print(LocalCluster.gossipnode("admin", "keygen", "--out", str(admin_key)), end="")

    step("starting three agents on 127.0.0.1, each pinning the administrator public key")
    cluster = LocalCluster(root, 3, wep=(0, 1), no_private_keys=(2,), extra_toml=FAST,
                           names=NAMES, admin_pubkey=Path(f"{admin_key}.pub"))
    with contextlib.closing(cluster):
        cluster.start_all()
        cluster.wait_members()
        gossipnode(cluster, 0, "members")
        print("nobody is admitted yet: the cluster secret alone gives no data.")

        step("admitting the members and granting private keys and WEP (signed in the CLI)")
        ids = {m["name"]: m["id"] for m in cluster.request(0, "members")}
        key = ["--admin-key", str(admin_key)]
        gossipnode(cluster, 0, "grant", ids["pgp-a"], "admitted", "private-keys", "wep", *key)
        gossipnode(cluster, 0, "grant", ids["pgp-b"], "admitted", "private-keys", "wep", *key)
        gossipnode(cluster, 0, "admit", ids["pgp-c"], *key)
        gossipnode(cluster, 0, "policy", "wep", "--replication", "on", "--replicas", "2", *key)
        time.sleep(2)
        gossipnode(cluster, 2, "members")

        step("loading sample data: OpenPGP keys made on the fly, a group, a WEP mailbox")
        keyfile = root / "users.asc"
        keyfile.write_bytes(b"".join(generate_key(f"User <{user}>") for user in USERS))
        print(f"generated {len(USERS)} Ed25519 keys with their secret parts: {keyfile}")
        gossipnode(cluster, 0, "keys", "import", str(keyfile))
        gossipnode(cluster, 1, "put", "groups", "engineering",
                   "--value", '{"members": ["alice@example.org", "bob@example.org"]}')
        gossipnode(cluster, 0, "put", "web_messenger", "mbox-alice",
                   "--value", '{"owner": "alice@example.org"}')
        gossipnode(cluster, 0, "put", "web_messenger", "mbox-alice/msg-0001",
                   "--value", '{"subject": "hello", "body": "encrypted for alice"}')

        step("replication: status converges on every member")
        took = cluster.wait_converged(timeout_s=60)
        print(f"(converged in {took:.1f} s)")
        gossipnode(cluster, 2, "status")
        gossipnode(cluster, 0, "owners", "mbox-alice")
        gossipnode(cluster, 2, "list", "private_keys")
        print("pgp-c holds no private key: it has no private-keys grant (and did not opt in).")

        step("cutting pgp-c off from the others, then writing on both sides")
        cluster.isolate(2)
        gossipnode(cluster, 0, "put", "groups", "sales", "--value", '{"members": []}')
        gossipnode(cluster, 2, "put", "keyservers", "hkps-example",
                   "--value", '{"url": "hkps://keys.example.org"}')
        time.sleep(3)
        gossipnode(cluster, 0, "list", "groups")
        gossipnode(cluster, 2, "list", "groups")

        step("healing the network: anti-entropy brings every member up to date")
        cluster.heal()
        took = cluster.wait_converged(timeout_s=120)
        print(f"(data converged {took:.1f} s after the heal)")
        started = time.monotonic()
        cluster.wait_members(timeout_s=120)
        print(f"(every member sees every member alive again after "
              f"{took + time.monotonic() - started:.1f} s)")
        gossipnode(cluster, 2, "list", "groups")
        gossipnode(cluster, 0, "get", "keyservers", "hkps-example")
        gossipnode(cluster, 0, "status")

        step("stopping the agents")
    print("all agents stopped.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="keep the data directories in this folder")
    args = parser.parse_args()
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        run(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="gossipnode-demo-") as scratch:
            run(Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
