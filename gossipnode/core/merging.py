"""Per-dataset value merges: where a record is applied, two live versions may merge.

Most datasets keep last-writer-wins (records.py). A dataset with a merge function (the
OpenPGP certificate datasets: the function comes from the shell, the core never parses a
value) combines two live records of one key instead:

1. Tombstones follow last-writer-wins: a delete beats older versions, a newer write beats a
   delete. Only two live records merge.
2. The result has the higher version of the two and the value `merge(older, newer)`, where
   "newer" is the record that wins last-writer-wins. Two replicas that exchange their
   records therefore converge to the same (version, value), whatever the order, provided
   the merge function is commutative, associative and idempotent on its union.
3. The stored record is replaced only if the result differs from it. A local write that
   merges to the stored value changes nothing: no new version, nothing to replicate.
4. A merged value over the record size limit is not stored: last-writer-wins decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..config import LimitsConfig
from .records import Record, wins
from .store import Resolve

__all__ = ["ValueMerge", "resolver"]

# merge(older value, newer value) -> merged value; both encoded record values.
ValueMerge = Callable[[bytes, bytes], bytes]


def resolver(merges: Mapping[str, ValueMerge], limits: LimitsConfig, *,
             local: bool) -> Resolve:
    """The store's resolve function for one batch; `local`: the batch is this node's own
    writes (rule 3)."""

    def resolve(incoming: Record, stored: Record | None) -> Record | None:
        merge = merges.get(incoming.dataset)
        if (merge is None or stored is None or incoming.value is None
                or stored.value is None):
            return incoming if wins(incoming, stored) else None
        newer, older = (incoming, stored) if wins(incoming, stored) else (stored, incoming)
        assert newer.value is not None and older.value is not None
        value = merge(older.value, newer.value)
        if value == stored.value and (local or newer is stored):
            return None
        merged = Record(incoming.dataset, incoming.key, value, newer.version)
        if merged.size_bytes > limits.record_bytes_max:
            return None if newer is stored else newer
        return None if merged == stored else merged

    return resolve
