"""Checks a workflow definition (the body of ``POST /workflows``) and builds a ``Workflow``.

Every rule of SPEC §3 is checked and *every* problem is reported at once, each with its
location (``tasks[2].dependencies[0]``), in one ``ValidationError``. Nothing from the
body is imported or run here (``code`` is compiled, never executed): each task's
``params`` are checked by its kind, from the registry in ``kinds.py``.
"""

from __future__ import annotations

import graphlib
import json
import keyword
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from . import schedule
from .errors import Problem, ValidationError
from .kinds import KINDS, TASK_TYPES
from .model import (
    DEFAULT_TRIGGER_RULE,
    TRIGGER_RULES,
    TaskSpec,
    Workflow,
    canonical_json,
)
from .schedule import Schedule

__all__ = ["Limits", "parse_workflow", "walk_strings"]

WORKFLOW_KEYS = frozenset(
    {
        "id",
        "name",
        "description",
        "version",
        "tags",
        "owner",
        "tasks",
        "max_parallel",
        "parameters",
        "schedule",
    }
)
TASK_KEYS = frozenset(
    {
        "name",
        "type",
        "params",
        "dependencies",
        "retries",
        "retry_delay",
        "retry_backoff",
        "timeout",
        "trigger_rule",
        "map_over",
    }
)
# matched with ``fullmatch``: ``$`` would also match before a trailing newline
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Limits:
    """Configurable bounds on a definition."""

    max_tasks: int = 100_000
    max_name_length: int = 200
    max_retries: int = 100
    max_dependencies: int = 10_000


# Definitions read back from the store were checked against the limits of the day they
# were posted; a store with lower limits (another process, a restart) must still run them.
STORED = Limits(max_tasks=10**9, max_name_length=10**9, max_retries=10**9, max_dependencies=10**9)


class _Problems:
    """Collects problems; stops collecting past ``MAX_PROBLEMS`` (the count stays exact)."""

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.count = 0

    def add(self, path: str, code: str, detail: str, **extra: Any) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(path, code, detail, extra))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(path, string)`` for every string (keys included) in a JSON value, iteratively."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, sub in item.items():
                yield f"{where}.{key}" if where else str(key), str(key)
                stack.append((f"{where}.{key}" if where else str(key), sub))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))


def _name_problem(value: Any, limits: Limits) -> str | None:
    """Why ``value`` is not an acceptable name, or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value.strip():
        return "must not be empty"
    if len(value) > limits.max_name_length:
        return f"is {len(value)} characters long; the limit is {limits.max_name_length}"
    if value.isprintable():  # the common case: no control, format or surrogate character
        return None
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        return f"contains the control or format character U+{ord(bad):04X}"
    return None


def derive_id(name: str) -> str:
    """A URL-safe workflow id from a name (``"My Workflow"`` -> ``"my_workflow"``)."""
    slug = re.sub(r"[^a-z0-9]+", "_", unicodedata.normalize("NFKD", name).lower()).strip("_")
    return slug[:200] or "workflow"


def _check_header(data: dict[str, Any], p: _Problems, limits: Limits) -> None:
    for key in sorted(set(data) - WORKFLOW_KEYS):
        p.add(
            key,
            "unknown_field",
            f"unknown key {key!r}; allowed: {', '.join(sorted(WORKFLOW_KEYS))}",
        )
    if "name" not in data:
        p.add("name", "required", "is required")
    elif (why := _name_problem(data["name"], limits)) is not None:
        p.add("name", "invalid_name", why)
    if "id" in data:
        wid = data["id"]
        if (
            not isinstance(wid, str)
            or not ID_PATTERN.fullmatch(wid)
            or len(wid) > limits.max_name_length
        ):
            p.add(
                "id",
                "invalid_id",
                f"{wid!r} is not a valid id: use letters, digits, "
                f"'_', '.', '-' (at most {limits.max_name_length}), "
                "starting with a letter or digit",
            )
    for key in ("description", "owner"):
        if data.get(key) is not None and not isinstance(data[key], str):
            p.add(key, "type_error", f"must be a string, not {type(data[key]).__name__}")
    if "version" in data and not (_is_int(data["version"]) or isinstance(data["version"], str)):
        p.add("version", "type_error", "must be a string or an integer")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        p.add("tags", "type_error", "must be a list of strings")
    mp = data.get("max_parallel")
    if mp is not None and (not _is_int(mp) or mp < 1):
        p.add("max_parallel", "out_of_range", "must be a positive integer")
    if "parameters" in data:
        _check_parameters(data["parameters"], p)
    if data.get("schedule") is not None:
        _check_schedule(data["schedule"], data.get("parameters"), p)


def _check_schedule(value: Any, parameters: Any, p: _Problems) -> None:
    """``schedule`` (SPEC 12); its ``params`` must be declared ``parameters`` when the
    workflow declares them, as a trigger's."""
    schedule.check(value, p.add)
    given = value.get("params") if isinstance(value, dict) else None
    if isinstance(given, dict) and isinstance(parameters, dict) and parameters:
        for name in sorted(set(given) - set(parameters), key=str):
            p.add(
                f"schedule.params.{name}",
                "unknown_parameter",
                f"{name!r} is not a declared parameter; declared: "
                f"{', '.join(sorted(map(str, parameters))) or 'none'}",
            )


PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")  # fullmatch, as ID_PATTERN


def _check_parameters(parameters: Any, p: _Problems) -> None:
    """``parameters``: names (Python identifiers: notebooks and callables receive them as
    variables and keyword arguments) to default JSON values."""
    if not isinstance(parameters, dict):
        p.add("parameters", "type_error", "must be an object of parameter names to defaults")
        return
    for name in parameters:
        if (
            not isinstance(name, str)
            or not PARAMETER_NAME.fullmatch(name)
            or keyword.iskeyword(name)
        ):
            p.add(
                f"parameters.{name}",
                "invalid_parameter_name",
                f"{name!r} is not a valid parameter name (a Python identifier, at most 100 "
                "characters)",
            )


def _check_number(
    task: dict[str, Any],
    key: str,
    where: str,
    p: _Problems,
    *,
    low: float,
    high: float,
    integer: bool = False,
    low_open: bool = False,
) -> None:
    if key not in task or (key == "timeout" and task[key] is None):
        return
    value = task[key]
    ok_type = _is_int(value) if integer else _is_number(value)
    if not ok_type:
        kind = "an integer" if integer else "a number"
        p.add(f"{where}.{key}", "type_error", f"must be {kind}, not {type(value).__name__}")
    elif value != value or value < low or value > high or (low_open and value == low):
        bound = f"> {low}" if low_open else f">= {low}"
        p.add(
            f"{where}.{key}", "out_of_range", f"{value!r} is out of range ({bound} and <= {high})"
        )


def _check_params(task: dict[str, Any], i: int, p: _Problems, plain: bool, name: Any) -> None:
    """The task's ``params``, checked by its kind (``kinds.py``): keys, types, code."""
    params = task.get("params", {})
    if not isinstance(params, dict):
        p.add(f"tasks[{i}].params", "type_error", "must be an object")
        return
    kind_name = task.get("type", "python")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None  # else: a type_error
    if kind is not None and (params or not kind.EMPTY_OK):
        kind.check(params, f"tasks[{i}].params", p.add, str(name))
    if plain:
        return
    try:
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        p.add(f"tasks[{i}].params", "type_error", f"must be plain JSON ({exc})")


NUMBER_KEYS = frozenset({"retries", "retry_delay", "retry_backoff", "timeout"})


def _nfc(name: str) -> str:
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def _check_task(i: int, task: Any, p: _Problems, limits: Limits, plain: bool) -> str | None:
    """Check one task's own fields; return its (NFC) name when it has a valid one.
    (Paths are formatted only for a problem: this runs once per task of 100,000.)"""
    if not isinstance(task, dict):
        p.add(f"tasks[{i}]", "type_error", f"must be an object, not {type(task).__name__}")
        return None
    if not task.keys() <= TASK_KEYS:
        for key in sorted(task.keys() - TASK_KEYS):
            p.add(
                f"tasks[{i}].{key}",
                "unknown_field",
                f"unknown key {key!r}; allowed: {', '.join(sorted(TASK_KEYS))}",
            )
    name = task.get("name")
    why = "is required" if "name" not in task else _name_problem(name, limits)
    if why is not None:
        p.add(f"tasks[{i}].name", "invalid_name", why)
    kind = task.get("type", "python")
    if kind not in TASK_TYPES:
        p.add(
            f"tasks[{i}].type",
            "unknown_task_type",
            f"unknown task type {kind!r}; allowed: {', '.join(TASK_TYPES)}",
        )
    deps = task.get("dependencies", [])
    if not isinstance(deps, list):
        p.add(f"tasks[{i}].dependencies", "type_error", "must be a list of task names")
    elif len(deps) > limits.max_dependencies:
        p.add(f"tasks[{i}].dependencies", "too_many_edges", f"more than {limits.max_dependencies}")
    if not NUMBER_KEYS.isdisjoint(task):
        where = f"tasks[{i}]"
        _check_number(task, "retries", where, p, low=0, high=limits.max_retries, integer=True)
        _check_number(task, "retry_delay", where, p, low=0, high=86_400)
        _check_number(task, "retry_backoff", where, p, low=1, high=100)
        _check_number(task, "timeout", where, p, low=0, high=7 * 86_400, low_open=True)
    if "trigger_rule" in task and task["trigger_rule"] not in TRIGGER_RULES:
        p.add(
            f"tasks[{i}].trigger_rule",
            "unknown_trigger_rule",
            f"unknown trigger rule {task['trigger_rule']!r}; allowed: {', '.join(TRIGGER_RULES)}",
        )
    _check_params(task, i, p, plain, name)
    return _nfc(name) if why is None and isinstance(name, str) else None


