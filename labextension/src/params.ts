/**
 * The parameter forms' logic, without DOM: which field each parameter gets,
 * what its text means, and the one-task workflow that runs a notebook.
 *
 * Two sources describe parameters. A notebook's `parameters` cell, read by
 * GET /taskflow/notebooks/parameters, gives papermill's description: a type
 * name (the annotation, or null) and the default as Python *source text*. A
 * workflow's `parameters` give JSON defaults. Both become the same fields:
 * `int`, `float`, `bool` (a checkbox), `str`, or `raw` (a JSON or Python
 * literal). Values always travel as JSON, so a default in Python source is
 * read by a small parser of Python literals (numbers, strings, True / False /
 * None, lists, tuples, dicts). A notebook default that is none of those (an
 * expression such as `date.today()`) gets a raw field: left as it is, it is
 * not sent (the notebook evaluates its own default); edited into text that
 * still is no literal, it is sent as a string.
 */

import type { NotebookParameter, WorkflowDefinition } from './model';

export type FieldKind = 'int' | 'float' | 'bool' | 'str' | 'raw';

export interface ParamField {
  name: string;
  kind: FieldKind;
  /** The text the input starts with; for a `bool` field `true` or `false`. */
  initial: string;
  /** The declared type as the source names it (`int`, `list`, `number`…). */
  typeLabel: string;
  help: string;
  /**
   * A `raw` field of a notebook: text that is neither JSON nor a Python
   * literal is sent as a string instead of being refused.
   */
  lenient: boolean;
}

export type FieldValue =
  { ok: true; value: unknown; note?: string } | { ok: false; error: string };

export type Literal = { ok: true; value: unknown } | { ok: false };

const INT = /^[+-]?\d+(_\d+)*$/;
const FLOAT =
  /^[+-]?((\d+(_\d+)*)?\.\d+(_\d+)*|\d+(_\d+)*\.?)([eE][+-]?\d+(_\d+)*)?$/;
const DECLARED: Record<string, FieldKind> = {
  int: 'int',
  float: 'float',
  bool: 'bool',
  str: 'str'
};

/** The fields of a notebook's parameters cell, in the cell's order. */
export function fieldsFromNotebook(params: NotebookParameter[]): ParamField[] {
  return params.map(p => {
    const source = p.default.trim();
    const literal = parsePythonLiteral(source);
    const declared = p.type ? DECLARED[p.type] : undefined;
    const inferred = literal.ok ? kindOf(literal.value, source) : 'raw';
    const kind =
      declared && literal.ok && fits(declared, literal.value)
        ? declared
        : declared
          ? 'raw'
          : inferred;
    return {
      name: p.name,
      kind,
      initial: kind === 'raw' || !literal.ok ? source : textOf(literal.value),
      typeLabel: p.type ?? (kind === 'raw' ? 'literal' : kind),
      help: p.help,
      lenient: true
    };
  });
}

/** The fields of a workflow's declared parameters (JSON defaults). */
export function fieldsFromWorkflow(
  parameters: Record<string, unknown>
): ParamField[] {
  return Object.entries(parameters).map(([name, value]) => {
    const kind = kindOf(value, JSON.stringify(value) ?? '');
    return {
      name,
      kind,
      initial: kind === 'raw' ? JSON.stringify(value) : textOf(value),
      typeLabel: jsonType(value),
      help: '',
      lenient: false
    };
  });
}

/** The JSON value a field's text stands for, or why it stands for none. */
export function parseField(field: ParamField, text: string): FieldValue {
  const t = text.trim();
  switch (field.kind) {
    case 'int': {
      const n = INT.test(t) ? Number(t.replace(/_/g, '')) : NaN;
      if (!Number.isSafeInteger(n)) {
        return {
          ok: false,
          error: t
            ? INT.test(t)
              ? `${t} is too large`
              : `"${t}" is not an integer`
            : 'an integer is required'
        };
      }
      return { ok: true, value: n };
    }
    case 'float': {
      const n = FLOAT.test(t) ? Number(t.replace(/_/g, '')) : NaN;
      if (!Number.isFinite(n)) {
        return {
          ok: false,
          error: t ? `"${t}" is not a number` : 'a number is required'
        };
      }
      return { ok: true, value: n };
    }
    case 'bool':
      return { ok: true, value: t === 'true' };
    case 'str':
      // Exactly what was typed: leading spaces may matter.
      return { ok: true, value: text };
    case 'raw':
      return parseRaw(field, t);
  }
}

