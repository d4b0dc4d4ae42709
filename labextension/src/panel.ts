/**
 * The TaskFlow sidebar: registered workflows (with a Run action, and Run with
 * parameters for those that declare parameters) and recent
 * executions with status badges, re-rendered from the shared model whenever
 * a /ws event or a REST snapshot changes it.
 */

import { Widget } from '@lumino/widgets';

import {
  badge,
  describeError,
  elapsed,
  formatDuration,
  formatTime,
  h
} from './dom';
import { taskflowIcon } from './icon';
import { Execution, taskCounts, TERMINAL_EXECUTION, Workflow } from './model';
import { TaskflowService } from './service';

export interface PanelActions {
  openExecution(id: string): void;
  runWorkflow(id: string): Promise<void>;
  /** Ask for the declared parameters' values, then run. */
  runWithParameters(id: string): Promise<unknown>;
}

export class TaskflowPanel extends Widget {
  constructor(
    private readonly service: TaskflowService,
    private readonly actions: PanelActions
  ) {
    super();
    this.id = 'taskflow-panel';
    this.addClass('jp-TaskflowPanel');
    this.title.icon = taskflowIcon;
    this.title.caption = 'TaskFlow';
    this._unsubscribe = [
      service.model.subscribe(() => this._scheduleRender()),
      service.onStateChanged(() => this._scheduleRender())
    ];
    this._render();
  }

  dispose(): void {
    this._unsubscribe.forEach(fn => fn());
    super.dispose();
  }

  protected onAfterAttach(): void {
    this.service.start();
    this._render();
  }

