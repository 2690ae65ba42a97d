"""The peer messages of the core, registered with stable type ids in `PEER_MESSAGES`.

Type ids are part of the protocol: never renumber one; retire it and take a new one.
Ranges: 1-19 membership, 20-29 replication, 30-39 reconciliation.
"""

from __future__ import annotations

from ..core.membership import Ack, Gossip, Nack, Ping, PingRequest, PushPull
from ..core.reconcile_messages import ReconcileAbort, ReconcileOpen, ReconcileTurn
from ..core.replication import Push, PushAck
from .messages import PEER_MESSAGES

__all__ = ["PEER_MESSAGES"]

_TYPE_IDS: dict[int, type] = {
    1: Ping,
    2: Ack,
    3: PingRequest,
    4: Nack,
    5: Gossip,
    6: PushPull,
    20: Push,
    21: PushAck,
    30: ReconcileOpen,
    31: ReconcileTurn,
    32: ReconcileAbort,
}

for _type_id, _cls in _TYPE_IDS.items():
    PEER_MESSAGES.register(_type_id, _cls)
