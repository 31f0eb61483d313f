// The viewer-request function, run from its own file against a stand-in key value store, on
// Node and on njs. node --test edge/
//
// Every request a test sends goes to Node (where the test's assertions read the answer) and is
// recorded with the store it saw; the last tests replay them all, in one njs process that runs
// the file as deployed, and hold njs to Node's answers.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { fakeCloudFront, functionSource, loadFunction, runUnderNjs } from './harness.mjs';
import { runtimeViolations } from './runtime_rules.mjs';

const BEFORE_ISSUE_22 = new URL('./fixtures/viewer_request.before-issue-22.js', import.meta.url);

// { entries, event, answer: { result, gets } } for every request sent under Node, in order.
const sent = [];

const SHA_42 = '4'.repeat(64);
const SHA_41 = '1'.repeat(64);

function livePointer(extra = {}) {
  return JSON.stringify({
    state: 'live',
    live: { version: 42, slot: 'a', manifest_sha256: SHA_42 },
    previous: { version: 41, slot: 'b', manifest_sha256: SHA_41 },
    ...extra,
  });
}

const SUSPENDED = JSON.stringify({ state: 'suspended', notice: '20240602-2140' });

// A query string as CloudFront hands it to a function: names and values as the viewer sent
// them (still percent-encoded), repeated names under multiValue.
function querystring(raw) {
  const qs = {};
  for (const part of raw ? raw.split('&') : []) {
    const [name, value = ''] = part.split(/=(.*)/s);
    if (qs[name]) {
      qs[name].multiValue = qs[name].multiValue || [{ value: qs[name].value }];
      qs[name].multiValue.push({ value });
    } else {
      qs[name] = { value };
    }
  }
  return qs;
}

function viewerRequest(uri, rawQuery = '') {
  return {
    version: '1.0',
    context: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'r1' },
    viewer: { ip: '198.51.100.7' },
    request: {
      method: 'GET',
      uri,
      querystring: querystring(rawQuery),
      headers: { host: { value: 'prep.diario.mx' }, accept: { value: 'text/html' } },
      cookies: {},
    },
  };
}

// A site whose store holds `pointer` under `live` (none at all when it is undefined; an Error
// for a store that fails to answer). Its requests are recorded for the replay under njs.
function site(...pointerOrNone) {
  const pointer = pointerOrNone.length ? pointerOrNone[0] : livePointer();
  const cloudfront = fakeCloudFront(pointer === undefined ? {} : { live: pointer });
  const handler = loadFunction(cloudfront);
  const send = async (event) => {
    const entries = { ...cloudfront.entries };
    const before = cloudfront.calls.get.length;
    const result = await handler(event);
    sent.push({ entries, event, answer: { result, gets: cloudfront.calls.get.slice(before) } });
    return result;
  };
  return {
    cloudfront,
    get: (uri, rawQuery) => send(viewerRequest(uri, rawQuery)),
  };
}

function assertRedirect(result, location) {
  assert.equal(result.statusCode, 302, JSON.stringify(result));
  assert.equal(result.headers.location.value, location);
  assert.equal(result.headers['cache-control'].value, 'no-store');
  // the institute's verifier follows it from its own portal (the files stay closed to others)
  assert.equal(result.headers['access-control-allow-origin'].value, '*');
}

function assertOrigin(result, uri, v) {
  assert.equal(result.statusCode, undefined, JSON.stringify(result));
  assert.equal(result.uri, uri);
  assert.deepEqual(result.querystring, { v: { value: v } });
}

function assertStatus(result, status) {
  assert.equal(result.statusCode, status, JSON.stringify(result));
  assert.equal(result.headers['cache-control'].value, 'no-store');
  assert.equal(result.headers['access-control-allow-origin'].value, '*');
  assert.equal(result.headers.location, undefined);
}

describe('an unversioned request', () => {
  it('is redirected to the same path in the live version, never cached', async () => {
    assertRedirect(await site().get('/diputaciones/resultados.json'), '/v/42/diputaciones/resultados.json');
  });

  it('keeps its query string, as the viewer spelled it', async () => {
    const result = await site().get('/index.html', 'distrito=03&x=%C3%B1and%26&d=1&d=2&flag');
    assertRedirect(result, '/v/42/index.html?distrito=03&x=%C3%B1and%26&d=1&d=2&flag');
  });

  it('escapes what cannot appear in a Location header', async () => {
    const result = await site().get('/index.html', 'q=a b"<ñ>');
    assertRedirect(result, '/v/42/index.html?q=a%20b%22%3C%C3%B1%3E');
  });

  it('for the root and directories, lands on the directory with its slash', async () => {
    const { get } = site();
    assertRedirect(await get('/'), '/v/42/');
    assertRedirect(await get('/diputaciones/'), '/v/42/diputaciones/');
    // Without the slash a page's relative URLs would resolve one level up, outside its directory.
    assertRedirect(await get('/diputaciones', 'p=1'), '/v/42/diputaciones/?p=1');
  });

  it('whose path starts with v/ but no version number is an ordinary path', async () => {
    assertRedirect(await site().get('/v/actas/x.png'), '/v/42/v/actas/x.png');
  });

  it('reads the pointer each time: after the switch it goes to the new version', async () => {
    const { cloudfront, get } = site();
    assertRedirect(await get('/index.html'), '/v/42/index.html');
    cloudfront.entries.live = JSON.stringify({
      state: 'live',
      live: { version: 43, slot: 'b', manifest_sha256: SHA_42 },
      previous: { version: 42, slot: 'a', manifest_sha256: SHA_41 },
    });
    assertRedirect(await get('/index.html'), '/v/43/index.html');
  });
});

