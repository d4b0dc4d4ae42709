/**
 * A few DOM helpers shared by the panel and the execution view: element
 * creation, status badges and human-readable times.
 */

import {
  COUNTED_STATUSES,
  Execution,
  formatDuration,
  nextRunText,
  TaskCounts,
  triggerBadgeInfo
} from './model';

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function s(
  tag: string,
  attrs: Record<string, string | number | undefined> = {},
  ...children: Child[]
): SVGElement {
  const el = document.createElementNS(SVG_NS, tag) as SVGElement;
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(
  el: Element,
  attrs: Record<string, string | number | boolean | undefined>
): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) {
      continue;
    }
    el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

/** A coloured status pill; `data-status` lets tests and CSS find it. */
export function badge(status: string): HTMLElement {
  return h(
    'span',
    {
      class: `jp-Taskflow-badge jp-Taskflow-status-${status}`,
      'data-status': status,
      title: status
    },
    status
  );
}

export { formatDuration };

export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const d = new Date(iso);
  if (isNaN(d.getTime())) {
    return iso;
  }
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

/** Seconds between two ISO times (end defaults to now). */
export function elapsed(
  start: string | null | undefined,
  end: string | null | undefined
): number | null {
  if (!start) {
    return null;
  }
  const a = new Date(start).getTime();
  const b = end ? new Date(end).getTime() : Date.now();
  return isNaN(a) || isNaN(b) ? null : Math.max(0, (b - a) / 1000);
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    return err.message;
  }
  return String(err);
}

/**
 * The execution's tasks as one bar, a segment per status in proportion to
 * its count (green completed, grey skipped, red failed, ...), so one failure
 * does not hide how much succeeded.
 */
export function statusBar(counts: TaskCounts, label: string): HTMLElement {
  const bar = h('div', {
    class: 'jp-TaskflowStatusBar',
    role: 'img',
    'aria-label': label,
    title: label,
    'data-total': counts.total
  });
  for (const status of COUNTED_STATUSES) {
    if (counts[status]) {
      bar.appendChild(
        h('span', {
          class: `jp-TaskflowStatusBar-segment jp-Taskflow-status-${status}`,
          'data-segment': status,
          'data-count': counts[status],
          style: `flex-grow: ${counts[status]}`
        })
      );
    }
  }
  return bar;
}

/**
 * Elapsed time that ticks: a span that `tickElapsed` rewrites from its
 * `data-start` while the thing it times runs.
 */
export function elapsedSpan(start: string | null | undefined): HTMLElement {
  return h(
    'span',
    { class: 'jp-Taskflow-elapsed', 'data-start': start ?? undefined },
    formatDuration(elapsed(start, null))
  );
}

/**
 * How long an execution ran: ` · ` and a ticking elapsed time while it runs,
 * its duration once `finished`; nothing before it started.
 */
export function runTime(
  exec: Pick<Execution, 'startTime' | 'endTime'>,
  finished: boolean
): Child[] {
  if (!exec.startTime) {
    return [null];
  }
  return [
    ' · ',
    finished
      ? formatDuration(elapsed(exec.startTime, exec.endTime ?? exec.startTime))
      : elapsedSpan(exec.startTime)
  ];
}

/** Rewrite every ticking elapsed time under `root`. */
export function tickElapsed(root: Element): void {
  root
    .querySelectorAll<HTMLElement>('.jp-Taskflow-elapsed[data-start]')
    .forEach(el => {
      el.textContent = formatDuration(elapsed(el.dataset.start, null));
    });
}

/**
 * "scheduled" (the slot in its title) or "retry" beside an execution's
 * status; nothing for one started over the API or from a notebook.
 */
export function triggerBadge(
  exec: Pick<Execution, 'trigger' | 'scheduledFor' | 'parentId'>
): HTMLElement | null {
  const info = triggerBadgeInfo(exec, formatTime);
  if (!info) {
    return null;
  }
  return h(
    'span',
    {
      class: `jp-Taskflow-trigger jp-mod-${info.trigger}`,
      'data-trigger': info.trigger,
      title: info.title
    },
    info.text
  );
}

/**
 * "next run 14:05:00 · in 3 min" that `tickNextRun` keeps counting down;
 * its title is the UTC instant.
 */
export function nextRunSpan(iso: string): HTMLElement {
  return h(
    'span',
    { class: 'jp-Taskflow-nextRun', 'data-next-run': iso, title: iso },
    nextRunText(iso)
  );
}

