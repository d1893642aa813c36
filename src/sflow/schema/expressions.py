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

`${{ x | quote }}` (`shell_quote`) is `x` quoted as one shell word.

`reads` tells what an expression looks at, so a caller rendering many tasks can evaluate an expression
that only reads run-wide values once (see `sflow.workflow.context.ScriptRenderer`).

Jinja is imported by the first text that holds an expression (`environment()`): importing it and
building the environment costs about 40 ms, which a workflow without `${{ }}` never pays.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Iterable, Mapping
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.errors import SpecError
from sflow.schema.suggest import suggest

if TYPE_CHECKING:
    import jinja2
    from jinja2 import nodes
    from jinja2.parser import Parser
    from jinja2.sandbox import SandboxedEnvironment

START = "${{"
_BLOCK = "${%"
_COMMENT = "${/*"
_APART = "\x00"  # joins texts checked together (`_valid_together`); YAML text cannot hold it


# The patterns are compiled at their first use: a file without an expression needs neither.
@cache
def _segment() -> re.Pattern[str]:
    return re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


@cache
def _single() -> re.Pattern[str]:
    return re.compile(r"\s*\$\{\{((?:(?!\}\}|\$\{\{).)*)\}\}\s*", re.DOTALL)


class ExpressionError(SpecError):
    """A `${{ }}` expression that does not parse or cannot be evaluated (undefined name...).

    `source` is the failing expression's text when it is known (to point at the script line).
    """

    source: str | None = None


def shell_quote(value: Any) -> str:
    """The `quote` filter: `value` as one shell word (a list as one word per item).

    `${{ }}` splices text into the script as is, so a value holding `"; rm -rf ~; "` would run as
    a command; `${{ variables.X | quote }}` keeps it one argument, whatever it holds.
    """
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(item)) for item in value)
    return shlex.quote(str(value))


@cache
def environment() -> SandboxedEnvironment:
    """The one sandboxed Jinja environment of `${{ }}`, built on first use.

    It also binds this module's `jinja2`, `nodes` and `Parser`: every other use of them comes after
    a compile, which asks for the environment first."""
    global jinja2, nodes, Parser
    import jinja2
    from jinja2 import nodes
    from jinja2.parser import Parser
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
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
    env.filters["quote"] = shell_quote
    return env


def has_expression(text: Any) -> bool:
    """True when `text` is a string containing `${{` (the cheap test that skips rendering)."""
    return isinstance(text, str) and START in text


def needs_rendering(text: str) -> bool:
    """False when `render` returns `text` unchanged without looking further."""
    return START in text or _BLOCK in text


@lru_cache(maxsize=4096)
def _template(text: str) -> jinja2.Template:
    return environment().from_string(text)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return environment().compile_expression(source.strip(), undefined_to_none=False)


def _compiled_parts(text: str) -> tuple[list[str], list[Any]] | None:
    """(plain parts, compiled expressions) of text using only `${{ }}`; None when the whole
    template engine must decide (statements, comments, or expressions that do not split cleanly)."""
    if _BLOCK in text or _COMMENT in text:
        return None
    parts = _segment().split(text)
    if len(parts) // 2 != text.count(START):
        return None
    try:
        return parts[0::2], [_expression(source) for source in parts[1::2]]
    except jinja2.TemplateSyntaxError:
        return None


def split_expressions(text: str) -> tuple[list[str], list[str]] | None:
    """(plain parts, expression sources) of text using only `${{ }}`, every expression compiling;
    None when `render` would go through the whole template engine. `plain` has one more part."""
    if _BLOCK in text or _COMMENT in text:
        return None
    parts = _segment().split(text)
    if len(parts) // 2 != text.count(START):
        return None
    sources = parts[1::2]
    try:
        for source in sources:
            _expression(source)
    except jinja2.TemplateSyntaxError:
        return None
    return parts[0::2], sources


def one_expression(text: str) -> tuple[str, str, str] | None:
    """(text before, source, text after) when `text` holds exactly one `${{ }}` and nothing else for
    Jinja, split as `split_expressions` splits it (but not compiled); None otherwise."""
    before, start, rest = text.partition(START)  # (partition takes no optional arguments to parse)
    if not start or START in rest or _BLOCK in text or _COMMENT in text:
        return None
    source, end, after = rest.partition("}}")
    return (before, source, after) if end else None


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """The value of one expression source (as `split_expressions` gives it); raises what Jinja raises."""
    return _value(_expression(source), context)


