"""`did you mean ...?` for a misspelt field, task, variable or operator name."""

from __future__ import annotations

import difflib
from typing import Any


def suggest(name: str, choices: Any) -> str:
    """`; did you mean 'x'?` for the closest choice, or ""."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
