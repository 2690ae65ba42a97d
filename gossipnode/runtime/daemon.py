"""`gossipnode agent` as a process: lock the data directory, make it private, open the
store, run the agent, and turn every start-up failure into one line (`StartupError`).

Order matters (rules of runtime/datadir.py): the umask first, so that every file the agent
creates is private; then the checks `validate` runs, which take the directory's lock as
soon as the directory is known usable, before anything in it is opened or written; then the
permission fix-up, logged in one line; then the store. Once the agent serves, what
start-up freed on the C heap goes back to the system (runtime/free_memory.py).
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from ..config import NodeConfig
from ..storage import StoreError
from .agent import Agent
from .datadir import DataDirBusy, DataDirLock, lock_data_dir, make_private
from .free_memory import release_free_heap
from .logs import LogTail
from .preflight import prepare
from .store_choice import open_store

__all__ = ["AgentFailed", "StartupError", "run_agent"]

logger = logging.getLogger("gossipnode.agent")

# Files the agent creates are readable by its own user only (rule 2 of datadir.py).
PRIVATE_UMASK = 0o077


class StartupError(Exception):
    """The agent cannot start; `str()` is one line for the operator (exit code 2)."""


class AgentFailed(Exception):
    """The agent stopped while serving because its disk or store failed (a sync, a commit):
    what it had not made durable was never acknowledged. The message is one line."""


def run_agent(config_path: Path, log_tail: LogTail | None = None) -> None:
    """Check the node.toml at `config_path` (exactly as `validate` does), then run the node
    until SIGTERM/SIGINT. Raises ConfigError or IdentityError (what `validate` would say),
    or StartupError when it cannot start, AgentFailed when its disk or store fails while
    it serves."""
    # The imports are done (`gossipnode agent` makes them with the collector off: cli.main).
    # One collection frees the cycles they left (fewer than a tenth of their objects; it
    # costs less than the dozens of collections the imports would otherwise have run);
    # what remains lives as long as the process: frozen, it is never walked again by a
    # collection, during the join or after.
    gc.collect()
    gc.freeze()
    gc.enable()
    os.umask(PRIVATE_UMASK)
    locks: list[DataDirLock] = []

    def lock(config: NodeConfig) -> None:
        try:
            locks.append(lock_data_dir(config.data_dir))
        except DataDirBusy as error:
            raise StartupError(str(error)) from None
        except OSError as error:
            raise StartupError(f"{config.data_dir}: cannot lock the data directory: "
                               f"{error.strerror or error}") from None

    try:
        prepared = prepare(config_path, before_reading=lock)
        config = prepared.config
        try:
            fixed = make_private(config.data_dir)
            if fixed:
                logger.warning("made the data directory private: %s", ", ".join(fixed))
            store = open_store(config)
        except StoreError as error:
            raise StartupError(str(error)) from None
        except OSError as error:
            raise StartupError(f"{error.filename or config.data_dir}: "
                               f"{error.strerror or error}") from None

        def build() -> Agent:
            try:
                return Agent(config, prepared.identity, prepared.secrets, store,
                             log_tail=log_tail, config_path=config_path)
            except (OSError, StoreError) as error:
                store.close()
                raise StartupError(_one_line(error)) from None

        _run(build)
    finally:
        for held in locks:
            held.release()


def _run(build: Callable[[], Agent]) -> None:
    """Build the agent inside the Trio run (it reads Trio's clock) and run it; once it
    serves, the C heap's free memory goes back to the system (runtime/free_memory.py)."""
    agents: list[Agent] = []

    async def main() -> None:
        agents.append(build())
        async with trio.open_nursery() as nursery:
            await nursery.start(agents[0].run)
            release_free_heap()  # what start-up freed (runtime/free_memory.py)

    try:
        trio.run(main)
    except BaseException as error:  # sorted below; re-raised unless a start-up failure
        leaves = list(_leaves(error))
        expected = all(isinstance(e, OSError | StoreError) for e in leaves)
        serving = bool(agents) and agents[0].serving
        if not serving and leaves and expected:
            raise StartupError(_one_line(leaves[0])) from None
        if serving and leaves and expected:
            raise AgentFailed(_one_line(leaves[0])) from error
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
