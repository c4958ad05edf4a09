import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Executor } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { BundleProtection } from '../../crypto/bundle.js';
import { checkRecipient, passphraseProblem, recipientFingerprint } from '../../crypto/bundle-checks.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, bundleFileName, serializeBundle, type Bundle, type BundleKeyEntry } from '../../domain/export-bundle.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict, forbidden, isAppError, notFound, vaultError } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { requireFreshSecondFactor, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Scheduler } from '../jobs/scheduler.js';
import type { SchedulerRepo } from '../jobs/scheduler.repo.js';
import type { ExportableKeyRow, ExportsRepo } from './exports.repo.js';
import { FREQUENCIES, type Frequency } from './frequencies.js';
import { renderRecoverySheet } from './recovery-sheet.js';

/**
 * Offline break-glass copies: an encrypted bundle of a client's keys that opens without
 * Keywarden, an optional printed recovery sheet, and scheduled bundles written to a folder.
 *
 * A bundle discloses every working key of a client at once, so: `key:export` (a person with every
 * client, never an API token), a fresh second factor for people signed in to the console (who
 * must have an authenticator app), and every export (including a
 * refused one) is in the audit log with its scope — client, number of keys and devices, and the
 * recipient's fingerprint or "passphrase" — never the passphrase or a password. The audit event
 * commits before any byte of the bundle leaves this module.
 */
export const SCHEDULE_TASK_KIND = 'export-schedule';
export { FREQUENCIES, type Frequency };

/** age-encryption loads when a bundle is sealed, not with the container (the CLI's lookup never needs it). */
const sealBundle: typeof import('../../crypto/bundle.js').sealBundle = async (plaintext, to) =>
  (await import('../../crypto/bundle.js')).sealBundle(plaintext, to);
const MAX_KEEP = 1000;

type Deps = {
  tx: Transactions;
  repo: ExportsRepo;
  tasks: Pick<SchedulerRepo, 'nextRuns'>;
  keyring: Pick<Keyring<Executor>, 'clientCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  stepUpMinutes: number;
  scheduler: () => Scheduler;
};

export type ExportRequest = {
  clientId: string;
  /** The bundle's protection; omitted when only a sheet is wanted. */
  protection?: BundleProtection;
  /** Also render the printable recovery sheet (plaintext on paper: asked for explicitly). */
  sheet?: boolean;
};
export type ExportResult = {
  client: { id: string; name: string };
  keys: number;
  devices: number;
  /** The armored age file, when a protection was given. */
  bundle: string | null;
  sheet: Buffer | null;
  fileName: string;
};

export type ScheduleView = {
  id: string;
  client: { id: string; name: string } | null;
  recipient: string;
  recipientFingerprint: string;
  folder: string;
  frequency: Frequency;
  keep: number;
  createdBy: string;
  createdAt: string;
  lastRunAt: string | null;
  lastStatus: string | null;
  lastFile: string | null;
  nextRunAt: string | null;
};

const taskId = (scheduleId: string) => `${SCHEDULE_TASK_KIND}:${scheduleId}`;

