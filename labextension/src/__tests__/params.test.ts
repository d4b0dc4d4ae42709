import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  collectValues,
  deriveId,
  fieldsFromNotebook,
  fieldsFromWorkflow,
  notebookWorkflow,
  ParamField,
  parseField,
  parsePythonLiteral
} from '../params';

function literal(src: string): unknown {
  const r = parsePythonLiteral(src);
  assert.ok(r.ok, `${src} should be a literal`);
  return r.value;
}

describe('parsePythonLiteral', () => {
  it('reads the simple literals of a parameters cell', () => {
    assert.equal(literal('10'), 10);
    assert.equal(literal('-3'), -3);
    assert.equal(literal('1_000'), 1000);
    assert.equal(literal('0.5'), 0.5);
    assert.equal(literal('1e-3'), 0.001);
    assert.equal(literal('.5'), 0.5);
    assert.equal(literal('2.'), 2);
    assert.equal(literal('True'), true);
    assert.equal(literal('False'), false);
    assert.equal(literal('None'), null);
    assert.equal(literal('"x"'), 'x');
    assert.equal(literal("'it\\'s'"), "it's");
    assert.equal(literal('"a\\nb\\t\\u00e9\\x41"'), 'a\nb\téA');
    assert.equal(literal("r'C:\\dir'"), 'C:\\dir');
    assert.equal(literal('"""two\nlines"""'), 'two\nlines');
    assert.equal(literal('  7  '), 7);
  });

  it('reads lists, tuples and dicts of literals as JSON', () => {
    assert.deepEqual(literal('[1, "a", None, True]'), [1, 'a', null, true]);
    assert.deepEqual(literal('(1, 2,)'), [1, 2]);
    assert.deepEqual(literal('()'), []);
    assert.deepEqual(literal('{\'a\': [1.5], "b": {}}'), { a: [1.5], b: {} });
  });

  it('refuses what is not a literal', () => {
    for (const src of [
      '',
      'abc',
      'date.today()',
      'true',
      'none',
      '1 + 2',
      '[1, 2',
      '{1: 2}',
      '"unterminated',
      "'a' 'b'",
      '12345678901234567890',
      '1e999',
      '0x10',
      '{1, 2}',
      '[1 2]'
    ]) {
      assert.deepEqual(parsePythonLiteral(src), { ok: false }, src);
    }
  });
});

describe('fieldsFromNotebook', () => {
  const fields = fieldsFromNotebook([
    { name: 'n', type: 'int', default: '3', help: 'rows' },
    { name: 'label', type: null, default: '"x"', help: '' },
    { name: 'rate', type: 'float', default: '1', help: '' },
    { name: 'flag', type: 'bool', default: 'True', help: '' },
    { name: 'items', type: null, default: '[1, "a"]', help: '' },
    { name: 'when', type: null, default: 'date.today()', help: '' },
    { name: 'opt', type: 'Optional[int]', default: 'None', help: '' },
    { name: 'limit', type: 'int', default: 'None', help: '' },
    { name: 'ratio', type: null, default: '1.0', help: '' },
    { name: 'count', type: null, default: '5', help: '' }
  ]);
  const byName = Object.fromEntries(fields.map(f => [f.name, f]));

  it('types each field by its annotation, else by its default', () => {
    assert.deepEqual(
      fields.map(f => [f.name, f.kind, f.initial]),
      [
        ['n', 'int', '3'],
        ['label', 'str', 'x'],
        ['rate', 'float', '1'],
        ['flag', 'bool', 'true'],
        ['items', 'raw', '[1, "a"]'],
        ['when', 'raw', 'date.today()'],
        ['opt', 'raw', 'None'],
        // the annotation does not fit the default: a raw field, not a refused one
        ['limit', 'raw', 'None'],
        ['ratio', 'float', '1'],
        ['count', 'int', '5']
      ]
    );
    assert.equal(byName.n.help, 'rows');
    assert.equal(byName.opt.typeLabel, 'Optional[int]');
  });

  it('sends the defaults as JSON when nothing is edited', () => {
    const { values, errors } = collectValues(fields, {});
    assert.deepEqual(errors, {});
    assert.deepEqual(values, {
      n: 3,
      label: 'x',
      rate: 1,
      flag: true,
      items: [1, 'a'],
      // `when` is an expression: not sent, the notebook evaluates its own
      opt: null,
      limit: null,
      ratio: 1,
      count: 5
    });
  });

  it('sends an edited raw text that is no literal as a string', () => {
    const r = parseField(byName.when, 'yesterday');
    assert.deepEqual(r, {
      ok: true,
      value: 'yesterday',
      note: 'not a literal: sent as a string'
    });
    assert.deepEqual(parseField(byName.when, '{"a": 1}'), {
      ok: true,
      value: { a: 1 }
    });
  });
});

