"""Durations as users write them: seconds, `90s`, `5m`, `1h30m`, `1:30:00`, `2-00:00:00`.

Colon forms follow Slurm's `--time` reading: `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
`slurm_time` is the other direction, the one rule for every `--time` sflow writes (salloc, #SBATCH
lines, srun steps, the dispatch executor's jobs): a bare number there is minutes, as for Slurm.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


# The patterns are compiled at their first use: most runs have no duration written as text.
@functools.cache
def _unit_part() -> re.Pattern[str]:
    return re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d)")


@functools.cache
def _unit_form() -> re.Pattern[str]:
    return re.compile(r"(?:\d+(?:\.\d+)?\s*(?:ms|sec|min|s|m|h|d)\s*)+")


@functools.cache
def _clock_form() -> re.Pattern[str]:
    return re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+(?:\.\d+)?))?")


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
    if _unit_form().fullmatch(text):
        return sum(float(num) * _UNITS[unit] for num, unit in _unit_part().findall(text))
    clock = _clock_form().fullmatch(text)
    if clock is not None and (":" in text or "-" in text):
        return _clock_seconds(text, *clock.groups())
    raise ValueError(f"invalid duration {text!r} (use seconds, '90s', '5m', '1h30m' or 'HH:MM:SS')")


def _clock_seconds(text: str, days: str | None, first: str, second: str | None, third: str | None) -> float:
    """Slurm rules: without days, A:B is minutes:seconds; with days, D-A[:B[:C]] is hours first.

    Only the leading part may exceed its unit (`90:00` is 90 minutes): `1:99:00` is a typo."""
    units: tuple[str, ...] = ("days", "hours", "minutes", "seconds")
    values: tuple[str | None, ...] = (days, first, second, third)
    if days is None:
        units, values = (units[2:], values[1:3]) if third is None else (units[1:], values[1:])
    for unit, value in zip(units[1:], values[1:], strict=True):
        if value is not None and float(value) >= _LIMITS[unit]:
            raise ValueError(f"invalid duration {text!r}: {unit} must be below {_LIMITS[unit]}, got {value}")
    if days is None:
        if third is None:
            return int(first) * 60 + float(second or 0)
        return int(first) * 3600 + int(second or 0) * 60 + float(third)
    return int(days) * 86400 + int(first) * 3600 + int(second or 0) * 60 + float(third or 0)


_LIMITS = {"hours": 24, "minutes": 60, "seconds": 60}


# Slurm's own `--time` formats (sbatch(1)): minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
# Compiled by `re` on first use: a local run reads no Slurm time.
SLURM_TIME_PATTERN = (
    r"\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+|UNLIMITED|INFINITE|infinite"
)


def slurm_time(value: Any) -> str:
    """A time limit as Slurm's `--time` reads it; one rule for every Slurm command sflow runs.

    - A bare number is **minutes**, Slurm's own unit (`--time=90` is 90 minutes): `90` → `"90"`;
      a fraction of a minute becomes `H:MM:SS`, rounded up to a whole second (`1.5` → `"0:01:30"`).
    - A string in one of Slurm's formats passes unchanged: `"90"` (minutes), `"MM:SS"`,
      `"HH:MM:SS"`, `"D-HH"`, `"D-HH:MM"`, `"D-HH:MM:SS"`, `"UNLIMITED"`.
    - A string with units is converted (`parse_duration`), rounded up to
      a whole second: `"90s"` → `"0:01:30"`, `"5m"` → `"0:05:00"`, `"1h"` → `"1:00:00"`.

    Anything else (a bool, zero or a negative number, `"1.5"`, `""`) raises `ValueError`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a Slurm time like '01:30:00' or a number of minutes, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(SLURM_TIME_PATTERN, text):
            return text
        if _unit_form().fullmatch(text):
            return seconds_to_slurm_time(parse_duration(text))
        raise ValueError(
            f"invalid Slurm time {value!r} (use minutes, 'MM:SS', 'HH:MM:SS', 'D-HH:MM:SS' "
            "or a duration with a unit such as '90s', '5m', '1h')"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a Slurm time must be a positive number of minutes, got {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return seconds_to_slurm_time(value * 60)


def seconds_to_slurm_time(seconds: float) -> str:
    """`H:MM:SS` for a positive number of seconds, rounded up to a whole second (`125` → `0:02:05`)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a Slurm time must be positive, got {seconds!r} s")
    whole = math.ceil(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
