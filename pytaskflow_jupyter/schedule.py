"""Schedules (SPEC section 12): when a workflow's slots fall, and what a check fires.

Pure: no clock, no database. ``check`` validates the ``schedule`` of a definition,
``Schedule`` computes its slots, ``plan`` decides what one check of the scheduler fires
given the last slot handled and the time now (the store runs it inside the transaction
that claims the slots, ``Store.fire``; ``Runner.fire_due`` launches what it created).

Cron expressions are parsed and iterated by cronsim (maintained, small, pure Python; it
iterates in a time zone the way Debian's cron does, which is the SPEC's DST rule for a
local time that does not exist: the slot fires at the first valid instant after it).
The other DST rule, a repeated local time fires once at its first occurrence, is
applied here: the second occurrence (``fold=1``) of an ambiguous local time is no slot.
``cron-descriptor`` turns an expression into words for the panel and the magics.

A slot is *on time* when a check sees it at most ``grace`` seconds after it fell (a
running server checks every quarter second, so only a stall makes it late); older due
slots were *missed* while no server ran, and the ``catchup`` policy says what to do
with them: ``none`` drops them, ``latest`` fires the most recent, ``all`` fires each (at
most ``MAX_CATCHUP``, the most recent).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import iso

__all__ = ["CATCHUP", "MAX_CATCHUP", "SCHEDULE_KEYS", "Fire", "Schedule", "check", "plan"]

Json = dict[str, Any]
CATCHUP = ("none", "latest", "all")
MAX_CATCHUP = 100
SCHEDULE_KEYS = frozenset({"cron", "every", "timezone", "catchup", "params"})
MAX_EVERY = 366 * 24 * 3600.0  # a year: longer intervals are better said with cron
_SCAN_LIMIT = 100_000  # cron slots counted in one check (a year of every-5-minutes)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check(value: Any, add: Callable[[str, str, str], None], where: str = "schedule") -> None:
    """Report every problem of a definition's ``schedule`` through ``add(path, code,
    message)`` (validation's problem list)."""
    if value is None:
        return
    if not isinstance(value, dict):
        add(where, "type_error", f"must be an object, not {type(value).__name__}")
        return
    for key in sorted(set(value) - SCHEDULE_KEYS):
        add(
            f"{where}.{key}",
            "unknown_field",
            f"unknown key {key!r}; allowed: {', '.join(sorted(SCHEDULE_KEYS))}",
        )
    has_cron, has_every = value.get("cron") is not None, value.get("every") is not None
    if has_cron == has_every:
        add(
            where,
            "invalid_schedule",
            "give exactly one of 'cron' (5 fields) or 'every' (seconds), not "
            + ("both" if has_cron else "neither"),
        )
    if has_cron:
        cron = value["cron"]
        if not isinstance(cron, str):
            add(f"{where}.cron", "type_error", f"must be a string, not {type(cron).__name__}")
        elif (why := _cron_problem(cron)) is not None:
            add(f"{where}.cron", "invalid_cron", why)
    if has_every:
        every = value["every"]
        if isinstance(every, bool) or not isinstance(every, int | float):
            add(f"{where}.every", "type_error", f"must be a number, not {type(every).__name__}")
        elif not math.isfinite(every) or not 1 <= every <= MAX_EVERY:
            add(f"{where}.every", "out_of_range", f"must be seconds from 1 to {MAX_EVERY:.0f}")
    tz = value.get("timezone")
    if tz is not None:
        if not isinstance(tz, str):
            add(f"{where}.timezone", "type_error", f"must be a string, not {type(tz).__name__}")
        elif (why := _zone_problem(tz)) is not None:
            add(f"{where}.timezone", "unknown_timezone", why)
        elif has_every and not has_cron:
            add(f"{where}.timezone", "invalid_schedule", "applies to 'cron' only")
    catchup = value.get("catchup", "none")
    if catchup not in CATCHUP:
        add(f"{where}.catchup", "invalid_value", f"must be one of {', '.join(CATCHUP)}")
    params = value.get("params")
    if params is not None and not isinstance(params, dict):
        add(f"{where}.params", "type_error", f"must be an object, not {type(params).__name__}")


def _zone_problem(name: str) -> str | None:
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return f"{name[:100]!r} is not an IANA time zone name (e.g. 'Europe/Paris', 'UTC')"
    return None


def _cron_problem(expr: str) -> str | None:
    from cronsim import CronSim, CronSimError

    if len(expr) > 200:
        return f"is {len(expr)} characters long; the limit is 200"
    if len(expr.split()) != 5:
        return f"{expr!r} must have 5 fields (minute hour day-of-month month day-of-week)"
    try:
        next(CronSim(expr, datetime(2000, 1, 1, tzinfo=timezone.utc)))
    except (CronSimError, ValueError, StopIteration) as exc:
        return f"{expr!r} is not a valid cron expression: {exc or 'it never fires'}"
    return None


@dataclass(frozen=True)
class Schedule:
    """A valid ``schedule`` (defaults filled in)."""

    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    catchup: str = "none"
    params: Json = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Json) -> Schedule:
        """From a ``schedule`` that ``check`` accepted."""
        every = data.get("every")
        return cls(
            cron=data.get("cron"),
            every=None if every is None else float(every),
            timezone=data.get("timezone") or "UTC",
            catchup=data.get("catchup") or "none",
            params=dict(data.get("params") or {}),
        )

    def to_json(self) -> Json:
        """As ``GET /workflows`` shows it: every field, defaults included."""
        every = self.every
        if every is not None and every.is_integer():
            every = int(every)  # as posted: 60, not 60.0
        out: Json = {"cron": self.cron, "every": every}
        if self.cron is not None:
            out["timezone"] = self.timezone
        out.update(catchup=self.catchup, params=self.params)
        return out

    def slots(self, after: float, anchor: float) -> Iterator[float]:
        """The slots strictly after ``after`` (Unix seconds), in order. ``every``
        schedules fall on ``anchor + k * every``; cron ones on the expression's times."""
        if self.every is not None:
            k = math.floor((after - anchor) / self.every) + 1
            while True:
                yield anchor + k * self.every
                k += 1
        from cronsim import CronSim

        tz = _zone(self.timezone)
        start = datetime.fromtimestamp(math.floor(after), tz)
        for local in CronSim(self.cron or "", start):
            if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
                continue  # the repeated hour of a fall-back: its first occurrence fired
            ts = local.timestamp()
            if ts > after:
                yield ts

    def next_slot(self, after: float, anchor: float) -> float:
        """The first slot strictly after ``after``."""
        return next(self.slots(after, anchor))

    def describe(self) -> str:
        """In words: ``"At 02:30, Monday through Friday (Europe/Paris)"``, ``"Every 10
        minutes"``."""
        if self.every is not None:
            return _every_words(self.every)
        return _cron_words(self.cron or "", self.timezone)


