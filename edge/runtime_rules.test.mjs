// The source rules of cloudfront-js-2.0 (runtime_rules.mjs): the deployed file keeps to them,
// the file as it was before #22 does not, and each rule refuses what it names. node --test edge/

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { functionSource } from './harness.mjs';
import { SIZE_LIMIT_BYTES, runtimeViolations } from './runtime_rules.mjs';

const BEFORE_ISSUE_22 = readFileSync(new URL('./fixtures/viewer_request.before-issue-22.js', import.meta.url), 'utf8');

// A function file whose handler's body is `body` (and `after` below it, at the top level).
function functionWith(body, after = '') {
  return [
    "import cf from 'cloudfront';",
    'const kvs = cf.kvs();',
    'async function handler(event) {',
    body,
    '}',
    after,
  ].join('\n');
}

function rules(source) {
  return runtimeViolations(source).map((v) => `${v.rule}@${v.line}`);
}

describe('the deployed function', () => {
  it('keeps to every rule', () => {
    assert.deepEqual(runtimeViolations(functionSource()), []);
  });

  it('as it was before #22 is refused for the await inside parsePointer(...)\'s arguments, and only that', () => {
    const violations = runtimeViolations(BEFORE_ISSUE_22);
    assert.deepEqual(violations.map((v) => `${v.rule}@${v.line}`), ['await@29']);
    assert.match(BEFORE_ISSUE_22.split('\n')[28], /parsePointer\(await kvs\.get\(POINTER_KEY\)\)/);
    assert.match(violations[0].message, /arguments of a call/);
  });
});

describe('await is refused', () => {
  const cases = {
    "in a call's arguments": "return JSON.parse(await kvs.get('k'));",
    "in new's arguments": "return new String(await kvs.get('k'));",
    'in an array inside the arguments': "return f(1, [await kvs.get('k')]);",
    'in a template inside the arguments': 'return f(`${await kvs.get(`k`)}`);',
    'in a call nested in an assignment': "const p = parse(await kvs.get('k'));",
    'in a closure that is not async': "function inner() { return await kvs.get('k'); }",
  };
  for (const [name, body] of Object.entries(cases)) {
    it(name, () => {
      assert.deepEqual(rules(functionWith(body)), ['await@4']);
    });
  }

  it('at the top level', () => {
    assert.deepEqual(rules(functionWith('return 1;', "const x = await kvs.get('k');")), ['await@6']);
  });
});

describe('async is refused anywhere but a top-level function declaration', () => {
  const cases = {
    'an async arrow function': 'const g = async () => 1;',
    'an async function passed as an argument': 'return [1].map(async function (x) { return x; });',
    'an async arrow passed as an argument': 'return [1].map(async (x) => x);',
    'a nested async function declaration': 'async function inner() { return 1; }',
    'an async method': 'const o = { async m() { return 1; } };',
  };
  for (const [name, body] of Object.entries(cases)) {
    it(name, () => {
      assert.deepEqual(rules(functionWith(body)), ['async@4']);
    });
  }
});

describe('what the runtime does not have is refused', () => {
  const cases = {
    'eval (dynamic code evaluation)': ["return eval('1');", 'global@4'],
    'the Function constructor': ["return new Function('return 1')();", 'global@4'],
    'timers': ['setTimeout(function () {}, 1);', 'global@4'],
    'require': ["return require('fs');", 'global@4'],
    'process': ['return process.env.X;', 'global@4'],
    'network': ["return fetch('https://example.com');", 'global@4'],
    'for ... of': ["for (const k of ['a']) { k; }", 'syntax@4'],
    'a class': ['class A {}', 'syntax@4'],
    'a generator': ['const g = function* () {};', 'syntax@4'],
    'dynamic import()': ["return import('crypto');", 'import@4'],
  };
  for (const [name, [body, rule]] of Object.entries(cases)) {
    it(name, () => {
      assert.deepEqual(rules(functionWith(body)), [rule]);
    });
  }

  it('export', () => {
    assert.deepEqual(rules(functionWith('return 1;', 'export default handler;')), ['syntax@6']);
  });

  it('a second import, of any module', () => {
    const source = functionWith('return 1;').replace('\n', "\nimport crypto from 'crypto';\n");
    assert.deepEqual(rules(source), ['import@2']);
  });

  it('a first line other than the cloudfront import', () => {
    assert.deepEqual(rules(functionWith('return 1;').replace("import cf from 'cloudfront';", '// no import')), ['import@1']);
  });

  it('a file without a top-level handler', () => {
    assert.deepEqual(rules(functionWith('return 1;').replace('function handler', 'function main')), ['handler@0']);
  });

  it('a file over the 10 KB size quota (and not one at it)', () => {
    const base = functionWith('return 1;');
    const pad = (bytes) => `${base}\n//${'x'.repeat(bytes - Buffer.byteLength(base) - 3)}`;
    assert.equal(Buffer.byteLength(pad(SIZE_LIMIT_BYTES)), SIZE_LIMIT_BYTES);
    assert.deepEqual(rules(pad(SIZE_LIMIT_BYTES)), []);
    assert.deepEqual(rules(pad(SIZE_LIMIT_BYTES + 1)), ['size@0']);
  });
});

describe('what the rules allow', () => {
  it("the documented form: the awaited value assigned first, then passed on", () => {
    assert.deepEqual(rules(functionWith("const text = await kvs.get('k');\nreturn JSON.parse(text);")), []);
  });

  it('closures and arrow functions that are not async', () => {
    assert.deepEqual(rules(functionWith("const f = (x) => x + 1;\nreturn 'a'.replace(/a/g, function (run) { return f(run); });")), []);
  });

  it('forbidden words in comments, strings, templates, regular expressions and property names', () => {
    const body = [
      "// eval(x); require('fs'); f(await g); async () => 1",
      "/* setTimeout(await x) */ const s = 'process.env' + \"new Function(await y)\" + `for (a of b)`;",
      "const r = /require\\(await [)(]/g; const t = event.process + event.eval;",
      'return s + r + t;',
    ].join('\n');
    assert.deepEqual(rules(functionWith(body)), []);
  });
});
