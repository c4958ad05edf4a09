import type { Kysely } from 'kysely';
import { openKeyring } from '../../src/crypto/keyring.js';
import { loadMasterKeys } from '../../src/crypto/master-key.js';
import type { Config } from '../../src/config.js';
import type { Executor } from '../../src/db/database.js';
import type { DB } from '../../src/db/schema.js';
import { parseKeyId } from '../../src/domain/key-id.js';
import { parseRecoveryPassword } from '../../src/domain/recovery-password.js';
import { newId } from '../../src/lib/ids.js';
import { createVaultRepo } from '../../src/modules/vault/vault.repo.js';
import { SimMachine, sameGuid, type SimChange, type SimProtector, type SimVolume } from './sim-machine.js';
import type { Job, JobResult, TestAgent } from './test-agent.js';

/**
 * The rule every job procedure keeps: a volume never loses its last escrowed recovery password,
 * and never starts (or resumes) protection without one. Attached to a simulated machine, it
 * checks the vault after every change the agent makes through CIM that could break that rule:
 * DeleteKeyProtector, Encrypt, ResumeConversion and EnableKeyProtectors. The agent waits for the
 * check before its next step (SimMachine.settle), so the check sees the vault as it was at that
 * moment. A key counts as held when the vault has a row with the protector's key ID whose
 * fingerprint is the HMAC of that exact password (no decryption: the e2e test counts those).
 *
 * It also checks what the agent reports: a job that escrows (backup, re-escrow, rotate,
 * add-recovery-password, resume-protection, enable-encryption) may report "succeeded" only when
 * the recovery password it names is on the machine and held by the vault at that moment.
 */
export type EscrowViolation = { method: string; volume: string; why: string };

const GUARDED = new Set(['DeleteKeyProtector', 'Encrypt', 'ResumeConversion', 'EnableKeyProtectors']);
/** Kinds whose success names the recovery password they escrowed (result.newProtectorId). */
const ESCROWS_NEW = new Set(['rotate', 'add-recovery-password', 'resume-protection', 'enable-encryption']);

export class EscrowChecker {
  readonly violations: EscrowViolation[] = [];
  /** How many changes were checked (a test that relies on the checker asserts it ran). */
  checks = 0;

  private constructor(
    private readonly db: Kysely<DB>,
    private readonly fingerprint: (clientId: string, normalizedPassword: string) => string,
  ) {}

  static async open(vault: { config: Config; container: { database: { db: Kysely<DB> } } }): Promise<EscrowChecker> {
    const db = vault.container.database.db;
    const keyring = await openKeyring(createVaultRepo(), db as Executor, () => loadMasterKeys(vault.config.masterKey), newId);
    return new EscrowChecker(db, await keyring.fingerprinter(db as Executor));
  }

  /** Checks every guarded change the agent makes on this machine from now on. */
  watch(machine: SimMachine): this {
    machine.watchers.push((change) => (GUARDED.has(change.method) ? this.check(change) : undefined));
    return this;
  }

  /** Checks every "succeeded" this agent reports for a job that escrows. */
  watchAgent(agent: TestAgent): this {
    agent.resultWatchers.push((job, result) => this.checkResult(agent.machine, job, result));
    return this;
  }

  /** True when the vault holds at least one of this volume's recovery passwords (or of these protectors), exactly. */
  async volumeEscrowed(volume: SimVolume | SimProtector[]): Promise<boolean> {
    for (const p of Array.isArray(volume) ? volume : volume.protectors) if (await this.protectorEscrowed(p)) return true;
    return false;
  }

  /** True when the vault holds this recovery password under its key ID (not destroyed). */
  async protectorEscrowed(p: SimProtector): Promise<boolean> {
    if (p.type !== 'RecoveryPassword' || !p.password) return false;
    const keyId = parseKeyId(p.id);
    const password = parseRecoveryPassword(p.password);
    if (!keyId.ok || !password.ok) return false;
    const rows = await this.db.selectFrom('recovery_keys').select(['client_id', 'fingerprint', 'state']).where('key_id', '=', keyId.value).execute();
    return rows.some((r) => r.state !== 'destroyed' && r.fingerprint === this.fingerprint(r.client_id, password.value));
  }

  private async checkResult(machine: SimMachine, job: Job, result: JobResult): Promise<void> {
    if (result.status !== 'succeeded') return;
    const volume = job.mountPoint ? machine.findVolume(job.mountPoint) : undefined;
    let named: (string | null | undefined)[];
    if (job.kind === 'backup' || (job.kind === 're-escrow' && job.protectorId)) named = [job.protectorId];
    else if (job.kind === 're-escrow') named = volume ? volume.protectors.filter((p) => p.type === 'RecoveryPassword').map((p) => p.id) : [null];
    else if (ESCROWS_NEW.has(job.kind)) named = [result.newProtectorId];
    else return;
    this.checks++;
    for (const id of named) {
      const p = machine.volumes.flatMap((v) => v.protectors).find((x) => sameGuid(x.id, id));
      if (p && (await this.protectorEscrowed(p))) continue;
      this.violations.push({
        method: `report ${job.kind} succeeded`,
        volume: job.mountPoint ?? '?',
        why: `the agent reported ${job.kind} succeeded, but ${id ?? 'no recovery password'} is ${p ? 'not held by the vault' : 'not on the machine'}`,
      });
    }
  }

  private async check(change: SimChange): Promise<void> {
    this.checks++;
    if (await this.volumeEscrowed(change.protectors)) return;
    this.violations.push({
      method: change.method,
      volume: SimMachine.mountPointOf(change.volume),
      why: `after ${change.method} the volume holds no recovery password whose key the vault holds`,
    });
  }
}
