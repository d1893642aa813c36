"""Shared machinery of executors that run the worker out of process (subprocess, Slurm).

A `RemoteExecutor` owns one *run*: a run id, a random secret, a run directory on the shared
file system (`<shared_dir>/<run_id>/`: payload files, result files, logs) and a callback
server that accepts only events signed with the secret. A subclass only says how to
start workers (`_launch`), how to stop them (`_terminate`) and tells the base when a
worker's job has ended (`job_ended`); the base turns events and result files into
resolved handles, and a job that ended without either into a `DispatchJobError`.

A watchdog covers the workers nobody else watches (a custom Slurm `submit` that returned
no job id) and those that freeze or lose their node: once a worker has been heard from,
`heartbeat_misses` heartbeat intervals without any event from it fail its call with a
`DispatchJobError` (state `LOST`) naming the call, the job and the log, and its work is
stopped. Before that, its result file is read: a call that finished while its callbacks
were lost is delivered, not failed. The result files of workers without a job id are
also read on every round, so such a call is delivered even if none of its callbacks
arrives.

When callbacks fail (a worker that cannot reach the callback URL writes only its result
file), the outcome does not wait for the job's end: every `RESULT_SCAN` seconds, one listing
of the run directory finds the result files of the calls never heard from, which are
delivered at once. The first such call, or a call running for `callback_silence` seconds
without a word, makes the executor say once, as a warning, that callbacks are failing and
the result files are watched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sflow.dispatch import outcome, payload, protocol
from sflow.dispatch.callback import CallbackServer
from sflow.dispatch.errors import DispatchJobError, PayloadError
from sflow.dispatch.executor import Executor, Handle
from sflow.record.tail import last_lines, printable

log = logging.getLogger(__name__)

DEFAULT_SHARED_DIR = os.path.join("sflow_output", "dispatch")
RESULT_SCAN = 1.0  # seconds between looks for the result files of calls never heard from


@dataclass
class RemoteOptions:
    """Options every out-of-process executor understands (part of its `executor_config`)."""

    callback_url: str | None = None  # URL workers post to; default http://<this host>:<port>/sflow/events
    callback_token: str | None = None  # extra shared token required on every event
    listen_host: str | None = None  # where the callback server listens; default: the callback URL's host
    listen_port: int = 0  # 0: an ephemeral port
    advertise_host: str | None = None  # host name/address put in the derived callback URL
    shared_dir: str | None = (
        None  # shared by caller and workers; default $SFLOW_SHARED_DIR or ./sflow_output/dispatch
    )
    heartbeat_interval: float = 30.0  # seconds between worker heartbeats
    heartbeat_misses: int = 4  # intervals of silence after which a worker heard from counts as lost
    result_grace: float = 3.0  # how long to wait for a result file after a job ended
    payload_inline_limit: int = payload.DEFAULT_INLINE_LIMIT  # larger payloads go through a file
    post_attempts: int = 6  # worker POST attempts per final event (exponential back-off)
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the workers
    timeout: float | None = None  # default per-call timeout in seconds, counted from the call's start
    queue_timeout: float | None = None  # optional bound in seconds on the wait before a call starts
    max_concurrent: int | None = None  # calls live at once (Slurm arrays: the %N throttle)

    def __post_init__(self) -> None:
        if self.listen_port < 0 or self.listen_port > 65535:
            raise ValueError(f"listen_port {self.listen_port} is not a TCP port")
        if self.queue_timeout is not None and self.queue_timeout <= 0:
            raise ValueError("queue_timeout must be > 0 (or None: wait for the start as long as it takes)")
        if self.heartbeat_interval <= 0 or self.result_grace < 0:
            raise ValueError("heartbeat_interval must be > 0 and result_grace >= 0")
        if self.heartbeat_misses < 2:
            raise ValueError("heartbeat_misses must be at least 2 (one late heartbeat is not a lost worker)")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise ValueError("'env' must map names to string values")


def new_run_id() -> str:
    """A run id that sorts by time and is unique: `YYYYmmdd-HHMMSS-<random>`."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)


