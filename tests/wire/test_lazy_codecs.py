"""A registry checks a class at registration and compiles its codecs at its first use
(wire/messages.py rule 1): registering compiles nothing, an unfit class is still refused at
registration, and a class first met in a message long enough to be walked is judged by its
declared structure as if it had been compiled all along."""

from __future__ import annotations

from dataclasses import dataclass

import cbor2
import pytest

from gossipnode.core.errors import LocalProtocolError
from gossipnode.wire import cbor, messages
from gossipnode.wire.messages import MessageError, MessageRegistry
from tests.wire.samples import Batch, Blob, Item, sample_batch, sample_registry


@pytest.fixture
def compiled(monkeypatch):
    """The names of the classes the registry generates field codecs for, in order."""
    names: list[str] = []
    generate = messages.generate

    def spy(cls, *args, **kwargs):
        names.append(cls.__name__)
        return generate(cls, *args, **kwargs)

    monkeypatch.setattr(messages, "generate", spy)
    return names


def test_registration_compiles_nothing_and_each_class_compiles_at_its_first_use(compiled):
    registry = sample_registry()
    assert compiled == []
    data = registry.encode(Item("a", 1, 0.5, True, None))
    assert compiled == ["Item"]
    assert registry.decode(data) == Item("a", 1, 0.5, True, None)
    assert registry.decode(cbor2.dumps([3, b"x"], canonical=True)) == Blob(b"x")
    assert compiled == ["Item", "Blob"]  # Batch, never used, never compiled


def test_a_class_first_decoded_is_compiled_as_one_first_encoded():
    first_decoded, first_encoded = sample_registry(), sample_registry()
    data = first_encoded.encode(sample_batch())
    assert first_decoded.decode(data) == sample_batch()
    assert first_decoded.encode(sample_batch()) == data


@dataclass(frozen=True, slots=True)
class WithTable:
    table: dict


@dataclass(frozen=True, slots=True)
class Nests:
    fine: int
    inner: tuple[WithTable, ...] | None


def test_an_unfit_class_nested_deep_is_refused_at_registration_with_its_path():
    registry = MessageRegistry()
    with pytest.raises(LocalProtocolError,
                       match=r"^Nests\.inner\[\]\.table: unsupported field type"):
        registry.register(1, Nests)
    with pytest.raises(LocalProtocolError, match="not a registered message"):
        registry.encode(Nests(1, None))  # refused, so not registered


def test_a_long_message_of_a_class_not_yet_used_is_refused_by_its_declared_count(monkeypatch):
    registry = sample_registry(walk_bytes_min=512)
    items = [["n", 1, 0.5, True, None]] * 101  # the registry's items_max is 100
    data = cbor2.dumps([2, items, [], [], b"\x11" * 32, None], canonical=True)
    assert len(data) >= 512

    def refuse(*args, **kwargs):
        raise AssertionError("cbor2 decoded the message")

    monkeypatch.setattr(cbor.cbor2, "loads", refuse)
    with pytest.raises(MessageError, match=r"^Batch\.items: 101 items, expected 0 to 100$"):
        registry.decode(data)


def test_a_long_valid_message_of_a_class_not_yet_used_decodes():
    registry = sample_registry(walk_bytes_min=256)
    registry.encode(Blob(b"x"))  # one class compiled, the others not yet
    batch = Batch(items=(Item("n", 1, 0.5, True, b"x" * 40),) * 20, records=(), tags=(),
                  digest=b"\x11" * 32, stamp=None)
    data = sample_registry().encode(batch)
    assert len(data) >= 256
    assert registry.decode(data) == batch
