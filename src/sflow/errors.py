"""Error types shared by every layer.

A `UserError` is a mistake in the user's input (YAML, flags, a plan that cannot fit):
the CLI prints its message on one line and exits with code 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class SflowError(Exception):
    """Base of every error sflow raises on purpose."""


class UserError(SflowError):
    """A mistake in the user's input; shown without a traceback, exit code 2."""


class SpecError(UserError):
    """Invalid workflow YAML. `where` is `file:line` and `field` the dotted path of the field."""

    def __init__(self, message: str, where: str | None = None, field: str | None = None) -> None:
        self.message = message
        self.where = where
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        head = ": ".join(part for part in (self.where, self.field) if part)
        return f"{head}: {self.message}" if head else self.message


class PlanError(UserError):
    """A workflow that is valid YAML but cannot be planned (cycle, placement that cannot fit)."""


class BackendError(SflowError):
    """A backend could not provide or release its allocation."""


def suggest(name: str, choices: Iterable[Any]) -> str:
    """`; did you mean 'x'?` for the choice closest to a misspelt name, or ""."""
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
