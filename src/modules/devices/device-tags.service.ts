import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, forbidden, notFound } from '../../lib/errors.js';
import { can, clientScope, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { DevicesRepo } from './devices.repo.js';
import type { DeviceTagsRepo } from './device-tags.repo.js';

/** A tag: lower-case letters, digits and dashes, 1 to 32 characters ("server", "executive", "vip-floor-3"). */
export const TAG_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const MAX_TAGS = 10;

/** Tags as typed: trimmed, lower-cased, de-duplicated and checked; a bad one is named in the error. */
export function parseTags(input: readonly string[], field = 'tags'): string[] {
  const out = [...new Set(input.map((t) => t.trim().toLowerCase()).filter(Boolean))];
  for (const t of out) {
    if (!TAG_PATTERN.test(t))
      throw badRequest(`Tag "${t.slice(0, 40)}" is not valid: use 1 to 32 lower-case letters, digits or dashes (e.g. server, executive).`, { field });
  }
  if (out.length > MAX_TAGS) throw badRequest(`At most ${MAX_TAGS} tags.`, { field });
  return out.sort();
}

type Deps = {
  tx: Transactions;
  repo: DeviceTagsRepo;
  devices: Pick<DevicesRepo, 'findVisible'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

/**
 * Device tags: who manages the client (client:manage) or its devices' lifecycle (lifecycle:manage)
 * sets them; whoever sees the device sees them. A tagged reveal policy requires a second person's
 * approval for devices carrying one of its tags, so every change is audited.
 */
export function createDeviceTagsService({ tx, repo, devices, audit, clock }: Deps) {
  const mayManage = (actor: Actor, clientId: string) => can(actor, 'client:manage', clientId) || can(actor, 'lifecycle:manage', clientId);
  return {
    async get(actor: Actor, deviceId: string): Promise<{ deviceId: string; tags: string[] }> {
      if (!can(actor, 'device:read') && !can(actor, 'client:manage') && !can(actor, 'lifecycle:manage')) throw forbidden('You are not allowed to see devices.');
      const d = await devices.findVisible(tx.reader, deviceId, clientScope(actor));
      if (!d || !(can(actor, 'device:read', d.client_id) || mayManage(actor, d.client_id))) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
      return { deviceId: d.id, tags: await repo.tagsOf(tx.reader, d.client_id, d.id) };
    },

    async set(actor: Actor, deviceId: string, input: { tags: string[] }): Promise<{ deviceId: string; tags: string[] }> {
      if (!can(actor, 'client:manage') && !can(actor, 'lifecycle:manage')) throw forbidden('You are not allowed to change device tags.');
      const tags = parseTags(input.tags);
      return tx.run(async (t) => {
        const d = await devices.findVisible(t, deviceId, clientScope(actor));
        if (!d || !mayManage(actor, d.client_id)) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
        const before = await repo.tagsOf(t, d.client_id, d.id);
        await repo.setTags(t, d.client_id, d.id, tags, clock.now(), actor.name);
        await audit.record(t, actor, {
          action: 'device.tags',
          outcome: 'success',
          clientId: d.client_id,
          targetType: 'device',
          targetId: d.id,
          details: { device: d.name, from: before, to: tags },
        });
        return { deviceId: d.id, tags };
      });
    },

    /** A client's tagged devices, for its page. */
    async ofClient(actor: Actor, clientId: string): Promise<{ deviceId: string; deviceName: string; tags: string[] }[]> {
      await requireVisibleClient(tx.reader, actor, clientId);
      if (!can(actor, 'device:read', clientId) && !mayManage(actor, clientId)) throw forbidden('You are not allowed to see devices.');
      const rows = await repo.taggedDevices(tx.reader, clientScope(actor), clientId);
      const byDevice = new Map<string, { deviceId: string; deviceName: string; tags: string[] }>();
      for (const r of rows) {
        const d = byDevice.get(r.device_id) ?? { deviceId: r.device_id, deviceName: r.device_name, tags: [] };
        d.tags.push(r.tag);
        byDevice.set(r.device_id, d);
      }
      return [...byDevice.values()];
    },
  };
}
export type DeviceTagsService = ReturnType<typeof createDeviceTagsService>;
