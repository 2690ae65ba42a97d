"""The HKP listener against three real agents: GnuPG itself (`--send-keys`, `--recv-keys`,
`--search-keys`, in temporary GNUPGHOMEs) and raw HTTP for the error paths.

A (node0) and B (node1) accept uploads, C (node2) does not. gpg is installed with apt-get
when it is missing (the test machine runs as root); the gpg tests are skipped, saying why,
only when that is impossible.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pysequoia
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster, free_ports

from tests.openpgp_certs import Key, armored

pytestmark = pytest.mark.slow

# gpg talks to dirmngr, which may take a while to start on a busy machine.
GPG_TIMEOUT_S = 120.0
WAIT_S = 60.0
# A short request deadline so the slow-client test does not wait long; a small connection
# cap (peers need two at most) so the cap test opens few sockets.
CONFIG = """
[replication]
anti_entropy_interval_s = 1.0

[wire]
handshake_timeout_s = 2.0
unauthenticated_connections_max = 8
"""


def _wait(condition, what, timeout_s=WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def hkp(tmp_path_factory):
    """(cluster, HKP ports) of three agents."""
    cluster = LocalCluster(tmp_path_factory.mktemp("hkp"), 3, extra_toml=CONFIG)
    ports = free_ports(3)
    for i in range(3):
        config = cluster.data_dir(i) / "node.toml"
        uploads = "true" if i < 2 else "false"
        # Top-level keys go before the first [table] of the file.
        config.write_text(f'hkp_listen = "127.0.0.1:{ports[i]}"\n'
                          f"hkp_accept_uploads = {uploads}\n" + config.read_text())
    with cluster:
        cluster.start_all()
        cluster.wait_members()
        yield cluster, ports


@pytest.fixture(scope="module")
def gpg_binary():
    """The gpg executable, installed from Debian when missing."""
    if shutil.which("gpg") is None or shutil.which("dirmngr") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("gpg is not installed and apt-get cannot run here (not root)")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "gnupg", "dirmngr"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                  check=False, env={**os.environ,
                                                    "DEBIAN_FRONTEND": "noninteractive"})
            if done.returncode != 0:
                pytest.skip(f"cannot install gnupg: {done.stderr.strip()[-300:]}")
    return shutil.which("gpg")


class Gpg:
    """gpg in its own temporary GNUPGHOME (a short path: the agent sockets live there)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.home = tempfile.mkdtemp(prefix="gn-gpg-", dir="/tmp")
        os.chmod(self.home, 0o700)

    def __call__(self, *arguments: str, port: int | None = None, check: bool = True):
        command = [self.binary, "--batch", "--no-tty"]
        if port is not None:
            command += ["--keyserver", f"hkp://127.0.0.1:{port}"]
        done = subprocess.run([*command, *arguments], env={**os.environ, "GNUPGHOME": self.home},
                              capture_output=True, text=True, timeout=GPG_TIMEOUT_S, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"gpg {' '.join(arguments)} failed: {done.stderr[-1000:]}")
        return done

    def colons(self, fingerprint: str) -> list[list[str]]:
        out = self("--with-colons", "--list-keys", fingerprint).stdout
        return [line.split(":") for line in out.splitlines()]

    def close(self) -> None:
        # Stops this home's gpg-agent and dirmngr (through their own sockets), then cleans up.
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": self.home},
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def gpg(gpg_binary):
    homes: list[Gpg] = []

    def make() -> Gpg:
        homes.append(Gpg(gpg_binary))
        return homes[-1]

    yield make
    for home in homes:
        home.close()


def _has_key(cluster, node, fingerprint, revoked=None):
    try:
        value = cluster.request(node, "get", dataset="consumers", key=fingerprint)["value"]
    except Exception:
        return False
    return revoked is None or value["revoked"] == revoked


def test_gpg_send_to_a_receive_from_c_and_a_revocation_through_b(hkp, gpg):
    cluster, ports = hkp
    sender, receiver = gpg(), gpg()
    sender("--passphrase", "", "--quick-gen-key", "Tess Gpg <tess@gpg.example>", "ed25519",
           "default", "never")
    fingerprint = next(row[9] for row in sender.colons("tess@gpg.example") if row[0] == "fpr")
    sender("--send-keys", fingerprint, port=ports[0])
    _wait(lambda: _has_key(cluster, 2, fingerprint.lower()), "the key to reach C")

    receiver("--recv-keys", fingerprint, port=ports[2])
    sent = sender("--armor", "--export", fingerprint).stdout.encode()
    got = receiver("--armor", "--export", fingerprint).stdout.encode()
    assert pysequoia.Cert.from_bytes(got).fingerprint == pysequoia.Cert.from_bytes(sent).fingerprint
    assert [r[9] for r in receiver.colons(fingerprint) if r[0] == "uid"] == \
        ["Tess Gpg <tess@gpg.example>"]

    # gpg made a revocation certificate at key creation; import it and send it to B.
    revocation = Path(sender.home, "openpgp-revocs.d", f"{fingerprint}.rev").read_text()
    unlocked = revocation.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----",
                                  "-----BEGIN PGP PUBLIC KEY BLOCK-----")
    rev_file = Path(sender.home, "revoke.asc")
    rev_file.write_text(unlocked)
    sender("--import", str(rev_file))
    sender("--send-keys", fingerprint, port=ports[1])
    _wait(lambda: _has_key(cluster, 2, fingerprint.lower(), revoked=True),
          "the revocation to reach C")
    receiver("--recv-keys", fingerprint, port=ports[2])
    pub = next(r for r in receiver.colons(fingerprint) if r[0] == "pub")
    assert pub[1] == "r"  # validity field: revoked
    cluster.wait_converged(timeout_s=WAIT_S)


