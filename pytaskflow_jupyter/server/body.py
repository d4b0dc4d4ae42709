"""Our own JSON body parser: strict, bounded, and never a 500.

The stdlib ``json`` module is lenient where an API must not be (``NaN``, duplicate keys
where the last one silently wins, lone surrogates that later break SQLite's UTF-8) and
fragile where an attacker pushes (deep nesting raises ``RecursionError``; a 5,000-digit
integer raises a bare ``ValueError``). Every one of those becomes an ``InvalidInput``
(400) with a ``code`` that names the problem; a wrong media type is 415, and the size
cap (413) is enforced by the handler before and while the body is read.

Codes: ``empty_body``, ``invalid_utf8``, ``invalid_json`` (syntax, BOM, trailing data),
``invalid_number`` (NaN, Infinity, overflow, too many digits), ``duplicate_key``,
``invalid_string`` (lone surrogate), ``json_too_deep``.

Two passes, one answer. The strict parse (``json.loads`` with a hook per object and per
number, a depth scan, a re-encoding to find surrogates) cost 5.8 us a task of a
10,000-task definition, more than the server's whole handling of it besides. So a body
is first parsed by orjson, which refuses what the strict parse refuses except three
things, each then checked at C speed on orjson's own compact re-encoding: a duplicate
key (orjson keeps the last: the colons outside strings are fewer than the body's), an
integer beyond 64 bits (orjson makes it a float: an exponent ``e+`` outside strings),
and nesting deeper than the limit (counted on the brackets outside strings). Whenever
orjson refuses or a check fails, the strict parse decides, and names the problem.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

import orjson

from ..errors import InvalidInput, Problem, UnsupportedMediaType

__all__ = ["check_media_type", "depth_exceeded", "parse_json", "parse_strict"]

MAX_INT_DIGITS = 4300  # CPython's int/str conversion limit (sys.get_int_max_str_digits)

_STRINGS = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# Text up to the first string that does not close (or to the end): strings are matched
# from the left, once each. Cutting strings with ``_STRINGS`` alone is quadratic on a
# string that never closes: every escaped quote inside it is tried again as an opening
# quote (``"\"\"\"...``, 80 KB: 18 s of CPU).
_CLOSED = re.compile(rb'(?:[^"]*+"[^"\\]*+(?:\\.[^"\\]*+)*+")*+[^"]*+', re.DOTALL)
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte except brackets
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_NOT_MARKS = bytes(range(256)).translate(None, b'"[]{}')  # every byte but quotes, brackets
_QUOTED = re.compile(rb'"[^"]*"')  # a string without escapes


class _Reject(ValueError):
    """Raised from inside ``json.loads`` hooks; carries the problem out."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def _fail(code: str, detail: str, path: str = "") -> InvalidInput:
    return InvalidInput(f"Invalid JSON body: {detail}", [Problem(path, code, detail)], code=code)


def check_media_type(content_type: str | None) -> None:
    """Bodies must be ``application/json`` (UTF-8); anything else is 415.

    Requiring it is also a CSRF defence: an HTML form cannot send it.
    """
    media, _, rest = (content_type or "").partition(";")
    if media.strip().lower() != "application/json":
        shown = media.strip() or "none"
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {shown}", code="unsupported_media_type"
        )
    for param in rest.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise UnsupportedMediaType(
                f"charset must be utf-8, not {value.strip()}", code="unsupported_media_type"
            )


_WINDOW_CAP = 1 << 20


