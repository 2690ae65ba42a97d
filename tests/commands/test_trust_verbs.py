"""The administrator's verbs against real agents: `admin keygen`, `init --admin-pubkey`,
`admin adopt`, `admit`, `grant`, `revoke`, and what `members`/`status` show. A verb that
changes an administrative record refuses to run without the administrator key."""

from __future__ import annotations

import base64
import stat

import pytest

from gossipnode.client import ClientError
from gossipnode.config_file import load_config
from gossipnode.identity import format_node_id

from .conftest import stop_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    from gossipnode.cli import main

    root = tmp_path_factory.mktemp("admin")
    assert main(["admin", "keygen", "--out", str(root / "admin.key")]) == 0
    return root / "admin.key"


@pytest.fixture(scope="module")
def governed(tmp_path_factory, new_agent, admin):
    root = tmp_path_factory.mktemp("governed")
    pub = f"{admin}.pub"
    a = new_agent(root, "a", "--wep", "--admin-pubkey", pub)
    b = new_agent(root, "b", "--wep", "--admin-pubkey", pub, join=a)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        stop_all([a, b])


def holds(agent, key):
    try:
        return agent.request("get", dataset="groups", key=key) is not None
    except ClientError:
        return False


def test_keygen_writes_a_private_key_and_its_public_half(admin, cli, tmp_path):
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    public = admin.with_name(admin.name + ".pub").read_text().strip()
    outcome = cli("admin", "keygen", "--out", tmp_path / "other.key")
    assert outcome.code == 0 and outcome.out.strip() != public
    again = cli("admin", "keygen", "--out", tmp_path / "other.key")
    assert again.code == 2 and "refusing to overwrite" in again.err


def test_init_pins_the_public_key_and_refuses_a_bad_one(admin, cli, tmp_path):
    secret = tmp_path / "s"
    assert cli("keygen", "--out", secret).code == 0
    outcome = cli("init", "--data-dir", tmp_path / "n", "--name", "n", "--listen",
                  "127.0.0.1:7000", "--secret-file", secret, "--admin-pubkey", f"{admin}.pub")
    assert outcome.code == 0 and "gossipnode admit " + outcome.out.strip() in outcome.err
    public = admin.with_name(admin.name + ".pub").read_text().strip()
    assert load_config(tmp_path / "n" / "node.toml").admin_keys == (base64.b64decode(public),)
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    outcome = cli("init", "--data-dir", tmp_path / "m", "--name", "m", "--listen",
                  "127.0.0.1:7001", "--secret-file", secret, "--admin-pubkey", bad)
    assert outcome.code == 2 and "not an administrator public key" in outcome.err


