"""runtime/free_memory.py: what the C heap freed below a block still in use goes back to
the system, and nothing in use is lost. Run in a fresh interpreter, whose heap holds only
what the test puts there."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from tests.commands.conftest import REPOSITORY, environment

# 400 blocks of 64 KiB (25 MiB, on glibc's heap: under its mmap threshold), each followed
# by a 1 KiB block (also on the heap) that stays: freeing the big ones leaves holes that
# the heap's top cannot give back.
PROGRAM = """
import json, sys
from gossipnode.runtime.free_memory import release_free_heap

def anon_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

big, kept = [], []
for index in range(400):
    big.append(bytes([index % 256]) * 65536)
    kept.append(bytes([index % 256]) * 1024)
del big
freed = anon_kib()
done = release_free_heap()
after = anon_kib()
intact = all(block == bytes([index % 256]) * 1024 for index, block in enumerate(kept))
print(json.dumps({"done": done, "given_back_kib": freed - after, "intact": intact}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim and /proc are glibc's and Linux's")
def test_memory_freed_below_blocks_in_use_goes_back_and_what_is_in_use_stays():
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPOSITORY,
                            env=environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["done"] and report["intact"]
    assert report["given_back_kib"] > 20 * 1024  # of the 25 MiB freed
