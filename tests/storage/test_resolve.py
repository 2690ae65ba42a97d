"""`apply_changes(records, resolve)`: both stores let the caller's resolve function decide,
including a replacement at the very same version (a merge), durably for SqliteStore."""

from __future__ import annotations

import pytest

from gossipnode.core.records import Record, Version
from gossipnode.core.store import MemoryStore
from gossipnode.storage import SqliteStore

ORIGIN = b"\x01" * 32


def _record(value: bytes | None, wall_ms: int = 1000) -> Record:
    return Record("consumers", "k", value, Version(wall_ms, 0, ORIGIN))


def _concatenate(incoming: Record, stored: Record | None) -> Record | None:
    """A toy resolve: keep the stored version, append the incoming value's bytes."""
    if stored is None:
        return incoming
    if incoming.value is None or stored.value is None or incoming.value in stored.value:
        return None
    return Record(stored.dataset, stored.key, stored.value + incoming.value, stored.version)


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    else:
        sqlite = SqliteStore(tmp_path / "store.sqlite3")
        yield sqlite
        sqlite.close()


def test_resolve_may_replace_at_the_same_version(store):
    first = _record(b"a")
    assert store.apply_changes([first], _concatenate) == [(None, first)]
    changes = store.apply_changes([_record(b"b", wall_ms=5)], _concatenate)
    merged = _record(b"ab")
    assert changes == [(first, merged)]
    assert store.get("consumers", "k") == merged
    assert store.apply_changes([_record(b"b", wall_ms=9)], _concatenate) == []  # nothing new


def test_without_resolve_it_is_last_writer_wins(store):
    store.apply([_record(b"a", wall_ms=10)])
    assert store.apply_changes([_record(b"b", wall_ms=5)]) == []
    assert store.get("consumers", "k").value == b"a"


def test_a_resolved_replacement_survives_reopening(tmp_path):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    store.apply_changes([_record(b"a")], _concatenate)
    store.apply_changes([_record(b"b")], _concatenate)
    store.close()
    reopened = SqliteStore(path)
    assert reopened.get("consumers", "k") == _record(b"ab")
    reopened.close()
