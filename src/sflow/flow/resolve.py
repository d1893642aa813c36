"""From declared tasks to a checked plan: parameter names become dependencies.

The rule (the same as in Wove): a parameter whose name is a task of the flow receives that
task's result; one whose name is a flow input receives the input. For a mapped task, the
item goes to the parameter `map_param=` names, else to the one parameter that is neither a
task nor an input (the one without a default, when several are); when that leaves a choice,
the flow is rejected rather than guessed. Any other parameter must have a default.
Everything wrong is reported at once, naming the function and the parameter, before
anything runs.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sflow.dispatch.config import Environment, resolve_environment
from sflow.dispatch.errors import DispatchConfigError
from sflow.dispatch.executor import executor_class
from sflow.engine import RetryPolicy
from sflow.engine.graph import Graph
from sflow.errors import PlanError, suggest
from sflow.flow.errors import FlowDefinitionError, FlowWarning
from sflow.flow.task import TaskSpec


@dataclass(frozen=True)
class ResolvedTask:
    """A task whose inputs, environment and effective options are known."""

    spec: TaskSpec
    deps: tuple[str, ...]  # upstream tasks (engine dependencies)
    feeds: tuple[str, ...]  # parameter names fed from tasks or inputs
    item_param: str | None  # mapped tasks: the parameter receiving each item
    item_positional: bool  # the item parameter is the first one: pass it positionally
    map_source: str | None  # mapped over this task's result or input
    environment: Environment
    retries: RetryPolicy  # a map's: each item's
    timeout: float | None  # a map's: each item's attempt
    max_concurrent: int | None
    map_timeout: float | None = None  # the whole map

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mapped(self) -> bool:
        return self.spec.options.mapped

    @property
    def local(self) -> bool:
        """Runs in this process (the `local` executor): no pickling, no submission."""
        return self.environment.executor == "local"

    def kwargs(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments from upstream results and inputs."""
        return {name: values[name] for name in self.feeds}

    def item_caller(self, values: Mapping[str, Any]) -> Callable[[Any], Any]:
        """`call(item)` for one map item, with the upstream arguments bound once."""
        bound = functools.partial(self.spec.fn, **self.kwargs(values))
        if self.item_positional:
            return bound
        key = self.item_param
        assert key is not None
        return lambda item: bound(**{key: item})

    def item_args(self, base: Mapping[str, Any], item: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """`(args, kwargs)` of one map item, for executors that ship the call elsewhere."""
        if self.item_positional:
            return (item,), dict(base)
        assert self.item_param is not None
        return (), {**base, self.item_param: item}


def resolve(
    flow_name: str, specs: Sequence[TaskSpec], inputs: Mapping[str, Any], environment: str | None
) -> list[ResolvedTask]:
    """Check the whole flow and resolve every task; raises `FlowDefinitionError` listing problems."""
    tasks = {s.name: s for s in specs}
    problems = [f"input {n!r} has the same name as a task" for n in inputs if n in tasks]
    resolved: list[ResolvedTask] = []
    for spec in specs:
        found, errors = _resolve_one(spec, tasks, inputs, environment)
        problems.extend(f"task {spec.label}: {e}" for e in errors)
        if found is not None:
            resolved.append(found)
    if problems:
        raise FlowDefinitionError(f"flow '{flow_name}': " + "; ".join(problems))
    try:
        Graph({t.name: t.deps for t in resolved}).order()
    except PlanError as exc:
        raise FlowDefinitionError(f"flow '{flow_name}': {exc}") from exc
    return resolved


def _resolve_one(
    spec: TaskSpec, tasks: Mapping[str, TaskSpec], inputs: Mapping[str, Any], default_env: str | None
) -> tuple[ResolvedTask | None, list[str]]:
    """One task resolved, or the list of what is wrong with it."""

    def known(name: str) -> bool:
        return name in tasks or name in inputs

    errors: list[str] = []
    item_param, item_positional = _item_param(spec, known, errors) if spec.options.mapped else (None, False)
    map_source = spec.options.map if isinstance(spec.options.map, str) else None
    if map_source is not None and not known(map_source):
        hint = suggest(map_source, [*tasks, *inputs])
        errors.append(f"map={map_source!r} is neither a task nor an input of the flow{hint}")
    if not (spec.options.mapped and item_param is None):  # else the item's error says it all
        errors += _parameter_errors(spec, known, item_param, tasks, inputs)
    try:
        env = resolve_environment(spec.options.environment or default_env)
        errors += _resource_errors(spec, env)
    except DispatchConfigError as exc:
        return None, [*errors, str(exc)]
    if errors:
        return None, errors
    feeds = tuple(p.name for p in spec.params if known(p.name))
    deps = [n for n in (*feeds, map_source) if n is not None and n in tasks]
    options = spec.options
    resolved = ResolvedTask(
        spec=spec,
        deps=tuple(dict.fromkeys(deps)),
        feeds=feeds,
        item_param=item_param,
        item_positional=item_positional,
        map_source=map_source,
        environment=env,
        retries=options.retries if options.retries is not None else env.retries,
        timeout=options.timeout if options.timeout is not None else env.timeout,
        max_concurrent=options.max_concurrent if options.max_concurrent is not None else env.max_concurrent,
        map_timeout=options.map_timeout,
    )
    return resolved, []


def _parameter_errors(
    spec: TaskSpec,
    known: Callable[[str], bool],
    item_param: str | None,
    tasks: Mapping[str, TaskSpec],
    inputs: Mapping[str, Any],
) -> list[str]:
    """Parameters that nothing will fill, and positional-only ones that would need filling."""
    errors = []
    for p in spec.params:
        if known(p.name) and not p.feedable:
            errors.append(f"positional-only parameter '{p.name}' cannot be fed")
        elif not known(p.name) and p.name != item_param and not p.has_default:
            errors.append(
                f"parameter '{p.name}' is neither a task nor an input of the flow, and has no default"
                f"{suggest(p.name, [*tasks, *inputs])} (tasks: {_names(tasks)}; inputs: {_names(inputs)})"
            )
    return errors


def _item_param(spec: TaskSpec, known: Callable[[str], bool], errors: list[str]) -> tuple[str | None, bool]:
    """The parameter receiving the map item, and whether it is passed positionally (the first one).

    `map_param=` names it; otherwise it is the one parameter that is neither a task nor an
    input and has no default, or the only parameter that is neither. Anything else is
    ambiguous, and an error: a guess would silently feed the items to the wrong parameter.
    """
    params = spec.params
    free = [p for p in params if not known(p.name)]
    chosen = spec.options.map_param
    if chosen is not None:
        names = [p.name for p in params]
        if chosen not in names:
            hint = suggest(chosen, names)
            errors.append(
                f"map_param={chosen!r} is not a parameter of the function{hint} (parameters: {', '.join(names) or 'none'})"
            )
            return None, False
        if known(chosen):
            errors.append(
                f"map_param={chosen!r} names a task or input of the flow, which feeds that parameter"
            )
            return None, False
        param = next(p for p in params if p.name == chosen)
    else:
        required = [p for p in free if not p.has_default]
        candidates = required if required else free
        if not candidates:
            errors.append(
                "a mapped task needs a parameter for the item (one that is neither a task nor an input)"
            )
            return None, False
        if len(candidates) > 1:
            listed = ", ".join(f"'{p.name}'" for p in candidates)
            errors.append(
                f"which parameter receives the map item is ambiguous ({listed}: none is a task or an "
                f"input of the flow); name it with map_param='{candidates[-1].name}' (or another)"
            )
            return None, False
        param = candidates[0]
    first = params[0] is param
    if not param.feedable:  # positional-only: only the first parameter can take it
        if first:
            return param.name, True
        errors.append(f"positional-only parameter '{param.name}' cannot receive the map item")
        return None, False
    return param.name, first and param.kind is not inspect.Parameter.KEYWORD_ONLY


def _resource_errors(spec: TaskSpec, env: Environment) -> list[str]:
    """Resource keys the environment's executor does not know; a warning when it ignores them all."""
    resources = spec.options.resources
    executor = executor_class(env.executor) if resources else None
    if executor is None:
        return []
    if executor.resource_keys is None:
        message = (
            f"task {spec.label}: resources ({', '.join(resources)}) are ignored: it runs in environment "
            f"'{env.name}' (executor {env.executor}), which reserves nothing; route it to an environment "
            "whose executor does (slurm) with environment=..."
        )
        warnings.warn_explicit(message, FlowWarning, spec.def_file or "<flow>", spec.def_line)
        return []
    known = executor.resource_keys
    return [
        f"unknown resource {key!r} for executor {env.executor}{suggest(key, known)} (known: {', '.join(sorted(known))})"
        for key in resources
        if key not in known
    ]


def _names(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"
