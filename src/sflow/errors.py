"""Error types shared by every layer.

A `UserError` is a mistake in the user's input (YAML, flags, a plan that cannot fit):
the CLI prints its message on one line (one line per mistake when a file has several) and exits
with code 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


class SpecErrors(SpecError):
    """Several mistakes in the workflow files, one per line: `errors` (in file order) are the
    first of them, `total` counts them all. `where`, `field` and `message` are the first one's."""

    def __init__(self, errors: Sequence[SpecError], total: int) -> None:
        self.errors = list(errors)
        self.total = total
        first = self.errors[0]
        super().__init__(first.message, first.where, first.field)

    def _format(self) -> str:
        lines = [f"{self.total} mistakes in the workflow files:"]
        lines += [f"  {error}" for error in self.errors]
        if self.total > len(self.errors):
            lines.append(f"  ... and {self.total - len(self.errors)} more")
        return "\n".join(lines)


class PlanError(UserError):
    """A workflow that is valid YAML but cannot be planned (cycle, placement that cannot fit)."""


class BackendError(SflowError):
    """A backend could not provide or release its allocation."""


def suggest(name: str, choices: Iterable[Any]) -> str:
    """`; did you mean 'x'?` for the choice closest to a misspelt name, or ""."""
    close = closest(name, choices)
    return f"; did you mean '{close}'?" if close else ""


def closest(name: str, choices: Iterable[Any]) -> str | None:
    """The choice `name` is most likely a misspelling of, if any is close enough."""
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None
