"""Which module registers each verb of the `gossipnode` command, so that a run imports the
module of the verb it names and no other (cli.py `main`): `status` does not load the agent,
nor `agent` the client verbs (the better part of a MiB resident, in every agent).

tests/commands/test_cli_imports.py holds the table to what the modules register. This
module imports nothing: `main` reads it before it knows what else to load.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["VERB_MODULES", "VERB_MODULE_ORDER", "verb_of"]

# Modules that add verbs with @verb, in the order `--help` lists their verbs.
VERB_MODULE_ORDER: tuple[str, ...] = (
    "gossipnode.commands.setup_verbs",
    "gossipnode.commands.agent",
    "gossipnode.commands.status_verbs",
    "gossipnode.commands.data_verbs",
    "gossipnode.commands.keys_verbs",
    "gossipnode.commands.admin_verbs",
    "gossipnode.commands.trust_verbs",
    "gossipnode.commands.membership_verbs",
)

_STATUS = "gossipnode.commands.status_verbs"
_DATA = "gossipnode.commands.data_verbs"
_TRUST = "gossipnode.commands.trust_verbs"
_ADMIN = "gossipnode.commands.admin_verbs"
_MEMBERSHIP = "gossipnode.commands.membership_verbs"
_SETUP = "gossipnode.commands.setup_verbs"
# Verb -> the module that registers it.
VERB_MODULES: dict[str, str] = {
    "datasets": _SETUP, "keygen": _SETUP, "init": _SETUP, "validate": _SETUP,
    "agent": "gossipnode.commands.agent",
    "members": _STATUS, "status": _STATUS, "info": _STATUS, "health": _STATUS,
    "metrics": _STATUS, "monitor": _STATUS,
    "put": _DATA, "get": _DATA, "delete": _DATA, "list": _DATA,
    "keys": "gossipnode.commands.keys_verbs",
    "admit": _TRUST, "grant": _TRUST, "revoke": _TRUST, "admin": _TRUST,
    "policy": _ADMIN, "tags": _ADMIN, "repair": _ADMIN, "reseed": _ADMIN, "owners": _ADMIN,
    "join": _MEMBERSHIP, "leave": _MEMBERSHIP, "force-leave": _MEMBERSHIP,
}


def verb_of(words: Sequence[str]) -> str | None:
    """The verb a run names: its first word, if that is a verb (argparse takes the first
    word that is no option of the command's own as the verb; an option first means help,
    the version, or an error, which list every verb)."""
    return words[0] if words and words[0] in VERB_MODULES else None