class RemoteExecutor(Executor):
    """Base of executors whose calls run `python -m sflow.dispatch.worker` elsewhere."""

    reports_start = True  # task_started events (and subclasses' own signs) start a call's timeout

    def __init__(self, options: RemoteOptions, *, server: CallbackServer | None = None) -> None:
        super().__init__(default_timeout=options.timeout, queue_timeout=options.queue_timeout)
        self.options = options
        self.run_id = new_run_id()
        self.secret = secrets.token_hex(32)
        shared = options.shared_dir or os.environ.get("SFLOW_SHARED_DIR") or DEFAULT_SHARED_DIR
        self.run_dir = Path(shared).absolute() / self.run_id
        self._server = server
        self._owns_server = server is None
        self._handles: dict[str, Handle] = {}
        self._delivering: set[str] = set()  # call ids whose final event is being decoded
        self._heard: dict[str, float] = {}  # call id -> monotonic time of its worker's last event
        self._checking: set[str] = set()  # call ids the watchdog is looking at
        self._warned_no_callback = False

    @property
    def callback_url(self) -> str | None:
        return self._server.url if self._server is not None else self.options.callback_url

    async def _start(self) -> None:
        for sub in ("", "logs", "payloads"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._server is None:
            self._server = CallbackServer(
                self.options.listen_host,
                self.options.listen_port,
                token=self.options.callback_token,
                callback_url=self.options.callback_url,
                advertise_host=self.options.advertise_host,
            )
        await self._server.start()
        self._server.register_run(self.run_id, self.secret, self._on_event)
        self.spawn(self._watchdog())

    async def _close(self) -> None:
        if self._server is not None:
            self._server.unregister_run(self.run_id)
            if self._owns_server:
                await self._server.aclose()

    # -- payloads ------------------------------------------------------------------------
    async def worker_env(self, handles: Sequence[Handle]) -> dict[str, str]:
        """Environment for a worker (or every element of an array) running `handles`.

        Pickling a thousand calls and writing a spill file take a while: done in a thread,
        so the event loop keeps serving callbacks meanwhile.
        """
        for h in handles:
            self._handles[h.call_id] = h
            h.add_done_callback(self._forget_handle)
        value = await asyncio.to_thread(self._encode, list(handles))
        env = {**self.options.env, payload.PAYLOAD_ENV: value, payload.SECRET_ENV: self.secret}
        if self.options.callback_token:
            env[payload.TOKEN_ENV] = self.options.callback_token
        return env

    def _forget_handle(self, handle: Handle) -> None:
        self._handles.pop(handle.call_id, None)
        self._heard.pop(handle.call_id, None)

    def _encode(self, handles: list[Handle]) -> str:
        header = payload.PayloadHeader(
            run_id=self.run_id,
            result_dir=str(self.run_dir),
            callback_url=self.callback_url,
            heartbeat_interval=self.options.heartbeat_interval,
            post_attempts=self.options.post_attempts,
        )
        items = [(h.call_id, h.name, h.call.fn, h.call.args, dict(h.call.kwargs)) for h in handles]
        data = payload.encode(items, header)
        spill = self.run_dir / "payloads" / f"{handles[0].call_id}.payload"
        return payload.to_env_value(data, spill, self.options.payload_inline_limit)

    # -- events --------------------------------------------------------------------------
    def _on_event(self, event: protocol.Event) -> None:
        handle = self._handles.get(event.call_id)
        if handle is None or handle.done():
            log.debug("ignoring %s for unknown or finished call %s", event.type, event.call_id)
            return
        now = time.time()
        handle.last_heartbeat = now
        self._heard[handle.call_id] = time.monotonic()
        if event.type == protocol.TASK_STARTED:
            handle.host = event.data.get("host") or handle.host
            handle.mark_started(now)
        elif event.type in protocol.FINAL_TYPES:
            self._delivering.add(handle.call_id)  # before the task runs: job_ended must wait for it
            self.spawn(self._deliver(handle, event))
        elif event.type == protocol.TASK_CANCELLED:
            self.worker_cancelled(handle, str(event.data.get("reason", "signal")))

    def worker_cancelled(self, handle: Handle, reason: str) -> None:
        """The worker reported a termination signal; by default wait for the job's end state."""

    def log_hint(self, handle: Handle) -> str | None:
        """Where the log of a call without a known log path probably is (for error messages)."""
        return None

    def unwatched(self, handle: Handle) -> bool:
        """True when nothing but the worker's own events and files tells how `handle`'s call ends.

        The watchdog reads the result files of these calls on every round. By default none.
        """
        return False

    # -- watchdog ------------------------------------------------------------------------
    @property
    def silence_limit(self) -> float:
        """Seconds without an event after which a worker that was heard from counts as lost."""
        return self.options.heartbeat_misses * self.options.heartbeat_interval

    @property
    def callback_silence(self) -> float:
        """Seconds a started call may go without any event before callbacks count as failing."""
        return max(10.0, self.options.heartbeat_interval)

    async def _watchdog(self) -> None:
        """Every round: look at silent workers, unwatched calls, and result files of calls never heard from."""
        period = min(max(0.05, self.options.heartbeat_interval / 2), RESULT_SCAN)
        last = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now, before = time.monotonic(), last
            last = now
            if now - before > 2 * period + 1.0:  # this loop was stalled: let queued events in first
                continue
            handles = list(self._handles.values())
            unheard = any(h.call_id not in self._heard and not h.done() for h in handles)
            finished = await asyncio.to_thread(self._result_files) if unheard else set()
            for handle in handles:
                call_id = handle.call_id
                if handle.done() or call_id in self._delivering or call_id in self._checking:
                    continue
                heard = self._heard.get(call_id)
                if heard is not None and now - heard > self.silence_limit:
                    self._checking.add(call_id)
                    self.spawn(self._lost(handle, now - heard))
                elif self.unwatched(handle) or (heard is None and call_id in finished):
                    self._checking.add(call_id)
                    self.spawn(self._look_for_result(handle))
                elif heard is None and handle.started_at is not None:
                    silent = time.time() - handle.started_at
                    if silent > self.callback_silence:
                        self._warn_callbacks_failing(
                            f"job {handle.job_id} has run {silent:.0f} s without one"
                        )

    def _result_files(self) -> set[str]:
        """Call ids with a result file in the run directory (one listing, however many calls)."""
        try:
            names = os.listdir(self.run_dir)
        except OSError:
            return set()
        return {name[: -len(".result")] for name in names if name.endswith(".result")}

    async def _look_for_result(self, handle: Handle) -> bool:
        """Deliver the call's result file if it is there; True when the handle is resolved."""
        if handle.call_id in self._delivering:  # its final callback came meanwhile
            self._checking.discard(handle.call_id)
            return True
        try:
            path = protocol.result_path(self.run_dir, handle.call_id)
            try:
                event = await asyncio.to_thread(protocol.read_result_file, path, self.secret)
            except PayloadError as exc:
                handle.set_exception(exc)
                return True
            if event is not None and event.type in protocol.FINAL_TYPES and not handle.done():
                self._read_from_file(handle, path)
                await self._deliver(handle, event)
            return handle.done()
        finally:
            self._checking.discard(handle.call_id)

    def _read_from_file(self, handle: Handle, path: Path) -> None:
        """A final outcome came through the result file; say once if no callback ever arrived."""
        log.info("%s: callback lost, result read from %s", handle.name, path)
        if handle.call_id not in self._heard:
            self._warn_callbacks_failing(f"{handle.name} ended without one")

    def _warn_callbacks_failing(self, why: str) -> None:
        """Say once, as a warning, that callbacks fail and where outcomes come from instead."""
        if self._warned_no_callback:
            return
        self._warned_no_callback = True
        log.warning(
            "%s executor: no event from its workers has reached the callback URL %s (%s); callbacks are "
            "failing, so the result files in %s are watched while the jobs run (outcomes still arrive, "
            "without heartbeats). Check callback_url, advertise_host or listen_host.",
            self.name,
            self.callback_url,
            why,
            self.run_dir,
        )

    async def _lost(self, handle: Handle, silence: float) -> None:
        """A worker went silent: use its result file if it left one, else fail and stop the call."""
        self._checking.add(handle.call_id)
        if await self._look_for_result(handle):
            return
        job = (
            f"job {handle.job_id}" if handle.job_id else "its worker (no job id: the custom submit gave none)"
        )
        message = (
            f"{handle.name} ({handle.call_id}): no heartbeat from {job} for {silence:.0f} s "
            f"({self.options.heartbeat_misses} x heartbeat_interval {self.options.heartbeat_interval:g} s); "
            "the worker is presumed dead or cut off and its work was stopped"
        )
        if handle.log_path:
            message += f"; log: {handle.log_path}"
            tail = _log_end(handle.log_path)
            if tail:
                message += "\n--- last lines of the log ---\n" + tail
        elif self.log_hint(handle):
            message += f"; log: {self.log_hint(handle)}"
        log.warning("%s", message.splitlines()[0])
        error = DispatchJobError(message, job_id=handle.job_id, state="LOST", log_path=handle.log_path)
        await self._stop([handle], lambda _h: error, state="failed")

    async def _deliver(self, handle: Handle, event: protocol.Event) -> None:
        """Resolve `handle` from an authenticated final event (decoded in a thread: may be large)."""
        self._delivering.add(handle.call_id)
        try:
            ok, value = await asyncio.to_thread(self._decode, handle, event)
        except Exception as exc:  # undecodable result: report it on the handle
            handle.set_exception(exc)
        else:
            if ok:
                handle.set_result(value)
            else:
                handle.set_exception(value)
        finally:
            self._delivering.discard(handle.call_id)

    def _decode(self, handle: Handle, event: protocol.Event) -> tuple[bool, Any]:
        where = f"call {handle.call_id} {handle.name} on {event.data.get('host', '?')}"
        if event.data.get("job_id"):
            where += f", job {event.data['job_id']}"
        if event.data.get("in_file"):
            full = protocol.read_result_file(protocol.result_path(self.run_dir, handle.call_id), self.secret)
            if full is None:
                raise PayloadError(f"result of {handle.call_id} announced in a file that does not exist")
            event = full
        if event.type == protocol.TASK_RESULT:
            return True, outcome.decode_value(event.data)
        return False, outcome.decode_error(event.data, where)

    async def job_ended(
        self,
        handle: Handle,
        state: str,
        detail: str = "",
        log_path: str | None = None,
        describe: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        """The job running `handle` is over: use its result file, or fail with `DispatchJobError`.

        The result file gets `result_grace` seconds to appear (shared file systems lag).
        `describe()`, if given, is awaited only on failure, to add details to the error
        (e.g. Slurm's exit code and reason, which cost one more query).
        """
        deadline = time.monotonic() + self.options.result_grace
        path = protocol.result_path(self.run_dir, handle.call_id)
        while not handle.done():
            try:
                event = await asyncio.to_thread(protocol.read_result_file, path, self.secret)
            except PayloadError as exc:
                handle.set_exception(exc)
                break
            if handle.call_id in self._delivering:  # a callback is being decoded: let it finish
                await asyncio.sleep(0.05)
                continue
            if event is not None and event.type in protocol.FINAL_TYPES:
                self._read_from_file(handle, path)
                await self._deliver(handle, event)
                break
            if time.monotonic() >= deadline:
                if describe is not None:
                    detail = ", ".join(d for d in (detail, await describe()) if d)
                handle.set_exception(self._job_error(handle, state, detail, log_path))
                break
            await asyncio.sleep(min(0.25, self.options.result_grace or 0.25))

    def _job_error(self, handle: Handle, state: str, detail: str, log_path: str | None) -> DispatchJobError:
        job = f"job {handle.job_id}" if handle.job_id else "its worker"
        message = (
            f"{handle.name} ({handle.call_id}): {job} ended in state {state} without delivering a result"
        )
        if detail:
            message += f" ({detail})"
        if log_path:
            message += f"; log: {log_path}"
            tail = _log_end(log_path)
            if tail:
                message += "\n--- last lines of the log ---\n" + tail
        return DispatchJobError(message, job_id=handle.job_id, state=state, log_path=log_path)


def _log_end(path: str) -> str:
    """The job log's last lines, safe to print (the error message reaches a terminal)."""
    return "\n".join(printable(line) for line in last_lines(path, 15, max_bytes=8192))
