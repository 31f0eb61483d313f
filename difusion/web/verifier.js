"use strict";
// The PREP verifier, shared by two pages: the one each site carries
// (.well-known/prep/verificar.html, same origin) and the institute's own
// (verificador.html on the institute's portal, cross-origin, with the key pinned in it).
// Everything it needs is here: BLAKE2b-512 (minisign prehashes with it), a CSV reader, and
// Web Crypto for Ed25519 and SHA-256. It only downloads the site's files and checks them:
// nothing the site serves is executed.

// --- BLAKE2b-512 (RFC 7693), 64-bit words as pairs of 32-bit halves (low, high) ---------
const IV32 = new Uint32Array([
  0xf3bcc908, 0x6a09e667, 0x84caa73b, 0xbb67ae85, 0xfe94f82b, 0x3c6ef372, 0x5f1d36f1, 0xa54ff53a,
  0xade682d1, 0x510e527f, 0x2b3e6c1f, 0x9b05688c, 0xfb41bd6b, 0x1f83d9ab, 0x137e2179, 0x5be0cd19,
]);
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];
const SIGMA8 = [...SIGMA, SIGMA[0], SIGMA[1]].map((row) => row.map((x) => x * 2));

function blake2b512(data) {
  const h = new Uint32Array(IV32);
  h[0] ^= 0x01010040; // digest length 64, no key, fanout 1, depth 1
  const v = new Uint32Array(32);
  const m = new Uint32Array(32);
  const block = new Uint8Array(128);
  let t = 0;

  function add(a, b) { // v[a] += v[b] (64-bit)
    const lo = v[a] + v[b];
    let hi = v[a + 1] + v[b + 1];
    if (lo >= 0x100000000) hi++;
    v[a] = lo; v[a + 1] = hi;
  }
  function addm(a, i) { // v[a] += m[i]
    const lo = v[a] + m[i];
    let hi = v[a + 1] + m[i + 1];
    if (lo >= 0x100000000) hi++;
    v[a] = lo; v[a + 1] = hi;
  }
  function g(a, b, c, d, x, y) {
    add(a, b); addm(a, x);
    let l = v[d] ^ v[a], u = v[d + 1] ^ v[a + 1];
    v[d] = u; v[d + 1] = l; // rotate right 32
    add(c, d);
    l = v[b] ^ v[c]; u = v[b + 1] ^ v[c + 1];
    v[b] = (l >>> 24) ^ (u << 8); v[b + 1] = (u >>> 24) ^ (l << 8); // 24
    add(a, b); addm(a, y);
    l = v[d] ^ v[a]; u = v[d + 1] ^ v[a + 1];
    v[d] = (l >>> 16) ^ (u << 16); v[d + 1] = (u >>> 16) ^ (l << 16); // 16
    add(c, d);
    l = v[b] ^ v[c]; u = v[b + 1] ^ v[c + 1];
    v[b] = (u >>> 31) ^ (l << 1); v[b + 1] = (l >>> 31) ^ (u << 1); // 63
  }
  function compress(last) {
    for (let i = 0; i < 16; i++) { v[i] = h[i]; v[i + 16] = IV32[i]; }
    v[24] ^= t >>> 0;
    v[25] ^= Math.floor(t / 0x100000000) >>> 0;
    if (last) { v[28] = ~v[28]; v[29] = ~v[29]; }
    for (let i = 0; i < 32; i++) {
      const j = 4 * i;
      m[i] = block[j] | (block[j + 1] << 8) | (block[j + 2] << 16) | (block[j + 3] << 24);
    }
    for (let r = 0; r < 12; r++) {
      const s = SIGMA8[r];
      g(0, 8, 16, 24, s[0], s[1]); g(2, 10, 18, 26, s[2], s[3]);
      g(4, 12, 20, 28, s[4], s[5]); g(6, 14, 22, 30, s[6], s[7]);
      g(0, 10, 20, 30, s[8], s[9]); g(2, 12, 22, 24, s[10], s[11]);
      g(4, 14, 16, 26, s[12], s[13]); g(6, 8, 18, 28, s[14], s[15]);
    }
    for (let i = 0; i < 16; i++) h[i] ^= v[i] ^ v[i + 16];
  }
  let c = 0;
  for (let i = 0; i < data.length; i++) {
    if (c === 128) { t += 128; compress(false); c = 0; }
    block[c++] = data[i];
  }
  t += c;
  block.fill(0, c);
  compress(true);
  const out = new Uint8Array(64);
  for (let i = 0; i < 64; i++) out[i] = h[i >> 2] >>> (8 * (i & 3));
  return out;
}

