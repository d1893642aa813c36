"""`did you mean ...?` for a misspelt field, task, variable or operator name."""

from __future__ import annotations

import difflib
from typing import Any


def suggest(name: str, choices: Any) -> str:
    """`; did you mean 'x'?` for the closest choice, or ""."""
    close = closest(name, choices)
    return f"; did you mean '{close}'?" if close else ""


def closest(name: str, choices: Any) -> str | None:
    """The choice `name` is most likely a misspelling of, if any is close enough."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None
