/**
 * The front end of the notebook's `ExecutionWidget` (pytaskflow_jupyter/
 * kernel/widgets.py): an ipywidgets module that this labextension ships and
 * registers with the widget manager (`IJupyterWidgetRegistry`, provided at
 * run time by jupyterlab_widgets).
 *
 * The view is the panel's `ExecutionView` itself, so the notebook and the
 * panel draw the same header, counts words, segmented status bar, DAG (dagre
 * layout, `dag.ts`) and task rows. Only its source of state differs: the
 * kernel keeps two synced traits current — `execution` (the REST detail of
 * the execution, with events applied) and `definition` (the revision it
 * runs) — and `WidgetService` feeds them into the view's `TaskflowModel`
 * instead of REST snapshots and /ws events. Reloads the view asks for (its
 * Refresh button, the end of the run) re-apply the traits; the kernel pushes
 * every change anyway. The view's actions (Run, Cancel, Retry, a task's logs)
 * go to this Lab's TaskFlow server, as in the panel.
 */

import {
  DOMWidgetModel,
  DOMWidgetView,
  ExportMap,
  IWidgetRegistryData
} from '@jupyter-widgets/base';
import { ServerConnection } from '@jupyterlab/services';

import { ExecutionActions, ExecutionView } from './execution';
import { Execution, Workflow } from './model';
import { TaskflowService } from './service';

/** The module name and version the Python side asks for (`_model_module`). */
export const WIDGET_MODULE = 'pytaskflow-jupyter';
export const WIDGET_VERSION = '0.1.0';

/** What the kernel syncs: `execution` (REST detail) and `definition`. */
export interface WidgetState {
  execution: Execution | null;
  definition: Partial<Workflow> | null;
}

/**
 * A `TaskflowService` fed by a widget's traits: no /ws stream, and
 * `loadExecution` re-applies the latest `execution` rather than asking REST.
 */
export class WidgetService extends TaskflowService {
  constructor(
    settings: ServerConnection.ISettings,
    private readonly traits: () => WidgetState
  ) {
    super(settings);
    this.apply();
  }

  /** Merge the traits into the model (merges are monotonic and idempotent). */
  apply(): void {
    const { execution, definition } = this.traits();
    if (definition?.id) {
      this.model.upsertWorkflow(definition as Workflow);
    }
    if (execution?.id) {
      this.model.upsertExecutions([execution]);
    }
  }

  start(): void {
    // The kernel is the source: no stream of this server's events.
  }

  async loadExecution(): Promise<void> {
    this.apply();
  }
}

/** What the plugin gives the widget module: this Lab's server and commands. */
export interface WidgetContext {
  settings: ServerConnection.ISettings;
  actions: ExecutionActions;
}

/** The module's model and view classes, bound to `context`. */
export function widgetExports(context: WidgetContext): ExportMap {
  class ExecutionModel extends DOMWidgetModel {
    defaults() {
      return {
        ...super.defaults(),
        _model_name: 'ExecutionModel',
        _view_name: 'ExecutionView',
        _model_module: WIDGET_MODULE,
        _view_module: WIDGET_MODULE,
        _model_module_version: `^${WIDGET_VERSION}`,
        _view_module_version: `^${WIDGET_VERSION}`,
        execution_id: '',
        execution: null,
        definition: null
      };
    }
  }

  class ExecutionWidgetView extends DOMWidgetView {
    render(): void {
      this.el.classList.add('jp-TaskflowWidget');
      const state = (): WidgetState => ({
        execution: this.model.get('execution') || null,
        definition: this.model.get('definition') || null
      });
      this._service = new WidgetService(context.settings, state);
      const id = String(this.model.get('execution_id') || '');
      this._view = new ExecutionView(id, this._service, context.actions);
      this.el.appendChild(this._view.node);
      this.listenTo(this.model, 'change:execution change:definition', () =>
        this._service?.apply()
      );
    }

    remove(): void {
      this._view?.dispose();
      this._service?.dispose();
      this._view = null;
      this._service = null;
      return super.remove();
    }

    private _service: WidgetService | null = null;
    private _view: ExecutionView | null = null;
  }

  return { ExecutionModel, ExecutionView: ExecutionWidgetView };
}

/** The registration `IJupyterWidgetRegistry.registerWidget` takes. */
export function widgetModule(context: WidgetContext): IWidgetRegistryData {
  return {
    name: WIDGET_MODULE,
    version: WIDGET_VERSION,
    exports: () => widgetExports(context)
  };
}
