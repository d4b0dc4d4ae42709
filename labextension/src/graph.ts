/**
 * The SVG frame of a DAG drawing, shared by the execution view (nodes by
 * status) and the workflow page (a revision's definition): the arrowhead
 * marker and the edges along the layout's routed points. Callers add the
 * nodes, which is where the two views differ.
 */

import { DagLayout, edgePath } from './dag';
import { s } from './dom';

let markers = 0;

/** A marker id unique in the page: a url(#id) into a hidden tab's SVG draws nothing. */
export function newMarkerId(): string {
  return `jp-TaskflowDag-arrow-${++markers}`;
}

/** The `<svg>` with its marker and the layout's edges, no nodes yet. */
export function dagSvg(
  layout: DagLayout,
  markerId: string,
  label = 'Workflow graph'
): SVGElement {
  const svg = s('svg', {
    class: 'jp-TaskflowDag',
    width: layout.width,
    height: layout.height,
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    role: 'img',
    'aria-label': label
  });
  svg.appendChild(
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: markerId,
          viewBox: '0 0 10 10',
          refX: 10,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto'
        },
        s('path', {
          d: 'M0,0 L10,5 L0,10 z',
          class: 'jp-TaskflowDag-arrowhead'
        })
      )
    )
  );
  for (const e of layout.edges) {
    svg.appendChild(
      s('path', {
        class: 'jp-TaskflowDag-edge',
        'data-from': e.from,
        'data-to': e.to,
        d: edgePath(e.points),
        'marker-end': `url(#${markerId})`
      })
    );
  }
  return svg;
}

/** "a_very_long_task_na…" */
export function truncate(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
