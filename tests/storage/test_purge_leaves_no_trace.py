"""Purged means gone: after `remove` (a member that lost its private-keys grant purging) the
removed bytes are in no file of the data directory: not the database's free pages, not the
write-ahead log."""

from gossipnode.core.records import Record, Version
from gossipnode.storage import SqliteStore

ORIGIN = b"\x07" * 32
MARKER = b"SECRET-KEY-BYTES-%04d-" * 8


def files_containing(directory, needle):
    return [p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes()]


def test_removed_records_leave_neither_the_database_nor_its_log(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    secrets = [MARKER.replace(b"%04d", b"%04d" % i) for i in range(50)]
    store.apply([Record("private_keys", f"fpr{i}", b"\xa1\x61k" + b"\x58\xb0" + s[:176],
                        Version(1000 + i, 0, ORIGIN)) for i, s in enumerate(secrets)])
    store.apply([Record("groups", "kept", b"\xa0", Version(5000, 0, ORIGIN))])
    assert files_containing(tmp_path, secrets[3][:40])  # the oracle sees them before
    assert store.remove("private_keys", [f"fpr{i}" for i in range(50)]) == 50
    for secret in secrets:
        assert files_containing(tmp_path, secret[:40]) == []
    assert store.get("groups", "kept") is not None
    store.close()
    for secret in secrets:
        assert files_containing(tmp_path, secret[:40]) == []


def test_a_reseed_also_leaves_no_trace(tmp_path):
    store = SqliteStore(tmp_path / "store.sqlite3")
    store.apply([Record("private_keys", "fpr", b"\xa1\x61k" + b"\x50" + b"RESEED-SECRET-16",
                        Version(1, 0, ORIGIN))])
    store.clear_replicated()
    assert files_containing(tmp_path, b"RESEED-SECRET-16") == []
    store.close()
