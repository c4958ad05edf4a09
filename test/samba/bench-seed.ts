/**
 * Measures the harness: provision + start, then seeding N computers × 1-3 recovery keys each.
 *   npx tsx test/samba/bench-seed.ts [computers=2000] [concurrency=4]
 */
import { Client } from 'ldapts';
import { randomRecoveryPassword, randomKeyId } from '../helpers/keys.js';
import { sambaAvailable, seedDirectory, startSambaDc, type SeedComputer } from './samba-dc.js';

const n = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 4);
const avail = await sambaAvailable();
if (!avail.ok) {
  console.error(`samba not available: ${avail.reason}`);
  process.exit(2);
}
const dc = await startSambaDc();
try {
  console.log('startSambaDc', dc.timings);
  const base = Date.UTC(2024, 0, 1);
  const computers: SeedComputer[] = Array.from({ length: n }, (_, i) => ({
    name: `WS${String(i).padStart(5, '0')}`,
    os: i % 3 ? 'Windows 11 Enterprise' : 'Windows 10 Pro',
    keys: Array.from({ length: 1 + (i % 3) }, (_, j) => ({
      id: randomKeyId(),
      password: randomRecoveryPassword(),
      volumeGuid: randomKeyId(),
      created: new Date(base + i * 3_600_000 + j * 60_000),
      tzOffsetMinutes: [60, -480, 0, 330][(i + j) % 4]!,
    })),
  }));
  const keys = computers.reduce((s, c) => s + c.keys.length, 0);
  const t = Date.now();
  await seedDirectory(dc, { ou: 'OU=Contoso,OU=Clients', computers }, { concurrency });
  const ms = Date.now() - t;
  console.log(`seeded ${n} computers + ${keys} recovery objects in ${ms} ms (${Math.round(((n + keys) / ms) * 1000)} adds/s, concurrency ${concurrency})`);
  const c = new Client({ url: dc.ldapsUrl, tlsOptions: { ca: [dc.caCertPem] } });
  await c.bind(dc.admin.upn, dc.admin.password);
  const ts = Date.now();
  const r = await c.search(dc.baseDn, {
    filter: '(objectClass=msFVE-RecoveryInformation)',
    attributes: ['msFVE-RecoveryGuid', 'msFVE-RecoveryPassword'],
    explicitBufferAttributes: ['msFVE-RecoveryGuid'],
    paged: { pageSize: 1000 },
  });
  console.log(`paged search found ${r.searchEntries.length} recovery objects in ${Date.now() - ts} ms`);
  await c.unbind();
} finally {
  const ts = Date.now();
  await dc.stop();
  console.log(`stop ${Date.now() - ts} ms`);
}
