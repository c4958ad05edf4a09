import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { armor } from 'age-encryption';
import {
  BundleOpenError,
  bundleProtection,
  checkRecipient,
  generateIdentity,
  openBundle,
  parseIdentityFile,
  passphraseProblem,
  recipientFingerprint,
  sealBundle,
} from './bundle.js';

describe('bundles and the reference age tool (Debian package "age", installed by .ci/run)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-age-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('age -d opens a Keywarden bundle, and Keywarden opens what age -e writes (armored or binary)', async () => {
    const g = await generateIdentity('2026-01-01T00:00:00.000Z');
    const idFile = path.join(dir, 'identity.txt');
    fs.writeFileSync(idFile, g.fileText, { mode: 0o600 });
    const text = '{"format":"keywarden-export","note":"interop"}\n';
    const bundle = path.join(dir, 'ours.age');
    fs.writeFileSync(bundle, await sealBundle(text, { kind: 'recipient', recipient: g.recipient }));
    const dec = spawnSync('age', ['-d', '-i', idFile, bundle], { encoding: 'utf8' });
    expect(dec.error, 'the age tool is not installed').toBeUndefined();
    expect(dec.status, dec.stderr).toBe(0);
    expect(dec.stdout).toBe(text);

    for (const flags of [['-a'], []]) {
      const theirs = path.join(dir, `theirs${flags.length ? '-armored' : ''}.age`);
      const enc = spawnSync('age', ['-e', ...flags, '-r', g.recipient, '-o', theirs], { input: text });
      expect(enc.status, String(enc.stderr)).toBe(0);
      expect(await openBundle(fs.readFileSync(theirs), { kind: 'identity', identity: g.identity })).toBe(text);
    }
  });
});

describe('break-glass bundle crypto (age)', () => {
  it('judges passphrases: empty, short, repetitive, obvious and low-variety ones are refused', () => {
    expect(passphraseProblem('')).toMatch(/empty/);
    expect(passphraseProblem('abc')).toMatch(/too short \(3 characters\)/);
    expect(passphraseProblem(' leading space words ok')).toMatch(/spaces/);
    expect(passphraseProblem('abababababababab')).toMatch(/too few different characters/);
    expect(passphraseProblem('Password123456!')).toMatch(/common word/);
    expect(passphraseProblem('qwerty12345678')).toMatch(/common word/);
    expect(passphraseProblem('123456789012')).toMatch(/common word/);
    expect(passphraseProblem('908172635401')).toMatch(/too weak/);
    expect(passphraseProblem('granite lantern orbit meadow')).toBeNull();
    expect(passphraseProblem('k8#Vq2!zR7wL')).toBeNull();
  });

  it('accepts only age X25519 recipients and reads age-keygen identity files', async () => {
    const g = await generateIdentity('2026-01-01T00:00:00.000Z');
    expect(checkRecipient(`  ${g.recipient}\n`)).toBe(g.recipient);
    for (const bad of ['', 'age1', 'ssh-ed25519 AAAAC3Nz', g.recipient.toUpperCase(), g.recipient + 'q'])
      expect(() => checkRecipient(bad)).toThrow(/age X25519 public key/);
    expect(parseIdentityFile(g.fileText)).toBe(g.identity);
    expect(parseIdentityFile(`# comment\r\n\r\n${g.identity}\r\n`)).toBe(g.identity);
    expect(() => parseIdentityFile('# nothing here\n')).toThrow(/no age X25519 identity/);
    expect(recipientFingerprint(g.recipient)).toMatch(/^age:[0-9a-f]{16}$/);
    expect(recipientFingerprint(g.recipient)).toBe(recipientFingerprint(` ${g.recipient} `));
  });

  it('round-trips to a recipient, tells the header apart, and classifies failures', async () => {
    const g = await generateIdentity('2026-01-01T00:00:00.000Z');
    const other = await generateIdentity('2026-01-01T00:00:00.000Z');
    const sealed = await sealBundle('{"hello":"world"}', { kind: 'recipient', recipient: g.recipient });
    const file = Buffer.from(sealed);
    expect(bundleProtection(file)).toBe('recipient');
    expect(await openBundle(file, { kind: 'identity', identity: g.identity })).toBe('{"hello":"world"}');
    await expect(openBundle(file, { kind: 'identity', identity: other.identity })).rejects.toMatchObject({ reason: 'wrong-key' });
    await expect(openBundle(file, { kind: 'passphrase', passphrase: 'granite lantern orbit meadow' })).rejects.toThrow(/made for a recipient key/);
    const bin = armor.decode(sealed);
    const flipped = Uint8Array.from(bin);
    flipped[flipped.length - 1]! ^= 0x80;
    await expect(openBundle(flipped, { kind: 'identity', identity: g.identity })).rejects.toMatchObject({ reason: 'damaged' });
    await expect(openBundle(bin.subarray(0, bin.length - 1), { kind: 'identity', identity: g.identity })).rejects.toBeInstanceOf(BundleOpenError);
    await expect(openBundle(Buffer.from('PK\u0003\u0004 a zip'), { kind: 'identity', identity: g.identity })).rejects.toMatchObject({ reason: 'not-a-bundle' });
    // A weak passphrase never gets as far as encrypting.
    await expect(sealBundle('x', { kind: 'passphrase', passphrase: 'short' })).rejects.toThrow(/too short/);
  });
});