// --- minisign ----------------------------------------------------------------------------
function b64(text) { return Uint8Array.from(atob(text.trim()), (ch) => ch.charCodeAt(0)); }
function hex(bytes) { return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }
function same(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

function parsePublicKey(text) {
  const line = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("untrusted comment:")).pop();
  let raw;
  try { raw = b64(line || ""); } catch (error) { raw = new Uint8Array(0); }
  if (raw.length !== 42 || raw[0] !== 0x45 || raw[1] !== 0x64) throw new Error("la llave pública no tiene el formato de minisign");
  return { keyId: raw.slice(2, 10), key: raw.slice(10) };
}

async function keyFingerprint(publicKey) {
  const digest = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey.key))).toUpperCase();
  return digest.match(/.{4}/g).join(":");
}

function parseSignature(text) {
  const lines = text.split("\n").map((l) => l.replace(/\r$/, ""));
  if (lines.length < 4 || !lines[2].startsWith("trusted comment: ")) throw new Error("la firma no tiene el formato de minisign");
  let raw;
  try { raw = b64(lines[1]); } catch (error) { throw new Error("la firma no tiene el formato de minisign"); }
  if (raw.length !== 74 || raw[0] !== 0x45 || raw[1] !== 0x44) throw new Error("la firma no es del tipo prehash (ED) de minisign");
  return {
    keyId: raw.slice(2, 10),
    signature: raw.slice(10),
    trusted: lines[2].slice("trusted comment: ".length),
    global: b64(lines[3]),
  };
}

async function verifyMinisign(message, signatureText, publicKey) {
  const sig = parseSignature(signatureText);
  if (!same(sig.keyId, publicKey.keyId)) throw new Error("la firma fue hecha con otra llave");
  const key = await crypto.subtle.importKey("raw", publicKey.key, { name: "Ed25519" }, false, ["verify"]);
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, sig.signature, blake2b512(message));
  if (!ok) throw new Error("la firma del manifiesto no es válida");
  const comment = new TextEncoder().encode(sig.trusted);
  const signed = new Uint8Array(64 + comment.length);
  signed.set(sig.signature); signed.set(comment, 64);
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, sig.global, signed))) throw new Error("la firma del comentario no es válida");
  return sig.trusted;
}

// --- CSV (RFC 4180: quotes, doubled quotes, CRLF) -----------------------------------------
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { row.push(field); field = ""; }
    else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += ch;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows;
}

const INTEGRITY_COLUMNS = ["CODIGO_INTEGRIDAD", "SHA"]; // INE 2021–2024; older years

// Every acta row of a PREP database: its header is found by its column names, whatever
// lines precede it (election, cut time, summary), as `difusion verify` does.
function actaRows(csvBytes) {
  const rows = parseCsv(new TextDecoder().decode(csvBytes).replace(/^\ufeff/, ""));
  let header = null, clave = -1, code = -1, casilla = -1;
  const found = [];
  for (const row of rows) {
    if (header === null) {
      const names = row.map((c) => c.trim().toUpperCase());
      const integrity = INTEGRITY_COLUMNS.find((c) => names.includes(c));
      if (names.includes("CLAVE_ACTA") && integrity) {
        header = names; clave = names.indexOf("CLAVE_ACTA"); code = names.indexOf(integrity);
        casilla = names.indexOf("CLAVE_CASILLA");
      }
      continue;
    }
    if (row.length > Math.max(clave, code) && row[code].trim()) {
      found.push({
        clave: normalKey(row[clave]),
        casilla: casilla >= 0 ? normalKey(row[casilla]) : "",
        code: row[code].trim().toLowerCase(),
        header,
        row,
      });
    }
  }
  return found;
}

function normalKey(text) { return String(text).trim().replace(/^'+|'+$/g, "").trim().toUpperCase(); }

