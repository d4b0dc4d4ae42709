import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  DAGRE_MAX_TASKS,
  DagInput,
  DagLayout,
  depths,
  edgePath,
  edgePieces,
  gridLayout,
  layoutDag,
  Point
} from '../dag';

/**
 * Every workflow the example notebooks register, by notebook (task names and
 * dependencies): tests/kernel/test_dag_fixtures.py runs the notebooks and
 * fails when this file is not what they define.
 */
const NOTEBOOK_WORKFLOWS: Record<
  string,
  Record<string, DagInput[]>
> = JSON.parse(
  readFileSync(
    join(__dirname, '../../src/__tests__/fixtures/notebook-workflows.json'),
    'utf8'
  )
);

/** notebooks/etl-example.ipynb's task graph (its `depends_on`s). */
export const ETL: DagInput[] = [
  { name: 'extract', dependencies: [] },
  { name: 'transform', dependencies: ['extract'] },
  { name: 'validate', dependencies: ['extract'] },
  { name: 'route', dependencies: ['validate'] },
  { name: 'publish', dependencies: ['route', 'transform'] },
  { name: 'quarantine', dependencies: ['route', 'validate'] },
  { name: 'summary', dependencies: ['publish', 'quarantine', 'transform'] }
];

/** A seeded random DAG: task i depends on up to 3 of the 8 before it. */
export function randomDag(n: number, seed: number): DagInput[] {
  let state = seed >>> 0;
  const rand = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const tasks: DagInput[] = [];
  for (let i = 0; i < n; i++) {
    const deps = new Set<string>();
    const k = i === 0 ? 0 : Math.floor(rand() * 4);
    for (let j = 0; j < k; j++) {
      const from = Math.max(0, i - 1 - Math.floor(rand() * 8));
      deps.add(`t${from}`);
    }
    tasks.push({ name: `t${i}`, dependencies: [...deps] });
  }
  return tasks;
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** True when segment a-b passes through the open interior of the box. */
export function segmentCrossesBox(a: Point, b: Point, r: Box): boolean {
  // Liang-Barsky clipping against the box shrunk by a hair, so touching a
  // side (an edge's own end) is not a crossing.
  const eps = 0.5;
  const [x0, y0, x1, y1] = [
    r.x + eps,
    r.y + eps,
    r.x + r.width - eps,
    r.y + r.height - eps
  ];
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  let t0 = 0;
  let t1 = 1;
  const clip = (p: number, q: number): boolean => {
    if (p === 0) {
      return q >= 0;
    }
    const t = q / p;
    if (p < 0) {
      if (t > t1) return false;
      if (t > t0) t0 = t;
    } else {
      if (t < t0) return false;
      if (t < t1) t1 = t;
    }
    return true;
  };
  return (
    clip(-dx, a.x - x0) &&
    clip(dx, x1 - a.x) &&
    clip(-dy, a.y - y0) &&
    clip(dy, y1 - a.y) &&
    t0 < t1
  );
}

function crossings(layout: DagLayout): string[] {
  const found: string[] = [];
  for (const e of layout.edges) {
    for (const n of layout.nodes) {
      if (n.name === e.from || n.name === e.to) {
        continue;
      }
      for (let i = 1; i < e.points.length; i++) {
        if (segmentCrossesBox(e.points[i - 1], e.points[i], n)) {
          found.push(`${e.from}->${e.to} crosses ${n.name}`);
        }
      }
    }
  }
  return found;
}

/** Points along a cubic Bezier, `n` steps. */
function sampleCubic(p0: Point, c1: Point, c2: Point, p1: Point, n = 32) {
  const out: Point[] = [];
  for (let i = 0; i <= n; i++) {
    const t = i / n;
    const u = 1 - t;
    const w = [u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t];
    out.push({
      x: w[0] * p0.x + w[1] * c1.x + w[2] * c2.x + w[3] * p1.x,
      y: w[0] * p0.y + w[1] * c1.y + w[2] * c2.y + w[3] * p1.y
    });
  }
  return out;
}

/** The polyline of an edge as drawn (`edgePieces`: lines and sampled cubics). */
function drawnPolyline(points: Point[]): Point[] {
  const out: Point[] = points.length ? [points[0]] : [];
  for (const piece of edgePieces(points)) {
    if (piece.kind === 'line') {
      out.push(piece.to);
    } else {
      out.push(
        ...sampleCubic(piece.from, piece.c1, piece.c2, piece.to).slice(1)
      );
    }
  }
  return out;
}

/** Crossings of the drawn edges (curves included) with other nodes' boxes. */
function drawnCrossings(layout: DagLayout): string[] {
  return crossings({
    ...layout,
    edges: layout.edges.map(e => ({ ...e, points: drawnPolyline(e.points) }))
  });
}

function checkEnds(layout: DagLayout): void {
  const pos = new Map(layout.nodes.map(n => [n.name, n]));
  for (const e of layout.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    assert.ok(a && b);
    const first = e.points[0];
    const last = e.points[e.points.length - 1];
    assert.equal(first.x, a.x + a.width, `${e.from}->${e.to} leaves right`);
    assert.equal(last.x, b.x, `${e.from}->${e.to} enters left`);
    // Left to right all along.
    for (let i = 1; i < e.points.length; i++) {
      assert.ok(e.points[i].x >= e.points[i - 1].x, `${e.from}->${e.to}`);
    }
  }
}

describe('layoutDag', () => {
  const tasks = [
    { name: 'A', dependencies: [] },
    { name: 'Branch', dependencies: ['A'] },
    { name: 'Left', dependencies: ['Branch'] },
    { name: 'Right', dependencies: ['Branch'] },
    { name: 'Join', dependencies: ['Left', 'Right', 'A'] }
  ];

  it('computes dependency depths', () => {
    const d = depths(tasks);
    assert.deepEqual(Object.fromEntries(d), {
      A: 0,
      Branch: 1,
      Left: 2,
      Right: 2,
      Join: 3
    });
  });

  it('draws every edge left to right, boxes inside the drawing', () => {
    const layout = layoutDag(tasks);
    const pos = new Map(layout.nodes.map(n => [n.name, n]));
    assert.equal(layout.edges.length, 6);
    for (const e of layout.edges) {
      assert.ok(
        (pos.get(e.from)?.x ?? 0) < (pos.get(e.to)?.x ?? 0),
        `${e.from}->${e.to}`
      );
    }
    const left = pos.get('Left');
    const right = pos.get('Right');
    assert.ok(left && right && left.y !== right.y, 'siblings do not overlap');
    for (const n of layout.nodes) {
      assert.ok(n.x >= 0 && n.x + n.width <= layout.width);
      assert.ok(n.y >= 0 && n.y + n.height <= layout.height);
    }
    checkEnds(layout);
  });

  it('routes no edge of the ETL example through a node box', () => {
    const layout = layoutDag(ETL);
    assert.equal(layout.edges.length, 10);
    assert.deepEqual(crossings(layout), []);
    checkEnds(layout);
    // The edge the hand-written layering drew through `route`.
    const tp = layout.edges.find(
      e => e.from === 'transform' && e.to === 'publish'
    );
    assert.ok(tp && tp.points.length >= 2);
  });

  for (const seed of [1, 2, 3]) {
    it(`routes no edge of a random 50-task DAG through a node (seed ${seed})`, () => {
      const dag = randomDag(50, seed);
      const layout = layoutDag(dag);
      assert.equal(layout.nodes.length, 50);
      const want = dag.reduce((n, t) => n + (t.dependencies?.length ?? 0), 0);
      assert.equal(layout.edges.length, want);
      assert.deepEqual(crossings(layout), []);
      checkEnds(layout);
      // No two boxes overlap.
      for (const a of layout.nodes) {
        for (const b of layout.nodes) {
          if (a !== b) {
            const apart =
              a.x + a.width <= b.x ||
              b.x + b.width <= a.x ||
              a.y + a.height <= b.y ||
              b.y + b.height <= a.y;
            assert.ok(apart, `${a.name} overlaps ${b.name}`);
          }
        }
      }
    });
  }

  for (const [notebook, workflows] of Object.entries(NOTEBOOK_WORKFLOWS)) {
    for (const [id, tasks] of Object.entries(workflows)) {
      it(`draws no edge of ${notebook}'s ${id} through a node box`, () => {
        const layout = layoutDag(tasks);
        const want = tasks.reduce(
          (n, t) => n + (t.dependencies?.length ?? 0),
          0
        );
        assert.equal(layout.nodes.length, tasks.length);
        assert.equal(layout.edges.length, want);
        assert.deepEqual(drawnCrossings(layout), []);
        checkEnds(layout);
      });
    }
  }

  it('has the example notebooks and the ETL graph in its fixture', () => {
    assert.ok(Object.keys(NOTEBOOK_WORKFLOWS).length >= 5);
    assert.deepEqual(
      NOTEBOOK_WORKFLOWS['etl-example.ipynb']?.['sales_etl']?.map(t => [
        t.name,
        t.dependencies
      ]),
      ETL.map(t => [t.name, t.dependencies])
    );
  });

  it('draws no curve of random 50-task DAGs through a node (10 seeds)', () => {
    let straight = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const layout = layoutDag(randomDag(50, seed));
      assert.deepEqual(drawnCrossings(layout), [], `seed ${seed}`);
      // Drawn straight from end to end, some edges would cross a box: the
      // graphs are dense enough for the check to mean something.
      straight += crossings({
        ...layout,
        edges: layout.edges.map(e => ({
          ...e,
          points: [e.points[0], e.points[e.points.length - 1]]
        }))
      }).length;
    }
    assert.ok(straight > 0, 'no straight edge would cross: the test is void');
  });

  it('the crossing check itself sees a crossing', () => {
    const box = { x: 10, y: 10, width: 20, height: 10 };
    assert.ok(segmentCrossesBox({ x: 0, y: 15 }, { x: 40, y: 15 }, box));
    assert.ok(segmentCrossesBox({ x: 0, y: 0 }, { x: 40, y: 30 }, box));
    assert.ok(!segmentCrossesBox({ x: 0, y: 10 }, { x: 40, y: 10 }, box));
    assert.ok(!segmentCrossesBox({ x: 0, y: 0 }, { x: 9, y: 30 }, box));
  });

  it('draws a path along the points', () => {
    assert.equal(
      edgePath([
        { x: 0, y: 0 },
        { x: 10, y: 0 },
        { x: 30, y: 20 }
      ]),
      'M0,0 L10,0 C20,0 20,20 30,20'
    );
  });

  it('survives unknown dependencies and cycles', () => {
    const layout = layoutDag([
      { name: 'A', dependencies: ['B', 'ghost'] },
      { name: 'B', dependencies: ['A'] },
      { name: 'C', dependencies: ['C'] }
    ]);
    assert.equal(layout.nodes.length, 3);
    assert.ok(layout.edges.every(e => e.from !== 'ghost' && e.from !== e.to));
  });

  it('lays out a graph too large for dagre quickly, by depth', () => {
    const dag = randomDag(DAGRE_MAX_TASKS + 1, 5);
    const started = Date.now();
    const layout = layoutDag(dag);
    assert.ok(Date.now() - started < 2000, 'linear, not dagre');
    assert.deepEqual(layout, gridLayout(dag));
    assert.equal(layout.nodes.length, dag.length);
    const d = depths(dag);
    for (const n of layout.nodes) {
      assert.equal(n.layer, d.get(n.name));
      assert.ok(
        n.x + n.width <= layout.width && n.y + n.height <= layout.height
      );
    }
  });

  it('handles an empty workflow', () => {
    const layout = layoutDag([]);
    assert.equal(layout.nodes.length, 0);
    assert.ok(layout.width > 0 && layout.height > 0);
  });
});
