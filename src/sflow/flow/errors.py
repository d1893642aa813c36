"""Errors of the Python front door.

A task's own exception is never wrapped: leaving a `with sflow.flow(...)` block re-raises
it as it was raised (type, message, traceback, plus a note naming the task), so user code
can `except ValueError` around a flow just as around a plain call. The types here are for
what sflow itself detects: a badly declared flow, a timeout, a result that does not exist.
"""

from __future__ import annotations

import sys

from sflow.errors import SflowError, UserError


class FlowError(SflowError):
    """Base of the errors the flow layer raises itself."""


class FlowDefinitionError(UserError):
    """The flow is declared wrongly: unknown parameter, cycle, duplicate task, bad option."""


class FlowWarning(UserWarning):
    """Something in the flow's definition that runs, but probably not as meant (ignored resources)."""


class TaskTimeout(FlowError, TimeoutError):
    """A task's attempt did not finish within its `timeout`; the work was cancelled.

    A `TimeoutError`, so `except TimeoutError` catches it; `task`, `timeout`, `attempt` and
    (one item of a map) `item` say which.
    """

    def __init__(
        self, task: str, timeout: float, attempt: int = 1, detail: str = "", item: int | None = None
    ) -> None:
        self.task = task
        self.timeout = timeout
        self.attempt = attempt
        self.item = item  # a mapped task's item index, when one item timed out
        which = f"task '{task}'" if item is None else f"item {item} of task '{task}'"
        message = f"{which} timed out after {timeout:g}s (attempt {attempt})"
        super().__init__(f"{message}: {detail}" if detail else message)


class FlowTimeout(FlowError, TimeoutError):
    """The whole flow did not finish within the flow's `timeout`."""


class TaskFailed(FlowError):
    """A task failed without a Python exception of its own (e.g. it could not be started)."""

    def __init__(self, task: str, reason: str) -> None:
        self.task = task
        self.reason = reason
        super().__init__(f"task '{task}' failed: {reason}")


class ResultUnavailable(FlowError):
    """The task exists but has no result (it failed, was cancelled or skipped, or never ran)."""

    def __init__(self, task: str, state: str) -> None:
        self.task = task
        self.state = state
        super().__init__(f"task '{task}' has no result (state: {state})")


def add_note(exc: BaseException, note: str) -> None:
    """Attach `note` to `exc` once (shown under its traceback); type and message stay as they were."""
    notes = getattr(exc, "__notes__", None) or []
    if note in notes:
        return
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # keep the attribute 3.11 would set
        exc.__notes__ = [*notes, note]  # type: ignore[attr-defined]
