/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { randomKeyId, randomRecoveryPassword } from '../helpers/keys.js';
import { chromiumSuite, DESKTOP, PHONE, screenshot, seriousA11yViolations } from './harness.js';

/**
 * The Import screen (issue 17, item 2): choose a client, add key files with the picker and by
 * dragging them in, preview (dry run: nothing stored), import, and read the results with their
 * rejected lines and links to the devices. The keys are checked in the vault afterwards. Every
 * password here is random, checksum-valid test data; none of them may ever appear on the page.
 */
const OWNER = cliActor('browser-test');
/** A small upload limit, so "too large" can be walked without a 64 MB file. */
const LIMIT_MB = 1;

/** A recovery key file as Windows saves it (its device is not named: the form's device name is used). */
const recoveryTxt = (keyId: string, password: string) =>
  [
    'BitLocker Drive Encryption recovery key',
    '',
    'To verify that this is the correct recovery key, compare the start of the following identifier with the identifier value displayed on your PC.',
    '',
    'Identifier:',
    '',
    `\t${keyId.toUpperCase()}`,
    '',
    'If the above identifier matches the one displayed by your PC, then use the following key to unlock your drive.',
    '',
    'Recovery Key:',
    '',
    `\t${password}`,
    '',
  ].join('\r\n');

/** One wrong digit: the last group no longer divides by 11. */
const broken = (pw: string) => pw.slice(0, -1) + String((Number(pw.slice(-1)) + 1) % 10);

type Plan = {
  csvName: string;
  csv: string;
  txtName: string;
  txt: string;
  csvKeys: { keyId: string; device: string }[];
  txtKeyId: string;
  passwords: string[];
};

function plan(tag: string): Plan {
  const pw = [randomRecoveryPassword(), randomRecoveryPassword(), randomRecoveryPassword(), randomRecoveryPassword()];
  const csvKeys = [
    { keyId: randomKeyId(), device: `FAKE-${tag}-LAPTOP-01` },
    { keyId: randomKeyId(), device: `FAKE-${tag}-LAPTOP-02` },
  ];
  const bad = broken(pw[2]!);
  const csv =
    [
      'Device,Key ID,Recovery Password,Drive',
      `${csvKeys[0]!.device},${csvKeys[0]!.keyId},${pw[0]},C:`,
      `${csvKeys[1]!.device},${csvKeys[1]!.keyId},${pw[1]},C:`,
      `FAKE-${tag}-LAPTOP-03,${randomKeyId()},${bad},C:`,
      `FAKE-${tag}-LAPTOP-04,not-a-key-id,${randomRecoveryPassword()},C:`,
    ].join('\n') + '\n';
  const txtKeyId = randomKeyId();
  return {
    csvName: `fake-rmm-export-${tag}.csv`,
    csv,
    txtName: `BitLocker Recovery Key ${txtKeyId.toUpperCase()}.TXT`,
    txt: recoveryTxt(txtKeyId, pw[3]!),
    csvKeys,
    txtKeyId,
    passwords: [...pw, bad],
  };
}

/** Drops files on the drop zone the way a browser does: a DataTransfer carried by dragenter, dragover and drop. */
async function dropFiles(page: Page, files: { name: string; text: string }[]) {
  const zone = page.getByRole('group', { name: 'Drop key files here' });
  await zone.evaluate((el, list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([f.text], f.name, { type: 'text/plain' }));
    for (const type of ['dragenter', 'dragover', 'drop']) el.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }, files);
}

