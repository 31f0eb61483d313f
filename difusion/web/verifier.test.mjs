// The verifier's logic (difusion/web/verifier.js), run as the pages run it, against sites made
// here in memory: `node --test difusion/web/`. The pages themselves are tested in Chromium
// (tests/integration/test_institute_verifier.py); this covers what a browser test cannot
// arrange on cue, such as a version retired in the middle of a check.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const SOURCE = readFileSync(new URL('./verifier.js', import.meta.url), 'utf8');

// The script in a context of its own, with the browser globals it uses; `fetch` is the site's.
function load(fetch) {
  const context = vm.createContext({
    crypto: webcrypto, TextEncoder, TextDecoder, atob, btoa, URL, Intl, performance, fetch,
    Uint8Array, Uint32Array, Map, Set, Promise, Error, JSON, Math, Number, String, Array, Date, RegExp,
  });
  vm.runInContext(SOURCE, context);
  return context;
}

// values from the script's own realm, compared as plain data
const plain = (value) => JSON.parse(JSON.stringify(value));
const sha = (bytes) => createHash('sha256').update(bytes).digest('hex');
const bytes = (text) => new TextEncoder().encode(text);

async function keyPair() {
  const pair = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = new Uint8Array(await webcrypto.subtle.exportKey('raw', pair.publicKey));
  const keyId = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
  const pub = Buffer.concat([Buffer.from('Ed'), keyId, raw]).toString('base64');
  return { pair, keyId, text: `untrusted comment: minisign public key\n${pub}\n` };
}

async function sign(key, message, comment) {
  const prehash = createHash('blake2b512').update(message).digest();
  const signature = new Uint8Array(await webcrypto.subtle.sign({ name: 'Ed25519' }, key.pair.privateKey, prehash));
  const global = new Uint8Array(await webcrypto.subtle.sign(
    { name: 'Ed25519' }, key.pair.privateKey, Buffer.concat([signature, Buffer.from(comment)])));
  return 'untrusted comment: signature\n'
    + Buffer.concat([Buffer.from('ED'), key.keyId, signature]).toString('base64') + '\n'
    + `trusted comment: ${comment}\n` + Buffer.from(global).toString('base64') + '\n';
}

const CSV = [
  'Diputaciones Locales - Baja California Sur - PREP 2024',
  '02/06/2024 20:40 (UTC-07:00)',
  'ACTAS_ESPERADAS,ACTAS_REGISTRADAS',
  '2,2',
  'CLAVE_CASILLA,CLAVE_ACTA,UBICACION_CASILLA,TOTAL_VOTOS_CALCULADO,CODIGO_INTEGRIDAD',
].join('\r\n');

// A site of version `version`: a page, a database naming two actas, their images.
async function makeSite(key, { sequence = 3, codes = {}, newer = false } = {}) {
  const images = { '030101B0100': bytes('acta uno'), '030101C0100': bytes('acta dos') };
  const rows = Object.entries(images).map(([clave, image]) =>
    `'030101B01',${clave},"Escuela ""Benito Juárez"", aula 2",321,${codes[clave] || sha(image)}`);
  const files = {
    'index.html': bytes('<h1>PREP</h1>'),
    'assets/csv/DIP_LOC_BCS_2024.csv': bytes(CSV + '\r\n' + rows.join('\r\n') + '\r\n'),
    ...Object.fromEntries(Object.entries(images).map(([c, b]) => [`assets/actas/DIP_LOC/${c}.png`, b])),
  };
  const manifest = bytes(JSON.stringify({
    sequence,
    snapshot: { id: '20240602_2040_PREP_DIP_LOC_BCS', cut_time: '2024-06-02T20:40:00-07:00' },
    files: Object.entries(files).map(([path, body]) => ({ path, sha256: sha(body), size: body.length })),
  }));
  const signature = bytes(await sign(key, manifest, `sequence:${sequence}`));
  const served = { ...files, '.well-known/prep/manifest.json': manifest, '.well-known/prep/manifest.json.minisig': signature };
  if (newer) served[`.well-known/prep/history/${String(sequence + 1).padStart(6, '0')}.json`] = bytes('{}');
  return served;
}