class Reads(msgspec.Struct, frozen=True):
    """What one expression looks at.

    `names`: the context names it reads. `keys[name]`: the constant attributes or items it reads of
    that name (`variables.X`, `variables["X"]`), or None when it uses the value otherwise
    (`variables | length`). `pure`: it calls nothing and draws nothing at random, so it cannot change
    any value and, given the same values, always gives the same result.
    """

    names: frozenset[str]
    keys: Mapping[str, frozenset[str] | None]
    pure: bool


@lru_cache(maxsize=4096)
def reads(source: str) -> Reads:
    """`Reads` of one expression source that compiles."""
    env = environment()  # binds `Parser` on first use
    expression = Parser(env, source.strip(), state="variable").parse_expression()
    walk = _ReadsWalk()
    walk.visit(expression)
    keys = {name: (None if name in walk.whole else frozenset(walk.keys.get(name, ()))) for name in walk.names}
    return Reads(frozenset(walk.names), keys, walk.pure)


def reads_variables(value: Any, names: Collection[str]) -> bool:
    """True when a value (text, or lists and maps of it) may read `variables.<n>` for one of `names`.

    A whole Jinja template, or an expression that uses `variables` other than by constant key,
    counts as reading them all.
    """
    if isinstance(value, str):
        if not needs_rendering(value):
            return False
        split = split_expressions(value)
        if split is None:
            return True
        for source in split[1]:
            used = reads(source).keys.get("variables", frozenset())
            if used is None or not used.isdisjoint(names):
                return True
        return False
    if isinstance(value, dict):
        return any(reads_variables(v, names) for v in value.values())
    if isinstance(value, list):
        return any(reads_variables(v, names) for v in value)
    return False


class _ReadsWalk:
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.keys: dict[str, set[str]] = {}
        self.whole: set[str] = set()
        self.pure = True

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Call) or (isinstance(node, nodes.Filter) and not _pure_filter(node)):
            self.pure = False
        if isinstance(node, nodes.Name):
            self.names.add(node.name)
            self.whole.add(node.name)
            return
        key = _constant_key(node)
        if key is not None:
            name = node.node.name  # type: ignore[attr-defined]
            self.names.add(name)
            self.keys.setdefault(name, set()).add(key)
            return
        for child in node.iter_child_nodes():
            self.visit(child)


def _constant_key(node: nodes.Node) -> str | None:
    """The key read by `name.X` or `name["X"]` (None for anything else)."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.node, nodes.Name)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _pure_filter(node: nodes.Filter) -> bool:
    """Every filter but `random` gives the same result for the same input; `map` may name any filter."""
    if node.name == "random":
        return False
    if node.name == "map" and (node.args or node.dyn_args):
        first = node.args[0] if node.args else None
        return isinstance(first, nodes.Const) and first.value != "random"
    return True


def all_valid(texts: Iterable[str]) -> bool:
    """True when `check_syntax` accepts every text; quick for many texts sharing a few expressions."""
    texts = texts if isinstance(texts, list) else list(texts)
    if _valid_together(texts):
        return True
    known: set[str] = set()  # sources that compile
    find, block, comment, start = _segment().findall, _BLOCK, _COMMENT, START
    for text in texts:
        if block not in text and comment not in text:
            sources = find(text)
            if len(sources) == text.count(start):  # as `_compiled_parts` splits it
                if known.issuperset(sources):
                    continue
                try:
                    for source in sources:
                        _expression(source)
                except jinja2.TemplateSyntaxError:
                    pass
                else:
                    known.update(sources)
                    continue
        try:
            check_syntax(text)
        except ExpressionError:
            return False
    return True


def _valid_together(texts: list[str]) -> bool:
    """True when every text splits cleanly into `${{ }}` expressions that compile, found with one
    regex pass over all the texts at once (a hundred thousand scripts are one pass, not a hundred
    thousand). They are joined with a character none of them holds, so an expression found in the
    whole lies within one text exactly when it does not hold that character, and each text splits
    cleanly (as many expressions as `${{`) exactly when the whole does. False says only that the
    texts must be looked at one by one."""
    joined = _APART.join(texts)
    if joined.count(_APART) != max(len(texts) - 1, 0) or _BLOCK in joined or _COMMENT in joined:
        return False
    sources = _segment().findall(joined)
    if len(sources) != joined.count(START):
        return False
    distinct = set(sources)
    if _APART in "".join(distinct):
        return False
    try:
        for source in distinct:
            _expression(source)
    except jinja2.TemplateSyntaxError:
        return False
    return True


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
    out: list[str] = []
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
        failed = len(out) // 2 if compiled is not None else None
        source = _segment().findall(text)[failed] if failed is not None else None
        raise failure(exc, where, field, source, context) from None


def render_value(
    value: Any, context: Mapping[str, Any], where: str | None = None, field: str | None = None
) -> Any:
    """Render every string inside dicts/lists; `"${{ x }}"` alone keeps x's native type (int, list...)."""
    if isinstance(value, str):
        if START not in value and _BLOCK not in value:
            return value
        single = _single().fullmatch(value)
        if single is not None:
            check_syntax(value, where, field)
            try:
                return _value(_expression(single.group(1)), context)
            except Exception as exc:
                raise failure(exc, where, field, single.group(1), context) from None
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


