/**
 * Layered layout of a workflow's DAG: a task's layer is its dependency depth
 * (the longest path from a root), so every edge points to a later layer.
 * Within a layer, tasks keep definition order, nudged towards the mean row of
 * their dependencies to keep edges short. Pure functions, no DOM.
 */

export interface DagInput {
  name: string;
  dependencies?: string[];
}

export interface DagNode {
  name: string;
  layer: number;
  row: number;
  x: number;
  y: number;
}

export interface DagEdge {
  from: string;
  to: string;
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

export function layoutDag(
  tasks: DagInput[],
  geometry: DagGeometry = DEFAULT_GEOMETRY
): DagLayout {
  const depth = depths(tasks);
  const known = new Set(tasks.map(t => t.name));
  const layers: string[][] = [];
  for (const t of tasks) {
    const d = depth.get(t.name) ?? 0;
    (layers[d] = layers[d] ?? []).push(t.name);
  }
  const deps = new Map(tasks.map(t => [t.name, t.dependencies ?? []]));
  const row = new Map<string, number>();
  layers.forEach((layer, i) => {
    if (i > 0) {
      // Barycentre ordering against the previous layer; stable for ties.
      const score = (name: string): number => {
        const rows = (deps.get(name) ?? [])
          .map(d => row.get(d))
          .filter((r): r is number => r !== undefined);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      const indexed = layer.map((name, idx) => ({ name, idx, s: score(name) }));
      indexed.sort((a, b) => a.s - b.s || a.idx - b.idx);
      layer.splice(0, layer.length, ...indexed.map(e => e.name));
    }
    layer.forEach((name, r) => row.set(name, r));
  });
  const { nodeWidth, nodeHeight, gapX, gapY, margin } = geometry;
  const tallest = Math.max(1, ...layers.map(l => l.length));
  const height = margin * 2 + tallest * nodeHeight + (tallest - 1) * gapY;
  const nodes: DagNode[] = [];
  layers.forEach((layer, i) => {
    // Centre shorter layers vertically.
    const span = layer.length * nodeHeight + (layer.length - 1) * gapY;
    const top = (height - span) / 2;
    layer.forEach((name, r) => {
      nodes.push({
        name,
        layer: i,
        row: r,
        x: margin + i * (nodeWidth + gapX),
        y: top + r * (nodeHeight + gapY)
      });
    });
  });
  const edges: DagEdge[] = [];
  for (const t of tasks) {
    for (const dep of t.dependencies ?? []) {
      if (known.has(dep) && dep !== t.name) {
        edges.push({ from: dep, to: t.name });
      }
    }
  }
  const width =
    margin * 2 +
    Math.max(1, layers.length) * nodeWidth +
    Math.max(0, layers.length - 1) * gapX;
  return { nodes, edges, width, height };
}