// The site as its CloudFront serves it: the unversioned manifest redirects to /v/<live>/, a
// retired version's files redirect (`moves` retirements happen after that many reads).
function serve(files, { live = 5, movesAfter = null } = {}) {
  let reads = 0;
  let version = live;
  const calls = [];
  const fetch = async (url, options = {}) => {
    const u = new URL(String(url));
    calls.push(u.pathname);
    let path = decodeURIComponent(u.pathname).slice(1);
    const m = /^v\/(\d+)\/(.*)$/.exec(path);
    if (!m) { // the function's redirect, followed by the browser
      path = `v/${version}/${path}`;
      return respond(files[path.replace(/^v\/\d+\//, '')], `${u.origin}/${path}`);
    }
    if (movesAfter !== null && ++reads === movesAfter) version += 1;
    if (Number(m[1]) !== version) {
      return options.redirect === 'manual'
        ? { type: 'opaqueredirect', status: 0, ok: false, url: String(url) }
        : respond(files[m[2]], `${u.origin}/v/${version}/${m[2]}`);
    }
    return respond(files[m[2]], String(url));
  };
  return { fetch, calls };
}

function respond(body, url) {
  if (body === undefined) return { type: 'cors', status: 404, ok: false, url, arrayBuffer: async () => new ArrayBuffer(0) };
  return { type: 'cors', status: 200, ok: true, url, arrayBuffer: async () => body.slice().buffer, text: async () => new TextDecoder().decode(body) };
}

const BASE = 'https://sitio.example/';

describe('the verifier\'s building blocks', () => {
  it('computes BLAKE2b-512 as the RFC and OpenSSL do', () => {
    const { blake2b512, hex } = load(null);
    assert.equal(hex(blake2b512(bytes('abc'))), 'ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923');
    for (const size of [0, 127, 128, 129, 1000, 70000]) {
      const data = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
      assert.equal(hex(blake2b512(data)), createHash('blake2b512').update(data).digest('hex'), `size ${size}`);
    }
  });

  it('reads a PREP database: quotes, doubled quotes, CRLF, the header after the preamble', () => {
    const { actaRows } = load(null);
    const csv = bytes('\ufeff' + CSV + '\r\n\'030101B01\',030101B0100,"Escuela ""X"", aula 2",321,ABCDEF\r\n');
    const [row] = actaRows(csv);
    assert.equal(row.clave, '030101B0100');
    assert.equal(row.casilla, '030101B01');
    assert.equal(row.code, 'abcdef');
    assert.equal(row.row[2], 'Escuela "X", aula 2');
    assert.equal(row.header[4], 'CODIGO_INTEGRIDAD');
  });

  it('says a cut time in its own local time, Mexican style', () => {
    const { horaLocal, cuenta } = load(null);
    assert.equal(horaLocal('2024-06-02T20:40:00-07:00'), '02/06/2024 20:40 (UTC−07:00)');
    assert.equal(horaLocal('2024-06-03T03:40:00Z'), '03/06/2024 03:40 (UTC)');
    assert.equal(cuenta(1, 'archivo alterado', 'archivos alterados'), '1 archivo alterado');
    assert.equal(cuenta(1843, 'archivo', 'archivos'), '1,843 archivos');
  });
});

describe('a whole site', () => {
  it('is verified, pinned to the version it serves, every acta checked', async () => {
    const key = await keyPair();
    const site = serve(await makeSite(key));
    const v = load(site.fetch);
    const result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.estado, 'verificado', result.mensaje);
    assert.equal(result.version, 5);
    assert.equal(result.base, 'https://sitio.example/v/5/');
    assert.equal(result.actasRevisadas, 2);
    assert.equal(result.archivos, 4);
    // every read after the pin is under the version
    assert.ok(site.calls.slice(1).every((p) => p.startsWith('/v/5/')), site.calls);
  });

  it('names an altered acta image by its casilla, beside the altered file', async () => {
    const key = await keyPair();
    const files = await makeSite(key);
    files['assets/actas/DIP_LOC/030101C0100.png'] = bytes('otra imagen');
    const v = load(serve(files).fetch);
    const result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.problema, 'alterado');
    assert.deepEqual([...result.alterados], ['assets/actas/DIP_LOC/030101C0100.png']);
    assert.equal(result.actasDistintas.length, 1);
    assert.equal(result.actasDistintas[0].casilla, '030101B01');
    assert.equal(result.actasDistintas[0].acta, '030101C0100');
    assert.equal(result.actasDistintas[0].calculado, sha(bytes('otra imagen')));
  });

  it('fails the data check when the signed database gives an acta a wrong code', async () => {
    const key = await keyPair();
    const v = load(serve(await makeSite(key, { codes: { '030101B0100': 'f'.repeat(64) } })).fetch);
    const result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.estado, 'fallido');
    assert.equal(result.problema, 'acta');
    assert.deepEqual(plain(result.actasDistintas.map((a) => a.acta)), ['030101B0100']);
  });

  it('refuses another key, a newer history, and a missing file', async () => {
    const key = await keyPair();
    const other = await keyPair();
    let v = load(serve(await makeSite(key)).fetch);
    let result = await v.verifySite(BASE, v.parsePublicKey(other.text));
    assert.equal(result.problema, 'firma');
    v = load(serve(await makeSite(key, { newer: true })).fetch);
    result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.problema, 'desactualizado');
    const files = await makeSite(key);
    delete files['index.html'];
    v = load(serve(files).fetch);
    result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.problema, 'faltante');
    assert.deepEqual([...result.faltantes], ['index.html']);
  });

  it('says a check cut short by the site\'s rate limit is cut short, not that files are missing', async () => {
    const key = await keyPair();
    const site = serve(await makeSite(key));
    let reads = 0;
    const limited = async (url, options) => (++reads > 3
      ? { type: 'cors', status: 429, ok: false, url: String(url), arrayBuffer: async () => new ArrayBuffer(0) }
      : site.fetch(url, options));
    const v = load(limited);
    const result = await v.verifySite(BASE, v.parsePublicKey(key.text));
    assert.equal(result.estado, 'error');
    assert.equal(result.problema, 'limite');
    assert.equal(result.faltantes.length, 0);
  });

  it('starts again once on the new version when the one read is retired mid-check', async () => {
    const key = await keyPair();
    const files = await makeSite(key);
    let site = serve(files, { movesAfter: 3 });
    let v = load(site.fetch);
    let result = await v.verifySite(BASE, v.parsePublicKey(key.text), { concurrency: 1 });
    assert.equal(result.estado, 'verificado', result.mensaje);
    assert.equal(result.version, 6);
    // retired twice in one check: not verified, and said why
    site = serve(files, { movesAfter: 3 });
    v = load(site.fetch);
    result = await v.verifySite(BASE, v.parsePublicKey(key.text), { concurrency: 1, retries: 0 });
    assert.equal(result.estado, 'error');
    assert.equal(result.problema, 'version');
  });
});

