"""The OpenAPI 3 description served at ``GET /taskflow/openapi.json``.

Written by hand next to the handlers (it is the contract clients and schemathesis test
against); ``tests/server/test_openapi.py`` checks that it names every route.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from ..events import EVENT_TYPES
from ..kinds import KINDS, TaskKind
from ..model import EXECUTION_STATUSES, TASK_STATUSES, TRIGGER_RULES, Trigger
from ..schedule import CATCHUP, MAX_EVERY

__all__ = ["openapi"]

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Json) -> Json:
    return {**schema, "nullable": True}


STR = {"type": "string"}
TIME = _nullable({"type": "string", "format": "date-time"})
NAME = {"type": "string", "minLength": 1, "maxLength": 200}
ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", "maxLength": 200}

# The fields every task has, whatever its kind.
TASK_FIELDS: Json = {
    "name": NAME,
    "dependencies": {"type": "array", "items": NAME, "maxItems": 10_000},
    "retries": {"type": "integer", "minimum": 0, "maximum": 100, "default": 0},
    "retry_delay": {"type": "number", "minimum": 0, "maximum": 86_400, "default": 1},
    "retry_backoff": {"type": "number", "minimum": 1, "maximum": 100, "default": 2},
    "timeout": _nullable(
        {"type": "number", "exclusiveMinimum": True, "minimum": 0, "maximum": 604_800}
    ),
    "trigger_rule": {
        "type": "string",
        "enum": list(TRIGGER_RULES),
        "default": TRIGGER_RULES[0],
    },
    "map_over": _nullable(
        {
            **NAME,
            "description": "one of `dependencies` whose result is a list: this task runs "
            "once per element (an instance; SPEC 11), its result the list of theirs",
        }
    ),
}
DEFAULT_KIND = "python"  # a task without `type`


def _component(kind: TaskKind) -> str:
    return kind.name.capitalize()


def _params_schema(kind: TaskKind) -> Json:
    """The kind's own schema of its ``params`` (an empty ``required`` is not OpenAPI 3.0)."""
    schema = copy.deepcopy(kind.schema())
    if not schema.get("required"):
        schema.pop("required", None)
    return schema


def _task_schema(kind: TaskKind) -> Json:
    """A task of one kind: ``type`` names it (optional for the default kind)."""
    kind_type: Json = {"type": "string", "enum": [kind.name]}
    if kind.name == DEFAULT_KIND:
        kind_type["default"] = DEFAULT_KIND
    return {
        "type": "object",
        "description": f"a {kind.name} task",
        "additionalProperties": False,
        "required": ["name"] if kind.name == DEFAULT_KIND else ["name", "type"],
        "properties": {
            **TASK_FIELDS,
            "type": kind_type,
            "params": _ref(f"{_component(kind)}Params"),
        },
    }


# One schema per task kind, from the registry (``kinds.KINDS``): a new kind is described
# here without an edit. ``type`` tells them apart, so exactly one matches a valid task.
KIND_SCHEMAS: Json = {
    **{f"{_component(k)}Params": _params_schema(k) for k in KINDS.values()},
    **{f"{_component(k)}TaskDefinition": _task_schema(k) for k in KINDS.values()},
}
TASK_DEFINITION: Json = {
    "description": "a task; `type` (default python) says which params it takes",
    "oneOf": [_ref(f"{_component(k)}TaskDefinition") for k in KINDS.values()],
}

