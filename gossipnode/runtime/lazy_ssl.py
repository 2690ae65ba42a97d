"""The standard `ssl` module, imported when something first uses it, not when Trio imports.

Why: Trio's `trio/_ssl.py` and `trio/_highlevel_ssl_helpers.py` run `import ssl` when
`trio` is imported, but read its attributes only inside functions (TLS streams, which the
agent never opens: peer links are our own handshake on PyNaCl, wire/handshake.py). The
import builds the module's classes and enums and initialises OpenSSL's TLS side (libssl):
1.2 MiB of an idle agent's VmRSS, 36.0 MiB without the stand-in and 34.8 with it (a lone
agent, Python 3.11, OpenSSL 3; `scripts/bench_cli.py --memory`, the "Trio" line: 4.0 MiB
without, 2.8 with), for nothing, in every agent. libcrypto stays loaded: hashlib and hmac
(ours and Trio's) load it. `importlib.util.LazyLoader` cannot do this on Python 3.11:
`import ssl` reads the module's `__spec__`, which loads a lazily-loaded module at once.

Rules:
1. `install()` puts a `LazySsl` stand-in at `sys.modules["ssl"]`, only when `ssl` is not
   imported yet and both `ssl` and its extension `_ssl` can be found (where the real import
   would fail, it still fails at the same `import ssl`). runtime/__init__.py calls it, so it
   runs before any module of the agent imports Trio.
2. The stand-in holds the module's own names (`__name__`, `__spec__`, `__file__`,
   `__loader__`, `__package__`, those `import` itself reads), so `import ssl` returns it
   without loading anything. Any other attribute read, written, deleted or listed imports
   the real module (once, under a lock), makes it `sys.modules["ssl"]` (every later
   `import ssl` gets the real module itself), and is then done on the real module: a
   module that imported the stand-in (Trio) sees exactly the real module's attributes,
   including ones changed later. `from ssl import *` through it takes the names it takes
   from the real module (which has no `__all__`).
3. Nothing else changes: a program that uses TLS (a test, a library) gets the real module
   on its first use; tests/runtime/test_agent_imports.py checks a TLS context and a Trio
   TLS stream made through the stand-in, and that an agent serving a peer has not loaded
   `_ssl`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types

__all__ = ["LazySsl", "install"]

NAME = "ssl"
# Attributes `import` reads and the stand-in answers itself (rule 2).
OWN = ("__name__", "__spec__", "__file__", "__loader__", "__package__")
_lock = threading.Lock()


class LazySsl(types.ModuleType):
    """Rule 2: `ssl`, imported on first use; then every attribute is the real module's."""

    def __init__(self, spec: importlib.machinery.ModuleSpec) -> None:
        super().__init__(NAME)
        own = self.__dict__
        del own["__doc__"]  # the real module's, read when asked
        own.update(__spec__=spec, __file__=spec.origin, __loader__=spec.loader,
                   __package__="")  # fmt: skip

    def __getattr__(self, name: str) -> object:  # only names the stand-in lacks
        real = _real(self)
        if name == "__all__" and not hasattr(real, "__all__"):
            # `from ssl import *` through the stand-in: without `__all__` it would take
            # the stand-in's own names; these are the names it takes from the real module.
            return [key for key in vars(real) if not key.startswith("_")]
        return getattr(real, name)

    def __setattr__(self, name: str, value: object) -> None:
        setattr(_real(self), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(_real(self), name)

    def __dir__(self) -> list[str]:
        return dir(_real(self))


def _real(stand_in: LazySsl) -> types.ModuleType:
    """The real `ssl`, imported by the first caller (rule 2)."""
    real = stand_in.__dict__.get("_real_module")
    if real is not None:
        return real
    with _lock:
        real = stand_in.__dict__.get("_real_module")
        if real is None:
            if sys.modules.get(NAME) is stand_in:
                del sys.modules[NAME]
            try:
                real = importlib.import_module(NAME)
            except BaseException:
                sys.modules.setdefault(NAME, stand_in)
                raise
            stand_in.__dict__["_real_module"] = real
    return real


def install() -> bool:
    """Rule 1: put the stand-in in place; whether it did."""
    if NAME in sys.modules:
        return False
    finder = importlib.machinery.PathFinder
    spec = finder.find_spec(NAME)
    extension = "_ssl" in sys.builtin_module_names or finder.find_spec("_ssl") is not None
    if spec is None or spec.origin is None or not extension:
        return False
    sys.modules[NAME] = LazySsl(spec)
    return True