describe('one acta', () => {
  it('is found by its casilla (both actas) or its own key, the hashes side by side', async () => {
    const key = await keyPair();
    const files = await makeSite(key);
    const v = load(serve(files).fetch);
    const byCasilla = await v.lookUpActa(BASE, v.parsePublicKey(key.text), " '030101b01' ");
    assert.deepEqual(plain(byCasilla.actas.map((a) => [a.acta, a.coincide])), [['030101B0100', true], ['030101C0100', true]]);
    const [acta] = (await v.lookUpActa(BASE, v.parsePublicKey(key.text), '030101C0100')).actas;
    assert.equal(acta.calculado, acta.codigo);
    assert.equal(acta.fila[3], '321');
    assert.equal((await v.lookUpActa(BASE, v.parsePublicKey(key.text), "999")).actas.length, 0);
  });

  it('does not match when the image differs from its code', async () => {
    const key = await keyPair();
    const files = await makeSite(key);
    files['assets/actas/DIP_LOC/030101B0100.png'] = bytes('cambiada');
    const v = load(serve(files).fetch);
    const [acta] = (await v.lookUpActa(BASE, v.parsePublicKey(key.text), '030101B0100')).actas;
    assert.equal(acta.coincide, false);
    assert.equal(acta.calculado, sha(bytes('cambiada')));
    assert.notEqual(acta.calculado, acta.codigo);
  });
});
