"""`sflow run --dry-run`: the plan as it would run, with every expression resolved.

Placement here is a simulation in dependency order (a task that does not fit reuses
what earlier tasks held); at run time placement follows the real order of events.
Rendering every script also proves the expressions before anything is started.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sflow.backends.base import Allocation, create_backend
from sflow.context import (
    add_backends,
    base_context,
    render_script,
    rendered_backend_config,
    task_env,
    task_scope,
)
from sflow.graph import Graph
from sflow.launchers.base import LaunchContext, get_launcher
from sflow.placement import Placement, Placer
from sflow.plan import TaskInstance, expand


def planned_allocations(
    spec: Any, instances: list[TaskInstance], context: dict[str, Any]
) -> dict[str, Allocation]:
    """The nodes each used backend would offer, as far as is known without asking anyone."""
    out = {}
    for name in dict.fromkeys(i.backend for i in instances):
        config = rendered_backend_config(spec, name, context)
        backend = create_backend(config.type, name, config)
        out[name] = backend.planned_allocation()
    return out


def simulate_placement(
    instances: list[TaskInstance], allocations: dict[str, Allocation]
) -> dict[str, Placement]:
    """A plausible placement for every instance, in dependency order; PlanError if one can never fit."""
    placers = {name: Placer(a.nodes, name) for name, a in allocations.items()}
    held: dict[str, list[Placement]] = {name: [] for name in allocations}
    by_name = {i.name: i for i in instances}
    out: dict[str, Placement] = {}
    for name in Graph({i.name: i.deps for i in instances}).order():
        inst = by_name[name]
        placer = placers[inst.backend]
        placer.candidates(inst.request, inst.name)
        placement = placer.try_place(inst.request, inst.name)
        if placement is None:  # pretend earlier tasks have finished
            for p in held[inst.backend]:
                placer.release(p)
            held[inst.backend].clear()
            placement = placer.try_place(inst.request, inst.name)
            assert placement is not None
        held[inst.backend].append(placement)
        out[name] = placement
    return out


def describe_plan(spec: Any, workspace: Path, output_dir: Path) -> str:
    instances = expand(spec)
    run_dir = output_dir / "<run-id>"
    context = base_context(spec, workspace, run_dir, write_artifacts=False)
    allocations = planned_allocations(spec, instances, context)
    add_backends(context, spec, allocations)
    placements = simulate_placement(instances, allocations)
    lines = [f"workflow: {spec.workflow.name}  ({len(instances)} task(s))"]
    for name, alloc in allocations.items():
        nodes = ", ".join(f"{n.name}({n.num_gpus} gpu)" if n.num_gpus else n.name for n in alloc.nodes)
        lines.append(f"backend {name} [{spec.backend_type(name)}]: {nodes}")
    by_name = {i.name: i for i in instances}
    base_env = dict(os.environ)
    for step, name in enumerate(Graph({i.name: i.deps for i in instances}).order(), 1):
        inst = by_name[name]
        placement = placements[name]
        scope = task_scope(context, inst, placement)
        script = render_script(inst, scope)
        task_dir = run_dir / name
        env = task_env(spec, inst, scope, placement, workspace, output_dir, run_dir, task_dir)
        ctx = LaunchContext(
            task=name,
            script_path=task_dir / f"{name}.sh",
            env=env,
            cwd=workspace,
            log_path=task_dir / f"{name}.log",
            placement=placement,
            allocation=allocations[inst.backend],
            operator=inst.operator,
            base_env=base_env,
        )
        argv = get_launcher(inst.operator.type).build(ctx).argv
        lines.append(_describe_task(step, inst, placement, argv, script))
    return "\n".join(lines)


def _describe_task(step: int, inst: TaskInstance, placement: Placement, argv: list[str], script: str) -> str:
    import shlex

    where = ", ".join(placement.node_names)
    if placement.gpus:
        where += " gpus " + ";".join(",".join(map(str, g)) for g in placement.gpus)
    head = [
        f"\n{step}. {inst.name}",
        f"   backend: {inst.backend}  operator: {inst.operator.name}  nodes: {where}",
    ]
    if inst.deps:
        head.append(f"   after: {', '.join(inst.deps)}")
    if inst.sweep:
        head.append("   sweep: " + ", ".join(f"{k}={v}" for k, v in inst.sweep.items()))
    head.append(f"   command: {shlex.join(argv)}")
    body = [f"   | {line}" for line in script.splitlines()[1:]]
    return "\n".join(head + body)
