/**
 * Plugin wiring only: the sidebar panel, execution views, palette commands,
 * the file browser's and the notebook toolbar's "Run as TaskFlow task…", the
 * launcher tile, and the notebook's execution widget module. Behaviour lives
 * in service.ts, panel.ts, execution.ts, form.ts and widget.ts.
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
  showDialog,
  WidgetTracker
} from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { ExecutionView, openOutput } from './execution';
import { runNotebook, runWithParameters } from './form';
import { taskflowIcon } from './icon';
import { ExecutionSummary } from './model';
import { TaskflowPanel } from './panel';
import { TaskflowService } from './service';
import { widgetModule } from './widget';

export namespace CommandIDs {
  export const openPanel = 'taskflow:open-panel';
  export const runWorkflow = 'taskflow:run-workflow';
  export const openExecution = 'taskflow:open-execution';
  export const runWithParameters = 'taskflow:run-with-parameters';
  export const runNotebook = 'taskflow:run-notebook';
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

    const openExecution = (id: string): MainAreaWidget<ExecutionView> => {
      const open = tracker.find(w => w.content.executionId === id);
      if (open) {
        app.shell.activateById(open.id);
        return open;
      }
      const content = new ExecutionView(id, service, {
        openExecution: next =>
          void app.commands.execute(CommandIDs.openExecution, {
            executionId: next
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
      return widget;
    };

    const opened = (exec: ExecutionSummary | null): void => {
      if (exec) {
        service.model.upsertExecutions([exec]);
        openExecution(exec.id);
      }
    };

    const runWorkflow = async (id: string): Promise<void> => {
      opened(await api.runWorkflow(id, undefined, service.settings));
    };

    const panel = new TaskflowPanel(service, {
      openExecution: id => void openExecution(id),
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
        return id ? openExecution(id.trim()) : undefined;
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
