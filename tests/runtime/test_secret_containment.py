"""Secret key material stays where it belongs (openpgp/content.py, deep_scan.py): refused in
every replicated dataset but private_keys and org_keys however it is packaged, on a local
write and from a peer; records keyed by a fingerprint carry that very key; a bad control
request never puts a private key into the log or the reply."""

import base64
import logging
import random
import time

import pytest
import trio

from gossipnode.config import NodeConfig
from gossipnode.core.catalog import REPLICATED_DATASETS
from gossipnode.core.errors import LocalProtocolError
from gossipnode.core.events import PeerRefused
from gossipnode.core.records import Record, Version
from gossipnode.core.replication import Push
from gossipnode.identity import create_identity, generate_secret
from gossipnode.openpgp import generate_key, packets, split_keys
from gossipnode.runtime import control, control_api
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore
from gossipnode.wire.cbor import encode_value

PEER = b"\x05" * 32
ALICE = split_keys(generate_key("Alice <alice@example.org>"))[0]
BOB = split_keys(generate_key("Bob <bob@example.org>"))[0]
SECRET = ALICE.secret_key
ARMORED = generate_key("Carol <carol@example.org>").decode()
NOT_SECRET_DATASETS = sorted(set(REPLICATED_DATASETS) - {"private_keys", "org_keys"})


@pytest.fixture
def agent(tmp_path):
    config = NodeConfig(name="a", data_dir=tmp_path, listen=("127.0.0.1", 7946))
    # The services never run here: a plain monotonic clock lets the agent live outside a
    # Trio run (its default, Trio's clock, needs one).
    agent = Agent(config, create_identity(tmp_path / "identity.key"), (generate_secret(),),
                  SqliteStore(config.store_file), clock=time.monotonic)
    yield agent
    agent.store.close()


def hidden_forms():
    """The secret key as a client or a hostile member could package it, by name."""
    hexed = SECRET.hex()
    b64 = base64.b64encode(SECRET).decode()
    return {
        "binary": {"blob": SECRET},
        "behind one junk byte": {"blob": b"\x00" + SECRET},
        "behind junk bytes": {"blob": b"JUNK\xff\x10" + SECRET + b"tail"},
        "hex": {"note": hexed},
        "upper-case hex after a junk character": {"note": "x" + hexed.upper()},
        "base64": {"note": b64},
        "base64 after a junk character": {"note": "!" + b64},
        "base64 after three junk letters": {"note": "abc" + b64},
        "url-safe base64 with line breaks": {"note": "\n".join(
            base64.urlsafe_b64encode(SECRET).decode()[i:i + 64] for i in range(0, 400, 64))},
        "base64 of hex": {"note": base64.b64encode(hexed.encode()).decode()},
        "hex as bytes": {"blob": hexed.encode()},
        "armored inside text": {"note": "see below\n" + ARMORED + "\nthanks"},
        "nested deep in lists and maps": {"a": [{"b": [1, {"c": b"\x01" + SECRET}]}]},
        "as a map key": {hexed: True},
        "as latin-1 code points": {"note": SECRET.decode("latin-1")},
    }


@pytest.mark.parametrize("form", sorted(hidden_forms()))
def test_hidden_secret_keys_are_refused_on_write_in_every_dataset(agent, form):
    value = encode_value(hidden_forms()[form])
    for dataset in NOT_SECRET_DATASETS:
        with pytest.raises(LocalProtocolError, match="secret key material is not allowed"):
            agent.core.put(dataset, "k", value, agent.clock())
        assert agent.store.get(dataset, "k") is None


def test_hidden_secret_keys_from_a_peer_are_refused_with_the_peer_named(agent):
    version = Version(agent.wall_ms(), 0, PEER)
    records = tuple(
        Record(dataset, f"{dataset}-{index}", encode_value(value), version)
        for index, value in enumerate(hidden_forms().values())
        for dataset in ("groups", "consumers", "mail_settings", "learn_mode")
    )
    agent.core.events()
    agent.core.receive(PEER, Push(1, records), agent.clock())
    refused = [e for e in agent.core.events() if isinstance(e, PeerRefused)]
    assert len(refused) == len(records)
    assert all(e.peer == PEER and "secret key material" in e.reason for e in refused)
    assert all(agent.store.count(d) == 0 for d in ("groups", "consumers", "mail_settings"))


def test_secret_keys_may_live_in_private_keys_and_org_keys(agent):
    value = encode_value({"blob": b"\x00" + SECRET, "note": SECRET.hex()})
    agent.core.put("private_keys", "not-a-fingerprint", value, agent.clock())
    agent.core.put("org_keys", "org-signing-key", value, agent.clock())
    assert agent.store.get("org_keys", "org-signing-key") is not None


def test_honest_binary_and_public_keys_are_not_mistaken_for_secrets(agent):
    rng = random.Random(12)
    for index in range(200):  # encrypted mail bodies look like this: random bytes
        blob = rng.randbytes(rng.randrange(1, 64 * 1024))
        agent.core.put("web_messenger", f"box/{index}", encode_value({"body": blob}),
                       agent.clock())
    cert = ALICE.public_cert
    public = {"cert": cert, "hex": cert.hex(), "b64": base64.b64encode(cert).decode(),
              "junk": b"\x00" + cert, "armored": generate_key("D <d@e.org>", with_secret=False)}
    agent.core.put("groups", "public", encode_value(public), agent.clock())
    assert agent.store.count("web_messenger") == 200


