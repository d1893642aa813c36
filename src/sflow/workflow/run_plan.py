"""What a YAML run will do before it starts: its tasks, their fingerprints and, when it
resumes an earlier run, which tasks it keeps and why the others run again.

The dry run shows it; the run follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from sflow.workflow.plan import Plan, expand, select

if TYPE_CHECKING:
    from sflow.record.resume import Decision, EarlierRun
    from sflow.schema import WorkflowSpec


class RunPlan(msgspec.Struct):
    """Task instances of one run, and the resume decision of each (empty when not resuming)."""

    plan: Plan
    fingerprints: dict[str, str] = msgspec.field(default_factory=dict)
    earlier: EarlierRun | None = None
    decisions: dict[str, Decision] = msgspec.field(default_factory=dict)

    def kept(self) -> list[str]:
        return [n for n in self.plan.order if n in self.decisions and self.decisions[n].keep]

    def plan_record(self) -> dict[str, dict[str, Any]]:
        """What `plan.json` holds per task."""
        out: dict[str, dict[str, Any]] = {}
        for inst in self.plan.instances:
            entry: dict[str, Any] = {"task": inst.task.name, "deps": list(inst.deps)}
            if inst.name in self.fingerprints:
                entry["fingerprint"] = self.fingerprints[inst.name]
            if is_service(inst):
                entry["service"] = True
            if inst.request.asks_gpus:
                entry["gpus"] = True
            if inst.name in self.decisions:
                decision = self.decisions[inst.name]
                entry["resume"] = ("keep: " if decision.keep else "run: ") + decision.reason
            out[inst.name] = entry
        return out

    def resume_lines(self) -> list[str]:
        """One line per task: `resume: keep prepare (succeeded, unchanged)`."""
        if self.earlier is None:
            return []
        lines = [f"resuming run {self.earlier.run_id} ({self.earlier.run_dir})"]
        for name in self.plan.order:
            decision = self.decisions[name]
            lines.append(f"resume: {'keep' if decision.keep else 'run'} {name} ({decision.reason})")
        return lines

    def resume_summary(self, limit: int = 8) -> str:
        """`resuming run X: keep 3 (a, b, c); run 2: d (failed (exit code 1)), e (after 'd' ...)`."""
        if self.earlier is None:
            return ""
        kept = self.kept()
        again = [n for n in self.plan.order if n not in kept]
        text = f"resuming run {self.earlier.run_id}: keep {len(kept)}"
        if kept:
            text += f" ({_names(kept, limit)})"
        text += f"; run {len(again)}"
        if again:
            shown = [f"{n} ({self.decisions[n].reason})" for n in again[:limit]]
            text += (
                ": " + ", ".join(shown) + (f", ... {len(again) - limit} more" if len(again) > limit else "")
            )
        return text


def plan_run(
    spec: WorkflowSpec,
    output_dir: Path,
    *,
    tasks: Sequence[str] = (),
    with_deps: bool = True,
    resume: str | None = None,
    fingerprints: bool = True,
) -> RunPlan:
    """Expand the workflow, keep the selected tasks, and decide what a resumed run keeps.

    `resume` is a run id (or its unique start), a run directory or `latest` (the latest run
    of this workflow under `output_dir`).
    """
    plan = expand(spec)
    if tasks:
        plan = select(plan, tasks, with_deps)
    if not (fingerprints or resume):
        return RunPlan(plan)
    from sflow.workflow.fingerprints import task_fingerprints

    out = RunPlan(plan, task_fingerprints(spec, plan))
    if resume:
        out.earlier, out.decisions = _resume(spec, out, output_dir, resume)
    return out


def _resume(
    spec: WorkflowSpec, run_plan: RunPlan, output_dir: Path, ref: str
) -> tuple[EarlierRun, dict[str, Decision]]:
    from sflow.record.resume import EarlierRun, check_resumable, decide
    from sflow.record.runs import find_run
    from sflow.record.status import run_alive

    run_dir = find_run(output_dir, ref, workflow=spec.workflow.name)
    earlier = EarlierRun.load(run_dir)
    check_resumable(earlier, spec.workflow.name, alive=run_alive(run_dir))
    plan = run_plan.plan
    services = {i.name for i in plan.instances if is_service(i)}
    deps = {i.name: i.deps for i in plan.instances}
    return earlier, decide(earlier, run_plan.fingerprints, deps, plan.order, services)


def is_service(inst: Any) -> bool:
    """A task with a readiness probe: its dependents start once it is ready, while it runs."""
    probes = inst.task.probes
    return bool(probes is not None and probes.readiness)


def _names(names: list[str], limit: int) -> str:
    return ", ".join(names[:limit]) + (f", ... {len(names) - limit} more" if len(names) > limit else "")
