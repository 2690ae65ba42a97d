"""Node configuration: every interval and every limit, with its unit and its reason.

`NodeConfig` is frozen and built once, by `config_file.load_config` from a TOML file (the
agent, and `gossipnode validate`, which checks a file exactly as the agent will load it) or
directly in tests and in the simulator. Sections of the TOML file map one to one onto the
nested dataclasses below.

This module imports only the standard library, so the sans-IO core may import it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ConfigError",
    "LimitsConfig",
    "MembershipConfig",
    "NodeConfig",
    "ReconcileConfig",
    "ReplicationConfig",
    "StorageConfig",
    "TagsConfig",
    "WireConfig",
    "format_address",
    "parse_address",
    "parse_admin_key",
]

KIB = 1024
MIB = 1024 * KIB


class ConfigError(Exception):
    """A configuration that cannot be used. `str()` is one line naming the file and the key."""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Limits on what a record may be."""

    # A record's encoded value. PGP certificates with many signatures reach a few hundred
    # KiB; 1 MiB leaves room and keeps one record well under one frame (wire.frame_bytes_max).
    record_bytes_max: int = 1 * MIB
    # A record key, in UTF-8 bytes. Fingerprints, e-mail addresses and mailbox/message ids fit
    # easily; a cap keeps digests and key lists of bounded size.
    key_bytes_max: int = 1024


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """Eager push, anti-entropy and tombstones."""

    # How often each dataset is reconciled with one eligible peer. Pushes carry fresh writes
    # at once; this only repairs what a push missed, so seconds, not milliseconds.
    anti_entropy_interval_s: float = 10.0
    # Tombstones older than this are collected. A member away for longer must not merge
    # (it could bring deleted records back), so this is also the quarantine horizon.
    tombstone_grace_s: float = 7 * 24 * 3600.0
    # A remote version stamp may run at most this far ahead of our wall clock; a stamp further
    # ahead is refused, so one node with a broken clock cannot pin every record's version.
    clock_drift_max_s: float = 60.0
    # Peers that receive each fresh write directly; the rest learn it from anti-entropy.
    push_fanout: int = 3
    # Records waiting for one peer before that peer is dropped and left to anti-entropy.
    peer_queue_records_max: int = 10_000


