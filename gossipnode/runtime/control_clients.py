"""Who is on the control socket: peer credentials, and the per-user bound on clients
(rule 5 of control.py). Pure bookkeeping plus one getsockopt; no I/O of its own."""

from __future__ import annotations

import itertools
import logging
import pwd
import socket
import struct
from dataclasses import dataclass, field

import trio

__all__ = ["CLIENTS_MAX", "CLIENTS_PER_USER_MAX", "Client", "ControlClients", "peer_user"]

logger = logging.getLogger("gossipnode.control")

# Control clients connected at once, in all and per local user. A handful of scripts,
# monitors and operators per user fit; the total bounds the agent's file descriptors.
CLIENTS_MAX = 64
CLIENTS_PER_USER_MAX = 16
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_user(sock: socket.socket) -> tuple[int | None, str]:
    """The local user at the other end of a Unix socket: (uid, "name (uid N, pid P)")."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid, uid, _gid = _UCRED.unpack(raw)
    except (OSError, AttributeError, struct.error):
        return None, "unknown user"
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return uid, f"{name} (uid {uid}, pid {pid})"


@dataclass(eq=False)
class Client:
    uid: int | None
    user: str
    number: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    # Between requests (or following a monitor): may be closed for a newcomer.
    idle: bool = True
    last_active: float = field(default_factory=trio.current_time)


class ControlClients:
    def __init__(self, total_max: int = CLIENTS_MAX,
                 per_user_max: int = CLIENTS_PER_USER_MAX) -> None:
        self.total_max = total_max
        self.per_user_max = per_user_max
        self._clients: list[Client] = []
        self._numbers = itertools.count(1)
        self.evicted = 0

    def admit(self, peer: tuple[int | None, str]) -> Client | None:
        """A slot for a new client (`peer_user`'s answer), closing an idle one if a bound
        is reached; None when every candidate is busy."""
        client = Client(peer[0], peer[1], next(self._numbers))
        mine = [c for c in self._clients if c.uid == client.uid]
        if len(mine) >= self.per_user_max and not self._evict(mine, client):
            return None
        if len(self._clients) >= self.total_max:
            by_user: dict[int | None, list[Client]] = {}
            for other in self._clients:
                by_user.setdefault(other.uid, []).append(other)
            heaviest = sorted(by_user.values(), key=len, reverse=True)
            if not any(self._evict(group, client) for group in [mine, *heaviest] if group):
                return None
        self._clients.append(client)
        return client

    def remove(self, client: Client) -> None:
        if client in self._clients:
            self._clients.remove(client)

    def _evict(self, candidates: list[Client], newcomer: Client) -> bool:
        idle = [c for c in candidates if c.idle and not c.scope.cancel_called]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.last_active)
        oldest.scope.cancel()
        self._clients.remove(oldest)
        self.evicted += 1
        logger.info("closed the oldest idle control client of %s to let %s in",
                    oldest.user, newcomer.user)
        return True

    def __len__(self) -> int:
        return len(self._clients)
