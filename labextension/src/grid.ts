/**
 * The workflow page's history grid without DOM (Airflow's grid): one column
 * per execution, oldest on the left, one row per task, each cell the task's
 * status in that execution.
 *
 * Columns come from the shared model: the pages read over REST are merged
 * into it, and live executions of the workflow arrive there by `/ws`. The
 * grid shows every execution of the workflow at least as new as the oldest
 * page read (`since`), so a new execution appears on the right as it starts,
 * and "older" pages extend it to the left.
 */

import type { Execution, TaskRun } from './model';

/**
 * How an execution sorts in the grid: its creation, the order the REST pages
 * come in (executions started together may start in another order, and a
 * start-time order would drop one from the page it came on); its start only
 * while it is known from `/ws` events alone.
 */
export function timeKey(
  exec: Pick<Execution, 'startTime' | 'createdAt'>
): string {
  return exec.createdAt ?? exec.startTime ?? '';
}

/**
 * The grid's columns, oldest first: the workflow's executions not older
 * than `since` (the oldest execution a page brought; '' for all).
 */
export function gridColumns(
  executions: Execution[],
  workflowId: string,
  since: string
): Execution[] {
  return executions
    .filter(e => e.workflowId === workflowId && timeKey(e) >= since)
    .sort((a, b) => {
      const ta = timeKey(a);
      const tb = timeKey(b);
      return ta === tb ? a.id.localeCompare(b.id) : ta < tb ? -1 : 1;
    });
}

/**
 * The grid's rows: the definition's tasks in its order, then tasks only
 * older revisions had (newest execution first), so a renamed task keeps
 * its history visible.
 */
export function gridRows(definition: string[], columns: Execution[]): string[] {
  const rows = [...definition];
  const seen = new Set(rows);
  for (let i = columns.length - 1; i >= 0; i--) {
    for (const t of columns[i].tasks) {
      if (!seen.has(t.name)) {
        seen.add(t.name);
        rows.push(t.name);
      }
    }
  }
  return rows;
}

/** Each column's tasks by name. */
export function cellIndex(columns: Execution[]): Array<Map<string, TaskRun>> {
  return columns.map(e => new Map(e.tasks.map(t => [t.name, t])));
}

/**
 * The two executions to compare, older first, from the ones picked (at
 * most two: picking a third drops the first picked).
 */
export function pick(picked: string[], id: string): string[] {
  if (picked.includes(id)) {
    return picked.filter(p => p !== id);
  }
  return [...picked, id].slice(-2);
}

/** "a" is the older, "b" the newer of the two picked, by the columns' order. */
export function comparePair(
  picked: string[],
  columns: Execution[]
): [string, string] | null {
  if (picked.length !== 2) {
    return null;
  }
  const order = new Map(columns.map((c, i) => [c.id, i]));
  const [x, y] = picked;
  return (order.get(x) ?? 0) <= (order.get(y) ?? 0) ? [x, y] : [y, x];
}
