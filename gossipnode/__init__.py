"""gossipnode: a replicated cluster node for PGP key-management servers."""

__version__ = "0.1.0"