def test_gpg_search_keys_by_email(hkp, gpg):
    cluster, ports = hkp
    key = Key.generate("Sam Search <sam@search.example>")
    cluster.request(0, "keys_import", keys=[{"cert": {"$bytes": _b64(key.public())}}])
    _wait(lambda: _has_key(cluster, 2, key.fingerprint), "the key to reach C")
    done = gpg()("--with-colons", "--search-keys", "sam@search.example", port=ports[2])
    lines = done.stdout.splitlines()
    assert lines[0] == "info:1:1"
    assert lines[1].startswith(f"pub:{key.fingerprint.upper()}:")
    assert lines[2].startswith("uid:Sam Search <sam@search.example>")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _http(port: int, raw: bytes, *, read_timeout_s: float = 30.0) -> tuple[int, bytes]:
    """Send raw bytes; (status, body). It returns only once the server closed the
    connection (a server that kept it open would make recv time out: an error)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _get(port: int, target: str) -> tuple[int, bytes]:
    return _http(port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def test_lookup_get_and_index(hkp):
    cluster, ports = hkp
    key = Key.generate("Lou Lookup <lou@lookup.example>")
    cluster.request(0, "keys_import", keys=[{"cert": {"$bytes": _b64(key.public())}}])
    fpr = key.fingerprint
    for search in ("0x" + fpr.upper(), fpr[-16:], "lou@lookup.example"):
        status, body = _get(ports[0], "/pks/lookup?op=get&search=" + urllib.parse.quote(search))
        assert status == 200, body
        assert pysequoia.Cert.from_bytes(body).fingerprint.lower() == fpr
    status, body = _get(ports[0], f"/pks/lookup?op=vindex&options=mr&search=0x{fpr}")
    assert status == 200 and body.decode().splitlines()[1].startswith(f"pub:{fpr.upper()}:")
    status, body = _get(ports[0], "/pks/lookup?op=index&search=lou")
    assert status == 200 and b"Lou Lookup" in body
    assert _get(ports[0], "/pks/lookup?op=get&search=0x" + "0" * 40)[0] == 404


def test_bad_requests_get_a_4xx_and_a_closed_connection(hkp):
    _, ports = hkp
    port = ports[0]
    assert _get(port, "/pks/lookup?op=frobnicate&search=x")[0] == 400
    assert _get(port, "/pks/lookup?op=get")[0] == 400
    assert _get(port, "/etc/passwd")[0] == 404
    assert _get(port, "http://elsewhere/pks/lookup")[0] == 400
    huge = "/pks/lookup?op=get&search=" + "a" * 100_000
    assert 400 <= _get(port, huge)[0] < 500
    assert _http(port, b"NOT HTTP AT ALL\r\n\r\n")[0] == 400
    status, _ = _http(port, b"POST /pks/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 405
    # A slow client: half a request, then silence; the listener answers 408 and closes.
    started = time.monotonic()
    status, _ = _http(port, b"GET /pks/lookup?op=get HTTP/1.1\r\n", read_timeout_s=30)
    assert status == 408 and time.monotonic() - started < 20
    # And the listener still serves.
    assert _get(port, "/pks/lookup?op=index&search=nobody-at-all")[0] == 404


def test_uploads_refused_when_off_and_secret_material_never_accepted(hkp):
    cluster, ports = hkp
    key = Key.generate("Una Upload <una@upload.example>")
    public = urllib.parse.urlencode({"keytext": armored(key.public()).decode()}).encode()
    secret = urllib.parse.urlencode({"keytext": key.secret().decode()}).encode()

    def post(port: int, body: bytes) -> int:
        head = (f"POST /pks/add HTTP/1.1\r\nHost: x\r\nContent-Type: "
                f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
        return _http(port, head.encode() + body)[0]

    assert post(ports[2], public) == 403  # C: uploads off
    assert post(ports[0], secret) == 422
    assert not _has_key(cluster, 0, key.fingerprint)
    assert post(ports[0], public) == 200
    assert _has_key(cluster, 0, key.fingerprint)
    assert post(ports[0], b"keytext=" + b"x" * (5 * 1024 * 1024)) == 413


def test_connections_over_the_cap_get_503(hkp):
    _, ports = hkp
    idle = [socket.create_connection(("127.0.0.1", ports[1]), timeout=30) for _ in range(8)]
    try:
        time.sleep(0.5)  # let the listener accept them all
        assert _get(ports[1], "/pks/lookup?op=index&search=x")[0] == 503
    finally:
        for sock in idle:
            sock.close()
    _wait(lambda: _get(ports[1], "/pks/lookup?op=index&search=nobody-at-all")[0] == 404,
          "the listener to serve again")
