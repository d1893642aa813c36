"""Errors of the dispatch layer.

A remote failure must reach the caller with the *original* exception type whenever the
caller can rebuild it, so user code can `except ValueError` around a dispatched call just
as around a local one. The remote traceback text rides along (see `attach_remote_traceback`).
Everything the dispatch machinery itself raises derives from `DispatchError`.
"""

from __future__ import annotations

from sflow.errors import SflowError, UserError
from sflow.slurm.commands import SlurmCommandError


class DispatchError(SflowError):
    """Base of the errors raised by the dispatch machinery (not by the user's callable)."""


class DispatchConfigError(UserError):
    """An invalid dispatch configuration: unknown key, wrong type, unknown environment."""


class DispatchDependencyError(ImportError):
    """An optional dependency of `sflow[dispatch]` is missing."""


class PayloadError(DispatchError):
    """A payload or event that cannot be decoded (corrupt, truncated, wrong format)."""


class PayloadVersionError(PayloadError):
    """The worker's Python or cloudpickle version does not match the caller's."""


class DispatchCancelled(DispatchError):
    """The call was cancelled by the caller (`Executor.cancel` or `aclose`)."""


class DispatchTimeout(DispatchError, TimeoutError):
    """The call did not finish within its `timeout`; the remote work was cancelled."""


class DispatchJobError(DispatchError):
    """The job running a call ended without delivering a result (no callback, no result file).

    Typical causes: out of memory, time limit, node failure, the worker could not start
    (wrong interpreter, sflow not installed in the job environment), or an external scancel.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        state: str | None = None,
        log_path: str | None = None,
        exit_code: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.state = state
        self.log_path = log_path
        self.exit_code = exit_code
        super().__init__(message)


class DispatchSlurmError(DispatchError, SlurmCommandError):
    """A Slurm client command of the slurm executor failed (e.g. sbatch refused the job).

    The commands run through `sflow.slurm.commands` like every other Slurm call; the executor asks
    it to raise this subclass, so the error is both what this layer promises (a
    `DispatchError`) and what Slurm code expects (a `SlurmCommandError` with `argv`,
    `returncode`, `stderr`, `transient`), without a second error type to translate into.
    """


class RemoteTraceback(Exception):
    """Carries the formatted traceback of a remote exception; set as its `__cause__`.

    Printed by Python's traceback machinery as "The above exception was the direct cause",
    so a log shows where the remote code failed, not only where the caller awaited it.
    """

    def __init__(self, tb: str) -> None:
        self.tb = tb
        super().__init__(tb)

    def __str__(self) -> str:
        return f"\n\nRemote traceback:\n{self.tb}"


class RemoteError(DispatchError):
    """A remote exception whose original type could not be rebuilt in the caller."""

    def __init__(self, exc_type: str, message: str, tb: str = "") -> None:
        self.exc_type = exc_type
        self.message = message
        self.remote_traceback = tb
        super().__init__(f"{exc_type}: {message}")


def attach_remote_traceback(exc: BaseException, tb: str, where: str) -> BaseException:
    """Attach the remote traceback text to `exc` (as a note and as its cause) and return it."""
    if tb:
        note = f"Remote traceback ({where}):\n{tb.rstrip()}"
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(note)
        else:  # Python 3.10: keep the attribute 3.11 would set
            exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
        exc.__cause__ = RemoteTraceback(tb)
    return exc