/** Rewrite every next-run countdown under `root`. */
export function tickNextRun(root: Element): void {
  root
    .querySelectorAll<HTMLElement>('.jp-Taskflow-nextRun[data-next-run]')
    .forEach(el => {
      el.textContent = nextRunText(el.dataset.nextRun);
    });
}

/**
 * Small inline icons drawn in the text colour (the sidebar's fonts have no
 * glyph for ⏸ or ⏱): `pause`, `resume` (an outlined play triangle, not the
 * filled Run one) and `clock`.
 */
export function icon(kind: 'pause' | 'resume' | 'clock'): SVGElement {
  const shapes: Record<typeof kind, SVGElement[]> = {
    pause: [
      s('rect', { x: 3, y: 2, width: 3.5, height: 12, rx: 1 }),
      s('rect', { x: 9.5, y: 2, width: 3.5, height: 12, rx: 1 })
    ],
    resume: [
      s('path', {
        d: 'M4 2.5 L13 8 L4 13.5 Z',
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': 1.6,
        'stroke-linejoin': 'round'
      })
    ],
    clock: [
      s('circle', {
        cx: 8,
        cy: 8,
        r: 6.2,
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': 1.5
      }),
      s('path', {
        d: 'M8 4.5 V8 L10.5 9.5',
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': 1.5,
        'stroke-linecap': 'round'
      })
    ]
  };
  return s(
    'svg',
    {
      class: `jp-Taskflow-icon jp-mod-${kind}`,
      viewBox: '0 0 16 16',
      width: 12,
      height: 12,
      fill: 'currentColor',
      'aria-hidden': 'true'
    },
    ...shapes[kind]
  );
}

/** "exec_3f2a9c…" -> "exec_3f2a": enough to tell tabs apart. */
export function shortId(id: string): string {
  const m = /^([a-z]+_)?([0-9a-f]+)$/i.exec(id);
  return m ? `${m[1] ?? ''}${m[2].slice(0, 4)}` : id.slice(0, 12);
}

/** The event handler properties `morph` carries over (the views set no others). */
const HANDLERS = ['onclick', 'onkeydown', 'onchange', 'oninput'] as const;

function sameKind(a: Node, b: Node): boolean {
  return (
    a.nodeType === b.nodeType &&
    (a.nodeType !== Node.ELEMENT_NODE ||
      (a as Element).tagName === (b as Element).tagName)
  );
}

/**
 * Make `el` look like `next` (attributes, handler properties, children),
 * reusing its elements where the tags match. A view that re-renders from
 * scratch many times a second (a run of 5,000 tasks sends hundreds of events
 * a second) then keeps the elements under the pointer: a click whose press
 * and release land on an element replaced in between would be lost.
 * Not for form fields (their live value is a property, not an attribute).
 */
export function morph(el: Element, next: Element): void {
  for (const { name } of [...el.attributes]) {
    if (!next.hasAttribute(name)) {
      el.removeAttribute(name);
    }
  }
  for (const { name, value } of [...next.attributes]) {
    if (el.getAttribute(name) !== value) {
      el.setAttribute(name, value);
    }
  }
  for (const k of HANDLERS) {
    const handler = (next as HTMLElement)[k];
    if ((el as HTMLElement)[k] !== handler) {
      (el as HTMLElement)[k] = handler as never;
    }
  }
  patchChildren(el, [...next.childNodes]);
}

/** Make `el`'s children look like `children`, as `morph` does. */
export function patchChildren(el: Element, children: Node[]): void {
  const old = [...el.childNodes];
  children.forEach((c, i) => {
    const o = old[i];
    if (!o) {
      el.appendChild(c);
    } else if (!sameKind(o, c)) {
      el.replaceChild(c, o);
    } else if (o.nodeType === Node.ELEMENT_NODE) {
      morph(o as Element, c as Element);
    } else if (o.textContent !== c.textContent) {
      o.textContent = c.textContent;
    }
  });
  for (let i = children.length; i < old.length; i++) {
    old[i].remove();
  }
}

/**
 * Make `el`'s children exactly `nodes`, in that order, inserting only the
 * ones not already in place: a node that stays keeps its layout (a scrolled
 * window of rows lays out the rows that came in, not all of them again).
 */
export function placeChildren(el: Element, nodes: Node[]): void {
  const wanted = new Set(nodes);
  for (const child of [...el.childNodes]) {
    if (!wanted.has(child)) {
      child.remove();
    }
  }
  let at = el.firstChild;
  for (const node of nodes) {
    if (node === at) {
      at = at.nextSibling;
    } else {
      el.insertBefore(node, at);
    }
  }
}
