/**
 * Plugin wiring only: the sidebar panel, execution views, workflow pages,
 * run comparisons, palette commands, the file browser's and the notebook
 * toolbar's "Run as TaskFlow task…", the launcher tile, the notifications of
 * ended executions, and the notebook's execution widget module. Behaviour
 * lives in service.ts, panel.ts, execution.ts, workflow.ts, compare.ts,
 * notify.ts, form.ts and widget.ts.
 */

import { IJupyterWidgetRegistry } from '@jupyter-widgets/base';

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog,
  WidgetTracker
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { CompareView } from './compare';
import { ExecutionView, openOutput } from './execution';
import { runNotebook, runWithParameters } from './form';
import { taskflowIcon } from './icon';
import { ExecutionSummary } from './model';
import { DEFAULT_NOTIFY, ExecutionNotifier, NotifySettings } from './notify';
import { TaskflowPanel } from './panel';
import { TaskflowService } from './service';
import { widgetModule } from './widget';
import { WorkflowView } from './workflow';

export namespace CommandIDs {
  export const openPanel = 'taskflow:open-panel';
  export const runWorkflow = 'taskflow:run-workflow';
  export const openExecution = 'taskflow:open-execution';
  export const runWithParameters = 'taskflow:run-with-parameters';
  export const runNotebook = 'taskflow:run-notebook';
  export const openWorkflow = 'taskflow:open-workflow';
  export const compareExecutions = 'taskflow:compare-executions';
}

/** A notebook item in the file browser's listing (what its context menu is on). */
const NOTEBOOK_ITEM = '.jp-DirListing-item[data-file-type="notebook"]';

/**
 * The notebook selected in a file browser of the left area. Duck-typed
 * (`selectedItems()` of @jupyterlab/filebrowser's FileBrowser) so that the
 * extension needs no dependency on that package for one call.
 */
function selectedNotebook(app: JupyterFrontEnd): string | undefined {
  type Item = { path: string; type: string };
  for (const w of app.shell.widgets('left')) {
    const browser = w as Widget & { selectedItems?: () => Iterable<Item> };
    if (typeof browser.selectedItems !== 'function' || !browser.isVisible) {
      continue;
    }
    for (const item of browser.selectedItems()) {
      if (item.type === 'notebook' || item.path.endsWith('.ipynb')) {
        return item.path;
      }
    }
  }
  return undefined;
}

