/**
 * The instances of one mapped task, in the execution view: its counts and
 * histogram, a status filter, a paged table (index, status, attempts,
 * duration, error) and the selected instance's logs and traceback, with
 * "Retry failed instances".
 *
 * A map can have thousands of instances and emit an event for each, so the
 * list never renders per event and never renders more than it has read: it
 * reads one page (`PAGE` instances, "Show more" reads the next one from
 * `nextCursor`), and while the execution runs it re-reads the rows it shows
 * at most every `REFRESH_MS`, then patches only the rows whose state changed
 * (rows are keyed by `mapIndex`). Its node lives as long as the selection,
 * so the execution view's own re-renders move it rather than rebuild it.
 */

import * as api from './api';
import { badge, describeError, formatDuration, h, s } from './dom';
import {
  doneText,
  histogram,
  INSTANCE_FILTERS,
  InstanceFilter,
  InstancePage,
  MappedCounts,
  mappedText,
  REFRESH_MS,
  TaskInstance,
  Throttle
} from './mapped';
import { Execution, TaskLogAttempt, TERMINAL_EXECUTION } from './model';
import { TaskflowService } from './service';

/** Instances read per page. */
export const PAGE = 100;

export interface InstanceActions {
  /** Retry the execution (a new one reruns the failed instances only). */
  retry(): void;
  /** True while an action of the view is in flight. */
  busy(): boolean;
}

type Logs =
  | { state: 'loading' }
  | { state: 'error'; message: string }
  | { state: 'ready'; attempts: TaskLogAttempt[] };

export class InstanceList {
  readonly node: HTMLElement;

