// Runs edge/viewer_request.js as CloudFront would, with a stand-in for the `cloudfront` module,
// on two engines.
//
// Node (`loadFunction`): the file is read as text and evaluated unchanged except for its first
// line, `import cf from 'cloudfront';`, which becomes a binding to the stand-in (on the same
// line, so stack traces keep their line numbers). It runs in its own V8 context, in strict mode
// as CloudFront Functions do, with no `require`, `process`, timers or `console`: code that leans
// on Node rather than on the documented runtime fails here too. Tests and the local sites server
// (playing CloudFront's part in the embedded default) both load it this way.
//
// njs (`runUnderNjs`): nginx's JavaScript engine, whose restrictions CloudFront's runtime shares
// (README.md here says which, and what stays unknown), runs the very file as its main script; its
// import resolves to edge/njs/cloudfront, the same stand-in plus a driver. One njs process
// answers a batch of requests, so tests record what they sent to Node and replay it.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

export const FUNCTION_URL = new URL('./viewer_request.js', import.meta.url);
export const NJS_MODULES = new URL('./njs/', import.meta.url);
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

/**
 * The answers njs gives for `requests` ([{ entries, event }], `entries` as for fakeCloudFront),
 * running the file at `url` unchanged in one njs process: `{ answers, kvs }`, `answers[i]` being
 * `{ result, gets }` (or `{ error, gets }` when the handler threw) and `kvs` the arguments of each
 * `cf.kvs()` call made while the file loaded. Throws when njs is missing, fails to load the file,
 * or stops before answering every request.
 */
export function runUnderNjs(requests, url = FUNCTION_URL) {
  // njs looks for a module beside the script before it looks under -p.
  if (existsSync(new URL('./cloudfront', url))) {
    const beside = fileURLToPath(new URL('./cloudfront', url));
    throw new Error(`${beside} would stand in for edge/njs/cloudfront: njs resolves modules beside the script first`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'edge-njs-'));
  try {
    const input = join(dir, 'requests.json');
    writeFileSync(input, JSON.stringify(requests.map(forNjs)));
    const run = spawnSync('njs', ['-p', fileURLToPath(NJS_MODULES), fileURLToPath(url), input], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    if (run.error && run.error.code === 'ENOENT') {
      throw new Error(
        'njs is not installed: `make tools` installs it (Debian package njs); the edge tests run on it as well as on Node',
      );
    }
    if (run.error) {
      throw run.error;
    }
    const lines = run.stdout.split('\n').filter((line) => line !== '').map(parseLine);
    const answers = lines.filter((line) => line && !line.done);
    const last = lines[lines.length - 1];
    const complete = last && last.done === true && answers.length === requests.length && !lines.includes(null);
    if (run.status !== 0 || !complete) {
      const how = run.signal ? `was killed by ${run.signal}` : `exited with status ${run.status}`;
      const own = run.stdout.split('\n').filter((line) => line !== '' && parseLine(line) === null);
      const message = [run.stderr.trim(), ...own].filter(Boolean).join('\n') || '(no message)';
      const file = fileURLToPath(url);
      throw new Error(`njs ${how} after answering ${answers.length} of ${requests.length} requests from ${file}: ${message}`);
    }
    return { answers, kvs: last.kvs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseLine(line) {
  try {
    return JSON.parse(line);
  } catch (err) {
    return null; // not the driver's: njs's own message
  }
}

function forNjs({ entries, event }) {
  const plainEntries = {};
  for (const [key, value] of Object.entries(entries)) {
    plainEntries[key] = value instanceof Error ? { error: value.message } : value;
  }
  return { entries: plainEntries, event: plain(event) };
}
