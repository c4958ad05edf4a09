// Records every module a Node process loads, for the CLI start-time test and bench/cli-start.ts.
//
//   KEYWARDEN_LOAD_TRACE=/tmp/loaded.txt node --import ./tools/load-trace.mjs bin/keywarden.js --help
//
// writes one file path (or URL) a line: ES modules as the resolve hook (module.register) sees them,
// plus every CommonJS file in the require cache at exit (what CommonJS packages require among
// themselves never reaches the ESM hooks).
import fs from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.KEYWARDEN_LOAD_TRACE;
if (out) {
  fs.writeFileSync(out, '');
  register('./load-trace-hooks.mjs', import.meta.url, { data: { out } });
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const cjs = Object.keys(cache);
    if (cjs.length > 0) fs.appendFileSync(out, cjs.join('\n') + '\n');
  });
}