def depth_exceeded(raw: bytes, limit: int) -> int | None:
    """Where a JSON text nests deeper than ``limit``, without parsing it: None if it
    never does, else how many bytes were read to find out (the end of the window that
    crossed the limit).

    Why windows: a body of 33 MB of ``[`` must be refused after ``limit`` bytes, not after
    a pass over all of it, yet a large valid body must cost C speed, not a Python step per
    byte. So the text is read in windows, the first ``limit + 1`` bytes long and each next
    one twice as long (up to 1 MiB); in each, strings are cut out and the brackets summed
    by ``re``, ``bytes.translate`` and ``itertools.accumulate``. A window stops before the
    opening quote of a string its end cuts (``_CLOSED``), where the next one starts, so a
    window never starts inside a string.
    """
    depth, pos, n = 0, 0, len(raw)
    window = limit + 1
    while pos < n:
        end = min(n, pos + window)
        match = _CLOSED.match(raw, pos, end)  # it matches, if only the empty text
        closed = match.end() if match else pos
        if closed == pos and end < n:  # a string longer than the window: read further
            window *= 2
            continue
        stripped = _STRINGS.sub(b"", raw[pos:closed])
        steps = array("b", stripped.translate(None, _BRACKETS).translate(_DEPTH_STEP))
        if steps:
            if max(accumulate(steps, initial=depth)) > limit:
                return end
            depth += sum(steps)
        # the next window starts at the quote of a string the window cut (at the end of
        # the text: a string that never closes, which json.loads reports)
        pos, window = (closed if end < n else n), min(window * 2, _WINDOW_CAP)
    return None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Reject("duplicate_key", f"duplicate key {key!r} in an object")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise _Reject("invalid_number", f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Reject("invalid_number", f"number {text[:40]!r} is too large")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Reject(
            "invalid_number",
            f"an integer of {len(text)} digits is too long (limit {MAX_INT_DIGITS})",
        )
    return int(text)


def _surrogate_path(value: Any) -> str:
    """Where the first string that is not valid Unicode sits (iterative walk)."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            for key, sub in item.items():
                child = f"{where}.{key}" if where else str(key)
                stack.append((child, key))
                stack.append((child, sub))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))
    return ""


_STRICT = object()  # what ``_parsed_fast`` answers when the strict parse must decide
_ESCAPED_COLON = (b"\\u003a", b"\\u003A")  # a colon a string's raw text does not show


def _parsed_fast(raw: bytes, depth_limit: int) -> Any:
    """``raw`` parsed by orjson when that is what the strict parse gives (see the module
    docstring), else ``_STRICT``."""
    try:
        value = orjson.loads(raw)  # first: a body of brackets fails within 1,025 bytes
        compact = orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _STRICT
    if _ESCAPED_COLON[0] in raw or _ESCAPED_COLON[1] in raw:
        return _STRICT  # the colons counted next would not be the keys'
    if compact.count(b":") != raw.count(b":"):
        return _STRICT  # a duplicate key was dropped (with its colon)
    if b"e+" in compact:
        return _STRICT  # maybe an integer beyond 64 bits, now a float (or a string's text)
    if b"\\" in compact:  # an escaped backslash or quote ends no string
        compact = compact.replace(b"\\\\", b"").replace(b'\\"', b"")
    # quotes and brackets; removing two adjacent quotes leaves what is outside strings as
    # it was (an empty string, or the end of one and the start of the next)
    marks = compact.translate(None, _NOT_MARKS).replace(b'""', b"")
    if b'"' in marks:
        marks = _QUOTED.sub(b"", marks)
    if marks and max(accumulate(array("b", marks.translate(_DEPTH_STEP)))) > depth_limit:
        return _STRICT
    return value


def parse_json(raw: bytes, *, depth_limit: int = 64) -> Any:
    """Decode one JSON value from ``raw`` or raise ``InvalidInput`` naming the problem."""
    value = _parsed_fast(raw, depth_limit)
    return parse_strict(raw, depth_limit=depth_limit) if value is _STRICT else value


def parse_strict(raw: bytes, *, depth_limit: int = 64) -> Any:
    """``parse_json`` by the strict parse alone (what decides every body orjson's parse
    cannot)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise _fail("invalid_json", "the body starts with a byte order mark (BOM)")
    # before decoding: a body nested too deep is refused having read little more than
    # ``depth_limit`` bytes, whatever its size
    seen = depth_exceeded(raw, depth_limit)
    if seen is not None:
        raise _fail(
            "json_too_deep",
            f"nesting depth exceeds the limit {depth_limit} within the first {seen} bytes",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("invalid_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    if not text.strip():
        raise _fail("empty_body", "the body is empty; a JSON value is required")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except _Reject as exc:
        raise _fail(exc.code, exc.detail) from None
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise _fail("invalid_json", detail) from None
    except RecursionError:
        raise _fail("json_too_deep", "nesting too deep") from None
    except ValueError as exc:  # anything else the decoder refuses
        raise _fail("invalid_json", str(exc)[:200]) from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        path = _surrogate_path(value)
        raise _fail(
            "invalid_string", "contains a lone surrogate (not valid Unicode)", path
        ) from None
    return value
