"""Every rejection of SPEC §3, as a table: input -> (location, code)."""

from __future__ import annotations

import pytest

from pytaskflow_jupyter.errors import ValidationError
from pytaskflow_jupyter.validation import Limits, parse_workflow

from .helpers import task, wf

A = task("a")

REJECTED = [
    ("cycle", wf(task("a", "c"), task("b", "a"), task("c", "b")), "tasks", "cycle_detected"),
    ("self dependency", wf(task("a", "a")), "tasks[0].dependencies[0]", "self_dependency"),
    (
        "unknown dependency",
        wf(A, task("b", "TaskZ")),
        "tasks[1].dependencies[0]",
        "unknown_dependency",
    ),
    ("duplicate names", wf(A, task("a")), "tasks[1].name", "duplicate_task_name"),
    (
        "duplicate after NFC",
        wf(task("caf\u00e9"), task("cafe\u0301")),
        "tasks[1].name",
        "duplicate_task_name",
    ),
    ("unknown task type", wf(task("a", type="bash")), "tasks[0].type", "unknown_task_type"),
    (
        "branch next not a child",
        wf(A, task("b", "a", type="branch", next=["a"])),
        "tasks[1].params.next[0]",
        "invalid_branch_target",
    ),
    (
        "branch next undefined",
        wf(A, task("b", "a", type="branch", next=["TaskC"])),
        "tasks[1].params.next[0]",
        "invalid_branch_target",
    ),
    (
        "branch next wrong type",
        wf(task("b", type="branch", next=3)),
        "tasks[0].params.next",
        "type_error",
    ),
    ("name missing", {"tasks": [A]}, "name", "required"),
    ("tasks missing", {"name": "w"}, "tasks", "required"),
    ("tasks empty", wf(), "tasks", "empty_workflow"),
    ("tasks not a list", {"name": "w", "tasks": {"a": 1}}, "tasks", "type_error"),
    ("task not an object", wf("a"), "tasks[0]", "type_error"),
    ("empty workflow name", {"name": " ", "tasks": [A]}, "name", "invalid_name"),
    ("long workflow name", {"name": "x" * 201, "tasks": [A]}, "name", "invalid_name"),
    ("empty task name", wf(task("")), "tasks[0].name", "invalid_name"),
    ("long task name", wf(task("y" * 201)), "tasks[0].name", "invalid_name"),
    ("control char in name", wf(task("a\x00b")), "tasks[0].name", "invalid_name"),
    ("RTL override in name", wf(task("a\u202eb")), "tasks[0].name", "invalid_name"),
    ("name not a string", wf({"name": 5}), "tasks[0].name", "invalid_name"),
    (
        "typo dependancies",
        wf({"name": "a", "dependancies": []}),
        "tasks[0].dependancies",
        "unknown_field",
    ),
    (
        "unknown top-level key",
        {"name": "w", "tasks": [A], "shedule": {"every": 60}},
        "shedule",
        "unknown_field",
    ),
    (
        "schedule not an object",
        {"name": "w", "tasks": [A], "schedule": "@daily"},
        "schedule",
        "type_error",
    ),
    (
        "schedule cron invalid",
        {"name": "w", "tasks": [A], "schedule": {"cron": "61 * * * *"}},
        "schedule.cron",
        "invalid_cron",
    ),
    (
        "schedule cron with 6 fields",
        {"name": "w", "tasks": [A], "schedule": {"cron": "0 0 * * * *"}},
        "schedule.cron",
        "invalid_cron",
    ),
    (
        "schedule cron that never fires",
        {"name": "w", "tasks": [A], "schedule": {"cron": "0 0 31 2 *"}},
        "schedule.cron",
        "invalid_cron",
    ),
    (
        "schedule unknown timezone",
        {"name": "w", "tasks": [A], "schedule": {"cron": "0 3 * * *", "timezone": "Mars/Olympus"}},
        "schedule.timezone",
        "unknown_timezone",
    ),
    (
        "schedule timezone as a path",
        {
            "name": "w",
            "tasks": [A],
            "schedule": {"cron": "0 3 * * *", "timezone": "../../etc/passwd"},
        },
        "schedule.timezone",
        "unknown_timezone",
    ),
    (
        "schedule with cron and every",
        {"name": "w", "tasks": [A], "schedule": {"cron": "0 3 * * *", "every": 60}},
        "schedule",
        "invalid_schedule",
    ),
    (
        "schedule with neither",
        {"name": "w", "tasks": [A], "schedule": {}},
        "schedule",
        "invalid_schedule",
    ),
    (
        "schedule every below a second",
        {"name": "w", "tasks": [A], "schedule": {"every": 0.5}},
        "schedule.every",
        "out_of_range",
    ),
    (
        "schedule every a string",
        {"name": "w", "tasks": [A], "schedule": {"every": "60"}},
        "schedule.every",
        "type_error",
    ),
    (
        "schedule unknown catchup",
        {"name": "w", "tasks": [A], "schedule": {"every": 60, "catchup": "some"}},
        "schedule.catchup",
        "invalid_value",
    ),
    (
        "schedule unknown key",
        {"name": "w", "tasks": [A], "schedule": {"every": 60, "at": "02:00"}},
        "schedule.at",
        "unknown_field",
    ),
    (
        "schedule params not declared",
        {
            "name": "w",
            "tasks": [A],
            "parameters": {"day": None},
            "schedule": {"every": 60, "params": {"night": 1}},
        },
        "schedule.params.night",
        "unknown_parameter",
    ),
    (
        "snapshot without a notebook callable",
        {
            "name": "w",
            "tasks": [
                {"name": "a", "params": {"callable": "m:f", "snapshot": "sha256:" + "0" * 64}}
            ],
        },
        "tasks[0].params.snapshot",
        "invalid_snapshot",
    ),
    (
        "snapshot malformed",
        {"name": "w", "tasks": [{"name": "a", "params": {"callable": "f", "snapshot": "abc"}}]},
        "tasks[0].params.snapshot",
        "invalid_snapshot",
    ),
    (
        "dependencies a string",
        wf(A, {"name": "b", "dependencies": "a"}),
        "tasks[1].dependencies",
        "type_error",
    ),
    ("dependency not a string", wf(A, task("b", 3)), "tasks[1].dependencies[0]", "type_error"),
    (
        "duplicate dependency",
        wf(A, task("b", "a", "a")),
        "tasks[1].dependencies[1]",
        "duplicate_dependency",
    ),
    ("retries a string", wf(task("a", retries="3")), "tasks[0].retries", "type_error"),
    ("retries bool", wf(task("a", retries=True)), "tasks[0].retries", "type_error"),
    ("retries negative", wf(task("a", retries=-1)), "tasks[0].retries", "out_of_range"),
    ("retries huge", wf(task("a", retries=10**6)), "tasks[0].retries", "out_of_range"),
    ("timeout negative", wf(task("a", timeout=-1)), "tasks[0].timeout", "out_of_range"),
    ("timeout zero", wf(task("a", timeout=0)), "tasks[0].timeout", "out_of_range"),
    (
        "retry_backoff below 1",
        wf(task("a", retry_backoff=0.5)),
        "tasks[0].retry_backoff",
        "out_of_range",
    ),
    ("retry_delay string", wf(task("a", retry_delay="1")), "tasks[0].retry_delay", "type_error"),
    (
        "unknown trigger rule",
        wf(task("a", trigger_rule="sometimes")),
        "tasks[0].trigger_rule",
        "unknown_trigger_rule",
    ),
    ("params not an object", wf({"name": "a", "params": []}), "tasks[0].params", "type_error"),
    ("callable not a string", wf(task("a", callable=5)), "tasks[0].params.callable", "type_error"),
    ("kwargs not an object", wf(task("a", kwargs=[1])), "tasks[0].params.kwargs", "type_error"),
    ("version a list", {"name": "w", "version": [1], "tasks": [A]}, "version", "type_error"),
    ("tags not strings", {"name": "w", "tags": [1], "tasks": [A]}, "tags", "type_error"),
    ("bad id", {"id": "../etc", "name": "w", "tasks": [A]}, "id", "invalid_id"),
    # ``$`` matches before a final newline: the id must match up to its very end
    (
        "id with a trailing newline",
        {"id": "hello\n", "name": "w", "tasks": [A]},
        "id",
        "invalid_id",
    ),
    (
        "parameter name with a trailing newline",
        {"name": "w", "parameters": {"n\n": 1}, "tasks": [A]},
        "parameters.n\n",
        "invalid_parameter_name",
    ),
    (
        "max_parallel zero",
        {"name": "w", "max_parallel": 0, "tasks": [A]},
        "max_parallel",
        "out_of_range",
    ),
    ("lone surrogate", wf(task("a", code="x='\ud800'")), "tasks[0].params.code", "invalid_string"),
    (
        "notebook outside root",
        wf(task("n", type="notebook", params={"path": "../x.ipynb"})),
        "tasks[0].params.path",
        "path_outside_root",
    ),
    (
        "notebook absolute path",
        wf(task("n", type="notebook", params={"path": "/etc/x.ipynb"})),
        "tasks[0].params.path",
        "path_outside_root",
    ),
    ("notebook without path", wf(task("n", type="notebook")), "tasks[0].params.path", "required"),
    ("params with NaN", wf(task("a", kwargs={"x": float("nan")})), "tasks[0].params", "type_error"),
    (
        "parameters a list",
        {"name": "w", "parameters": [], "tasks": [A]},
        "parameters",
        "type_error",
    ),
    (
        "parameter name not an identifier",
        {"name": "w", "parameters": {"a-b": 1}, "tasks": [A]},
        "parameters.a-b",
        "invalid_parameter_name",
    ),
    # each task kind owns its params (kinds.py): unknown keys by name, exclusive fields, code
    (
        "params typo cod",
        wf(task("a", params={"cod": "x = 1"})),
        "tasks[0].params.cod",
        "unknown_field",
    ),
    (
        "code and callable",
        wf(task("a", code="result = 1", callable="m:f")),
        "tasks[0].params.code",
        "conflicting_fields",
    ),
    (
        "code syntax error",
        wf(task("a", code="x = (1,\ny = 2")),
        "tasks[0].params.code",
        "syntax_error",
    ),
    ("branch selecting nothing", wf(task("b", type="branch")), "tasks[0].params.next", "required"),
    (
        "branch next an object",
        wf(A, task("b", "a", type="branch", next={})),
        "tasks[1].params.next",
        "type_error",
    ),
    (
        "branch next a list of objects",
        wf(A, task("b", "a", type="branch", next=[{}])),
        "tasks[1].params.next",
        "type_error",
    ),
    (
        "branch next and code",
        wf(A, task("b", type="branch", next=["a"], code="result = 'a'")),
        "tasks[1].params.code",
        "conflicting_fields",
    ),
    (
        "notebook param unknown",
        wf(task("n", type="notebook", params={"path": "a.ipynb", "kernal": "python3"})),
        "tasks[0].params.kernal",
        "unknown_field",
    ),
    (
        "notebook not ipynb",
        wf(task("n", type="notebook", params={"path": "a.py"})),
        "tasks[0].params.path",
        "not_a_notebook",
    ),
]


