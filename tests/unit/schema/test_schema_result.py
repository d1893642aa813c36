"""`result`: its three shapes (a map of regexes, `patterns`, `file`) as nv-sflow's reference has them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import WorkflowSpec


def doc(result: str) -> str:
    return f"""
version: "0.1"
workflow:
  name: r
  tasks:
    - name: t
      script: ["true"]
      result: {result}
"""


def test_a_map_of_regexes_is_patterns_with_every_default(load: Callable[..., WorkflowSpec]) -> None:
    result = load(doc("{ttft: 'TTFT: ([0-9.]+)', tps: 'tok/s: ([0-9.]+)'}")).task_by_name("t").result
    assert result is not None and result.file is None and result.source == "log"
    assert [(p.name, p.type, p.aggregate, p.required) for p in result.patterns] == [
        ("ttft", "auto", "last", False),
        ("tps", "auto", "last", False),
    ]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ("{file: out.txt}", "must be a .json file"),
        ("{file: a.json, patterns: [{name: x, regex: x}]}", "not both"),
        ("{patterns: [{name: x, regex: '(unclosed'}]}", "invalid regular expression"),
        ("{patterns: [{name: x, regex: x, aggregate: median}]}", "aggregate"),
        ("{source: stdout, patterns: [{name: x, regex: x}]}", "source"),
    ],
)
def test_mistakes_in_result_name_the_field(
    load: Callable[..., WorkflowSpec], result: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message) as err:
        load(doc(result))
    assert "workflow.tasks[0].result" in str(err.value)