  private _scheduleRender(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._render();
      });
    }
  }

  private _render(): void {
    const { loading, error, stream } = this.service.state;
    const refresh = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: 'Refresh',
        'data-action': 'refresh'
      },
      '⟳'
    );
    refresh.onclick = () => void this.service.refresh();
    const header = h(
      'div',
      { class: 'jp-TaskflowPanel-header' },
      h('h2', {}, 'TaskFlow'),
      h(
        'span',
        {
          class: `jp-TaskflowPanel-live jp-mod-${stream}`,
          title:
            stream === 'open'
              ? 'Live: receiving events from /ws'
              : `Event stream ${stream}; reconnecting resumes where it left off`
        },
        stream === 'open' ? '● live' : `○ ${stream}`
      ),
      refresh
    );
    const body = h('div', { class: 'jp-TaskflowPanel-body' });
    if (error) {
      const retry = h(
        'button',
        { class: 'jp-mod-styled jp-mod-accept' },
        'Try again'
      );
      retry.onclick = () => void this.service.refresh();
      body.appendChild(
        h(
          'div',
          { class: 'jp-Taskflow-error', role: 'alert' },
          h('p', {}, `Cannot reach the TaskFlow API: ${error}`),
          h(
            'p',
            { class: 'jp-Taskflow-hint' },
            'Is the pytaskflow_jupyter server extension enabled? See `jupyter server extension list`.'
          ),
          retry
        )
      );
    }
    if (loading) {
      body.appendChild(h('div', { class: 'jp-Taskflow-loading' }, 'Loading…'));
    } else {
      body.appendChild(this._workflowsSection());
      body.appendChild(this._executionsSection());
    }
    // Re-rendering replaces the rows: keep keyboard focus on the same one.
    const active = document.activeElement;
    const focused =
      active && this.node.contains(active)
        ? active.getAttribute('data-execution-id')
        : null;
    this.node.replaceChildren(header, body);
    if (focused) {
      this.node
        .querySelector<HTMLElement>(
          `[data-execution-id="${CSS.escape(focused)}"]`
        )
        ?.focus();
    }
  }

  private _workflowsSection(): HTMLElement {
    const workflows = this.service.model.workflows;
    const list = h('ul', {
      class: 'jp-TaskflowPanel-list jp-TaskflowPanel-workflows'
    });
    for (const wf of workflows) {
      const run = h(
        'button',
        {
          class: 'jp-Taskflow-iconButton',
          title: `Run ${wf.name || wf.id}`,
          'data-action': 'run'
        },
        '▶'
      );
      run.onclick = ev => {
        ev.stopPropagation();
        run.disabled = true;
        this.actions
          .runWorkflow(wf.id)
          .catch(err => console.error(describeError(err)))
          .finally(() => (run.disabled = false));
      };
      list.appendChild(
        h(
          'li',
          {
            class: 'jp-TaskflowPanel-workflow',
            'data-workflow-id': wf.id,
            title: wf.description || wf.id
          },
          h('span', { class: 'jp-TaskflowPanel-name' }, wf.name || wf.id),
          h(
            'span',
            { class: 'jp-TaskflowPanel-meta' },
            `${wf.tasks?.length ?? 0} tasks` +
              (wf.revision ? ` · rev ${wf.revision}` : '')
          ),
          h(
            'span',
            { class: 'jp-TaskflowPanel-actions' },
            this._runWithParametersButton(wf),
            run
          )
        )
      );
    }
    return h(
      'section',
      {},
      h('h3', {}, 'Workflows'),
      workflows.length
        ? list
        : h(
            'p',
            { class: 'jp-Taskflow-empty' },
            'No workflows yet. POST a definition to /workflows, or use the %%taskflow cell magic in a notebook.'
          )
    );
  }

  /** ⚙ "Run with parameters…", for a workflow that declares parameters. */
  private _runWithParametersButton(wf: Workflow): HTMLElement | null {
    const declared = Object.keys(wf.parameters ?? {});
    if (!declared.length) {
      return null;
    }
    const button = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: `Run with parameters… (${declared.join(', ')})`,
        'aria-label': 'Run with parameters…',
        'data-action': 'run-with-parameters'
      },
      '⚙'
    );
    button.onclick = ev => {
      ev.stopPropagation();
      this.actions
        .runWithParameters(wf.id)
        .catch(err => console.error(describeError(err)));
    };
    return button;
  }

  private _executionsSection(): HTMLElement {
    const executions = this.service.model.recentExecutions(50);
    const list = h('ul', {
      class: 'jp-TaskflowPanel-list jp-TaskflowPanel-executions'
    });
    for (const exec of executions) {
      const item = this._executionItem(exec);
      item.onclick = () => this.actions.openExecution(exec.id);
      item.onkeydown = ev => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          this.actions.openExecution(exec.id);
        }
      };
      list.appendChild(item);
    }
    return h(
      'section',
      {},
      h('h3', {}, 'Recent executions'),
      executions.length
        ? list
        : h('p', { class: 'jp-Taskflow-empty' }, 'No executions yet.')
    );
  }

  private _executionItem(exec: Execution): HTMLElement {
    const wf = this.service.model.workflow(exec.workflowId);
    const counts = taskCounts(exec);
    const total = exec.tasks?.length ?? 0;
    const done = (counts.completed ?? 0) + (counts.skipped ?? 0);
    const time = elapsed(
      exec.startTime,
      TERMINAL_EXECUTION.has(exec.status)
        ? (exec.endTime ?? exec.startTime)
        : null
    );
    return h(
      'li',
      {
        class: 'jp-TaskflowPanel-execution',
        'data-execution-id': exec.id,
        'data-status': exec.status,
        'data-workflow-id': exec.workflowId,
        title: `Open ${exec.id}`,
        tabindex: 0
      },
      badge(exec.status),
      h(
        'span',
        { class: 'jp-TaskflowPanel-name' },
        wf?.name || exec.workflowId || '(unknown workflow)'
      ),
      h('span', { class: 'jp-TaskflowPanel-meta' }, exec.id),
      h(
        'span',
        { class: 'jp-TaskflowPanel-meta' },
        [
          total ? `${done}/${total} done` : '',
          formatTime(exec.startTime ?? exec.createdAt),
          formatDuration(time)
        ]
          .filter(Boolean)
          .join(' · ')
      )
    );
  }

  private _frame: number | null = null;
  private _unsubscribe: Array<() => void>;
}
