/**
 * The reports again, on a vault kept by `bench/compliance-report.ts --engine sqlite --keep`, in a
 * process whose V8 heap is capped: a report that held every row (100,000 devices ≈ 13 MB of CSV,
 * several times that as row objects) would die with "heap out of memory"; a streamed one does not.
 *
 *   node --max-old-space-size=32 --import tsx bench/compliance-report-lowmem.ts /tmp/kw-bench-compliance-XXXX
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { nullNotifier } from '../src/modules/notifications/notifier.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: compliance-report-lowmem.ts DIR (kept by compliance-report.ts --keep)');
const c = await buildContainer(
  loadConfig({ KEYWARDEN_DATA_DIR: path.join(dir, 'data'), KEYWARDEN_MASTER_KEY: fs.readFileSync(path.join(dir, 'master-key'), 'utf8') }),
  { notifier: nullNotifier },
);
const owner = cliActor('bench');
const client = (await c.database.db.selectFrom('clients').select('id').executeTakeFirstOrThrow()).id;
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
const limit = (await import('node:v8')).getHeapStatistics().heap_size_limit;
console.log(`heap limit ${mb(limit)}`);
for (const [report, format] of [
  ['devices', 'csv'],
  ['compliance-summary', 'pdf'],
] as const) {
  let peakRss = process.memoryUsage().rss;
  let peakHeap = process.memoryUsage().heapUsed;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 5);
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  let bytes = 0;
  const out = fs.createWriteStream('/dev/null');
  out.on('pipe', () => undefined);
  const counter = new (await import('node:stream')).Transform({ transform: (ch, _e, cb) => ((bytes += ch.length), cb(null, ch)) });
  counter.pipe(out);
  await c.reports.render(owner, { report, clientId: client, format }, counter);
  clearInterval(timer);
  const u = process.cpuUsage(cpu);
  console.log(
    `${report} ${format}: ${((performance.now() - t0) / 1000).toFixed(2)} s wall, ${((u.user + u.system) / 1e6).toFixed(2)} s CPU, ${(bytes / 1e6).toFixed(1)} MB written, peak heap used ${mb(peakHeap)}, peak RSS ${mb(peakRss)}`,
  );
}
await c.close();