def failure(
    exc: Exception,
    where: str | None,
    field: str | None,
    source: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> ExpressionError:
    """Whatever an expression raised, as one `ExpressionError` line that says what is missing."""
    environment()  # binds `jinja2` when no expression was compiled yet
    shown = f"${{{{ {source.strip()} }}}}: " if source else ""
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined in {shown or 'expression: '}{_missing(exc.message or '', source, context)}"
    elif isinstance(exc, jinja2.TemplateError):
        message = f"cannot render {shown or 'expression: '}{exc}"
    else:
        message = f"{shown or 'expression failed: '}{type(exc).__name__}: {exc}"
    error = ExpressionError(message, where=where, field=field)
    error.source = source
    return error


# Jinja's words for a missing name, attribute or item; compiled by `re` on first use (a mistake)
_NO_NAME = r"'([^']+)' is undefined"
_NO_KEY = r"has no attribute '([^']+)'"
_NO_ITEM = r"has no element (-?\d+)"


def _missing(message: str, source: str | None, context: Mapping[str, Any] | None) -> str:
    """`variables has no 'EPOCH'; did you mean 'EPOCHS'?` rather than Jinja's `'dict object' has...`."""
    if source is None or context is None:
        return message
    if match := re.search(_NO_NAME, message):
        name = match.group(1)
        return f"'{name}' is undefined{suggest(name, context)}"
    key: str | int
    if match := re.search(_NO_KEY, message):
        key = match.group(1)
    elif match := re.search(_NO_ITEM, message):
        key = int(match.group(1))
    else:
        return message
    base = _base_of(source, key)
    if base is None:
        return message
    try:
        container = _value(_expression(base), context)
    except Exception:
        return message
    if isinstance(container, Mapping):
        return f"{base} has no '{key}'{suggest(str(key), container)}"
    if isinstance(container, (list, tuple)):
        return f"{base} has no element {key} (it has {len(container)})"
    return message


def _base_of(source: str, key: str | int) -> str | None:
    """The dotted text of what `key` is read from in `source` (`variables` for `variables.X`)."""
    env = environment()  # binds `Parser` on first use
    try:
        tree = Parser(env, source.strip(), state="variable").parse_expression()
    except jinja2.TemplateSyntaxError:
        return None
    for node in (tree, *tree.find_all((nodes.Getattr, nodes.Getitem))):
        if isinstance(node, nodes.Getattr):
            read: Any = node.attr
        elif isinstance(node, nodes.Getitem):
            read = getattr(node.arg, "value", None)
        else:
            continue
        if read == key:
            return _dotted(node.node)
    return None


def _dotted(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _dotted(node.node)
        return None if base is None else f"{base}[{node.arg.value!r}]"
    return None


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
