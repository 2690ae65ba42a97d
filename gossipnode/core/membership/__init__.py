"""Cluster membership: SWIM failure detection with the Lifeguard refinements, sans-IO.

The node (and the simulator) holds one `Membership` per process and drives it with
`join`, `leave`, `set_tags`, `receive`, `handle_timer`; it carries out `events()` and arms
one timer at `next_deadline()`. See swim.py for the rules.
"""

from .members import (
    ALIVE,
    DEAD,
    LEFT,
    SUSPECT,
    Member,
    escape_text,
    tags_from_config,
    tags_private_keys,
    tags_wep,
)
from .messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    Left,
    Nack,
    Ping,
    PingRequest,
    PushPull,
    Suspect,
    Updates,
)
from .signing import alive_signed_bytes, left_signed_bytes
from .suspicion import suspicion_bounds_s
from .swim import Membership, push_pull_interval_s

__all__ = [
    "ALIVE",
    "DEAD",
    "LEFT",
    "SUSPECT",
    "Ack",
    "Alive",
    "Dead",
    "Gossip",
    "Left",
    "Member",
    "Membership",
    "Nack",
    "Ping",
    "PingRequest",
    "PushPull",
    "Suspect",
    "Updates",
    "alive_signed_bytes",
    "escape_text",
    "left_signed_bytes",
    "push_pull_interval_s",
    "suspicion_bounds_s",
    "tags_from_config",
    "tags_private_keys",
    "tags_wep",
]
