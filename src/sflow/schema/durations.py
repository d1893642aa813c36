"""Durations as users write them: seconds, `90s`, `5m`, `1h30m`, `1:30:00`, `2-00:00:00`.

Colon forms follow Slurm's `--time` reading: `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
"""

from __future__ import annotations

import math
import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_UNIT_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d)")
_UNIT_FORM = re.compile(r"(?:\d+(?:\.\d+)?\s*(?:ms|sec|min|s|m|h|d)\s*)+")
_CLOCK_FORM = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+(?:\.\d+)?))?")


def parse_duration(value: Any) -> float:
    """Seconds in `value`; raises ValueError for anything that is not a non-negative duration."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if seconds < 0 or math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def _parse_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    if _UNIT_FORM.fullmatch(text):
        return sum(float(num) * _UNITS[unit] for num, unit in _UNIT_PART.findall(text))
    clock = _CLOCK_FORM.fullmatch(text)
    if clock is not None and (":" in text or "-" in text):
        return _clock_seconds(*clock.groups())
    raise ValueError(f"invalid duration {text!r} (use seconds, '90s', '5m', '1h30m' or 'HH:MM:SS')")


def _clock_seconds(days: str | None, first: str, second: str | None, third: str | None) -> float:
    """Slurm rules: without days, A:B is minutes:seconds; with days, D-A[:B[:C]] is hours first."""
    if days is None:
        if third is None:
            return int(first) * 60 + float(second or 0)
        return int(first) * 3600 + int(second or 0) * 60 + float(third)
    return int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + float(third or 0)
