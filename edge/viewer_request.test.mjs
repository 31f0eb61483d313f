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
const BEFORE_ISSUE_23 = new URL('./fixtures/viewer_request.before-issue-23.js', import.meta.url);

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

function viewerRequest(uri, rawQuery = '', extraHeaders = {}) {
  const headers = { host: { value: 'prep.diario.mx' }, accept: { value: 'text/html' } };
  for (const [name, value] of Object.entries(extraHeaders)) {
    headers[name] = { value };
  }
  return {
    version: '1.0',
    context: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'r1' },
    viewer: { ip: '198.51.100.7' },
    request: {
      method: 'GET',
      uri,
      querystring: querystring(rawQuery),
      headers,
      cookies: {},
    },
  };
}

// A site whose store holds `pointer` under `live` (none at all when it is undefined; an Error
// for a store that fails to answer). Its requests are recorded for the replay under njs.
function site(...pointerOrNone) {
  return siteOf(undefined, ...pointerOrNone);
}

// The same, running the function in `file` (the deployed one when undefined; another file's
// requests are not replayed under njs).
function siteOf(file, ...pointerOrNone) {
  const pointer = pointerOrNone.length ? pointerOrNone[0] : livePointer();
  const cloudfront = fakeCloudFront(pointer === undefined ? {} : { live: pointer });
  const handler = file === undefined ? loadFunction(cloudfront) : loadFunction(cloudfront, file);
  const send = async (event) => {
    const entries = { ...cloudfront.entries };
    const before = cloudfront.calls.get.length;
    const result = await handler(event);
    if (file === undefined) {
      // the njs replay runs the deployed file; a control's answers are not that file's
      sent.push({ entries, event, answer: { result, gets: cloudfront.calls.get.slice(before) } });
    }
    return result;
  };
  return {
    cloudfront,
    get: (uri, rawQuery) => send(viewerRequest(uri, rawQuery)),
    // a request with these headers (name -> value, names lowercase as CloudFront gives them)
    getWith: (uri, headers, rawQuery) => send(viewerRequest(uri, rawQuery, headers)),
  };
}

