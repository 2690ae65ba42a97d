"""The data catalog (docs/architecture.md): every dataset and who may hold it.

A dataset's scope decides which members hold its records:

- `all`: every member.
- `private-key-eligible`: members whose own opt-in tag AND the cluster policy allow it.
- `wep-placement`: for each mailbox, the R owners chosen among the WEP members.
- `local`: only the node that wrote it; never sent, refused if a peer sends it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import LocalProtocolError

__all__ = [
    "DATASETS",
    "LOCAL_DATASETS",
    "REPLICATED_DATASETS",
    "SECRET_KEY_DATASETS",
    "Dataset",
    "Scope",
    "dataset",
    "is_replicated",
]


class Scope(enum.Enum):
    ALL = "all"
    PRIVATE_KEY_ELIGIBLE = "private-key-eligible"
    WEP_PLACEMENT = "wep-placement"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    scope: Scope
    description: str

    @property
    def replicated(self) -> bool:
        return self.scope is not Scope.LOCAL


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "consumers",
        Scope.ALL,
        "internal and external users, devices, their public keys and properties",
    ),
    Dataset(
        "private_keys",
        Scope.PRIVATE_KEY_ELIGIBLE,
        "private keys of internal users, kept apart from consumers",
    ),
    Dataset("groups", Scope.ALL, "group configurations and consumer policies"),
    Dataset(
        "mail_settings",
        Scope.ALL,
        "managed domains and mail settings: policies, dictionaries, archive servers, "
        "message templates",
    ),
    Dataset("directory_sync", Scope.ALL, "directory synchronization settings"),
    Dataset(
        "org_keys",
        Scope.ALL,
        "organization keys and certificates, secret keys included: organization keys are "
        "cluster-wide by design",
    ),
    Dataset("ignition_keys", Scope.ALL, "ignition keys"),
    Dataset("trusted_keys", Scope.ALL, "trusted keys"),
    Dataset("keyservers", Scope.ALL, "configured keyservers"),
    Dataset(
        "web_messenger",
        Scope.WEP_PLACEMENT,
        "WEP mailboxes and their messages, keyed mailbox/message, on R WEP members each",
    ),
    Dataset("learn_mode", Scope.ALL, "Learn Mode state"),
    Dataset(
        "verified_directory",
        Scope.ALL,
        "PGP Verified Directory data, replicated even where the service is off",
    ),
    Dataset(
        "cluster_policy",
        Scope.ALL,
        "the replication policy: per-member private-key permission, WEP replication, "
        "replicas, eligible members",
    ),
    Dataset("network", Scope.LOCAL, "this node's network settings"),
    Dataset("tls_certificates", Scope.LOCAL, "this node's TLS certificates"),
    Dataset("mail_routes", Scope.LOCAL, "this node's mail routes"),
    Dataset("mail_proxies", Scope.LOCAL, "this node's mail proxies"),
)

# The replicated datasets that may hold secret key material; every other one refuses it
# (openpgp/content.py). Organization keys are used by every member, so they go everywhere.
SECRET_KEY_DATASETS = frozenset({"private_keys", "org_keys"})
# The datasets whose values hold one certificate in a `cert` field: two live versions of a
# key merge (openpgp/merge.py) rather than the newer one winning.
CERTIFICATE_DATASETS = ("consumers", "org_keys", "trusted_keys")

_BY_NAME = {d.name: d for d in DATASETS}
REPLICATED_DATASETS: tuple[str, ...] = tuple(d.name for d in DATASETS if d.replicated)
LOCAL_DATASETS: tuple[str, ...] = tuple(d.name for d in DATASETS if not d.replicated)


def dataset(name: str) -> Dataset:
    """The dataset called `name`. Raises LocalProtocolError for an unknown name."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise LocalProtocolError(
            f"unknown dataset {name!r}; known: {', '.join(_BY_NAME)}"
        ) from None


def is_replicated(name: str) -> bool:
    """True for a known replicated dataset; False for local and unknown names."""
    found = _BY_NAME.get(name)
    return found is not None and found.replicated