const CSV_PREFIX = "assets/csv/";
const ACTAS_PREFIX = "assets/actas/";
const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".pdf"];

function isCsv(path) { return path.startsWith(CSV_PREFIX) && path.endsWith(".csv"); }

// The image a row names: by its CLAVE_ACTA, in the election's folder the CSV is named after
// when the same clave is in several.
function imageIndex(manifest) {
  const images = new Map();
  for (const entry of manifest.files) {
    const lower = entry.path.toLowerCase();
    if (entry.path.startsWith(ACTAS_PREFIX) && IMAGE_EXTENSIONS.some((e) => lower.endsWith(e))) {
      const name = entry.path.slice(entry.path.lastIndexOf("/") + 1);
      const stem = name.slice(0, name.lastIndexOf("."));
      if (!images.has(stem)) images.set(stem, []);
      images.get(stem).push(entry.path);
    }
  }
  return images;
}

function imageFor(clave, csvPath, images) {
  const candidates = images.get(clave) || [];
  if (candidates.length <= 1) return candidates[0] || null;
  const csvName = csvPath.slice(csvPath.lastIndexOf("/") + 1);
  for (const candidate of candidates) {
    const folder = candidate.slice(0, candidate.lastIndexOf("/"));
    if (csvName.startsWith(folder.slice(folder.lastIndexOf("/") + 1) + "_")) return candidate;
  }
  return null;
}

// --- reading a site -------------------------------------------------------------------------
const WELL_KNOWN = ".well-known/prep/";
const MANIFEST = WELL_KNOWN + "manifest.json";

class SiteError extends Error {
  constructor(message, kind) { super(message); this.kind = kind; }
}

function encodePath(path) { return path.split("/").map(encodeURIComponent).join("/"); }

// One version of a site. `pin` follows the unversioned manifest URL's redirects to the version
// the site serves (/v/<N>/); every other read is made under that version without following a
// redirect: one means the version was retired mid-read (the check starts again, once).
class Site {
  constructor(base) { this.base = new URL(base); this.version = null; }

  async pin() {
    let response;
    try {
      response = await fetch(new URL(MANIFEST, this.base), { cache: "no-store" });
    } catch (error) {
      throw new SiteError(`no se pudo leer el sitio (${error.message}; ¿está en línea y permite la consulta desde este portal?)`, "inaccesible");
    }
    const match = /^(.*\/v\/(\d+)\/)\.well-known\/prep\/manifest\.json$/.exec(response.url);
    if (match) { this.base = new URL(match[1]); this.version = Number(match[2]); }
    return response;
  }

  async read(path, { optional = false } = {}) {
    let response;
    try {
      response = await fetch(new URL(encodePath(path), this.base), { cache: "no-store", redirect: "manual" });
    } catch (error) {
      throw new SiteError(`no se pudo leer ${path} (${error.message})`, "inaccesible");
    }
    if (response.type === "opaqueredirect" || (response.status >= 300 && response.status < 400)) {
      if (this.version === null) throw new SiteError(`el sitio redirige ${path} a otra dirección: no se puede leer una versión fija`, "inaccesible");
      throw new SiteError("el sitio cambió de versión durante la verificación", "version");
    }
    if (response.status === 429) {
      throw new SiteError("el sitio limitó las solicitudes desde su red (HTTP 429); intente más tarde", "limite");
    }
    if (response.status === 404 || response.status === 403 || response.status === 410) {
      if (optional) return null;
      const e = new SiteError(`HTTP ${response.status}`, "faltante"); e.status = response.status; throw e;
    }
    if (!response.ok) throw new SiteError(`HTTP ${response.status} al leer ${path}`, "inaccesible");
    return new Uint8Array(await response.arrayBuffer());
  }
}

async function sha256Hex(bytes) { return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))); }