DEFINITION_PROPERTIES: Json = {
    "id": ID,
    "name": NAME,
    "description": _nullable(STR),
    "version": {"oneOf": [STR, {"type": "integer"}], "default": 1},
    "tags": {"type": "array", "items": STR},
    "owner": _nullable(STR),
    "max_parallel": _nullable({"type": "integer", "minimum": 1}),
    "parameters": {
        "type": "object",
        "description": "the workflow's parameters: names (Python identifiers) to default "
        "JSON values; a trigger's `params` override them and may name no other",
        "additionalProperties": True,
    },
    # OpenAPI 3.0 ignores `nullable` beside a `$ref`: wrapped in allOf it is kept
    "schedule": {"allOf": [_ref("Schedule")], "nullable": True},
    "tasks": {"type": "array", "minItems": 1, "items": _ref("TaskDefinition")},
}
TRIGGERS = [t.value for t in Trigger]
SCHEDULE: Json = {
    "type": "object",
    "description": "when the server runs the workflow on its own: exactly one of `cron` or `every`",
    "additionalProperties": False,
    "properties": {
        "cron": _nullable(
            {**STR, "description": "5 fields: minute hour day-of-month month day-of-week"}
        ),
        "every": _nullable({"type": "number", "minimum": 1, "maximum": MAX_EVERY}),
        "timezone": _nullable({**STR, "description": "IANA name (cron only)", "default": "UTC"}),
        "catchup": {
            "type": "string",
            "enum": list(CATCHUP),
            "default": "none",
            "description": "slots missed while no server ran: dropped, the latest, or all "
            "(at most 100)",
        },
        "params": _nullable({"type": "object", "additionalProperties": True}),
    },
}
SCHEDULE_STATE: Json = {
    "scheduleText": _nullable({**STR, "description": "the schedule in words"}),
    "paused": {"type": "boolean"},
    "nextRunTime": TIME,
    "lastScheduledRun": _nullable(
        {
            "type": "object",
            "required": ["executionId", "scheduledFor", "status"],
            "properties": {"executionId": STR, "scheduledFor": TIME, "status": STR},
        }
    ),
    "snapshots": {
        "type": "object",
        "description": "the snapshots of notebook functions its tasks run, by digest",
        "additionalProperties": {
            "type": "object",
            "required": ["function", "source", "python", "createdAt"],
            "properties": {
                "function": STR,
                "source": STR,
                "python": STR,
                "createdAt": {"type": "string", "format": "date-time"},
            },
        },
    },
    "missedSlots": _nullable(
        {
            "type": "object",
            "description": "the last time slots were missed while no server ran, and how "
            "many of them the catch-up policy fired",
            "required": ["count", "first", "last", "catchup", "fired", "detectedAt"],
            "properties": {
                "count": {"type": "integer"},
                "first": TIME,
                "last": TIME,
                "catchup": {"type": "string", "enum": list(CATCHUP)},
                "fired": {"type": "integer"},
                "detectedAt": TIME,
            },
        }
    ),
}

TASK_PROPERTIES: Json = {
    "name": STR,
    "status": {"type": "string", "enum": list(TASK_STATUSES)},
    "duration": _nullable({"type": "number"}),
    "attempts": {"type": "integer", "minimum": 0},
    "startTime": TIME,
    "endTime": TIME,
    "error": _nullable(STR),
    "reason": _nullable(STR),
    "reusedFrom": _nullable(
        {
            "type": "string",
            "description": "a result carried over by a retry (or `reuse`): the execution "
            "that computed it",
        }
    ),
}
TASK_OPTIONAL: Json = {
    "mapped": _nullable(
        {
            **_ref("MappedCounts"),
            "description": "a mapped task's instances by status (null until its upstream's "
            "list is known); only on tasks with `map_over`",
        }
    ),
}


def _execution(task: str) -> Json:
    return {
        "type": "object",
        "required": ["id", "workflowId", "revision", "status", "tasks", "startTime", "endTime"],
        "properties": {
            "id": {"type": "string", "pattern": "^exec_[0-9a-f]+$"},
            "workflowId": STR,
            "revision": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": list(EXECUTION_STATUSES)},
            "tasks": {"type": "array", "items": _ref(task)},
            "startTime": TIME,
            "endTime": TIME,
            "createdAt": TIME,
            "params": {"type": "object", "additionalProperties": True},
            "parentId": _nullable(STR),
            "reason": _nullable(STR),
            "executor": _nullable(STR),
            "trigger": {"type": "string", "enum": TRIGGERS},
            "scheduledFor": _nullable(
                {**TIME, "description": "the slot a scheduled execution was fired for"}
            ),
        },
    }


