"""`keys import/show/search/export` and key references in get/delete, against two running
agents (a may hold private keys, b may not): merge on import, no-op re-imports, per-key
reports, and a revocation that an older copy cannot undo on any member."""

from __future__ import annotations

import base64
from pathlib import Path

import pysequoia
import pytest

from gossipnode.openpgp import split_keys
from tests.openpgp_certs import Key, armored, packet_set

pytestmark = pytest.mark.slow

KEYS = Path(__file__).resolve().parents[1] / "data" / "openpgp"


def _value(cli, agent, fingerprint):
    outcome = cli("get", "consumers", fingerprint, "--config", agent.config, "--json")
    return outcome.json() if outcome.code == 0 else None


def _cert(record) -> bytes:
    return base64.b64decode(record["value"]["cert"]["$bytes"])


def test_import_reports_new_then_unchanged_and_writes_no_new_version(cluster, cli):
    (alice,) = split_keys((KEYS / "alice.sec.asc").read_bytes())
    first = cli("keys", "import", KEYS / "alice.sec.asc", "--config", cluster.a.config)
    assert first.code == 0, first.err
    assert alice.fingerprint in first.out and "new; secret stored" in first.out
    assert first.out.splitlines()[-1].startswith("1 keys: 1 new, 0 updated, 0 unchanged")
    before = _value(cli, cluster.a, alice.fingerprint)
    assert before["value"]["type"] == "internal"
    assert before["value"]["user_ids"] == list(alice.user_ids)
    again = cli("keys", "import", KEYS / "alice.sec.asc", "--config", cluster.a.config)
    assert again.code == 0, again.err
    assert "unchanged; secret unchanged" in again.out
    assert _value(cli, cluster.a, alice.fingerprint) == before  # same version, same value
    # A public-only copy does not make the managed user external.
    public = cli("keys", "import", KEYS / "alice.pub.asc", "--config", cluster.a.config)
    assert public.code == 0 and "unchanged" in public.out
    assert _value(cli, cluster.a, alice.fingerprint)["value"]["type"] == "internal"


def test_import_of_secrets_on_a_node_that_refuses_them_exits_1(cluster, cli):
    (bob,) = split_keys((KEYS / "bob.sec.gpg").read_bytes())
    outcome = cli("keys", "import", KEYS / "bob.sec.gpg", "--config", cluster.b.config)
    assert outcome.code == 1
    row = next(line for line in outcome.out.splitlines() if line.startswith(bob.fingerprint))
    assert "secret refused: this node may not hold private keys" in row
    assert "1 secret refused" in outcome.out.splitlines()[-1]
    assert cli("get", "consumers", bob.fingerprint, "--config", cluster.b.config).code == 0
    assert cli("get", "private_keys", bob.fingerprint, "--config", cluster.b.config).code == 1


def test_import_of_garbage_is_one_line(cluster, cli, tmp_path):
    garbage = tmp_path / "garbage.asc"
    garbage.write_bytes(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n"
                        b"-----END PGP PUBLIC KEY BLOCK-----\n")
    for path in (garbage, Path(__file__), tmp_path / "absent.asc"):
        outcome = cli("keys", "import", path, "--config", cluster.a.config)
        assert outcome.code == 2
        assert outcome.out == "" and len(outcome.err.splitlines()) == 1
        assert outcome.err.startswith(f"gossipnode keys: {path}: ")


def test_update_reports_what_the_copy_added(cluster, cli, tmp_path):
    key = Key.generate("Erin <erin@example.org>")
    base, extra = tmp_path / "base.asc", tmp_path / "extra.asc"
    base.write_bytes(armored(key.public()))
    extra.write_bytes(armored(key.with_user_id("Erin Work <erin@work.example>")))
    assert cli("keys", "import", base, "--config", cluster.a.config).code == 0
    outcome = cli("keys", "import", extra, "--config", cluster.a.config, "--json")
    (row,) = outcome.json()
    assert row["status"] == "updated"
    assert row["added"] == "user ID Erin Work <erin@work.example>; 1 signature"
    value = _value(cli, cluster.a, key.fingerprint)["value"]
    assert sorted(value["user_ids"]) == ["Erin <erin@example.org>",
                                         "Erin Work <erin@work.example>"]
    assert value["type"] == "external"


def test_revocation_on_b_survives_an_older_copy_on_a_everywhere(cluster, cli, tmp_path, wait):
    """The issue's story: B learns the revocation; A re-imports an old export that lacks it
    but carries a new user ID. Every member ends revoked, with both user IDs, identical."""
    key = Key.generate("Frank <frank@example.org>")
    files = {name: tmp_path / f"{name}.asc" for name in ("base", "revoked", "old")}
    files["base"].write_bytes(armored(key.public()))
    files["revoked"].write_bytes(armored(key.revoked()))
    files["old"].write_bytes(armored(key.with_user_id("Frank Old <frank@old.example>")))
    assert cli("keys", "import", files["base"], "--config", cluster.a.config).code == 0
    wait(lambda: _value(cli, cluster.b, key.fingerprint), "the key to reach b")
    revoked = cli("keys", "import", files["revoked"], "--config", cluster.b.config, "--json")
    assert revoked.json()[0]["added"] == "1 signature; revocation"
    old = cli("keys", "import", files["old"], "--config", cluster.a.config, "--json")
    assert old.json()[0]["status"] in ("updated", "unchanged")

    def converged():
        a, b = _value(cli, cluster.a, key.fingerprint), _value(cli, cluster.b, key.fingerprint)
        done = a == b and a["value"]["revoked"] and len(a["value"]["user_ids"]) == 2
        if not done:  # pushes may race; anti-entropy (on demand here) settles it
            cli("repair", "--config", cluster.a.config)
        return done

    wait(converged, "both members to hold the revoked key with both user IDs")
    merged = _cert(_value(cli, cluster.a, key.fingerprint))
    for source in files.values():  # nothing any copy had is lost
        assert packet_set(pysequoia.Cert.from_bytes(source.read_bytes()).__bytes__()) <= \
            packet_set(merged)
    assert pysequoia.Cert.from_bytes(merged).is_revoked

    def digests(agent):
        status = agent.request("status")
        return {d["name"]: d["digest"] for d in status["datasets"]}

    wait(lambda: digests(cluster.a)["consumers"] == digests(cluster.b)["consumers"],
         "equal consumers digests")


