"""The Trio shell: the only code that awaits. It moves bytes and time for the sans-IO core.

Importing it first puts the `ssl` stand-in in place (runtime/lazy_ssl.py), so the Trio
that its modules import does not load TLS, which the agent never uses."""

from .lazy_ssl import install as _install_lazy_ssl

_install_lazy_ssl()