describe('a versioned request', () => {
  it('for the live version is served from its slot, the version in the cache key', async () => {
    assertOrigin(await site().get('/v/42/diputaciones/resultados.json'), '/_v/a/diputaciones/resultados.json', '42');
  });

  it('for the previous version, still whole in the other slot, is served from there', async () => {
    assertOrigin(await site().get('/v/41/diputaciones/resultados.json'), '/_v/b/diputaciones/resultados.json', '41');
  });

  it("serves a directory's index.html", async () => {
    const { get } = site();
    assertOrigin(await get('/v/42/'), '/_v/a/index.html', '42');
    assertOrigin(await get('/v/41/ayuntamientos/la-paz/'), '/_v/b/ayuntamientos/la-paz/index.html', '41');
  });

  it('without the trailing slash of a directory is redirected to it', async () => {
    const { get } = site();
    assertRedirect(await get('/v/42'), '/v/42/');
    assertRedirect(await get('/v/41/diputaciones', 'p=1'), '/v/41/diputaciones/?p=1');
  });

  it('does not pass the viewer\'s query string to the origin (only the version is in the key)', async () => {
    assertOrigin(await site().get('/v/42/index.html', 'utm=x&v=7'), '/_v/a/index.html', '42');
  });

  it('for a version no slot holds is redirected to the same path in the live version', async () => {
    const { get } = site();
    assertRedirect(await get('/v/40/diputaciones/resultados.json', 'a=1'), '/v/42/diputaciones/resultados.json?a=1');
    assertRedirect(await get('/v/43/index.html'), '/v/42/index.html');
    assertRedirect(await get('/v/0/'), '/v/42/');
    assertRedirect(await get('/v/7'), '/v/42/');
  });

  it('for the previous version, once the pointer drops it, is redirected', async () => {
    const pointer = JSON.stringify({ state: 'live', live: { version: 42, slot: 'a' } });
    assertRedirect(await site(pointer).get('/v/41/index.html'), '/v/42/index.html');
  });

  it('with leading zeros names the same version', async () => {
    assertOrigin(await site().get('/v/0042/index.html'), '/_v/a/index.html', '42');
  });
});

describe('the signed manifest and its files', () => {
  it('are redirected together into the live version, then read from one slot', async () => {
    const { get } = site();
    assertRedirect(await get('/.well-known/prep/manifest.json'), '/v/42/.well-known/prep/manifest.json');
    assertRedirect(await get('/.well-known/prep/manifest.json.minisig'), '/v/42/.well-known/prep/manifest.json.minisig');
    assertOrigin(await get('/v/42/.well-known/prep/manifest.json'), '/_v/a/.well-known/prep/manifest.json', '42');
    assertOrigin(await get('/v/42/.well-known/prep/manifest.json.minisig'), '/_v/a/.well-known/prep/manifest.json.minisig', '42');
    assertOrigin(await get('/v/42/.well-known/prep/history/5.json'), '/_v/a/.well-known/prep/history/5.json', '42');
    assertOrigin(await get('/v/41/.well-known/prep/manifest.json'), '/_v/b/.well-known/prep/manifest.json', '41');
  });
});

describe('a suspended site', () => {
  it('serves the notice at the root', async () => {
    assertOrigin(await site(SUSPENDED).get('/'), '/_aviso/20240602-2140/index.html', 'aviso-20240602-2140');
  });

  it('serves its estado.json, versioned or not', async () => {
    const { get } = site(SUSPENDED);
    const estado = '/_aviso/20240602-2140/.well-known/prep/estado.json';
    assertOrigin(await get('/.well-known/prep/estado.json'), estado, 'aviso-20240602-2140');
    assertOrigin(await get('/v/42/.well-known/prep/estado.json'), estado, 'aviso-20240602-2140');
  });

  it('sends every other request, the manifest and deep links included, to the notice', async () => {
    const { get } = site(SUSPENDED);
    assertRedirect(await get('/.well-known/prep/manifest.json'), '/');
    assertRedirect(await get('/v/42/diputaciones/resultados.json'), '/');
    assertRedirect(await get('/v/42/'), '/');
    assertRedirect(await get('/diputaciones/', 'a=1'), '/');
  });
});