@pytest.mark.parametrize(("dataset", "value", "reason"), [
    ("consumers", {"cert": BOB.public_cert}, "not " + ALICE.fingerprint),
    ("consumers", {"cert": b"not a key"}, "not an OpenPGP key"),
    ("consumers", {"name": "no certificate"}, "needs its key in 'cert'"),
    ("consumers", {"cert": ALICE.public_cert, "fingerprint": BOB.fingerprint}, "fingerprint"),
    ("trusted_keys", {"cert": BOB.public_cert}, "not " + ALICE.fingerprint),
    ("org_keys", {"cert": BOB.secret_key}, "not " + ALICE.fingerprint),
    ("private_keys", {"secret_key": BOB.secret_key}, "not " + ALICE.fingerprint),
    ("private_keys", {"secret_key": ALICE.public_cert}, "no secret key"),
    ("private_keys", {"secret_key": ALICE.secret_key + BOB.secret_key}, "2 keys"),
])
def test_a_record_keyed_by_a_fingerprint_must_carry_that_key(agent, dataset, value, reason):
    with pytest.raises(LocalProtocolError, match=reason):
        agent.core.put(dataset, ALICE.fingerprint, encode_value(value), agent.clock())
    version = Version(agent.wall_ms(), 0, PEER)
    agent.core.events()
    agent.core.receive(PEER, Push(1, (Record(dataset, ALICE.fingerprint.upper(),
                                             encode_value(value), version),)), agent.clock())
    assert [e.peer for e in agent.core.events() if isinstance(e, PeerRefused)] == [PEER]
    assert agent.store.count(dataset) == 0


def test_the_right_key_under_its_fingerprint_is_accepted(agent):
    now = agent.clock()
    agent.core.put("consumers", ALICE.fingerprint, encode_value(
        {"cert": ALICE.public_cert, "fingerprint": ALICE.fingerprint}), now)
    agent.core.put("private_keys", ALICE.fingerprint,
                   encode_value({"secret_key": ALICE.secret_key}), now)
    agent.core.put("trusted_keys", BOB.fingerprint, encode_value({"cert": BOB.public_cert}), now)
    assert agent.store.count("consumers") == agent.store.count("private_keys") == 1


def test_a_failing_control_request_logs_and_returns_no_secret(agent, monkeypatch, caplog):
    async def broken(agent, request):
        raise RuntimeError(f"bug while handling {request!r}")

    monkeypatch.setitem(control_api._VERBS, "put", broken)
    armored = ARMORED
    request = {"verb": "put", "dataset": "private_keys", "key": "k",
               "value": {"secret_key": armored}, armored: "as a name"}
    with caplog.at_level(logging.DEBUG):
        reply = trio.run(control._answer, agent, request, "tester")
    assert reply["ok"] is False and "internal error: RuntimeError" in reply["error"]
    body = max(armored.splitlines(), key=len)  # a line of the key's base64
    assert body not in reply["error"] and "PRIVATE KEY" not in reply["error"]
    assert "put(" in caplog.text and "RuntimeError" in caplog.text
    assert body not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_refusal_reasons_never_quote_the_refused_value(agent):
    import cbor2

    version = Version(agent.wall_ms(), 0, PEER)
    values = [
        cbor2.dumps({SECRET: 1}, canonical=True),  # a map with a bytes key: not a record value
        encode_value({"cert": SECRET}),
        encode_value({"note": SECRET.hex()}),
    ]
    records = tuple(Record("consumers", ALICE.fingerprint, v, version) for v in values)
    agent.core.events()
    agent.core.receive(PEER, Push(1, records), agent.clock())
    reasons = [e.reason for e in agent.core.events() if isinstance(e, PeerRefused)]
    assert len(reasons) == len(records)
    for reason in reasons:
        assert SECRET.hex()[:32] not in reason and repr(SECRET)[:40] not in reason
        assert "\\x" not in reason


def mismatched_secret(key):
    """`key`'s transferable secret key with its signing subkey's secret scalar changed (and
    the checksum fixed): it parses, has the right fingerprint, and is not the secret half."""
    tsk = key.secret_key
    for tag, body in packets.iter_packets(tsk):
        if tag == 7 and body[5] == 22:  # Secret-Subkey, EdDSA: the signing subkey
            changed = bytearray(body)
            changed[-3] = (changed[-3] + 1) % 256
            checksum = (int.from_bytes(changed[-2:], "big") + (1 if changed[-3] else -255))
            changed[-2:] = (checksum % 65536).to_bytes(2, "big")
            at = tsk.find(body)
            return tsk[:at] + bytes(changed) + tsk[at + len(body):]
    raise AssertionError("no EdDSA signing subkey")


def test_a_private_key_that_is_not_the_secret_half_of_its_certificate_is_refused(agent):
    forged = mismatched_secret(ALICE)
    assert split_keys(forged)[0].fingerprint == ALICE.fingerprint  # the fingerprint agrees
    with pytest.raises(LocalProtocolError, match="not the secret half"):
        agent.core.put("private_keys", ALICE.fingerprint,
                       encode_value({"secret_key": forged}), agent.clock())
    agent.core.put("private_keys", ALICE.fingerprint,
                   encode_value({"secret_key": ALICE.secret_key}), agent.clock())
