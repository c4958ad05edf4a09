import type { GraphClient } from '../../integrations/graph-client.js';

/** At most this many directory objects are read per relation: a person owns a handful of devices, not thousands. */
const MAX_OBJECTS = 500;

/**
 * The Entra device ids (`device.deviceId`, what keys and the agent report) of the devices the
 * signed-in person owns (`/me/ownedDevices`) or is a registered user of (`/me/registeredDevices`),
 * read with their own delegated token (User.Read): Graph supports no application permission for
 * these relations, so the client's app-only connection cannot read them. Directory objects that
 * are not devices are skipped; lower-case, without duplicates.
 */
export async function myDeviceIds(graph: Pick<GraphClient, 'listMyDevices'>): Promise<string[]> {
  const out = new Set<string>();
  for (const relation of ['ownedDevices', 'registeredDevices'] as const) {
    let seen = 0;
    for await (const page of graph.listMyDevices(relation)) {
      for (const d of page) if (d.deviceId) out.add(d.deviceId.toLowerCase());
      seen += page.length;
      if (seen >= MAX_OBJECTS) break;
    }
  }
  return [...out];
}
