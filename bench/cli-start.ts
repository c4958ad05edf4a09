/**
 * CLI start-up time (issue 18: `keywarden --help` and `keywarden lookup` in < 0.5 s, against
 * `node -e 0` in the same run). Each case is a fresh process of the built bin, as `npx keywarden`
 * starts it; the cases take turns, N rounds, and the median is reported with its ratio to node -e 0.
 *
 *   npx tsx bench/cli-start.ts                        # SQLite, 15 rounds
 *   npx tsx bench/cli-start.ts --runs 30 --engine postgres
 *   npx tsx bench/cli-start.ts --bin /other/tree/bin/keywarden.js   # another build (before/after)
 *   npx tsx bench/cli-start.ts --json                 # one JSON line at the end (bench/run.ts reads it)
 *
 * The lookup is a real one: a temporary vault with 1,000 imported keys, one revealed by its first
 * 8 characters (the reveal limit is raised for the run). "modules" is how many files the process
 * loaded, counted once per case with tools/load-trace.mjs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { createBenchVault, csvOf, keyIdOf, type Engine } from './gen.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const RUNS = Number(opt('runs', '15'));
const ENGINE = opt('engine', 'sqlite') as Engine;
const JSON_OUT = args.includes('--json');
const REPO = path.resolve(import.meta.dirname, '..');
const BIN = path.resolve(opt('bin', path.join(REPO, 'bin', 'keywarden.js')));
const TRACER = pathToFileURL(path.join(REPO, 'tools', 'load-trace.mjs')).href;
const TARGET_MS = 500;
const SEED = 'keywarden-cli-start';

export type CliStartRow = { case: string; medianMs: number; minMs: number; baselineMs: number; ratio: number; modules: number | null; targetMs: number | null };

const log = (s: string) => (JSON_OUT ? process.stderr.write(s + '\n') : console.log(s));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const vault = await createBenchVault(ENGINE, 'cli', { KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000' });
try {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...vault.env };
  const run = (argv: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, argv, { cwd: vault.dir, env: { ...env, ...extraEnv }, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).slice(-400)}`);
    return { ms, stdout: r.stdout };
  };
  const csv = path.join(vault.dir, 'keys.csv');
  fs.writeFileSync(csv, csvOf(SEED, 1000));
  run([BIN, 'client', 'add', 'Bench']);
  run([BIN, 'import', csv, '--client', 'Bench']);
  const keyId = keyIdOf(SEED, 0);

  const cases: { name: string; argv: string[]; target: boolean; check?: (stdout: string) => void }[] = [
    { name: 'node -e 0', argv: ['-e', '0'], target: false },
    { name: 'keywarden --help', argv: [BIN, '--help'], target: true },
    { name: 'keywarden lookup --help', argv: [BIN, 'lookup', '--help'], target: true },
    {
      name: 'keywarden lookup KEYID (reveal)',
      argv: [BIN, 'lookup', keyId.slice(0, 8), '--reason', 'bios-changed', '--ticket', 'BENCH-1', '--json'],
      target: true,
      check: (out) => {
        if ((JSON.parse(out) as { keyId?: string }).keyId !== keyId) throw new Error(`lookup revealed another key: ${out.slice(0, 200)}`);
      },
    },
  ];
  log(`CLI start-up: ${BIN} on ${ENGINE}, ${RUNS} rounds (node ${process.version})`);
  // One warm-up round (file system cache), then the cases take turns so drift hits them alike.
  for (const c of cases) c.check?.(run(c.argv).stdout);
  const times = new Map(cases.map((c) => [c.name, [] as number[]]));
  for (let i = 0; i < RUNS; i++) for (const c of cases) times.get(c.name)!.push(run(c.argv).ms);

  const modules = (c: (typeof cases)[number]) => {
    if (c.argv[0] !== BIN) return null;
    const file = path.join(vault.dir, 'load-trace.txt');
    run(['--import', TRACER, ...c.argv], { KEYWARDEN_LOAD_TRACE: file });
    return new Set(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)).size;
  };
  const baselineMs = median(times.get('node -e 0')!);
  const rows: CliStartRow[] = cases.map((c) => {
    const ts = times.get(c.name)!;
    const medianMs = median(ts);
    return {
      case: c.name,
      medianMs: Number(medianMs.toFixed(1)),
      minMs: Number(Math.min(...ts).toFixed(1)),
      baselineMs: Number(baselineMs.toFixed(1)),
      ratio: Number((medianMs / baselineMs).toFixed(2)),
      modules: modules(c),
      targetMs: c.target ? TARGET_MS : null,
    };
  });
  log(`\n${'case'.padEnd(34)} ${'median ms'.padStart(10)} ${'min ms'.padStart(8)} ${'× node -e 0'.padStart(12)} ${'modules'.padStart(8)}  target`);
  for (const r of rows) {
    log(
      `${r.case.padEnd(34)} ${r.medianMs.toFixed(1).padStart(10)} ${r.minMs.toFixed(1).padStart(8)} ${r.ratio.toFixed(2).padStart(12)} ${String(r.modules ?? '').padStart(8)}  ${
        r.targetMs ? `< ${r.targetMs} ms: ${r.medianMs < r.targetMs ? 'met' : 'MISSED'}` : ''
      }`,
    );
  }
  if (JSON_OUT) console.log(JSON.stringify({ engine: ENGINE, runs: RUNS, bin: BIN, rows }));
} finally {
  await vault.drop();
}
