/**
 * Layout of a workflow's DAG, left to right, by dagre (a maintained layered
 * layout: rank assignment, crossing reduction, coordinates, and edges routed
 * through dummy points between the nodes instead of across them).
 *
 * Every node has the same width, so all nodes of one rank share one column.
 * Dagre's own edge ends are where the straight line to the next point leaves
 * the box, which for a steep edge is the top or bottom side and can cut
 * through a neighbour of the same column. So the points are kept but the
 * route is made column-aware: an edge leaves from the middle of its source's
 * right side, enters the middle of its target's left side, and crosses a
 * column it passes through horizontally at the height dagre gave its dummy
 * point there (dagre keeps that height clear of the column's boxes). Every
 * sloped segment then lies in a gap between columns, where there are no
 * boxes, and so does the curve `edgePath` draws along it. Pure functions, no
 * DOM.
 */

import dagre from '@dagrejs/dagre';

export interface DagInput {
  name: string;
  dependencies?: string[];
}

export interface Point {
  x: number;
  y: number;
}

export interface DagNode {
  name: string;
  /** Column index, left to right. */
  layer: number;
  /** Top-left corner of the box. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DagEdge {
  from: string;
  to: string;
  /** From the source's right side to the target's left side. */
  points: Point[];
}

export interface DagLayout {
  nodes: DagNode[];
  edges: DagEdge[];
  width: number;
  height: number;
}

export interface DagGeometry {
  nodeWidth: number;
  nodeHeight: number;
  gapX: number;
  gapY: number;
  margin: number;
}

export const DEFAULT_GEOMETRY: DagGeometry = {
  nodeWidth: 140,
  nodeHeight: 36,
  gapX: 60,
  gapY: 18,
  margin: 12
};

/**
 * Depth of every task. Unknown dependencies are ignored and a cycle (which
 * the server rejects anyway) is cut where it is found, so this never loops.
 */
export function depths(tasks: DagInput[]): Map<string, number> {
  const deps = new Map(tasks.map(t => [t.name, t.dependencies ?? []]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(name)) {
      return 0;
    }
    visiting.add(name);
    let d = 0;
    for (const dep of deps.get(name) ?? []) {
      if (deps.has(dep) && dep !== name) {
        d = Math.max(d, visit(dep) + 1);
      }
    }
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  for (const t of tasks) {
    visit(t.name);
  }
  return depth;
}

/** The edges to draw: known, not self-loops, and acyclic (cut by depth). */
function dagEdges(tasks: DagInput[]): Array<{ from: string; to: string }> {
  const depth = depths(tasks);
  const edges: Array<{ from: string; to: string }> = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    for (const dep of t.dependencies ?? []) {
      const key = `${dep}\u0000${t.name}`;
      const a = depth.get(dep);
      const b = depth.get(t.name);
      if (a !== undefined && b !== undefined && a < b && !seen.has(key)) {
        seen.add(key);
        edges.push({ from: dep, to: t.name });
      }
    }
  }
  return edges;
}

/**
 * Above this many tasks dagre takes seconds (about 1.5 s for 500 here, and
 * it grows faster than linearly), which would freeze the page: such graphs
 * get `gridLayout`, columns by depth without edge routing.
 */
export const DAGRE_MAX_TASKS = 1000;

export function layoutDag(
  tasks: DagInput[],
  geometry: DagGeometry = DEFAULT_GEOMETRY
): DagLayout {
  const { nodeWidth: W, nodeHeight: H, gapX, gapY, margin } = geometry;
  const names = [...new Set(tasks.map(t => t.name))];
  if (!names.length) {
    return { nodes: [], edges: [], width: 2 * margin + W, height: 2 * margin };
  }
  if (names.length > DAGRE_MAX_TASKS) {
    return gridLayout(tasks, geometry);
  }
  const g = new dagre.graphlib.Graph({ multigraph: false });
  g.setGraph({
    rankdir: 'LR',
    ranksep: gapX,
    nodesep: gapY,
    edgesep: 10,
    marginx: margin,
    marginy: margin
  });
  g.setDefaultEdgeLabel(() => ({}));
  names.forEach(name => g.setNode(name, { width: W, height: H }));
  const edges = dagEdges(tasks);
  edges.forEach(e => g.setEdge(e.from, e.to));
  dagre.layout(g);

  const columns = [...new Set(names.map(n => g.node(n).x))].sort(
    (a, b) => a - b
  );
  const nodes: DagNode[] = names.map(name => {
    const n = g.node(name);
    return {
      name,
      layer: columns.indexOf(n.x),
      x: n.x - W / 2,
      y: n.y - H / 2,
      width: W,
      height: H
    };
  });
  const box = new Map(nodes.map(n => [n.name, n]));
  const routed: DagEdge[] = edges.map(e => {
    const a = box.get(e.from) as DagNode;
    const b = box.get(e.to) as DagNode;
    const inner = (g.edge(e.from, e.to).points ?? []).slice(1, -1);
    const points: Point[] = [{ x: a.x + W, y: a.y + H / 2 }];
    for (const p of inner) {
      // A dummy point inside a column: cross the column horizontally.
      const col = columns.find(c => Math.abs(p.x - c) < W / 2);
      if (col !== undefined) {
        points.push({ x: col - W / 2, y: p.y }, { x: col + W / 2, y: p.y });
      } else {
        points.push({ x: p.x, y: p.y });
      }
    }
    points.push({ x: b.x, y: b.y + H / 2 });
    return { ...e, points: dropStraight(points) };
  });
  const label = g.graph();
  return {
    nodes,
    edges: routed,
    width: Math.max(label.width ?? 0, 2 * margin + W),
    height: Math.max(label.height ?? 0, 2 * margin + H)
  };
}

