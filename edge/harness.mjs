// Runs edge/viewer_request.js as CloudFront would, with a stand-in for the `cloudfront` module.
//
// The file is read as text and evaluated unchanged except for its first line,
// `import cf from 'cloudfront';`, which becomes a binding to the stand-in (on the same line, so
// stack traces keep their line numbers). It runs in its own V8 context, in strict mode as
// CloudFront Functions do, with no `require`, `process`, timers or `console`: code that leans on
// Node rather than on the documented runtime fails here too. Tests and the local sites server
// (playing CloudFront's part in the embedded default) can both load it through `loadFunction`.

import { readFileSync } from 'node:fs';
import vm from 'node:vm';

export const FUNCTION_URL = new URL('./viewer_request.js', import.meta.url);
export const IMPORT_LINE = "import cf from 'cloudfront';";

export function functionSource(url = FUNCTION_URL) {
  return readFileSync(url, 'utf8');
}

/**
 * The function's `handler`, bound to `cloudfront` (an object with `kvs()`), as an async
 * function from event to result; events and results are plain JSON-shaped objects.
 */
export function loadFunction(cloudfront, url = FUNCTION_URL) {
  const lines = functionSource(url).split('\n');
  if (lines[0] !== IMPORT_LINE || lines.indexOf(IMPORT_LINE, 1) !== -1) {
    throw new Error(`${url}: the first line, and only there, must be ${IMPORT_LINE}`);
  }
  lines[0] = "'use strict'; const cf = __cloudfront__;";
  const context = vm.createContext({ __cloudfront__: cloudfront });
  const handler = vm.runInContext(`${lines.join('\n')}\n;handler`, context, {
    filename: url.pathname,
  });
  if (typeof handler !== 'function') {
    throw new Error(`${url}: no top-level handler function`);
  }
  // Objects cross between V8 contexts; a JSON round trip gives the caller plain ones.
  return async (event) => plain(await handler(plain(event)));
}

function plain(value) {
  return JSON.parse(JSON.stringify(value));
}

/**
 * A stand-in for `import cf from 'cloudfront'` whose key value store holds `entries`
 * (key -> string value, or an Error that get() rejects with). As the documented get() does, a
 * key that is not in the store rejects. `calls` records every kvs() and get() call.
 */
export function fakeCloudFront(entries = {}) {
  const calls = { kvs: [], get: [] };
  const store = {
    async get(key, options) {
      calls.get.push(key);
      if (!Object.prototype.hasOwnProperty.call(entries, key)) {
        throw new Error(`Key ${key} not found`);
      }
      const value = entries[key];
      if (value instanceof Error) {
        throw value;
      }
      return options && options.format === 'json' ? JSON.parse(value) : value;
    },
  };
  return {
    calls,
    entries,
    kvs(...args) {
      calls.kvs.push(args);
      return store;
    },
  };
}