const PLUGIN_ID = 'pytaskflow-jupyter:plugin';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'TaskFlow panel: workflows, live executions, DAG view and logs.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null
  ) => {
    const service = new TaskflowService(app.serviceManager.serverSettings);
    const tracker = new WidgetTracker<MainAreaWidget<ExecutionView>>({
      namespace: 'taskflow-execution'
    });

    const openExecution = (
      id: string,
      task?: string
    ): MainAreaWidget<ExecutionView> => {
      const open = tracker.find(w => w.content.executionId === id);
      if (open) {
        app.shell.activateById(open.id);
        if (task) {
          open.content.select(task);
        }
        return open;
      }
      const content = new ExecutionView(id, service, {
        openExecution: (next, nextTask) =>
          void app.commands.execute(CommandIDs.openExecution, {
            executionId: next,
            task: nextTask ?? null
          }),
        openPath: path =>
          void openOutput(path, app.serviceManager.contents, p =>
            app.commands.execute('docmanager:open', { path: p })
          )
      });
      const widget = new MainAreaWidget({ content });
      widget.id = `taskflow-execution-${id}`;
      widget.title.icon = taskflowIcon;
      widget.title.closable = true;
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      service.start();
      if (task) {
        content.select(task);
      }
      return widget;
    };

    const opened = (exec: ExecutionSummary | null): void => {
      if (exec) {
        service.noteStarted(exec.id);
        service.model.upsertExecutions([exec]);
        openExecution(exec.id);
      }
    };

    const workflows = new WidgetTracker<MainAreaWidget<WorkflowView>>({
      namespace: 'taskflow-workflow'
    });
    const openWorkflow = (id: string): void => {
      const open = workflows.find(w => w.content.workflowId === id);
      if (open) {
        app.shell.activateById(open.id);
        return;
      }
      const content = new WorkflowView(id, service, {
        openExecution: (exec, task) => openExecution(exec, task),
        compare: (a, b) =>
          void app.commands.execute(CommandIDs.compareExecutions, { a, b }),
        runWorkflow: next => runWorkflow(next)
      });
      const widget = new MainAreaWidget({ content });
      widget.id = `taskflow-workflow-${id}`;
      widget.title.closable = true;
      void workflows.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    const comparisons = new WidgetTracker<MainAreaWidget<CompareView>>({
      namespace: 'taskflow-compare'
    });
    const compare = (a: string, b: string): void => {
      const open = comparisons.find(
        w => w.content.a === a && w.content.b === b
      );
      if (open) {
        app.shell.activateById(open.id);
        void open.content.reload();
        return;
      }
      const content = new CompareView(a, b, service, {
        openExecution: (exec, task) => openExecution(exec, task)
      });
      const widget = new MainAreaWidget({ content });
      widget.id = `taskflow-compare-${a}-${b}`;
      widget.title.closable = true;
      void comparisons.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
    };

    // Lab's notifications for ended executions the user cares about; the
    // settings are read when one ends (so the Settings Editor's last word
    // counts) through the settings service, which needs no extra package.
    const notifySettings = async (): Promise<NotifySettings> => {
      try {
        const plugin = (await app.serviceManager.settings.fetch(
          PLUGIN_ID
        )) as unknown as { settings?: Partial<NotifySettings> };
        return { ...DEFAULT_NOTIFY, ...(plugin.settings ?? {}) };
      } catch {
        return DEFAULT_NOTIFY;
      }
    };
    const notifier = new ExecutionNotifier({
      known: id => service.model.execution(id),
      load: async id => {
        await service.loadExecution(id);
        return service.model.execution(id);
      },
      workflowName: id => service.model.workflow(id)?.name || id,
      settings: notifySettings,
      post: spec => {
        const options = {
          autoClose: spec.kind === 'error' ? (false as const) : 8000,
          actions: [
            {
              label: 'Open',
              caption: `Open ${spec.executionId}`,
              callback: () => void openExecution(spec.executionId)
            }
          ]
        };
        if (spec.kind === 'error') {
          Notification.error(spec.message, options);
        } else {
          Notification.success(spec.message, options);
        }
      }
    });
    service.onStarted(id => notifier.started(id));
    service.onEvent(ev => void notifier.onEvent(ev));

    const runWorkflow = async (id: string): Promise<void> => {
      opened(await api.runWorkflow(id, undefined, service.settings));
    };

    const panel = new TaskflowPanel(service, {
      openExecution: id => void openExecution(id),
      openWorkflow,
      runWorkflow,
      runWithParameters: id =>
        app.commands.execute(CommandIDs.runWithParameters, { workflowId: id })
    });
    app.shell.add(panel, 'left', { rank: 650 });
    service.start();

    app.commands.addCommand(CommandIDs.openPanel, {
      label: args => (args.isLauncher ? 'TaskFlow' : 'Open TaskFlow Panel'),
      caption: 'Show workflows and executions',
      icon: args => (args.isLauncher ? taskflowIcon : undefined),
      execute: () => app.shell.activateById(panel.id)
    });

    app.commands.addCommand(CommandIDs.runWorkflow, {
      label: args =>
        args.workflowId
          ? `Run Workflow ${args.workflowId}`
          : 'Run TaskFlow Workflow…',
      caption: 'Start a new execution of a registered workflow',
      execute: async args => {
        let id = args.workflowId as string | undefined;
        if (!id) {
          const workflows = await api.listWorkflows(service.settings);
          if (!workflows.length) {
            await showDialog({
              title: 'No workflows registered yet',
              body: 'POST a definition to /workflows, or use the %%taskflow cell magic.',
              buttons: [Dialog.okButton()]
            });
            return;
          }
          const choice = await InputDialog.getItem({
            title: 'Run workflow',
            items: workflows.map(w => w.id)
          });
          id = choice.button.accept ? (choice.value ?? undefined) : undefined;
        }
        if (id) {
          await runWorkflow(id);
        }
      }
    });

    app.commands.addCommand(CommandIDs.runWithParameters, {
      label: args =>
        args.workflowId
          ? `Run Workflow ${args.workflowId} with Parameters…`
          : 'Run TaskFlow Workflow with Parameters…',
      caption: 'Start an execution with values for the declared parameters',
      execute: async args => {
        const workflows = await api.listWorkflows(service.settings);
        service.model.setWorkflows(workflows);
        const declaring = workflows.filter(
          w => Object.keys(w.parameters ?? {}).length
        );
        let id = args.workflowId as string | undefined;
        if (!id) {
          if (!declaring.length) {
            await showDialog({
              title: 'No workflow declares parameters',
              body: 'A definition declares them as "parameters": {"name": default, …}.',
              buttons: [Dialog.okButton()]
            });
            return;
          }
          const choice = await InputDialog.getItem({
            title: 'Run workflow with parameters',
            items: declaring.map(w => w.id)
          });
          id = choice.button.accept ? (choice.value ?? undefined) : undefined;
        }
        const wf = workflows.find(w => w.id === id);
        if (wf) {
          opened(await runWithParameters(wf, service));
        }
      }
    });

    app.commands.addCommand(CommandIDs.runNotebook, {
      label: 'Run as TaskFlow task…',
      caption:
        'Run this notebook as a one-task TaskFlow workflow, with values for its parameters cell',
      icon: taskflowIcon,
      execute: async args => {
        const path = (args.path as string | undefined) ?? selectedNotebook(app);
        if (path) {
          const local = app.serviceManager.contents.localPath(path);
          opened(await runNotebook(local, service));
        }
      }
    });
    app.contextMenu.addItem({
      command: CommandIDs.runNotebook,
      selector: NOTEBOOK_ITEM,
      rank: 10
    });
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (widget, context) => {
        if (!(widget instanceof MainAreaWidget)) {
          return;
        }
        const button = new ToolbarButton({
          icon: taskflowIcon,
          className: 'jp-TaskflowRunNotebook',
          tooltip: 'Run as TaskFlow task…',
          onClick: () => {
            // The server runs the file on disk: save what is shown first.
            const saved = context.model.dirty
              ? context.save()
              : Promise.resolve();
            void saved.then(() =>
              app.commands.execute(CommandIDs.runNotebook, {
                path: context.path
              })
            );
          }
        });
        widget.toolbar.insertItem(10, 'taskflow-run-notebook', button);
        return button;
      }
    });

    app.commands.addCommand(CommandIDs.openExecution, {
      label: args =>
        args.executionId
          ? `Open Execution ${args.executionId}`
          : 'Open TaskFlow Execution…',
      caption: 'Show an execution: graph, tasks, logs',
      execute: async args => {
        let id = args.executionId as string | undefined;
        if (!id) {
          const recent = service.model.recentExecutions(50).map(e => e.id);
          const choice = recent.length
            ? await InputDialog.getItem({
                title: 'Open execution',
                items: recent,
                editable: true
              })
            : await InputDialog.getText({
                title: 'Open execution',
                placeholder: 'exec_…'
              });
          id = choice.button.accept ? (choice.value ?? undefined) : undefined;
        }
        const task = (args.task as string | null | undefined) ?? undefined;
        return id ? openExecution(id.trim(), task) : undefined;
      }
    });

    app.commands.addCommand(CommandIDs.openWorkflow, {
      label: args =>
        args.workflowId
          ? `Open Workflow ${args.workflowId}`
          : 'Open TaskFlow Workflow…',
      caption: 'Show a workflow: definition, revisions, history of its runs',
      execute: async args => {
        let id = args.workflowId as string | undefined;
        if (!id) {
          const list = await api.listWorkflows(service.settings);
          const choice = await InputDialog.getItem({
            title: 'Open workflow',
            items: list.map(w => w.id)
          });
          id = choice.button.accept ? (choice.value ?? undefined) : undefined;
        }
        if (id) {
          openWorkflow(id);
        }
      }
    });

    app.commands.addCommand(CommandIDs.compareExecutions, {
      label: 'Compare TaskFlow Executions…',
      caption: 'Two executions of one workflow side by side',
      execute: async args => {
        let a = args.a as string | undefined;
        let b = args.b as string | undefined;
        for (const side of ['A', 'B']) {
          if (a && b) {
            break;
          }
          const choice = await InputDialog.getItem({
            title: `Compare: execution ${side}`,
            items: service.model
              .recentExecutions(50)
              .map(e => e.id)
              .filter(id => id !== a),
            editable: true
          });
          if (!choice.button.accept || !choice.value) {
            return;
          }
          if (!a) {
            a = choice.value.trim();
          } else {
            b = choice.value.trim();
          }
        }
        if (a && b) {
          compare(a, b);
        }
      }
    });

    for (const command of Object.values(CommandIDs)) {
      if (command !== CommandIDs.runNotebook) {
        palette?.addItem({ command, category: 'TaskFlow' });
      }
    }
    launcher?.add({
      command: CommandIDs.openPanel,
      category: 'Other',
      rank: 10,
      args: { isLauncher: true }
    });
    if (restorer) {
      restorer.add(panel, 'taskflow-panel');
      void restorer.restore(workflows, {
        command: CommandIDs.openWorkflow,
        args: w => ({ workflowId: w.content.workflowId }),
        name: w => w.content.workflowId
      });
      void restorer.restore(comparisons, {
        command: CommandIDs.compareExecutions,
        args: w => ({ a: w.content.a, b: w.content.b }),
        name: w => `${w.content.a}:${w.content.b}`
      });
      void restorer.restore(tracker, {
        command: CommandIDs.openExecution,
        args: w => ({ executionId: w.content.executionId }),
        name: w => w.content.executionId
      });
    }
  }
};

/**
 * The notebook's `ExecutionWidget` front end: the execution view, fed by the
 * kernel. Its links open executions in the main area, as the panel does.
 */
const widgetPlugin: JupyterFrontEndPlugin<void> = {
  id: 'pytaskflow-jupyter:widget',
  description: 'The execution widget of notebooks: the panel’s execution view.',
  autoStart: true,
  requires: [IJupyterWidgetRegistry],
  activate: (app: JupyterFrontEnd, registry: IJupyterWidgetRegistry) => {
    registry.registerWidget(
      widgetModule({
        settings: app.serviceManager.serverSettings,
        actions: {
          openExecution: id =>
            void app.commands.execute(CommandIDs.openExecution, {
              executionId: id
            }),
          openPath: path =>
            void openOutput(path, app.serviceManager.contents, p =>
              app.commands.execute('docmanager:open', { path: p })
            )
        }
      })
    );
  }
};

export default [plugin, widgetPlugin];
