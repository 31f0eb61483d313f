// The embedded default's CloudFront: runs edge/viewer_request.js for the local sites server.
//
// One JSON object per line on stdin, {"id", "pointer", "event"}: `pointer` is the value the
// store holds under `live` (a string, or null when the store has no pointer), `event` a
// viewer-request event. One line per request on stdout, {"id", "result"} with the request or
// response the function returned, or {"id", "error"} when it threw. The function is loaded
// once, as CloudFront loads it, and sees the store through the same stand-in the tests use.
// `node edge/sidecar.mjs [function file]`: another file than viewer_request.js (a control).

import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { FUNCTION_URL, fakeCloudFront, loadFunction } from './harness.mjs';

const cloudfront = fakeCloudFront({});
const handler = loadFunction(cloudfront, process.argv[2] ? pathToFileURL(process.argv[2]) : FUNCTION_URL);

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') {
    continue;
  }
  let id = null;
  try {
    const message = JSON.parse(line);
    id = message.id;
    for (const key of Object.keys(cloudfront.entries)) {
      delete cloudfront.entries[key];
    }
    if (typeof message.pointer === 'string') {
      cloudfront.entries.live = message.pointer;
    }
    const result = await handler(message.event);
    process.stdout.write(JSON.stringify({ id, result }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ id, error: String(err && err.message ? err.message : err) }) + '\n');
  }
}
