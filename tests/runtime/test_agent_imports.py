"""What a running agent has imported once it serves beside a peer: nothing an idle agent
does not use (each costs resident memory in every agent), and the `ssl` stand-in
(runtime/lazy_ssl.py) still gives TLS to a program that asks for it.

Both run in a fresh interpreter: the test runner has Trio, and so the real `ssl`, loaded
already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.commands.conftest import REPOSITORY, environment, make_agent

# Loaded by no idle agent: TLS (no link uses it), the OpenPGP code, HTTP (metrics and HKP
# are off unless configured), test tooling. By name and by prefix.
NOT_WHEN_IDLE = ("_ssl", "pysequoia", "h11", "gossipnode.openpgp", "gossipnode.runtime.hkp",
                 "gossipnode.runtime.metrics_http", "pytest", "_pytest", "hypothesis",
                 "trio.testing")
WAIT_S = 60.0

# `gossipnode agent` run by cli.main, as the command runs it; a thread waits until the
# agent sees its peer alive, writes the names in sys.modules and stops the agent (SIGTERM).
AGENT = """
import json, os, signal, sys, threading, time
from gossipnode.cli import main
from gossipnode.client import AgentUnreachable, ClientError, ControlClient

config, socket_path, out, wait_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])

def alive() -> int:
    try:
        with ControlClient(socket_path) as client:
            return sum(m["state"] == "alive" for m in client.request("members"))
    except (AgentUnreachable, ClientError, OSError):
        return 0

def watch() -> None:
    deadline = time.monotonic() + wait_s
    while alive() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # a few probe rounds with the peer
    with open(out, "w") as file:
        json.dump({"alive": alive(), "modules": sorted(sys.modules)}, file)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
sys.exit(main(["agent", "--config", config]))
"""


def unwanted(modules: list[str]) -> list[str]:
    return [name for name in modules
            if any(name == n or name.startswith(n + ".") for n in NOT_WHEN_IDLE)]


@pytest.mark.slow
def test_an_agent_serving_a_peer_loads_nothing_an_idle_agent_does_not_use(tmp_path):
    peer = make_agent(tmp_path, "peer")
    probed = make_agent(tmp_path, "probed", join=peer)
    out = tmp_path / "modules.json"
    peer.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", AGENT, str(probed.config), str(probed.socket), str(out),
             str(WAIT_S)],
            cwd=REPOSITORY, env=environment(), capture_output=True, text=True,
            timeout=WAIT_S + 60)  # fmt: skip
    finally:
        peer.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["alive"] == 2  # it ran: the peer and itself
    assert "gossipnode.runtime.agent" in report["modules"]
    assert "ssl" in report["modules"]  # the stand-in Trio imported
    assert unwanted(report["modules"]) == []


# The agent's imports, then what a program that wants TLS does with `ssl` and Trio.
TLS_USER = """
import json, sys
import gossipnode.runtime.daemon, gossipnode.commands.agent
import trio

report = {"stand_in": type(sys.modules["ssl"]).__name__,
          "loaded_by_trio": "_ssl" in sys.modules}
import ssl
report["loaded_by_import"] = "_ssl" in sys.modules
context = ssl.create_default_context()
report["real_after_use"] = type(sys.modules["ssl"]).__name__
report["same_classes"] = (ssl.SSLContext is sys.modules["ssl"].SSLContext
                          and trio._ssl._stdlib_ssl.SSLContext is ssl.SSLContext
                          and isinstance(context, sys.modules["ssl"].SSLContext))
ssl.TEST_MARK = 1  # written through the stand-in: the real module holds it
report["write_reaches_real"] = getattr(sys.modules["ssl"], "TEST_MARK", None) == 1
del ssl.TEST_MARK
report["delete_reaches_real"] = not hasattr(sys.modules["ssl"], "TEST_MARK")
report["dir"] = dir(ssl) == dir(sys.modules["ssl"])
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE

async def client_hello() -> bytes:
    # A Trio TLS stream over a socket pair: the client's first flight is a TLS record.
    ours, theirs = trio.socket.socketpair()
    stream = trio.SSLStream(trio.SocketStream(ours), context, server_hostname="node.test")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async def handshake() -> None:
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError:
                    pass  # no server answers: the peer's end closes
            nursery.start_soon(handshake)
            hello = await theirs.recv(5)
            theirs.close()
    return hello

hello = trio.run(client_hello)
report["record"] = list(hello[:3])
print(json.dumps(report))
"""


STAR_IMPORT = """
import json, sys
import gossipnode.runtime.daemon
first = {}
exec("from ssl import *", first)  # the first use of ssl: through the stand-in
again = {}
exec("from ssl import *", again)  # the real module, now in sys.modules
names = lambda namespace: sorted(key for key in namespace if key != "__builtins__")
print(json.dumps({"same": names(first) == names(again), "count": len(names(first)),
                  "has_context": "SSLContext" in first}))
"""


def test_a_star_import_of_ssl_through_the_stand_in_takes_what_the_real_module_gives():
    result = subprocess.run([sys.executable, "-c", STAR_IMPORT], cwd=REPOSITORY,
                            env=environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["same"] and report["has_context"] and report["count"] > 50


def test_a_program_that_uses_tls_after_the_agents_imports_gets_the_real_ssl():
    result = subprocess.run([sys.executable, "-c", TLS_USER], cwd=REPOSITORY,
                            env=environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report == {
        "stand_in": "LazySsl", "loaded_by_trio": False, "loaded_by_import": False,
        "real_after_use": "module", "same_classes": True, "write_reaches_real": True,
        "delete_reaches_real": True, "dir": True,
        "record": [0x16, 3, 1],  # a handshake record, TLS 1.0 record version (ClientHello)
    }
