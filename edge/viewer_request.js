import cf from 'cloudfront';

// Viewer-request function (cloudfront-js-2.0) of a difusor's distribution: serves whole-site
// versions switched at once by one pointer in the associated KeyValueStore. The design, the
// pointer's format and what the docs do not promise are in docs/serving.md.
//
//   /x                 -> 302 /v/<live>/x              (no-store: follows the pointer)
//   /x from a page of /v/<N>/ (same-origin Referer, not a navigation), N live or previous
//                      -> 302 /v/<N>/x                 (a page loads all it asks from its version)
//   /.well-known/prep/borde.json -> 200 the versions this edge routes (no-store: propagation)
//   /v/<N>/x           -> origin /_v/<slot of N>/x?v=N (N live or previous: immutable, cacheable)
//   /v/<N>/x, N gone   -> 302 /v/<live>/x
//   suspended          -> the notice: / and estado.json from /_aviso/<id>/, the rest -> 302 /
//   no valid pointer   -> 503 no-store (never guess a slot: it may be half written)

const kvs = cf.kvs();

const POINTER_KEY = 'live';
const SLOTS = ['a', 'b'];
const ESTADO = '/.well-known/prep/estado.json';
const VERSIONED = /^\/v\/(\d{1,15})(\/.*)?$/;
const NOTICE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const EDGE_PROBE = '/.well-known/prep/borde.json';
// scheme://host/v/N/ : the page that asked, when the browser sent its URL (same origin)
const REFERER = /^https?:\/\/([^\/?#]+)\/v\/(\d{1,15})\//;

async function handler(event) {
  const request = event.request;
  const uri = request.uri;
  if (!isSafePath(uri)) {
    return respond(400, 'Bad Request');
  }
  let pointer;
  try {
    // Awaited on its own line: cloudfront-js-2.0 refuses `await` inside a call's arguments.
    const text = await kvs.get(POINTER_KEY);
    pointer = parsePointer(text);
  } catch (err) {
    pointer = null; // missing key (get() throws), store error, or JSON that is not a pointer
  }
  if (pointer === null) {
    return respond(503, 'Service Unavailable', { 'retry-after': { value: '5' } });
  }

  if (uri === EDGE_PROBE) {
    return edgeProbe(pointer);
  }
  const match = VERSIONED.exec(uri);
  const path = match ? match[2] || '/' : uri;
  if (pointer.state === 'suspended') {
    return notice(request, path, pointer.notice);
  }

  const query = queryString(request.querystring);
  const live = pointer.live.version;
  if (!match) {
    // An absolute URL in a page of version N (its stylesheet, script, data, acta images) stays
    // in N while N is routed: the page and all it loads are one cut (docs/serving.md 2.3).
    const pinned = pageVersion(request.headers, pointer);
    return redirect('/v/' + (pinned === null ? live : pinned) + withSlash(path), query);
  }
  const version = Number(match[1]);
  const slot = slotOf(pointer, version);
  if (slot === null) {
    return redirect('/v/' + live + withSlash(path), query);
  }
  if (match[2] === undefined || withSlash(path) !== path) {
    return redirect('/v/' + version + withSlash(path), query);
  }
  request.uri = '/_v/' + slot + (path.endsWith('/') ? path + 'index.html' : path);
  // The version is in the cache key, so a slot's entries from an earlier version are never
  // served for a later one (the cache policy must list `v`; see docs/serving.md).
  request.querystring = { v: { value: String(version) } };
  return request;
}

// The version of the page that made this request, from its Referer, when that page is of this
// site (same host), the request is not a navigation to another page (which goes to the live
// version), and the version is still routed; otherwise null.
function pageVersion(headers, pointer) {
  const referer = headers.referer;
  const host = headers.host;
  const mode = headers['sec-fetch-mode'];
  if (!referer || !host || (mode && mode.value === 'navigate')) {
    return null;
  }
  const m = REFERER.exec(referer.value);
  if (!m || m[1].toLowerCase() !== host.value.toLowerCase()) {
    return null;
  }
  const version = Number(m[2]);
  return slotOf(pointer, version) === null ? null : version;
}

// What this edge routes, for operators timing the pointer's propagation (difusion propagation):
// version numbers and the state only, never the slots, hashes or notice ids.
function edgeProbe(pointer) {
  const seen = { state: pointer.state };
  if (pointer.state !== 'suspended') {
    seen.live = pointer.live.version;
    seen.previous = pointer.previous ? pointer.previous.version : null;
  }
  const answer = respond(200, 'OK', { 'content-type': { value: 'application/json' } });
  answer.body = { encoding: 'text', data: JSON.stringify(seen) };
  return answer;
}

function notice(request, path, id) {
  if (request.uri === '/' || path === ESTADO) {
    request.uri = '/_aviso/' + id + (path === ESTADO ? ESTADO : '/index.html');
    request.querystring = { v: { value: 'aviso-' + id } };
    return request;
  }
  return redirect('/', '');
}

function slotOf(pointer, version) {
  if (version === pointer.live.version) {
    return pointer.live.slot;
  }
  if (pointer.previous && version === pointer.previous.version) {
    return pointer.previous.slot;
  }
  return null;
}

// A pointer the function does not fully understand is not served: null means 503.
function parsePointer(text) {
  const p = JSON.parse(text);
  if (!p || typeof p !== 'object') {
    return null;
  }
  if (p.state === 'suspended') {
    return typeof p.notice === 'string' && NOTICE_ID.test(p.notice) ? p : null;
  }
  if (p.state !== 'live' || !isPlacement(p.live)) {
    return null;
  }
  if (p.previous !== undefined && p.previous !== null) {
    const prev = p.previous;
    if (!isPlacement(prev) || prev.slot === p.live.slot || prev.version === p.live.version) {
      return null;
    }
  }
  return p;
}

function isPlacement(x) {
  return (
    !!x &&
    typeof x === 'object' &&
    Number.isSafeInteger(x.version) &&
    x.version > 0 &&
    SLOTS.indexOf(x.slot) !== -1
  );
}

// Every segment, percent-decoded, must be a plain name: no '.', '..', encoded '/' or '\',
// control characters, or undecodable escapes. Origin keys are built by prefixing this path.
function isSafePath(uri) {
  if (typeof uri !== 'string' || uri.charAt(0) !== '/' || uri.length > 4096) {
    return false;
  }
  const segments = uri.split('/');
  for (let i = 1; i < segments.length; i++) {
    let name;
    try {
      name = decodeURIComponent(segments[i]);
    } catch (err) {
      return false;
    }
    if (name === '.' || name === '..' || /[\/\\\u0000-\u001f\u007f]/.test(name)) {
      return false;
    }
  }
  return true;
}

// A directory URL ends with '/', so its page's relative URLs resolve inside it (and inside its
// version); a last segment without a dot is taken for a directory, as the institute's site does.
function withSlash(path) {
  const last = path.slice(path.lastIndexOf('/') + 1);
  return last === '' || last.indexOf('.') !== -1 ? path : path + '/';
}

// CloudFront hands the query string as the viewer sent it; it is passed on unchanged, escaping
// only what cannot appear in a Location header (one it cannot escape is dropped, not fatal).
function queryString(qs) {
  try {
    return joinQuery(qs);
  } catch (err) {
    return '';
  }
}

function joinQuery(qs) {
  const parts = [];
  const names = Object.keys(qs || {});
  for (let i = 0; i < names.length; i++) {
    const entry = qs[names[i]];
    const values = entry.multiValue ? entry.multiValue : [entry];
    for (let j = 0; j < values.length; j++) {
      const value = values[j].value;
      parts.push(escapeQuery(names[i]) + (value === '' ? '' : '=' + escapeQuery(value)));
    }
  }
  return parts.join('&');
}

function escapeQuery(text) {
  return String(text).replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@\/?%]+/g, function (run) {
    return encodeURIComponent(run);
  });
}

function redirect(location, query) {
  return respond(302, 'Found', { location: { value: query ? location + '?' + query : location } });
}

// Every answer the function makes itself may be read cross-origin: the institute's verifier
// (on its own portal) must follow the redirect to the live version. A redirect, a 400 or a 503
// carries nothing but where the site's version is; the files it leads to are opened only to the
// institute's portal, by the response headers policy (docs/serving.md 2.6).
function respond(statusCode, statusDescription, headers) {
  const all = headers || {};
  all['cache-control'] = { value: 'no-store' };
  all['access-control-allow-origin'] = { value: '*' };
  return { statusCode: statusCode, statusDescription: statusDescription, headers: all };
}
