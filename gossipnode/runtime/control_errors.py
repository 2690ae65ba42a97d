"""The one error type of control verbs (its own module, so verb modules share it)."""

from __future__ import annotations

__all__ = ["ControlError"]


class ControlError(Exception):
    """A request the agent cannot carry out; `exit_code` is what the CLI exits with."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
