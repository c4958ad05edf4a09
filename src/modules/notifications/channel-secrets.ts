import type { Executor } from '../../db/database.js';
import type { NotificationChannelsTable } from '../../db/schema.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { ChannelSecrets } from './channels.js';
import { parseJson } from './notification-types.js';

export type ChannelKeyring = Pick<Keyring<Executor>, 'clientCipher' | 'secretCipher'>;

const secretContext = (channelId: string) => `notification-channel=${channelId}`;

/**
 * A channel's secrets (passwords, webhook signing secrets) are sealed with its client's data key,
 * or with the vault's secrets key for an MSP-wide channel; bound to the channel id.
 */
export function createChannelSecrets(keyring: ChannelKeyring) {
  return {
    async seal(exec: Executor, clientId: string | null, channelId: string, secrets: ChannelSecrets) {
      const json = JSON.stringify(secrets);
      if (clientId) {
        const sealed = (await keyring.clientCipher(exec, clientId)).sealSecret(secretContext(channelId), json);
        return { secret_ciphertext: sealed.ciphertext, secret_data_key_version: sealed.dataKeyVersion };
      }
      return { secret_ciphertext: (await keyring.secretCipher(exec)).seal(secretContext(channelId), json), secret_data_key_version: null };
    },
    async open(exec: Executor, c: NotificationChannelsTable): Promise<ChannelSecrets> {
      if (!c.secret_ciphertext) return {};
      if (c.client_id) {
        const cipher = await keyring.clientCipher(exec, c.client_id);
        return parseJson(cipher.openSecret(secretContext(c.id), { ciphertext: c.secret_ciphertext, dataKeyVersion: c.secret_data_key_version ?? 1 }), {});
      }
      return parseJson((await keyring.secretCipher(exec)).open(secretContext(c.id), c.secret_ciphertext), {});
    },
  };
}
export type ChannelSecretsBox = ReturnType<typeof createChannelSecrets>;
