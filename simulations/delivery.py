"""The wire between simulated cores: what a core's events become on the virtual network,
and what arrives. Mixed into `Cluster` (cluster.py, rule 1 and 6).

A `Send` is encoded by the agent's peer codec (payload.py caches repeats), judged by the
containment checker at send time, and queued on the link to its addressee; on arrival its
bytes are decoded again, the verdict is delivered to the checkers, and the core receives
the decoded message tagged with the sender's node id, as the agent's authenticated
channel tags it. A `Disconnect` resets the link with that peer, both directions. Bytes
that do not decode are a violation of kind "wire" (the sender's encoder let them out) and
cost the connection, as in the agent's transport.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gossipnode.core.errors import LocalProtocolError, RemoteProtocolError
from gossipnode.core.events import Address, Disconnect, Send
from gossipnode.core.records import Record

from .node import SimNode
from .payload import SimCodec, records_in

if TYPE_CHECKING:
    from .checkers import Checkers
    from .clock import EventQueue
    from .network import Network

__all__ = ["Delivery"]


class Delivery:
    """Mixed into `Cluster`, which provides the attributes and methods declared here."""

    codec: SimCodec
    network: Network
    queue: EventQueue
    checkers: Checkers
    nodes: list[SimNode]
    messages: int
    bytes: int
    sent_by_type: dict[str, int]
    _by_address: dict[Address, SimNode]
    _count: Callable[[str], None]
    _input: Callable[..., Any]

    def _carry_out(self, node: SimNode, event: object) -> None:
        if isinstance(event, Send):
            try:
                data = self.codec.encode(event.message)
            except LocalProtocolError as error:
                self.checkers.violate("wire", f"{node.name} sent a message the codec "
                                      f"refuses: {error}")
                return
            records: list[Record] = []
            records_in(event.message, records)
            self.messages += 1
            self.bytes += len(data)
            name = type(event.message).__name__
            self.sent_by_type[name] = self.sent_by_type.get(name, 0) + 1
            target = self._by_address.get(event.to)
            verdict = self.checkers.on_send(node, target, records)
            if target is None:
                self._count("unroutable")
                return
            self.network.send(node.index, target.index, (data, verdict), len(data))
        elif isinstance(event, Disconnect):
            self._count("Disconnect")
            target = self._by_address.get(event.to)
            if target is not None:
                self.network.cut(node.index, target.index)
        else:
            self._count(type(event).__name__)

    def _accepts_connections(self, index: int) -> bool:
        return self.nodes[index].core is not None

    def _connection_lost(self, index: int, peer: int, at_s: float) -> None:
        self.queue.push(at_s, "lost", (index, self.nodes[index].epoch, self.nodes[peer].address))

    def _deliver(self, payload: Any) -> None:
        """A message reached the end of its link: decode its bytes, as the agent's
        transport does, and hand the message to the receiving core."""
        arrived = self.network.arrived(payload)
        if arrived is None:
            self._count("dropped: connection reset")
            return
        source_index, target_index, (data, verdict) = arrived
        target, source = self.nodes[target_index], self.nodes[source_index]
        try:
            message = self.codec.decode(data)
        except RemoteProtocolError as error:
            # The agent's transport drops a connection whose bytes do not decode; the
            # sender's encoder let them out, which is a bug on our side of the wire.
            self.checkers.violate("wire", f"{target.name} cannot decode a message "
                                  f"from {source.name}: {error}")
            self.network.cut(source_index, target_index)
            return
        self.checkers.on_deliver(source.name, target, verdict)
        sender = source.node_id
        self._input(target, lambda core, now: core.receive(sender, message, now))
