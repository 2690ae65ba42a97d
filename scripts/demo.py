"""The local demo. Until the agent exists it sets up one node and shows what it would run."""

import subprocess
import sys
import tempfile
from pathlib import Path


def gossipnode(*args: str) -> str:
    print(f"$ gossipnode {' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "gossipnode.cli", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    print(result.stdout, end="", flush=True)
    return result.stdout


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gossipnode-demo-") as scratch:
        root = Path(scratch)
        gossipnode("keygen", "--out", str(root / "cluster.secret"))
        gossipnode(
            "init",
            "--data-dir",
            str(root / "pgp-a"),
            "--name",
            "pgp-a",
            "--listen",
            "127.0.0.1:7946",
            "--secret-file",
            str(root / "cluster.secret"),
            "--wep",
        )
        gossipnode("validate", "--config", str(root / "pgp-a" / "node.toml"))
        gossipnode("datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
