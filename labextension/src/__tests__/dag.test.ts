import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { depths, layoutDag } from '../dag';

describe('layoutDag', () => {
  const tasks = [
    { name: 'A', dependencies: [] },
    { name: 'Branch', dependencies: ['A'] },
    { name: 'Left', dependencies: ['Branch'] },
    { name: 'Right', dependencies: ['Branch'] },
    { name: 'Join', dependencies: ['Left', 'Right', 'A'] }
  ];

  it('puts every task in the layer of its longest dependency path', () => {
    const d = depths(tasks);
    assert.deepEqual(Object.fromEntries(d), {
      A: 0,
      Branch: 1,
      Left: 2,
      Right: 2,
      Join: 3
    });
  });

  it('draws every edge left to right', () => {
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
      assert.ok(n.x >= 0 && n.x + 140 <= layout.width);
      assert.ok(n.y >= 0 && n.y + 36 <= layout.height);
    }
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

  it('handles an empty workflow', () => {
    const layout = layoutDag([]);
    assert.equal(layout.nodes.length, 0);
    assert.ok(layout.width > 0 && layout.height > 0);
  });
});
