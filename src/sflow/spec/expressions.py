"""The sandboxed `${{ ... }}` renderer.

Jinja with its own delimiters so shell text passes through untouched: expressions are `${{ ... }}`,
statements `${% ... %}` and comments `${/* ... */}` -- none of which is valid shell -- so bash's
`${#ARR[@]}`, `{# ... #}` or `{{ }}` in a script are plain text. Undefined names are errors
(`StrictUndefined`) and plain strings are returned without touching Jinja.

Speed: a generated workflow has thousands of distinct scripts sharing a few expressions
(`echo ${{ variables.X }} 17`). Text with only `${{ }}` is therefore split into plain parts and
expressions, and each distinct expression is compiled once (LRU); only text using `${% %}` (or an
expression that does not split cleanly, like `${{ "}}" }}`) goes through a whole compiled template,
cached by its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from sflow.errors import SpecError

START = "${{"
_BLOCK = "${%"
_COMMENT = "${/*"
_SEGMENT = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
_SINGLE = re.compile(r"\s*\$\{\{((?:(?!\}\}|\$\{\{).)*)\}\}\s*", re.DOTALL)


class ExpressionError(SpecError):
    """A `${{ }}` expression that does not parse or cannot be evaluated (undefined name...)."""


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        variable_start_string=START,
        variable_end_string="}}",
        block_start_string=_BLOCK,
        block_end_string="%}",
        comment_start_string=_COMMENT,
        comment_end_string="*/}",
        line_statement_prefix=None,
        line_comment_prefix=None,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        cache_size=0,
    )


ENV = _environment()


def has_expression(text: Any) -> bool:
    """True when `text` is a string containing `${{` (the cheap test that skips rendering)."""
    return isinstance(text, str) and START in text


@lru_cache(maxsize=4096)
def _template(text: str) -> jinja2.Template:
    return ENV.from_string(text)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return ENV.compile_expression(source.strip(), undefined_to_none=False)


def _compiled_parts(text: str) -> tuple[list[str], list[Any]] | None:
    """(plain parts, compiled expressions) of text using only `${{ }}`; None when the whole
    template engine must decide (statements, comments, or expressions that do not split cleanly)."""
    if _BLOCK in text or _COMMENT in text:
        return None
    parts = _SEGMENT.split(text)
    if len(parts) // 2 != text.count(START):
        return None
    try:
        return parts[0::2], [_expression(source) for source in parts[1::2]]
    except jinja2.TemplateSyntaxError:
        return None


def check_syntax(text: str, where: str | None = None, field: str | None = None) -> None:
    """Raise `ExpressionError` when `text` is not a valid template."""
    if _compiled_parts(text) is not None:
        return
    try:
        _template(text)
    except jinja2.TemplateSyntaxError as exc:
        where = _add_line(where, exc.lineno, text)
        raise ExpressionError(f"invalid expression: {exc.message}", where=where, field=field) from None


def render(text: str, context: Mapping[str, Any], where: str | None = None, field: str | None = None) -> str:
    """Render `text` against `context`; a string without `${{` comes back unchanged."""
    if START not in text and _BLOCK not in text:
        return text
    compiled = _compiled_parts(text)
    if compiled is None:
        check_syntax(text, where, field)
    try:
        if compiled is None:
            return _template(text).render(context)
        plain, expressions = compiled
        out = [plain[0]]
        for expression, after in zip(expressions, plain[1:], strict=True):
            out.append(str(_value(expression, context)))
            out.append(after)
        return "".join(out)
    except Exception as exc:
        raise _failure(exc, where, field) from None


def render_value(
    value: Any, context: Mapping[str, Any], where: str | None = None, field: str | None = None
) -> Any:
    """Render every string inside dicts/lists; `"${{ x }}"` alone keeps x's native type (int, list...)."""
    if isinstance(value, str):
        if START not in value and _BLOCK not in value:
            return value
        single = _SINGLE.fullmatch(value)
        if single is not None:
            check_syntax(value, where, field)
            try:
                return _value(_expression(single.group(1)), context)
            except Exception as exc:
                raise _failure(exc, where, field) from None
        return render(value, context, where, field)
    if isinstance(value, dict):
        return {k: render_value(v, context, where, _sub(field, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, where, _sub(field, i)) for i, v in enumerate(value)]
    return value


def _value(expression: Any, context: Mapping[str, Any]) -> Any:
    result = expression(**context)
    if isinstance(result, jinja2.Undefined):
        str(result)  # StrictUndefined raises UndefinedError naming the missing name
    return result


def _failure(exc: Exception, where: str | None, field: str | None) -> ExpressionError:
    """Whatever an expression raised, as one `ExpressionError` line."""
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined in expression: {exc.message}"
    elif isinstance(exc, jinja2.TemplateError):
        message = f"cannot render expression: {exc}"
    else:
        message = f"expression failed: {type(exc).__name__}: {exc}"
    return ExpressionError(message, where=where, field=field)


def _sub(field: str | None, key: Any) -> str | None:
    if field is None:
        return None
    return f"{field}[{key}]" if isinstance(key, int) else f"{field}.{key}"


def _add_line(where: str | None, lineno: int | None, text: str) -> str | None:
    """Point inside a multi-line string (a `|` script block) when Jinja knows the line."""
    if where is None or not lineno or "\n" not in text:
        return where
    file, sep, line = where.rpartition(":")
    if not sep or not line.isdigit():
        return where
    return f"{file}:{int(line) + lineno}"
