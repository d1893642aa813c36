"""Declaring a flow: parameter names become dependencies; mistakes are named before anything runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import sflow
import sflow.flow
from sflow.flow import Flow, FlowDefinitionError, ResultUnavailable
from sflow.flow.resolve import resolve


def test_module_is_callable_and_exports_types() -> None:
    f = sflow.flow("x", record=False)
    assert isinstance(f, Flow) and f.name == "x"
    assert issubclass(sflow.flow.TaskTimeout, TimeoutError)


def test_parameter_names_become_dependencies() -> None:
    f = sflow.flow("infer", inputs={"n": 3}, record=False)

    @f.task
    def a(n):
        return n + 1

    @f.task
    def b(a, n):
        return a * n

    @f.task
    def c(a, b, unused=5):
        return (a, b, unused)

    tasks = {t.name: t for t in resolve(f.name, [f._specs[n] for n in f.tasks], f.inputs, None)}
    assert tasks["a"].deps == () and tasks["a"].feeds == ("n",)
    assert tasks["b"].deps == ("a",) and tasks["b"].feeds == ("a", "n")
    assert tasks["c"].deps == ("a", "b")
    f.run()
    assert f.result.c == (4, 12, 5)
    assert f.result["b"] == 12 and f["a"] == 4
    assert dict(f.result) == {"a": 4, "b": 12, "c": (4, 12, 5)}


def test_decorator_returns_the_function_unchanged() -> None:
    with sflow.flow("plain", record=False) as f:

        @f.task
        def one():
            return 1

        assert one() == 1 and one.__name__ == "one"


def test_forward_reference_is_fine() -> None:
    with sflow.flow("fwd", record=False) as f:

        @f.task
        def later(early):
            return early + 1

        @f.task
        def early():
            return 1

    assert f.result.later == 2


def test_unknown_parameter_is_named_at_end_of_block() -> None:
    ran = []
    with pytest.raises(FlowDefinitionError) as info, sflow.flow("typo", record=False) as f:

        @f.task
        def load():
            ran.append("load")
            return 1

        @f.task
        def clean(lod):
            return lod

    message = str(info.value)
    assert "'clean'" in message and "parameter 'lod'" in message
    def_line = clean_line_of_this_test()
    assert f"(test_flow_define.py:{def_line})" in message  # the `def`, not its decorator
    assert "tasks: clean, load" in message
    assert "did you mean 'load'?" in message
    assert info.value.__context__ is None  # raised before any event loop: no chained noise
    assert ran == []  # nothing ran
    with pytest.raises(sflow.flow.FlowError):
        f.result  # noqa: B018


def clean_line_of_this_test() -> int:
    return _line_of("def clean(lod)", test_unknown_parameter_is_named_at_end_of_block)


def _line_of(text: str, function: Callable[..., Any]) -> int:
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_all_problems_reported_together() -> None:
    f = sflow.flow("many", record=False)
    f.task(lambda x: x, name="a")
    f.task(lambda y, z=1: y, name="b")
    with pytest.raises(FlowDefinitionError) as info:
        f.run()
    assert "parameter 'x'" in str(info.value) and "parameter 'y'" in str(info.value)


def test_cycle_is_an_error() -> None:
    with (
        pytest.raises(FlowDefinitionError, match=r"cycle: .*a.*b.*a|cycle: .*b.*a.*b"),
        sflow.flow("cyc", record=False) as f,
    ):

        @f.task
        def a(b):
            return b

        @f.task
        def b(a):
            return a


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(FlowDefinitionError, match="cycle"), sflow.flow("self", record=False) as f:

        @f.task
        def a(a):
            return a


def test_duplicate_task_name() -> None:
    f = sflow.flow("dup", record=False)
    f.task(lambda: 1, name="a")
    with pytest.raises(FlowDefinitionError, match="already exists"):
        f.task(lambda: 2, name="a")


def test_input_and_task_with_same_name() -> None:
    f = sflow.flow("clash", inputs={"a": 1}, record=False)
    f.task(lambda: 2, name="a")
    with pytest.raises(FlowDefinitionError, match="same name as a task"):
        f.run()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"max_concurrent": 0, "map": [1]}, "max_concurrent"),
        ({"max_concurrent": 2}, "mapped task"),
        ({"retries": -1}, "retries"),
        ({"retries": {"count": 1, "delay": 2}}, "delay"),
        ({"map": 5}, "map"),
        ({"resources": ["mem"]}, "resources"),
        ({"environment": ""}, "environment"),
        ({"reads": 5}, "reads must be a path or a list of paths, got int"),
        ({"reads": ["a.csv", 5]}, "reads must list paths"),
        ({"reads": b"a.csv"}, "reads must be a path"),
    ],
)
def test_bad_options_fail_at_decoration_naming_the_task_and_its_line(options: dict, message: str) -> None:
    f = sflow.flow("opts", record=False)
    decorate = f.task(**options)
    with pytest.raises(FlowDefinitionError, match=message) as info:

        @decorate
        def fetch(x=None):
            return x

    line = _line_of("def fetch(x=None):", test_bad_options_fail_at_decoration_naming_the_task_and_its_line)
    assert str(info.value).startswith(f"task 'fetch' (test_flow_define.py:{line}): ")


def test_unknown_environment_is_named() -> None:
    f = sflow.flow("env", record=False)
    f.task(lambda: 1, name="a", environment="gpu-cluster")
    with pytest.raises(FlowDefinitionError, match="gpu-cluster"):
        f.run()


def test_non_identifier_name() -> None:
    f = sflow.flow("n", record=False)
    with pytest.raises(FlowDefinitionError, match="identifier"):
        f.task(lambda: 1, name="not-valid")


def test_declaring_after_the_run_is_an_error() -> None:
    with sflow.flow("done", record=False) as f:
        f.task(lambda: 1, name="a")
    with pytest.raises(FlowDefinitionError, match="already run"):
        f.task(lambda: 2, name="b")


def test_error_in_block_runs_nothing() -> None:
    ran = []
    with pytest.raises(ZeroDivisionError), sflow.flow("body", record=False) as f:
        f.task(lambda: ran.append(1), name="a")
        1 / 0  # noqa: B018
    assert ran == []


def test_results_of_unknown_and_failed_tasks() -> None:
    with pytest.raises(ValueError), sflow.flow("res", record=False) as f:

        @f.task
        def ok():
            return 1

        @f.task
        def bad(ok):
            raise ValueError("no")

    assert f.result.ok == 1
    with pytest.raises(ResultUnavailable, match=r"'bad'.*failed"):
        f.result.bad  # noqa: B018
    with pytest.raises(KeyError):
        f.result["nope"]
    with pytest.raises(AttributeError):
        f.result.nope  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name"),
        ({"inputs": [1]}, "inputs"),
        ({"timeout": -1}, "timeout"),
        ({"grace": "x"}, "grace"),
    ],
)
def test_bad_flow_options(kwargs: dict, message: str) -> None:
    options = {"name": "f", **kwargs}
    with pytest.raises(FlowDefinitionError, match=message):
        sflow.flow(options.pop("name"), **options)


def test_python_typos_get_a_suggestion() -> None:
    f = sflow.flow("typos", inputs={"numbers": [1, 2]}, record=False)
    with pytest.raises(FlowDefinitionError, match=r"unknown option 'retry'; did you mean 'retries'\?"):
        f.task(lambda: 1, name="a", retry=2)
    with pytest.raises(FlowDefinitionError, match=r"unknown key 'cout' in 'retries'; did you mean 'count'\?"):
        f.task(lambda: 1, name="b", retries={"cout": 2})
    with pytest.raises(FlowDefinitionError, match=r"unknown option 'imputs'; did you mean 'inputs'\?"):
        sflow.flow("typos", imputs={})
    f.task(lambda x: x, name="c", map="numbrs")
    f.task(lambda: 1, name="d", environment="locl")
    with pytest.raises(FlowDefinitionError) as info:
        f.run()
    assert "map='numbrs' is neither a task nor an input of the flow; did you mean 'numbers'?" in str(
        info.value
    )
    assert "unknown dispatch environment 'locl'; did you mean 'local'?" in str(info.value)


def test_unknown_resource_key_is_a_definition_error_with_a_suggestion() -> None:
    sflow.config(environments={"cluster": {"executor": "slurm", "executor_config": {"partition": "debug"}}})
    f = sflow.flow("res", record=False)
    f.task(lambda: 1, name="train", environment="cluster", resources={"gpu": 1})
    with pytest.raises(
        FlowDefinitionError, match=r"unknown resource 'gpu' for executor slurm; did you mean 'gpus'\?"
    ):
        f.run()


def test_resources_of_a_task_that_runs_in_this_process_are_not_silently_ignored() -> None:
    with (
        pytest.warns(
            sflow.flow.FlowWarning,
            match=r"task 'train' \(test_flow_define.py:\d+\): resources \(gpus\) are ignored",
        ),
        sflow.flow("res", record=False) as f,
    ):

        @f.task(resources={"gpus": 1})
        def train():
            return 1

    assert f.result.train == 1
