"""Fuzzing definitions (issue 15, item 6): random JSON in every field of a workflow and
of its tasks, the task's ``params`` included. Whatever arrives, ``parse_workflow``
returns a ``Workflow`` or raises ``ValidationError`` (a 400 naming its path), never
anything else (a 500): a branch whose ``params.next`` held ``{}`` once did."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytaskflow_jupyter.errors import ValidationError
from pytaskflow_jupyter.model import Workflow
from pytaskflow_jupyter.validation import TASK_KEYS, WORKFLOW_KEYS, parse_workflow

# JSON text may hold lone surrogates ("\ud800" escapes), so strings may too
TEXT = st.text(st.characters(blacklist_categories=()), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(["a", "b", "python", "branch", "notebook", "all_success", "x.ipynb", ""])
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TEXT | st.sampled_from(["a", "b", "code", "next"]), children, max_size=4)
    ),
    max_leaves=12,
)
PARAM_KEYS = ["code", "callable", "kwargs", "next", "path", "parameters", "kernel"]


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``base`` with some of ``keys`` (and maybe an unknown one) set to random JSON or
    deleted."""
    out = dict(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True)):
        if draw(st.booleans()) and key in out:
            del out[key]
        else:
            out[key] = draw(JSON)
    if draw(st.integers(0, 9)) == 0:
        out[draw(TEXT)] = draw(JSON)
    return out


@st.composite
def definitions(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)  # not even an object
    tasks = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["python", "branch", "notebook"]))
        params = {"python": {"code": "result = 1"}, "branch": {"next": ["t1"]}}.get(kind, {})
        params = draw(mutated(params, PARAM_KEYS))
        deps = draw(st.lists(st.sampled_from([f"t{j}" for j in range(5)]), max_size=3))
        base = {"name": f"t{i}", "type": kind, "params": params, "dependencies": deps}
        task = draw(mutated(base, sorted(TASK_KEYS)))
        tasks.append(task if draw(st.integers(0, 19)) else draw(JSON))
    base = {"name": "fuzzed", "id": "fuzzed", "tasks": tasks}
    return draw(mutated(base, sorted(WORKFLOW_KEYS)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_any_definition_is_a_workflow_or_a_validation_error(data: Any) -> None:
    try:
        result = parse_workflow(data)
    except ValidationError as exc:
        assert exc.problems, "a refusal names at least one problem"
        assert all(isinstance(problem.path, str) for problem in exc.problems)
    else:
        assert isinstance(result, Workflow)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_branch_next_is_accepted_or_refused_naming_it(nxt: Any) -> None:
    definition = {
        "name": "w",
        "tasks": [
            {"name": "a", "type": "branch", "params": {"next": nxt}},
            {"name": "b", "dependencies": ["a"]},
        ],
    }
    try:
        parse_workflow(definition)
    except ValidationError as exc:
        assert any(p.path.startswith("tasks[0].params.next") for p in exc.problems)