  constructor(
    readonly executionId: string,
    readonly task: string,
    private readonly upstream: string | null,
    private readonly service: TaskflowService,
    private readonly actions: InstanceActions
  ) {
    this._throttle = new Throttle(() => void this._reload(), REFRESH_MS);
    this._summary = h('span', { class: 'jp-TaskflowInstances-summary' });
    this._bar = h('div', {
      class: 'jp-TaskflowStatusBar jp-TaskflowInstances-bar',
      role: 'img'
    });
    this._retry = h(
      'button',
      {
        class: 'jp-mod-styled jp-Taskflow-action',
        'data-action': 'retry-instances',
        title:
          'New execution that reuses every completed instance and reruns the failed ones'
      },
      'Retry failed instances'
    );
    this._retry.onclick = () => this.actions.retry();
    this._filters = h('div', {
      class: 'jp-TaskflowInstances-filters',
      role: 'group',
      'aria-label': 'Filter instances by status'
    });
    for (const f of INSTANCE_FILTERS) {
      const b = h(
        'button',
        {
          class: 'jp-TaskflowInstances-filter',
          'data-filter': f.value || 'all',
          'aria-pressed': f.value === this._filter ? 'true' : 'false'
        },
        f.label,
        h('span', { class: 'jp-TaskflowInstances-count' })
      );
      b.onclick = () => this.setFilter(f.value);
      this._filters.appendChild(b);
    }
    this._body = h('tbody');
    this._status = h('div', { class: 'jp-TaskflowInstances-status' });
    this._more = h(
      'button',
      { class: 'jp-mod-styled jp-TaskflowInstances-more', hidden: true },
      'Show more'
    );
    this._more.onclick = () => void this._loadMore();
    this._detail = h('div', { class: 'jp-TaskflowInstances-detail' });
    this.node = h(
      'div',
      { class: 'jp-TaskflowInstances', 'data-task': task },
      h(
        'div',
        { class: 'jp-TaskflowInstances-header' },
        h('h3', {}, `Instances of ${task}`),
        this._summary,
        this._retry
      ),
      this._bar,
      this._filters,
      h(
        'table',
        { class: 'jp-TaskflowExecution-tasks jp-TaskflowInstances-table' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['#', 'Status', 'Attempts', 'Duration', 'Error'].map(c =>
              h('th', {}, c)
            )
          )
        ),
        this._body
      ),
      this._status,
      this._more,
      this._detail
    );
    this._renderDetail();
    void this._reload();
  }

  get filter(): InstanceFilter {
    return this._filter;
  }

  dispose(): void {
    this._throttle.dispose();
    this._disposed = true;
  }

  /**
   * The execution changed (a snapshot or an event): update the header in
   * place, and re-read the rows (throttled) when the counts moved.
   */
  update(exec: Execution): void {
    const run = exec.tasks.find(t => t.name === this.task);
    const counts = (run?.mapped ?? null) as MappedCounts | null;
    this._counts(counts);
    const key = JSON.stringify([counts, exec.status, run?.status]);
    if (key !== this._seen) {
      const first = this._seen === null;
      this._seen = key;
      if (!first) {
        this._throttle.request();
      }
    }
    const ended = TERMINAL_EXECUTION.has(exec.status);
    const failed = !!counts && counts.failed + counts.cancelled > 0;
    this._retry.disabled = !ended || this.actions.busy();
    this._retry.hidden = !(failed || run?.status === 'failed');
  }

  /** Show only instances with this status ('' for all): from the first page. */
  setFilter(filter: InstanceFilter): void {
    if (filter === this._filter) {
      return;
    }
    this._filter = filter;
    this._filters
      .querySelectorAll<HTMLButtonElement>('button[data-filter]')
      .forEach(b =>
        b.setAttribute(
          'aria-pressed',
          String(
            (b.dataset.filter === 'all' ? '' : b.dataset.filter) === filter
          )
        )
      );
    this._rows = [];
    this._wanted = PAGE;
    this._nextCursor = null;
    this._body.replaceChildren();
    this._keyed.clear();
    this._status.textContent = 'Loading…';
    void this._reload();
  }

  /** Re-read the rows shown (at least one page) with the current filter. */
  private async _reload(): Promise<void> {
    const filter = this._filter;
    const token = ++this._token;
    // as many rows as shown or asked for ("Show more" pending): a refresh that lands
    // while a next page loads must not take it back
    const limit = Math.min(1000, Math.max(this._wanted, this._rows.length));
    try {
      const page = await this._fetch(0, limit, filter);
      if (token !== this._token || this._disposed) {
        return; // a newer read (another filter, a later refresh) wins
      }
      this._rows = page.instances;
      this._nextCursor = page.nextCursor;
      this._error = null;
      this._counts(page.mapped);
    } catch (err) {
      if (token !== this._token) {
        return;
      }
      this._error = describeError(err);
    }
    this._renderRows();
  }

  private async _loadMore(): Promise<void> {
    const cursor = this._nextCursor;
    if (cursor === null) {
      return;
    }
    const token = ++this._token;
    this._wanted = Math.max(this._wanted, this._rows.length + PAGE);
    this._more.disabled = true;
    try {
      const page = await this._fetch(cursor, PAGE, this._filter);
      if (token === this._token && !this._disposed) {
        this._rows = [...this._rows, ...page.instances];
        this._nextCursor = page.nextCursor;
        this._error = null;
      }
    } catch (err) {
      this._error = describeError(err);
    } finally {
      this._more.disabled = false;
    }
    this._renderRows();
  }

  private _fetch(
    cursor: number,
    limit: number,
    status: InstanceFilter
  ): Promise<InstancePage> {
    return api.listInstances(
      this.executionId,
      this.task,
      { cursor: cursor || undefined, limit, status: status || undefined },
      this.service.settings
    );
  }

  /** Patch the table: add, replace (state changed) or drop rows by index. */
  private _renderRows(): void {
    const wanted = new Set(this._rows.map(r => r.mapIndex));
    for (const [i, row] of this._keyed) {
      if (!wanted.has(i)) {
        row.tr.remove();
        this._keyed.delete(i);
      }
    }
    let before: ChildNode | null = this._body.firstChild;
    for (const inst of this._rows) {
      const sig = signature(inst);
      let row = this._keyed.get(inst.mapIndex);
      if (!row || row.sig !== sig) {
        const tr = this._row(inst);
        if (row) {
          if (before === row.tr) {
            before = tr;
          }
          row.tr.replaceWith(tr);
        }
        row = { tr, sig };
        this._keyed.set(inst.mapIndex, row);
      }
      if (row.tr === before) {
        before = before.nextSibling;
      } else {
        this._body.insertBefore(row.tr, before);
      }
    }
    this._more.hidden = this._nextCursor === null;
    const what = this._filter ? `${this._filter} ` : '';
    this._status.textContent = this._error
      ? `Cannot load instances: ${this._error}`
      : this._rows.length
        ? `Showing ${this._rows.length} ${what}instance${this._rows.length === 1 ? '' : 's'}${
            this._nextCursor === null ? '' : ' (more below)'
          }`
        : `No ${what}instances.`;
    this._status.classList.toggle('jp-Taskflow-error', !!this._error);
    const sel = this._rows.find(r => r.mapIndex === this._selected);
    if (sel && signature(sel) !== this._selectedSig) {
      this._selectedSig = signature(sel);
      this._selectedRow = sel;
      void this._loadLogs(sel.mapIndex);
    }
  }

  private _row(inst: TaskInstance): HTMLTableRowElement {
    const tr = h(
      'tr',
      {
        class: inst.mapIndex === this._selected ? 'jp-mod-selected' : undefined,
        'data-map-index': inst.mapIndex,
        'data-status': inst.status,
        title: 'Show logs'
      },
      h('td', { class: 'jp-TaskflowInstances-index' }, String(inst.mapIndex)),
      h('td', {}, badge(inst.status)),
      h('td', {}, String(inst.attempts ?? '')),
      h(
        'td',
        { class: 'jp-TaskflowExecution-duration' },
        formatDuration(inst.duration)
      ),
      h(
        'td',
        {
          class: inst.error
            ? 'jp-TaskflowExecution-error'
            : 'jp-TaskflowExecution-reason'
        },
        inst.error ?? inst.reason ?? ''
      )
    );
    tr.onclick = () => this._select(inst);
    return tr;
  }

  private _select(inst: TaskInstance): void {
    this._keyed
      .get(this._selected ?? -1)
      ?.tr.classList.remove('jp-mod-selected');
    this._selected = inst.mapIndex;
    this._selectedRow = inst;
    this._selectedSig = signature(inst);
    this._keyed.get(inst.mapIndex)?.tr.classList.add('jp-mod-selected');
    void this._loadLogs(inst.mapIndex);
  }

  private async _loadLogs(index: number): Promise<void> {
    this._logs = { state: 'loading' };
    this._renderDetail();
    try {
      const { attempts } = await api.getInstanceLogs(
        this.executionId,
        this.task,
        index,
        this.service.settings
      );
      if (this._selected === index) {
        this._logs = { state: 'ready', attempts };
      }
    } catch (err) {
      if (this._selected === index) {
        this._logs = { state: 'error', message: describeError(err) };
      }
    }
    this._renderDetail();
  }

  private _renderDetail(): void {
    const inst = this._selectedRow;
    if (!inst) {
      this._detail.replaceChildren(
        h(
          'p',
          { class: 'jp-Taskflow-empty' },
          'Select an instance to see its logs.'
        )
      );
      this._detail.removeAttribute('data-map-index');
      return;
    }
    this._detail.setAttribute('data-map-index', String(inst.mapIndex));
    const parts: Array<Node | null> = [
      h(
        'h4',
        { class: 'jp-TaskflowInstances-title' },
        `${this.task}[${inst.mapIndex}] `,
        badge(inst.status)
      ),
      inst.error
        ? h('p', { class: 'jp-TaskflowExecution-error' }, inst.error)
        : null
    ];
    const logs = this._logs;
    if (logs.state === 'loading') {
      parts.push(h('div', { class: 'jp-Taskflow-loading' }, 'Loading logs…'));
    } else if (logs.state === 'error') {
      parts.push(
        h(
          'div',
          { class: 'jp-Taskflow-error' },
          `Cannot load logs: ${logs.message}`
        )
      );
    } else if (!logs.attempts.length) {
      parts.push(h('p', { class: 'jp-Taskflow-empty' }, 'No output captured.'));
    } else {
      for (const [i, a] of logs.attempts.entries()) {
        parts.push(h('h5', {}, `Attempt ${a.attempt ?? i + 1}`));
        if (a.stdout) {
          parts.push(
            h('pre', { class: 'jp-TaskflowExecution-stdout' }, a.stdout)
          );
        }
        if (a.stderr) {
          parts.push(
            h('pre', { class: 'jp-TaskflowExecution-stderr' }, a.stderr)
          );
        }
        if (!a.stdout && !a.stderr) {
          parts.push(h('p', { class: 'jp-Taskflow-empty' }, 'No output.'));
        }
      }
    }
    const tb = inst.traceback?.trim();
    const shown =
      logs.state === 'ready' &&
      !!tb &&
      logs.attempts.some(a => a.stderr?.includes(tb));
    if (tb && !shown) {
      parts.push(
        h('h5', {}, 'Traceback'),
        h(
          'pre',
          {
            class: 'jp-TaskflowExecution-stderr jp-TaskflowInstances-traceback'
          },
          inst.traceback ?? ''
        )
      );
    }
    this._detail.replaceChildren(...parts.filter(p => p !== null));
  }

  /** The summary line, the histogram and the filters' counts, in place. */
  private _counts(counts: MappedCounts | null | undefined): void {
    const c = counts ?? null;
    if (c && JSON.stringify(c) === this._countsKey) {
      return;
    }
    this._countsKey = JSON.stringify(c);
    const text = mappedText(c, this.upstream);
    this._summary.textContent = text;
    this._summary.setAttribute('data-done', doneText(c));
    this._bar.setAttribute('aria-label', text);
    this._bar.setAttribute('title', text);
    this._bar.replaceChildren(
      ...histogram(c, 100, 0.5).map(seg =>
        h('span', {
          class: `jp-TaskflowStatusBar-segment jp-Taskflow-status-${seg.status}`,
          'data-segment': seg.status,
          'data-count': seg.count,
          style: `flex: 0 0 ${seg.width}%`
        })
      )
    );
    this._filters
      .querySelectorAll<HTMLElement>('button[data-filter]')
      .forEach(b => {
        const key = b.dataset.filter === 'all' ? 'total' : b.dataset.filter;
        const n = c ? c[key as keyof MappedCounts] : undefined;
        const count = b.querySelector('.jp-TaskflowInstances-count');
        if (count) {
          count.textContent = n === undefined ? '' : ` ${n}`;
        }
      });
  }

  private _throttle: Throttle;
  private _summary: HTMLElement;
  private _bar: HTMLElement;
  private _retry: HTMLButtonElement;
  private _filters: HTMLElement;
  private _body: HTMLElement;
  private _status: HTMLElement;
  private _more: HTMLButtonElement;
  private _detail: HTMLElement;
  private _filter: InstanceFilter = '';
  private _rows: TaskInstance[] = [];
  private _wanted = PAGE; // rows asked for: a page per "Show more"
  private _nextCursor: number | null = null;
  private _keyed = new Map<number, { tr: HTMLElement; sig: string }>();
  private _token = 0;
  private _error: string | null = null;
  private _seen: string | null = null;
  private _countsKey = '';
  private _selected: number | null = null;
  private _selectedRow: TaskInstance | null = null;
  private _selectedSig = '';
  private _logs: Logs = { state: 'loading' };
  private _disposed = false;
}