SCHEMAS: Json = {
    **KIND_SCHEMAS,
    "TaskDefinition": TASK_DEFINITION,
    "WorkflowDefinition": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "tasks"],
        "properties": DEFINITION_PROPERTIES,
    },
    "Schedule": SCHEDULE,
    "Workflow": {
        "type": "object",
        "required": [
            "id",
            "name",
            "tasks",
            "revision",
            "createdAt",
            "updatedAt",
            "schedule",
            "paused",
            "nextRunTime",
            "lastScheduledRun",
        ],
        "properties": {
            **DEFINITION_PROPERTIES,
            **SCHEDULE_STATE,
            "revision": {"type": "integer", "minimum": 1},
            "createdAt": {"type": "string", "format": "date-time"},
            "updatedAt": {"type": "string", "format": "date-time"},
        },
    },
    "Task": {
        "type": "object",
        "required": list(TASK_PROPERTIES),
        "properties": {**TASK_PROPERTIES, **TASK_OPTIONAL},
    },
    "MappedCounts": {
        "type": "object",
        "required": ["total", *(s for s in TASK_STATUSES if s != "skipped")],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            **{s: {"type": "integer", "minimum": 0} for s in TASK_STATUSES if s != "skipped"},
        },
    },
    "Instance": {
        "type": "object",
        "description": "one instance of a mapped task",
        "required": ["mapIndex", *(k for k in TASK_PROPERTIES if k != "name"), "result", "history"],
        "properties": {
            "mapIndex": {"type": "integer", "minimum": 0},
            **{k: v for k, v in TASK_PROPERTIES.items() if k != "name"},
            "result": {},
            "traceback": _nullable(STR),
            "history": {"type": "array", "items": {"type": "object"}},
            "output": _nullable(
                {**STR, "description": "a notebook instance's executed copy (under the root)"}
            ),
        },
    },
    "InstancePage": {
        "type": "object",
        "required": ["instances", "nextCursor", "mapped"],
        "properties": {
            "instances": {"type": "array", "items": _ref("Instance")},
            "nextCursor": _nullable(
                {"type": "integer", "description": "the `cursor` of the next page"}
            ),
            "mapped": _nullable(_ref("MappedCounts")),
        },
    },
    "TaskDetail": {
        "type": "object",
        "required": list(TASK_PROPERTIES),
        "properties": {
            **TASK_PROPERTIES,
            **TASK_OPTIONAL,
            "result": {},
            "traceback": _nullable(STR),
            "history": {"type": "array", "items": {"type": "object"}},
            "branch": {},
            "output": _nullable(
                {
                    **STR,
                    "description": "path (relative to the server's root) of a file the "
                    "attempt left, e.g. a notebook task's executed copy",
                }
            ),
            "abandoned": _nullable(
                {
                    "type": "object",
                    "description": "an attempt given up on (cancel, timeout) whose code "
                    "still runs: a thread blocked in C, which no executor but `process` "
                    "can kill; null once it ended",
                    "required": ["attempt", "since"],
                    "properties": {"attempt": {"type": "integer"}, "since": TIME},
                }
            ),
        },
    },
    "Execution": _execution("Task"),
    "ExecutionDetail": {
        **_execution("TaskDetail"),
        "properties": {
            **_execution("TaskDetail")["properties"],
            "taskCount": {
                "type": "integer",
                "description": "all tasks of the execution (only on a page: `?limit=`)",
            },
            "counts": {
                "type": "object",
                "description": "all tasks by status (only on a page)",
                "additionalProperties": {"type": "integer"},
            },
            "nextCursor": _nullable(
                {"type": "integer", "description": "the next page's `cursor` (only on a page)"}
            ),
        },
    },
    "ExecutionRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "params": {"type": "object", "additionalProperties": True},
            "revision": {"type": "integer", "minimum": 1},
        },
    },
    "RetryRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rerun": {
                "type": "array",
                "items": NAME,
                "description": "tasks to run again, with everything downstream of them, "
                "even where their results could be reused (an unknown name is a 400)",
            },
        },
    },
    "TaskLogs": {
        "type": "object",
        "required": ["executionId", "task", "attempts"],
        "properties": {
            "executionId": STR,
            "task": STR,
            "mapIndex": {"type": "integer", "description": "with `?map_index=`: the instance"},
            "attempts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["attempt"],
                    "properties": {
                        "attempt": {"type": "integer"},
                        "stdout": _nullable(STR),
                        "stderr": _nullable(STR),
                    },
                },
            },
        },
    },
    "Event": {
        "type": "object",
        "description": "One /ws message. `workflow_id` carries the execution id (as in the "
        "documented example); `workflow` is the definition id.",
        "required": [
            "event",
            "workflow_id",
            "task",
            "timestamp",
            "seq",
            "execution_id",
            "workflow",
            "status",
        ],
        "properties": {
            "event": {"type": "string", "enum": list(EVENT_TYPES)},
            "workflow_id": STR,
            "execution_id": STR,
            "workflow": STR,
            "task": _nullable(STR),
            "timestamp": {"type": "string", "format": "date-time"},
            "seq": {"type": "integer", "minimum": 1},
            "status": STR,
            "attempt": {"type": "integer"},
            "duration": _nullable({"type": "number"}),
            "error": _nullable(STR),
            "reason": _nullable(STR),
            "delay": {"type": "number", "description": "task_retrying: seconds until the retry"},
            "selected": {
                "type": "array",
                "items": STR,
                "description": "a branch's task_completed: the tasks it selected",
            },
            "progress": {
                "type": "object",
                "description": "task_progress: code cells done of total (a notebook task)",
                "required": ["done", "total"],
                "properties": {"done": {"type": "integer"}, "total": {"type": "integer"}},
            },
            "map_index": {
                "type": "integer",
                "description": "an event of one instance of a mapped task: its index",
            },
        },
    },
    "Revision": {
        "type": "object",
        "required": ["revision", "createdAt", "tasks", "schedule"],
        "properties": {
            "revision": {"type": "integer", "minimum": 1},
            "createdAt": {"type": "string", "format": "date-time"},
            "tasks": {"type": "integer", "minimum": 1, "description": "how many tasks"},
            "schedule": {"allOf": [_ref("Schedule")], "nullable": True},
        },
    },
    "ComparedTask": _nullable(
        {
            "type": "object",
            "required": ["status", "duration", "attempts", "result", "error"],
            "properties": {
                "status": {"type": "string", "enum": list(TASK_STATUSES)},
                "duration": _nullable({"type": "number"}),
                "attempts": {"type": "integer", "minimum": 0},
                "result": {},
                "error": _nullable(STR),
            },
        }
    ),
    "ComparedExecution": {
        "type": "object",
        "required": ["id", "workflowId", "revision", "status", "params", "startTime", "endTime"],
        "properties": {
            "id": STR,
            "workflowId": STR,
            "revision": {"type": "integer", "minimum": 1},
            "status": {"type": "string", "enum": list(EXECUTION_STATUSES)},
            "params": {"type": "object", "additionalProperties": True},
            "startTime": TIME,
            "endTime": TIME,
        },
    },
    "Comparison": {
        "type": "object",
        "required": ["a", "b", "params", "tasks", "differs"],
        "properties": {
            "a": _ref("ComparedExecution"),
            "b": _ref("ComparedExecution"),
            "params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "a", "b", "differs"],
                    "properties": {"name": STR, "a": {}, "b": {}, "differs": {"type": "boolean"}},
                },
            },
            "tasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "a", "b", "differs"],
                    "properties": {
                        "name": STR,
                        "a": _ref("ComparedTask"),
                        "b": _ref("ComparedTask"),
                        "differs": {
                            "type": "array",
                            "description": "the fields that differ (`missing`: a task only "
                            "one of the two has)",
                            "items": {
                                "type": "string",
                                "enum": [
                                    "status",
                                    "duration",
                                    "attempts",
                                    "result",
                                    "error",
                                    "missing",
                                ],
                            },
                        },
                    },
                },
            },
            "differs": {
                "type": "object",
                "required": ["params", "tasks"],
                "properties": {
                    "params": {"type": "array", "items": STR},
                    "tasks": {"type": "array", "items": STR},
                },
            },
        },
    },
    "Problem": {
        "type": "object",
        "required": ["path", "code", "detail"],
        "properties": {"path": STR, "code": STR, "detail": STR},
    },
    "Error": {
        "type": "object",
        "required": ["message", "reason", "code", "errors"],
        "properties": {
            "message": STR,
            "reason": _nullable(STR),
            "code": STR,
            "errors": {"type": "array", "items": _ref("Problem")},
        },
    },
}

