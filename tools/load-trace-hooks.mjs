// Module hooks for tools/load-trace.mjs (they run on the loader thread): append each resolved URL.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

let out;
export function initialize(data) {
  out = data.out;
}
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  fs.appendFileSync(out, (r.url.startsWith('file:') ? fileURLToPath(r.url) : r.url) + '\n');
  return r;
}
