import type { Transactions } from '../../db/transactions.js';
import type { EgressPolicy } from '../../integrations/egress.js';
import { newId } from '../../lib/ids.js';
import { createChannelSecrets, type ChannelKeyring } from './channel-secrets.js';
import { sendEmail, type EmailConfig } from './channels.js';
import type { ChannelsRepo } from './channels.repo.js';
import { parseJson } from './notification-types.js';

/**
 * One e-mail to one person, sent now through the vault-wide e-mail channel (the first enabled one,
 * oldest first), the same SMTP path as notifications. For messages that carry a one-time secret
 * (an invitation link): nothing is queued or stored, so the secret never reaches the outbox, the
 * deliveries table or a log. Never throws: the caller gets whether it went out, in product words.
 */
export type DirectMail = (msg: { to: string; subject: string; text: string }) => Promise<{ sent: true } | { sent: false; reason: string }>;

export function createDirectMail(deps: {
  tx: Transactions;
  repo: Pick<ChannelsRepo, 'list'>;
  keyring: ChannelKeyring;
  egress: EgressPolicy;
  timeoutMs?: number;
}): DirectMail {
  const secrets = createChannelSecrets(deps.keyring);
  return async (msg) => {
    try {
      const channel = (await deps.repo.list(deps.tx.reader, null)).find((c) => c.client_id === null && c.kind === 'email' && !!c.enabled);
      if (!channel) return { sent: false, reason: 'no vault-wide e-mail channel is set up (Notifications → Channels)' };
      const config = parseJson<EmailConfig | null>(channel.config, null);
      if (!config) return { sent: false, reason: 'the e-mail channel settings could not be read' };
      const r = await sendEmail(
        config,
        await secrets.open(deps.tx.reader, channel),
        { id: newId(), subject: msg.subject, text: msg.text, html: '', webhook: null, teams: null, slack: null, to: [msg.to] },
        { timeoutMs: deps.timeoutMs ?? 15_000, now: () => new Date(), egress: deps.egress },
      );
      return r.ok ? { sent: true } : { sent: false, reason: r.error ?? 'the message was not accepted' };
    } catch {
      return { sent: false, reason: 'the message could not be prepared' };
    }
  };
}
