"""Every check that a node.toml and the files it names can run an agent: the one function
both `gossipnode validate` and `gossipnode agent` call, so validate passes exactly when the
agent would start (short of a busy port or a data directory another agent holds, which only
the start itself can find).

Raises ConfigError or IdentityError, whose `str()` is one line for the operator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, NodeConfig
from ..config_file import load_config
from ..identity import Identity, load_identity, load_secret

__all__ = ["Prepared", "prepare"]

# sockaddr_un.sun_path is 108 bytes on Linux, one of them the terminating NUL.
UNIX_SOCKET_PATH_BYTES_MAX = 107


@dataclass(frozen=True, slots=True)
class Prepared:
    config: NodeConfig
    identity: Identity
    secrets: tuple[bytes, ...]


def prepare(path: str | os.PathLike[str], *,
            before_reading: Callable[[NodeConfig], None] | None = None) -> Prepared:
    """Load and check the config at `path` and everything it names.

    `before_reading(config)` runs once the data directory is known to be usable and before
    any file in it is opened: the agent takes the directory's lock there."""
    config = load_config(Path(path))
    data_dir = config.data_dir
    if not data_dir.is_dir():
        raise ConfigError(f"{path}: data_dir: {data_dir} is not a directory "
                          "(create it with `gossipnode init`)")
    if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: data_dir: {data_dir}: permission denied "
                          "(run the agent as the user that owns it)")
    store = config.store_file
    if store.exists() and not os.access(store, os.R_OK | os.W_OK):
        raise ConfigError(f"{store}: the store is not readable and writable by this user")
    socket_path = os.fsencode(config.control_socket_path)
    if len(socket_path) > UNIX_SOCKET_PATH_BYTES_MAX:
        raise ConfigError(f"{path}: control_socket: {config.control_socket_path} is longer "
                          f"than {UNIX_SOCKET_PATH_BYTES_MAX} bytes, the limit of a Unix socket")
    if not config.control_socket_path.parent.is_dir():
        raise ConfigError(f"{path}: control_socket: {config.control_socket_path.parent} "
                          "is not a directory")
    if before_reading is not None:
        before_reading(config)
    secrets = tuple(load_secret(secret) for secret in config.secret_files)
    identity = load_identity(config.identity_file)
    return Prepared(config, identity, secrets)