describe('without a pointer it can trust, the site answers 503 and guesses no slot', () => {
  const cases = {
    'no pointer in the store': undefined,
    'not JSON': '{"state":"live",',
    'JSON null': 'null',
    'a number': '42',
    'an unknown state': JSON.stringify({ state: 'paused', live: { version: 42, slot: 'a' } }),
    'no live placement': JSON.stringify({ state: 'live' }),
    'an unknown slot': livePointer({ live: { version: 42, slot: 'c' } }),
    'a version that is a string': livePointer({ live: { version: '42', slot: 'a' } }),
    'version 0': livePointer({ live: { version: 0, slot: 'a' } }),
    'a fractional version': livePointer({ live: { version: 4.2, slot: 'a' } }),
    'previous in the live slot': livePointer({ previous: { version: 41, slot: 'a' } }),
    'previous with the live version': livePointer({ previous: { version: 42, slot: 'b' } }),
    'a malformed previous': livePointer({ previous: { slot: 'b' } }),
    'suspended without a notice': JSON.stringify({ state: 'suspended' }),
    'suspended with a notice id that is a path': JSON.stringify({ state: 'suspended', notice: '../v' }),
  };
  for (const [name, pointer] of Object.entries(cases)) {
    it(name, async () => {
      const { get } = site(pointer);
      for (const uri of ['/', '/v/42/index.html', '/.well-known/prep/manifest.json']) {
        const result = await get(uri);
        assertStatus(result, 503);
        assert.equal(result.headers['retry-after'].value, '5');
      }
    });
  }

  it('a store that fails to answer', async () => {
    const result = await site(new Error('InternalError')).get('/v/42/index.html');
    assertStatus(result, 503);
  });
});

describe('paths that could leave the version are refused with 400, before the store is read', () => {
  const uris = [
    '/v/42/../../_v/b/index.html',
    '/v/42/./index.html',
    '/v/42/%2e%2e/%2E%2E/_v/b/index.html',
    '/v/42/diputaciones%2f..%2f..%2fx',
    '/v/42/a%5c..%5cb',
    '/v/42/a%00.json',
    '/v/42/%zz',
    '/..',
  ];
  for (const uri of uris) {
    it(uri, async () => {
      const { cloudfront, get } = site();
      assertStatus(await get(uri), 400);
      assert.deepEqual(cloudfront.calls.get, []);
    });
  }

  it('while names that merely contain dots are served', async () => {
    const { get } = site();
    assertOrigin(await get('/v/42/actas/..a..json'), '/_v/a/actas/..a..json', '42');
    assertOrigin(await get('/v/42/a%20b.png'), '/_v/a/a%20b.png', '42');
  });

  it('no path the function serves escapes the two slots (random paths)', async () => {
    const { get } = site();
    const alphabet = ['a', '.', '..', '/', '%2f', '%2e', '%5c', 'v', '42', '41', '_v', '%00', '%', 'b'];
    let seed = 12345;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % alphabet.length;
    for (let n = 0; n < 2000; n++) {
      let uri = n % 2 ? '/v/42/' : '/';
      for (let k = next() + 1; k > 0; k--) uri += alphabet[next()];
      const result = await get(uri);
      if (result.statusCode === undefined) {
        assert.match(result.uri, /^\/_v\/[ab]\//, uri);
        const segments = result.uri.split('/').map((s) => decodeURIComponent(s));
        assert.ok(!segments.includes('..') && !segments.includes('.'), uri);
        assert.ok(!segments.some((s) => s.includes('/') || s.includes('\\')), uri);
      }
    }
  });
});

describe('the file CloudFront runs', () => {
  const source = functionSource();

  it("keeps to cloudfront-js-2.0's documented JavaScript: size, import, globals, await (runtime_rules.mjs)", () => {
    assert.deepEqual(runtimeViolations(source), []);
  });

  it('opens the associated store once, at load, in the documented form cf.kvs()', async () => {
    const { cloudfront, get } = site();
    assert.deepEqual(cloudfront.calls.kvs, [[]]);
    await get('/index.html');
    await get('/v/42/index.html');
    assert.deepEqual(cloudfront.calls.kvs, [[]]);
    assert.deepEqual(cloudfront.calls.get, ['live', 'live']);
  });
});

describe('under njs, the engine whose restrictions CloudFront shares', () => {
  it('every request above gets the answer it got under Node, from the file as deployed', () => {
    // the random-path test alone sends 2,000: a replay of fewer means tests were filtered out
    assert.ok(sent.length > 2000, `only ${sent.length} requests recorded: run the whole file`);
    const njs = runUnderNjs(sent);
    // loaded once, the store opened once in the documented form cf.kvs()
    assert.deepEqual(njs.kvs, [[]]);
    for (let i = 0; i < sent.length; i++) {
      const { entries, event, answer } = sent[i];
      const request = `${event.request.uri} ${JSON.stringify(event.request.querystring)} with ${JSON.stringify(entries)}`;
      assert.deepEqual(njs.answers[i], answer, `request ${i}: ${request}`);
    }
  });

  it('would have refused the file as it was before #22 (await inside a call\'s arguments)', () => {
    const requests = sent.slice(0, 3);
    assert.equal(requests.length, 3);
    assert.throws(() => runUnderNjs(requests, BEFORE_ISSUE_22), /^Error: njs (was killed by SIG\w+|exited with status [1-9]\d*) after answering 0 of 3 requests/);
  });
});
