"""The `process` executor: calls run in a local process pool, shipped as cloudpickle payloads.

A stand-in for remote execution that needs no network: the callable, its arguments, its
value and its exception all cross a process boundary, so whatever works here can be
pickled for a Slurm job too. A pool worker that is already running a call cannot be
stopped individually; `aclose` terminates the whole pool, so nothing outlives it.

As with any multiprocessing pool started by "forkserver" or "spawn", a main *script* that
uses this executor needs an `if __name__ == "__main__":` guard: every pool process
re-imports it. Without one, the re-imported script would run its flow again inside the
pool's start-up and the caller would wait forever; instead the pool process exits at once
(`refuse_in_pool_start`) and the caller's call fails with a message naming the guard
(`_died_error`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sflow.dispatch import _deps, outcome, pickling
from sflow.dispatch.errors import DispatchConfigError, DispatchJobError
from sflow.dispatch.executor import Executor, Handle
from sflow.dispatch.invoke import invoke
from sflow.dispatch.options import parse_options


@dataclass
class ProcessOptions:
    """`executor_config` of the process executor."""

    max_workers: int | None = None  # pool size (default: max_concurrent, else the CPU count)
    max_concurrent: int | None = None  # calls running at once (the pool size)
    timeout: float | None = None  # default per-call timeout in seconds
    mp_context: str = "forkserver"  # "fork" copies locks held by this process's threads mid-flight

    def __post_init__(self) -> None:
        if self.mp_context not in multiprocessing.get_all_start_methods():
            raise ValueError(f"mp_context {self.mp_context!r} is not available here")


def refuse_in_pool_start(what: str) -> None:
    """Exit if this process is a pool process importing `__main__` (a guardless main script).

    multiprocessing's "forkserver" and "spawn" start methods import the main script in each
    new process; a script without an `if __name__ == "__main__":` guard then runs its flow
    there again, which can never work: the pool process exits instead, and the caller
    reports the missing guard (`_died_error`). `_inheriting` is the flag multiprocessing
    itself checks for that phase (its "bootstrapping phase" error).
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit(f"sflow: not running {what} in a pool process importing the main script")


def _died_error(name: str, exc: BaseException, start_method: str) -> Exception:
    """Why a pool process died: a main script without a guard (a user mistake) when it is that."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if start_method != "fork" and path and not _has_main_guard(path):
        return DispatchConfigError(
            f'{name}: the main script {path} has no `if __name__ == "__main__":` guard; every pool '
            "process of the process executor imports the main script, so the code that runs the flow "
            "must be under that guard"
        )
    return DispatchJobError(f"{name}: a pool process of the process executor died ({exc})")


def _has_main_guard(path: str) -> bool:
    """Whether the script has an `if __name__ == "__main__":` block (True when unreadable)."""
    import ast

    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True
    return any(isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) for node in tree.body)


def run_pickled(blob: bytes) -> tuple[str, dict[str, Any]]:
    """In the pool worker: unpickle `(fn, args, kwargs)`, run it, encode the outcome."""
    try:
        fn, args, kwargs = _deps.cloudpickle().loads(blob)
        value = invoke(fn, args, kwargs)
        return "ok", outcome.value_data(value)
    except BaseException as exc:  # the call's failure, whatever it is, goes back to the caller
        return "error", outcome.error_data(exc)


class ProcessExecutor(Executor):
    """Runs calls in a `concurrent.futures.ProcessPoolExecutor`."""

    name = "process"
    resource_keys = None  # nothing to reserve locally; accept and ignore
    reports_start = True  # a call is handed to the pool only when a pool process is free

    def __init__(self, config: Mapping[str, Any] | ProcessOptions | None = None) -> None:
        self.options = parse_options(ProcessOptions, config, "process executor")
        super().__init__(default_timeout=self.options.timeout)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._futures: dict[str, asyncio.Future[Any]] = {}
        self._slots = asyncio.Semaphore(self._workers())

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> None:
        parse_options(ProcessOptions, config, "process executor")

    def _workers(self) -> int:
        return self.options.max_workers or self.options.max_concurrent or os.cpu_count() or 1

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self._workers(), mp_context=multiprocessing.get_context(self.options.mp_context)
        )

    async def _start(self) -> None:
        refuse_in_pool_start("this process executor")
        _deps.cloudpickle()  # fail at start, with the install hint, not at the first call
        self._pool = self._new_pool()

    async def _launch(self, handles: list[Handle]) -> None:
        for handle in handles:  # same host: the files themselves give the traceback its lines
            blob = pickling.dumps((handle.call.fn, handle.call.args, dict(handle.call.kwargs))).data
            self.spawn(self._run(handle, blob))

    async def _run(self, handle: Handle, blob: bytes) -> None:
        """Hand the call to the pool once a pool process is free: from then on it runs."""
        async with self._slots:
            if handle.done():  # cancelled or timed out while waiting for a process
                return
            try:
                future = asyncio.get_running_loop().run_in_executor(self._pool, run_pickled, blob)
            except (BrokenProcessPool, RuntimeError, OSError) as exc:  # the pool cannot start a process
                self._replace_broken_pool()
                handle.set_exception(_died_error(handle.name, exc, self.options.mp_context))
                return
            self._futures[handle.call_id] = future
            handle.host = "localhost"
            handle.mark_started()
            await self._collect(handle, future)

    async def _collect(self, handle: Handle, future: asyncio.Future[Any]) -> None:
        try:
            status, data = await future
        except asyncio.CancelledError:
            return
        except BrokenProcessPool as exc:
            self._replace_broken_pool()
            handle.set_exception(_died_error(handle.name, exc, self.options.mp_context))
            return
        finally:
            self._futures.pop(handle.call_id, None)
        try:
            if status == "ok":
                handle.set_result(outcome.decode_value(data))
            else:
                handle.set_exception(
                    outcome.decode_error(data, f"call {handle.call_id} {handle.name} in a pool process")
                )
        except Exception as exc:
            handle.set_exception(exc)

    def _replace_broken_pool(self) -> None:
        if self._pool is not None and not self._closed:
            with contextlib.suppress(Exception):
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    async def _terminate(self, handles: list[Handle]) -> None:
        for handle in handles:
            future = self._futures.pop(handle.call_id, None)
            if future is not None:
                future.cancel()  # stops a queued call; a running one finishes unobserved

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API for this
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        await asyncio.to_thread(lambda: [proc.join(5) for proc in processes])
