"""sflow's Python front door: a DAG of Python functions, dependencies from parameter names.

    import sflow.flow

    with sflow.flow("etl", inputs={"n": 4}) as f:
        @f.task
        def numbers(n): return list(range(n))

        @f.task(map="numbers")
        async def square(x): return x * x

    f.result.square            # [0, 1, 4, 9]

The module itself is callable (`sflow.flow(...)` is `sflow.flow.flow(...)`), so the flow
constructor and its error types share one name. See docs/python.md.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from sflow.flow.api import Flow, FlowResult, flow
from sflow.flow.errors import (
    FlowDefinitionError,
    FlowError,
    FlowTimeout,
    ResultUnavailable,
    TaskFailed,
    TaskTimeout,
)

__all__ = [
    "Flow",
    "FlowDefinitionError",
    "FlowError",
    "FlowResult",
    "FlowTimeout",
    "ResultUnavailable",
    "TaskFailed",
    "TaskTimeout",
    "flow",
]


class _CallableModule(types.ModuleType):
    """Lets `sflow.flow("name")` build a flow while `sflow.flow.TaskTimeout` etc. stay reachable."""

    def __call__(self, name: str, **options: Any) -> Flow:
        return flow(name, **options)


sys.modules[__name__].__class__ = _CallableModule
