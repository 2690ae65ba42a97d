"""Nothing within the limits crashes the agent: four ~1 MiB records written at once and a
handoff of 64 large mailbox messages replicate (pushes are cut by bytes, not only by
count); `list` walks 2,500 records in pages with nothing missed; `reseed` refuses while no
live peer holds the data (real agent processes)."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from gossipnode.client import ControlClient

from .conftest import CONFIG_TAIL, WAIT_S, stop_all, wait_for

pytestmark = pytest.mark.slow

# Just under limits.record_bytes_max (1 MiB) once the key and the CBOR map are added.
BIG_VALUE_CHARS = 1_040_000
# 64 of these are 6.4 MB: more than a 4 MiB frame if they went in one push.
MESSAGE_CHARS = 100_000
MESSAGES = 64
LIST_RECORDS = 2_500
PAGE = 1_000
WRITERS = 8
# A session with a frozen peer fails after this, so that an unfinished repair shows quickly.
TAIL = CONFIG_TAIL + "\n[reconcile]\nsession_timeout_s = 3\n"
# Megabytes through a loaded machine's loopback and fsyncs: generous, still bounded.
REPLICATION_WAIT_S = 120.0


def write_concurrently(agent, writes: list[tuple[str, str, dict]]) -> None:
    """Each writer its own connection, so that the writes reach the agent together (and are
    committed and pushed as one batch)."""
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(share):
        try:
            with ControlClient(agent.socket, timeout_s=WAIT_S * 3) as client:
                start.wait(timeout=WAIT_S)
                for dataset, key, value in share:
                    client.request("put", dataset=dataset, key=key, value=value)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(writes[i::WRITERS],))
               for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REPLICATION_WAIT_S)
    assert not errors, errors[0]


def keys(agent, dataset: str, prefix: str = "") -> set[str]:
    page = agent.request("list", dataset=dataset, prefix=prefix, limit=100_000, page=True)
    return {r["key"] for r in page["records"]}


def test_large_pushes_handoff_list_pages_and_reseed(tmp_path, new_agent, cli):
    a = new_agent(tmp_path, "a", config_tail=TAIL)  # no WEP: may not keep mailboxes
    b = new_agent(tmp_path, "b", "--wep", join=a, config_tail=TAIL)
    try:
        a.start()
        b.start()
        wait_for(lambda: {m["name"]: m["state"] for m in a.request("members")}
                 == {"a": "alive", "b": "alive"}, "a and b to see each other")

        # Four ~1 MiB records at once: pushed (anti-entropy is hourly here), never a frame
        # too large for the wire.
        big = [("groups", f"big{i}", {"pad": str(i) * BIG_VALUE_CHARS}) for i in range(4)]
        write_concurrently(a, big * 2)  # twice, so writers really do overlap
        wait_for(lambda: keys(b, "groups", "big") == {f"big{i}" for i in range(4)},
                 "b to receive the four large records", timeout_s=REPLICATION_WAIT_S)
        assert b.request("get", dataset="groups", key="big3")["value"]["pad"][:3] == "333"

        # A handoff of 64 large mailbox messages: written while WEP replication is off (a
        # keeps them), then replication goes on and a must hand every one to b, the owner.
        assert cli("policy", "wep", "--replication", "off", "--config", a.config).code == 0
        wait_for(lambda: cli("policy", "show", "--config", b.config, "--json")
                 .json()["wep"]["replication"] is False, "b to learn the policy")
        messages = [("web_messenger", f"mbox-7/m{i:02d}", {"body": "m" * MESSAGE_CHARS})
                    for i in range(MESSAGES)]
        write_concurrently(a, messages)
        assert len(keys(a, "web_messenger", "mbox-7/")) == MESSAGES
        assert cli("policy", "wep", "--replication", "on", "--replicas", "1",
                   "--config", a.config).code == 0
        wait_for(lambda: len(keys(b, "web_messenger", "mbox-7/")) == MESSAGES,
                 "b to hold all 64 messages", timeout_s=REPLICATION_WAIT_S)
        wait_for(lambda: not keys(a, "web_messenger", "mbox-7/"),
                 "a to release what b acknowledged", timeout_s=REPLICATION_WAIT_S)
        assert a.process.poll() is None and b.process.poll() is None  # both still running

        # `list` pages through 2,500 records: nothing missed, nothing twice, no silent cap.
        expected = [f"ks{i:05d}" for i in range(LIST_RECORDS)]
        write_concurrently(a, [("keyservers", key, {"n": key}) for key in expected])
        seen, after, pages = [], None, 0
        while True:
            arguments = ["list", "keyservers", "--limit", PAGE, "--config", a.config, "--json"]
            if after is not None:
                arguments += ["--after", after]
            page = cli(*arguments).json()
            seen += [r["key"] for r in page["records"]]
            pages += 1
            after = page["next"]
            if after is None:
                break
            assert pages < LIST_RECORDS  # bounded walk
        assert seen == expected and pages == 3
        human = cli("list", "keyservers", "--limit", PAGE, "--config", a.config)
        assert human.out.splitlines()[-1] == f"(more: continue with --after {expected[PAGE - 1]})"

        # The cluster view: which datasets b holds identically, and since when. A write b
        # misses while it is down makes keyservers differ at the next sync (the one its
        # return starts at once), then agree.
        stop_all([b])
        assert a.request("put", dataset="keyservers", key="ks-late", value={})["key"]
        b.start()
        wait_for(lambda: {m["name"]: m["state"] for m in a.request("members")}["b"] == "alive",
                 "b to be back")

        def compared(dataset):
            assert cli("repair", "--peer", "b", "--dataset", dataset, "--config",
                       a.config).code == 0
            peers = cli("status", "--config", a.config, "--json").json()["peers"]
            return next(p for p in peers if p["name"] == "b")["datasets"][dataset]

        def view(dataset):
            peers = cli("status", "--config", a.config, "--json").json()["peers"]
            return next(p for p in peers if p["name"] == "b")["datasets"].get(dataset)

        differed = wait_for(lambda: (v := view("keyservers")) and not v["identical"] and v,
                            "the sync at b's return to find keyservers different")
        # The view says "different" once the sync compared the roots; the record itself
        # reaches b in that session's turns, a moment later (asserting at once raced it).
        wait_for(lambda: "ks-late" in keys(b, "keyservers"), "b to take what it missed",
                 timeout_s=REPLICATION_WAIT_S)
        again = compared("keyservers")
        assert again["identical"] is True and again["since"] > differed["since"]
        assert compared("groups")["identical"] is True
        assert "Data compared with peers" in cli("status", "--config", a.config).out

        # A repair that does not finish is not a success: b frozen, its sessions time out.
        os.kill(b.process.pid, signal.SIGSTOP)
        try:
            stalled = cli("repair", "--peer", "b", "--dataset", "groups", "--config", a.config)
        finally:
            os.kill(b.process.pid, signal.SIGCONT)
        assert stalled.code == 1, (stalled.out, stalled.err)
        assert "NOT FINISHED: groups: " in stalled.out

        # With b gone, a holds the only copy: reseed refuses unless forced.
        stop_all([b])
        wait_for(lambda: {m["name"]: m["state"] for m in a.request("members")}["b"] == "left",
                 "a to see b leave")
        refused = cli("reseed", "--yes", "--config", a.config)
        assert refused.code == 1 and "no live peer holds the data" in refused.err
        assert len(keys(a, "keyservers")) == LIST_RECORDS + 1  # nothing discarded
        forced = cli("reseed", "--yes", "--force", "--config", a.config, "--json")
        removed = json.loads(forced.out)["removed_records"]
        assert forced.code == 0 and removed >= LIST_RECORDS
    finally:
        stop_all([a, b])
