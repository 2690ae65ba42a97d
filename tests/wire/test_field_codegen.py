"""The generated field codecs (wire/field_codegen.py) against the plain loops they stand in
for: for any value, well-formed or not, the same message out or the same error text."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossipnode.core.errors import LocalProtocolError
from gossipnode.wire import cbor, messages
from gossipnode.wire.messages import Limit, MessageError, MessageRegistry


@dataclass(frozen=True)
class Inner:
    flag: bool
    pairs: tuple[tuple[str, str], ...]
    mixed: tuple[str, int]


@dataclass(frozen=True)
class Outer:
    node: Annotated[bytes, Limit(4, minimum=4)]
    name: Annotated[str, Limit(6, minimum=1)]
    count: int
    ratio: float
    inner: Inner
    inners: tuple[Inner, ...]
    maybe: bytes | None
    tagged: tuple[Annotated[str, Limit(3)], bytes]


def _registry(generated: bool) -> MessageRegistry:
    with pytest.MonkeyPatch.context() as patch:
        if not generated:  # the loops alone, as before the generated fast path
            patch.setattr(messages, "generate", lambda *args: args[-2:])
            patch.setattr(messages, "generate_pair", lambda checks, encode, decode: (encode,
                                                                                     decode))
        registry = MessageRegistry(text_bytes_max=8, bytes_max=16)
        registry.register(1, Outer)
        return registry


FAST, SLOW = _registry(True), _registry(False)


def _outcome(action: Any) -> tuple[str, str]:
    try:
        return "ok", repr(action())
    except (MessageError, LocalProtocolError) as error:
        return type(error).__name__, str(error)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.floats(allow_nan=False), st.text(max_size=10), st.binary(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


def _good_inner() -> list[Any]:
    return [True, [["a", "b"], ["c", "é"]], ["x", 3]]


def _good_outer() -> list[Any]:
    return [b"abcd", "name", 7, 0.5, _good_inner(), [_good_inner()], None, ["ab", b"z"]]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decoding_agrees_with_the_loops_on_any_value(data):
    raw = _good_outer()
    # Replace one to three places of a good message (a field, or a field of a nested
    # item) with anything: the first bad field names the error.
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from([(0,), (1,), (2,), (3,), (4,), (4, 0), (4, 1),
                                          (4, 1, 0), (4, 2), (4, 2, 1), (5,), (5, 0, 1, 1),
                                          (6,), (7,), (7, 0), (7, 1)]))
        target = raw
        for step in path[:-1]:
            if not isinstance(target, list) or len(target) <= step:
                break
            target = target[step]
        else:
            if isinstance(target, list) and len(target) > path[-1]:
                target[path[-1]] = data.draw(values)
    with contextlib.suppress(cbor.CborError):
        encoded = cbor.encode([1, *raw])
        assert _outcome(lambda: FAST.decode(encoded)) == _outcome(lambda: SLOW.decode(encoded))


@settings(max_examples=300, deadline=None)
@given(node=values, name=values, count=values, ratio=values, flag=values, pair=values)
def test_encoding_agrees_with_the_loops_on_any_value(node, name, count, ratio, flag, pair):
    inner = Inner(flag, (("a", "b"), pair), ("x", 1))  # type: ignore[arg-type]
    message = Outer(node, name, count, ratio, inner, (inner,), None, ("ab", b""))  # type: ignore[arg-type]
    assert _outcome(lambda: FAST.encode(message)) == _outcome(lambda: SLOW.encode(message))


def test_a_well_formed_message_round_trips_through_the_generated_codec():
    registry = FAST
    inner = Inner(True, (("a", "b"),), ("x", 1))
    message = Outer(b"abcd", "n", -3, 1.5, inner, (inner, inner), b"m", ("ab", b"z"))
    assert registry.decode(registry.encode(message)) == message


@dataclass(frozen=True, slots=True)
class SlottedInner:
    flag: bool
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Slotted:
    node: bytes
    count: int
    inner: SlottedInner
    inners: tuple[SlottedInner, ...]
    maybe: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """A slotted class whose constructor does more than store its fields."""

    count: int

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("negative count")


def test_slotted_classes_decode_to_what_their_constructor_builds():
    registry = MessageRegistry()
    registry.register(1, Slotted)
    inner = SlottedInner(True, (("k", "v"),))
    message = Slotted(b"id", 5, inner, (inner, SlottedInner(False, ())), "x")
    decoded = registry.decode(cbor.encode([1, b"id", 5, [True, [["k", "v"]]],
                                           [[True, [["k", "v"]]], [False, []]], "x"]))
    assert decoded == message
    assert type(decoded) is Slotted and type(decoded.inner) is SlottedInner
    assert (decoded.node, decoded.count, decoded.maybe) == (b"id", 5, "x")
    with pytest.raises(AttributeError):
        decoded.count = 6  # type: ignore[misc]  # still frozen


def test_a_class_with_post_init_is_still_constructed_by_its_constructor():
    registry = MessageRegistry()
    registry.register(1, Checked)
    assert registry.decode(cbor.encode([1, 3])) == Checked(3)
    with pytest.raises(ValueError, match="negative count"):
        registry.decode(cbor.encode([1, -1]))
