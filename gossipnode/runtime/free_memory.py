"""Giving the C heap's free memory back to the system once the agent has started.

Why: start-up (the imports, the configuration, building the core and opening the store)
frees much of what it allocates, but glibc's allocator returns freed memory to the system
only from the top of its heap, and only past a threshold that grows with the largest block
ever freed: what start-up freed below a block still in use stays resident, in every agent,
for as long as it runs. An idle agent at about 35 MiB VmRSS gives back about 0.6 MiB
(measured on Linux with glibc, Python 3.11: scripts/bench_cli.py, "idle RSS"); the memory
is not used again by an idle agent, and a busy one takes it back from the system as it
needs it.

Rules:
1. `release_free_heap()` asks the C library to return every free page of its heap
   (glibc's `malloc_trim(0)`; Python's own small-object arenas are returned by Python
   when empty). With a C library that has no `malloc_trim` it does nothing and returns
   False. It frees nothing that is in use: the program runs on exactly as before.
2. runtime/daemon.py calls it once, when the agent serves (after start-up).
"""

from __future__ import annotations

import ctypes

__all__ = ["release_free_heap"]


def release_free_heap() -> bool:
    """Rule 1: whether the C library was asked to (it has `malloc_trim`)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # no such function (not glibc)
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