function parseRaw(field: ParamField, t: string): FieldValue {
  try {
    return { ok: true, value: JSON.parse(t) };
  } catch {
    // not JSON: perhaps Python
  }
  const literal = parsePythonLiteral(t);
  if (literal.ok) {
    return { ok: true, value: literal.value };
  }
  if (field.lenient && t === field.initial.trim()) {
    // An expression left as the notebook has it: not sent, so the notebook
    // evaluates its own default rather than receiving its source as a string.
    return { ok: true, value: undefined, note: "the notebook's own default" };
  }
  if (field.lenient) {
    return { ok: true, value: t, note: 'not a literal: sent as a string' };
  }
  return {
    ok: false,
    error: t
      ? `not JSON (a string needs quotes: "${t.replace(/"/g, '\\"')}")`
      : 'a JSON value is required'
  };
}

/** Every field's value, or the errors by field name (none when all parse). */
export function collectValues(
  fields: ParamField[],
  texts: Record<string, string>
): { values: Record<string, unknown>; errors: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const f of fields) {
    const parsed = parseField(f, texts[f.name] ?? f.initial);
    if (parsed.ok) {
      if (parsed.value !== undefined) {
        values[f.name] = parsed.value;
      }
    } else {
      errors[f.name] = parsed.error;
    }
  }
  return { values, errors };
}

/**
 * A workflow id from a name, as the Python side derives it
 * (`validation.derive_id`): `"notebook a/b.ipynb"` -> `"notebook_a_b_ipynb"`.
 */
export function deriveId(name: string): string {
  const slug = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return slug.slice(0, 200) || 'workflow';
}

/**
 * The one-task workflow that runs one notebook, with the id and names that
 * `%taskflow run-notebook` gives it, so both register the same workflow.
 */
export function notebookWorkflow(
  path: string,
  parameters: Record<string, unknown>,
  timeout = 3600
): WorkflowDefinition {
  const stem = (path.split('/').pop() ?? '').replace(/\.ipynb$/, '');
  const name = `notebook ${path}`;
  return {
    id: deriveId(name),
    name,
    tasks: [
      {
        name: stem || 'notebook',
        type: 'notebook',
        params: { path, parameters },
        timeout
      }
    ]
  };
}

function kindOf(value: unknown, source: string): FieldKind {
  switch (typeof value) {
    case 'boolean':
      return 'bool';
    case 'string':
      return 'str';
    case 'number':
      // 1.0 is a float in Python (and in the form), though JSON says 1.
      return Number.isInteger(value) && INT.test(source) ? 'int' : 'float';
    default:
      return 'raw';
  }
}

function fits(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case 'int':
      return Number.isSafeInteger(value);
    case 'float':
      return typeof value === 'number';
    case 'bool':
      return typeof value === 'boolean';
    case 'str':
      return typeof value === 'string';
    default:
      return true;
  }
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

function jsonType(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'array';
  }
  if (typeof value === 'number') {
    return Number.isInteger(value) ? 'integer' : 'number';
  }
  return typeof value;
}

/**
 * The JSON value of a Python literal: ints, floats, strings (quoted either
 * way, with the common escapes; `r` prefix), True / False / None, and lists,
 * tuples (as arrays) and dicts with string keys of those. Anything else
 * (names, calls, sets, bytes, an int beyond 2^53) is not a literal here.
 */
export function parsePythonLiteral(source: string): Literal {
  const p = new LiteralParser(source);
  try {
    const value = p.value();
    p.skipSpace();
    return p.atEnd() ? { ok: true, value } : { ok: false };
  } catch (err) {
    if (err instanceof NotALiteral) {
      return { ok: false };
    }
    throw err;
  }
}

class NotALiteral extends Error {}

const ESCAPES: Record<string, string> = {
  n: '\n',
  t: '\t',
  r: '\r',
  '0': '\0',
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v'
};

const HEX_WIDTH: Record<string, number | undefined> = { x: 2, u: 4, U: 8 };
const NUMBER = /[+-]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d[\d_]*)?/y;
const WORD = /[A-Za-z_]\w*/y;

/** A recursive-descent reader of one Python literal (see parsePythonLiteral). */
class LiteralParser {
  constructor(private readonly src: string) {}