describe('parseField', () => {
  const field = (kind: ParamField['kind'], lenient = false): ParamField => ({
    name: 'p',
    kind,
    initial: '',
    typeLabel: kind,
    help: '',
    lenient
  });

  it('refuses a non-integer in an int field, naming it', () => {
    assert.deepEqual(parseField(field('int'), 'abc'), {
      ok: false,
      error: '"abc" is not an integer'
    });
    for (const bad of ['1.5', '1e3', '', ' ', '--1', '9007199254740993']) {
      assert.equal(parseField(field('int'), bad).ok, false, bad);
    }
    assert.deepEqual(parseField(field('int'), ' -42 '), {
      ok: true,
      value: -42
    });
    assert.deepEqual(parseField(field('int'), '1_000'), {
      ok: true,
      value: 1000
    });
  });

  it('takes numbers in a float field, not words or infinities', () => {
    assert.deepEqual(parseField(field('float'), '2.5'), {
      ok: true,
      value: 2.5
    });
    assert.deepEqual(parseField(field('float'), '3'), { ok: true, value: 3 });
    assert.deepEqual(parseField(field('float'), '-1e-2'), {
      ok: true,
      value: -0.01
    });
    for (const bad of ['abc', 'inf', 'NaN', '1e999', '', '1.2.3']) {
      assert.equal(parseField(field('float'), bad).ok, false, bad);
    }
  });

  it('keeps a str field exactly, and reads a checkbox', () => {
    assert.deepEqual(parseField(field('str'), ' a b '), {
      ok: true,
      value: ' a b '
    });
    assert.deepEqual(parseField(field('bool'), 'true'), {
      ok: true,
      value: true
    });
    assert.deepEqual(parseField(field('bool'), 'false'), {
      ok: true,
      value: false
    });
  });

  it('reads a raw field as JSON, then as a Python literal', () => {
    assert.deepEqual(parseField(field('raw'), '{"a": [1, null]}'), {
      ok: true,
      value: { a: [1, null] }
    });
    assert.deepEqual(parseField(field('raw'), "{'a': None}"), {
      ok: true,
      value: { a: null }
    });
    const refused = parseField(field('raw'), 'abc');
    assert.equal(refused.ok, false);
    assert.match(!refused.ok ? refused.error : '', /"abc"/);
  });
});

describe('fieldsFromWorkflow', () => {
  const fields = fieldsFromWorkflow({
    limit: 5,
    ratio: 0.25,
    dry: false,
    region: 'eu',
    tags: ['a'],
    extra: null
  });

  it('types each field by its JSON default', () => {
    assert.deepEqual(
      fields.map(f => [f.name, f.kind, f.initial, f.typeLabel]),
      [
        ['limit', 'int', '5', 'integer'],
        ['ratio', 'float', '0.25', 'number'],
        ['dry', 'bool', 'false', 'boolean'],
        ['region', 'str', 'eu', 'string'],
        ['tags', 'raw', '["a"]', 'array'],
        ['extra', 'raw', 'null', 'null']
      ]
    );
  });

  it('collects the edited values, or the errors by name', () => {
    const ok = collectValues(fields, { limit: '7', dry: 'true', tags: '[]' });
    assert.deepEqual(ok, {
      values: {
        limit: 7,
        ratio: 0.25,
        dry: true,
        region: 'eu',
        tags: [],
        extra: null
      },
      errors: {}
    });
    const bad = collectValues(fields, { limit: 'abc', extra: 'plain' });
    assert.deepEqual(Object.keys(bad.errors), ['limit', 'extra']);
    assert.equal(bad.errors.limit, '"abc" is not an integer');
  });
});

describe('notebookWorkflow', () => {
  it('is the one-task workflow %taskflow run-notebook registers', () => {
    assert.equal(
      deriveId('notebook reports/Q1 report.ipynb'),
      'notebook_reports_q1_report_ipynb'
    );
    assert.deepEqual(notebookWorkflow('reports/daily.ipynb', { n: 5 }), {
      id: 'notebook_reports_daily_ipynb',
      name: 'notebook reports/daily.ipynb',
      tasks: [
        {
          name: 'daily',
          type: 'notebook',
          params: { path: 'reports/daily.ipynb', parameters: { n: 5 } },
          timeout: 3600
        }
      ]
    });
  });
});