ERRORS = {
    "400": "invalid input (body, query, header or definition); `errors` lists each problem",
    "403": "not authenticated, not authorized, or XSRF check failed",
    "404": "unknown id",
    "409": "the current state forbids it",
    "413": "body over `TaskFlowApp.max_body_bytes`",
    "415": "body is not application/json",
}


def _responses(ok: str, schema: Json | None, *errors: str, headers: Json | None = None) -> Json:
    out: Json = {}
    if schema is None:
        out[ok] = {"description": "done"}
    else:
        out[ok] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        if headers:
            out[ok]["headers"] = headers
    for status in ("400", "403", *errors):
        out[status] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return out


def _path(name: str, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1},
    }


def _query(name: str, description: str, schema: Json) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "the same key returns the same execution instead of starting another",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~][ -~]*$"},
}
WORKFLOW_ID = _path("workflow_id", "workflow id", ID)
EXECUTION_ID = _path("execution_id", "execution id (exec_...)")
PAGE_LIMIT = _query(
    "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
)
BODY_EXECUTION = {
    "required": False,
    "content": {"application/json": {"schema": _ref("ExecutionRequest")}},
}
EMPTY_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {"type": "object", "additionalProperties": False}}},
}

PATHS: Json = {
    "/workflows": {
        "get": {
            "operationId": "listWorkflows",
            "summary": "registered workflow definitions",
            "responses": _responses("200", {"type": "array", "items": _ref("Workflow")}),
        },
        "post": {
            "operationId": "submitWorkflow",
            "summary": "register a definition and trigger an execution (returns as soon "
            "as it is recorded)",
            "parameters": [IDEMPOTENCY],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("WorkflowDefinition")}},
            },
            "responses": _responses("200", _ref("Execution"), "409", "413", "415"),
        },
    },
    "/workflows/{workflow_id}": {
        "parameters": [WORKFLOW_ID],
        "get": {
            "operationId": "getWorkflow",
            "summary": "one definition (latest revision)",
            "parameters": [
                _query("revision", "another revision", {"type": "integer", "minimum": 1})
            ],
            "responses": _responses("200", _ref("Workflow"), "404"),
        },
        "put": {
            "operationId": "putWorkflow",
            "summary": "register or update a definition without running it (its schedule "
            "takes effect); the body's `id`, if any, must be the path's",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("WorkflowDefinition")}},
            },
            "responses": _responses("200", _ref("Workflow"), "413", "415"),
        },
        "delete": {
            "operationId": "deleteWorkflow",
            "summary": "remove a definition (409 while an execution is active)",
            "responses": _responses("204", None, "404", "409"),
        },
    },
    "/workflows/{workflow_id}/revisions": {
        "parameters": [WORKFLOW_ID],
        "get": {
            "operationId": "listRevisions",
            "summary": "the workflow's revisions, newest first (`GET /workflows/{id}?revision=N` "
            "gives one's definition)",
            "responses": _responses("200", {"type": "array", "items": _ref("Revision")}, "404"),
        },
    },
    "/workflows/{workflow_id}/executions": {
        "parameters": [WORKFLOW_ID],
        "post": {
            "operationId": "startExecution",
            "summary": "trigger a new execution of a registered workflow",
            "parameters": [IDEMPOTENCY],
            "requestBody": BODY_EXECUTION,
            "responses": _responses("200", _ref("Execution"), "404", "409", "413", "415"),
        },
    },
    **{
        f"/workflows/{{workflow_id}}/schedule/{action}": {
            "parameters": [WORKFLOW_ID],
            "post": {
                "operationId": f"{action}Schedule",
                "summary": f"{action} the workflow's schedule"
                + (" (the slots that fell while paused do not fire)" if action == "resume" else ""),
                "requestBody": EMPTY_BODY,
                "responses": _responses("200", _ref("Workflow"), "404", "409", "413", "415"),
            },
        }
        for action in ("pause", "resume")
    },
    "/executions": {
        "get": {
            "operationId": "listExecutions",
            "summary": "executions, newest first",
            "parameters": [
                _query(
                    "workflow_id",
                    "only executions of this workflow",
                    {"type": "string", "minLength": 1, "maxLength": 1000},
                ),
                _query(
                    "status",
                    "only executions with this status",
                    {"type": "string", "enum": list(EXECUTION_STATUSES)},
                ),
                _query(
                    "trigger",
                    "only executions started this way",
                    {"type": "string", "enum": TRIGGERS},
                ),
                PAGE_LIMIT,
                _query(
                    "cursor",
                    "the X-Next-Cursor of the previous page (opaque)",
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 100,
                        "pattern": "^[A-Za-z0-9_-]+$",
                    },
                ),
            ],
            "responses": _responses(
                "200",
                {"type": "array", "items": _ref("Execution")},
                headers={
                    "X-Next-Cursor": {
                        "description": "cursor of the next page (absent on the last page)",
                        "schema": STR,
                    },
                    "Link": {"description": 'rel="next" URL of the next page', "schema": STR},
                },
            ),
        },
    },
    "/executions/{execution_id}": {
        "parameters": [EXECUTION_ID],
        "get": {
            "operationId": "getExecution",
            "summary": "one execution with full task detail",
            "description": "With `limit` (or `cursor`, which pages by 100), `tasks` is a "
            "page of the tasks in definition order, and the answer adds `taskCount`, "
            "`counts` (all tasks by status) and `nextCursor`; without, every task.",
            "parameters": [
                _query(
                    "limit",
                    "page size (no default: without it or `cursor`, every task)",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                ),
                _query(
                    "cursor",
                    "the index of the first task of the page (the previous page's `nextCursor`)",
                    {"type": "integer", "minimum": 0, "default": 0},
                ),
            ],
            "responses": _responses("200", _ref("ExecutionDetail"), "400", "404"),
        },
    },
    "/executions/{execution_id}/cancel": {
        "parameters": [EXECUTION_ID],
        "post": {
            "operationId": "cancelExecution",
            "summary": "cancel (409 when finished)",
            "requestBody": EMPTY_BODY,
            "responses": _responses("200", _ref("Execution"), "404", "409", "413", "415"),
        },
    },
    "/executions/{execution_id}/compare/{other_id}": {
        "parameters": [EXECUTION_ID, _path("other_id", "the execution to compare it with")],
        "get": {
            "operationId": "compareExecutions",
            "summary": "two executions of one workflow side by side: parameters, per-task "
            "status, duration, attempts, result and error, what differs named (400 "
            "`not_comparable` for executions of different workflows)",
            "responses": _responses("200", _ref("Comparison"), "400", "404"),
        },
    },
    "/executions/{execution_id}/retry": {
        "parameters": [EXECUTION_ID],
        "post": {
            "operationId": "retryExecution",
            "summary": "new execution reusing completed results (409 while active); "
            "`rerun` names tasks to run again with everything downstream",
            "parameters": [IDEMPOTENCY],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("RetryRequest")}},
            },
            "responses": _responses("200", _ref("Execution"), "404", "409", "413", "415"),
        },
    },
    "/executions/{execution_id}/tasks/{task}/logs": {
        "parameters": [EXECUTION_ID, _path("task", "task name", NAME)],
        "get": {
            "operationId": "getTaskLogs",
            "summary": "captured stdout/stderr per attempt (what a running attempt wrote so "
            "far); of one instance of a mapped task with `map_index`",
            "parameters": [
                _query(
                    "map_index",
                    "an instance of a mapped task (400 `not_mapped` for another task)",
                    {"type": "integer", "minimum": 0},
                )
            ],
            "responses": _responses("200", _ref("TaskLogs"), "400", "404"),
        },
    },
    "/executions/{execution_id}/tasks/{task}/instances": {
        "parameters": [EXECUTION_ID, _path("task", "task name", NAME)],
        "get": {
            "operationId": "listInstances",
            "summary": "a page of a mapped task's instances, in index order (400 "
            "`not_mapped` for a task without `map_over`)",
            "parameters": [
                _query(
                    "status",
                    "only instances with this status",
                    {"type": "string", "enum": list(TASK_STATUSES)},
                ),
                PAGE_LIMIT,
                _query(
                    "cursor",
                    "the index the page starts at (the previous page's `nextCursor`)",
                    {"type": "integer", "minimum": 0, "default": 0},
                ),
            ],
            "responses": _responses("200", _ref("InstancePage"), "400", "404"),
        },
    },
    "/taskflow/notebooks/parameters": {
        "get": {
            "operationId": "getNotebookParameters",
            "summary": "the parameters cell of a notebook under the root, described",
            "description": "papermill's convention: `limit: int = 10  # rows` gives "
            '`{"name": "limit", "type": "int", "default": "10", "help": "rows"}`. The path '
            "must stay under the server's root (symlinks followed) and end in .ipynb.",
            "parameters": [
                {**_query("path", "a notebook, relative to the root", STR), "required": True}
            ],
            "responses": _responses(
                "200",
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type", "default", "help"],
                        "properties": {
                            "name": STR,
                            "type": _nullable(STR),
                            "default": STR,
                            "help": STR,
                        },
                    },
                },
                "404",
            ),
        },
    },
    "/taskflow/openapi.json": {
        "get": {
            "operationId": "getOpenAPI",
            "summary": "this document",
            "responses": _responses("200", {"type": "object"}),
        },
    },
    "/ws": {
        "get": {
            "operationId": "events",
            "summary": "WebSocket stream of events (one Event object per message)",
            "description": "Upgrade to a WebSocket. Replays every stored event after "
            "`since`, then continues live, with no gap and no duplicate. "
            "A client that falls behind is closed with code 1013; it "
            "reconnects with `since` set to the last seq it received.",
            "parameters": [
                _query(
                    "execution",
                    "only events of this execution",
                    {"type": "string", "minLength": 1, "maxLength": 1000},
                ),
                _query(
                    "workflow",
                    "only events of this workflow",
                    {"type": "string", "minLength": 1, "maxLength": 1000},
                ),
                _query(
                    "since",
                    "replay stored events after this seq first",
                    {"type": "integer", "minimum": 0},
                ),
            ],
            "responses": {
                "101": {
                    "description": "Switching Protocols; then messages that are Event objects",
                    "content": {"application/json": {"schema": _ref("Event")}},
                },
                **{k: v for k, v in _responses("101", None).items() if k != "101"},
            },
        },
    },
}


@lru_cache(maxsize=8)
def _document(base_url: str) -> Json:
    from .._version import __version__

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "PyTaskFlow for Jupyter",
            "version": __version__,
            "description": "Workflow (DAG) orchestration on the Jupyter server. "
            "Every route needs Jupyter's authentication.",
        },
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"token": []}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Authorization: token <TOKEN>`. Browsers may use "
                    "Jupyter's login cookie instead, with an "
                    "`X-XSRFToken` header equal to the `_xsrf` cookie "
                    "on POST and DELETE.",
                },
            },
        },
        "paths": PATHS,
    }


def openapi(base_url: str = "/") -> Json:
    """The document for a server mounted at ``base_url``."""
    return copy.deepcopy(_document(base_url))