def test_key_references_in_any_spelling(cluster, cli, tmp_path):
    key = Key.generate("Grace <grace@example.org>")
    path = tmp_path / "grace.asc"
    path.write_bytes(armored(key.public()))
    assert cli("keys", "import", path, "--config", cluster.a.config).code == 0
    fpr = key.fingerprint
    spaced = " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).upper()
    for spelling in (fpr.upper(), spaced, "0x" + fpr, "0X" + fpr[-16:].upper(), fpr[-16:]):
        shown = cli("keys", "show", spelling, "--config", cluster.a.config, "--json")
        assert shown.code == 0, (spelling, shown.err)
        assert shown.json()["fingerprint"] == fpr
        got = cli("get", "consumers", spelling, "--config", cluster.a.config, "--json")
        assert got.code == 0 and got.json()["key"] == fpr
    human = cli("keys", "show", fpr[-16:], "--config", cluster.a.config)
    assert "Grace <grace@example.org>" in human.out and "Revoked" in human.out
    assert cli("keys", "show", "0x" + "0" * 16, "--config", cluster.a.config).code == 1
    assert cli("delete", "consumers", "0x" + fpr[-16:], "--config", cluster.a.config).code == 0
    assert cli("get", "consumers", fpr, "--config", cluster.a.config).code == 1


def test_search_by_email_and_user_id(cluster, cli, tmp_path):
    key = Key.generate("Heidi Searchable <heidi@search.example>")
    path = tmp_path / "heidi.asc"
    path.write_bytes(armored(key.public()))
    assert cli("keys", "import", path, "--config", cluster.a.config).code == 0
    for text in ("heidi@search.example", "HEIDI@SEARCH", "Searchable"):
        found = cli("keys", "search", text, "--config", cluster.a.config, "--json")
        assert [k["fingerprint"] for k in found.json()] == [key.fingerprint], text
    missing = cli("keys", "search", "nobody@nowhere.example", "--config", cluster.a.config)
    assert missing.code == 1 and "no key matches" in missing.out


def test_export_writes_a_keyring_with_the_named_keys(cluster, cli, tmp_path):
    keys = [Key.generate(f"Ivan {i} <ivan{i}@example.org>") for i in range(3)]
    bundle = tmp_path / "ivans.asc"
    bundle.write_bytes(b"".join(armored(k.public()) for k in keys))
    assert cli("keys", "import", bundle, "--config", cluster.a.config).code == 0
    out = tmp_path / "export.asc"
    chosen = [keys[0].fingerprint.upper(), "0x" + keys[2].fingerprint[-16:]]
    outcome = cli("keys", "export", *chosen, "--out", out, "--config", cluster.a.config)
    assert outcome.code == 0, outcome.err
    exported = pysequoia.Cert.split_bytes(out.read_bytes())
    assert [c.fingerprint.lower() for c in exported] == [keys[0].fingerprint,
                                                         keys[2].fingerprint]
    everything = cli("keys", "export", "--all", "--config", cluster.a.config)
    fingerprints = {c.fingerprint.lower() for c in pysequoia.Cert.split_bytes(
        everything.out.encode())}
    assert {k.fingerprint for k in keys} <= fingerprints
    assert cli("keys", "export", "--config", cluster.a.config).code == 2


def test_an_interrupted_import_says_how_many_keys_were_stored(cluster, cli, tmp_path,
                                                               monkeypatch):
    from gossipnode.client import ControlClient

    keys = [Key.generate(f"Jo {i} <jo{i}@example.org>") for i in range(510)]
    bundle = tmp_path / "many.asc"
    bundle.write_bytes(b"".join(armored(k.public()) for k in keys))
    real_request = ControlClient.request
    calls = []

    def interrupted(self, verb, **arguments):
        calls.append(verb)
        if calls.count("keys_import") == 2:  # Ctrl-C while the second batch is on its way
            raise KeyboardInterrupt
        return real_request(self, verb, **arguments)

    monkeypatch.setattr(ControlClient, "request", interrupted)
    outcome = cli("keys", "import", bundle, "--config", cluster.a.config)
    assert outcome.code == 130
    assert outcome.err.strip() == ("gossipnode keys: interrupted after 500 of 510 keys; "
                                   "500 stored")
    monkeypatch.setattr(ControlClient, "request", real_request)
    assert cli("get", "consumers", keys[499].fingerprint, "--config", cluster.a.config).code == 0
    assert cli("get", "consumers", keys[500].fingerprint, "--config", cluster.a.config).code == 1
