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

from sflow.flow import api, errors
from sflow.flow.api import Flow, FlowResult, flow
from sflow.flow.errors import (
    FlowDefinitionError,
    FlowError,
    FlowTimeout,
    FlowWarning,
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
    "FlowWarning",
    "ResultUnavailable",
    "TaskFailed",
    "TaskTimeout",
    "flow",
]


class FlowModule(types.ModuleType):
    """What `sflow.flow` is: callable as `flow(...)`, with the door's names as attributes.

    The annotations tell a type checker what `sflow.flow.TaskTimeout` etc. are; at run time
    they are this module's own names.
    """

    __call__ = staticmethod(flow)

    Flow: type[api.Flow]
    FlowResult: type[api.FlowResult]
    FlowDefinitionError: type[errors.FlowDefinitionError]
    FlowError: type[errors.FlowError]
    FlowTimeout: type[errors.FlowTimeout]
    ResultUnavailable: type[errors.ResultUnavailable]
    TaskFailed: type[errors.TaskFailed]
    TaskTimeout: type[errors.TaskTimeout]


sys.modules[__name__].__class__ = FlowModule
