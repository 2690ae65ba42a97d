"""Reading a node.toml: `load_config` turns the file into a checked `NodeConfig`.

The agent and `gossipnode validate` both load through here, so a file that validates is
exactly the file the agent runs. Every key is checked against the annotation of the
dataclass field it sets (config.py); a key that no dataclass declares is an error, never
silently ignored; then the rules across settings (config_rules.py) apply. Errors are one
line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

from .config import (
    LOG_FORMATS,
    LOG_LEVELS,
    RESERVED_TAGS,
    ConfigError,
    LimitsConfig,
    MembershipConfig,
    NodeConfig,
    ReconcileConfig,
    ReplicationConfig,
    StorageConfig,
    TagsConfig,
    WireConfig,
    parse_address,
    parse_admin_key,
)
from .config_rules import check_config

__all__ = ["load_config"]


def load_config(path: str | Path) -> NodeConfig:
    """Read and check a node.toml. Relative paths are taken relative to the file's folder.

    Raises:
        ConfigError: one line naming the file and, where there is one, the key.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    base = path.resolve().parent
    try:
        return _build(document, base)
    except _KeyError as error:
        raise ConfigError(f"{path}: {error.key}: {error.reason}") from None


class _KeyError(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason


_SECTIONS = {
    "tags": TagsConfig,
    "limits": LimitsConfig,
    "replication": ReplicationConfig,
    "reconcile": ReconcileConfig,
    "membership": MembershipConfig,
    "wire": WireConfig,
    "storage": StorageConfig,
}


def _build(document: dict[str, typing.Any], base: Path) -> NodeConfig:
    values: dict[str, typing.Any] = {}
    for key, raw in document.items():
        if key in _SECTIONS:
            values[key] = _section(key, _SECTIONS[key], raw)
        elif key == "name":
            values[key] = _name(raw)
        elif key == "data_dir":
            values[key] = _path(key, raw, base)
        elif key == "listen":
            values[key] = _address(key, raw)
        elif key == "join":
            if not isinstance(raw, list):
                raise _KeyError(key, "expected a list of HOST:PORT strings")
            values[key] = tuple(_address(f"join[{i}]", item) for i, item in enumerate(raw))
        elif key == "secret_files":
            if not isinstance(raw, list) or not raw:
                raise _KeyError(key, "expected a non-empty list of file paths")
            values[key] = tuple(_path(f"secret_files[{i}]", p, base) for i, p in enumerate(raw))
        elif key == "control_socket":
            values[key] = _path(key, raw, base)
        elif key == "address_map":
            if not isinstance(raw, dict):
                raise _KeyError(key, "expected a table of \"HOST:PORT\" = \"HOST:PORT\"")
            values[key] = tuple(
                (_address(f"{key}.{advertised}", advertised),
                 _address(f"{key}.{advertised}", dialled))
                for advertised, dialled in raw.items()
            )
        elif key == "admin_keys":
            if not isinstance(raw, list):
                raise _KeyError(key, "expected a list of administrator public keys (base64)")
            values[key] = tuple(_admin_key(f"{key}[{i}]", item) for i, item in enumerate(raw))
        elif key == "metrics_listen":
            values[key] = _address(key, raw)
        elif key == "log_level":
            if raw not in LOG_LEVELS:
                raise _KeyError(key, f"expected one of {', '.join(LOG_LEVELS)}, got {raw!r}")
            values[key] = raw
        elif key == "hkp_listen":
            values[key] = _address(key, raw)
        elif key == "hkp_accept_uploads":
            if not isinstance(raw, bool):
                raise _KeyError(key, f"expected true or false, got {raw!r}")
            values[key] = raw
        elif key == "log_format":
            if raw not in LOG_FORMATS:
                raise _KeyError(key, f"expected one of {', '.join(LOG_FORMATS)}, got {raw!r}")
            values[key] = raw
        else:
            raise _KeyError(key, "unknown key")
    for required in ("name", "data_dir", "listen", "secret_files"):
        if required not in values:
            raise _KeyError(required, "missing")
    config = NodeConfig(**values)
    problem = check_config(config)
    if problem is not None:
        raise _KeyError(*problem)
    return config


def _section(name: str, cls: type, raw: typing.Any) -> typing.Any:
    if not isinstance(raw, dict):
        raise _KeyError(name, "expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if name == "tags" and key in RESERVED_TAGS:
            raise _KeyError(f"{name}.{key}", "reserved: the agent sets this tag itself")
        if key not in known:
            raise _KeyError(f"{name}.{key}", "unknown key")
        values[key] = _typed(f"{name}.{key}", hints[key], value)
    return cls(**values)


def _typed(key: str, hint: typing.Any, value: typing.Any) -> typing.Any:
    """Check one scalar setting against its annotation; numbers must not be negative."""
    if hint is bool:
        if not isinstance(value, bool):
            raise _KeyError(key, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _KeyError(key, f"expected an integer, got {value!r}")
        if value < 0:
            raise _KeyError(key, f"must not be negative, got {value}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _KeyError(key, f"expected a number, got {value!r}")
        if value < 0:
            raise _KeyError(key, f"must not be negative, got {value}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _KeyError(key, f"expected a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (str,):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _KeyError(key, f"expected a list of strings, got {value!r}")
        return tuple(value)
    raise _KeyError(key, f"unsupported setting type {hint!r}")  # pragma: no cover


def _admin_key(key: str, raw: typing.Any) -> bytes:
    if not isinstance(raw, str):
        raise _KeyError(key, "expected a base64 string")
    try:
        return parse_admin_key(raw)
    except ValueError as error:
        raise _KeyError(key, str(error)) from None


def _name(raw: typing.Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 64 or not raw.isprintable():
        raise _KeyError("name", "expected a printable string of 1 to 64 characters")
    if any(c.isspace() for c in raw):
        raise _KeyError("name", f"must not contain spaces, got {raw!r}")
    return raw


def _path(key: str, raw: typing.Any, base: Path) -> Path:
    if not isinstance(raw, str) or not raw:
        raise _KeyError(key, "expected a path string")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else base / path


def _address(key: str, raw: typing.Any) -> tuple[str, int]:
    try:
        return parse_address(raw)
    except ValueError as error:
        raise _KeyError(key, f"bad address: {error}") from None
