"""The engine: schedules units by their dependencies and reacts to events."""

from sflow.engine.core import Engine, RunResult, UnitResult
from sflow.engine.unit import Attempt, Event, Outcome, RetryPolicy, State, Unit

__all__ = ["Attempt", "Engine", "Event", "Outcome", "RetryPolicy", "RunResult", "State", "Unit", "UnitResult"]
