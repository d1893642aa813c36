"""Field types shared by the models: numbers that may still be `${{ }}` expressions, durations, names.

Each type is one check (one error message per field, no union noise) in the field's annotation
(`sflow.schema.base.check`): an expression string is kept as written for the plan module to render
later; anything else must already have the type.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Annotated, Any

from sflow.schema.base import check
from sflow.schema.durations import SLURM_TIME_PATTERN, parse_duration, slurm_time

EXPR = "${{"


_REGEX_PREFIXES = ("re:", "regex:")


def unmarked(text: str) -> tuple[str, bool]:
    """`text` without a leading `re:`/`regex:` (nv-sflow's mark of a regex), and whether it had one."""
    if text.startswith(_REGEX_PREFIXES):
        return text.split(":", 1)[1], True
    return text, False


def compile_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled, or the ValueError a field's validator reports."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and EXPR in value


def describe(value: Any) -> str:
    """Short description of a YAML value for messages: `the string 'abc'`, `a list`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


@functools.cache
def _int_text() -> re.Pattern[str]:
    """Compiled at its first use: most integers come from YAML as numbers."""
    return re.compile(r"[-+]?[0-9]+")


def as_int(value: Any, minimum: int | None = None) -> int:
    """An integer (or integer-looking string); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"expected an integer, got {describe(value)}")
    if isinstance(value, str):
        if not _int_text().fullmatch(value.strip()):
            raise ValueError(f"expected an integer or a ${{{{ }}}} expression, got {describe(value)}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"must be >= {minimum}, got {value}")
    return value


def _int_or_expr(minimum: int | None) -> Any:
    def validate(value: Any) -> int | str:
        if is_expression(value):
            return value
        return as_int(value, minimum)

    return check(validate)


IntOrExpr = Annotated[Any, _int_or_expr(None)]
"""An integer, or a `${{ }}` string rendered later."""
CountOrExpr = Annotated[Any, _int_or_expr(0)]
"""A count >= 0, or an expression."""
PositiveOrExpr = Annotated[Any, _int_or_expr(1)]
"""A count >= 1, or an expression."""


def _index_list(value: Any) -> list[int | str] | str:
    """A list of integers/expressions, a single index, or one expression that renders to a list."""
    if is_expression(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, list):
        raise ValueError(f"expected a list of indices or a ${{{{ }}}} expression, got {describe(value)}")
    return [v if is_expression(v) else as_int(v) for v in value]


IndexList = Annotated[Any, check(_index_list)]
"""Node or GPU indices: `[0, -1]`, a single index, or an expression."""


MAX_DURATION = 365 * 86400.0
"""The longest duration a field accepts: a year. Longer is a slip of digits or units (ms for s)."""
MAX_RETRIES = 100
"""The most retries a task may have: each keeps its log, and more only hides a task that cannot work."""


def seconds(value: Any) -> float:
    """A duration field's value in seconds: from 0 to `MAX_DURATION`."""
    parsed = parse_duration(value)
    if parsed > MAX_DURATION:
        raise ValueError(f"a duration must be at most 365 days, got {describe(value)}")
    return parsed


def timeout_seconds(value: Any) -> float:
    """A timeout in seconds: more than 0 (a task with no time at all would be stopped at once)."""
    parsed = seconds(value)
    if parsed == 0:
        raise ValueError("a timeout must be more than 0 seconds (leave it out for no timeout)")
    return parsed


def retry_count(value: Any) -> int:
    """How many times to run a failed task again: 0 to `MAX_RETRIES`."""
    count = as_int(value, 0)
    if count > MAX_RETRIES:
        raise ValueError(f"at most {MAX_RETRIES} retries, got {value!r}")
    return count


def _memoized(check: Callable[[Any], float]) -> Callable[[Any], float | str]:
    """`check` for a duration field, memoized: a generated workflow repeats the same few `timeout:`
    texts thousands of times. An expression is kept as written."""
    known: dict[Any, float | str] = {}

    def validate(value: Any) -> float | str:
        cacheable = value.__class__ in (str, int, float)  # not bool: True == 1 as a dict key
        if cacheable and value in known:
            return known[value]
        parsed = value if is_expression(value) else check(value)
        if cacheable and len(known) < 4096:
            known[value] = parsed
        return parsed

    return validate


Duration = Annotated[Any, check(_memoized(seconds))]
"""Seconds as a float (parsed from `90`, `"5m"`, `"1:30:00"`...) up to a year, or an expression."""
Timeout = Annotated[Any, check(_memoized(timeout_seconds))]
"""A `Duration` that must be more than 0."""


def _retry_count(value: Any) -> int | str:
    return value if is_expression(value) else retry_count(value)


RetryCount = Annotated[Any, check(_retry_count)]
"""0 to `MAX_RETRIES`, or an expression."""


def _slurm_time(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected a Slurm time like '01:30:00', got {describe(value)}")
    text = str(value).strip()
    if is_expression(text) or re.fullmatch(SLURM_TIME_PATTERN, text):
        return text
    slurm_time(text)  # the rule every Slurm command uses (units: "90s", "5m"); ValueError naming the forms
    return text


SlurmTime = Annotated[Any, check(_slurm_time)]
"""A Slurm `--time` value kept as text (`1:30:00` is never read as a number); a bare number is minutes.

`sflow.schema.durations.slurm_time` turns it into the flag's value (`"5m"` → `0:05:00`)."""


_NAME_CHARS = (r"[A-Za-z0-9_]", r"[A-Za-z0-9_.\-]")  # the first character, then the others
_IDENTIFIER_CHARS = (r"[A-Za-z_]", r"[A-Za-z0-9_]")
NAME_PATTERN = r"^{}{}*$".format(*_NAME_CHARS)
IDENTIFIER_PATTERN = r"^{}{}*$".format(*_IDENTIFIER_CHARS)
MAX_NAME_LENGTH = 128
"""Names become file names (`<task>_<replica>.attempt<n>.log`), which may not pass 255 bytes."""
RESERVED_NAMES = frozenset({"PATH"})
RESERVED_PREFIX = "SFLOW_"


def _not_reserved(name: str) -> str:
    """A variable or artifact is exported to every task: it must not replace what the task needs."""
    if name in RESERVED_NAMES:
        raise ValueError(f"'{name}' is reserved: each task needs its own {name} to start; use another name")
    if name.startswith(RESERVED_PREFIX):
        raise ValueError(
            f"'{name}' is reserved: names starting with {RESERVED_PREFIX} are the values sflow gives each task"
        )
    return name


def _workflow_name(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # as every text field reads a number
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"is {len(value)} characters long, at most {MAX_NAME_LENGTH}")
    if not value.isprintable():
        raise ValueError(f"must be printable text on one line, got {value!r}")
    return value


def _named(chars: tuple[str, str], hint: str) -> Callable[[Any], str]:
    first, rest = chars
    compiled = functools.cache(lambda: re.compile(f"^{first}{rest}*$"))  # for a name refused only
    # in one call, every name the checks below accept (but one ending in a newline): a big
    # workflow has a name per task
    accepted = re.compile(f"{first}{rest}{{0,{MAX_NAME_LENGTH - 1}}}").fullmatch

    def validate(value: Any) -> str:
        if value.__class__ is str and accepted(value):
            return value
        value = text(value)
        if not value:
            raise ValueError("must not be empty")
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"is {len(value)} characters long, at most {MAX_NAME_LENGTH}")
        if not compiled().match(value):
            raise ValueError(f"invalid name {value!r}: {hint}")
        return value

    return validate


def text(value: Any) -> str:
    """A text field's value: a string, or a number read as its text (as YAML's `v: 1.0`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {describe(value)}")


_name = _named(_NAME_CHARS, "use letters, digits, '_', '-' and '.', starting with a letter, digit or '_'")
_identifier = _named(
    _IDENTIFIER_CHARS,
    "it is exported as an environment variable: use letters, digits and '_', not starting with a digit",
)

Name = Annotated[Any, check(_name)]
"""Task, backend and operator names: they become directory names and expression keys."""
Identifier = Annotated[Any, check(lambda value: _not_reserved(_identifier(value)))]
"""Variable and artifact names: they are exported as environment variables (not `PATH`, `SFLOW_*`)."""
Text = Annotated[Any, check(text)]
"""A string; a number is taken as its text (`version: 0.1`, `partition: 42`)."""
WorkflowName = Annotated[Any, check(_workflow_name)]
"""Free text (it names the run directory through `record.safe_name`), not empty, at most 128 characters."""


VARIABLE_TYPES = ("string", "integer", "float", "boolean", "list", "dict")
OUTPUT_TYPES = (*VARIABLE_TYPES, "json")  # an output's list, dict and json are JSON text in the log
TYPE_ALIASES = {"str": "string", "int": "integer", "number": "float", "bool": "boolean", "mapping": "dict"}
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def canonical_type(name: str) -> str:
    """`int` -> `integer` etc.; ValueError for unknown type names."""
    canonical = TYPE_ALIASES.get(name, name)
    if canonical not in VARIABLE_TYPES:
        raise ValueError(f"unknown variable type {name!r} (one of: {', '.join(VARIABLE_TYPES)})")
    return canonical


def coerce(value: Any, type_name: str | None) -> Any:
    """`value` converted to a variable type; expressions pass through (they are typed once rendered)."""
    if type_name is None or is_expression(value):
        return value
    return _COERCERS[type_name](value)


def to_scalar(text: str, type_name: str) -> Any:
    """Text (an output found in a log) as an integer, float or boolean, as a variable's value would be."""
    return _COERCERS[type_name](text)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"expected a string, got {describe(value)}")


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {describe(value)}")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false), got {describe(value)}")


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        from sflow.schema.yaml_source import parse_text

        parsed = parse_text(value, "<value>").data
        if isinstance(parsed, list):
            return parsed
    raise ValueError(f"expected a list, got {describe(value)}")


def _to_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise ValueError(f"expected a mapping, got {describe(value)}")


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "string": _to_string,
    "integer": as_int,
    "float": _to_float,
    "boolean": _to_bool,
    "list": _to_list,
    "dict": _to_dict,
}
