"""Deliberately broken stand-ins, one bug each, to prove each checker fires."""

from __future__ import annotations

import dataclasses

from gossipnode.core import placement
from gossipnode.core.catalog import Scope
from gossipnode.core.catalog import dataset as lookup_dataset
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import Send
from gossipnode.core.records import Record

from .standin import LAST_ALIVE_META, BrokenStandin, StandinCore
from .standin_messages import Push

__all__ = [
    "BrokenStandin",
    "DiskErrorSwallower",
    "EagerMailboxMover",
    "ForgetfulWriter",
    "Hoarder",
    "LocalLeaker",
    "NoQuarantine",
    "OperatorQuarantine",
    "Raiser",
    "Silent",
    "Spinner",
    "StoreThenRefuse",
    "disable_eligibility_check",
    "place_off_by_one",
]


class LocalLeaker(StandinCore):
    """Pushes node-local settings to its peers like any other write."""

    def _write(self, dataset: str, key: str, value: bytes | None, now: float) -> Record:
        record = super()._write(dataset, key, value, now)
        if lookup_dataset(dataset).scope is Scope.LOCAL:
            for member in self._alive_peers()[:1]:
                self._events.append(Send(member.address, Push((record,))))
        return record


class Hoarder(StandinCore):
    """Never purges private keys and takes them from anyone, but sends them correctly."""

    def _take(self, sender: bytes, records, now: float) -> list[Record]:
        return self._apply(list(records), sender)

    def _tick(self, now: float) -> None:
        eligible = self._eligible
        self._eligible = lambda node_id: True if node_id == self.node_id else eligible(node_id)
        try:
            super()._tick(now)
        finally:
            del self._eligible


class EagerMailboxMover(StandinCore):
    """Drops a mailbox it does not own at once, before the owners confirm they hold it."""

    def _sync_mailboxes(self) -> None:
        super()._sync_mailboxes()
        doomed = [r.key for r in self.store.replicated("web_messenger")
                  if self.node_id not in (self._owners(r.key.split("/", 1)[0]) or ())]
        self.store.remove("web_messenger", doomed)


class ForgetfulWriter(StandinCore):
    """Acknowledges writes to shared datasets without storing or sending them."""

    def _write(self, dataset: str, key: str, value: bytes | None, now: float) -> Record:
        if lookup_dataset(dataset).scope is Scope.ALL and dataset != "cluster_policy":
            return Record(dataset, key, value, self.clock.stamp(self.wall_ms()))
        return super()._write(dataset, key, value, now)


class NoQuarantine(StandinCore):
    """Rejoins after a long absence with its stale records (no quarantine)."""

    def __init__(self, config, **arguments) -> None:
        store = arguments["store"]
        clear = store.clear_replicated
        store.clear_replicated = lambda: 0
        try:
            super().__init__(config, **arguments)
        finally:
            store.clear_replicated = clear


class Silent(StandinCore):
    """Never replicates: no pushes, no anti-entropy."""

    def _spread(self, records, exclude) -> None:
        pass

    def _answer_digest(self, sender, message) -> None:
        pass


class Raiser(StandinCore):
    """Crashes on its first gossip message (a core must never raise out of an input)."""

    def receive(self, sender: bytes, message: object, now: float) -> None:
        if type(message).__name__ == "Gossip":
            raise KeyError("boom")
        super().receive(sender, message, now)


class Spinner(StandinCore):
    """Reports a deadline in the past forever once it has joined."""

    def next_deadline(self) -> float | None:
        return self._last_now - 1.0 if self._joined else super().next_deadline()


class OperatorQuarantine(NoQuarantine):
    """Like the real NodeCore: after a long absence it reports itself quarantined and
    keeps its stale data until the operator runs `reseed`. Not broken: a good variant."""

    def __init__(self, config, **arguments) -> None:
        last = arguments["store"].get_meta(LAST_ALIVE_META)
        grace_ms = config.replication.tombstone_grace_s * 1000
        now_ms = arguments["wall_ms"]()
        self._stale = last is not None and now_ms - int.from_bytes(last, "big") > grace_ms
        super().__init__(config, **arguments)

    def quarantined(self, now: float) -> bool:
        return self._stale

    def reseed(self, now: float) -> int:
        self._stale = False
        return super().reseed(now)


class DiskErrorSwallower(StandinCore):
    """Carries on when its store fails a write: the write is acknowledged, not stored."""

    def _apply(self, records, source):
        try:
            return super()._apply(records, source)
        except OSError:
            return list(records)


class StoreThenRefuse(StandinCore):
    """Stores a write to `groups`, then refuses it: the client is told nothing was written."""

    def _write(self, dataset: str, key: str, value: bytes | None, now: float) -> Record:
        record = super()._write(dataset, key, value, now)
        if dataset == "groups":
            raise LocalProtocolError("refused after the fact")
        return record


# -- the real NodeCore with one rule broken ---------------------------------------------
#
# The core's placement and eligibility functions are swapped, wherever a core module bound
# them, for versions with one bug. The simulator's checkers judge by their own model
# (simulations/oracle.py), so they must catch both.


def _patch_core(monkeypatch, name: str, replacement) -> None:
    import sys

    original = getattr(placement, name)
    patched = 0
    for module_name, module in list(sys.modules.items()):
        if (module_name.startswith("gossipnode.core") or module_name.startswith("tests.")) \
                and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, replacement)
            patched += 1
    assert patched, name


def disable_eligibility_check(monkeypatch) -> None:
    """Every member counts as eligible for private keys, for senders and receivers."""
    _patch_core(monkeypatch, "private_keys_eligible", lambda node_id, tags, policy: True)


def place_off_by_one(monkeypatch) -> None:
    """Each mailbox goes to the owners ranked 2..R+1 instead of 1..R: every core agrees,
    so the cluster converges, on the wrong members."""
    original = placement.mailbox_owners

    def shifted(mailbox, candidates, policy):
        candidates = list(candidates)
        ranked = original(mailbox, candidates,
                          dataclasses.replace(policy, wep_replicas=len(candidates) or 1))
        if ranked is None:
            return None
        return ranked[1 : policy.wep_replicas + 1] or ranked[:1]

    _patch_core(monkeypatch, "mailbox_owners", shifted)
