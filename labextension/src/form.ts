/**
 * The parameter dialogs: a form with one typed field per parameter (what the
 * fields mean is params.ts), and the two runs built on it, a notebook as a
 * one-task workflow and a registered workflow with its declared parameters.
 */

import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { describeError, h } from './dom';
import { ExecutionSummary, Workflow } from './model';
import {
  collectValues,
  fieldsFromNotebook,
  fieldsFromWorkflow,
  notebookWorkflow,
  ParamField,
  parseField
} from './params';
import { TaskflowService } from './service';

/**
 * The form's body: edits `texts` (field name -> text, `true`/`false` for a
 * checkbox) in place, shows each field's error or note beside it, and
 * disables the dialog's accept button while any field is refused.
 */
export class ParametersForm extends Widget {
  constructor(
    private readonly fields: ParamField[],
    private readonly texts: Record<string, string>,
    intro: string
  ) {
    super();
    this.addClass('jp-TaskflowForm');
    this.node.append(
      h('p', { class: 'jp-TaskflowForm-intro' }, intro),
      ...(fields.length
        ? fields.map(f => this._field(f))
        : [
            h(
              'p',
              { class: 'jp-Taskflow-empty' },
              'No parameters: it runs with the values it has.'
            )
          ])
    );
  }

  /** True when every field parses. */
  get valid(): boolean {
    return !Object.keys(collectValues(this.fields, this.texts).errors).length;
  }

  protected onAfterAttach(): void {
    // Defaults can be refused too (an annotation its default does not fit).
    this.fields.forEach(f => this._check(f));
    this._updateAccept();
  }

  private _field(f: ParamField): HTMLElement {
    const id = `jp-TaskflowForm-${++fieldCount}`;
    const input =
      f.kind === 'bool'
        ? h('input', {
            type: 'checkbox',
            id,
            checked: this.texts[f.name] === 'true'
          })
        : h('input', {
            type: 'text',
            id,
            class: 'jp-mod-styled',
            spellcheck: 'false',
            autocomplete: 'off',
            inputmode:
              f.kind === 'int' || f.kind === 'float' ? 'decimal' : undefined
          });
    input.classList.add('jp-TaskflowForm-input');
    if (f.kind !== 'bool') {
      input.value = this.texts[f.name] ?? f.initial;
    }
    const onEdit = () => {
      this.texts[f.name] =
        f.kind === 'bool' ? String(input.checked) : input.value;
      this._check(f);
      this._updateAccept();
    };
    input.addEventListener(f.kind === 'bool' ? 'change' : 'input', onEdit);
    this._inputs.set(f.name, input);
    return h(
      'div',
      {
        class: 'jp-TaskflowForm-field',
        'data-param': f.name,
        'data-kind': f.kind
      },
      h(
        'label',
        { for: id },
        h('span', { class: 'jp-TaskflowForm-name' }, f.name),
        h('span', { class: 'jp-TaskflowForm-type' }, f.typeLabel)
      ),
      input,
      f.help ? h('div', { class: 'jp-TaskflowForm-help' }, f.help) : null,
      h('div', { class: 'jp-TaskflowForm-message', 'aria-live': 'polite' })
    );
  }

  private _check(f: ParamField): void {
    const input = this._inputs.get(f.name);
    const message = input?.parentElement?.querySelector(
      '.jp-TaskflowForm-message'
    );
    if (!input || !message) {
      return;
    }
    const parsed = parseField(f, this.texts[f.name] ?? f.initial);
    // jp-mod-error is also what JupyterLab's Dialog looks for (4.7+).
    input.classList.toggle('jp-mod-error', !parsed.ok);
    input.setAttribute('aria-invalid', String(!parsed.ok));
    message.classList.toggle('jp-mod-invalid', !parsed.ok);
    message.textContent = parsed.ok ? (parsed.note ?? '') : parsed.error;
  }

  private _updateAccept(): void {
    const accept = this.node
      .closest('.jp-Dialog-content')
      ?.querySelector<HTMLButtonElement>('.jp-Dialog-button.jp-mod-accept');
    if (accept) {
      accept.disabled = !this.valid;
    }
  }

  private _inputs = new Map<string, HTMLInputElement>();
}

let fieldCount = 0;

/**
 * Ask for the fields' values; null when cancelled. Enter accepts the dialog
 * even while a field is refused, so a refused form is shown again with what
 * was typed.
 */
export async function askParameters(
  title: string,
  intro: string,
  fields: ParamField[]
): Promise<Record<string, unknown> | null> {
  const texts = Object.fromEntries(fields.map(f => [f.name, f.initial]));
  for (;;) {
    const result = await showDialog({
      title,
      body: new ParametersForm(fields, texts, intro),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept) {
      return null;
    }
    const { values, errors } = collectValues(fields, texts);
    if (!Object.keys(errors).length) {
      return values;
    }
  }
}

/**
 * "Run as TaskFlow task…": read the notebook's parameters, ask for their
 * values, and start the one-task workflow that runs it. Null when cancelled
 * or refused (the error is shown).
 */
export async function runNotebook(
  path: string,
  service: TaskflowService
): Promise<ExecutionSummary | null> {
  let fields: ParamField[];
  try {
    fields = fieldsFromNotebook(
      await api.getNotebookParameters(path, service.settings)
    );
  } catch (err) {
    await showErrorMessage(
      `Cannot read the parameters of ${path}`,
      describeError(err)
    );
    return null;
  }
  const definition = notebookWorkflow(path, {});
  const values = await askParameters(
    `Run ${path} as a TaskFlow task`,
    `Runs the notebook in a fresh kernel as workflow ${definition.id}: the values ` +
      'are injected after its parameters cell, and the executed copy opens from ' +
      'the execution view.',
    fields
  );
  if (!values) {
    return null;
  }
  return submit(`Cannot run ${path}`, () =>
    api.createWorkflow(notebookWorkflow(path, values), service.settings)
  );
}

/** "Run with parameters…": the declared parameters' form, then a new execution. */
export async function runWithParameters(
  workflow: Workflow,
  service: TaskflowService
): Promise<ExecutionSummary | null> {
  const values = await askParameters(
    `Run ${workflow.name || workflow.id} with parameters`,
    'Values override the workflow’s declared defaults for this execution.',
    fieldsFromWorkflow(workflow.parameters ?? {})
  );
  if (!values) {
    return null;
  }
  return submit(`Cannot run ${workflow.id}`, () =>
    api.runWorkflow(workflow.id, values, service.settings)
  );
}

async function submit(
  title: string,
  post: () => Promise<ExecutionSummary>
): Promise<ExecutionSummary | null> {
  try {
    return await post();
  } catch (err) {
    await showErrorMessage(title, describeError(err));
    return null;
  }
}
