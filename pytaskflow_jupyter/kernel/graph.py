"""The DAG drawing of the execution widget: a layered layout rendered as inline SVG.

Layout (a small Sugiyama-style pass, enough for notebook-sized workflows): a task's
layer is the length of the longest dependency path that reaches it, so every edge
points right; within a layer tasks are ordered by the mean row of their dependencies
(one barycenter sweep), ties kept in definition order, which removes most crossings of
the usual fan-out / fan-in shapes without an expensive optimiser.

A mapped task (SPEC 11) is one node standing for all its instances: a second box
peeks out behind it, and it shows ``done/total`` over a strip of its instances' counts
by status (``histogram``), the same counts and words as the Lab panel's node.

Everything drawn comes from user data (task names, error text), so every string is
escaped; the SVG carries ``data-task`` / ``data-status`` attributes that tests and the
browser screenshot rely on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["MAPPED_STATUSES", "STATUS_COLORS", "histogram", "layout", "mapped_text", "render_svg"]

#: fill, stroke and text colour per task status (GitHub Primer palette: readable on
#: light and dark themes alike).
STATUS_COLORS: dict[str, tuple[str, str, str]] = {
    "pending": ("#eaeef2", "#8c959f", "#24292f"),
    "retrying": ("#fff8c5", "#bf8700", "#24292f"),
    "running": ("#ddf4ff", "#0969da", "#0a3069"),
    "completed": ("#2da44e", "#1a7f37", "#ffffff"),
    "failed": ("#cf222e", "#a40e26", "#ffffff"),
    "skipped": ("#f6f8fa", "#afb8c1", "#57606a"),
    "cancelled": ("#bc4c00", "#953800", "#ffffff"),
}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 132, 30, 46, 14, 8
MAX_LABEL = 17
MAX_NODES = 400
DASH = ' stroke-dasharray="4 3"'
#: the statuses of a mapped task's instances, in the order its histogram shows them
MAPPED_STATUSES = ("completed", "running", "failed", "pending", "cancelled")


def done_text(counts: Mapping[str, int] | None) -> str:
    """``742/1000``: a mapped task's completed instances of all; empty before it expanded."""
    return f"{counts.get('completed', 0)}/{counts.get('total', 0)}" if counts else ""


def mapped_text(counts: Mapping[str, int] | None, upstream: str | None = None) -> str:
    """``742/1000 completed · 3 failed · 20 running · 235 pending`` (the panel's words);
    ``waiting for <upstream>`` before the task expanded, ``no instances`` for ``[]``."""
    if not counts:
        return f"waiting for {upstream}" if upstream else "not expanded yet"
    if not counts.get("total"):
        return "no instances"
    parts = [f"{done_text(counts)} completed"]
    parts += [
        f"{counts[s]} {s}" for s in ("failed", "cancelled", "running", "pending") if counts.get(s)
    ]
    return " \u00b7 ".join(parts)


def histogram(
    counts: Mapping[str, int] | None, width: float, min_width: float = 2.0
) -> list[tuple[str, int, float, float]]:
    """``(status, count, x, width)`` segments across ``width`` in ``MAPPED_STATUSES``
    order, in proportion to the counts but each at least ``min_width`` wide (one failure
    among 1,000 stays visible); the widths add up to ``width``."""
    present = [(s, counts.get(s, 0)) for s in MAPPED_STATUSES if counts and counts.get(s, 0) > 0]
    total = sum(n for _, n in present)
    if not total or width <= 0:
        return []
    floor = min(min_width, width / len(present))
    rest = width - floor * len(present)
    out, x = [], 0.0
    for i, (status, n) in enumerate(present):
        w = width - x if i == len(present) - 1 else floor + rest * n / total
        out.append((status, n, x, w))
        x += w
    return out


def layout(tasks: Sequence[tuple[str, Sequence[str]]]) -> dict[str, tuple[int, int]]:
    """``{name: (layer, row)}`` for tasks given as ``(name, dependencies)`` in definition
    order (dependencies are names of tasks in the list; the graph is acyclic)."""
    deps = {name: [d for d in ds if d != name] for name, ds in tasks}
    order = {name: i for i, (name, _) in enumerate(tasks)}
    layer: dict[str, int] = {}
    for name, _ in tasks:  # iterative longest-path depth (no recursion limit on long chains)
        stack = [name]
        while stack:
            top = stack[-1]
            if top in layer:
                stack.pop()
                continue
            missing = [d for d in deps.get(top, []) if d in deps and d not in layer]
            if missing:
                stack.extend(missing)
                continue
            layer[top] = 1 + max((layer[d] for d in deps.get(top, []) if d in layer), default=-1)
            stack.pop()
    layers: dict[int, list[str]] = {}
    for name, _ in tasks:
        layers.setdefault(layer[name], []).append(name)
    row: dict[str, int] = {}
    for depth in sorted(layers):
        members = layers[depth]

        def barycenter(name: str) -> tuple[float, int]:
            parents = [row[d] for d in deps[name] if d in row]
            return (sum(parents) / len(parents) if parents else float("inf"), order[name])

        if depth:
            members.sort(key=barycenter)
        for i, name in enumerate(members):
            row[name] = i
    return {name: (layer[name], row[name]) for name, _ in tasks}


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "\u2026"


