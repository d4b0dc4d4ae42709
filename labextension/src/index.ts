/**
 * Plugin wiring only: the sidebar panel, execution views, palette commands
 * and the launcher tile. Behaviour lives in service.ts, panel.ts and
 * execution.ts.
 */

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

import * as api from './api';
import { ExecutionView } from './execution';
import { taskflowIcon } from './icon';
import { TaskflowPanel } from './panel';
import { TaskflowService } from './service';

export namespace CommandIDs {
  export const openPanel = 'taskflow:open-panel';
  export const runWorkflow = 'taskflow:run-workflow';
  export const openExecution = 'taskflow:open-execution';
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
          })
      });
      const widget = new MainAreaWidget({ content });
      widget.id = `taskflow-execution-${id}`;
      widget.title.label = `TaskFlow ${id}`;
      widget.title.icon = taskflowIcon;
      widget.title.closable = true;
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      service.start();
      return widget;
    };

    const runWorkflow = async (id: string): Promise<void> => {
      const exec = await api.runWorkflow(id, undefined, service.settings);
      service.model.upsertExecutions([exec]);
      openExecution(exec.id);
    };

    const panel = new TaskflowPanel(service, {
      openExecution: id => void openExecution(id),
      runWorkflow
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
      palette?.addItem({ command, category: 'TaskFlow' });
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

export default plugin;
