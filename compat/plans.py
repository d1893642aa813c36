"""One neutral form for the plans of nv-sflow and sflow, and the comparison of two of them.

What is compared, and what is left out (each left-out item is explained in docs/compat.md):
- tasks and their order, each task's dependencies, backend and operator type;
- nodes (by index in the backend's allocation) and GPUs (`CUDA_VISIBLE_DEVICES`, per node);
- the srun line's options that shape the step (nodes, node list, task counts, CPUs, memory,
  time, MPI, containers, the operator's `extra_args`), not those that only say how each tool
  runs and watches a step (`STEP_MECHANICS`);
- the salloc line's options (account, partition, nodes, time, job name, `extra_args`);
- the environment: every variable nv-sflow gives a task must be there with the same value
  (paths, node names and addresses written relative to the run); sflow may add its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Options of srun/salloc that take no value.
FLAGS = frozenset(
    {
        "--exclusive", "--overlap", "--exact", "--label", "--unbuffered", "--kill-on-bad-exit", "--no-shell",
        "--container-writable", "--container-readonly", "--container-remap-root", "--no-container-remap-root",
        "--container-mount-home", "--no-container-mount-home", "-l", "-u",
    }
)  # fmt: skip
SHORT = {
    "-N": "--nodes",
    "-n": "--ntasks",
    "-c": "--cpus-per-task",
    "-w": "--nodelist",
    "-t": "--time",
    "-p": "--partition",
    "-A": "--account",
    "-G": "--gpus",
    "-C": "--constraint",
    "-J": "--job-name",
    "-x": "--exclude",
    "-q": "--qos",
    "-l": "--label",
    "-u": "--unbuffered",
}
# How each tool starts and watches a step, not what the step is: not compared.
STEP_MECHANICS = frozenset(
    {"--jobid", "--job-name", "--output", "--unbuffered", "--export", "--label", "--overlap", "--exact"}
    | {"--kill-on-bad-exit"}
)
ALLOCATION_MECHANICS = frozenset({"--no-shell"})
NOT_COMPARED_ENV = frozenset({"CUDA_VISIBLE_DEVICES"})  # compared as the task's GPUs


@dataclass
class TaskPlan:
    backend: str
    operator: str
    deps: tuple[str, ...]
    nodes: tuple[int, ...]
    gpus: str | None
    step: dict[str, str] | None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    order: list[str]
    tasks: dict[str, TaskPlan]
    allocations: dict[str, dict[str, str]]


# -- command lines --------------------------------------------------------------------------------


def options(argv: list[str]) -> dict[str, str]:
    """`--opt value`, `--opt=value`, `-N 2` and flags, up to the command srun runs (`bash ...`).

    A repeated option keeps its last value; `--x=a=b`-style options keep one entry per key.
    """
    out: dict[str, str] = {}
    i = 1
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            break
        name, sep, value = word.partition("=")
        name = SHORT.get(name, name)
        if not sep and name not in FLAGS and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value, i = argv[i + 1], i + 1
        if "=" in value and name in ("--env", "--container-env"):
            name, value = f"{name}={value.split('=', 1)[0]}", value.split("=", 1)[1]
        out[name] = value if (sep or value) else ""
        i += 1
    return out


def seconds(value: str) -> str:
    """A Slurm time (`90`, `1:30:00`, `1-00:00:00`) as seconds, so spellings compare equal."""
    days, _, rest = value.rpartition("-") if "-" in value else ("", "", value)
    parts = [int(p) for p in rest.split(":")] if rest.replace(":", "").isdigit() else None
    if parts is None:
        return value
    if len(parts) == 1:
        total = parts[0] * 60
    elif len(parts) == 2:
        total = parts[0] * 60 + parts[1]
    else:
        total = parts[0] * 3600 + parts[1] * 60 + parts[2]
    return str(total + int(days or 0) * 86400)


def step_shape(argv: list[str] | None, names: dict[str, int], paths: Any = None) -> dict[str, str] | None:
    """The options of an srun line that shape the step, node names as indices, folders relative."""
    if not argv:
        return None
    opts = {k: v for k, v in options(argv).items() if k not in STEP_MECHANICS}
    if paths is not None:
        opts = {k: paths.text(v) for k, v in opts.items()}
    nodes = int(opts.get("--nodes") or 0)
    if "--nodelist" in opts:
        listed = [n for n in opts["--nodelist"].split(",") if n]
        opts["--nodelist"] = ",".join(str(names.get(n, n)) for n in listed)
        nodes = nodes or len(listed)
    if nodes:
        opts["--nodes"] = str(nodes)
        per_node = opts.get("--ntasks-per-node")
        opts.setdefault("--ntasks", str(nodes * int(per_node)) if per_node else str(nodes))
    if "--time" in opts:
        opts["--time"] = seconds(opts["--time"])
    return opts


def allocation_shape(argv: list[str] | None) -> dict[str, str]:
    if not argv:
        return {}
    opts = {k: v for k, v in options(argv).items() if k not in ALLOCATION_MECHANICS}
    if "--time" in opts:
        opts["--time"] = seconds(opts["--time"])
    return opts


# -- the two readers ------------------------------------------------------------------------------


class _Paths:
    """Rewrites run-specific values: folders, node names and addresses, the job id."""

    def __init__(self, pairs: list[tuple[str, str]], nodes: dict[str, dict[str, Any]]) -> None:
        self.pairs = sorted(pairs, key=lambda p: -len(p[0]))
        self.names = {b: {n: f"node{i}" for i, n in enumerate(v["names"])} for b, v in nodes.items()}
        self.ips = {b: {ip: f"ip{i}" for i, ip in enumerate(v["ips"]) if ip} for b, v in nodes.items()}
        self.uniform_ips = {b: len(v["ips"]) > 1 and len(set(v["ips"])) == 1 for b, v in nodes.items()}

    def text(self, text: str) -> str:
        for old, new in self.pairs:
            text = text.replace(old, new)
        return text

    def value(self, key: str, text: str, backend: str) -> str:
        if key == "SFLOW_BACKEND_JOB_ID":
            return "$JOB" if text else text  # a job not granted yet: each tool's placeholder
        for old, new in self.pairs:
            text = text.replace(old, new)
        words = text.split(",")
        names, ips = self.names.get(backend, {}), self.ips.get(backend, {})
        if key.endswith("_IPS") or key.endswith("_IP"):  # an address may be a name until resolved
            if any(w in ips for w in words) and not self.uniform_ips.get(backend, False):
                return ",".join(ips.get(w, w) for w in words)
        elif any(w in names for w in words):
            return ",".join(names.get(w, w) for w in words)
        return text


def from_nvsflow(data: dict[str, Any], workspace: Path, output: Path) -> Plan:
    tasks = data["tasks"]
    run_dir = next(
        (
            t["env"]["SFLOW_WORKFLOW_OUTPUT_DIR"]
            for t in tasks.values()
            if "SFLOW_WORKFLOW_OUTPUT_DIR" in t["env"]
        ),
        str(output / "_dry_run"),
    )
    nodes = {
        b: {"names": [n["name"] for n in v["nodes"]], "ips": [n["ip_address"] for n in v["nodes"]]}
        for b, v in data["backends"].items()
    }
    paths = _Paths([(run_dir, "$RUN"), (str(output), "$OUT"), (str(workspace), "$WS")], nodes)
    out = {}
    for name, t in tasks.items():
        index = {n: i for i, n in enumerate(nodes.get(t["backend"], {}).get("names", []))}
        out[name] = TaskPlan(
            backend=t["backend"],
            operator=t["operator"],
            deps=tuple(sorted(t["deps"])),
            nodes=tuple(int(i) for i in t["nodes"]),
            gpus=t["gpus"] or None,
            step=step_shape(t["argv"], index, paths),
            env={
                k: paths.value(k, v, t["backend"]) for k, v in t["env"].items() if k not in NOT_COMPARED_ENV
            },
        )
    allocations = {b: allocation_shape(v["salloc"]) for b, v in data["backends"].items() if v["salloc"]}
    return Plan(order=list(data["order"]), tasks=out, allocations=allocations)


def from_sflow(data: dict[str, Any], workspace: Path, output: Path) -> Plan:
    nodes = {
        b: {"names": [n["name"] for n in v["nodes"]], "ips": [n["ip_address"] for n in v["nodes"]]}
        for b, v in data["backends"].items()
    }
    job_ids = [(v["job_id"], "$JOB") for v in data["backends"].values() if v.get("job_id")]
    paths = _Paths(
        [(str(output / "<run-id>"), "$RUN"), (str(output), "$OUT"), (str(workspace), "$WS")], nodes
    )
    paths.pairs += job_ids
    out = {}
    for t in data["tasks"]:
        index = {n: i for i, n in enumerate(nodes[t["backend"]]["names"])}
        gpus = {",".join(map(str, g)) for g in t["gpus"]}
        step = step_shape(t["command"], index, paths) if t["operator_type"] == "srun" else None
        if step is not None and t["gpus"] and step.get("--gres") == f"gpu:{len(t['gpus'][0])}":
            del step["--gres"]  # sflow asks Slurm for the planned GPUs; compared as `gpus`
        out[t["name"]] = TaskPlan(
            backend=t["backend"],
            operator=t["operator_type"],
            deps=tuple(sorted(t["after"])),
            nodes=tuple(index[n] for n in t["nodes"]),
            gpus="|".join(sorted(gpus)) if gpus else None,
            step=step,
            env={
                k: paths.value(k, v, t["backend"]) for k, v in t["env"].items() if k not in NOT_COMPARED_ENV
            },
        )
    allocations = {b: allocation_shape(v["request"]) for b, v in data["backends"].items() if v["request"]}
    return Plan(order=[t["name"] for t in data["tasks"]], tasks=out, allocations=allocations)


# -- the comparison -------------------------------------------------------------------------------


def compare(theirs: Plan, ours: Plan) -> list[str]:
    """Every difference, as one line each (empty: the same plan)."""
    diffs: list[str] = []
    missing = [n for n in theirs.order if n not in ours.tasks]
    extra = [n for n in ours.order if n not in theirs.tasks]
    if missing or extra:
        diffs.append(f"tasks: sflow lacks {missing} and adds {extra}")
    elif theirs.order != ours.order:
        diffs.append(f"order: {theirs.order} vs {ours.order}")
    for name in theirs.order:
        if name in ours.tasks:
            diffs.extend(f"{name}: {d}" for d in _task_diffs(theirs.tasks[name], ours.tasks[name]))
    for backend, opts in theirs.allocations.items():
        if backend in ours.allocations and opts != ours.allocations[backend]:
            diffs.append(f"salloc of {backend}: {_dict_diff(opts, ours.allocations[backend])}")
        elif backend not in ours.allocations and any(t.backend == backend for t in ours.tasks.values()):
            diffs.append(f"salloc of {backend}: sflow makes no allocation")
    return diffs


def _task_diffs(a: TaskPlan, b: TaskPlan) -> list[str]:
    diffs = []
    for what in ("backend", "operator", "deps", "nodes", "gpus"):
        if getattr(a, what) != getattr(b, what):
            diffs.append(f"{what} {getattr(a, what)} vs {getattr(b, what)}")
    if a.step != b.step:
        diffs.append(f"srun {_dict_diff(a.step or {}, b.step or {})}")
    env = {k: v for k, v in a.env.items() if b.env.get(k) != v}
    if env:
        shown = ", ".join(f"{k}={v!r} vs {b.env.get(k)!r}" for k, v in sorted(env.items())[:4])
        diffs.append(f"env {shown}" + (f" (+{len(env) - 4})" if len(env) > 4 else ""))
    return diffs


def _dict_diff(a: dict[str, str], b: dict[str, str]) -> str:
    keys = sorted(set(a) | set(b))
    parts = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
    return "; ".join(parts)
