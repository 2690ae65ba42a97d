"""policy, tags, repair, owners and reseed against two running agents (human and --json),
with their error paths. The tests of this module run in file order on one cluster: the
private-key scenario builds on its own steps, and `reseed` comes last."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossipnode.openpgp import split_keys

pytestmark = pytest.mark.slow

KEYS = Path(__file__).resolve().parents[1] / "data" / "openpgp"


def _tags_of(cli, config, name):
    members = cli("members", "--config", config, "--json").json()
    return next(m["tags"] for m in members if m["name"] == name)


def test_policy_show_in_human_and_json_form(cluster, cli):
    shown = cli("policy", "show", "--config", cluster.a.config)
    assert shown.code == 0, shown.err
    assert "Private keys denied to:  (nobody)" in shown.out
    assert "WEP replication:" in shown.out and "WEP replicas:" in shown.out
    policy = cli("policy", "show", "--config", cluster.a.config, "--json").json()
    assert policy["private_keys_denied"] == []
    assert set(policy["wep"]) == {"replication", "replicas", "eligible"}


def test_private_keys_move_with_eligibility_tags_repair_and_policy(cluster, cli, wait):
    (alice,) = split_keys((KEYS / "alice.sec.asc").read_bytes())
    a, b = cluster.a.config, cluster.b.config
    assert cli("keys", "import", KEYS / "alice.sec.asc", "--config", a).code == 0
    # b refuses private keys (its tag), so a withholds them from b.
    peer = cli("status", "--config", a, "--json").json()["peers"][0]
    assert peer["name"] == "b" and sum(peer["withheld"].values()) >= 1
    assert cli("get", "private_keys", alice.fingerprint, "--config", b).code == 1

    # b opts in at run time; a learns the tag by gossip.
    tags = cli("tags", "set", "private_keys=true", "--config", b)
    assert tags.code == 0, tags.err
    assert any(line.split() == ["private_keys", "true"] for line in tags.out.splitlines())
    wait(lambda: _tags_of(cli, a, "b")["private_keys"] is True, "a to see b's new tag")

    # Anti-entropy runs hourly in these tests, but b's view now gives it private keys: its
    # next round is brought forward to now, with a follow-up 1.5 s on for a peer that learns
    # the tag later (core/sync.py rule 9), and brings the key with no repair.
    wait(lambda: cli("get", "private_keys", alice.fingerprint, "--config", b).code == 0,
         "the private key to reach b")
    # A repair then finds the two in step: nothing moves, and the session is not refused.
    repaired = cli("repair", "--peer", "b", "--dataset", "private_keys", "--config", a, "--json")
    assert repaired.code == 0, repaired.err
    result = repaired.json()
    assert result["peer_name"] == "b" and result["finished"] is True
    assert result["records_sent"] == 0 and result["sessions"] == 1

    # The cluster policy denies b: b purges the key it holds.
    denied = cli("policy", "private-keys", "b", "deny", "--config", a)
    assert denied.code == 0, denied.err
    assert "Private keys denied to:  b" in denied.out
    wait(lambda: cli("get", "private_keys", alice.fingerprint, "--config", b).code == 1,
         "b to purge the private key")
    assert cli("policy", "show", "--config", b, "--json").json()["private_keys_denied"] == ["b"]
    allowed = cli("policy", "private-keys", "b", "allow", "--config", a, "--json")
    assert allowed.code == 0 and allowed.json()["private_keys_denied"] == []
    # Allowed again, b's view gives it private keys once more: it takes the key back at once.
    wait(lambda: cli("get", "private_keys", alice.fingerprint, "--config", b).code == 0,
         "b to take the private key back")


def test_repair_prints_what_moved(cluster, cli):
    outcome = cli("repair", "--config", cluster.b.config)
    assert outcome.code == 0, outcome.err
    assert outcome.out.startswith("repaired with a (")
    assert "records received" in outcome.out


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["repair", "--peer", "nobody"], 2, "no member named 'nobody'"),
        (["repair", "--dataset", "nope"], 2, "unknown dataset 'nope'"),
        (["policy", "private-keys", "nobody", "deny"], 2, "no member named 'nobody'"),
        (["policy", "wep"], 2, "give at least one of --replication"),
        (["policy", "wep", "--replicas", "0"], 2, "'replicas' must be an integer from 1 to 16"),
        (["tags", "set", "wep=maybe"], 2, "tag 'wep' must be true or false"),
        (["tags", "set", "justakey"], 2, "write KEY=VALUE"),
        (["reseed"], 2, "run again with --yes"),
    ],
)
def test_admin_errors_are_one_line(cluster, cli, arguments, code, message):
    outcome = cli(*arguments, "--config", cluster.a.config)
    assert outcome.code == code
    assert outcome.out == "" and len(outcome.err.splitlines()) == 1
    assert message in outcome.err


def test_tags_set_reaches_the_other_member(cluster, cli, wait):
    outcome = cli("tags", "set", "rack=r2", "zone=z1", "--config", cluster.b.config, "--json")
    assert outcome.code == 0, outcome.err
    assert outcome.json()["rack"] == "r2" and outcome.json()["zone"] == "z1"
    wait(lambda: _tags_of(cli, cluster.a.config, "b").get("rack") == "r2",
         "a to see b's rack tag")
    table = cli("members", "--config", cluster.a.config).out
    assert "rack=r2" in next(line for line in table.splitlines() if line.startswith("b "))


def test_policy_wep_changes_mailbox_owners(cluster, cli):
    a = cluster.a.config
    one = cli("policy", "wep", "--replication", "on", "--replicas", "1", "--config", a, "--json")
    assert one.code == 0, one.err
    assert one.json()["wep"] == {"replication": True, "replicas": 1, "eligible": None}
    owners = cli("owners", "mbox-42", "--config", a, "--json").json()
    assert owners["replication"] is True and len(owners["owners"]) == 1

    both = cli("policy", "wep", "--replicas", "2", "--config", a)
    assert both.code == 0 and "WEP replicas:" in both.out
    owners = cli("owners", "mbox-42", "--config", a, "--json").json()
    assert {o["name"] for o in owners["owners"]} == {"a", "b"}
    table = cli("owners", "mbox-42", "--config", a).out.splitlines()
    assert table[0].split() == ["Name", "ID"] and len(table) == 3

    only_b = cli("policy", "wep", "--eligible", "b", "--config", a, "--json").json()
    assert only_b["wep"]["eligible"] == ["b"]
    owners = cli("owners", "mbox-42", "--config", a, "--json").json()
    assert [o["name"] for o in owners["owners"]] == ["b"]

    off = cli("policy", "wep", "--replication", "off", "--eligible", "", "--config", a, "--json")
    assert off.json()["wep"]["replication"] is False
    assert cli("owners", "mbox-42", "--config", a, "--json").json() == {
        "mailbox": "mbox-42", "replication": False, "owners": []}
    assert "WEP replication is off" in cli("owners", "mbox-42", "--config", a).out
    cli("policy", "wep", "--replication", "on", "--config", a)


def test_reseed_discards_replicated_data_and_pulls_it_again(cluster, cli, wait):
    a, b = cluster.a.config, cluster.b.config
    assert cli("put", "groups", "before-reseed", "--value", '{"v": 1}', "--config", a).code == 0
    wait(lambda: cli("get", "groups", "before-reseed", "--config", b).code == 0,
         "the group to reach b")
    generation = cli("status", "--config", b, "--json").json()["node"]["generation"]
    refused = cli("reseed", "--config", b)
    assert refused.code == 2
    assert cli("get", "groups", "before-reseed", "--config", b).code == 0  # nothing discarded

    reseeded = cli("reseed", "--yes", "--config", b, "--json")
    assert reseeded.code == 0, reseeded.err
    assert reseeded.json()["removed_records"] >= 1
    assert reseeded.json()["generation"] == generation + 1
    # Reseeding schedules an anti-entropy round at once: the data comes back from a.
    wait(lambda: cli("get", "groups", "before-reseed", "--config", b).code == 0,
         "b to pull the group again")
    human = cli("reseed", "--yes", "--config", b)
    assert human.code == 0 and human.out.startswith("removed ")