def _tooltip(name: str, state: Mapping[str, Any]) -> str:
    lines = [f"{name}: {state.get('status', 'pending')}"]
    if state.get("attempts"):
        lines.append(f"attempts: {state['attempts']}")
    if state.get("duration") is not None:
        lines.append(f"duration: {state['duration']:.3g}s")
    if state.get("map_over") or state.get("mapped"):
        lines.append(f"instances: {mapped_text(state.get('mapped'), state.get('map_over'))}")
    if state.get("reason"):
        lines.append(f"reason: {state['reason']}")
    if state.get("error"):
        lines.append(str(state["error"])[:500])
    return "\n".join(lines)


def render_svg(
    tasks: Sequence[tuple[str, Sequence[str]]], states: Mapping[str, Mapping[str, Any]]
) -> str:
    """The DAG as an SVG string, each node filled by its task's status.

    ``states[name]`` holds at least ``status`` (a key of ``STATUS_COLORS``), and
    optionally ``attempts``, ``duration``, ``reason``, ``error`` for the hover text; a
    mapped task's ``map_over`` and ``mapped`` (its instances' counts) draw it as such.
    """
    if len(tasks) > MAX_NODES:
        return (
            f'<div class="taskflow-graph-omitted">graph omitted: {len(tasks)} tasks '
            f"(drawn up to {MAX_NODES})</div>"
        )
    pos = layout(tasks)
    width = PAD * 2 + (max((p[0] for p in pos.values()), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + (max((p[1] for p in pos.values()), default=0) + 1) * (NODE_H + GAP_Y) - GAP_Y

    def anchor(name: str) -> tuple[int, int]:
        col, line = pos[name]
        return PAD + col * (NODE_W + GAP_X), PAD + line * (NODE_H + GAP_Y)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="taskflow-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="var(--jp-ui-font-'
        f'family, sans-serif)" font-size="12">'
    ]
    for name, deps in tasks:
        x2, y2 = anchor(name)
        for dep in deps:
            if dep not in pos or dep == name:
                continue
            x1, y1 = anchor(dep)
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            mid = (sx + ex) / 2
            dash = DASH if states.get(name, {}).get("status") == "skipped" else ""
            parts.append(
                f'<path d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex - 4},{ey}" fill="none" '
                f'stroke="#8c959f" stroke-width="1.3"{dash} '
                'marker-end="url(#taskflow-arrow)"/>'
            )
    parts.insert(
        1,
        '<defs><marker id="taskflow-arrow" viewBox="0 0 8 8" refX="4" refY="4" '
        'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" '
        'fill="#8c959f"/></marker></defs>',
    )
    for name, _ in tasks:
        state = states.get(name, {})
        status = str(state.get("status", "pending"))
        fill, stroke, ink = STATUS_COLORS.get(status, STATUS_COLORS["pending"])
        x, y = anchor(name)
        dash = DASH if status == "skipped" else ""
        pulse = (
            '<animate attributeName="stroke-opacity" values="1;0.3;1" dur="1.2s" '
            'repeatCount="indefinite"/>'
            if status == "running"
            else ""
        )
        mapped = bool(state.get("map_over")) or state.get("mapped") is not None
        counts = state.get("mapped") if mapped else None
        attr = f' data-mapped="{escape(done_text(counts) or "waiting")}"' if mapped else ""
        box = (
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash}>{pulse}</rect>'
        )
        if mapped:
            body = _mapped_node(x, y, name, counts, fill, stroke, ink, box)
        else:
            body = (
                f'{box}<text x="{x + NODE_W // 2}" y="{y + NODE_H // 2 + 4}" '
                f'text-anchor="middle" fill="{ink}">{escape(_label(name))}</text>'
            )
        parts.append(
            f'<g class="taskflow-node" data-task="{escape(name)}" data-status="{escape(status)}"'
            f"{attr}><title>{escape(_tooltip(name, state))}</title>{body}</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _mapped_node(
    x: int,
    y: int,
    name: str,
    counts: Mapping[str, int] | None,
    fill: str,
    stroke: str,
    ink: str,
    box: str,
) -> str:
    """A mapped task's box: a second box behind it, its name, ``done/total`` and a strip of
    its instances' counts by status."""
    behind = (
        f'<rect x="{x + 3}" y="{y - 3}" width="{NODE_W}" height="{NODE_H}" rx="6" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1" opacity="0.6"/>'
    )
    mid = x + NODE_W // 2
    label = escape(_label(name))
    sub = escape(done_text(counts) or "mapped")
    strip_x, strip_w = x + 8, NODE_W - 16
    strip = [
        f'<rect class="taskflow-histogram" x="{strip_x}" y="{y + NODE_H - 6}" '
        f'width="{strip_w}" height="3" fill="#ffffff" opacity="0.6"/>'
    ]
    for status, n, sx, sw in histogram(counts, strip_w):
        strip.append(
            f'<rect data-segment="{status}" data-count="{n}" x="{strip_x + sx:.1f}" '
            f'y="{y + NODE_H - 6}" width="{sw:.1f}" height="3" '
            f'fill="{STATUS_COLORS[status][1]}"/>'
        )
    return (
        f"{behind}{box}"
        f'<text x="{mid}" y="{y + 12}" text-anchor="middle" fill="{ink}" font-size="11">'
        f"{label}</text>"
        f'<text class="taskflow-done" x="{mid}" y="{y + 21}" text-anchor="middle" '
        f'fill="{ink}" font-size="9">{sub}</text>' + "".join(strip)
    )
