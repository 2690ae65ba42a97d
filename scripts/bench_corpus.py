"""Corpora of real OpenPGP certificates for the benchmarks: made by Sequoia, or by GnuPG.

The two differ in what a certificate carries, so bytes-per-key figures must name theirs:

- `sequoia` (pysequoia `generate_key`): Ed25519 primary, an Ed25519 signing subkey with its
  back-signature and a Cv25519 encryption subkey; every signature carries a 32-byte salt
  notation. About 1,190 bytes, 580 of them random (keys, signatures, salts).
- `gpg` (GnuPG 2.2 `--gen-key --batch`, as `gpg --quick-gen-key` makes them): Ed25519
  primary with a Cv25519 encryption subkey, no salts. About 410 bytes, 200 of them random.
  This is the corpus the SKS figures of the catch-up benchmark were taken on.

GnuPG is slow to make keys in one large keyring (trust database checks per key), so keys are
made in chunks of `GPG_CHUNK_KEYS`, each in a fresh throw-away home, and kept in a cache file
(`gpg-keys.pgp` under the cache directory): made once, reused by later runs, extended when a
run needs more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from gossipnode.openpgp import generate_key, split_keys

__all__ = ["CORPORA", "DEFAULT_CACHE_DIR", "gpg_keys", "make_keys"]

CORPORA = ("sequoia", "gpg")
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "gossipnode-bench-corpus"
# Keys per GnuPG run: small enough that its keyring stays fast (about 16 ms a key).
GPG_CHUNK_KEYS = 500
# One chunk takes about 8 s on an idle machine; this bounds a stuck gpg or gpg-agent.
GPG_CHUNK_TIMEOUT_S = 600.0
# The most keys one run may ask for: what one key file may hold (openpgp KEYS_PER_FILE_MAX).
GPG_KEYS_MAX = 50_000
_CACHE_NAME = "gpg-keys.pgp"
_GPG_PARAMETERS = """Key-Type: eddsa
Key-Curve: ed25519
Key-Usage: sign
Subkey-Type: ecdh
Subkey-Curve: cv25519
Subkey-Usage: encrypt
Name-Real: gpg {index}
Name-Email: gpg{index}@example.org
Expire-Date: 0
%commit
"""


def make_keys(corpus: str, count: int, prefix: str, offset: int = 0,
              cache_dir: Path = DEFAULT_CACHE_DIR) -> list[Any]:
    """`count` parsed keys of `corpus`. Sequoia keys are fresh (user IDs named by `prefix`);
    GnuPG keys are the cached keys `offset` to `offset + count`."""
    if corpus == "gpg":
        return gpg_keys(offset + count, cache_dir)[offset:]
    keys = []
    for index in range(count):
        armored = generate_key(f"{prefix} {index} <{prefix}{index}@example.org>",
                               with_secret=False)
        (parsed,) = split_keys(armored)
        keys.append(parsed)
    return keys


def gpg_keys(count: int, cache_dir: Path = DEFAULT_CACHE_DIR) -> list[Any]:
    """The first `count` GnuPG-made keys of the cache, made (and cached) if missing."""
    if not 0 < count <= GPG_KEYS_MAX:
        raise ValueError(f"between 1 and {GPG_KEYS_MAX} GnuPG keys, not {count}")
    if shutil.which("gpg") is None:
        raise RuntimeError("the gpg corpus needs GnuPG (gpg) on the PATH")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir / _CACHE_NAME
    keys = split_keys(cache.read_bytes()) if cache.exists() else []
    while len(keys) < count:
        chunk = _gpg_chunk(len(keys), min(GPG_CHUNK_KEYS, count - len(keys)), cache_dir)
        with cache.open("ab") as out:
            out.write(chunk)
        keys += split_keys(chunk)
    return keys[:count]


def _gpg_chunk(first: int, count: int, cache_dir: Path) -> bytes:
    """`count` fresh keys, user IDs numbered from `first`, as binary public certificates."""
    home = Path(tempfile.mkdtemp(prefix="gnupg-", dir=cache_dir))
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet", "--trust-model", "always", "--no-auto-check-trustdb"]
    parameters = "%no-protection\n" + "".join(
        _GPG_PARAMETERS.format(index=index) for index in range(first, first + count))
    try:
        subprocess.run([*gpg, "--gen-key"], input=parameters.encode(), env=env, check=True,
                       capture_output=True, timeout=GPG_CHUNK_TIMEOUT_S)
        exported = subprocess.run([*gpg, "--export"], env=env, check=True,
                                  capture_output=True, timeout=GPG_CHUNK_TIMEOUT_S).stdout
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"gpg failed: {error.stderr.decode(errors='replace').strip()}") \
            from None
    finally:
        # The agent this home started; gpgconf stops exactly that one.
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True,
                       timeout=30, check=False)
        shutil.rmtree(home, ignore_errors=True)
    # gpg --export lists keys in keyring order, which is creation order.
    if len(split_keys(exported)) != count:
        raise RuntimeError(f"gpg made {len(split_keys(exported))} keys, expected {count}")
    return exported