// What a browser sends for what a page at `pageUrl` loads: a stylesheet, a script, a fetch().
function fromPage(pageUrl, mode = 'no-cors') {
  return { referer: pageUrl, 'sec-fetch-mode': mode, 'sec-fetch-site': 'same-origin' };
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

describe("what a page loads by absolute URL stays in the page's version (Referer)", () => {
  const PAGE_41 = 'https://prep.diario.mx/v/41/diputaciones.html';

  it('a stylesheet, script or fetch from a page of the previous version is sent to that version', async () => {
    const { getWith } = site();
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(PAGE_41)), '/v/41/assets/css/prep.css');
    assertRedirect(await getWith('/assets/js/prep.js', fromPage(PAGE_41)), '/v/41/assets/js/prep.js');
    const data = await getWith('/assets/JSON/DIP_LOC/resumen.json', fromPage(PAGE_41, 'cors'), 'x=1');
    assertRedirect(data, '/v/41/assets/JSON/DIP_LOC/resumen.json?x=1');
    // an older browser sends no Sec-Fetch-* headers: the Referer alone pins it
    const image = await getWith('/assets/actas/DIP_LOC/0001.png', { referer: PAGE_41 });
    assertRedirect(image, '/v/41/assets/actas/DIP_LOC/0001.png');
  });

  it('from a page of the live version, to the live version; and the directory slash is kept', async () => {
    const { getWith } = site();
    const page = 'https://prep.diario.mx/v/42/';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(page)), '/v/42/assets/css/prep.css');
    assertRedirect(await getWith('/diputaciones', fromPage(PAGE_41)), '/v/41/diputaciones/');
  });

  it('a stylesheet loaded from /v/41/ sends its own URL: what it loads stays in 41 too', async () => {
    const css = 'https://prep.diario.mx/v/41/assets/css/prep.css';
    assertRedirect(await site().getWith('/assets/img/logo.png', fromPage(css)), '/v/41/assets/img/logo.png');
  });

  it('a navigation (a link followed to another page) goes to the live version', async () => {
    const { getWith } = site();
    const click = { referer: PAGE_41, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
    assertRedirect(await getWith('/ayuntamientos.html', click), '/v/42/ayuntamientos.html');
  });

  it('a page of a retired version, or of no version, gets the live version', async () => {
    const { getWith } = site();
    const retired = 'https://prep.diario.mx/v/40/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(retired)), '/v/42/assets/css/prep.css');
    const newer = 'https://prep.diario.mx/v/43/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(newer)), '/v/42/assets/css/prep.css');
    const unversioned = 'https://prep.diario.mx/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(unversioned)), '/v/42/assets/css/prep.css');
  });

  it('a Referer of another site, or stripped to the origin, or absent, gets the live version', async () => {
    const { getWith } = site();
    const other = 'https://otro.example/v/41/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(other)), '/v/42/assets/css/prep.css');
    // what strict-origin-when-cross-origin sends cross-origin, or a no-referrer policy, or none
    const origin = 'https://prep.diario.mx/';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(origin)), '/v/42/assets/css/prep.css');
    assertRedirect(await getWith('/assets/css/prep.css', {}), '/v/42/assets/css/prep.css');
    const garbled = 'prep.diario.mx/v/41/';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(garbled)), '/v/42/assets/css/prep.css');
  });

  it('the host is compared without regard to case, and with its port', async () => {
    const { getWith } = site();
    const upper = 'https://PREP.Diario.MX/v/41/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(upper)), '/v/41/assets/css/prep.css');
    const port = 'https://prep.diario.mx:8443/v/41/index.html';
    assertRedirect(await getWith('/assets/css/prep.css', fromPage(port)), '/v/42/assets/css/prep.css');
  });

  it('a versioned request is served from the version it names, whatever its Referer', async () => {
    const result = await site().getWith('/v/42/assets/css/prep.css', fromPage(PAGE_41));
    assertOrigin(result, '/_v/a/assets/css/prep.css', '42');
  });

  it('a suspended site still shows its notice', async () => {
    const result = await site(SUSPENDED).getWith('/assets/css/prep.css', fromPage(PAGE_41));
    assertRedirect(result, '/');
  });

  it('the function before #23 sent them all to the live version: a page of 41 with 42\'s data', async () => {
    const old = siteOf(BEFORE_ISSUE_23);
    const data = await old.getWith('/assets/JSON/DIP_LOC/resumen.json', fromPage(PAGE_41, 'cors'));
    assertRedirect(data, '/v/42/assets/JSON/DIP_LOC/resumen.json');
  });
});

describe('the propagation probe path, answered by the function itself', () => {
  it('says which versions this edge routes: no-store, readable from any origin, nothing else', async () => {
    const result = await site().get('/.well-known/prep/borde.json');
    assertStatus(result, 200);
    assert.equal(result.headers['content-type'].value, 'application/json');
    assert.deepEqual(result.body, { encoding: 'text', data: '{"state":"live","live":42,"previous":41}' });
  });

  it('follows the pointer: no previous after a retire, the new version after a switch', async () => {
    const { cloudfront, get } = site();
    cloudfront.entries.live = JSON.stringify({ state: 'live', live: { version: 42, slot: 'a' } });
    assert.equal((await get('/.well-known/prep/borde.json')).body.data, '{"state":"live","live":42,"previous":null}');
    cloudfront.entries.live = JSON.stringify({
      state: 'live',
      live: { version: 43, slot: 'b' },
      previous: { version: 42, slot: 'a' },
    });
    assert.equal((await get('/.well-known/prep/borde.json')).body.data, '{"state":"live","live":43,"previous":42}');
  });

  it('a suspended site says so and names no notice; without a pointer, 503 as everything else', async () => {
    const suspended = await site(SUSPENDED).get('/.well-known/prep/borde.json');
    assertStatus(suspended, 200);
    assert.equal(suspended.body.data, '{"state":"suspended"}');
    assertStatus(await site(undefined).get('/.well-known/prep/borde.json'), 503);
  });

  it('only at that exact path: under a version or with another name it is an ordinary file', async () => {
    const { get } = site();
    assertOrigin(await get('/v/42/.well-known/prep/borde.json'), '/_v/a/.well-known/prep/borde.json', '42');
    assertRedirect(await get('/.well-known/prep/borde.json/'), '/v/42/.well-known/prep/borde.json/');
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