// The signed manifest of the site at `base`, checked with `publicKey`.
async function readSigned(site, publicKey) {
  const first = await site.pin();
  if (first.status >= 500) throw new SiteError(`el sitio respondió HTTP ${first.status}`, "inaccesible");
  const notice = await suspended(site);
  if (notice) throw new SiteError(notice, "suspendido");
  if (!first.ok) throw new SiteError(`el sitio no publica un manifiesto firmado (HTTP ${first.status})`, "firma");
  const manifestBytes = new Uint8Array(await first.arrayBuffer());
  const signature = new TextDecoder().decode(await site.read(WELL_KNOWN + "manifest.json.minisig"));
  let trusted, manifest;
  try {
    trusted = await verifyMinisign(manifestBytes, signature, publicKey);
    manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  } catch (error) {
    throw new SiteError(`${error.message}. Lo que publica este sitio no es lo que firmó el Instituto`, "firma");
  }
  return { manifest, manifestBytes, trusted, manifestSha256: await sha256Hex(manifestBytes) };
}

// A suspended site serves the institute's notice: its status file says so.
async function suspended(site) {
  let bytes;
  try { bytes = await site.read(WELL_KNOWN + "estado.json", { optional: true }); } catch (error) { return ""; }
  if (!bytes) return "";
  try {
    const status = JSON.parse(new TextDecoder().decode(bytes));
    if (status.estado === "suspendido") return `el Instituto interrumpió la transmisión en este sitio desde ${status.desde}`;
  } catch (error) { /* not a notice */ }
  return "";
}

// Read `paths` with `concurrency` requests in flight; `each(path, bytes|null)` for each.
async function readAll(site, paths, concurrency, each) {
  let next = 0;
  async function worker() {
    while (next < paths.length) {
      const path = paths[next++];
      let bytes;
      try {
        bytes = await site.read(path);
      } catch (error) {
        if (error.kind !== "faltante") throw error;
        bytes = null;
      }
      await each(path, bytes);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
}

// The whole check, as `difusion verify` makes it: the signature, the newest manifest, every
// file against the manifest, and every acta image against its CODIGO_INTEGRIDAD.
async function verifySite(base, publicKey, { onProgress = () => {}, concurrency = 8, retries = 1 } = {}) {
  const started = performance.now();
  // The longest main-thread task while checking (over 50 ms only: the browser's "long task"):
  // how long the page could not answer a tap.
  let longest = 0, observer = null;
  try {
    observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) longest = Math.max(longest, e.duration); });
    observer.observe({ type: "longtask" });
  } catch (error) { observer = null; }
  const site = new Site(base);
  const result = {
    estado: "error", problema: null, mensaje: "", base: String(base), version: null,
    secuencia: null, corte: null, corteHora: null, manifiestoSha256: null, comentario: null,
    retiro: null, archivos: 0, alterados: [], faltantes: [], actasRevisadas: 0,
    actasDistintas: [], actasSinImagen: [], casillas: [], segundos: 0,
  };
  try {
    const signed = await readSigned(site, publicKey);
    const manifest = signed.manifest;
    Object.assign(result, {
      version: site.version, base: String(site.base), secuencia: manifest.sequence,
      corte: manifest.snapshot.id, corteHora: manifest.snapshot.cut_time,
      manifiestoSha256: signed.manifestSha256, comentario: signed.trusted,
      retiro: manifest.withdrawal || null, archivos: manifest.files.length,
    });
    const next = String(manifest.sequence + 1).padStart(6, "0");
    const newer = await site.read(`${WELL_KNOWN}history/${next}.json`, { optional: true });
    const served = new Map(); // path -> sha256 of what the site serves
    const csvs = new Map();
    let done = 0;
    onProgress(0, manifest.files.length);
    await readAll(site, manifest.files.map((f) => f.path), concurrency, async (path, bytes) => {
      if (bytes !== null) {
        served.set(path, await sha256Hex(bytes));
        if (isCsv(path)) csvs.set(path, bytes);
      }
      onProgress(++done, manifest.files.length);
    });
    for (const entry of manifest.files) {
      if (!served.has(entry.path)) result.faltantes.push(entry.path);
      else if (served.get(entry.path) !== entry.sha256) result.alterados.push(entry.path);
    }
    const images = imageIndex(manifest);
    const casillas = new Set();
    for (const [path, bytes] of [...csvs.entries()].sort()) {
      for (const row of actaRows(bytes)) {
        result.actasRevisadas++;
        casillas.add(row.casilla || row.clave);
        const image = imageFor(row.clave, path, images);
        const actual = image === null ? undefined : served.get(image);
        if (actual === undefined) {
          result.actasSinImagen.push({ acta: row.clave, casilla: row.casilla, imagen: image, base: path });
        } else if (actual !== row.code) {
          result.actasDistintas.push({ acta: row.clave, casilla: row.casilla, imagen: image, codigo: row.code, calculado: actual });
        }
      }
    }
    result.casillas = [...casillas].sort();
    result.alterados.sort(); result.faltantes.sort();
    if (newer) {
      result.estado = "fallido"; result.problema = "desactualizado";
      result.mensaje = `este sitio publica el corte ${manifest.snapshot.id}, pero su historial firmado ya contiene uno más reciente`;
    } else if (result.alterados.length || result.faltantes.length) {
      result.estado = "fallido"; result.problema = result.alterados.length ? "alterado" : "faltante";
      result.mensaje = `${cuenta(result.alterados.length, "archivo alterado", "archivos alterados")} y ${cuenta(result.faltantes.length, "faltante", "faltantes")} respecto del manifiesto firmado`;
    } else if (result.actasDistintas.length || result.actasSinImagen.length) {
      result.estado = "fallido"; result.problema = "acta";
      result.mensaje = `${cuenta(result.actasDistintas.length, "acta cuya imagen no corresponde", "actas cuya imagen no corresponde")} a su CODIGO_INTEGRIDAD y ${cuenta(result.actasSinImagen.length, "sin imagen", "sin imagen")}`;
    } else {
      result.estado = "verificado";
      result.mensaje = `los ${numero.format(manifest.files.length)} archivos son exactamente los que firmó el Instituto, y las ${numero.format(result.actasRevisadas)} imágenes de actas corresponden a su CODIGO_INTEGRIDAD`;
    }
  } catch (error) {
    if (error.kind === "version" && retries > 0) {
      if (observer) observer.disconnect();
      return verifySite(base, publicKey, { onProgress, concurrency, retries: retries - 1 });
    }
    result.estado = error.kind === "firma" || error.kind === "suspendido" ? "fallido" : "error";
    result.problema = error.kind || "error";
    result.mensaje = error.message;
  }
  result.segundos = (performance.now() - started) / 1000;
  if (observer) observer.disconnect();
  result.tareaMasLargaMs = Math.round(longest);
  return result;
}

