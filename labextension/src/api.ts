/**
 * One function per PyTaskFlow REST route (SPEC section 3). Every request goes
 * through `ServerConnection.makeRequest` with URLs joined onto the server's
 * `baseUrl`, so the token, the XSRF cookie/header and any base_url prefix are
 * handled exactly as for JupyterLab's own services.
 *
 * Each function names its route's `operationId`: `request<'getExecution'>`
 * answers the JSON that `generated/openapi.ts` (generated from the served
 * OpenAPI document) says that route's 200 carries, so a route whose answer
 * changes shape no longer compiles against the alias it is declared with.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { operations } from './generated/openapi';
import type {
  Comparison,
  ExecutionDetail,
  ExecutionRequest,
  ExecutionSummary,
  InstancePage,
  NotebookParameter,
  TaskLogs,
  Workflow,
  WorkflowDefinition,
  WorkflowRevision
} from './model';

type Operation = keyof operations;

/** The JSON of an operation's 200 answer; void for a 204. */
type Ok<Op extends Operation> = operations[Op]['responses'] extends {
  200: { content: { 'application/json': infer T } };
}
  ? T
  : void;

/** The query parameters of an operation. */
type Query<Op extends Operation> = NonNullable<
  operations[Op]['parameters']['query']
>;

/** An error response of the TaskFlow API, with its JSON body when present. */
export class TaskflowApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown
  ) {
    super(message);
  }
}

function settingsOrDefault(
  settings?: ServerConnection.ISettings
): ServerConnection.ISettings {
  return settings ?? ServerConnection.makeSettings();
}

async function request<Op extends Operation>(
  path: string[],
  init: RequestInit = {},
  query: Record<string, string | number | undefined> = {},
  settings?: ServerConnection.ISettings
): Promise<Ok<Op>> {
  return (await send<Op>(path, init, query, settings)).body;
}

/** The answer's JSON and its headers (for routes that page by a header). */
async function send<Op extends Operation>(
  path: string[],
  init: RequestInit = {},
  query: Record<string, string | number | undefined> = {},
  settings?: ServerConnection.ISettings
): Promise<{ body: Ok<Op>; headers: Headers }> {
  const s = settingsOrDefault(settings);
  const url =
    URLExt.join(s.baseUrl, ...path.map(encodeURIComponent)) +
    URLExt.objectToQueryString(
      Object.fromEntries(
        Object.entries(query).filter(([, v]) => v !== undefined)
      ) as Record<string, string>
    );
  let response: Response;
  try {
    // 'no-cache' (always revalidate) rather than the default 'no-store', for
    // which makeRequest appends a bare `?<timestamp>` cache buster that a
    // server validating its query parameters may reject.
    response = await ServerConnection.makeRequest(
      url,
      { cache: 'no-cache', ...init },
      s
    );
  } catch (err) {
    throw new ServerConnection.NetworkError(err as TypeError);
  }
  const text = await response.text();
  let body: unknown = text;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text (e.g. a proxy's HTML error page)
    }
  }
  if (!response.ok) {
    throw new TaskflowApiError(
      response.status,
      errorMessage(body, response.status),
      body
    );
  }
  return { body: body as Ok<Op>, headers: response.headers };
}

/** The human message of an error body (jupyter_server's `message`/`reason`). */
export function errorMessage(body: unknown, status: number): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    const parts = [b.message, b.reason].filter(
      p => typeof p === 'string' && p
    ) as string[];
    if (Array.isArray(b.errors) && b.errors.length) {
      parts.push(
        ...b.errors.map(e => (typeof e === 'string' ? e : JSON.stringify(e)))
      );
    }
    if (parts.length) {
      return [...new Set(parts)].join(': ');
    }
  }
  return `HTTP ${status}`;
}

function json(method: string, body?: unknown): RequestInit {
  return body === undefined
    ? { method }
    : {
        method,
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' }
      };
}

/** GET /workflows */
export function listWorkflows(
  settings?: ServerConnection.ISettings
): Promise<Workflow[]> {
  return request<'listWorkflows'>(['workflows'], {}, {}, settings);
}

/** GET /workflows/{id}[?revision=N] */
export function getWorkflow(
  id: string,
  revision?: number,
  settings?: ServerConnection.ISettings
): Promise<Workflow> {
  return request<'getWorkflow'>(['workflows', id], {}, { revision }, settings);
}

/** POST /workflows: register a definition and start an execution. */
export function createWorkflow(
  definition: WorkflowDefinition,
  settings?: ServerConnection.ISettings
): Promise<ExecutionSummary> {
  return request<'submitWorkflow'>(
    ['workflows'],
    json('POST', definition),
    {},
    settings
  );
}

