"""Task outputs: values a task prints in its log (or writes to a file), picked out and typed.

An output is a regex with a `name` and a `type` (its last match), or a format-style template
without a name (`TTFT: {ttft:f} ms`, nv-sflow's form: every matching line, each named field a
value). After the attempt ends the run calls `extract_outputs`; the record writes the values
(`sflow.record.outputs`).

Extraction is synchronous file reading: call it through `asyncio.to_thread` from the event
loop when logs can be large.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sflow.record.tail import read_end
from sflow.schema.fieldtypes import OUTPUT_TYPES, TYPE_ALIASES, to_scalar
from sflow.schema.templates import compile_template, match_line

TAIL_BYTES = 32 * 1024 * 1024  # a regex output is the *last* match, so a huge log is read from its tail
LOG_SOURCES = frozenset({"stdout", "stderr", "log"})  # the task's log holds both of its streams


class Extracted(NamedTuple):
    """Output values by name (None when a named one is missing) and a warning for each miss."""

    values: dict[str, Any]
    warnings: list[str]


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _models(output_models: Any) -> list[tuple[str | None, Any]]:
    """(name, model) pairs from a list of models, or a mapping keyed by name; a template's is None."""
    if not output_models:
        return []
    if isinstance(output_models, Mapping):
        return [(str(_get(m, "name") or key), m) for key, m in output_models.items()]
    return [(_get(m, "name"), m) for m in output_models]


def is_template(model: Any) -> bool:
    """An output without a name: its pattern is a template whose fields name the values."""
    return _get(model, "name") is None


def source_path(model: Any, log_path: Path | None, task_dir: Path | None) -> Path | None:
    """What an output reads: the task's log, or a file (relative to the task's folder)."""
    source = _get(model, "source") or "stdout"
    if source in LOG_SOURCES:
        return log_path
    return Path(source) if task_dir is None else task_dir / source


def extract_outputs(log_path: Path | None, output_models: Any, task_dir: Path | None = None) -> Extracted:
    """Named outputs: the LAST match of each regex, converted to its `type` (None when missing).
    Templates: every line a template matches, the first of a task's templates to match a line
    taking it; a field matched once is a value, matched more often a list (absent when never)."""
    models = _models(output_models)
    named = [(name, model) for name, model in models if name is not None]
    values: dict[str, Any] = dict.fromkeys(name for name, _ in named)
    warnings: list[str] = []
    texts: dict[Path | None, str | None] = {}
    missing: dict[Path | None, list[str]] = {}
    for name, model in named:
        path = source_path(model, log_path, task_dir)
        if path not in texts:
            texts[path] = read_end(path, TAIL_BYTES)
        text = texts[path]
        if text is None:
            missing.setdefault(path, []).append(name)
            continue
        try:
            values[name] = extract_one(text, name, _get(model, "pattern"), _get(model, "type") or "string")
        except ValueError as exc:
            warnings.append(f"output '{name}': {exc}")
    for path, names in missing.items():
        warnings.append(f"outputs: {_no(path, log_path)}; {', '.join(names)} not set")
    templates = [model for name, model in models if name is None]
    for path, group in _by_source(templates, log_path, task_dir).items():
        try:
            found, unmatched = match_templates(path, [_get(m, "pattern") for m in group])
        except OSError:
            warnings.append(f"outputs: {_no(path, log_path)}; its templates matched nothing")
            continue
        except ValueError as exc:  # a template that became invalid once its `${{ }}` was rendered
            warnings.append(f"outputs: {exc}")
            continue
        values.update(found)
        warnings.extend(f"output template {t!r} matched no line of {path}" for t in unmatched)
    return Extracted(values, warnings)


def _no(path: Path | None, log_path: Path | None) -> str:
    return f"no log at {path}" if path == log_path else f"no file at {path}"


def _by_source(
    models: list[Any], log_path: Path | None, task_dir: Path | None
) -> dict[Path | None, list[Any]]:
    groups: dict[Path | None, list[Any]] = {}
    for model in models:
        groups.setdefault(source_path(model, log_path, task_dir), []).append(model)
    return groups


def match_templates(path: Path | None, templates: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Every line of `path` that one of `templates` matches whole: (values, templates never matched)."""
    parsers = [(template, compile_template(template)) for template in templates]
    seen: dict[str, list[Any]] = {}
    matched: set[str] = set()
    for line in _lines(path):
        for template, parser in parsers:
            fields = match_line(parser, line)
            if fields is not None:
                matched.add(template)
                for key, value in fields.items():
                    seen.setdefault(key, []).append(value)
                break
    values = {key: found[0] if len(found) == 1 else found for key, found in seen.items()}
    return values, [t for t in templates if t not in matched]


def _lines(path: Path | None) -> Iterable[str]:
    """The file's lines without their ends; OSError when it can't be read."""
    if path is None:
        raise FileNotFoundError("no log")
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def extract_one(text: str, name: str, pattern: str | None, type_name: str) -> Any:
    """The converted last match; ValueError (with a reason) when there is none or it won't convert."""
    if not pattern:
        raise ValueError("no pattern")
    try:
        regex = re.compile(pattern, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
    tail = deque(regex.finditer(text), maxlen=1)
    if not tail:
        raise ValueError(f"pattern {pattern!r} did not match the log")
    return convert(_group(tail[0], name), type_name)


def _group(match: re.Match[str], name: str) -> str:
    """The group named like the output, else the first named group, else group 1, else the match."""
    names = match.re.groupindex
    if name in names:
        return match.group(name) or ""
    if names:
        return match.group(min(names.values())) or ""
    return (match.group(1) if match.re.groups else match.group(0)) or ""


_KINDS = {
    "list": "a JSON list",
    "dict": "a JSON object",
    "boolean": "boolean (true/false, yes/no, on/off, 1/0)",
}


def convert(text: str, type_name: str) -> Any:
    """`text` as the output's declared type (the variable types, or any JSON); ValueError when it is not one."""
    type_name = TYPE_ALIASES.get(type_name, type_name)
    raw = text.rstrip("\r")
    value = raw.strip()
    if type_name == "string":
        return raw
    if type_name not in OUTPUT_TYPES:
        raise ValueError(f"unknown type {type_name!r} (one of {', '.join(OUTPUT_TYPES)})")
    try:
        if type_name in ("integer", "float", "boolean"):
            return to_scalar(value, type_name)
        parsed = json.loads(value)
        shape = {"list": list, "dict": dict}.get(type_name)
        if shape is not None and not isinstance(parsed, shape):
            raise ValueError
        return parsed
    except ValueError:
        raise ValueError(f"{value[:80]!r} is not {_KINDS.get(type_name, type_name)}") from None