// One acta, by its casilla's key (CLAVE_CASILLA) or its own (CLAVE_ACTA): the signed manifest,
// the databases (each checked against the manifest), then the image of every acta found.
async function lookUpActa(base, publicKey, key) {
  const site = new Site(base);
  const wanted = normalKey(key);
  const signed = await readSigned(site, publicKey);
  const manifest = signed.manifest;
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  const images = imageIndex(manifest);
  const found = [];
  for (const entry of manifest.files.filter((f) => isCsv(f.path))) {
    const bytes = await site.read(entry.path);
    const csvOk = (await sha256Hex(bytes)) === entry.sha256;
    for (const row of actaRows(bytes)) {
      if (row.clave !== wanted && row.casilla !== wanted) continue;
      const image = imageFor(row.clave, entry.path, images);
      const acta = { acta: row.clave, casilla: row.casilla, base: entry.path, baseIntegra: csvOk,
        columnas: row.header, fila: row.row, codigo: row.code, imagen: image, calculado: null,
        bytes: null, enManifiesto: null };
      if (image !== null) {
        const body = await site.read(image, { optional: true });
        if (body !== null) {
          acta.bytes = body;
          acta.calculado = await sha256Hex(body);
          acta.enManifiesto = listed.get(image).sha256;
        }
      }
      acta.coincide = acta.calculado !== null && acta.calculado === acta.codigo && csvOk;
      found.push(acta);
    }
  }
  return { actas: found, secuencia: manifest.sequence, corte: manifest.snapshot.id, base: String(site.base) };
}

// --- showing results (shared by both pages) ----------------------------------------------
const numero = new Intl.NumberFormat("es-MX");

// "3 archivos", "1 archivo": a count with its noun, in Mexican number format.
function cuenta(n, singular, plural) { return `${numero.format(n)} ${n === 1 ? singular : plural}`; }