@functools.lru_cache(maxsize=4096)
def _cron_words(cron: str, timezone: str) -> str:
    """A cron expression in words, once per expression (cron-descriptor takes ~0.4 ms,
    and ``GET /workflows`` says every workflow's schedule)."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    words = str(ExpressionDescriptor(cron, options).get_description())
    return f"{words} ({timezone})"


def _every_words(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"Every {unit}" if n == 1 else f"Every {n} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds:g} seconds"


@dataclass
class Fire:
    """What one check does for one workflow (``plan``)."""

    slots: list[float]  # to fire now, oldest first
    last_slot: float  # the newest slot handled (fired or dropped)
    next_slot: float  # the first slot after now
    missed: Json | None = None  # slots missed while no server ran, and what became of them


def plan(sched: Schedule, anchor: float, last_slot: float, now: float, grace: float) -> Fire:
    """The slots due in ``(last_slot, now]`` and which of them fire (module docstring)."""
    on_time: list[float] = []
    missed: list[float] = []  # at most MAX_CATCHUP kept, the most recent
    missed_count, first_missed = 0, None
    newest = last_slot
    for n, slot in enumerate(sched.slots(last_slot, anchor)):
        if slot > now or n >= _SCAN_LIMIT:
            nxt = slot if slot > now else sched.next_slot(now, anchor)
            break
        newest = slot
        if now - slot <= grace:
            on_time.append(slot)
        else:
            missed_count += 1
            first_missed = slot if first_missed is None else first_missed
            missed.append(slot)
            if len(missed) > MAX_CATCHUP:
                del missed[0]
    caught = {"none": [], "latest": missed[-1:], "all": missed}[sched.catchup]
    info = None
    if missed_count:
        info = {
            "count": missed_count,
            "first": iso(first_missed or 0.0),
            "last": iso(missed[-1]),
            "catchup": sched.catchup,
            "fired": len(caught),
            "detectedAt": iso(now),
        }
    return Fire(caught + on_time, newest, nxt, info)
