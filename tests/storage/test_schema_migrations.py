"""A store written by an older build opens with every record intact at the current schema,
and 1 KiB records take about their own size on disk (schema 3: a rowid table)."""

import sqlite3

from gossipnode.core.records import Record, Version
from gossipnode.storage import SqliteStore

ORIGIN = b"\x07" * 32
PAGE_BYTES = 4096

# The schema as builds before schema 3 left it (migrations 1 and 2), written out here so
# that the test does not take it from the module it checks.
SCHEMA_2 = """
CREATE TABLE records (
    dataset TEXT NOT NULL,
    key TEXT NOT NULL,
    wall_ms INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    origin BLOB NOT NULL,
    value BLOB,
    PRIMARY KEY (dataset, key)
) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
ALTER TABLE records ADD COLUMN signature BLOB;
PRAGMA user_version = 2;
"""


def _schema_2_store(path):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_2)
    rows = [("consumers", f"k{i:03d}", 1000 + i, i % 3, ORIGIN, b"v" * (i * 7), None)
            for i in range(200)]
    rows.append(("groups", "gone", 9000, 0, ORIGIN, None, None))  # a tombstone
    rows.append(("cluster_policy", "grant/x", 9001, 1, ORIGIN, b"\xa0", b"s" * 64))
    db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO meta VALUES ('incarnation', x'0102')")
    db.close()


def test_a_schema_2_store_opens_with_every_record_and_its_meta(tmp_path):
    path = tmp_path / "store.sqlite3"
    _schema_2_store(path)
    store = SqliteStore(path)
    try:
        (version,) = store._db.execute("PRAGMA user_version").fetchone()
        assert version == 3
        consumers = list(store.replicated("consumers"))
        assert [r.key for r in consumers] == [f"k{i:03d}" for i in range(200)]
        assert consumers[57].value == b"v" * 399
        assert consumers[57].version == Version(1057, 0, ORIGIN)
        assert store.get("groups", "gone").value is None
        policy = store.get("cluster_policy", "grant/x")
        assert (policy.value, policy.signature) == (b"\xa0", b"s" * 64)
        assert store.get_meta("incarnation") == b"\x01\x02"
        # The copied-from table's pages were given back (the file compacted once).
        assert store._db.execute("PRAGMA freelist_count").fetchone() == (0,)
        # The counts read at open see the copied rows.
        assert store.count("consumers") == 200
        # Writes after the migration replace and add as before.
        store.apply([Record("consumers", "k001", b"new", Version(5000, 0, ORIGIN)),
                     Record("consumers", "k999", b"added", Version(5000, 0, ORIGIN))])
        assert store.get("consumers", "k001").value == b"new"
        assert store.count("consumers") == 201
    finally:
        store.close()
    reopened = SqliteStore(path)  # a second open migrates nothing more
    try:
        assert reopened.get("consumers", "k999").value == b"added"
        assert reopened.count("consumers") == 201
    finally:
        reopened.close()


def test_one_kib_records_take_about_their_size_on_disk(tmp_path):
    path = tmp_path / "store.sqlite3"
    store = SqliteStore(path)
    try:
        records = 600
        for start in range(0, records, 20):
            store.apply([Record("consumers", f"w{i % 16}-{i // 16}", b"x" * 1030,
                                Version(1, 0, ORIGIN)) for i in range(start, start + 20)])
        (pages,) = store._db.execute("PRAGMA page_count").fetchone()
        (free,) = store._db.execute("PRAGMA freelist_count").fetchone()
    finally:
        store.close()
    # 1 KiB of value and ~60 bytes of the rest: three rows a 4 KiB page when full, and a
    # little for the key index. (A WITHOUT ROWID table spilled each into a page of its
    # own: over 4.5 KiB a record.)
    assert (pages - free) * PAGE_BYTES / records < 2000
