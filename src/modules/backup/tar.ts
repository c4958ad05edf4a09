import fs from 'node:fs';
import { createHash } from 'node:crypto';

/**
 * A backup is a plain POSIX tar archive (ustar), so `tar -tf` lists it and `tar -xf` unpacks it
 * without Keywarden. Only what a backup needs: regular files, written and read in order, names
 * under 100 characters, sizes under 8 GiB. Files are copied in 1 MiB pieces, never held whole.
 */
const BLOCK = 512;
const PIECE = 1024 * 1024;
const MAX_SIZE = 8 * 1024 ** 3 - 1;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 99) throw new Error(`tar: name too long: ${name}`);
  if (size > MAX_SIZE) throw new Error('tar: a file in the backup is larger than 8 GiB');
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 'utf8');
  h.write(octal(0o600, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(Math.floor(mtime / 1000), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum field counts as spaces while summing
  h.write('0', 156, 'ascii');
  h.write('ustar\u000000', 257, 'binary');
  h.write('keywarden', 265, 'ascii');
  h.write('keywarden', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

export type TarEntry = { name: string; data: Buffer } | { name: string; file: string };

/** Writes the entries to `out` (which must not exist); returns the SHA-256 and size of each. */
export function writeTar(out: string, entries: TarEntry[], mtime = Date.now()): { name: string; bytes: number; sha256: string }[] {
  const fd = fs.openSync(out, 'wx', 0o600);
  const sums: { name: string; bytes: number; sha256: string }[] = [];
  try {
    for (const e of entries) {
      const size = 'data' in e ? e.data.length : fs.statSync(e.file).size;
      fs.writeSync(fd, header(e.name, size, mtime));
      const hash = createHash('sha256');
      if ('data' in e) {
        fs.writeSync(fd, e.data);
        hash.update(e.data);
      } else {
        const src = fs.openSync(e.file, 'r');
        try {
          const buf = Buffer.alloc(PIECE);
          let copied = 0;
          for (;;) {
            const n = fs.readSync(src, buf, 0, PIECE, copied);
            if (n === 0) break;
            fs.writeSync(fd, buf, 0, n);
            hash.update(buf.subarray(0, n));
            copied += n;
          }
          if (copied !== size) throw new Error(`tar: ${e.name} changed size while it was archived`);
        } finally {
          fs.closeSync(src);
        }
      }
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad) fs.writeSync(fd, Buffer.alloc(pad, 0));
      sums.push({ name: e.name, bytes: size, sha256: hash.digest('hex') });
    }
    fs.writeSync(fd, Buffer.alloc(BLOCK * 2, 0));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return sums;
}

export class TarError extends Error {}

/** Lists the regular files of a tar archive: name, offset of the data, size. */
export function listTar(file: string): { name: string; offset: number; size: number }[] {
  const fd = fs.openSync(file, 'r');
  try {
    const total = fs.fstatSync(fd).size;
    const out: { name: string; offset: number; size: number }[] = [];
    const h = Buffer.alloc(BLOCK);
    for (let pos = 0; pos + BLOCK <= total;) {
      if (fs.readSync(fd, h, 0, BLOCK, pos) !== BLOCK) throw new TarError('the archive ends in the middle of a header');
      if (h.every((b) => b === 0)) return out;
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      const stored = Number.parseInt(
        h
          .subarray(148, 156)
          .toString('ascii')
          .replace(/[\0 ]+$/, '')
          .trim(),
        8,
      );
      if (stored !== sum) throw new TarError('a header checksum is wrong');
      const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      const size = Number.parseInt(
        h
          .subarray(124, 136)
          .toString('ascii')
          .replace(/[\0 ]+$/, '')
          .trim() || '0',
        8,
      );
      const type = String.fromCharCode(h[156]!);
      if (pos + BLOCK + size > total) throw new TarError(`${name} is cut short`);
      if (type === '0' || type === '\0') out.push({ name, offset: pos + BLOCK, size });
      pos += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    }
    throw new TarError('the archive has no end marker (it was cut short)');
  } finally {
    fs.closeSync(fd);
  }
}

export function readTarEntry(file: string, entry: { offset: number; size: number }): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(entry.size);
    fs.readSync(fd, buf, 0, entry.size, entry.offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies one entry to `dest` (which must not exist); returns its SHA-256. */
export function extractTarEntry(file: string, entry: { offset: number; size: number }, dest: string): string {
  const src = fs.openSync(file, 'r');
  const out = fs.openSync(dest, 'wx', 0o600);
  const hash = createHash('sha256');
  try {
    const buf = Buffer.alloc(PIECE);
    for (let done = 0; done < entry.size;) {
      const n = fs.readSync(src, buf, 0, Math.min(PIECE, entry.size - done), entry.offset + done);
      if (n === 0) throw new TarError('the archive ends early');
      fs.writeSync(out, buf, 0, n);
      hash.update(buf.subarray(0, n));
      done += n;
    }
    fs.fsyncSync(out);
  } finally {
    fs.closeSync(src);
    fs.closeSync(out);
  }
  return hash.digest('hex');
}

/** SHA-256 and size of a file, read in pieces. */
export function fileDigest(file: string): { bytes: number; sha256: string } {
  const fd = fs.openSync(file, 'r');
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    const buf = Buffer.alloc(PIECE);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, PIECE, bytes);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}
