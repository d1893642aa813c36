"""The `${{ }}` renderer: shell text untouched, strict about undefined names, sandboxed, cached."""

from __future__ import annotations

import pytest

from sflow.errors import SpecError
from sflow.schema.expressions import (
    ExpressionError,
    check_syntax,
    has_expression,
    reads_variables,
    render,
    render_value,
)

CONTEXT = {
    "variables": {"N": 4, "MODEL": "llama", "LIST": [1, 2]},
    "backends": {"c": {"nodes": [{"name": "n1", "ip_address": "10.0.0.1", "index": 0, "num_gpus": 8}]}},
    "workflow": {"name": "wf"},
}


def test_plain_strings_pass_through_untouched() -> None:
    text = "echo ${#ARR[@]} {# not jinja #} {{ nor this }} {% nor this %} $HOME ${X:-y}"
    assert not has_expression(text)
    assert render(text, {}) == text


def test_shell_syntax_survives_next_to_expressions() -> None:
    text = 'n=${#ARR[@]}; echo {# x #} ${{ variables.N }} "${HOME}" {{ y }}\n'
    assert render(text, CONTEXT) == 'n=${#ARR[@]}; echo {# x #} 4 "${HOME}" {{ y }}\n'


def test_expressions_reach_nested_context() -> None:
    assert render("${{ backends.c.nodes[0].ip_address }}:${{ variables.N * 2 }}", CONTEXT) == "10.0.0.1:8"
    assert render("${{ workflow.name | upper }}", CONTEXT) == "WF"


def test_statements_and_comments_use_their_own_delimiters() -> None:
    text = "${% for n in backends.c.nodes %}${{ n.name }} ${% endfor %}${/* hidden */}done"
    assert render(text, CONTEXT) == "n1 done"


def test_undefined_name_is_an_error_naming_it() -> None:
    with pytest.raises(ExpressionError) as err:
        render("echo ${{ variables.NOPE }}", CONTEXT, where="wf.yaml:7", field="workflow.tasks[0].script")
    assert isinstance(err.value, SpecError)
    assert err.value.where == "wf.yaml:7" and err.value.field == "workflow.tasks[0].script"
    assert "NOPE" in err.value.message and "undefined" in err.value.message
    with pytest.raises(ExpressionError, match="'missing' is undefined"):
        render("${{ missing }}", CONTEXT)


def test_render_value_keeps_native_types_for_a_single_expression() -> None:
    assert render_value("${{ variables.N }}", CONTEXT) == 4
    assert render_value(" ${{ variables.LIST }} ", CONTEXT) == [1, 2]
    assert render_value("n=${{ variables.N }}", CONTEXT) == "n=4"
    assert render_value({"a": ["${{ variables.N + 1 }}", "x"], "b": 3}, CONTEXT) == {"a": [5, "x"], "b": 3}


def test_render_value_undefined_names_field_path() -> None:
    with pytest.raises(ExpressionError) as err:
        render_value({"a": ["${{ nope }}"]}, CONTEXT, where="f.yaml:3", field="backends.c")
    assert err.value.field == "backends.c.a[0]"


def test_check_syntax() -> None:
    check_syntax("echo ${{ variables.N }}")
    with pytest.raises(ExpressionError, match="invalid expression") as err:
        check_syntax("echo ${{ variables.N ", where="f.yaml:2", field="x")
    assert (err.value.where, err.value.field) == ("f.yaml:2", "x")


def test_sandbox_blocks_unsafe_attributes() -> None:
    with pytest.raises(ExpressionError):
        render("${{ variables.__class__.__mro__[1].__subclasses__() }}", CONTEXT)


def test_trailing_newline_is_kept() -> None:
    assert render("echo ${{ variables.N }}\n", CONTEXT) == "echo 4\n"


def test_errors_inside_expressions_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="ZeroDivisionError"):
        render("${{ 1 / 0 }}", CONTEXT)


@pytest.mark.parametrize(
    "text",
    [
        "a ${{ variables.N }} b ${{ variables.MODEL | upper }} c",
        "${{ variables.LIST }} ${{ none }} ${{ 1.5 }} ${{ true }}",
        '${{ "}}" }} and ${{ {"a": {"b": 1}} }}',
        "multi\n${{ variables.N }}\nline\n",
        "${{ variables.N }}${{ variables.N }}",
    ],
)
def test_split_rendering_matches_the_whole_template(text: str) -> None:
    from sflow.schema.expressions import environment

    context = {**CONTEXT, "none": None}
    assert render(text, context) == environment().from_string(text).render(context)


def test_many_distinct_texts_sharing_an_expression_compile_it_once() -> None:
    from sflow.schema.expressions import _expression

    before = _expression.cache_info().misses
    for i in range(200):
        check_syntax(f"echo ${{{{ variables.SHARED_ONE }}}} {i}")
        assert render(f"echo ${{{{ variables.N }}}} {i}", CONTEXT) == f"echo 4 {i}"
    assert _expression.cache_info().misses - before <= 2


