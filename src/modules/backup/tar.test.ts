import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { extractTarEntry, fileDigest, listTar, readTarEntry, writeTar } from './tar.js';

/** The backup container is plain ustar: the system's tar reads ours, and we read the system's. */
describe('backup tar container', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-tar-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes archives that tar lists and extracts byte for byte', () => {
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, randomBytes(3 * 1024 * 1024 + 123)); // several pieces, odd size
    const out = path.join(dir, 'a.tar');
    const sums = writeTar(out, [
      { name: 'manifest.json', data: Buffer.from('{"a":1}\n') },
      { name: 'keywarden.db', file: big },
    ]);
    expect(sums[1]).toEqual({ name: 'keywarden.db', ...fileDigest(big) });
    expect(fs.statSync(out).size % 512).toBe(0);
    const list = spawnSync('tar', ['-tvf', out], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/manifest\.json/);
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    expect(spawnSync('tar', ['-xf', out, '-C', x]).status).toBe(0);
    expect(fs.readFileSync(path.join(x, 'keywarden.db')).equals(fs.readFileSync(big))).toBe(true);
    expect(fs.readFileSync(path.join(x, 'manifest.json'), 'utf8')).toBe('{"a":1}\n');
    // And never overwrites.
    expect(() => writeTar(out, [])).toThrow();
  });

  it('reads an archive made by the system tar, and refuses cut or altered headers', () => {
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'manifest.json'), '{"b":2}');
    fs.writeFileSync(path.join(src, 'keywarden.pgdump'), randomBytes(70_000));
    const out = path.join(dir, 'sys.tar');
    expect(spawnSync('tar', ['--format=ustar', '-cf', out, '-C', src, 'manifest.json', 'keywarden.pgdump']).status).toBe(0);
    const entries = listTar(out);
    expect(entries.map((e) => e.name)).toEqual(['manifest.json', 'keywarden.pgdump']);
    expect(readTarEntry(out, entries[0]!).toString()).toBe('{"b":2}');
    const dest = path.join(dir, 'dump');
    expect(extractTarEntry(out, entries[1]!, dest)).toBe(fileDigest(path.join(src, 'keywarden.pgdump')).sha256);

    const raw = fs.readFileSync(out);
    fs.writeFileSync(path.join(dir, 'cut.tar'), raw.subarray(0, 40_000));
    expect(() => listTar(path.join(dir, 'cut.tar'))).toThrow(/cut short/);
    const bad = Buffer.from(raw);
    bad[0] = bad[0]! ^ 0x01; // the first name byte: the header checksum no longer matches
    fs.writeFileSync(path.join(dir, 'bad.tar'), bad);
    expect(() => listTar(path.join(dir, 'bad.tar'))).toThrow(/checksum/);
  });
});