/** What a row shows: a row is redrawn only when this changes. */
function signature(inst: TaskInstance): string {
  return JSON.stringify([
    inst.status,
    inst.attempts,
    inst.duration,
    inst.error,
    inst.reason
  ]);
}

/**
 * A mapped task's node extras in the DAG: a stack edge behind the box (it
 * stands for many runs) and a histogram strip along its bottom.
 */
export function mappedNodeParts(
  counts: MappedCounts | null,
  width: number,
  height: number
): { behind: SVGElement; strip: SVGElement } {
  const behind = s('rect', {
    class: 'jp-TaskflowDag-stack',
    x: 4,
    y: -4,
    width,
    height,
    rx: 6
  });
  const pad = 8;
  const strip = s('g', {
    class: 'jp-TaskflowDag-histogram',
    transform: `translate(${pad},${height - 7})`,
    'data-done': doneText(counts),
    'data-total': counts?.total ?? ''
  });
  strip.appendChild(
    s('rect', {
      class: 'jp-TaskflowDag-histogramTrack',
      width: width - 2 * pad,
      height: 4,
      rx: 2
    })
  );
  for (const seg of histogram(counts, width - 2 * pad)) {
    strip.appendChild(
      s('rect', {
        class: `jp-TaskflowDag-segment jp-Taskflow-status-${seg.status}`,
        'data-segment': seg.status,
        'data-count': seg.count,
        x: Math.round(seg.x * 10) / 10,
        width: Math.round(seg.width * 10) / 10,
        height: 4
      })
    );
  }
  return { behind, strip };
}
