/**
 * The execution view's timeline: one row per task, one bar per attempt
 * (coloured by the attempt's outcome, a running one growing), over an axis
 * of seconds since the execution started. A reused task gets no bar (it ran
 * in another execution) but a link to where it ran.
 *
 * Rows are virtual: only those in (or near) the scrolled window exist in the
 * DOM, each `ROW` px high, so an execution of 5,000 tasks costs a few dozen
 * rows per paint, and a live update rewrites only those.
 */

import { formatDuration, h, placeChildren } from './dom';
import type { Execution, TaskRun } from './model';
import {
  Attempt,
  AttemptMemory,
  barGeometry,
  ticks,
  timeRange
} from './timeline';

const ROW = 20;
/** Rows drawn beyond the visible window, above and below. */
const OVERSCAN = 10;
const MAX_HEIGHT = 320;

/** A drawn row and what it was drawn from. */
interface DrawnRow {
  task: TaskRun;
  attempts: Attempt[];
  index: number;
  range: { start: number; end: number };
  selected: string | null;
  el: HTMLElement;
}

export interface GanttActions {
  select(task: string, attempt?: number): void;
  openExecution(id: string, task?: string): void;
}

export class Gantt {
  readonly node: HTMLElement;

  constructor(
    private readonly memory: AttemptMemory,
    private readonly actions: GanttActions
  ) {
    this._axis = h('div', { class: 'jp-TaskflowGantt-axis' });
    this._rows = h('div', { class: 'jp-TaskflowGantt-rows' });
    this._scroller = h(
      'div',
      { class: 'jp-TaskflowGantt-scroller' },
      this._rows
    );
    this._scroller.onscroll = () => {
      // Read here, never while drawing: a read after the DOM changed forces
      // a layout of the whole page (thousands of rows) in the middle of it.
      this._top = this._scroller.scrollTop;
      this._schedule();
    };
    this.node = h(
      'div',
      { class: 'jp-TaskflowGantt', role: 'figure', 'aria-label': 'Timeline' },
      h('h3', {}, 'Timeline'),
      this._axis,
      this._scroller
    );
  }

  /** Draw `exec` (the visible rows only); `selected` is highlighted. */
  update(exec: Execution, selected: string | null): void {
    this._exec = exec;
    this._selected = selected;
    // Every task's attempts and the axis, once per update; a scroll only
    // draws other rows of them.
    const now = Date.now();
    this._attempts = exec.tasks.map(t => this.memory.attempts(t));
    this._range = timeRange(exec, this._attempts, now);
    this._now = now;
    this._draw();
  }

  dispose(): void {
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
  }

  private _schedule(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._draw();
      });
    }
  }

  private _draw(): void {
    const exec = this._exec;
    if (!exec) {
      return;
    }
    const tasks = exec.tasks;
    const now = this._now;
    const attempts = this._attempts;
    const range = this._range;
    this.node.dataset.tasks = String(tasks.length);
    const height = tasks.length * ROW;
    this._rows.style.height = `${height}px`;
    // As high as its rows, up to MAX_HEIGHT (then it scrolls).
    this._scroller.style.height = `${Math.min(height, MAX_HEIGHT) + 2}px`;
    if (this._axisRange !== range) {
      this._axisRange = range; // a scroll keeps the axis
      this._axis.replaceChildren(
        ...ticks(range).map(t =>
          h(
            'span',
            { class: 'jp-TaskflowGantt-tick', style: `left: ${t.at}%` },
            t.seconds ? `+${formatDuration(t.seconds)}` : '0'
          )
        )
      );
    }
    const top = this._top;
    const visible = Math.ceil(MAX_HEIGHT / ROW);
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(tasks.length, first + visible + 2 * OVERSCAN);
    const rows: HTMLElement[] = [];
    const drawn = new Map<string, DrawnRow>();
    for (let i = first; i < last; i++) {
      const t = tasks[i];
      // A row still in the window since the last update is kept as it is:
      // a scroll draws (and lays out) only the rows that came in.
      const old = this._drawn.get(t.name);
      const row =
        old &&
        old.task === t &&
        old.attempts === attempts[i] &&
        old.index === i &&
        old.range === range &&
        old.selected === this._selected
          ? old
          : {
              task: t,
              attempts: attempts[i],
              index: i,
              range,
              selected: this._selected,
              el: this._row(t, attempts[i], i, range, now)
            };
      drawn.set(t.name, row);
      rows.push(row.el);
    }
    this._drawn = drawn;
    placeChildren(this._rows, rows);
  }

  private _row(
    t: TaskRun,
    attempts: Attempt[],
    index: number,
    range: { start: number; end: number },
    now: number
  ): HTMLElement {
    const track = h('div', { class: 'jp-TaskflowGantt-track' });
    for (const a of attempts) {
      const geo = barGeometry(a, range, now);
      if (!geo) {
        continue;
      }
      const end = a.endTime ? Date.parse(a.endTime) : now;
      const took =
        a.duration ?? Math.max(0, end - Date.parse(a.startTime ?? '')) / 1000;
      const bar = h('span', {
        class: `jp-TaskflowGantt-bar jp-Taskflow-status-${a.status}`,
        'data-attempt': a.attempt,
        'data-status': a.status,
        style: `left: ${geo.left}%; width: ${geo.width}%`,
        title: `${t.name} · attempt ${a.attempt} · ${a.status} · ${formatDuration(took)}${
          a.error ? `\n${a.error}` : ''
        }`
      });
      bar.onclick = ev => {
        ev.stopPropagation();
        this.actions.select(t.name, a.attempt);
      };
      track.appendChild(bar);
    }
    if (t.reusedFrom) {
      const origin = t.reusedFrom;
      const link = h(
        'a',
        {
          href: '#',
          class: 'jp-TaskflowGantt-reused jp-Taskflow-reusedLink',
          'data-reused-from': origin,
          title: `Reused: its result was computed in ${origin}`
        },
        `reused from ${origin}`
      );
      link.onclick = ev => {
        ev.preventDefault();
        ev.stopPropagation();
        this.actions.openExecution(origin, t.name);
      };
      track.appendChild(link);
    }
    const row = h(
      'div',
      {
        class: `jp-TaskflowGantt-row${this._selected === t.name ? ' jp-mod-selected' : ''}`,
        'data-task': t.name,
        'data-status': t.status,
        'data-attempts': attempts.length,
        'data-reused': t.reusedFrom ? 'true' : undefined,
        style: `top: ${index * ROW}px`
      },
      h('span', { class: 'jp-TaskflowGantt-name', title: t.name }, t.name),
      track
    );
    row.onclick = () => this.actions.select(t.name);
    return row;
  }

  private _exec: Execution | null = null;
  private _drawn = new Map<string, DrawnRow>();
  private _axisRange: { start: number; end: number } | null = null;
  private _attempts: Attempt[][] = [];
  private _range = { start: 0, end: 1000 };
  private _now = 0;
  private _top = 0;
  private _selected: string | null = null;
  private _frame: number | null = null;
  private _axis: HTMLElement;
  private _rows: HTMLElement;
  private _scroller: HTMLElement;
}
