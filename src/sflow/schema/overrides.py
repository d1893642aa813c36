"""`--set` and `--artifact`: command-line changes applied to the merged document before validation.

`--set NAME=VALUE` sets the value of the variable NAME wherever it is declared (top level and/or
`workflow.variables`); `--set NAME=[a,b]` sets its domain (a sweep) instead, unless the variable is
of type `list`. `variables.NAME=`, `workflow.variables.NAME=` target one scope;
`backends.B.FIELD=` (likewise `operators.`, `artifacts.`, `variables.`) sets one field and
`workflow.FIELD=` a workflow field. Changed values are located at "--set" / "--artifact" so
validation errors about them name the flag, not a file line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sflow.errors import SpecError
from sflow.schema.fieldtypes import canonical_type, coerce
from sflow.schema.locations import LocMap
from sflow.schema.normalize import NAMED_SECTIONS
from sflow.schema.scalars import resolve_plain
from sflow.schema.suggest import suggest
from sflow.schema.yaml_source import parse_text

SET = "--set"
ARTIFACT = "--artifact"
_WORKFLOW_FIELDS = ("name", "timeout")

Scope = tuple[dict[str, Any], LocMap]


def apply_sets(data: dict[str, Any], locs: LocMap, sets: Sequence[str]) -> None:
    """Apply every `--set TARGET=VALUE` in order."""
    for item in sets:
        target, sep, raw = item.partition("=")
        target = target.strip()
        if not sep or not target:
            raise SpecError(f"expected NAME=VALUE, got {item!r}", where=SET)
        _check_expression(raw, SET)
        parts = target.split(".")
        scopes = _variable_scopes(data, locs)
        if len(parts) == 1:
            _set_variable(scopes, target, raw)
        elif len(parts) == 2 and parts[0] == "variables":
            _set_variable(scopes[:1], parts[1], raw)
        elif len(parts) == 3 and parts[:2] == ["workflow", "variables"]:
            _set_variable(scopes[1:], parts[2], raw)
        elif len(parts) == 3 and parts[0] in NAMED_SECTIONS:
            _set_field(data, locs, parts, raw)
        elif len(parts) == 2 and parts[0] == "workflow" and parts[1] in _WORKFLOW_FIELDS:
            workflow, wf_locs = _mapping(data, locs, "workflow")
            workflow[parts[1]] = _parse(raw)
            wf_locs[parts[1]] = LocMap.at(SET, 0)
        else:
            raise SpecError(
                f"cannot set {target!r}: use NAME, variables.NAME, workflow.variables.NAME, "
                "backends.NAME.FIELD (or operators./artifacts.) or workflow.timeout",
                where=SET,
            )


def apply_artifacts(data: dict[str, Any], locs: LocMap, artifacts: Sequence[str]) -> None:
    """Apply every `--artifact NAME=URI`: replace the uri of an artifact the workflow declares.

    An unknown name is an error, as for `--set`: a typo must not leave a task on the wrong data.
    """
    for item in artifacts:
        name, sep, uri = item.partition("=")
        name, uri = name.strip(), uri.strip()
        if not sep or not name or not uri:
            raise SpecError(f"expected NAME=URI, got {item!r}", where=ARTIFACT)
        _check_expression(uri, ARTIFACT)
        section, section_locs = _mapping(data, locs, "artifacts")
        entry = section.get(name)
        if not isinstance(entry, dict):
            declare = "; declare it under `artifacts:` in the workflow" if not section else ""
            raise SpecError(f"unknown artifact '{name}'{suggest(name, section)}{declare}", where=ARTIFACT)
        entry["uri"] = uri
        if "content" in entry and not uri.startswith("file://"):
            del entry["content"]  # inline content only makes sense for a file:// artifact
        entry_locs = section_locs.leaf(name)
        entry_locs["uri"] = LocMap.at(ARTIFACT, 0)
        section_locs[name] = entry_locs


def _variable_scopes(data: dict[str, Any], locs: LocMap) -> list[Scope]:
    """(variables, locations) of the top level and of `workflow` (empty when absent)."""
    scopes: list[Scope] = []
    for owner, owner_locs in ((data, locs), _workflow(data, locs)):
        variables = owner.get("variables")
        if isinstance(variables, dict):
            scopes.append((variables, owner_locs.leaf("variables")))
        else:
            scopes.append(({}, LocMap.at(SET, 0)))
    return scopes


def _workflow(data: dict[str, Any], locs: LocMap) -> Scope:
    workflow = data.get("workflow")
    if isinstance(workflow, dict):
        return workflow, locs.leaf("workflow")
    return {}, LocMap.at(SET, 0)


def _set_variable(scopes: list[Scope], name: str, raw: str) -> None:
    found = [(variables, var_locs) for variables, var_locs in scopes if isinstance(variables.get(name), dict)]
    if not found:
        known = [n for variables, _ in scopes for n in variables]
        raise SpecError(f"unknown variable '{name}'{suggest(name, known)}", where=SET)
    for variables, var_locs in found:
        entry = variables[name]
        entry_locs = var_locs.leaf(name)
        var_locs[name] = entry_locs
        type_name = _type_of(entry)
        text = raw.strip()
        if text.startswith("[") and text.endswith("]") and type_name != "list":
            _set_domain(entry, entry_locs, name, text, type_name)
        else:
            entry["value"] = raw if type_name is not None else _untyped(raw)
            entry_locs["value"] = LocMap.at(SET, 0)


def _set_domain(entry: dict[str, Any], locs: LocMap, name: str, text: str, type_name: str | None) -> None:
    """`--set NAME=[a,b]`: the variable becomes a sweep over these values."""
    domain = _parse(text)
    if not isinstance(domain, list) or not domain:
        raise SpecError(f"'{name}' needs a non-empty list like [a,b,c], got {text!r}", where=SET)
    entry["domain"] = domain
    locs["domain"] = LocMap.at(SET, 0)
    try:
        typed = [coerce(v, type_name) for v in domain]
        current_in_domain = coerce(entry.get("value"), type_name) in typed
    except ValueError:
        current_in_domain = False  # validation reports the bad element
    if not current_in_domain:
        entry["value"] = domain[0]
        locs["value"] = LocMap.at(SET, 0)


def _set_field(data: dict[str, Any], locs: LocMap, parts: list[str], raw: str) -> None:
    section_name, name, field = parts
    section, section_locs = _mapping(data, locs, section_name)
    entry = section.get(name)
    if not isinstance(entry, dict):
        what = section_name.rstrip("s")
        raise SpecError(f"unknown {what} '{name}'{suggest(name, section)}", where=SET)
    entry[field] = _parse(raw)
    entry_locs = section_locs.leaf(name)
    entry_locs[field] = LocMap.at(SET, 0)
    section_locs[name] = entry_locs


def _mapping(data: dict[str, Any], locs: LocMap, key: str) -> Scope:
    """`data[key]` as a mapping (created empty when absent) and its locations."""
    value = data.get(key)
    if not isinstance(value, dict):
        value = data[key] = {}
        locs[key] = LocMap.at(SET, 0)
    child = locs.leaf(key)
    locs[key] = child
    return value, child


def _type_of(entry: dict[str, Any]) -> str | None:
    type_name = entry.get("type")
    if not isinstance(type_name, str):
        return None
    try:
        return canonical_type(type_name)
    except ValueError:
        return None  # validation reports the unknown type at its line


def _untyped(raw: str) -> Any:
    """An untyped variable's value is read like a YAML scalar ("8" -> 8, "1:30:00" stays text)."""
    text = raw.strip()
    return raw if not text else resolve_plain(text)


def _parse(raw: str) -> Any:
    """A field value from the command line, read as YAML (`[a, b]`, `8`, `debug`, `1:30:00`)."""
    if not raw.strip():
        return raw
    try:
        return parse_text(raw, SET).data
    except SpecError as exc:
        raise SpecError(f"cannot read value {raw!r}: {exc.message}", where=SET) from None


def _check_expression(raw: str, flag: str) -> None:
    if "${{" in raw:
        from sflow.schema.expressions import check_syntax

        check_syntax(raw, where=flag)
