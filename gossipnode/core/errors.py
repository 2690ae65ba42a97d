"""The two kinds of protocol error (after h11's `_util.py`).

`RemoteProtocolError`: a peer sent something we cannot accept. The caller drops that peer
(or that session), logs the reason, and carries on.

`LocalProtocolError`: our own API was misused (an unknown dataset, a value over the size
limit, a command in the wrong state). The caller gets a clear message; nothing changed.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of both kinds. `str()` is a one-line reason fit for a log or an operator."""


class LocalProtocolError(ProtocolError):
    """Our API was misused; nothing was changed."""


class RemoteProtocolError(ProtocolError):
    """A peer misbehaved; drop it and carry on."""
