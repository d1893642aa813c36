"""Format-style output templates: `TTFT: {ttft:f} ms` matches a whole line and names its values.

This is nv-sflow's way of writing an output: the `parse` package (the reverse of `str.format`)
turns the template into a matcher; `{name}` takes any text, `{name:d}` an integer, `{name:f}` a
float with a decimal point, `{name:g}` any number, `{name:w}` a word, and `{name:w*}` a word that
may be empty. `parse` is imported only when a workflow has such a template.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parse import Parser

EXAMPLE = "'accuracy: {accuracy:f}'"


def _maybe_empty_word(text: str) -> str:
    return text


_maybe_empty_word.pattern = r"\w*"  # type: ignore[attr-defined]  # how `parse` reads a custom type
EXTRA_TYPES: dict[str, Any] = {"w*": _maybe_empty_word}


@lru_cache(maxsize=256)
def compile_template(template: str) -> Parser:
    """`template` as a matcher of whole lines (case-sensitive), or the ValueError a field reports."""
    from parse import compile as parse_compile

    try:
        parser = parse_compile(template, extra_types=EXTRA_TYPES, case_sensitive=True)
        parser.parse("")  # builds the regex now: a bad field name fails here, not on the first log line
    except (ValueError, re.error) as exc:
        raise ValueError(f"invalid output template {template!r}: {exc}") from None
    except NotImplementedError:  # how `parse` refuses a field name that is no regex group name
        raise ValueError(
            f"invalid output template {template!r}: a field's name is letters, digits and '_'"
        ) from None
    if not parser.named_fields:
        raise ValueError(
            f"output template {template!r} names no value: write fields as {{name}} or {{name:type}}, "
            f"e.g. {EXAMPLE} (or give the output a 'name' to read 'pattern' as a regular expression)"
        )
    return parser


def match_line(parser: Parser, line: str) -> dict[str, Any] | None:
    """The values `parser` names in `line` when the whole line matches, else None."""
    result = parser.parse(line)
    return None if result is None or isinstance(result, str) else dict(result.named)
