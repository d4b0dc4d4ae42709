/**
 * One function per PyTaskFlow REST route (SPEC section 3). Every request goes
 * through `ServerConnection.makeRequest` with URLs joined onto the server's
 * `baseUrl`, so the token, the XSRF cookie/header and any base_url prefix are
 * handled exactly as for JupyterLab's own services.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { Execution, TaskLogAttempt, WorkflowDefinition } from './model';

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

async function request<T>(
  path: string[],
  init: RequestInit = {},
  query: Record<string, string | number | undefined> = {},
  settings?: ServerConnection.ISettings
): Promise<T> {
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
  return body as T;
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

/** Lists accept a bare JSON array (SPEC) or a paged `{items: [...]}` body. */
function asList<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) {
    return body as T[];
  }
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    for (const k of [key, 'items', 'results']) {
      if (Array.isArray(b[k])) {
        return b[k] as T[];
      }
    }
  }
  return [];
}

/** GET /workflows */
export async function listWorkflows(
  settings?: ServerConnection.ISettings
): Promise<WorkflowDefinition[]> {
  const body = await request<unknown>(['workflows'], {}, {}, settings);
  return asList<WorkflowDefinition>(body, 'workflows');
}

/** GET /workflows/{id}[?revision=N] */
export function getWorkflow(
  id: string,
  revision?: number,
  settings?: ServerConnection.ISettings
): Promise<WorkflowDefinition> {
  return request(['workflows', id], {}, { revision }, settings);
}

/** POST /workflows: register a definition and start an execution. */
export function createWorkflow(
  definition: Omit<WorkflowDefinition, 'id'> & { id?: string },
  settings?: ServerConnection.ISettings
): Promise<Execution> {
  return request(['workflows'], json('POST', definition), {}, settings);
}

/** DELETE /workflows/{id} */
export async function deleteWorkflow(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<void> {
  await request(['workflows', id], json('DELETE'), {}, settings);
}

/** POST /workflows/{id}/executions: run a registered workflow. */
export function runWorkflow(
  id: string,
  params?: Record<string, unknown>,
  settings?: ServerConnection.ISettings
): Promise<Execution> {
  return request(
    ['workflows', id, 'executions'],
    json('POST', params ? { params } : {}),
    {},
    settings
  );
}

/** GET /executions[?workflow_id=&status=&limit=] */
export async function listExecutions(
  filter: { workflowId?: string; status?: string; limit?: number } = {},
  settings?: ServerConnection.ISettings
): Promise<Execution[]> {
  const body = await request<unknown>(
    ['executions'],
    {},
    {
      workflow_id: filter.workflowId,
      status: filter.status,
      limit: filter.limit
    },
    settings
  );
  return asList<Execution>(body, 'executions');
}

/** GET /executions/{id}: one execution with full task detail. */
export function getExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<Execution> {
  return request(['executions', id], {}, {}, settings);
}

/** POST /executions/{id}/cancel */
export function cancelExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<Execution> {
  return request(['executions', id, 'cancel'], json('POST'), {}, settings);
}

/** POST /executions/{id}/retry: a new execution resuming from failure. */
export function retryExecution(
  id: string,
  settings?: ServerConnection.ISettings
): Promise<Execution> {
  return request(['executions', id, 'retry'], json('POST'), {}, settings);
}

/** GET /executions/{id}/tasks/{name}/logs */
export async function getTaskLogs(
  executionId: string,
  task: string,
  settings?: ServerConnection.ISettings
): Promise<TaskLogAttempt[]> {
  const body = await request<unknown>(
    ['executions', executionId, 'tasks', task, 'logs'],
    {},
    {},
    settings
  );
  return normalizeLogs(body);
}

/**
 * Logs as a list of attempts, whatever reasonable shape the server uses:
 * `[{attempt, stdout, stderr}]`, `{attempts: [...]}`, `{logs: [...]}`,
 * `{stdout, stderr}` or plain text.
 */
export function normalizeLogs(body: unknown): TaskLogAttempt[] {
  if (typeof body === 'string') {
    return [{ stdout: body }];
  }
  const list = asList<TaskLogAttempt>(body, 'attempts');
  if (list.length) {
    return list;
  }
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (Array.isArray(b.logs)) {
      return b.logs as TaskLogAttempt[];
    }
    if ('stdout' in b || 'stderr' in b) {
      return [b as TaskLogAttempt];
    }
  }
  return [];
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
