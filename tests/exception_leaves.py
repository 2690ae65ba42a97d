"""The exceptions inside nested exception groups, for tests of agents run in a nursery."""

from __future__ import annotations


def exception_leaves(error: BaseException) -> list[BaseException]:
    """Every exception in `error` that is not itself a group (`error` alone if it is not)."""
    leaves = [error]
    while any(isinstance(e, BaseExceptionGroup) for e in leaves):
        leaves = [leaf for e in leaves
                  for leaf in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])]
    return leaves