# When a client's write is acknowledged (storage.durability): "fsync", once a disk sync
# covers it; "periodic", once it reached the operating system (see StorageConfig).
DURABILITY_MODES = ("fsync", "periodic")
# Who runs the store's write transactions (storage.writer): the event loop, a writer
# thread, or a writer process of the agent's own; "auto" chooses (see StorageConfig).
WRITERS = ("auto", "loop", "thread", "process")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """When the store's writes reach the disk, and when a write counts as done."""

    # "fsync" (the default): a write is acknowledged, and its pushes and a peer's PushAck go
    # out, only once a disk sync covers it: it survives kill -9 and power loss. Concurrent
    # writes share one sync (group commit), but each writer waits for one (~10 ms on a
    # common disk). "periodic": acknowledged once committed to the operating system, which
    # survives kill -9 of the agent but not a power loss or kernel crash within
    # fsync_interval_ms; the disk sync runs every fsync_interval_ms. As Cassandra's
    # default periodic commit log: the replicas, not one disk, then carry a fresh write.
    durability: str = "fsync"
    # Periodic durability: the longest time a committed write waits for its disk sync, and
    # so the writes a power loss can take. 100 ms costs ten syncs a second.
    fsync_interval_ms: int = 100
    # "auto" (the default): "thread" under durability "fsync", "loop" under "periodic"
    # (`writer_in_use`). "thread": a writer thread of the agent's, with a connection of its
    # own, runs the transactions and the syncs beside the loop, which hands the batches
    # over when it would sync them and reads on, so no transaction holds the loop (a
    # probe's timers wait on it); about the loop's CPU per write (measured in README.md).
    # "loop": the agent's event loop runs each batch's transaction, and a thread the disk
    # sync; it acknowledges a commit at once, as "periodic" needs. "process": a writer
    # process does what the thread does, at more CPU per write. "thread" and "process"
    # need durability "fsync": a batch handed over is not committed until its sync.
    writer: str = "auto"

    @property
    def writer_in_use(self) -> str:
        """The writer that runs the transactions: `writer`, or the one "auto" chooses."""
        if self.writer != "auto":
            return self.writer
        return "loop" if self.durability == "periodic" else "thread"


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    """The Merkle reconciliation protocol (core/reconcile)."""

    # One reconciliation message at most. A LAN's bandwidth-delay product (1 Gbit/s x 1 ms
    # is 125 KB) times a few, so one message fills the pipe without hogging a frame.
    message_bytes_max: int = 512 * KIB
    # Round trips one session may take before it is abandoned as stalled or hostile.
    rounds_max: int = 64
    # A session with no answer for this long is abandoned; nothing it applied is undone,
    # since every applied record is a valid last-writer-wins merge on its own.
    session_timeout_s: float = 30.0
    # A mismatched range splits into this many ranges of equal item counts. 16 reaches ranges
    # of a few records in 5 levels at a million records while a split costs ~16 x 14 bytes.
    branching: int = 16
    # A side holding at most this many items in a mismatched range lists their 4-byte ids
    # instead of splitting it: below ~16 items a list is cheaper than 16 range digests.
    items_max: int = 16
    # A range holding one item more than the peer's is scanned, up to this many items, for the
    # one leaf whose digest is the difference of the sums: a C-level scan of ~10 ms per million
    # items, far cheaper than the 16-way descent (~1 KB and 4 round trips) it replaces.
    pure_scan_items_max: int = 1 << 20
    # A scope of at least this many records whose first split shows differences spread over
    # most ranges is reconciled by coded cells (an invertible Bloom lookup table, ~20 bytes
    # per difference) instead of range descent (~100 bytes per difference at a million).
    # Below it, descent and id lists are as cheap.
    coded_items_min: int = 4096