/**
 * Columns by dependency depth, rows in definition order, straight edges:
 * linear time, for graphs too large for dagre (edges may cross boxes).
 */
export function gridLayout(
  tasks: DagInput[],
  geometry: DagGeometry = DEFAULT_GEOMETRY
): DagLayout {
  const { nodeWidth: W, nodeHeight: H, gapX, gapY, margin } = geometry;
  const depth = depths(tasks);
  const rows: number[] = [];
  const nodes: DagNode[] = [];
  const seen = new Set<string>();
  for (const t of tasks) {
    if (seen.has(t.name)) {
      continue;
    }
    seen.add(t.name);
    const layer = depth.get(t.name) ?? 0;
    const row = (rows[layer] = (rows[layer] ?? -1) + 1);
    nodes.push({
      name: t.name,
      layer,
      x: margin + layer * (W + gapX),
      y: margin + row * (H + gapY),
      width: W,
      height: H
    });
  }
  const box = new Map(nodes.map(n => [n.name, n]));
  const edges: DagEdge[] = dagEdges(tasks).map(e => {
    const a = box.get(e.from) as DagNode;
    const b = box.get(e.to) as DagNode;
    return {
      ...e,
      points: [
        { x: a.x + W, y: a.y + H / 2 },
        { x: b.x, y: b.y + H / 2 }
      ]
    };
  });
  const tallest = Math.max(...rows) + 1;
  return {
    nodes,
    edges,
    width: 2 * margin + rows.length * W + (rows.length - 1) * gapX,
    height: 2 * margin + tallest * H + (tallest - 1) * gapY
  };
}

/** Merge consecutive horizontal segments (fewer, longer straight runs). */
function dropStraight(points: Point[]): Point[] {
  const out: Point[] = [];
  for (const p of points) {
    const n = out.length;
    if (n >= 2 && out[n - 1].y === p.y && out[n - 2].y === p.y) {
      out[n - 1] = p;
    } else {
      out.push(p);
    }
  }
  return out;
}

/** A piece of a drawn edge: a straight run, or a cubic from `from` to `to`. */
export type EdgePiece =
  | { kind: 'line'; from: Point; to: Point }
  | { kind: 'cubic'; from: Point; c1: Point; c2: Point; to: Point };

/**
 * What `edgePath` draws along an edge's points: straight where a segment is
 * horizontal, else a cubic with horizontal tangents. Each cubic stays inside
 * the bounding box of its segment (its control points do), so it never
 * leaves the gap between columns that the segment lies in. (The geometry
 * test samples these, the drawn curves, not only the points.)
 */
export function edgePieces(points: Point[]): EdgePiece[] {
  const r = (v: number) => Math.round(v * 10) / 10;
  const at = (x: number, y: number): Point => ({ x: r(x), y: r(y) });
  const out: EdgePiece[] = [];
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    if (a.y === b.y) {
      out.push({ kind: 'line', from: at(a.x, a.y), to: at(b.x, b.y) });
    } else {
      const mx = (a.x + b.x) / 2;
      out.push({
        kind: 'cubic',
        from: at(a.x, a.y),
        c1: at(mx, a.y),
        c2: at(mx, b.y),
        to: at(b.x, b.y)
      });
    }
  }
  return out;
}

/** The SVG path of `edgePieces`. */
export function edgePath(points: Point[]): string {
  if (!points.length) {
    return '';
  }
  const xy = (p: Point) => `${p.x},${p.y}`;
  const r = (v: number) => Math.round(v * 10) / 10;
  let d = `M${r(points[0].x)},${r(points[0].y)}`;
  for (const piece of edgePieces(points)) {
    d +=
      piece.kind === 'line'
        ? ` L${xy(piece.to)}`
        : ` C${xy(piece.c1)} ${xy(piece.c2)} ${xy(piece.to)}`;
  }
  return d;
}
