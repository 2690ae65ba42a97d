"""Text that peers wrote, made safe to print: a module of its own, importing nothing, so
that the CLI's tables escape what they print without loading the membership code."""

from __future__ import annotations

__all__ = ["escape_text"]


def escape_text(text: str) -> str:
    """`text` with every non-printable character (newlines, escape sequences, other control
    characters) written as a Python escape, for logs and tables: what a peer says can then
    never forge a log line or move a terminal's cursor."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
