"""Resuming a flow: the functions an earlier run of it already computed, unchanged, are not
called again; their stored results are loaded instead.

A function's fingerprint covers its code (its source text, or its bytecode where there is no
source), the flow inputs it takes (a digest of their pickles), the content of the files and
folders it declares with `reads=`, the options that decide its result (map, map_param,
environment, resources; not retries, timeouts or concurrency) and the fingerprints of the
tasks whose results it takes, so an edit reaches everything downstream. What the code reads
from elsewhere without declaring it (globals, closure variables, the functions it calls,
other files) is not covered: Python cannot tell those apart from what does not matter, so a
task says what else it depends on (a flow input for a value, `reads=` for a file). Results
are stored as `<run>/<task>/result.pkl` with sflow's pickling (cloudpickle), written once
the task succeeded.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import secrets
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.dispatch import pickling
from sflow.engine.graph import Graph
from sflow.flow.resolve import ResolvedTask
from sflow.record.fingerprint import chain, digest
from sflow.record.resume import Decision, EarlierRun, EarlierTask, check_resumable, decide
from sflow.record.runs import find_run
from sflow.record.status import run_alive

RESULT_FILE = "result.pkl"
COMPARED = (
    "resume: a task is kept when it succeeded and its code, the flow inputs it takes, the files "
    "its reads= names, its map, map_param, environment and resources, and the tasks it takes "
    "results from are unchanged; globals, closure variables, functions it calls and files not "
    "in reads= are not compared"
)


def fingerprints(tasks: Sequence[ResolvedTask], inputs: Mapping[str, Any]) -> dict[str, str]:
    """Each task's fingerprint, its upstream tasks' included."""
    taken = {n for t in tasks for n in t.feeds if n in inputs and n not in t.deps}
    values = {n: _value(inputs[n]) for n in taken}  # each input pickled once, however many take it
    own = {t.name: digest(_definition(t, values)) for t in tasks}
    return chain(own, {t.name: t.deps for t in tasks}, order(tasks))


def order(tasks: Sequence[ResolvedTask]) -> list[str]:
    """Task names, every one after those it takes results from."""
    return Graph({t.name: t.deps for t in tasks}).order()


@dataclass
class Resumed:
    """What a resumed flow keeps of an earlier run: per task keep or run and why, and the results
    it loaded for the tasks it keeps."""

    earlier: EarlierRun
    decisions: dict[str, Decision]
    results: dict[str, Any] = field(default_factory=dict)

    def kept(self) -> list[str]:
        return [n for n, d in self.decisions.items() if d.keep]

    def lines(self) -> list[str]:
        """For sflow.log: `resume: keep prepare (succeeded, unchanged)`, one per task."""
        head = f"resuming run {self.earlier.run_id} ({self.earlier.run_dir})"
        rows = [f"resume: {'keep' if d.keep else 'run'} {n} ({d.reason})" for n, d in self.decisions.items()]
        return [head, COMPARED, *rows]


def plan_resume(
    flow_name: str,
    output_dir: Path,
    ref: str | Path,
    tasks: Sequence[ResolvedTask],
    prints: Mapping[str, str],
) -> Resumed:
    """The earlier run `ref` names (an id, a folder or `latest`) and what this run keeps of it."""
    run_dir = find_run(output_dir, str(ref), workflow=flow_name)
    earlier = EarlierRun.load(run_dir)
    check_resumable(earlier, flow_name, alive=run_alive(run_dir))
    results: dict[str, Any] = {}

    def stored(name: str, task: EarlierTask) -> str:
        """Why a succeeded, unchanged task cannot be kept after all ('' when it can): its result."""
        if task.origin_dir is None:
            return ""
        try:
            results[name] = load_result(task.origin_dir)
        except FileNotFoundError:
            return "its result was not stored"
        except Exception as exc:  # a result that no longer loads (its class moved): compute it again
            return f"its stored result cannot be loaded ({type(exc).__name__}: {exc})"
        return ""

    deps = {t.name: t.deps for t in tasks}
    decisions = decide(earlier, prints, deps, order(tasks), set(), needs=stored)
    kept = {n for n, d in decisions.items() if d.keep}
    return Resumed(earlier, decisions, {n: v for n, v in results.items() if n in kept})


def store_result(task_dir: Path, value: Any) -> str:
    """Write a task's result beside its log; why it could not be, or ''."""
    try:
        data = pickling.dumps(value).data
    except Exception as exc:  # unpicklable (a lock, a socket) or no cloudpickle: rerun on resume
        return f"{type(exc).__name__}: {exc}"
    tmp = task_dir / f"{RESULT_FILE}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, task_dir / RESULT_FILE)
    return ""


def load_result(task_dir: Path) -> Any:
    """A result `store_result` wrote."""
    return pickle.loads((task_dir / RESULT_FILE).read_bytes())


def _definition(task: ResolvedTask, inputs: Mapping[str, str]) -> dict[str, Any]:
    options = task.spec.options
    source = options.map if isinstance(options.map, str) or options.map is None else _value(options.map)
    definition = {
        "code": _code(task.spec.fn),
        "inputs": {n: inputs[n] for n in task.feeds if n in inputs and n not in task.deps},
        "map": source,
        "map_param": task.item_param,
        "environment": task.environment.name,
        "resources": dict(options.resources),
    }
    if options.reads:  # only then: the fingerprints of tasks without reads= stay as they were
        definition["reads"] = {path: _content(Path(path)) for path in options.reads}
    return definition


def _content(path: Path) -> str:
    """A digest of a file's bytes, or of a folder's files (their paths inside it and bytes).

    A missing path is "missing" (it may be optional: a task that ran without it is kept while
    it stays missing); one that cannot be read never matches, so the task runs again.
    """
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return digest([[p.relative_to(path).as_posix(), _file_digest(p)] for p in files])
        return _file_digest(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable-" + secrets.token_hex(8)


def _file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _code(fn: Any) -> str:
    """A digest of what the function does: its source, else its bytecode and constants."""
    fn = inspect.unwrap(fn)
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        return _bytecode(code) if code is not None else digest(repr(fn))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bytecode(code: types.CodeType) -> str:
    consts = [_bytecode(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return digest([code.co_code.hex(), consts, list(code.co_names)])


def _value(value: Any) -> str:
    """A digest of a value's pickle; one that cannot be pickled never matches an earlier one."""
    try:
        data = pickling.dumps(value).data
    except Exception:
        return "unpicklable-" + secrets.token_hex(8)
    return hashlib.sha256(data).hexdigest()
