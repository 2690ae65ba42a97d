"""A Byzantine member in the simulator: forged policy, forged grants and unauthorised
restricted records, against a cluster governed by an administrator key.

What runs. `run_byzantine(seed)` builds a cluster of real NodeCores (cluster.py) whose every
member pins one administrator key; the administrator grants, through the first member,
`admitted` to every honest member, `private_keys` to some and `wep` to others. The last
member is the Byzantine one: it runs a real core (so it is a member like any other, and
advertises every tag: a lie), and on top of that, every second, it sends every honest member
a push of forged records: grants for itself (signed with its own key, or naming the
administrator as origin with its own signature, or unsigned), a WEP policy of one replica,
a revocation of an honest member's admission, private keys under the honest keys' names
(its own, and posing as a granted member), replays of genuine administrative records
stamped anew, and, when not admitted, mailbox messages. Honest members write private keys
and mailboxes meanwhile (through group commit); the network resets connections, partitions
and heals, one honest member crashes and restarts, and one honest member loses its
private-keys grant halfway. Per seed the Byzantine member is admitted (odd seeds) or not
(even seeds).

The model of the adversary: the simulator's signatures are keyed hashes under the signer's
node id (node.py) and prove nothing against code that knows that; the Byzantine member here
signs only with its own key, as a compromised member holding its own identity key can.
Real Ed25519 is exercised by the agent tests.

What is checked, from ground truth kept here (an independent oracle, not the core's view):
1. Containment: no message carrying a private key is ever sent to a member without the
   private-keys grant, no mailbox to a member without the wep grant, nothing carrying a
   record at all to the Byzantine member while it is not admitted; its store ends with no
   private key and no mailbox.
2. Integrity: every honest member ends with exactly the administrator's grants and WEP
   policy; no forged value is stored anywhere honest; every private key written by an
   honest member is held, with that value, by every live member granted private keys.
3. Placement: each mailbox is held by exactly its R owners, computed here by rendezvous
   hashing over the live members granted wep.
Plus the cluster's own checkers (core errors, liveness, lost mailbox messages).

    python -m simulations.byzantine --seeds 1-20
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from gossipnode.config import NodeConfig, ReplicationConfig, TagsConfig
from gossipnode.core.authority import signing_payload
from gossipnode.core.node import NodeCore
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.wire.cbor import encode_value

from .cluster import Cluster, SimNode
from .network import STORMY
from .node import PendingWrite, sign_function

__all__ = ["ByzantineReport", "run_byzantine"]

# Virtual seconds the Byzantine member attacks while honest members write; then the
# network heals and everyone gets SETTLE_S to converge before the final checks.
ATTACK_S = 60.0
SETTLE_S = 60.0
# Owners per mailbox in the administrator's WEP policy (the attacker asks for one).
REPLICAS = 2
FORGED = b"FORGED-BY-THE-BYZANTINE-MEMBER"
# The attack step at which one honest member loses its private-keys grant.
REVOCATION_STEP = 20


@dataclass
class ByzantineReport:
    seed: int
    admitted: bool
    forged_sent: int = 0
    refused: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_text(self) -> str:
        state = "admitted" if self.admitted else "not admitted"
        head = (f"seed {self.seed}: byzantine member {state}, {self.forged_sent} forged "
                f"records sent, {self.refused} refused")
        return "\n".join([head, *(f"  VIOLATION {v}" for v in self.violations)])


class _Scenario:
    def __init__(self, seed: int, nodes: int, core_factory: object) -> None:
        self.rng = random.Random(seed)
        self.admin_id = self.rng.randbytes(32)
        self.admin_sign = sign_function(self.admin_id)
        base = NodeConfig(admin_keys=(self.admin_id,),
                          replication=ReplicationConfig(anti_entropy_interval_s=2.0))
        self.cluster = Cluster(core_factory, nodes=nodes, seed=seed, base_config=base,
                               tags_for=lambda index: TagsConfig(wep=True, private_keys=True))
        self.byzantine = self.cluster.nodes[-1]
        self.honest = self.cluster.nodes[:-1]
        self.report = ByzantineReport(seed, admitted=seed % 2 == 1)
        half = max(2, len(self.honest) // 2)
        self.grants: dict[bytes, dict[str, bool]] = {
            node.node_id: {"admitted": True, "private_keys": index < half, "wep": index >= 1}
            for index, node in enumerate(self.honest)
        }
        if self.report.admitted:
            self.grants[self.byzantine.node_id] = {"admitted": True}
        self.ever_granted = {n for n, g in self.grants.items() if g.get("private_keys")}
        # Halfway through, one member loses its private-keys grant (not the one the
        # administrator writes through): it must hand off and purge what it holds.
        self.revoked = self.honest[1]
        self.written_private: dict[str, bytes] = {}
        self.mailboxes: list[str] = []
        self._pending: list[tuple[str, bytes | None, PendingWrite]] = []
        self._push_id = 1 << 40
        original = self.cluster.checkers.on_send

        def on_send(source: SimNode, target: SimNode | None, records: list[Record]) -> bool:
            self._check_send(source, target, records)
            return original(source, target, records)

        self.cluster.checkers.on_send = on_send  # type: ignore[method-assign]

    # -- ground truth ---------------------------------------------------------------

    def granted(self, node: SimNode, grant: str) -> bool:
        return bool(self.grants.get(node.node_id, {}).get(grant))

    def _check_send(self, source: SimNode, target: SimNode | None,
                    records: list[Record]) -> None:
        if target is None or not records:
            return
        if target is self.byzantine and not self.report.admitted:
            self._violate(f"{source.name} sent {len(records)} records to the unadmitted "
                          "byzantine member")
        for record in records:
            # A grant revoked during the run counts once the sender knows of the revocation.
            knows = source.core is None or not source.core.policy.granted(
                target.node_id, "private_keys")
            if (record.dataset == "private_keys" and not self.granted(target, "private_keys")
                    and (knows or target.node_id not in self.ever_granted)):
                self._violate(f"{source.name} sent private key {record.key} to {target.name}")
            if record.dataset == "web_messenger" and not self.granted(target, "wep"):
                self._violate(f"{source.name} sent mailbox {record.key} to {target.name}")

    def _violate(self, text: str) -> None:
        if len(self.report.violations) < 20:
            self.report.violations.append(text)

    # -- the administrator and the honest members -------------------------------------

    def admin_write(self, key: str, value: dict) -> None:
        encoded = encode_value(value)
        version = Version(int(self.cluster.queue.now * 1000), 0, self.admin_id)
        record = Record("cluster_policy", key, encoded, version,
                        self.admin_sign(signing_payload("cluster_policy", key, version, encoded)))
        self.cluster._command(self.honest[0], lambda core, now: core.write_signed(record, now))

    def honest_writes(self, step: int) -> None:
        writers = [n for n in self.honest if n.core is not None]
        granted = [n for n in writers if self.granted(n, "private_keys")]
        if granted:
            key = f"fpr{step}"
            # What the revoked member writes just before its revocation may reach no one
            # in time: such a key is lost with the grant (handoff.py rule 4), so the oracle
            # does not count on it. Writers elsewhere carry on.
            if step >= REVOCATION_STEP - 1:
                granted = [n for n in granted if n is not self.revoked] or granted
            value = f"secret {step}".encode()
            pending = self.cluster.write(self.rng.choice(granted), "private_keys", key,
                                         {"secret_key": value})
            self._pending.append((key, value, pending))
        mailbox = f"box{step}"
        pending = self.cluster.write(self.rng.choice(writers), "web_messenger", mailbox,
                                     {"owner": step})
        self._pending.append((mailbox, None, pending))

    def collect_writes(self) -> None:
        """Writes go through group commit: count those acknowledged since the last look."""
        waiting = []
        for key, value, pending in self._pending:
            if not pending.done:
                waiting.append((key, value, pending))
            elif pending.record is not None and value is not None:
                self.written_private[key] = value
            elif pending.record is not None:
                self.mailboxes.append(key)
        self._pending = waiting

    # -- the Byzantine member ---------------------------------------------------------

    def forged_records(self) -> list[Record]:
        node = self.byzantine
        sign = sign_function(node.node_id)
        now_ms = int(self.cluster.queue.now * 1000) + 1
        victim = self.honest[0].node_id
        granted = next(n for n in self.honest if self.granted(n, "private_keys")).node_id

        def signed(dataset: str, key: str, value: dict, origin: bytes) -> Record:
            encoded = encode_value(value)
            version = Version(now_ms, 0, origin)
            return Record(dataset, key, encoded, version,
                          sign(signing_payload(dataset, key, version, encoded)))

        mine = "grant/" + node.node_id.hex()
        everything = {"admitted": True, "private_keys": True, "wep": True, "note": FORGED}
        records = [
            signed("cluster_policy", mine, everything, node.node_id),
            signed("cluster_policy", mine, everything, self.admin_id),
            Record("cluster_policy", "grant/" + victim.hex(),
                   encode_value({"admitted": False, "note": FORGED}),
                   Version(now_ms, 0, self.admin_id)),
            signed("cluster_policy", "wep", {"replication": True, "replicas": 1,
                                             "note": FORGED}, node.node_id),
        ]
        for key in [*list(self.written_private)[-3:], "fpr-new"]:
            records.append(signed("private_keys", key, {"secret_key": FORGED}, node.node_id))
            records.append(signed("private_keys", key, {"secret_key": FORGED}, granted))
        if node.core is not None:  # replays of genuine administrative records, restamped
            records.extend(
                Record(genuine.dataset, genuine.key, genuine.value,
                       Version(now_ms, 0, genuine.version.origin), genuine.signature)
                for genuine in list(node.store.replicated("cluster_policy"))[:3]
            )
        if not self.report.admitted:
            records.append(Record("web_messenger", "box-forged", encode_value(
                {"note": FORGED}), Version(now_ms, 0, node.node_id)))
        return records

    def attack(self) -> None:
        cluster, node = self.cluster, self.byzantine
        if node.core is None:
            return
        records = tuple(self.forged_records())
        for target in self.honest:
            if target.core is None:
                continue
            self._push_id += 1
            push = Push(self._push_id, records)
            # Encoded and sent over the same links as every other message (held across a
            # partition), past the containment checker: the attacker answers to nobody.
            data = cluster.codec.encode(push)
            cluster.network.send(node.index, target.index, (data, False), len(data))
            self.report.forged_sent += len(records)

    # -- the run ----------------------------------------------------------------------

    def run(self) -> ByzantineReport:
        cluster = self.cluster
        cluster.run_for(5.0)
        for node_id, grants in self.grants.items():
            self.admin_write("grant/" + node_id.hex(), grants)
        self.admin_write("wep", {"replication": True, "replicas": REPLICAS})
        cluster.run_for(5.0)
        cluster.network.faults = STORMY  # connection resets until the heal
        crashed = self.rng.choice(self.honest[1:])
        for step in range(int(ATTACK_S)):
            self.honest_writes(step)
            self.attack()
            if step == REVOCATION_STEP:
                self.grants[self.revoked.node_id] = {**self.grants[self.revoked.node_id],
                                                     "private_keys": False}
                self.admin_write("grant/" + self.revoked.node_id.hex(),
                                 self.grants[self.revoked.node_id])
            if step == 15:
                cluster.partition([self.byzantine, *self.honest[: len(self.honest) // 2]])
            elif step == 30:
                cluster.heal_network()
                cluster.crash(crashed)
            elif step == 40:
                cluster.restart(crashed)
            cluster.run_for(1.0)
            self.collect_writes()
        cluster.heal()
        cluster.run_for(SETTLE_S)
        self.collect_writes()
        self.final_checks()
        self.report.violations += [f"{v.kind}: {v.detail}" for v in cluster.checkers.violations]
        self.report.refused = sum(n.core.statistics().get("records_refused", 0) for n in self.honest
                                  if n.core is not None)
        return self.report

    def final_checks(self) -> None:
        byzantine = self.byzantine
        if byzantine.store.count("private_keys"):
            self._violate("the byzantine member holds private keys")
        if self.revoked.store.count("private_keys"):
            self._violate(f"{self.revoked.name} still holds private keys after its revocation")
        if byzantine.store.count("web_messenger"):
            self._violate("the byzantine member holds mailboxes")
        truth = {node_id: frozenset(k for k, v in g.items() if v)
                 for node_id, g in self.grants.items()}
        live = [n for n in self.honest if n.core is not None]
        for node in live:
            if dict(node.core.policy.grants) != truth:
                self._violate(f"{node.name} ends with grants other than the administrator's")
            if node.core.policy.wep_replicas != REPLICAS:
                self._violate(f"{node.name} ends with {node.core.policy.wep_replicas} replicas")
            for dataset in ("cluster_policy", "private_keys", "web_messenger"):
                for record in node.store.replicated(dataset):
                    if record.value is not None and FORGED in record.value:
                        self._violate(f"{node.name} stores forged {dataset}/{record.key}")
            if self.granted(node, "private_keys"):
                for key, value in self.written_private.items():
                    held = node.store.get("private_keys", key)
                    if held is None or value not in (held.value or b""):
                        self._violate(f"{node.name} lacks private key {key}")
        candidates = [n for n in live if self.granted(n, "wep")]
        for mailbox in self.mailboxes:
            owners = set(_owners(mailbox, candidates, REPLICAS))
            holders = {n.node_id for n in live if n.store.get("web_messenger", mailbox)}
            if holders != owners:
                self._violate(f"mailbox {mailbox} is held by {len(holders)} members, "
                              f"{len(holders & owners)} of its {len(owners)} owners")


def _owners(mailbox: str, candidates: Sequence[SimNode], replicas: int) -> list[bytes]:
    """Rendezvous hashing as docs/architecture.md states the placement rule: the top
    `replicas` by BLAKE2b-128(node id + mailbox id), personalised "gossipnode-wep"."""
    ranked = sorted(
        candidates, reverse=True,
        key=lambda n: hashlib.blake2b(n.node_id + mailbox.encode(), digest_size=16,
                                      person=b"gossipnode-wep").digest(),
    )
    return [n.node_id for n in ranked[:replicas]]


def run_byzantine(seed: int, *, nodes: int = 6,
                  core_factory: object = NodeCore) -> ByzantineReport:
    """One run (see the module docstring); deterministic for a seed."""
    return _Scenario(seed, nodes, core_factory).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a Byzantine member against a governed "
                                     "cluster (simulations/byzantine.py)")
    parser.add_argument("--seeds", default="1-10", help="a seed or a range A-B")
    parser.add_argument("--nodes", type=int, default=6)
    args = parser.parse_args(argv)
    first, _, last = args.seeds.partition("-")
    failed = 0
    for seed in range(int(first), int(last or first) + 1):
        report = run_byzantine(seed, nodes=args.nodes)
        print(report.to_text())
        failed += not report.passed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
