"""Running dispatched calls as Slurm batch jobs and job arrays (see `executor`)."""

from sflow.dispatch.slurm.executor import SlurmExecutor, SlurmOptions, SubmitFrame, SubmitPayload

__all__ = ["SlurmExecutor", "SlurmOptions", "SubmitFrame", "SubmitPayload"]
