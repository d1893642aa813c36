"""Plans of nv-sflow 0.3.1 for the conformance harness (runs in nv-sflow's own virtualenv).

Reads a JSON list of cases on stdin, writes one JSON object per case on stdout (a line each):
whether nv-sflow accepts the case with `sflow run --dry-run`, and if so its plan in the
harness's neutral form (see `compat/plan_form.md`): tasks in order, dependencies, nodes and
GPUs, the environment, the srun and salloc command lines.

Nothing here may reach a cluster: nv-sflow's dry run allocates nothing, and the salloc line is
taken from the backend by stopping it before it starts anything (and the harness puts failing
stand-ins for every Slurm command first on PATH, so a slip would show as an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from typing import Any

# nv-sflow's own package (also named `sflow`), not ours: this file runs in nv-sflow's virtualenv
nv_app = importlib.import_module("sflow.app.sflow")
nv_cli = importlib.import_module("sflow.cli").app

SCRIPT_PLACEHOLDER = "<script>"


class _Stop(Exception):
    """Raised in place of starting salloc."""


_ORIGINAL_BUILD_STATE = nv_app.build_state


def _captured() -> dict[str, Any]:
    """Hook nv-sflow's run where it has built the planned state (tasks, graph, backends)."""
    seen: dict[str, Any] = {}

    async def hook(*args: Any, **kwargs: Any) -> Any:
        state = await _ORIGINAL_BUILD_STATE(*args, **kwargs)
        seen["state"] = state
        return state

    nv_app.build_state = hook
    return seen


def _salloc_argv(backend: Any) -> list[str] | None:
    """The salloc command line the backend would run, taken at the point it would start it."""
    launcher = getattr(backend, "_subprocess_launcher", None)
    if launcher is None or type(backend).__name__ != "SlurmBackend":
        return None
    seen: list[list[str]] = []

    async def refuse(command: Any, **_: Any) -> int:
        seen.append(list(command.as_list()))
        raise _Stop

    launcher.run_async = refuse
    with contextlib.suppress(_Stop):
        asyncio.run(backend.allocate())
    return seen[0] if seen else None


def _task(t: Any, node_index: dict[str, dict[str, int]]) -> dict[str, Any]:
    envs = {str(k): str(v) for k, v in dict(t.envs).items()}
    backend = str(t.backend_name)
    names = [n for n in envs.get("SFLOW_TASK_ASSIGNED_NODE_NAMES", "").split(",") if n]
    op_conf = getattr(t.operator, "config", None)
    out: dict[str, Any] = {
        "backend": backend,
        "operator": str(getattr(op_conf, "type", "")),
        "nodes": [node_index.get(backend, {}).get(n, n) for n in names],
        "gpus": envs.get("CUDA_VISIBLE_DEVICES"),
        "env": envs,
        "argv": None,
    }
    if out["operator"] == "srun":
        command = t.operator.build_command(task_name=t.name, script=[SCRIPT_PLACEHOLDER], envs=envs)
        out["argv"] = list(command.as_list())[:-1]  # without the script
    return out


def plan_case(case: dict[str, Any]) -> dict[str, Any]:
    """One case through nv-sflow's `run --dry-run`, as a neutral plan (or the reason it refused)."""
    seen = _captured()
    args = ["run", *case["args"], "--dry-run", "--workspace-dir", case["workspace"]]
    args += ["--output-dir", case["output"], "--log-level", "error"]
    sink = io.StringIO()
    code = 0
    cwd = os.getcwd()
    try:
        os.chdir(case["workspace"])
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            nv_cli(args, standalone_mode=False, prog_name="sflow")
    except SystemExit as exc:
        code = int(exc.code or 0)
    except BaseException as exc:  # typer raises click's own exceptions in this mode
        code = int(getattr(exc, "exit_code", 1) or 1)
        sink.write(f"{type(exc).__name__}: {exc}\n")
    finally:
        os.chdir(cwd)
    if code != 0 or "state" not in seen:
        return {"accepted": False, "error": _last_error(sink.getvalue())}
    state = seen["state"]
    graph = state.workflow.task_graph
    order = list(graph.dag.topological_sort())
    backends = state.backends
    node_index = {
        name: {n.name: i for i, n in enumerate(getattr(b.allocation, "nodes", None) or [])}
        for name, b in backends.items()
    }
    tasks = {name: _task(graph.get_task(name), node_index) for name in order}
    for name in order:
        tasks[name]["deps"] = sorted(graph.dag.get_dependencies(name))
    return {
        "accepted": True,
        "order": order,
        "tasks": tasks,
        "backends": {
            name: {
                "type": type(b).__name__.removesuffix("Backend").lower(),
                "nodes": [
                    {"name": n.name, "ip_address": getattr(n, "ip_address", "")}
                    for n in getattr(b.allocation, "nodes", None) or []
                ],
                "salloc": _salloc_argv(b),
            }
            for name, b in backends.items()
        },
    }


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("✗") or "error" in line.lower():
            return line.lstrip("✗ ").strip()[:400]
    return (lines[-1] if lines else "refused")[:400]


def main() -> None:
    cases = json.load(sys.stdin)
    os.environ["SFLOW_OFFLOAD_TASK_LOGS"] = "0"  # plain srun lines: no log redirection wrapper
    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        del os.environ[key]
    for case in cases:
        try:
            plan = plan_case(case)
        except Exception:
            plan = {"accepted": False, "error": "harness: " + traceback.format_exc(limit=3)[-400:]}
        sys.stdout.write(json.dumps({"id": case["id"], **plan}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
