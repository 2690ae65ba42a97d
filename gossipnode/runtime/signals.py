"""Signals: what each one does to a running agent, and the live reload behind SIGHUP.

Rules:
1. SIGTERM, SIGINT and SIGQUIT leave the cluster gracefully, then the agent exits 0.
2. SIGHUP reloads from the node.toml what can change live: the cluster secrets (so a new
   secret rolls through a running cluster without restarts), the log level and the tags.
   It logs what changed, and what changed in the file but needs a restart. A file that does
   not load (bad TOML, a missing secret file...) keeps the running config, and the log says
   why.
3. SIGUSR1 logs a one-line summary (members, records, quarantine), as serf dumps telemetry.
4. Every other signal whose default action would end the process (SIGUSR2, SIGALRM, the
   real-time signals...) is logged and ignored, and SIGPIPE stays ignored as Python set it:
   no signal but SIGKILL (or SIGSTOP's cousins, which only pause) ends the agent without
   leaving.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import TYPE_CHECKING

import trio

from ..config import ConfigError
from ..core.membership import tags_from_config
from ..identity import IdentityError

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["LEAVE_SIGNALS", "handle_agent_signals", "reload"]

logger = logging.getLogger("gossipnode.agent")

LEAVE_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# Signals whose default action ends the process; each is caught and ignored (rule 4).
# SIGPIPE is not among them: Python ignores it already (a write to a closed socket fails
# with EPIPE), and catching it would log every client that hangs up mid-reply.
_IGNORED = tuple(
    getattr(signal, name) for name in (
        "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGPOLL", "SIGPWR", "SIGXCPU",
        "SIGXFSZ", "SIGSTKFLT",
    ) if hasattr(signal, name)
) + tuple(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
# Settings that only a restart changes: a reload that finds them changed says so.
_RESTART_ONLY = ("name", "data_dir", "listen", "control_socket", "log_format",
                 "metrics_listen", "limits", "replication", "reconcile", "membership", "wire")


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


async def handle_agent_signals(agent: Agent, *,
                               task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                               ) -> None:
    watched = (*LEAVE_SIGNALS, signal.SIGHUP, signal.SIGUSR1, *_IGNORED)
    with trio.open_signal_receiver(*watched) as signals:
        task_status.started()
        async for signum in signals:
            if signum in LEAVE_SIGNALS:
                logger.info("received %s: leaving the cluster", _name(signum))
                agent.stop()
            elif signum == signal.SIGHUP:
                logger.info("received SIGHUP: reloading %s", agent.config_path)
                reload(agent)
            elif signum == signal.SIGUSR1:
                _summary(agent)
            else:
                logger.warning("received %s: ignored (SIGTERM leaves, SIGHUP reloads)",
                               _name(signum))


def reload(agent: Agent) -> list[str]:
    """Apply the live-changeable settings of the node.toml; returns what changed."""
    from .preflight import prepare

    if agent.config_path is None:
        logger.warning("reload: this agent was not started from a file; nothing to reload")
        return []
    try:
        prepared = prepare(agent.config_path)
    except (ConfigError, IdentityError) as error:
        logger.error("reload failed, keeping the running configuration: %s", error)
        return []
    old, new = agent.config, prepared.config
    changes = []
    if prepared.identity.node_id != agent.identity.node_id:
        logger.warning("reload: identity.key changed on disk; the agent keeps its identity "
                       "until it restarts")
    if prepared.secrets != agent.secrets:
        agent.secrets = prepared.secrets
        agent.links.secrets = prepared.secrets
        # Refusals counted under the old secrets say nothing about the new ones: health
        # pages again only if wrong-secret connections keep arriving after the change.
        agent.transport_status.drop_times.pop("wrong_secret", None)
        changes.append(f"cluster secrets ({len(prepared.secrets)} files: "
                       f"{', '.join(str(p) for p in new.secret_files)})")
    if new.log_level != old.log_level:
        logging.getLogger("gossipnode").setLevel(new.log_level.upper())
        changes.append(f"log level {old.log_level} -> {new.log_level}")
    if new.tags != old.tags:
        tags = {k: v for k, v in tags_from_config(new.tags, "").items() if k != "version"}
        agent.input(lambda now: agent.core.set_tags(tags, now))
        changes.append("tags " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))
    needs_restart = [key for key in _RESTART_ONLY if getattr(new, key) != getattr(old, key)]
    agent.config = dataclasses.replace(
        old, secret_files=new.secret_files, log_level=new.log_level, tags=new.tags,
    )
    if changes:
        logger.info("reloaded: %s", "; ".join(changes))
    else:
        logger.info("reloaded: nothing that can change live has changed")
    if needs_restart:
        logger.warning("reload: changed in the file but applied only at restart: %s",
                       ", ".join(needs_restart))
    return changes


def _summary(agent: Agent) -> None:
    snapshot = agent.core.status(agent.clock())
    states: dict[str, int] = {}
    for member in snapshot.members:
        states[member.state] = states.get(member.state, 0) + 1
    logger.info("summary: members %s; quarantined %s; records pending acknowledgement %d",
                ", ".join(f"{k}={v}" for k, v in sorted(states.items())),
                snapshot.quarantined, sum(p.pending_push_records for p in snapshot.peers))
