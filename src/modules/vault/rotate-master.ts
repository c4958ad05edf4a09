import type { Config } from '../../config.js';
import type { Executor } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import { rotateLocalMasterKey, type RotationResult } from '../../crypto/kek-rotation.js';
import type { Clock } from '../../lib/clock.js';
import { forbidden } from '../../lib/errors.js';
import { can, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { createVaultRepo } from './vault.repo.js';

/**
 * `keywarden keys rotate-master`: a new master-key version, every data key rewrapped under it in
 * one transaction, the old version retired (docs/lifecycle.md). Only the local CLI runs it: it is
 * the one place that holds the key ring file.
 */
export async function rotateMasterKey(
  deps: { config: Config; tx: Transactions; audit: Pick<AuditService, 'record'>; clock: Clock },
  actor: Actor,
  opts: { keepOld?: boolean } = {},
): Promise<RotationResult> {
  // The master key protects every client at once: a vault-wide power, and only where the key ring file is.
  if (actor.type !== 'cli' || !can(actor, 'settings:manage')) throw forbidden('Only the vault owner on the command line can rotate the master key.');
  return rotateLocalMasterKey<Executor>({
    store: createVaultRepo(),
    source: deps.config.masterKey,
    transaction: (fn) => deps.tx.run(fn),
    now: () => deps.clock.now(),
    dropOld: !opts.keepOld,
    onRotated: async (tx, r) => {
      await deps.audit.record(tx, actor, {
        action: 'vault.rotate_master',
        outcome: 'success',
        details: {
          fromVersions: r.fromVersions,
          fromKeyIds: r.fromKeyIds,
          toVersion: r.toVersion,
          toKeyId: r.toKeyId,
          rewrapped: r.rewrapped,
          newKeySource: r.newKeySource,
        },
      });
    },
  });
}