export function createExportsService({ tx, repo, tasks, keyring, audit, clock, stepUpMinutes, scheduler }: Deps) {
  /** `key:export`, a person, a fresh step-up. Refusals are audited. */
  async function requireExporter(actor: Actor, clientId: string | null, what: string): Promise<void> {
    try {
      if (actor.type === 'token' || actor.type === 'agent') {
        throw forbidden(`API tokens cannot ${what}: sign in as an owner, or set up a scheduled export to a recipient key (keywarden export schedule add).`);
      }
      requirePermission(actor, 'key:export');
      // An export hands out the keys themselves: it is a reveal too.
      requirePermission(actor, 'key:reveal');
      // Stricter than other sensitive actions: without an authenticator app there is no step-up at all.
      if (actor.type === 'user' && !actor.session?.mfaEnrolled) {
        throw forbidden(`Set up an authenticator app first: to ${what} you confirm it is you with a current code (step-up).`);
      }
      requireFreshSecondFactor(actor, 'export recovery keys', clock.now(), stepUpMinutes);
    } catch (problem) {
      await audit.recordNow(actor, {
        action: 'export.bundle',
        outcome: 'denied',
        clientId: null,
        details: { requestedClientId: clientId, problem: (problem as Error).message },
      });
      throw problem;
    }
  }

  /** Decrypts the exportable keys of some clients inside the caller's transaction. */
  async function collect(t: Executor, clientIds: string[]): Promise<BundleKeyEntry[]> {
    const rows = await repo.exportableKeys(t, clientIds);
    const byClient = new Map<string, ExportableKeyRow[]>();
    for (const r of rows) (byClient.get(r.client_id) ?? byClient.set(r.client_id, []).get(r.client_id)!).push(r);
    const out: BundleKeyEntry[] = [];
    for (const [clientId, list] of byClient) {
      const cipher = await keyring.clientCipher(t, clientId);
      for (const r of list) {
        // Key material destroyed on purpose (retention, crypto-shred) has nothing left to export.
        if (!r.ciphertext) continue;
        out.push({
          client: r.client_name,
          clientId,
          device: r.device_name ?? null,
          volume: [r.mount_point, r.volume_type && r.volume_type !== 'unknown' ? r.volume_type : null].filter(Boolean).join(' ') || null,
          keyId: r.key_id,
          recoveryPassword: cipher.openRecoveryPassword(r.id, { ciphertext: r.ciphertext, dataKeyVersion: r.data_key_version }),
          state: r.state,
          createdAt: r.source_created_at,
          firstSeenAt: r.first_seen_at,
          lastSeenAt: r.last_seen_at,
          sources: r.sources,
        });
      }
    }
    return out;
  }

  const deviceCount = (keys: readonly BundleKeyEntry[]) => new Set(keys.map((k) => `${k.clientId}|${k.device ?? ''}`)).size;
  const protectionDetails = (p: BundleProtection | undefined) =>
    p ? (p.kind === 'passphrase' ? { protection: 'passphrase' } : { protection: 'recipient', recipientFingerprint: recipientFingerprint(p.recipient) }) : {};

  /** Atomic write: a temporary file in the same folder, flushed, then renamed over the name. */
  function writeAtomically(file: string, data: string | Buffer): void {
    const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.renameSync(tmp, file);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
  }

  const view = (s: NonNullable<Awaited<ReturnType<ExportsRepo['schedule']>>>, nextRunAt: string | null): ScheduleView => ({
    id: s.id,
    client: s.client_id ? { id: s.client_id, name: s.client_name ?? '' } : null,
    recipient: s.recipient,
    recipientFingerprint: recipientFingerprint(s.recipient),
    folder: s.folder,
    frequency: s.frequency as Frequency,
    keep: s.keep,
    createdBy: s.created_by,
    createdAt: s.created_at,
    lastRunAt: s.last_run_at,
    lastStatus: s.last_status,
    lastFile: s.last_file,
    nextRunAt,
  });

  return {
    /**
     * One client's exportable keys as an encrypted bundle and/or a printed sheet. The passphrase
     * or recipient is checked before anything is decrypted; the audit event commits first.
     */
    async exportClient(actor: Actor, req: ExportRequest): Promise<ExportResult> {
      await requireExporter(actor, req.clientId, "export a client's recovery keys");
      if (!req.protection && !req.sheet)
        throw badRequest('Say what to write: an encrypted bundle (a passphrase or a recipient key), a recovery sheet, or both.');
      if (req.protection?.kind === 'recipient') req.protection.recipient = checkRecipient(req.protection.recipient);
      if (req.protection?.kind === 'passphrase') {
        const problem = passphraseProblem(req.protection.passphrase);
        if (problem) throw badRequest(problem, { field: 'passphrase' });
      }
      const now = clock.now();
      let failure: unknown;
      const result = await tx.run(async (t) => {
        const found = await requireVisibleClient(t, actor, req.clientId, 'key:export');
        if (found.offboarded_at)
          throw conflict(
            `Client "${found.name}" was offboarded on ${found.offboarded_at.slice(0, 10)}: its keys were destroyed (crypto-shred), so there is nothing to export.`,
          );
        const client = { id: found.id, name: found.name };
        let keys: BundleKeyEntry[] = [];
        try {
          keys = await collect(t, [client.id]);
        } catch (e) {
          failure = e;
        }
        const scope = { client: client.name, keys: keys.length, devices: deviceCount(keys) };
        if (req.protection) {
          await audit.record(t, actor, {
            action: 'export.bundle',
            outcome: failure ? 'error' : 'success',
            clientId: client.id,
            targetType: 'client',
            targetId: client.id,
            details: { ...scope, ...protectionDetails(req.protection), format: 'age-v1' },
          });
        }
        if (req.sheet) {
          await audit.record(t, actor, {
            action: 'export.sheet',
            outcome: failure ? 'error' : 'success',
            clientId: client.id,
            targetType: 'client',
            targetId: client.id,
            details: { ...scope, pages: scope.devices },
          });
        }
        return { client, keys };
      });
      if (failure) throw isAppError(failure) ? failure : vaultError('The recovery passwords of this client could not be decrypted.');
      const { client, keys } = result;
      const bundle: Bundle = { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, createdAt: now, createdBy: actor.name, clients: [client], keys };
      return {
        client,
        keys: keys.length,
        devices: deviceCount(keys),
        bundle: req.protection ? await sealBundle(serializeBundle(bundle), req.protection) : null,
        sheet: req.sheet ? await renderRecoverySheet({ keys, printedAt: now, printedBy: actor.name }) : null,
        fileName: bundleFileName(client.name, now),
      };
    },

    /** A recurring export to a folder, encrypted to a recipient public key (no secret is stored). */
    async addSchedule(
      actor: Actor,
      input: { clientId: string | null; recipient: string; folder: string; frequency: Frequency; keep: number },
    ): Promise<ScheduleView> {
      await requireExporter(actor, input.clientId, 'schedule exports of recovery keys');
      const recipient = checkRecipient(input.recipient);
      if (!path.isAbsolute(input.folder)) throw badRequest('The export folder must be an absolute path.', { field: 'folder' });
      if (!(input.frequency in FREQUENCIES)) throw badRequest('The frequency is daily or weekly.', { field: 'frequency' });
      if (!Number.isInteger(input.keep) || input.keep < 1 || input.keep > MAX_KEEP)
        throw badRequest(`Keep between 1 and ${MAX_KEEP} copies.`, { field: 'keep' });
      const id = newId();
      const now = clock.now();
      await tx.run(async (t) => {
        if (input.clientId) await requireVisibleClient(t, actor, input.clientId, 'key:export');
        await repo.insertSchedule(t, {
          id,
          client_id: input.clientId,
          recipient,
          folder: path.resolve(input.folder),
          frequency: input.frequency,
          keep: input.keep,
          created_by: actor.name,
          created_at: now,
          last_run_at: null,
          last_status: null,
          last_file: null,
        });
        await scheduler().ensureTask(t, {
          id: taskId(id),
          kind: SCHEDULE_TASK_KIND,
          clientId: input.clientId,
          targetId: id,
          intervalMinutes: FREQUENCIES[input.frequency],
          firstRunAt: now,
        });
        await audit.record(t, actor, {
          action: 'export.schedule',
          outcome: 'success',
          clientId: input.clientId,
          targetType: 'export_schedule',
          targetId: id,
          details: {
            scope: input.clientId ? 'client' : 'all clients',
            recipientFingerprint: recipientFingerprint(recipient),
            folder: input.folder,
            frequency: input.frequency,
            keep: input.keep,
          },
        });
      });
      return (await this.listSchedules(actor)).find((s) => s.id === id)!;
    },

    async listSchedules(actor: Actor): Promise<ScheduleView[]> {
      requirePermission(actor, 'key:export');
      const rows = await repo.listSchedules(tx.reader);
      const next = new Map((await tasks.nextRuns(tx.reader, SCHEDULE_TASK_KIND)).map((t) => [t.target_id, t.next_run_at]));
      return rows.map((r) => view(r, next.get(r.id) ?? null));
    },

    async removeSchedule(actor: Actor, id: string): Promise<void> {
      await requireExporter(actor, null, 'remove export schedules');
      await tx.run(async (t) => {
        const s = await repo.schedule(t, id);
        if (!s) throw notFound(`No export schedule with id ${id.slice(0, 60)}.`);
        await scheduler().removeTask(t, taskId(id));
        await repo.deleteSchedule(t, id);
        await audit.record(t, actor, {
          action: 'export.unschedule',
          outcome: 'success',
          clientId: s.client_id,
          targetType: 'export_schedule',
          targetId: id,
          details: { folder: s.folder },
        });
      });
    },

    /** Runs one schedule now through the scheduler's lease (so two processes never write at once). */
    runScheduleNow(id: string): Promise<string> {
      return scheduler().runNow(taskId(id));
    },

    /**
     * The scheduler's handler: write one bundle (every covered client in one file), then delete
     * all but the newest `keep` bundles of this schedule. Returns the status line.
     */
    async runSchedule(scheduleId: string): Promise<string> {
      const actor = systemActor('scheduled export');
      const s = await repo.schedule(tx.reader, scheduleId);
      if (!s) return 'skipped: the schedule was removed';
      const now = clock.now();
      // The schedule's id in the name keeps two schedules sharing a folder from rotating each other's files.
      const prefixScope = `${s.client_id ? (s.client_name ?? s.client_id) : 'all-clients'}-${s.id.slice(0, 8)}`;
      const name = bundleFileName(prefixScope, now);
      let status: string;
      let written: string | null;
      try {
        // The folder is checked first, so an unwritable one fails before anything is decrypted or audited as exported.
        fs.mkdirSync(s.folder, { recursive: true, mode: 0o700 });
        fs.accessSync(s.folder, fs.constants.W_OK);
        const { bundle, keys } = await tx.run(async (t) => {
          const clients = s.client_id ? [{ id: s.client_id, name: s.client_name ?? '' }] : await repo.activeClients(t);
          const keys = await collect(
            t,
            clients.map((c) => c.id),
          );
          await audit.record(t, actor, {
            action: 'export.bundle',
            outcome: 'success',
            clientId: s.client_id,
            targetType: 'export_schedule',
            targetId: s.id,
            details: {
              scheduled: true,
              client: s.client_id ? s.client_name : null,
              clients: clients.length,
              keys: keys.length,
              devices: deviceCount(keys),
              protection: 'recipient',
              recipientFingerprint: recipientFingerprint(s.recipient),
              file: name,
            },
          });
          const bundle: Bundle = { format: BUNDLE_FORMAT, version: BUNDLE_VERSION, createdAt: now, createdBy: actor.name, clients, keys };
          return { bundle, keys: keys.length };
        });
        written = path.join(s.folder, name);
        writeAtomically(written, await sealBundle(serializeBundle(bundle), { kind: 'recipient', recipient: s.recipient }));
        const removed = rotate(s.folder, bundleFileName(prefixScope, now).replace(/\d{8}T\d{6}Z\.age$/, ''), s.keep);
        status = `ok: ${keys} keys in ${name}${removed ? `, ${removed} older ${removed === 1 ? 'copy' : 'copies'} removed` : ''}`;
      } catch (e) {
        written = null;
        status = `failed: ${isAppError(e) ? e.message : 'the bundle could not be written (check the folder and its permissions)'}`;
        // Audited either way; when the write itself failed, this follows the run's success event.
        await audit
          .recordNow(actor, {
            action: 'export.bundle',
            outcome: 'error',
            clientId: s.client_id,
            targetType: 'export_schedule',
            targetId: s.id,
            details: { scheduled: true, file: name, problem: status },
          })
          .catch(() => undefined);
      }
      await repo.recordRun(tx.reader, s.id, { at: now, status, file: written });
      return status;
    },
  };
}

/** Deletes all but the newest `keep` bundles starting with `prefix` (names sort by time). */
function rotate(folder: string, prefix: string, keep: number): number {
  const mine = fs
    .readdirSync(folder)
    .filter((f) => f.startsWith(prefix) && /^\d{8}T\d{6}Z\.age$/.test(f.slice(prefix.length)))
    .sort();
  const old = mine.slice(0, Math.max(0, mine.length - keep));
  for (const f of old) fs.rmSync(path.join(folder, f), { force: true });
  return old.length;
}

export type ExportsService = ReturnType<typeof createExportsService>;
