"""How a plain (unquoted) YAML scalar becomes a Python value.

sflow uses the YAML 1.2 core schema instead of PyYAML's YAML 1.1 rules, so the classic traps go away:
`time: 1:30:00` stays the string "1:30:00" (no base-60 numbers) and `yes`/`no`/`on`/`off` stay strings;
only `true`/`false` are booleans. Both YAML readers (the fast subset parser and the libyaml path) and
`--set` use this one function so they can never disagree.
"""

from __future__ import annotations

import functools
import re
from typing import Any

WORDS: dict[str, Any] = {
    **dict.fromkeys(("~", "null", "Null", "NULL")),
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
}
"""Plain scalars that are not strings, apart from numbers (`WORDS.get(text, text)` types a word)."""
NUMBER_START = frozenset("0123456789+-.")


def resolve_plain(text: str) -> Any:
    """The value of a plain scalar: None, bool, int, float or the string itself."""
    if not text:
        return None
    return number(text) if text[0] in NUMBER_START else WORDS.get(text, text)


@functools.cache
def _number() -> re.Pattern[str]:
    """Compiled at the first number read: a file may have none."""
    return re.compile(
        r"[-+]?(?:(?P<int>[0-9]+)|0x(?P<hex>[0-9a-fA-F]+)|0o(?P<oct>[0-7]+)"
        r"|(?:\.[0-9]+|[0-9]+\.[0-9]*|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?|\.(?P<special>inf|Inf|INF|nan|NaN|NAN))"
    )


def number(text: str) -> Any:
    """`text` as an int or float when it is one (12, 0x1f, 0o17, 1.5, 1e3, .inf), else `text` itself."""
    match = _number().fullmatch(text)
    if match is None:
        return text
    if match.group("int") is not None:
        return int(text, 10)
    sign = -1 if text[0] == "-" else 1
    if match.group("hex") is not None:
        return sign * int(match.group("hex"), 16)
    if match.group("oct") is not None:
        return sign * int(match.group("oct"), 8)
    special = match.group("special")
    if special is not None:
        return sign * float(special.lower())
    return float(text)