  atEnd(): boolean {
    return this.pos >= this.src.length;
  }

  skipSpace(): void {
    while (!this.atEnd() && /\s/.test(this.src[this.pos])) {
      this.pos += 1;
    }
  }

  value(depth = 0): unknown {
    if (depth > 50) {
      throw new NotALiteral();
    }
    this.skipSpace();
    const c = this.src[this.pos];
    if (c === '[' || c === '(') {
      return this.sequence(c === '[' ? ']' : ')', depth);
    }
    if (c === '{') {
      return this.dict(depth);
    }
    if (c === '"' || c === "'") {
      return this.string(false);
    }
    if ((c === 'r' || c === 'R') && /["']/.test(this.src[this.pos + 1] ?? '')) {
      this.pos += 1;
      return this.string(true);
    }
    const word = this.match(WORD);
    if (word !== null) {
      const constants: Record<string, unknown> = {
        True: true,
        False: false,
        None: null
      };
      if (word in constants) {
        return constants[word];
      }
      throw new NotALiteral();
    }
    return this.number();
  }

  private number(): number {
    const text = this.match(NUMBER);
    if (text === null || !(INT.test(text) || FLOAT.test(text))) {
      throw new NotALiteral();
    }
    const n = Number(text.replace(/_/g, ''));
    if (INT.test(text) ? !Number.isSafeInteger(n) : !Number.isFinite(n)) {
      throw new NotALiteral();
    }
    return n;
  }

  private sequence(close: string, depth: number): unknown[] {
    this.pos += 1;
    const items: unknown[] = [];
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === close) {
        this.pos += 1;
        return items;
      }
      items.push(this.value(depth + 1));
      if (!this.separator(close)) {
        throw new NotALiteral();
      }
    }
  }

  private dict(depth: number): Record<string, unknown> {
    this.pos += 1;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === '}') {
        this.pos += 1;
        return out;
      }
      const key = this.value(depth + 1);
      this.skipSpace();
      if (typeof key !== 'string' || this.src[this.pos] !== ':') {
        throw new NotALiteral(); // JSON objects have string keys only
      }
      this.pos += 1;
      out[key] = this.value(depth + 1);
      if (!this.separator('}')) {
        throw new NotALiteral();
      }
    }
  }

  /** After an item: a comma (consumed), or the closing bracket (left). */
  private separator(close: string): boolean {
    this.skipSpace();
    if (this.src[this.pos] === ',') {
      this.pos += 1;
      return true;
    }
    return this.src[this.pos] === close;
  }

  private string(raw: boolean): string {
    const quote = this.src[this.pos];
    const triple = this.src.startsWith(quote.repeat(3), this.pos);
    const end = triple ? quote.repeat(3) : quote;
    this.pos += end.length;
    let out = '';
    while (!this.src.startsWith(end, this.pos)) {
      const c = this.src[this.pos];
      if (c === undefined || (c === '\n' && !triple)) {
        throw new NotALiteral();
      }
      if (c === '\\' && !raw) {
        out += this.escape();
        continue;
      }
      if (c === '\\' && raw && this.src[this.pos + 1] !== undefined) {
        // r'\'' keeps both characters; the quote does not end the string
        out += c + this.src[this.pos + 1];
        this.pos += 2;
        continue;
      }
      out += c;
      this.pos += 1;
    }
    this.pos += end.length;
    return out;
  }

  private escape(): string {
    const c = this.src[this.pos + 1];
    this.pos += 2;
    if (c === undefined) {
      throw new NotALiteral();
    }
    if (c in ESCAPES) {
      return ESCAPES[c];
    }
    if (c === '\n') {
      return '';
    }
    const width = HEX_WIDTH[c];
    if (width !== undefined) {
      const hex = this.src.slice(this.pos, this.pos + width);
      if (!new RegExp(`^[0-9a-fA-F]{${width}}$`).test(hex)) {
        throw new NotALiteral();
      }
      this.pos += width;
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) {
        throw new NotALiteral();
      }
      return String.fromCodePoint(code);
    }
    return `\\${c}`; // Python keeps an unknown escape as written
  }

  private match(re: RegExp): string | null {
    re.lastIndex = this.pos;
    const m = re.exec(this.src);
    if (!m || !m[0]) {
      return null;
    }
    this.pos += m[0].length;
    return m[0];
  }

  private pos = 0;
}