def test_a_syntax_error_names_the_task_line_and_column():
    with pytest.raises(ValidationError) as info:
        parse_workflow(wf(A, task("calc", code="x = 1\ny = (2,\n")))
    (problem,) = info.value.problems
    assert problem.path == "tasks[1].params.code"
    assert problem.detail.startswith("line 3, column 1:") or problem.detail.startswith("line 2, ")
    assert "tasks[1].params.code: line" in str(info.value)


@pytest.mark.parametrize(
    ("definition", "path", "code"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejected_with_location(definition, path, code):
    with pytest.raises(ValidationError) as info:
        parse_workflow(definition)
    found = {(p.path, p.code) for p in info.value.problems}
    assert (path, code) in found, found
    assert path in str(info.value) or not path


def test_not_an_object():
    with pytest.raises(ValidationError, match="must be a JSON object"):
        parse_workflow([1, 2])


def test_cycle_names_every_task_of_the_cycle():
    with pytest.raises(ValidationError) as info:
        parse_workflow(wf(task("a", "c"), task("b", "a"), task("c", "b"), task("d")))
    (problem,) = info.value.problems
    assert problem.extra["cycle"] == ["a", "c", "b", "a"]
    assert "'a' -> 'c' -> 'b' -> 'a'" in problem.detail


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as info:
        parse_workflow(wf(task("a", "zz"), task("a", retries="x"), {"name": "c", "oops": 1}))
    codes = sorted(p.code for p in info.value.problems)
    assert codes == ["duplicate_task_name", "type_error", "unknown_dependency", "unknown_field"]


def test_documented_example_names_the_missing_task():
    body = {
        "id": "my_workflow_id",
        "name": "My Workflow",
        "tasks": [
            {"name": "TaskA", "type": "python", "params": {}, "dependencies": []},
            {
                "name": "TaskB",
                "type": "branch",
                "params": {"next": ["TaskC"]},
                "dependencies": ["TaskA"],
            },
        ],
    }
    with pytest.raises(ValidationError, match="TaskC"):
        parse_workflow(body)


def test_task_limit_is_configurable():
    with pytest.raises(ValidationError) as info:
        parse_workflow(wf(*[task(f"t{i}") for i in range(11)]), Limits(max_tasks=10))
    assert info.value.problems[0].code == "too_many_tasks"
    assert (
        len(parse_workflow(wf(*[task(f"t{i}") for i in range(10)]), Limits(max_tasks=10)).tasks)
        == 10
    )


def test_problem_list_is_capped_but_counted():
    with pytest.raises(ValidationError) as info:
        parse_workflow(wf(*[task(f"t{i}", "missing") for i in range(500)]))
    assert len(info.value.problems) == 100
    assert "and 495 more" in str(info.value)


def test_defaults_and_version_kept_as_given():
    w = parse_workflow({"name": "My Workflow", "version": "1.0.0", "tasks": [{"name": "a"}]})
    assert w.id == "my_workflow" and w.version == "1.0.0"
    (spec,) = w.tasks
    assert (
        spec.type,
        spec.retries,
        spec.retry_delay,
        spec.retry_backoff,
        spec.timeout,
        spec.trigger_rule,
    ) == ("python", 0, 1.0, 2.0, None, "none_failed_min_one_success")
    assert parse_workflow(wf(A)).version == 1


def test_valid_branch_and_join():
    w = parse_workflow(
        wf(
            A,
            task("b", "a", type="branch", next=["c"]),
            task("c", "b"),
            task("d", "b"),
            task("j", "c", "d"),
        )
    )
    assert [t.name for t in w.tasks] == ["a", "b", "c", "d", "j"]
    assert w.task_map["b"].params["next"] == ["c"]


def test_deep_chain_does_not_recurse():
    n = 20_000
    w = parse_workflow(wf(task("t0"), *[task(f"t{i}", f"t{i - 1}") for i in range(1, n)]))
    assert len(w.tasks) == n