def test_reads_names_constant_keys_and_purity() -> None:
    from sflow.schema.expressions import reads

    r = reads(' variables.X ~ variables["Y"] ~ workflow.name | upper ')
    assert r.names == {"variables", "workflow"} and r.pure
    assert r.keys == {"variables": {"X", "Y"}, "workflow": {"name"}}
    assert reads("variables | length + variables.N").keys["variables"] is None  # used whole
    assert reads("task.a.nodes[0] if replica_index else backends.b").names == {
        "task",
        "replica_index",
        "backends",
    }
    assert reads("variables[name]").keys == {"variables": None, "name": None}
    for impure in (
        "variables.L.append(1)",
        "range(3) | list",
        "[1, 2] | random",
        'x | map("random")',
        "x | map(f)",
    ):
        assert not reads(impure).pure, impure
    assert reads('x | map("upper") | map(attribute="a") | select("odd") | join(",")').pure


def test_all_valid_agrees_with_check_syntax() -> None:
    from sflow.schema.expressions import all_valid

    def accepted(text: str) -> bool:
        try:
            check_syntax(text)
        except ExpressionError:
            return False
        return True

    texts = [
        'echo ${{ "}}" }}',  # does not split cleanly, but is a valid template
        'echo ${{ "}} x',  # the same first source, not valid
        "${{ x",
        "${% if %}",
        "${{ a }} ${{ b | nofilter }}",
        "${/* c */}",
        "${{ 1 + }}",
        "plain",
        "${% for x in y %}${{ x }}${% endfor %}",
        "${{ a }}}}",
        '${{ {"a": 1} }}',
    ]
    for text in texts:
        for before in ([], [texts[0]], ["echo ${{ a }}"]):
            assert all_valid([*before, text]) == accepted(text), (before, text)
    assert all_valid(f"echo {i} ${{{{ workflow.name }}}}" for i in range(100))


def test_all_valid_checks_each_text_on_its_own() -> None:
    """An expression opened in one text and closed in the next is no expression of either."""
    from sflow.schema.expressions import all_valid

    assert all_valid([])
    assert all_valid(["echo ${{ a }}", "plain", "${{ b }} and ${{ a }}"])
    assert not all_valid(["echo ${{ a", "b }} ${{ c }}"])
    assert not all_valid(["echo ${{ a", "}}"])
    assert not all_valid(["${{ a }}", "x ${{ 1 + }}"])
    assert not all_valid(["${{ a \x00 b }}"])
    assert all_valid(["${{ a }}\x00", "${{ b }}"])
    assert all_valid(['${{ "x" }}', "${{ a }}"]) and not all_valid(['${{ "x }}', "${{ a }}"])


def test_one_expression_splits_as_split_expressions_does() -> None:
    import random

    from sflow.schema.expressions import one_expression, split_expressions

    rng = random.Random(3)
    pieces = ["${{", "}}", "}", "{", " x ", "a", "${%", "%}", "${/*", "*/}", "$", "\n", "'}}'", " y.z "]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        one, split = one_expression(text), split_expressions(text)
        if split is not None and len(split[1]) == 1:
            assert one == (split[0][0], split[1][0], split[0][1]), text
        if one is not None:
            assert text.count("${{") == 1 and one[0] + "${{" + one[1] + "}}" + one[2] == text, text
            if split is not None:
                assert len(split[1]) == 1, text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lr_${{ variables.LR }}", True),
        ('${{ variables["LR"] * 2 }}', True),
        ("${{ variables.OTHER }}", False),
        ("no expression", False),
        (["a", {"k": "${{ variables.LR }}"}], True),
        ({"k": ["${{ workflow.name }}"]}, False),
        ("${{ variables | length }}", True),  # reads the whole mapping
        ("${% if true %}x${% endif %}", True),  # a whole template: assume it reads anything
        (3, False),
    ],
)
def test_reads_variables(value, expected):
    assert reads_variables(value, {"LR"}) is expected


HOSTILE = "x\"; touch pwned; echo \"$(id) `id` 'q' \\ *"


@pytest.mark.parametrize(
    "template", ["${{ variables.V | quote }}", "${% if true %}${{ variables.V | quote }}${% endif %}"]
)
def test_quote_makes_any_value_one_shell_word(tmp_path, template: str) -> None:
    import subprocess

    script = "printf '%s\\n' " + render(template, {"variables": {"V": HOSTILE}})
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout == HOSTILE + "\n"
    assert not (tmp_path / "pwned").exists()


def test_quote_gives_a_list_one_word_per_item_and_quotes_numbers_as_text() -> None:
    context = {"variables": {"ARGS": ["--name", "a b", "it's"], "N": 4}}
    assert render("run ${{ variables.ARGS | quote }}", context) == "run --name 'a b' 'it'\"'\"'s'"
    assert render("${{ variables.N | quote }}", context) == "4"
    assert render("${{ variables.N + 1 }}", context) == "5"