def _check_dependencies(
    i: int, name: str, deps: list[Any], index: dict[str, int], p: _Problems
) -> list[str]:
    """The valid dependencies of one task (NFC); a problem for each other one."""
    good: list[str] = []
    seen: set[str] = set()
    for j, dep in enumerate(deps):
        where = f"tasks[{i}].dependencies[{j}]"
        if not isinstance(dep, str):
            p.add(where, "type_error", f"must be a task name, not {type(dep).__name__}")
            continue
        dep = _nfc(dep)
        if dep == name:
            p.add(where, "self_dependency", f"task {name!r} depends on itself", task=name)
        elif dep not in index:
            p.add(where, "unknown_dependency", f"unknown task {dep!r}", task=dep)
        elif dep in seen:
            p.add(where, "duplicate_dependency", f"{dep!r} is listed twice", task=dep)
        else:
            good.append(dep)
        seen.add(dep)
    return good


def _plain_dependencies(i: int, deps: list[Any], index: dict[str, int]) -> bool | None:
    """The common case in one tight pass: every dependency an ASCII name of another task,
    none twice. Returns whether one of them comes later in the list (else the order of
    the list is a topological order: no cycle), or None to check them one by one."""
    later = False
    for dep in deps:
        if dep.__class__ is not str or not dep.isascii():
            return None
        k = index.get(dep)
        if k is None or k == i:
            return None
        if k > i:
            later = True
    if len(deps) > 1 and len(set(deps)) != len(deps):
        return None
    return later


def _check_graph(tasks: list[Any], names: list[str | None], p: _Problems) -> list[list[str]]:
    """Duplicates, unknown and self dependencies, cycles, branch targets; returns each
    task's valid dependencies (NFC)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is None:
            continue
        if name in index:
            p.add(
                f"tasks[{i}].name",
                "duplicate_task_name",
                f"duplicate task name {name!r} (also tasks[{index[name]}])",
                task=name,
            )
        else:
            index[name] = i
    graph: dict[str, list[str]] = {}
    out: list[list[str]] = []
    ordered = True  # every dependency comes earlier in the list than its task
    for i, (task, name) in enumerate(zip(tasks, names, strict=True)):
        deps = task.get("dependencies", []) if isinstance(task, dict) else []
        if name is None or not isinstance(deps, list):
            out.append([])
            continue
        later = _plain_dependencies(i, deps, index)
        if later is None:
            good = _check_dependencies(i, name, deps, index, p)
            ordered = ordered and all(index[d] < i for d in good)
        else:
            good = deps
            ordered = ordered and not later
        out.append(good)
        graph.setdefault(name, good)
    if not ordered:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            p.add(
                "tasks",
                "cycle_detected",
                "dependency cycle " + " -> ".join(map(repr, cycle)) + " (each depends on the next)",
                cycle=cycle,
            )
    _check_branch_targets(tasks, names, out, index, p)
    _check_map_over(tasks, names, out, p)
    return out


def _check_map_over(
    tasks: list[Any], names: list[str | None], deps: list[list[str]], p: _Problems
) -> None:
    """``map_over`` (SPEC 11) names one of the task's own dependencies; a branch, which
    selects tasks, is not mapped."""
    for i, (task, name, good) in enumerate(zip(tasks, names, deps, strict=True)):
        if not isinstance(task, dict) or task.get("map_over") is None:
            continue
        over = task["map_over"]
        where = f"tasks[{i}].map_over"
        if not isinstance(over, str):
            p.add(where, "type_error", f"must be a task name, not {type(over).__name__}")
        elif _nfc(over) not in good:
            listed = ", ".join(map(repr, good)) or "none"
            p.add(
                where,
                "invalid_map_over",
                f"map_over {over!r} must name one of the dependencies of {name!r} "
                f"(its dependencies: {listed})",
                task=over,
            )
        elif task.get("type") == "branch":
            p.add(where, "invalid_map_over", "a branch task cannot be mapped")


def _check_branch_targets(
    tasks: list[Any],
    names: list[str | None],
    deps: list[list[str]],
    index: dict[str, int],
    p: _Problems,
) -> None:
    branches = {
        name: i
        for i, (task, name) in enumerate(zip(tasks, names, strict=True))
        if name is not None
        and isinstance(task, dict)
        and task.get("type") == "branch"
        and isinstance(task.get("params"), dict)
        and "next" in task["params"]
    }
    if not branches:
        return
    children: dict[str, set[str]] = {name: set() for name in branches}
    for name, good in zip(names, deps, strict=True):
        for dep in good:
            if dep in children and name is not None:
                children[dep].add(name)
    for name, i in branches.items():
        nxt = tasks[i]["params"]["next"]
        targets = [nxt] if isinstance(nxt, str) else nxt
        if not isinstance(targets, list):
            p.add(f"tasks[{i}].params.next", "type_error", "must be a task name or a list of them")
            continue
        for j, target in enumerate(targets):
            if not isinstance(target, str):
                continue  # a type_error already (kinds.BranchKind.check)
            if target not in children[name]:
                why = (
                    "not a task of this workflow"
                    if target not in index
                    else (
                        f"not a direct downstream task of {name!r} "
                        f"(it must list {name!r} in its dependencies)"
                    )
                )
                p.add(
                    f"tasks[{i}].params.next[{j}]",
                    "invalid_branch_target",
                    f"branch {name!r} names {target!r}, which is {why}",
                    task=target,
                )


def _plain_json(data: Any) -> str | None:
    """``data`` as canonical JSON text (``model.canonical_json``) when it is plain JSON
    (no NaN, no Python objects) and valid UTF-8: one pass in C for the common case, and
    the text serves the fingerprint; None sends the checks looking for the problems."""
    try:
        text = canonical_json(data)
        text.encode("utf-8")
    except (UnicodeEncodeError, TypeError, ValueError, RecursionError):
        return None
    return text


def _check_strings(data: Any, p: _Problems) -> None:
    """Lone surrogates pass ``json`` but break SQLite's UTF-8 later: reject them here."""
    for where, text in walk_strings(data):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            p.add(where, "invalid_string", "contains a lone surrogate (not valid Unicode)")