@dataclass(frozen=True, slots=True)
class MembershipConfig:
    """SWIM failure detection with the Lifeguard refinements (core/membership)."""

    # LAN defaults as in memberlist's DefaultLANConfig.
    probe_interval_s: float = 1.0
    # An ack should come back within a LAN round trip plus scheduling; 0.5 s is generous.
    probe_timeout_s: float = 0.5
    # Members asked to probe on our behalf when a direct probe fails.
    indirect_probes: int = 3
    # Suspicion timeout = suspicion_mult * log10(max(n, 1) + 1) * probe_interval_s.
    suspicion_mult: int = 4
    # The longest suspicion timeout, as a multiple of the shortest (Lifeguard).
    suspicion_max_timeout_mult: int = 6
    # Each update is retransmitted retransmit_mult * ceil(log10(n + 1)) times.
    retransmit_mult: int = 4
    # Members that each gossip round sends piggybacked updates to.
    gossip_fanout: int = 3
    gossip_interval_s: float = 0.2
    # Full-state push-pull with one random member, so that long partitions heal.
    push_pull_interval_s: float = 30.0
    # Above this many members the push-pull interval grows by a factor of
    # ceil(log2(n) - log2(threshold)) + 1 (memberlist's pushPullScale): a full state grows
    # with n, so this keeps push-pull bytes per member per second from growing linearly.
    push_pull_scale_threshold: int = 32
    # While a member knows nobody (just started, or everyone it knew is gone), it retries
    # its seeds, first after half a second and then at twice the wait each time up to
    # this, instead of once per push-pull interval: members started together find a seed
    # that came up a moment later at once, and a restarted member is back within seconds.
    # A few seeds x one small message: cheap.
    join_retry_interval_s: float = 2.0
    # Every this often, with probability dead / alive, a member swaps full state with one
    # member it believes dead (serf's reconnect, 30 s there): after a partition heals the two
    # sides find each other in about this long, not a push-pull interval (minutes at 1000).
    reconnect_interval_s: float = 15.0
    # Dead or left members are forgotten after this, and may then rejoin as new.
    reap_after_s: float = 24 * 3600.0
    # Local health awareness: our probe interval is multiplied by (1 + score), score <= this.
    # The score rises when our probes fail without nacks and when we must refute. (A probe
    # whose own timers ran late raises no suspicion at all: membership/probing.py rule 6.)
    awareness_max: int = 8
    # One piggybacked batch of updates at most (estimated encoded bytes). About 15 signed
    # alive statements (~250 B each): small enough that a probe never queues behind a large
    # write, large enough that a join of hundreds spreads in a few rounds.
    gossip_message_bytes_max: int = 4096
    # Members one node tracks at most (newcomers beyond it are ignored and counted); a
    # push-pull of more than 4x this many statements is refused. Bounds memory and the
    # push-pull message: 4096 x ~300 B is ~1.2 MiB, under wire.frame_bytes_max. At most
    # MEMBERS_MAX_LIMIT.
    members_max: int = 4096
    # A member's tags, keys plus values in UTF-8 bytes. A handful of short flags and a
    # version string fit many times; the cap keeps every signed alive statement small.
    tags_bytes_max: int = 512
    # Members heard of only second-hand (or not admitted) wait in a bounded set until they
    # speak to us themselves: forged or self-signed identities cost at most this many
    # entries, and a flood evicts the flooder's own entries first. A join learns up to this
    # many members at once from its seed; larger clusters fill in over a few rounds.
    pending_members_max: int = 256
    # A pending member that has not spoken to us within this is forgotten (memory returns
    # to its baseline after a flood). Several probe intervals: time for a few pings.
    pending_expiry_s: float = 30.0
    # Pings that confirm pending members: a burst (a joiner confirms a whole cluster at
    # once) refilled at a rate, so forged addresses cannot make us dial without bound.
    confirm_pings_burst: int = 256
    confirm_pings_per_s: float = 32.0
    # Indirect probes we run for one requester at once. An honest member asks each relay
    # about one probe at a time; a few more absorb retries.
    relays_per_requester_max: int = 4
    # Indirect probes we run for all requesters at once (memory and dials stay bounded).
    relays_max: int = 256
    # A member we declared dead is still gossiped to this long (memberlist's
    # GossipToTheDeadTime), so that one wrongly declared dead hears it and refutes in
    # seconds rather than at the next push-pull. (Beyond it, one dead member per probe
    # interval still gets its death notice: membership/dissemination.py rule 5.)
    dead_gossip_s: float = 30.0


@dataclass(frozen=True, slots=True)
class WireConfig:
    """Framing, handshake and listener limits (wire/)."""

    # One frame at most; a larger declared length drops the connection before allocation.
    frame_bytes_max: int = 4 * MIB
    # A peer must complete the handshake within this, or it is dropped.
    handshake_timeout_s: float = 5.0
    # Connections that have not yet authenticated, over all remote addresses.
    unauthenticated_connections_max: int = 64
    # Authenticated connections from one node id at once; a further one closes the idlest.
    connections_per_peer_max: int = 2
    # Authenticated inbound connections over all peers at once; a further one closes the
    # idlest, a live member's only if all are (runtime/listener.py rule 3). The listener
    # also keeps it under half the process's descriptor limit, so that outbound links, the
    # store and the control socket always find descriptors.
    connections_max: int = 512
    # Nesting depth of a decoded CBOR item; our messages need fewer than 8 levels.
    cbor_depth_max: int = 16

    @property
    def push_bytes_max(self) -> int:
        """Record bytes one push (or handoff) message may carry: half a frame, so the
        message's own encoding and the channel's overhead never take it over a frame."""
        return self.frame_bytes_max // 2


