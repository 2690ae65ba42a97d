"""What an agent decides at start-up: incarnation, replica generation after a restore."""

import shutil
import subprocess
import sys

from gossipnode.config import NodeConfig
from gossipnode.identity import create_identity, generate_secret, load_identity
from gossipnode.runtime.agent import Agent
from gossipnode.storage import SqliteStore


def start(directory):
    """Start-up only (the agent's services are not run); call inside a Trio run."""
    config = NodeConfig(name="a", data_dir=directory, listen=("127.0.0.1", 7946))
    identity_file = directory / "identity.key"
    if not identity_file.exists():
        create_identity(identity_file)
    agent = Agent(config, load_identity(identity_file), (generate_secret(),),
                  SqliteStore(config.store_file))
    agent.store.close()
    return agent


def incarnation(agent):
    return next(m.incarnation for m in agent.core.members() if m.node_id == agent.core.node_id)


async def test_restarts_get_higher_incarnations_and_keep_the_generation(tmp_path):
    first = start(tmp_path)
    second = start(tmp_path)
    assert incarnation(second) > incarnation(first)
    assert first.core.generation == second.core.generation == 1
    assert second.core.tags["generation"] == "1"


async def test_a_store_restored_from_a_backup_starts_a_new_replica_generation(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    start(live)
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(live / "store.sqlite3", backup)
    assert start(live).core.generation == 1  # runs on, restarts...
    # ...then the disk holding the store dies, and the operator restores the backup.
    shutil.copy(backup, live / "store.sqlite3")
    for leftover in ("store.sqlite3-wal", "store.sqlite3-shm"):
        (live / leftover).unlink(missing_ok=True)
    restored = start(live)
    assert restored.core.generation == 2
    assert restored.core.tags["generation"] == "2"
    assert start(live).core.generation == 2  # once recorded, it stays


async def test_a_store_copied_from_another_node_starts_a_new_generation(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        start(tmp_path / name)
    shutil.copy(tmp_path / "a" / "store.sqlite3", tmp_path / "b" / "store.sqlite3")
    assert start(tmp_path / "b").core.generation == 2


def test_an_agent_starts_without_the_openpgp_and_http_code():
    """What an idle agent never uses is not loaded at start-up: pysequoia (several MiB) is
    imported by the first OpenPGP request or certificate, h11 only with metrics or HKP."""
    program = (
        "import sys, trio\n"
        "from gossipnode import cli\n"
        "cli._load_verbs()\n"
        "from gossipnode.runtime import control, control_api, daemon\n"
        "from gossipnode.driving import core_arguments\n"
        "core_arguments()\n"
        "print(sorted(m for m in ('pysequoia', 'h11') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_lazily_registered_key_verbs_are_the_key_api_verbs():
    from gossipnode.runtime.control_api import KEY_VERB_NAMES
    from gossipnode.runtime.keys_api import KEY_VERBS

    assert set(KEY_VERB_NAMES) == set(KEY_VERBS)
