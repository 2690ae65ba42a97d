"""The operations verbs of the control socket: repair, reseed, and who owns a mailbox.

- `repair` {"peer": NAME or ID, "dataset"}: one anti-entropy round now (with that peer, or
  a random live one; every dataset, or one), waiting up to `REPAIR_WAIT_S` for the
  round's sessions to end (their `SyncCompleted` events); exit 1 when no peer is alive.
- `reseed` {"force": BOOL}: discard this node's replicated data and pull it afresh;
  refused (exit 1) while no live peer holds a copy, unless forced.
- `owners` {"mailbox"}: the members that hold a web messenger mailbox ("replication":
  false when mailboxes are not replicated).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ..core.errors import LocalProtocolError
from ..core.events import SyncCompleted
from ..identity import format_node_id, short_id
from .control_errors import ControlError
from .control_values import dataset_argument, member_id, text_argument

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["OPERATION_VERBS", "REPAIR_WAIT_S"]

# `repair` waits at most this long for the round's sessions to finish.
REPAIR_WAIT_S = 30.0


async def _repair(agent: Agent, request: dict[str, Any]) -> Any:
    peer_name = text_argument(request, "peer", required=False)
    dataset = dataset_argument(request) if request.get("dataset") is not None else None
    peer = member_id(agent, peer_name) if peer_name else None
    # Sessions report their end with SyncCompleted; collect them from the start, since
    # which sessions are ours is known only once the round started.
    ended: list[SyncCompleted] = []
    changed = trio.Event()

    def on_sync(event: SyncCompleted) -> None:
        ended.append(event)
        changed.set()

    agent.sync_listeners.append(on_sync)
    try:
        try:
            started = agent.input(lambda now: agent.core.repair(now, peer=peer, dataset=dataset))
        except LocalProtocolError as error:
            raise ControlError(str(error)) from None
        if started is None:
            raise ControlError("no live peer to repair with", exit_code=1)
        peer_id, session_ids = started
        sessions = len(session_ids)

        def ours() -> list[SyncCompleted]:
            return [e for e in ended if e.peer == peer_id and e.initiated
                    and e.session in session_ids]

        with trio.move_on_after(REPAIR_WAIT_S):
            while len(ours()) < sessions:
                changed = trio.Event()
                await changed.wait()
    finally:
        agent.sync_listeners.remove(on_sync)
    done = ours()
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "peer": short_id(peer_id),
        "peer_name": names.get(peer_id, "?"),
        "sessions": sessions,
        # Finished: every session ended, and none failed (an abandoned session repaired
        # only part of its dataset, so the repair is not done).
        "finished": len(done) >= sessions and not any(e.failure for e in done),
        "failures": sorted({f"{e.dataset}: {e.failure}" for e in done if e.failure}),
        "records_received": sum(e.received for e in done),
        "records_sent": sum(e.sent for e in done),
    }


async def _owners(agent: Agent, request: dict[str, Any]) -> Any:
    mailbox = text_argument(request, "mailbox")
    owners = agent.core.owners(mailbox)
    names = {m.node_id: m.name for m in agent.core.members()}
    return {
        "mailbox": mailbox,
        "replication": owners is not None,
        "owners": [
            {"name": names.get(node_id, "?"), "id": format_node_id(node_id),
             "short_id": short_id(node_id)}
            for node_id in owners or ()
        ],
    }


async def _reseed(agent: Agent, request: dict[str, Any]) -> Any:
    force = request.get("force", False)
    if not isinstance(force, bool):
        raise ControlError("argument 'force' must be true or false")
    holders = [m.name for m in agent.core.members()
               if m.node_id != agent.core.node_id and m.state == "alive"]
    if not holders and not force:
        raise ControlError(
            "no live peer holds the data to pull afresh: reseeding now would discard the only "
            "copy; wait for a peer, or give --force", exit_code=1,
        )
    removed = agent.input(agent.core.reseed)
    return {"removed_records": removed, "generation": agent.core.generation}


OPERATION_VERBS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[Any]]] = {
    "repair": _repair,
    "reseed": _reseed,
    "owners": _owners,
}