@dataclass(frozen=True, slots=True)
class TagsConfig:
    """What this member advertises to the cluster."""

    # Runs the Web Email Protection service, so may hold WEP mailboxes.
    wep: bool = False
    # Opts in to holding internal users' private keys (the cluster policy must permit too).
    private_keys: bool = True


def _default_listen() -> tuple[str, int]:
    return ("127.0.0.1", 7946)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node needs to run. Paths are absolute once loaded."""

    name: str = "gossipnode"
    data_dir: Path = Path(".")
    listen: tuple[str, int] = field(default_factory=_default_listen)
    join: tuple[tuple[str, int], ...] = ()
    # Cluster secrets, newest first: connect with the first, accept any (for rotation).
    secret_files: tuple[Path, ...] = ()
    control_socket: Path | None = None
    log_format: str = "text"
    # Reloadable with SIGHUP, like the cluster secrets and the tags.
    log_level: str = "info"
    # Optional HTTP listener serving /metrics for Prometheus (off unless set; keep it on
    # loopback or a management network: it needs no credentials).
    metrics_listen: tuple[str, int] | None = None
    # Dial another address than the one a member advertises: (advertised, dialled) pairs.
    # For members behind NAT or a port forward, and for test clusters whose links run
    # through proxies that can cut them.
    address_map: tuple[tuple[tuple[str, int], tuple[str, int]], ...] = ()
    # Pinned administrator public keys (Ed25519, 32 bytes each): administrative records
    # (cluster policy, grants, admissions) count only when signed by one of them. Several
    # keys let an operator rotate: pin the new one, re-sign, then drop the old one. With
    # none pinned the cluster runs open: every holder of the cluster secret is trusted.
    admin_keys: tuple[bytes, ...] = ()
    tags: TagsConfig = field(default_factory=TagsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    wire: WireConfig = field(default_factory=WireConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    # The HKP listener (OpenPGP clients: gpg --keyserver hkp://HOST:PORT); None: off.
    hkp_listen: tuple[str, int] | None = None
    # Whether HKP accepts /pks/add uploads (merged like `keys import`, public keys only).
    hkp_accept_uploads: bool = False

    @property
    def identity_file(self) -> Path:
        return self.data_dir / "identity.key"

    @property
    def store_file(self) -> Path:
        return self.data_dir / "store.sqlite3"

    @property
    def control_socket_path(self) -> Path:
        return self.control_socket or self.data_dir / "control.sock"


# Tags the agent sets itself (its software version, its replica generation): an operator
# cannot set them, in node.toml or with `tags set`.
RESERVED_TAGS = frozenset({"version", "generation"})
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_address(text: str) -> tuple[str, int]:
    """Parse "HOST:PORT" (IPv6 as "[::1]:PORT"). Raises ValueError with a reason."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string HOST:PORT, got {type(text).__name__}")
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r} is not [IPV6]:PORT")
        ipaddress.IPv6Address(host)
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{text!r} is not HOST:PORT")
        if ":" in host:
            raise ValueError(f"{text!r}: write IPv6 addresses as [ADDR]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be 1-65535")
    return host, int(port_text)


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# A record's encoding beyond its key and value (dataset name, version stamp, lengths): well
# under this, so a record of record_bytes_max always fits a push with room to spare.
RECORD_OVERHEAD_BYTES_MAX = 256
# The most members a node may track (membership.members_max): the protocol's bound on each
# list of statements in one membership message, which the wire checks on the declared
# item count before it decodes a statement (core/membership/messages.py).
MEMBERS_MAX_LIMIT = 4096


# An Ed25519 public key is 32 bytes.
ADMIN_KEY_BYTES = 32


def parse_admin_key(text: str) -> bytes:
    """An administrator public key from its base64 text. Raises ValueError with a reason."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(key) != ADMIN_KEY_BYTES:
        raise ValueError(f"{len(key)} bytes, expected an Ed25519 public key of {ADMIN_KEY_BYTES}")
    return key
