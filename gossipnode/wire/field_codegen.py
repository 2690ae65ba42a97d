"""Straight-line field codecs for one message class, generated once at registration.

`MessageRegistry` (messages.py) compiles each dataclass into per-field closures and loops
over them. Membership traffic is mostly lists of small statements (a full state of a
thousand members is a thousand `Alive`s of seven fields), and there the loop, not the
checks, was most of the cost: a call per field and a list built per statement. This module
writes, per class, one function that checks each scalar field inline (the very checks of
messages.py's `_scalar` and `_sized`) and calls the closures only for nested fields.

Errors are unchanged by construction: the generated code is only a fast path. Whenever
an inline check fails, it hands the whole value to the loop version (`slow`), which runs
the same checks in the same field order and raises the same error with the same text.

The source names everything that differs between two uses of one class (its field path for
errors, the nested codecs) through the namespace it runs in, so one class nested in many
messages (a member statement in every membership message) is compiled to bytecode once
(`_compiled`); each use only runs that bytecode in its own namespace.

A frozen dataclass with slots and the `__init__` dataclasses wrote for it (no
`__post_init__`) is built as that `__init__` builds it, without the call: a new instance
whose slots are set one by one through their descriptors (what the generated `__init__`
does through `object.__setattr__`, one attribute lookup and call more per field). Every
decoded statement and message is built so; any other class is called as before.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Callable, Sequence
from typing import Any

from ..core.schema import Limit

__all__ = ["generate", "generate_pair", "inline_check"]

# Distinct generated sources kept compiled: one per message class and nested class (a few
# dozen in the peer and handshake protocols); a registry with other limits makes others.
COMPILED_SOURCES_MAX = 512


@functools.lru_cache(maxsize=COMPILED_SOURCES_MAX)
def _compiled(source: str) -> typing.Any:
    return compile(source, "<string>", "exec")


def inline_check(hint: Any, *, bytes_max: int, text_bytes_max: int, int_min: int,
                 int_max: int) -> str | None:
    """The inline check of a scalar field: a Python expression in `{v}`, the field's value,
    true exactly when messages.py's `_scalar` or `_sized` codec of `hint` accepts the value
    (same defaults, same `Limit`). None for any other hint (it keeps its closure)."""
    limit = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        limits = [extra for extra in extras if isinstance(extra, Limit)]
        limit = limits[0] if limits else None
    if hint is bool:
        return "type({v}) is bool"
    if hint is int:
        return f"type({{v}}) is int and {int_min} <= {{v}} <= {int_max}"
    if hint is float:
        return "type({v}) is float and _isfinite({v})"
    if hint is str:
        limit = limit or Limit(text_bytes_max)
        # messages.py `_utf8_length`: ASCII text is as long in UTF-8 as in Python.
        return (f"type({{v}}) is str and {limit.minimum} <= "
                f"(len({{v}}) if {{v}}.isascii() else len({{v}}.encode())) <= {limit.maximum}")
    if hint is bytes:
        limit = limit or Limit(bytes_max)
        return f"type({{v}}) is bytes and {limit.minimum} <= len({{v}}) <= {limit.maximum}"
    return None


def generate(
    cls: type,
    names: Sequence[str],
    checks: Sequence[str | None],
    encoders: Sequence[Callable[[Any], Any]],
    decoders: Sequence[Callable[[Any], Any]],
    check: Callable[[str, list[Any]], None] | None,
    where: str,
    slow_encode: Callable[[Any], Any],
    slow_decode: Callable[[Any], Any],
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(encode_fields, decode_fields) for `cls`, equal in result and errors to
    `slow_encode` and `slow_decode`. `checks[i]` is field i's inline check, or None for a
    field that goes through `encoders[i]` / `decoders[i]`."""
    count = len(names)
    values = [f"v{i}" for i in range(count)]
    namespace: dict[str, Any] = {
        "_cls": cls, "_check": check, "_where": where, "_isfinite": math.isfinite,
        "_slow_encode": slow_encode, "_slow_decode": slow_decode,
    }
    encode_lines = ["def encode_fields(value):",
                    "    if type(value) is not _cls:",
                    "        return _slow_encode(value)"]
    decode_lines = ["def decode_fields(raw):",
                    f"    if not isinstance(raw, list) or len(raw) != {count}:",
                    "        return _slow_decode(raw)"]
    if count:
        decode_lines.append(f"    {', '.join(values)}{',' if count == 1 else ''} = raw")
    for i, (name, inline) in enumerate(zip(names, checks, strict=True)):
        value = values[i]
        if inline is None:
            namespace[f"_e{i}"] = encoders[i]
            namespace[f"_d{i}"] = decoders[i]
            encode_lines.append(f"    {value} = _e{i}(value.{name})")
            decode_lines.append(f"    {value} = _d{i}({value})")
        else:
            test = inline.format(v=value)
            encode_lines += [f"    {value} = value.{name}",
                             f"    if not ({test}):",
                             "        return _slow_encode(value)"]
            decode_lines += [f"    if not ({test}):",
                             "        return _slow_decode(raw)"]
    encode_lines.append(f"    return [{', '.join(values)}]")
    if check is not None:
        decode_lines.append(f"    _check(_where, [{', '.join(values)}])")
    if _plain_slots(cls, names):
        for i, name in enumerate(names):
            namespace[f"_s{i}"] = getattr(cls, name).__set__
        decode_lines.append("    value = _new(_cls)")
        decode_lines += [f"    _s{i}(value, {value})" for i, value in enumerate(values)]
        decode_lines.append("    return value")
        namespace["_new"] = object.__new__
    else:
        decode_lines.append(f"    return _cls({', '.join(values)})")
    exec(_compiled("\n".join(encode_lines) + "\n" + "\n".join(decode_lines)), namespace)
    return namespace["encode_fields"], namespace["decode_fields"]