// A moment as the institute wrote it (ISO 8601 with its UTC offset), in the same local time:
// 2024-06-02T20:40:00-07:00 -> 02/06/2024 20:40 (UTC−07:00).
function horaLocal(iso) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.exec(String(iso || ""));
  if (!m) return iso ? String(iso) : "—";
  const zone = m[6] === "Z" ? "UTC" : `UTC${m[6].replace("-", "−")}`;
  return `${m[3]}/${m[2]}/${m[1]} ${m[4]}:${m[5]} (${zone})`;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function showList(container, title, id, items) {
  if (!items.length) return;
  const ul = element("ul");
  for (const item of items) ul.append(element("li", {}, element("code", {}, item)));
  container.append(element("section", { id }, element("h2", {}, `${title} (${numero.format(items.length)})`), ul));
}

function showActaProblems(container, result) {
  if (result.actasDistintas.length) {
    const body = element("tbody");
    for (const a of result.actasDistintas) {
      body.append(element("tr", { "data-casilla": a.casilla, "data-acta": a.acta },
        element("td", {}, a.casilla || "—"), element("td", {}, a.acta), element("td", {}, element("code", {}, a.imagen)),
        element("td", {}, element("code", {}, a.codigo)), element("td", {}, element("code", {}, a.calculado))));
    }
    container.append(element("section", { id: "actas-distintas" },
      element("h2", {}, `Actas cuya imagen no corresponde a su CODIGO_INTEGRIDAD (${numero.format(result.actasDistintas.length)})`),
      element("table", {}, element("thead", {}, element("tr", {}, element("th", {}, "Casilla"), element("th", {}, "Acta"),
        element("th", {}, "Imagen"), element("th", {}, "CODIGO_INTEGRIDAD"), element("th", {}, "SHA-256 calculado"))), body)));
  }
  showList(container, "Actas sin imagen", "actas-sin-imagen",
    result.actasSinImagen.map((a) => `${a.casilla || a.acta} (acta ${a.acta}${a.imagen ? `, ${a.imagen}` : ""})`));
}

function showActa(container, acta, siteName) {
  const box = element("article", { class: "acta", "data-acta": acta.acta, "data-coincide": acta.coincide ? "si" : "no" });
  box.append(element("h3", {}, `Acta ${acta.acta} — casilla ${acta.casilla || "—"}`));
  const verdict = acta.coincide
    ? "COINCIDE: la huella SHA-256 de la imagen, calculada en su navegador, es el CODIGO_INTEGRIDAD de la base de datos."
    : acta.calculado === null
      ? `NO COINCIDE: ${siteName} no sirve la imagen del acta.`
      : !acta.baseIntegra
        ? "NO COINCIDE: la base de datos que sirve el sitio no es la que firmó el Instituto."
        : "NO COINCIDE: la huella SHA-256 de la imagen que sirve el sitio no es el CODIGO_INTEGRIDAD de la base de datos.";
  box.append(element("p", { class: acta.coincide ? "coincide" : "no-coincide", role: "status" }, verdict));
  const hashes = element("dl", { class: "huellas" },
    element("dt", {}, "CODIGO_INTEGRIDAD (base de datos)"), element("dd", {}, element("code", { class: "codigo" }, acta.codigo)),
    element("dt", {}, "SHA-256 de la imagen, calculado en su navegador"), element("dd", {}, element("code", { class: "calculado" }, acta.calculado || "—")));
  box.append(hashes);
  if (acta.bytes) {
    const type = acta.imagen.toLowerCase().endsWith(".pdf") ? "application/pdf" : acta.imagen.toLowerCase().endsWith(".png") ? "image/png" : "image/jpeg";
    const url = URL.createObjectURL(new Blob([acta.bytes], { type }));
    box.append(type === "application/pdf"
      ? element("p", {}, element("a", { href: url, download: acta.imagen.split("/").pop() }, "Descargar el acta (PDF)"))
      : element("img", { src: url, alt: `Imagen del acta ${acta.acta}`, class: "imagen-acta" }));
  }
  const rows = element("tbody");
  acta.columnas.forEach((name, i) => rows.append(element("tr", {}, element("th", { scope: "row" }, name), element("td", {}, acta.fila[i] ?? ""))));
  box.append(element("details", {}, element("summary", {}, `Fila de la base de datos (${acta.base})`), element("table", { class: "fila" }, rows)));
  container.append(box);
}
