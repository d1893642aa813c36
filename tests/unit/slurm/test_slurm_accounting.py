"""`sflow.slurm.accounting`: end states only sacct still knows (a fake command runner stands for Slurm)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sflow.slurm.accounting import parse_sacct, sacct_states, step_end_state
from sflow.slurm.commands import SlurmCommandError, SlurmResult

SACCT = """1000010|FAILED|1:0
1000010.batch|FAILED|1:0
1000010.0|OUT_OF_MEMORY|0:125
1000010.1|COMPLETED|0:0
1000011_3|CANCELLED by 0|0:15
"""


class Answers:
    """sacct's successive answers; an exception in the list is raised instead."""

    def __init__(self, *answers: str | SlurmCommandError) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    async def __call__(self, argv: Sequence[str], timeout: float) -> SlurmResult:
        self.calls.append(list(argv))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, SlurmCommandError):
            raise answer
        return SlurmResult(answer)


DISABLED = SlurmCommandError(["sacct"], 1, "sacct: error: Slurm accounting storage is disabled")


def test_parse_sacct_reads_jobs_elements_and_steps() -> None:
    found = parse_sacct(SACCT)
    assert found["1000010.0"] == ("OUT_OF_MEMORY", "0:125")
    assert found["1000011_3"] == ("CANCELLED", "0:15")


def test_states_are_asked_once_per_job_and_none_without_accounting(run_async: Callable[..., Any]) -> None:
    answers = Answers(SACCT)
    found = run_async(sacct_states(["1000010.0", "1000011_3", "1000010.9"], answers))
    assert found == {"1000010.0": ("OUT_OF_MEMORY", "0:125"), "1000011_3": ("CANCELLED", "0:15")}
    assert answers.calls == [["sacct", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", "1000010,1000011_3"]]
    assert run_async(sacct_states(["5"], Answers(DISABLED))) is None


def test_a_step_end_is_awaited_until_recorded_but_not_without_accounting(
    run_async: Callable[..., Any],
) -> None:
    answers = Answers("1000010.0|RUNNING|0:0\n", "", SACCT)
    assert run_async(step_end_state("1000010.0", answers)) == "OUT_OF_MEMORY"
    assert len(answers.calls) == 3
    disabled = Answers(DISABLED)
    assert run_async(step_end_state("1000010.0", disabled)) is None
    assert len(disabled.calls) == 1  # a cluster without accounting costs one call, no wait
