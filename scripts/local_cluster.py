"""A local cluster of real gossipnode agents on 127.0.0.1, whose links can be cut.

Every directed link i -> j runs through a TCP proxy that this script controls: agent i
dials agent j's advertised address, which its `address_map` sends to the proxy, which
forwards to j. Cutting i -> j makes that proxy drop its connections and refuse new ones;
cutting both directions partitions the pair. Everything this script starts (agents by
PID, proxies in a thread) it stops again.

As a library (tests, the demo, benchmarks):
    with LocalCluster(Path("/tmp/c"), nodes=3) as cluster:
        cluster.start_all(); cluster.wait_members()
        cluster.client(0).request("put", dataset="groups", key="g", value={})
        cluster.partition([0], [1, 2]); ...; cluster.heal(); cluster.wait_converged()

As a command: python scripts/local_cluster.py --nodes 3 [--root DIR] [COMMAND ...]
runs each COMMAND (or reads them from stdin, one per line): status, members NODE,
put NODE DATASET KEY JSON, get NODE DATASET KEY, cut A B, cut-oneway A B, restore A B,
isolate NODE, heal, stop NODE, kill NODE, start NODE, wait SECONDS, converge, quit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gossipnode.client import AgentUnreachable, ClientError, ControlClient  # noqa: E402

# An agent must answer on its control socket within this after starting.
START_TIMEOUT_S = 30.0
# SIGTERM, then SIGKILL after this: a graceful stop takes about a second.
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class _Proxies:
    """All link proxies, served by one asyncio loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.cut: set[tuple[int, int]] = set()
        self.connections: dict[tuple[int, int], set[asyncio.StreamWriter]] = {}
        self.servers: list[asyncio.AbstractServer] = []
        # TCP payload bytes carried per link (both directions of its connections), for
        # benchmarks that count what crosses the wire.
        self.bytes_carried: dict[tuple[int, int], int] = {}

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def add(self, link: tuple[int, int], listen_port: int, target_port: int) -> None:
        async def start() -> None:
            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                if link in self.cut:
                    writer.close()
                    return
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
                except OSError:
                    writer.close()
                    return
                pair = {writer, up_writer}
                self.connections.setdefault(link, set()).update(pair)
                count = self._counter(link)
                await asyncio.gather(_pipe(reader, up_writer, count),
                                     _pipe(up_reader, writer, count))
                self.connections.get(link, set()).difference_update(pair)

            self.servers.append(await asyncio.start_server(handle, "127.0.0.1", listen_port))

        self.call(start())

    def _counter(self, link: tuple[int, int]) -> Any:
        def count(size: int) -> None:
            self.bytes_carried[link] = self.bytes_carried.get(link, 0) + size

        return count

    def set_cut(self, link: tuple[int, int], cut: bool) -> None:
        async def apply() -> None:
            if cut:
                self.cut.add(link)
                for writer in self.connections.pop(link, set()):
                    writer.close()
            else:
                self.cut.discard(link)

        self.call(apply())

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            for writers in self.connections.values():
                for writer in writers:
                    writer.close()

        with contextlib.suppress(Exception):
            self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                count: Any = None) -> None:
    try:
        while data := await reader.read(65536):
            if count is not None:
                count(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class LocalCluster:
    def __init__(self, root: Path, nodes: int = 3, *, wep: tuple[int, ...] | None = None,
                 no_private_keys: tuple[int, ...] = (), extra_toml: str = "",
                 log_format: str = "text", names: tuple[str, ...] | None = None,
                 admin_pubkey: Path | None = None, proxied: bool = True) -> None:
        """`admin_pubkey`: pin this administrator public key on every node (then nothing
        replicates until an administrator admits the members). `proxied=False`: the agents
        dial each other directly, with no proxy of this process in between (no `cut`, no
        `bytes_between`), for benchmarks that measure the agents alone."""
        self.root = Path(root)
        self.count = nodes
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.names = list(names or (f"node{i}" for i in range(nodes)))
        assert len(self.names) == nodes
        ports = free_ports(nodes + (nodes * (nodes - 1) if proxied else 0))
        self.ports = ports[:nodes]
        proxy_ports = iter(ports[nodes:])
        self.proxy_ports = {(i, j): next(proxy_ports) for i in range(nodes)
                            for j in range(nodes) if i != j and proxied}
        self.proxies = _Proxies() if proxied else None
        for (i, j), port in self.proxy_ports.items():
            self._links().add((i, j), port, self.ports[j])
        self.root.mkdir(parents=True, exist_ok=True)
        secret = self.root / "cluster.secret"
        if not secret.exists():
            self.gossipnode("keygen", "--out", str(secret))
        for i in range(nodes):
            directory = self.data_dir(i)
            if (directory / "node.toml").exists():
                continue
            args = ["init", "--data-dir", str(directory), "--name", self.names[i],
                    "--listen", f"127.0.0.1:{self.ports[i]}", "--secret-file", str(secret)]
            for seed in range(min(nodes, 2)):
                if seed != i:
                    args += ["--join", f"127.0.0.1:{self.ports[seed]}"]
            if wep is None or i in wep:
                args.append("--wep")
            if i in no_private_keys:
                args.append("--no-private-keys")
            if admin_pubkey is not None:
                args += ["--admin-pubkey", str(admin_pubkey)]
            else:
                args.append("--open")
            self.gossipnode(*args)
            config = directory / "node.toml"
            text = config.read_text().replace('log_format = "text"',
                                              f'log_format = "{log_format}"')
            mapping = "".join(
                f'"127.0.0.1:{self.ports[b]}" = "127.0.0.1:{port}"\n'
                for (a, b), port in self.proxy_ports.items() if a == i
            )
            if mapping:
                text = text.replace("\n[tags]", f"\n[address_map]\n{mapping}\n[tags]")
            config.write_text(text + extra_toml)

    # --- processes -----------------------------------------------------------------------------

    @staticmethod
    def gossipnode(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "gossipnode", *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"gossipnode {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def data_dir(self, i: int) -> Path:
        return self.root / self.names[i]

    def socket_path(self, i: int) -> Path:
        return self.data_dir(i) / "control.sock"

    def start(self, i: int) -> None:
        assert i not in self.processes, f"{self.names[i]} is already running"
        log = (self.root / f"{self.names[i]}.log").open("ab")
        env = {**os.environ, "RUST_BACKTRACE": "0", "PYTHONPATH": str(ROOT)}
        self.processes[i] = subprocess.Popen(
            [sys.executable, "-m", "gossipnode", "agent", "--config",
             str(self.data_dir(i) / "node.toml")],
            cwd=ROOT, stdout=log, stderr=log, env=env,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.processes[i].poll() is not None:
                raise RuntimeError(f"{self.names[i]} exited; see {self.root}/{self.names[i]}.log")
            try:
                self.request(i, "ping")
                return
            except (AgentUnreachable, ClientError, OSError):
                time.sleep(POLL_S)
        raise RuntimeError(f"{self.names[i]} did not answer within {START_TIMEOUT_S} s")

    def start_all(self) -> None:
        for i in range(self.count):
            self.start(i)

    def stop(self, i: int) -> int:
        """SIGTERM (a graceful leave), SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
        process = self.processes.pop(i)
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=STOP_TIMEOUT_S)

    def kill(self, i: int) -> None:
        process = self.processes.pop(i)
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)

    def running(self) -> list[int]:
        return sorted(self.processes)

    def client(self, i: int) -> ControlClient:
        return ControlClient(self.socket_path(i))

    def request(self, i: int, verb: str, **arguments: Any) -> Any:
        with self.client(i) as client:
            return client.request(verb, **arguments)

    # --- links ---------------------------------------------------------------------------------

    def _links(self) -> _Proxies:
        if self.proxies is None:
            raise RuntimeError("this cluster's agents dial each other directly (proxied=False): "
                               "its links cannot be cut or counted")
        return self.proxies

    def cut(self, a: int, b: int, *, oneway: bool = False) -> None:
        self._links().set_cut((a, b), True)
        if not oneway:
            self._links().set_cut((b, a), True)

    def restore(self, a: int, b: int) -> None:
        self._links().set_cut((a, b), False)
        self._links().set_cut((b, a), False)

    def partition(self, left: list[int], right: list[int]) -> None:
        for a in left:
            for b in right:
                self.cut(a, b)

    def isolate(self, i: int) -> None:
        self.partition([i], [j for j in range(self.count) if j != i])

    def heal(self) -> None:
        for link in list(self._links().cut):
            self._links().set_cut(link, False)

    # --- waiting -------------------------------------------------------------------------------

    def wait_members(self, timeout_s: float = 30.0) -> None:
        """Until every running agent sees every running agent alive."""
        def done() -> bool:
            names = {self.names[i] for i in self.running()}
            for i in self.running():
                alive = {m["name"] for m in self.request(i, "members") if m["state"] == "alive"}
                if not names <= alive:
                    return False
            return True

        self._wait(done, timeout_s, "members to see each other")

    def bytes_between(self, a: int, b: int) -> int:
        """TCP payload bytes carried so far between a and b, both links, both directions."""
        carried = self._links().bytes_carried
        return carried.get((a, b), 0) + carried.get((b, a), 0)

    def digests(self, i: int) -> dict[str, tuple[int, str]]:
        status = self.request(i, "status")
        return {d["name"]: (d["records"], d["digest"]) for d in status["datasets"]
                if d["scope"] == "all"}

    def wait_converged(self, timeout_s: float = 60.0) -> float:
        """Until every running agent has the same digests for every `all`-scope dataset;
        returns the seconds it took."""
        started = time.monotonic()

        def done() -> bool:
            digests = [self.digests(i) for i in self.running()]
            return all(d == digests[0] for d in digests)

        self._wait(done, timeout_s, "convergence")
        return time.monotonic() - started

    @staticmethod
    def _wait(condition: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(AgentUnreachable, ClientError):
                if condition():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")

    # --- cleanup -------------------------------------------------------------------------------

    def close(self) -> None:
        for i in list(self.processes):
            with contextlib.suppress(Exception):
                self.stop(i)
        if self.proxies is not None:
            self.proxies.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _status_table(cluster: LocalCluster) -> str:
    lines = [f"{'node':8} {'pid':>7}  {'members alive':14} {'records':>8}  digest (groups)"]
    for i in range(cluster.count):
        if i not in cluster.processes:
            lines.append(f"{cluster.names[i]:8} {'-':>7}  stopped")
            continue
        members = cluster.request(i, "members")
        alive = sum(1 for m in members if m["state"] == "alive")
        status = cluster.request(i, "status")
        records = sum(d["records"] for d in status["datasets"])
        groups = next(d["digest"] for d in status["datasets"] if d["name"] == "groups")
        lines.append(f"{cluster.names[i]:8} {cluster.processes[i].pid:>7}  "
                     f"{alive}/{len(members):<12} {records:>8}  {groups[:16]}")
    cuts = sorted(cluster.proxies.cut)
    lines.append("links cut: " + (", ".join(f"{a}->{b}" for a, b in cuts) or "none"))
    return "\n".join(lines)


def run_command(cluster: LocalCluster, words: list[str]) -> bool:
    """Carry out one command; False for quit."""
    verb, args = words[0], words[1:]
    numbers = [int(a) for a in args if a.isdigit()]
    if verb == "quit":
        return False
    if verb == "status":
        print(_status_table(cluster))
    elif verb == "members":
        for member in cluster.request(numbers[0], "members"):
            print(f"  {member['name']:8} {member['address']:22} {member['state']}")
    elif verb == "put":
        node, dataset, key, value = int(args[0]), args[1], args[2], json.loads(args[3])
        cluster.request(node, "put", dataset=dataset, key=key, value=value)
        print(f"put {dataset}/{key} on {cluster.names[node]}")
    elif verb == "get":
        print(json.dumps(cluster.request(int(args[0]), "get", dataset=args[1], key=args[2])))
    elif verb in ("cut", "cut-oneway"):
        cluster.cut(numbers[0], numbers[1], oneway=verb == "cut-oneway")
    elif verb == "restore":
        cluster.restore(numbers[0], numbers[1])
    elif verb == "isolate":
        cluster.isolate(numbers[0])
    elif verb == "heal":
        cluster.heal()
    elif verb == "stop":
        print(f"{cluster.names[numbers[0]]} exited with {cluster.stop(numbers[0])}")
    elif verb == "kill":
        cluster.kill(numbers[0])
    elif verb == "start":
        cluster.start(numbers[0])
    elif verb == "wait":
        time.sleep(float(args[0]))
    elif verb == "converge":
        print(f"converged in {cluster.wait_converged():.2f} s")
    else:
        print(f"unknown command {verb!r}", file=sys.stderr)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="commands: " + __doc__.split("COMMAND (or")[0][-1:])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--root", type=Path, help="data directories (default: a temporary one)")
    parser.add_argument("commands", nargs="*", help="commands to run, e.g. 'cut 0 1'")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cluster = stack.enter_context(LocalCluster(root, args.nodes))
        cluster.start_all()
        cluster.wait_members()
        print(_status_table(cluster))
        commands = args.commands or (line.strip() for line in sys.stdin)
        for command in commands:
            if not command or command.startswith("#"):
                continue
            print(f"> {command}", flush=True)
            try:
                if not run_command(cluster, shlex.split(command)):
                    break
            except (ClientError, AgentUnreachable, TimeoutError, IndexError, ValueError) as error:
                print(f"error: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
