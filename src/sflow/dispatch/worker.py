"""`python -m sflow.dispatch.worker`: run one dispatched call and report its outcome.

The job (a Slurm batch job, an array element, a local subprocess) gets its work through
the environment, never argv (argv is public in `ps` and limited in size):

- `SFLOW_BACKEND_PAYLOAD`: the payload, base64 or `@<file>` (see `sflow.dispatch.payload`);
- `SFLOW_BACKEND_SECRET`: the run's secret; every event is signed with it;
- `SFLOW_CALLBACK_TOKEN`: optional extra shared token sent with each event;
- `SFLOW_BACKEND_INDEX` or `SLURM_ARRAY_TASK_ID`: which item of the payload to run.

Events (`task_started`, `heartbeat`, then `task_result` / `task_error`, or `task_cancelled`
on SIGTERM) are POSTed to the callback URL with bounded, backed-off retries. The final
event is first written atomically to `<result_dir>/<call_id>.result`, so the caller still
gets the outcome when every POST is lost. Exit codes: 0 success, 1 the call raised,
2 unusable payload or environment, 3 version mismatch, 143 terminated by a signal.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from sflow.dispatch import outcome, payload, protocol
from sflow.dispatch.errors import PayloadError, PayloadVersionError
from sflow.dispatch.invoke import invoke

EXIT_OK, EXIT_CALL_FAILED, EXIT_BAD_INPUT, EXIT_VERSION, EXIT_TERMINATED = 0, 1, 2, 3, 143


class WorkerTerminated(BaseException):
    """Raised in the main thread by the SIGTERM handler to unwind the running call."""


def _say(message: str) -> None:
    print(f"[sflow-worker] {message}", file=sys.stderr, flush=True)


class Reporter:
    """Signs and delivers the events of one call (POST with retries; final event also to a file)."""

    def __init__(self, header: payload.PayloadHeader, call_id: str, secret: str, token: str | None) -> None:
        self.header = header
        self.call_id = call_id
        self.secret = secret
        self.token = token
        self.finishing = threading.Event()
        # held by a heartbeat in flight: the final event waits for it, so nothing arrives after
        # the final event (re-entrant: the SIGTERM handler may run inside the main thread's POST)
        self._order = threading.RLock()
        self.context = _job_context(os.environ)
        self.delivered = 0  # events the callback server accepted
        self.unreachable = False  # the first event found no server: the result file only, at once

    def event(self, kind: str, data: dict[str, Any] | None = None) -> protocol.Event:
        return protocol.Event(kind, self.header.run_id, self.call_id, data={**self.context, **(data or {})})

    def post(self, body: bytes, attempts: int, timeout: float = 10.0) -> bool:
        """POST a signed body; retry with exponential back-off; True once accepted."""
        url = self.header.callback_url
        if not url or self.unreachable:
            return False
        headers = protocol.headers_for(self.header.run_id, self.call_id, self.secret, body, self.token)
        delay = 0.5
        for attempt in range(1, max(1, attempts) + 1):
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    response.read()
                self.delivered += 1
                return True
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 403, 413):  # refused: retrying the same bytes cannot help
                    _say(f"callback refused the event (HTTP {exc.code}); relying on the result file")
                    return False
                error: Exception = exc
            except (OSError, ValueError) as exc:
                error = exc
                if not self.delivered:  # never reached: no server there for this job; say so once
                    self.unreachable = True
                    _say(
                        f"callback URL {url} is unreachable ({_reason(exc)}); the outcome goes to the result file only"
                    )
                    return False
            if attempt < attempts:
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        _say(f"could not deliver an event to {url} after {attempts} attempt(s): {error}")
        return False

    def started(self) -> None:
        self.post(self.event(protocol.TASK_STARTED).to_body(), attempts=2, timeout=5.0)

    def heartbeat(self) -> None:
        """POST a heartbeat, unless the final event is under way (none may follow it)."""
        with self._order:
            if not self.finishing.is_set():
                self.post(self.event(protocol.HEARTBEAT).to_body(), attempts=1, timeout=5.0)

    def finish(self, kind: str, data: dict[str, Any]) -> None:
        """Write the final event to the result file, then POST it (slimmed if very large)."""
        with self._order:
            self.finishing.set()  # from here on SIGTERM is ignored: the outcome is being delivered
            self._deliver(kind, data)

    def _deliver(self, kind: str, data: dict[str, Any]) -> None:
        body = self.event(kind, data).to_body()
        path = protocol.result_path(self.header.result_dir, self.call_id)
        try:
            protocol.write_result_file(path, body, self.secret)
        except OSError as exc:
            _say(f"could not write the result file {path}: {exc}")
        if len(body) > self.header.inline_result_limit:
            body = self.event(kind, {"in_file": True}).to_body()
        self.post(body, attempts=self.header.post_attempts)

    def cancelled(self, reason: str) -> None:
        """POST `task_cancelled` once a heartbeat in flight has landed; no heartbeat follows it."""
        with self._order:
            self.finishing.set()
            body = self.event(protocol.TASK_CANCELLED, {"reason": reason}).to_body()
            self.post(body, attempts=2, timeout=3.0)


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _job_context(env: Mapping[str, str]) -> dict[str, Any]:
    context: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        context["job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    elif env.get("SLURM_JOB_ID"):
        context["job_id"] = env["SLURM_JOB_ID"]
    return context


def _item_index(env: Mapping[str, str]) -> int:
    raw = env.get(payload.INDEX_ENV) or env.get("SLURM_ARRAY_TASK_ID") or "0"
    try:
        return int(raw)
    except ValueError as exc:
        raise PayloadError(f"item index {raw!r} is not an integer") from exc


def _heartbeats(reporter: Reporter, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        reporter.heartbeat()


def _install_sigterm(reporter: Reporter) -> None:
    def on_signal(signum: int, _frame: object) -> None:
        if reporter.finishing.is_set():
            return
        name = signal.Signals(signum).name
        _say(f"received {name}; reporting task_cancelled")
        reporter.cancelled(name)
        raise WorkerTerminated(name)

    signal.signal(signal.SIGTERM, on_signal)


def run_item(reporter: Reporter, blobs: memoryview, index: int) -> int:
    """Run item `index` of the payload and report it; returns the process exit code."""
    header = reporter.header
    try:
        payload.check_versions(header)
    except PayloadVersionError as exc:
        _say(str(exc))
        reporter.finish(protocol.TASK_ERROR, outcome.error_data(exc, tb=""))
        return EXIT_VERSION
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeats, args=(reporter, header.heartbeat_interval, stop), daemon=True)
    beat.start()
    try:
        fn, args, kwargs = payload.load_item(header, blobs, index)
        value = invoke(fn, args, kwargs)
        try:
            data = outcome.value_data(value)
        except Exception as exc:
            raise PayloadError(f"the call's return value cannot be pickled: {exc!r}") from exc
    except WorkerTerminated:
        return EXIT_TERMINATED
    except BaseException as exc:  # the call's failure, whatever it is, goes back to the caller
        stop.set()
        reporter.finish(protocol.TASK_ERROR, outcome.error_data(exc))
        return EXIT_CALL_FAILED
    finally:
        stop.set()
    reporter.finish(protocol.TASK_RESULT, data)
    return EXIT_OK


def main(env: Mapping[str, str] | None = None) -> int:
    """Entry point; `env` defaults to `os.environ`."""
    env = os.environ if env is None else env
    secret = env.get(payload.SECRET_ENV)
    raw = env.get(payload.PAYLOAD_ENV)
    if not raw or not secret:
        _say(f"{payload.PAYLOAD_ENV} and {payload.SECRET_ENV} must both be set; nothing to run")
        return EXIT_BAD_INPUT
    try:
        header, blobs = payload.decode_header(payload.from_env_value(raw))
        index = _item_index(env)
        call_id = header.items[index].call_id
    except (PayloadError, IndexError) as exc:
        _say(f"unusable payload: {exc}")
        return EXIT_BAD_INPUT
    reporter = Reporter(header, call_id, secret, env.get(payload.TOKEN_ENV) or None)
    _install_sigterm(reporter)
    try:
        reporter.started()
        return run_item(reporter, blobs, index)
    except WorkerTerminated:
        return EXIT_TERMINATED
    except Exception:
        _say("internal error:\n" + traceback.format_exc())
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