/** DELETE /workflows/{id} */
export function deleteWorkflow(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<void> {
  return request<'deleteWorkflow'>(
    ['workflows', id],
    json('DELETE'),
    {},
    settings
  );
}

/** POST /workflows/{id}/schedule/pause: the workflow, its schedule paused. */
export function pauseSchedule(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<Workflow> {
  return request<'pauseSchedule'>(
    ['workflows', id, 'schedule', 'pause'],
    json('POST', {}),
    {},
    settings
  );
}

/**
 * POST /workflows/{id}/schedule/resume: the workflow, its schedule running
 * again (the slots that fell while paused do not fire).
 */
export function resumeSchedule(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<Workflow> {
  return request<'resumeSchedule'>(
    ['workflows', id, 'schedule', 'resume'],
    json('POST', {}),
    {},
    settings
  );
}

/** POST /workflows/{id}/executions: run a registered workflow. */
export function runWorkflow(
  id: string,
  params?: ExecutionRequest['params'],
  settings?: ServerConnection.ISettings
): Promise<ExecutionSummary> {
  const body: ExecutionRequest = params ? { params } : {};
  return request<'startExecution'>(
    ['workflows', id, 'executions'],
    json('POST', body),
    {},
    settings
  );
}

/** GET /executions[?workflow_id=&status=&limit=&cursor=]: one page, newest first. */
export function listExecutions(
  filter: Query<'listExecutions'> = {},
  settings?: ServerConnection.ISettings
): Promise<ExecutionSummary[]> {
  return request<'listExecutions'>(['executions'], {}, filter, settings);
}

/** One page of executions and the cursor of the next one (null on the last). */
export interface ExecutionPage {
  executions: ExecutionSummary[];
  nextCursor: string | null;
}

/**
 * GET /executions[?workflow_id=&limit=&cursor=] with the next page's cursor
 * from `X-Next-Cursor` (the body stays an array).
 */
export async function listExecutionPage(
  filter: Query<'listExecutions'> = {},
  settings?: ServerConnection.ISettings
): Promise<ExecutionPage> {
  const { body, headers } = await send<'listExecutions'>(
    ['executions'],
    {},
    filter,
    settings
  );
  return { executions: body, nextCursor: headers.get('X-Next-Cursor') };
}

/** GET /workflows/{id}/revisions: newest first. */
export function listRevisions(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<WorkflowRevision[]> {
  return request<'listRevisions'>(
    ['workflows', id, 'revisions'],
    {},
    {},
    settings
  );
}

/**
 * GET /executions/{a}/compare/{b}: parameters and tasks side by side, what
 * differs named (400 `not_comparable` across workflows).
 */
export function compareExecutions(
  a: string,
  b: string,
  settings?: ServerConnection.ISettings
): Promise<Comparison> {
  return request<'compareExecutions'>(
    ['executions', a, 'compare', b],
    {},
    {},
    settings
  );
}

/** GET /executions/{id}: one execution with full task detail. */
export function getExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<ExecutionDetail> {
  return request<'getExecution'>(['executions', id], {}, {}, settings);
}

/** POST /executions/{id}/cancel */
export function cancelExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<ExecutionSummary> {
  return request<'cancelExecution'>(
    ['executions', id, 'cancel'],
    json('POST'),
    {},
    settings
  );
}

/** POST /executions/{id}/retry: a new execution resuming from failure. */
export function retryExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<ExecutionSummary> {
  return request<'retryExecution'>(
    ['executions', id, 'retry'],
    json('POST'),
    {},
    settings
  );
}

/** GET /executions/{id}/tasks/{name}/logs: stdout and stderr per attempt. */
export function getTaskLogs(
  executionId: string,
  task: string,
  settings?: ServerConnection.ISettings
): Promise<TaskLogs> {
  return request<'getTaskLogs'>(
    ['executions', executionId, 'tasks', task, 'logs'],
    {},
    {},
    settings
  );
}

/**
 * GET /executions/{id}/tasks/{name}/logs?map_index=I: the logs of one
 * instance of a mapped task.
 */
export function getInstanceLogs(
  executionId: string,
  task: string,
  mapIndex: number,
  settings?: ServerConnection.ISettings
): Promise<TaskLogs> {
  return request<'getTaskLogs'>(
    ['executions', executionId, 'tasks', task, 'logs'],
    {},
    { map_index: mapIndex },
    settings
  );
}

/**
 * GET /executions/{id}/tasks/{name}/instances[?limit=&cursor=&status=]: one
 * page of a mapped task's instances, by `mapIndex`.
 */
export function listInstances(
  executionId: string,
  task: string,
  query: Query<'listInstances'> = {},
  settings?: ServerConnection.ISettings
): Promise<InstancePage> {
  return request<'listInstances'>(
    ['executions', executionId, 'tasks', task, 'instances'],
    {},
    query,
    settings
  );
}

/** GET /taskflow/notebooks/parameters?path=P: a notebook's parameters cell. */
export function getNotebookParameters(
  path: string,
  settings?: ServerConnection.ISettings
): Promise<NotebookParameter[]> {
  return request<'getNotebookParameters'>(
    ['taskflow', 'notebooks', 'parameters'],
    {},
    { path },
    settings
  );
}

/**
 * The /ws URL: `ws` joined onto the server's wsUrl, with the token appended
 * when ServerConnection says so (cross-origin setups), and the filters.
 */
export function eventsUrl(
  since: number | null,
  filter: { execution?: string; workflow?: string } = {},
  settings?: ServerConnection.ISettings
): string {
  const s = settingsOrDefault(settings);
  const query: Record<string, string> = {};
  if (s.appendToken && s.token) {
    query.token = s.token;
  }
  if (since !== null) {
    query.since = String(since);
  }
  if (filter.execution) {
    query.execution = filter.execution;
  }
  if (filter.workflow) {
    query.workflow = filter.workflow;
  }
  return URLExt.join(s.wsUrl, 'ws') + URLExt.objectToQueryString(query);
}
