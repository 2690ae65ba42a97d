"""`gossipnode agent` as a process: lock the data directory, make it private, open the
store, run the agent, and turn every start-up failure into one line (`StartupError`).

Order matters (rules of runtime/datadir.py): the umask first, so that every file the agent
creates is private; then the directory's lock, before anything in it is opened or written;
then the permission fix-up, logged in one line; then the store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import trio

from ..storage import SqliteStore, StoreError
from .agent import Agent
from .datadir import DataDirBusy, lock_data_dir, make_private
from .logs import LogTail
from .preflight import Prepared

__all__ = ["StartupError", "run_agent"]

logger = logging.getLogger("gossipnode.agent")

# Files the agent creates are readable by its own user only (rule 2 of datadir.py).
PRIVATE_UMASK = 0o077


class StartupError(Exception):
    """The agent cannot start; `str()` is one line for the operator (exit code 2)."""


def run_agent(prepared: Prepared, config_path: Path | None = None,
              log_tail: LogTail | None = None) -> None:
    """Run the node until SIGTERM/SIGINT. Raises StartupError when it cannot start."""
    config = prepared.config
    os.umask(PRIVATE_UMASK)
    try:
        lock = lock_data_dir(config.data_dir)
    except DataDirBusy as error:
        raise StartupError(str(error)) from None
    except OSError as error:
        raise StartupError(f"{config.data_dir}: cannot lock the data directory: "
                           f"{error.strerror or error}") from None
    try:
        try:
            fixed = make_private(config.data_dir)
            if fixed:
                logger.warning("made the data directory private: %s", ", ".join(fixed))
            store = SqliteStore(config.store_file)
        except StoreError as error:
            raise StartupError(str(error)) from None
        except OSError as error:
            raise StartupError(f"{error.filename or config.data_dir}: "
                               f"{error.strerror or error}") from None
        try:
            agent = Agent(config, prepared.identity, prepared.secrets, store,
                          log_tail=log_tail, config_path=config_path)
        except (OSError, StoreError) as error:
            store.close()
            raise StartupError(_one_line(error)) from None
        _run(agent)
    finally:
        lock.release()


def _run(agent: Agent) -> None:
    try:
        trio.run(agent.run)
    except BaseException as error:  # sorted below; re-raised unless a start-up failure
        leaves = list(_leaves(error))
        expected = all(isinstance(e, OSError | StoreError) for e in leaves)
        if not agent.serving and leaves and expected:
            raise StartupError(_one_line(leaves[0])) from None
        raise


def _leaves(error: BaseException):
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__