describe('Import screen (Chromium)', () => {
  const suite = chromiumSuite({ env: { KEYWARDEN_UPLOAD_LIMIT_MB: String(LIMIT_MB) } });

  const as = (role: string, viewport: { width: number; height: number } = DESKTOP, colorScheme: 'light' | 'dark' = 'light') =>
    suite.pageAs(role, { viewport, colorScheme });

  const openImports = async (page: Page, phone: boolean) => {
    if (phone) await page.getByRole('button', { name: 'Open navigation' }).click();
    await page.getByRole('navigation').getByRole('link', { name: 'Import', exact: true }).click();
    await page.waitForURL('**/imports');
    await page.getByRole('heading', { name: 'Import keys', level: 1 }).waitFor();
  };

  const keysOf = async (clientId: string) => suite.server.container.keys.list(OWNER, { clientId, limit: 500 });

  const noHorizontalScroll = async (page: Page) =>
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(await page.evaluate(() => window.innerWidth));

  for (const [name, viewport, scheme] of [
    ['desktop, light', DESKTOP, 'light'],
    ['desktop, dark', DESKTOP, 'dark'],
    ['phone, light', PHONE, 'light'],
    ['phone, dark', PHONE, 'dark'],
  ] as const) {
    it(`picker and drop → preview (nothing stored) → import → results with rejected lines and devices (${name})`, async () => {
      const phone = viewport === PHONE;
      const tag = `${phone ? 'P' : 'D'}${scheme === 'dark' ? 'K' : 'L'}`;
      const client = await suite.server.container.clients.create(OWNER, { name: `Fake Imports ${tag} Ltd` });
      const p = plan(tag);
      const { page, consoleLines } = await as('admin', viewport, scheme);
      await openImports(page, phone);

      // The first state says which files are read.
      const help = page.getByRole('group', { name: 'Drop key files here' });
      expect(await help.innerText()).toMatch(/recovery key files \(\.txt\)[\s\S]*manage-bde[\s\S]*CSV[\s\S]*JSON/);
      expect(await seriousA11yViolations(page)).toEqual([]);

      // No client chosen: said at the field, nothing sent.
      await page.getByRole('button', { name: 'Preview import' }).click();
      await page.getByText('Choose the client these keys belong to.').waitFor();
      await page.getByRole('combobox', { name: 'Client' }).selectOption({ label: client.name });
      await page.getByLabel('Device name').fill(`FAKE-${tag}-FRONTDESK`);

      // The picker button (keyboard: it is a plain button) opens the file chooser.
      const chooser = page.waitForEvent('filechooser');
      if (phone) await page.getByRole('button', { name: 'Choose files' }).click();
      else {
        await page.getByRole('button', { name: 'Choose files' }).focus();
        await page.keyboard.press('Enter');
      }
      await (await chooser).setFiles([{ name: p.csvName, mimeType: 'text/csv', buffer: Buffer.from(p.csv) }]);
      // Drag and drop: the recovery key .txt, and a spreadsheet that is refused at once.
      await dropFiles(page, [
        { name: p.txtName, text: p.txt },
        { name: 'keys.xlsx', text: 'PK' },
      ]);
      await page.getByText('keys.xlsx is not a key file Keywarden can read', { exact: false }).waitFor();
      const list = page.getByRole('list', { name: 'Files to import' });
      expect((await list.getByRole('listitem').allInnerTexts()).map((s) => s.split('\n')[0])).toEqual([p.csvName, p.txtName]);

      // Preview: counts, files, rejected lines; nothing is stored.
      await page.getByRole('button', { name: 'Preview import' }).click();
      const summary = page.getByRole('list', { name: 'What the import would do' });
      await summary.waitFor();
      await summary.getByRole('listitem', { name: 'Would be added: 3' }).waitFor();
      await summary.getByRole('listitem', { name: 'Rejected lines: 2' }).waitFor();
      const rejected = page.getByRole('table', { name: 'Rejected lines' });
      const rows = await rejected.locator('tbody tr').allInnerTexts();
      expect(rows).toHaveLength(2);
      expect(rows[0]).toMatch(new RegExp(`${p.csvName}\\s+4\\s+.*checksum`, 'i'));
      expect(rows[1]).toMatch(new RegExp(`${p.csvName}\\s+5\\s+Key ID`, 'i'));
      await page.getByText(`Devices: ${p.csvKeys[0]!.device}, ${p.csvKeys[1]!.device}, FAKE-${tag}-FRONTDESK.`, { exact: false }).waitFor();
      expect(await keysOf(client.id)).toEqual([]);
      expect(await seriousA11yViolations(page)).toEqual([]);
      await screenshot(page, `imports-preview-${tag}`);
      if (phone) await noHorizontalScroll(page);

      // Import: the keys are in the vault, under the right devices.
      await page.getByRole('button', { name: 'Import 3 keys' }).click();
      await page.getByRole('heading', { name: 'Import finished', level: 1 }).waitFor();
      await page.getByRole('list', { name: 'What the import did' }).getByRole('listitem', { name: 'Added: 3' }).waitFor();
      expect(await page.getByRole('table', { name: 'Rejected lines' }).locator('tbody tr').count()).toBe(2);
      const stored = await keysOf(client.id);
      expect(stored.map((k) => [k.keyId, k.device?.name]).sort()).toEqual(
        [...p.csvKeys.map((k) => [k.keyId, k.device]), [p.txtKeyId, `FAKE-${tag}-FRONTDESK`]].sort(),
      );
      expect(stored.every((k) => k.sources.some((s) => s.type === 'import'))).toBe(true);
      expect(await seriousA11yViolations(page)).toEqual([]);
      await screenshot(page, `imports-result-${tag}`);
      if (phone) await noHorizontalScroll(page);

      // No recovery password (or a recognisable part of one) anywhere on the page or in the console log.
      const text = await page.locator('body').innerText();
      for (const pw of p.passwords) {
        expect(text).not.toContain(pw.slice(0, 13));
        expect(consoleLines.join('\n')).not.toContain(pw.slice(0, 13));
      }

      // The results lead to the client and its devices.
      expect(await page.getByRole('link', { name: `Open ${client.name}` }).getAttribute('href')).toBe(`/clients/${client.id}`);
      const device = stored.find((k) => k.keyId === p.csvKeys[0]!.keyId)!.device!;
      const devices = page.getByRole('region', { name: 'Devices' });
      expect((await devices.getByRole('link').allInnerTexts()).sort()).toEqual([...p.csvKeys.map((k) => k.device), `FAKE-${tag}-FRONTDESK`].sort());
      await devices.getByRole('link', { name: device.name, exact: true }).click();
      await page.waitForURL(`**/devices/${device.id}`);
      // The screen itself never failed (an error in a component shows only here).
      expect(consoleLines.filter((l) => /TypeError|ReferenceError|An error occurred in/.test(l))).toEqual([]);
    });
  }

  it('the same files again are "already in the vault"; an unreadable file and a too-large file are explained', async () => {
    const client = await suite.server.container.clients.create(OWNER, { name: 'Fake Imports Again Ltd' });
    const p = plan('AGAIN');
    const { page } = await as('owner');
    await page.goto(`/imports?client=${client.id}`);
    expect(await page.getByRole('combobox', { name: 'Client' }).inputValue()).toBe(client.id);

    await dropFiles(page, [{ name: p.csvName, text: p.csv }]);
    await page.getByRole('button', { name: 'Preview import' }).click();
    await page.getByRole('button', { name: 'Import 2 keys' }).click();
    await page.getByRole('heading', { name: 'Import finished', level: 1 }).waitFor();
    expect(await keysOf(client.id)).toHaveLength(2);

    await page.getByRole('button', { name: 'Import more files' }).click();
    await dropFiles(page, [
      { name: p.csvName, text: p.csv },
      { name: 'notes.json', text: 'these are my notes, not an export' },
    ]);
    await page.getByRole('button', { name: 'Preview import' }).click();
    const summary = page.getByRole('list', { name: 'What the import would do' });
    await summary.getByRole('listitem', { name: 'Already in the vault: 2' }).waitFor();
    await summary.getByRole('listitem', { name: 'Would be added: 0' }).waitFor();
    const files = page.getByRole('list', { name: 'Files', exact: true });
    expect(await files.getByRole('listitem').filter({ hasText: 'notes.json' }).innerText()).toMatch(/Not readable/i);
    const whole = page.getByRole('table', { name: 'Rejected lines' }).locator('tbody tr').filter({ hasText: 'notes.json' });
    expect(await whole.innerText()).toMatch(/notes\.json\s+whole file\s+\S+/);
    // Only known keys: importing records that they were seen again, nothing new.
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('heading', { name: 'Import finished', level: 1 }).waitFor();
    expect(await keysOf(client.id)).toHaveLength(2);

    // A file over the server's upload limit: a clear message, nothing stored.
    await page.getByRole('button', { name: 'Import more files' }).click();
    const big = 'x'.repeat(LIMIT_MB * 1024 * 1024 + 4096);
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose files' }).click();
    await (await chooser).setFiles([{ name: 'huge-export.csv', mimeType: 'text/csv', buffer: Buffer.from(big) }]);
    await page.getByRole('button', { name: 'Preview import' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'The files were not imported' });
    await alert.waitFor();
    expect(await alert.innerText()).toMatch(/larger than this server accepts/);
    expect(await keysOf(client.id)).toHaveLength(2);
    expect(await seriousA11yViolations(page)).toEqual([]);
  });

  it('a role without key:import sees no Import link and is sent away from /imports', async () => {
    const { page } = await as('technician');
    const nav = page.getByRole('navigation');
    await nav.getByRole('link', { name: 'Clients' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Import', exact: true }).count()).toBe(0);
    await page.goto('/imports');
    await page.waitForURL((u) => !u.pathname.startsWith('/imports'));
    expect(await page.getByRole('heading', { name: 'Import keys' }).count()).toBe(0);
  });
});
