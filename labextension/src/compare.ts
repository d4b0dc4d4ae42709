/**
 * Two executions of one workflow side by side (GET /executions/{a}/compare/{b},
 * which decides what differs: the view only shows it): each execution's
 * status, revision, start and duration; the parameters, A beside B; then per
 * task the status, duration, attempts, result and error of each, the cells
 * that differ highlighted and the rows with a difference marked, so the one
 * task that failed in A and not in B stands out. "Only differences" hides
 * the rest.
 */

import { Widget } from '@lumino/widgets';

import * as api from './api';
import {
  badge,
  describeError,
  formatDuration,
  formatTime,
  h,
  shortId
} from './dom';
import { taskflowIcon } from './icon';
import type { ComparedTask, ComparedTaskRow, Comparison } from './model';
import { TaskflowService } from './service';

export interface CompareActions {
  openExecution(id: string, task?: string): void;
}

/** A result or a parameter value as short text (JSON, cut at `max`). */
export function valueText(v: unknown, max = 80): string {
  if (v === undefined) {
    return '';
  }
  let text: string;
  try {
    text =
      typeof v === 'string'
        ? JSON.stringify(v)
        : (JSON.stringify(v) ?? String(v));
  } catch {
    text = String(v);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "2 parameters and 3 tasks differ", or "No difference". */
export function differsText(c: Pick<Comparison, 'differs'>): string {
  const p = c.differs.params.length;
  const t = c.differs.tasks.length;
  const parts = [
    p ? `${p} parameter${p === 1 ? '' : 's'}` : '',
    t ? `${t} task${t === 1 ? '' : 's'}` : ''
  ].filter(Boolean);
  if (!parts.length) {
    return 'No difference';
  }
  return `${parts.join(' and ')} differ${p + t === 1 ? 's' : ''}`;
}

const FIELDS = ['status', 'duration', 'attempts', 'result', 'error'] as const;
type Field = (typeof FIELDS)[number];

export class CompareView extends Widget {
  constructor(
    readonly a: string,
    readonly b: string,
    private readonly service: TaskflowService,
    private readonly actions: CompareActions
  ) {
    super();
    this.addClass('jp-TaskflowCompare');
    this.title.icon = taskflowIcon;
    this.title.label = `Compare ${shortId(a)} · ${shortId(b)}`;
    this.title.caption = `${a} compared with ${b}`;
    this.node.appendChild(
      h('div', { class: 'jp-Taskflow-loading' }, 'Comparing…')
    );
    void this.reload();
  }

  async reload(): Promise<void> {
    try {
      this._data = await api.compareExecutions(
        this.a,
        this.b,
        this.service.settings
      );
      this._error = null;
    } catch (err) {
      this._error = describeError(err);
    }
    this._render();
  }

  private _render(): void {
    const c = this._data;
    if (!c) {
      this.node.replaceChildren(
        h(
          'div',
          { class: 'jp-Taskflow-error', role: 'alert' },
          `Cannot compare ${this.a} with ${this.b}: ${this._error ?? 'no answer'}`
        )
      );
      return;
    }
    const name =
      this.service.model.workflow(c.a.workflowId)?.name || c.a.workflowId;
    this.title.label = `${name}: ${shortId(c.a.id)} vs ${shortId(c.b.id)}`;
    const only = h('input', {
      type: 'checkbox',
      'data-action': 'only-differences',
      checked: this._onlyDiffering
    });
    only.onchange = () => {
      this._onlyDiffering = only.checked;
      this._render();
    };
    const reload = h(
      'button',
      { class: 'jp-mod-styled jp-Taskflow-action', 'data-action': 'refresh' },
      'Refresh'
    );
    reload.onclick = () => void this.reload();
    this.node.replaceChildren(
      h(
        'div',
        { class: 'jp-TaskflowExecution-header' },
        h(
          'div',
          { class: 'jp-TaskflowExecution-title' },
          h('h2', {}, `Compare runs of ${name}`),
          h(
            'span',
            {
              class: 'jp-TaskflowCompare-summary',
              'data-differs': c.differs.params.length + c.differs.tasks.length
            },
            differsText(c)
          )
        ),
        h(
          'div',
          { class: 'jp-TaskflowExecution-actions' },
          h('label', {}, only, ' only differences'),
          reload
        )
      ),
      this._error
        ? h('div', { class: 'jp-Taskflow-error', role: 'alert' }, this._error)
        : '',
      this._executions(c),
      this._params(c),
      this._tasks(c)
    );
  }

  private _link(id: string, task?: string): HTMLElement {
    const a = h(
      'a',
      { href: '#', class: 'jp-Taskflow-reusedLink', 'data-open': id },
      id
    );
    a.onclick = ev => {
      ev.preventDefault();
      this.actions.openExecution(id, task);
    };
    return a;
  }

  private _executions(c: Comparison): HTMLElement {
    const row = (label: string, e: Comparison['a']) =>
      h(
        'tr',
        { 'data-side': label },
        h('th', {}, label),
        h('td', {}, this._link(e.id)),
        h('td', {}, badge(e.status)),
        h('td', {}, `rev ${e.revision}`),
        h('td', {}, formatTime(e.startTime)),
        h(
          'td',
          {},
          e.startTime && e.endTime
            ? formatDuration(
                (Date.parse(e.endTime) - Date.parse(e.startTime)) / 1000
              )
            : ''
        )
      );
    return h(
      'table',
      { class: 'jp-TaskflowCompare-executions jp-TaskflowExecution-attempts' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['', 'Execution', 'Status', 'Revision', 'Started', 'Took'].map(t =>
            h('th', {}, t)
          )
        )
      ),
      h('tbody', {}, row('A', c.a), row('B', c.b))
    );
  }

  private _params(c: Comparison): HTMLElement {
    const params = c.params.filter(p => p.differs || !this._onlyDiffering);
    if (!c.params.length) {
      return h(
        'section',
        {},
        h('h3', {}, 'Parameters'),
        h('p', { class: 'jp-Taskflow-empty' }, 'Neither has parameters.')
      );
    }
    return h(
      'section',
      {},
      h('h3', {}, 'Parameters'),
      h(
        'table',
        { class: 'jp-TaskflowCompare-params jp-TaskflowExecution-tasks' },
        h(
          'thead',
          {},
          h('tr', {}, ...['Name', 'A', 'B'].map(t => h('th', {}, t)))
        ),
        h(
          'tbody',
          {},
          ...params.map(p =>
            h(
              'tr',
              {
                'data-param': p.name,
                'data-differs': p.differs ? 'true' : 'false',
                class: p.differs ? 'jp-mod-differs' : undefined
              },
              h('td', {}, p.name),
              h('td', { class: 'jp-TaskflowCompare-value' }, valueText(p.a)),
              h('td', { class: 'jp-TaskflowCompare-value' }, valueText(p.b))
            )
          )
        )
      )
    );
  }

  private _tasks(c: Comparison): HTMLElement {
    const rows = c.tasks.filter(t => t.differs.length || !this._onlyDiffering);
    const head = h(
      'tr',
      {},
      h('th', { rowspan: 2 }, 'Task'),
      ...FIELDS.map(f => h('th', { colspan: 2 }, fieldLabel(f)))
    );
    const sides = h(
      'tr',
      {},
      ...FIELDS.flatMap(() => [h('th', {}, 'A'), h('th', {}, 'B')])
    );
    return h(
      'section',
      {},
      h(
        'h3',
        {},
        `Tasks (${c.differs.tasks.length} of ${c.tasks.length} differ)`
      ),
      h(
        'table',
        { class: 'jp-TaskflowCompare-tasks jp-TaskflowExecution-tasks' },
        h('thead', {}, head, sides),
        h('tbody', {}, ...rows.map(t => this._taskRow(c, t)))
      )
    );
  }

  private _taskRow(c: Comparison, t: ComparedTaskRow): HTMLElement {
    const differs = new Set<string>(t.differs);
    const cell = (side: 'a' | 'b', f: Field) => {
      const v = t[side];
      const mark =
        differs.has(f) || differs.has('missing') ? ' jp-mod-differs' : '';
      return h(
        'td',
        {
          class: `jp-TaskflowCompare-${f}${mark}`,
          'data-side': side,
          'data-field': f
        },
        v ? fieldValue(v, f) : side === 'a' ? '(not in A)' : '(not in B)'
      );
    };
    const name = h('a', { href: '#', title: 'Open it in B' }, t.name);
    name.onclick = ev => {
      ev.preventDefault();
      this.actions.openExecution(t.b ? c.b.id : c.a.id, t.name);
    };
    return h(
      'tr',
      {
        'data-task': t.name,
        'data-differs': t.differs.join(' ') || undefined,
        class: t.differs.length ? 'jp-mod-differs' : undefined
      },
      h('td', {}, name),
      ...FIELDS.flatMap(f => [cell('a', f), cell('b', f)])
    );
  }

  private _data: Comparison | null = null;
  private _error: string | null = null;
  private _onlyDiffering = false;
}

function fieldLabel(f: Field): string {
  return f[0].toUpperCase() + f.slice(1);
}

function fieldValue(v: NonNullable<ComparedTask>, f: Field): Node | string {
  switch (f) {
    case 'status':
      return badge(v.status);
    case 'duration':
      return formatDuration(v.duration);
    case 'attempts':
      return String(v.attempts);
    case 'result':
      return valueText(v.result);
    case 'error':
      return v.error ?? '';
  }
}