def test_nothing_replicates_before_admission_and_verbs_need_the_key(governed, cli, wait,
                                                                     monkeypatch, admin):
    a, b = governed
    monkeypatch.delenv("GOSSIPNODE_ADMIN_KEY", raising=False)
    # b answers `status` before its join reaches a: wait for a to list it.
    def listed():
        rows = cli("members", "--config", a.config)
        return any(line.startswith("b ") for line in rows.out.splitlines()) and rows

    rows = wait(listed, "a to list b")
    assert rows.code == 0 and rows.out.count("not admitted") == 2
    assert cli("put", "groups", "early", "--value", "{}", "--config", a.config).code == 0
    for verb in (["admit", b.node_id], ["grant", b.node_id, "wep"],
                 ["admin", "adopt"], ["policy", "private-keys", b.node_id, "allow"]):
        outcome = cli(*verb, "--config", a.config)
        assert outcome.code == 2 and "--admin-key" in outcome.err, verb
    outcome = cli("put", "cluster_policy", "grant/" + "00" * 32, "--value",
                  '{"admitted": true}', "--config", a.config)
    assert outcome.code == 2 and "signed by an administrator" in outcome.err
    admin.chmod(0o644)
    try:
        outcome = cli("admit", b.node_id, "--admin-key", admin, "--config", a.config)
        assert outcome.code == 2 and "readable by others" in outcome.err
    finally:
        admin.chmod(0o600)
    assert not holds(b, "early")

    monkeypatch.setenv("GOSSIPNODE_ADMIN_KEY", str(admin))
    adopted = cli("admin", "adopt", "--config", a.config, "--json")
    assert adopted.code == 0, adopted.err
    assert {(w["name"], w["private_keys"], w["wep"]) for w in adopted.json()} == {
        ("a", True, True), ("b", True, True)}
    # A write made after admission is pushed; the one made before it comes by anti-entropy,
    # with no `repair` and rounds hourly: b's admission brings its next round forward to now
    # (core/sync.py rule 9).
    assert cli("put", "groups", "late", "--value", "{}", "--config", a.config).code == 0
    wait(lambda: holds(b, "late"), "the new write to reach b")
    wait(lambda: holds(b, "early"), "b's admission to bring the early write")
    members = {m["name"]: m for m in cli("members", "--config", b.config, "--json").json()}
    assert members["a"]["grants"] == {"admitted": True, "private_keys": True, "wep": True,
                                      "enforced": True}

    outcome = cli("revoke", b.node_id, "private-keys", "--config", a.config)
    assert outcome.code == 0, outcome.err
    wait(lambda: not b.request("status")["node"]["private_keys_eligible"], "b to lose it")
    status = cli("status", "--config", b.config)
    assert "admitted,wep" in status.out
    shown = cli("grant", b.node_id, "private-keys", "--config", a.config, "--json")
    assert shown.json() == {"admitted": True, "private_keys": True, "wep": True}
    wait(lambda: b.request("status")["node"]["private_keys_eligible"], "b eligible again")


def test_rotating_the_administrator_key(tmp_path, new_agent, cli, wait, admin, monkeypatch):
    monkeypatch.delenv("GOSSIPNODE_ADMIN_KEY", raising=False)
    new_key = tmp_path / "new.key"
    assert cli("admin", "keygen", "--out", new_key).code == 0
    old_public = admin.with_name(admin.name + ".pub").read_text().strip()
    new_public = new_key.with_name(new_key.name + ".pub").read_text().strip()
    a = new_agent(tmp_path, "a", "--admin-pubkey", f"{admin}.pub")
    b = new_agent(tmp_path, "b", "--admin-pubkey", f"{admin}.pub", join=a)

    def pin(*keys):
        for agent in (a, b):
            text = agent.config.read_text()
            start = text.index("admin_keys = [")
            end = text.index("]", start) + 1
            pinned = ", ".join(f'"{k}"' for k in keys)
            agent.config.write_text(text[:start] + f"admin_keys = [{pinned}]" + text[end:])

    def admitted(agent):
        rows = {m["name"]: m["grants"] for m in agent.request("members")}
        return set(rows) == {"a", "b"} and all(g["admitted"] for g in rows.values())

    try:
        a.start()
        b.start()
        wait(lambda: len(a.request("members")) == 2, "both members")
        assert cli("admin", "adopt", "--admin-key", admin, "--config", a.config).code == 0
        wait(lambda: admitted(a) and admitted(b), "admission")
        outcome = cli("admin", "resign", "--admin-key", new_key, "--config", a.config)
        assert outcome.code == 2 and "not pinned" in outcome.err
        stop_all([a, b])
        pin(old_public, new_public)  # 1. pin the new key next to the old one everywhere
        a.start()
        b.start()
        outcome = cli("admin", "resign", "--admin-key", new_key, "--config", a.config)
        assert outcome.code == 0, outcome.err  # 2. re-sign with the new key
        wait(lambda: all(
            r["version"]["origin"] == new_id(new_public)
            for r in b.request("list", dataset="cluster_policy")
        ), "the re-signed records on b")
        stop_all([a, b])
        pin(new_public)  # 3. drop the old key
        a.start()
        b.start()
        wait(lambda: admitted(a) and admitted(b), "admission under the new key alone")
        outcome = cli("admit", b.node_id, "--admin-key", admin, "--config", a.config)
        assert outcome.code == 2 and "not signed by a pinned administrator key" in outcome.err
    finally:
        stop_all([a, b])


def new_id(public_text):
    return format_node_id(base64.b64decode(public_text))
