"""--set and --artifact: typed values, sweeps, dotted fields, and errors located at the flag."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

from sflow.errors import SpecError
from sflow.schema import ComposeWarning, WorkflowSpec

Load = Callable[..., WorkflowSpec]

TEXT = """
version: "0.1"
variables:
  N:
    value: 2
    type: integer
  MODEL: llama
  RATE:
    value: 0.1
    type: float
  DEBUG:
    value: false
    type: boolean
  TAG:
    value: "007"
    type: string
artifacts:
  cfg:
    uri: file://cfg.json
    content: "{}"
backends:
  cluster:
    type: slurm
    partition: batch
workflow:
  name: wf
  variables:
    MODEL: inner
    STEPS: 10
  tasks:
    - name: t
      script: [x]
      backend: cluster
"""


def test_set_is_coerced_by_the_variable_type(load: Load) -> None:
    spec = load(TEXT, sets=["N=8", "RATE=1e-3", "DEBUG=yes", "TAG=008"])
    assert spec.variables["N"].value == 8
    assert spec.variables["RATE"].value == 0.001
    assert spec.variables["DEBUG"].value is True
    assert spec.variables["TAG"].value == "008"


def test_untyped_values_are_read_like_yaml_scalars(load: Load) -> None:
    spec = load(TEXT, sets=["STEPS=20", "MODEL=1:30:00"])
    assert spec.workflow.variables["STEPS"].value == 20
    assert spec.workflow.variables["MODEL"].value == "1:30:00"


def test_set_reaches_both_scopes(load: Load) -> None:
    spec = load(TEXT, sets=["MODEL=mistral"])
    assert spec.variables["MODEL"].value == "mistral"
    assert spec.workflow.variables["MODEL"].value == "mistral"
    assert spec.variables["MODEL"].loc("value") == "--set"


def test_scoped_set(load: Load) -> None:
    spec = load(TEXT, sets=["workflow.variables.MODEL=a", "variables.MODEL=b"])
    assert (spec.variables["MODEL"].value, spec.workflow.variables["MODEL"].value) == ("b", "a")


def test_set_a_list_makes_a_sweep(load: Load) -> None:
    with pytest.warns(ComposeWarning, match="no task sweeps it"):  # TEXT's task sweeps nothing
        spec = load(TEXT, sets=["N=[1,2,4]"])
    assert spec.variables["N"].domain == [1, 2, 4]
    assert spec.variables["N"].value == 2
    with pytest.warns(ComposeWarning, match="no task sweeps it"):
        spec = load(TEXT, sets=["N=[8, 16]"])
    assert (spec.variables["N"].value, spec.variables["N"].domain) == (8, [8, 16])


def test_a_swept_domain_set_on_the_command_line_is_said_only_when_no_task_sweeps_it(load: Load) -> None:
    with pytest.warns(ComposeWarning, match=r"no task sweeps it \(replicas.variables\): every task uses N=2"):
        load(TEXT, sets=["N=[1,2,4]"])
    swept = TEXT.replace(
        "      backend: cluster\n", "      backend: cluster\n      replicas:\n        variables: [N]\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComposeWarning)
        assert load(swept, sets=["N=[1,2,4]"]).variables["N"].domain == [1, 2, 4]


def test_unknown_variable_suggests(load: Load) -> None:
    with pytest.raises(SpecError) as err:
        load(TEXT, sets=["MODLE=x"])
    assert err.value.where == "--set"
    assert err.value.message == "unknown variable 'MODLE'; did you mean 'MODEL'?"
    assert str(err.value) == "--set: unknown variable 'MODLE'; did you mean 'MODEL'?"


def test_bad_value_for_the_type_is_located_at_the_flag(load: Load) -> None:
    with pytest.raises(SpecError) as err:
        load(TEXT, sets=["N=lots"])
    assert err.value.where == "--set" and err.value.field == "variables.N.value"
    assert "expected an integer" in err.value.message


def test_value_outside_a_domain(load: Load) -> None:
    text = TEXT.replace("    type: integer\n", "    type: integer\n    domain: [1, 2]\n", 1)
    with pytest.raises(SpecError, match="not in its domain"):
        load(text, sets=["N=3"])


def test_set_a_backend_field(load: Load) -> None:
    spec = load(
        TEXT,
        sets=[
            "backends.cluster.partition=debug",
            "backends.cluster.time=1:30:00",
            "backends.cluster.extra_args=[--exclusive, --mem=0]",
        ],
    )
    cluster = spec.backends["cluster"]
    assert cluster.partition == "debug" and cluster.time == "1:30:00"  # type: ignore[union-attr]
    assert cluster.extra_args == ["--exclusive", "--mem=0"]  # type: ignore[union-attr]
    assert cluster.loc("partition") == "--set"


def test_set_an_unknown_backend_or_field(load: Load) -> None:
    with pytest.raises(SpecError, match="unknown backend 'clustr'; did you mean 'cluster'") as err:
        load(TEXT, sets=["backends.clustr.partition=x"])
    assert err.value.where == "--set"
    with pytest.raises(SpecError) as err:
        load(TEXT, sets=["backends.cluster.partiton=x"])
    assert (err.value.where, err.value.message) == (
        "--set",
        "unknown field 'partiton'; did you mean 'partition'?",
    )


def test_set_workflow_timeout(load: Load) -> None:
    assert load(TEXT, sets=["workflow.timeout=90m"]).workflow.timeout == 5400.0


def test_set_syntax_errors(load: Load) -> None:
    with pytest.raises(SpecError, match="expected NAME=VALUE"):
        load(TEXT, sets=["N"])
    with pytest.raises(SpecError, match=r"cannot set 'a\.b\.c\.d'"):
        load(TEXT, sets=["a.b.c.d=1"])
    with pytest.raises(SpecError, match="invalid expression") as err:
        load(TEXT, sets=["MODEL=${{ oops"])
    assert err.value.where == "--set"


def test_artifact_override(load: Load) -> None:
    spec = load(TEXT, artifacts=["cfg=fs:///shared/cfg.json"])
    assert spec.artifacts["cfg"].uri == "fs:///shared/cfg.json"
    assert spec.artifacts["cfg"].content is None  # inline content only belongs to file://
    assert spec.artifacts["cfg"].loc("uri") == "--artifact"
    with pytest.raises(SpecError) as err:
        load(TEXT, artifacts=["cfg=ftp://x"])
    assert err.value.where == "--artifact" and err.value.field == "artifacts.cfg.uri"


def test_an_unknown_artifact_is_an_error_with_a_suggestion(load: Load) -> None:
    with pytest.raises(SpecError) as err:
        load(TEXT, artifacts=["cgf=fs:///shared/cfg.json"])
    assert (err.value.where, err.value.message) == (
        "--artifact",
        "unknown artifact 'cgf'; did you mean 'cfg'?",
    )
    with pytest.raises(SpecError, match="expected NAME=URI"):
        load(TEXT, artifacts=["nouri"])
