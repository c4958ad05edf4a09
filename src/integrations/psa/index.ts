import { createAutotaskClient } from './autotask.js';
import { createConnectWiseClient } from './connectwise.js';
import { createHaloPsaClient } from './halopsa.js';
import type { PsaClient, PsaClientDeps, PsaConfig } from './types.js';

export * from './types.js';
export { retryAfterMs, validPsaUrl } from './http.js';

/** The client for the configured PSA. Throws a PsaError (bad_request) when an address is not acceptable. */
export function createPsaClient(config: PsaConfig, deps: PsaClientDeps): PsaClient {
  switch (config.kind) {
    case 'halopsa':
      return createHaloPsaClient(config, deps);
    case 'connectwise':
      return createConnectWiseClient(config, deps);
    case 'autotask':
      return createAutotaskClient(config, deps);
  }
}
