/// <reference lib="dom" />
import { beforeAll, describe, expect, it } from 'vitest';
import QRCode from 'qrcode';
import { formatKeyIdForDisplay } from '../../src/domain/key-id.js';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, pageTraces, seriousA11yViolations } from './harness.js';

/**
 * Issue 17: the audit log as an auditor uses it (search by key ID, labelled columns, details as
 * labelled fields, record IDs only in the details drawer, never a key), and the QR code on the
 * authenticator setup screen (drawn in the page, the same modules as the otpauth URI's QR code).
 */
const OPERATOR = cliActor('browser-test');
const TICKET = 'AUD-7001';

describe('audit log and authenticator QR code in Chromium', () => {
  const suite = chromiumSuite();
  /** The revealed demo key: its stored ID, device, record id and password (which must never show). */
  let key: { keyId: string; device: string; recordId: string; password: string };

  beforeAll(async () => {
    const sample = suite.server.demo.samplePrefixes[0]!;
    const r = await suite.server.container.keys.revealByKeyId(OPERATOR, { query: sample.prefix, reason: 'bios-changed', ticket: TICKET });
    if (r.status !== 'revealed') throw new Error(`the demo key ${sample.prefix} did not reveal: ${r.status}`);
    key = { keyId: r.key.keyId!, device: sample.device, recordId: r.key.id, password: r.key.recoveryPassword };
  });

  const as = (role: string) => suite.pageAs(role);

  it('an auditor finds a reveal by key ID and reads it in labelled columns, without JSON, record IDs or the key', async () => {
    const { page: p, context } = await as('auditor');
    await p.getByRole('navigation').getByRole('link', { name: 'Audit log' }).click();
    await p.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    for (const name of ['Time', 'Actor', 'Action', 'Client', 'Device', 'Key ID', 'Ticket', 'Reason', 'Outcome', 'Details']) {
      expect(await p.getByRole('columnheader', { name, exact: true }).count(), name).toBe(1);
    }
    // As read out on the phone: lower case, an opening brace, the first 8 characters.
    await p.getByLabel('Search').fill(`{${key.keyId.slice(0, 8).toLowerCase()}`);
    const shown = formatKeyIdForDisplay(key.keyId);
    const rows = p.getByTestId('audit-row');
    await expect.poll(async () => (await rows.allInnerTexts()).length > 0 && (await rows.allInnerTexts()).every((t) => t.includes(shown))).toBe(true);
    const row = rows.filter({ hasText: TICKET });
    await row.first().waitFor();
    const cells = await row.first().getByRole('cell').allInnerTexts();
    expect(cells.slice(1, 9)).toEqual(['browser-test (local CLI)', 'Key revealed', expect.any(String), key.device, shown, TICKET, 'BIOS Changed', 'Success']);

    const table = await p.getByRole('region', { name: 'Audit events' }).innerText();
    expect(table).not.toContain('{"');
    expect(table).not.toContain(key.recordId);
    expect(table).not.toContain('bios-changed');
    expect(await seriousA11yViolations(p)).toEqual([]);

    // The drawer has every fact as a labelled field; the record IDs are there, under their own heading.
    await row
      .first()
      .getByRole('button', { name: /All details/ })
      .click();
    const drawer = p.getByRole('dialog', { name: 'Event details' });
    await drawer.getByText('Record IDs').waitFor();
    const text = await drawer.innerText();
    expect(text).toContain(key.recordId);
    expect(text).toMatch(/Reason\s+BIOS Changed/);
    expect(text).not.toContain('{"');
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.keyboard.press('Escape');

    // A search that matches nothing says so in words.
    await p.getByLabel('Search').fill('FFFFFFFF');
    await p.getByText('No events match').waitFor();

    // Never the key: not in the page, its address, storage or console.
    expect(await p.content()).not.toContain(key.password);
    expect(await pageTraces(p, context)).not.toContain(key.password);
  });

  it('authenticator setup shows a QR code of the otpauth URI, drawn in the page, with the setup key to copy', async () => {
    const { page: p, context, consoleLines } = await as('admin');
    const requests: string[] = [];
    p.on('request', (r) => requests.push(r.url()));
    await p.goto('/settings/account');
    await p.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const qr = p.getByRole('img', { name: /QR code for your authenticator app/ });
    await qr.waitFor();
    const setupKey = (await p.getByTestId('mfa-setup-key').innerText()).replace(/\s+/g, '');
    const uri = (await p.getByRole('link', { name: /Open in an authenticator app/ }).getAttribute('href'))!;
    expect(uri).toMatch(/^otpauth:\/\/totp\//);
    expect(new URL(uri).searchParams.get('secret')).toBe(setupKey);
    expect(await p.getByRole('button', { name: /Copy: setup key/ }).count()).toBe(1);

    // Read the drawn modules back (the centre pixel of each) and compare with the URI's own QR code.
    const expected = QRCode.create(uri, { errorCorrectionLevel: 'M' }).modules;
    const drawn = await qr.evaluate((el, size) => {
      const c = el as HTMLCanvasElement;
      const scale = c.width / (size + 8);
      const img = c.getContext('2d')!.getImageData(0, 0, c.width, c.height);
      const dark: boolean[] = [];
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const px = Math.floor((x + 4 + 0.5) * scale);
          const py = Math.floor((y + 4 + 0.5) * scale);
          dark.push(img.data[(py * c.width + px) * 4]! < 128);
        }
      }
      return dark;
    }, expected.size);
    expect(drawn).toEqual(Array.from(expected.data, (b) => b === 1));
    expect(await seriousA11yViolations(p)).toEqual([]);

    // Drawn here: no request carries the secret, nor does the address, storage or the console.
    expect(requests.filter((u) => u.includes(setupKey))).toEqual([]);
    expect(p.url()).not.toContain(setupKey);
    expect(await pageTraces(p, context)).not.toContain(setupKey);
    expect(consoleLines.join('\n')).not.toContain(setupKey);
  });
});