def parse_workflow(data: Any, limits: Limits | None = None) -> Workflow:
    """Validate a definition and build the ``Workflow``; raise ``ValidationError`` listing
    every problem, each with its location."""
    limits = limits or Limits()
    p = _Problems()
    if not isinstance(data, dict):
        raise ValidationError(
            "The workflow definition must be a JSON object",
            [Problem("", "type_error", "must be an object")],
        )
    canonical = _plain_json(data)
    plain = canonical is not None
    if not plain:
        _check_strings(data, p)
    _check_header(data, p, limits)
    tasks = data.get("tasks")
    names: list[str | None] = []
    if "tasks" not in data:
        p.add("tasks", "required", "is required (a list of at least one task)")
    elif not isinstance(tasks, list):
        p.add("tasks", "type_error", "must be a list of tasks")
    elif not tasks:
        p.add("tasks", "empty_workflow", "must contain at least one task")
    elif len(tasks) > limits.max_tasks:
        p.add("tasks", "too_many_tasks", f"{len(tasks)} tasks; the limit is {limits.max_tasks}")
    else:
        names = [_check_task(i, t, p, limits, plain) for i, t in enumerate(tasks)]
        deps = _check_graph(tasks, names, p)
    if p.count:
        raise ValidationError("Invalid workflow definition:", p.items, total=p.count)
    return _build(data, cast("list[str]", names), deps, canonical)  # every name is set


def _build(
    data: dict[str, Any], names: list[str], deps: list[list[str]], canonical: str | None
) -> Workflow:
    """The ``Workflow`` of a valid definition (``names`` and ``deps`` in NFC, as checked;
    ``canonical``: its text from the plain-JSON check, which the fingerprint reuses)."""
    specs = tuple(
        TaskSpec(
            name,
            t.get("type", "python"),
            dict(t.get("params") or {}),
            tuple(d),
            t.get("retries", 0),
            float(t.get("retry_delay", 1.0)),
            float(t.get("retry_backoff", 2.0)),
            float(t["timeout"]) if t.get("timeout") is not None else None,
            t.get("trigger_rule", DEFAULT_TRIGGER_RULE),
            _nfc(t["map_over"]) if t.get("map_over") is not None else None,
        )
        for t, name, d in zip(data["tasks"], names, deps, strict=True)
    )
    return Workflow(
        id=data.get("id") or derive_id(data["name"]),
        name=data["name"],
        tasks=specs,
        source=data,
        description=data.get("description"),
        version=data.get("version", 1),
        tags=tuple(data.get("tags", ())),
        owner=data.get("owner"),
        max_parallel=data.get("max_parallel"),
        parameters=data.get("parameters"),
        schedule=None if data.get("schedule") is None else Schedule.from_json(data["schedule"]),
        canonical=canonical,
    )