def _plain_slots(cls: type, names: Sequence[str]) -> bool:
    """Does `cls(*values)` only store each value in its slot (see the module docstring)?
    A dataclass whose fields are exactly `names`, each in a slot, and whose `__init__` is
    the one dataclasses generated (its code comes from a string), with no `__post_init__`
    and no custom `__new__`."""
    if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
        return False
    if cls.__new__ is not object.__new__ or tuple(getattr(cls, "__slots__", ())) != tuple(names):
        return False
    if [f.name for f in dataclasses.fields(cls)] != list(names):
        return False
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    return code is not None and code.co_filename == "<string>" and all(
        type(getattr(cls, name, None)).__name__ == "member_descriptor" for name in names)


def generate_pair(
    checks: Sequence[str], slow_encode: Callable[[Any], Any], slow_decode: Callable[[Any], Any]
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(encode, decode) of a `tuple[A, B]` of two scalars with inline `checks`, equal in
    result and errors to `slow_encode` and `slow_decode` (messages.py `_pair`)."""
    first, second = (check.format(v=name) for check, name in zip(checks, ("a", "b"), strict=True))
    source = "\n".join([
        "def encode(value):",
        "    if type(value) is not tuple or len(value) != 2:",
        "        return _slow_encode(value)",
        "    a, b = value",
        f"    if not ({first}) or not ({second}):",
        "        return _slow_encode(value)",
        "    return [a, b]",
        "def decode(raw):",
        "    if not isinstance(raw, list) or len(raw) != 2:",
        "        return _slow_decode(raw)",
        "    a, b = raw",
        f"    if not ({first}) or not ({second}):",
        "        return _slow_decode(raw)",
        "    return (a, b)",
    ])
    namespace: dict[str, Any] = {"_isfinite": math.isfinite, "_slow_encode": slow_encode,
                                 "_slow_decode": slow_decode}
    exec(_compiled(source), namespace)
    return namespace["encode"], namespace["decode"]
