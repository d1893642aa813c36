"""Task outputs: values a task prints in its log, picked out by a regex and typed.

A task declares `outputs: [{name, pattern, type}]`; after the attempt ends the run calls
`extract_outputs` on that attempt's log; the record writes the values (`sflow.record.outputs`).

Extraction is synchronous file reading: call it through `asyncio.to_thread` from the event
loop when logs can be large.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sflow.record.tail import read_end
from sflow.schema.fieldtypes import OUTPUT_TYPES, TYPE_ALIASES, to_scalar

TAIL_BYTES = 32 * 1024 * 1024  # outputs are the *last* match, so a huge log is read from its tail


class Extracted(NamedTuple):
    """Output values by name (None when missing) and a warning for each one that is."""

    values: dict[str, Any]
    warnings: list[str]


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _models(output_models: Any) -> list[tuple[str, Any]]:
    """(name, model) pairs from a list of models with `name`, or a mapping keyed by name."""
    if not output_models:
        return []
    if isinstance(output_models, Mapping):
        return [(str(_get(m, "name") or key), m) for key, m in output_models.items()]
    return [(str(_get(m, "name")), m) for m in output_models]


def extract_outputs(log_path: Path | None, output_models: Any) -> Extracted:
    """Each output's value: the LAST match of its `pattern` in the log, converted to its `type`."""
    models = _models(output_models)
    values: dict[str, Any] = dict.fromkeys(name for name, _ in models)
    if not models:
        return Extracted(values, [])
    text = read_end(log_path, TAIL_BYTES)
    if text is None:
        return Extracted(values, [f"outputs: no log at {log_path}; {', '.join(values)} not set"])
    warnings: list[str] = []
    for name, model in models:
        try:
            values[name] = extract_one(text, name, _get(model, "pattern"), _get(model, "type") or "string")
        except ValueError as exc:
            warnings.append(f"output '{name}': {exc}")
    return Extracted(values, warnings)


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
