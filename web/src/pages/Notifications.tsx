import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  Alert,
  Badge,
  Button,
  Card,
  Checkbox,
  Code,
  Group,
  Modal,
  NativeSelect,
  NumberInput,
  PasswordInput,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Tabs,
  Text,
  TextInput,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconPlus } from '@tabler/icons-react';
import { api, type Answer, type Body, type Query } from '../api';
import { useSession } from '../session';
import { CopyValue, Empty, ErrorState, Loading, PageTitle, fmtAgo, fmtDateTime, messageOf, FormFooter } from '../ui';

/**
 * Notifications: where messages go (channels: e-mail, signed webhook, Teams, Slack), which events go
 * where (rules, MSP-wide or per client), and what was sent (the delivery log, every attempt in words).
 * Secrets (SMTP password, signing secret, Teams/Slack URLs) are write-only: never shown back.
 */
type Channel = Answer<'/api/v1/notifications/channels', 'get'>[number];
type ChannelKind = Channel['kind'];
type NewChannel = Body<'/api/v1/notifications/channels', 'post'>;
type ChannelPatch = Body<'/api/v1/notifications/channels/{channelId}', 'patch'>;
type Rule = Answer<'/api/v1/notifications/rules', 'get'>[number];
type EventType = Body<'/api/v1/notifications/rules', 'post'>['eventTypes'][number];
type Digest = Rule['digest'];
type Delivery = Answer<'/api/v1/notifications/deliveries', 'get'>[number];
type DeliveryStatus = NonNullable<Query<'/api/v1/notifications/deliveries', 'get'>['status']>;
type TestAnswer = Answer<'/api/v1/notifications/channels/{channelId}/test', 'post'>;

const KIND_LABEL: Record<ChannelKind, string> = { email: 'E-mail', webhook: 'Webhook', teams: 'Microsoft Teams', slack: 'Slack' };
const EVENT_LABEL: Record<EventType, string> = {
  'device.noncompliant': 'A device became non-compliant',
  'device.compliant': 'A device is compliant again',
  'device.encryption_off': 'Encryption turned off',
  'device.protection_suspended': 'BitLocker protection suspended',
  'device.stale': 'A device stopped reporting',
  'device.recovery_boot': 'A device booted into recovery',
  'key.unescrowed': 'A key is not escrowed',
  'key.mismatch': 'A key does not match the device',
  'key.revealed': 'A recovery key was revealed',
  'key.rotated': 'A key was rotated',
  'key.rotation_failed': 'A key rotation failed',
  'sync.failed': 'An Entra ID or AD sync failed',
  'audit.chain_broken': 'The audit chain is broken',
  'key.reveal_requested': 'A reveal needs a second person',
  'key.break_glass': 'A key was revealed by break-glass',
  'key.self_service_reveal': 'An end user revealed their own key (self-service)',
  'graph.consent_lost': "A client's admin consent for the Keywarden app was withdrawn",
  'graph.certificate_expiring': 'An Entra ID app certificate expires within 30 days, or has expired',
  'psa.note_failed': 'The note about a reveal could not be posted on its PSA ticket',
  'psa.ticket_sync_failed': 'Findings could not be sent to the PSA as tickets',
};
const EVENTS = Object.keys(EVENT_LABEL) as EventType[];
const DIGEST_LABEL: Record<Digest, string> = { none: 'At once', hourly: 'Hourly digest', daily: 'Daily digest' };
const STATUS_COLOR: Record<string, string> = { sent: 'green', failed: 'red', pending: 'yellow', retrying: 'orange' };
const MSP_WIDE = '';

export function NotificationsPage() {
  const { can } = useSession();
  const [tab, setTab] = useState<string>('channels');
  const log = can('audit:read');
  return (
    <Stack gap="md">
      <PageTitle sub="Tell people and systems when something needs attention: which events, through which channel, and what was sent.">Notifications</PageTitle>
      <Tabs value={tab} onChange={(v) => v && setTab(v)} keepMounted={false}>
        <Tabs.List mb="md">
          <Tabs.Tab value="channels">Channels</Tabs.Tab>
          <Tabs.Tab value="rules">Rules</Tabs.Tab>
          {log && <Tabs.Tab value="deliveries">Delivery log</Tabs.Tab>}
        </Tabs.List>
        <Tabs.Panel value="channels">
          <ChannelsTab />
        </Tabs.Panel>
        <Tabs.Panel value="rules">
          <RulesTab />
        </Tabs.Panel>
        {log && (
          <Tabs.Panel value="deliveries">
            <DeliveriesTab />
          </Tabs.Panel>
        )}
      </Tabs>
    </Stack>
  );
}

/** "Contoso", or "All clients" for MSP-wide settings. */
function useScopeName() {
  const { clients } = useSession();
  const names = new Map(clients.map((c) => [c.id, c.name]));
  return (clientId: string | null) => (clientId === null ? 'All clients (MSP-wide)' : (names.get(clientId) ?? clientId.slice(0, 8)));
}

/** Where settings may be added: MSP-wide (all-clients principals only) or one of the clients managed. */
function useScopes() {
  const { clients, can, me } = useSession();
  return [
    ...(me.actor.clients === 'all' ? [{ value: MSP_WIDE, label: 'All clients (MSP-wide)' }] : []),
    ...clients.filter((c) => can('client:manage', c.id)).map((c) => ({ value: c.id, label: c.name })),
  ];
}

const mayManage = (can: (p: 'client:manage', c?: string) => boolean, allClients: boolean, clientId: string | null) =>
  clientId === null ? can('client:manage') && allClients : can('client:manage', clientId);

/** Where a channel sends, in words (never a secret). */
function target(c: Channel): string {
  const s = c.settings as Record<string, unknown>;
  if (c.kind === 'email') {
    const to = Array.isArray(s.to) ? (s.to as string[]).join(', ') : '';
    return `${String(s.host ?? '')}:${String(s.port ?? '')} → ${to}`;
  }
  if (c.kind === 'webhook') return String(s.url ?? '');
  return String(s.urlHint ?? c.masked.url ?? '');
}

// ---------------------------------------------------------------- channels
function ChannelsTab() {
  const { can, me } = useSession();
  const scopeName = useScopeName();
  const scopes = useScopes();
  const channels = useQuery({ queryKey: ['notify-channels'], queryFn: () => api.get('/api/v1/notifications/channels') });
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<Channel | null>(null);
  const [created, setCreated] = useState<{ name: string; secret: string } | null>(null);
  if (channels.isPending) return <Loading />;
  if (channels.isError) return <ErrorState error={channels.error} retry={() => void channels.refetch()} />;
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          A channel is where messages go. Passwords, signing secrets and Teams or Slack addresses are stored encrypted and never shown again.
        </Text>
        {scopes.length > 0 && can('client:manage') && (
          <Button leftSection={<IconPlus size={16} />} onClick={() => setAdding(true)}>
            Add channel
          </Button>
        )}
      </Group>
      {created && (
        <Alert color="green" variant="light" title={`Signing secret of ${created.name}`}>
          <Stack gap="xs">
            <Text size="sm">Copy it now: it is shown only once. The receiver checks each message's signature (X-Keywarden-Signature) with it.</Text>
            <Group gap="xs" wrap="nowrap" align="flex-start">
              <Code block className="kw-code" style={{ flex: 1 }} data-testid="secret-once">
                {created.secret}
              </Code>
              <CopyValue value={created.secret} />
            </Group>
            <Group>
              <Button size="compact-sm" variant="light" onClick={() => setCreated(null)}>
                Done
              </Button>
            </Group>
          </Stack>
        </Alert>
      )}
      {channels.data.length === 0 ? (
        <Empty title="No channels yet">Choose “Add channel” to send notifications by e-mail, to a webhook, to Microsoft Teams or to Slack.</Empty>
      ) : (
        <Stack gap="xs">
          {channels.data.map((c) => (
            <ChannelCard
              key={c.id}
              c={c}
              scope={scopeName(c.clientId)}
              manage={mayManage(can, me.actor.clients === 'all', c.clientId)}
              onEdit={() => setEditing(c)}
            />
          ))}
        </Stack>
      )}
      {adding && (
        <ChannelModal
          onClose={() => setAdding(false)}
          onCreated={(name, secret) => {
            if (secret) setCreated({ name, secret });
          }}
        />
      )}
      {editing && <ChannelModal existing={editing} onClose={() => setEditing(null)} />}
    </Stack>
  );
}

function ChannelCard({ c, scope, manage, onEdit }: { c: Channel; scope: string; manage: boolean; onEdit: () => void }) {
  const qc = useQueryClient();
  const [result, setResult] = useState<TestAnswer | null>(null);
  const [removing, setRemoving] = useState(false);
  const path = { params: { path: { channelId: c.id } } };
  const test = useMutation({
    mutationFn: () => api.post('/api/v1/notifications/channels/{channelId}/test', path),
    onSuccess: (r) => {
      setResult(r);
      void qc.invalidateQueries({ queryKey: ['notify-deliveries'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const toggle = useMutation({
    mutationFn: () => api.patch('/api/v1/notifications/channels/{channelId}', { ...path, body: { enabled: !c.enabled } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['notify-channels'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const remove = useMutation({
    mutationFn: () => api.del('/api/v1/notifications/channels/{channelId}', path),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `Channel ${c.name} removed.` });
      void qc.invalidateQueries({ queryKey: ['notify-channels'] });
      void qc.invalidateQueries({ queryKey: ['notify-rules'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const secretNote = Object.keys(c.masked)
    .filter((k) => c.masked[k] !== '(none)' && k !== 'url')
    .map((k) => (k === 'password' ? 'password set' : k === 'signingSecret' ? 'signing secret set' : `${k} set`));
  return (
    <Card withBorder padding="sm" component="article" aria-label={`Channel ${c.name}`}>
      <Group justify="space-between" align="flex-start" wrap="wrap" gap="sm">
        <div style={{ minWidth: 0 }}>
          <Group gap={6}>
            <Text fw={600} size="sm">
              {c.name}
            </Text>
            <Badge size="sm" variant="light">
              {KIND_LABEL[c.kind]}
            </Badge>
            {!c.enabled && (
              <Badge size="sm" variant="light" color="gray">
                disabled
              </Badge>
            )}
          </Group>
          <Text size="xs" c="dimmed">
            {scope}
          </Text>
          <Text size="xs" c="dimmed" className="kw-mono" style={{ overflowWrap: 'anywhere' }}>
            {target(c)}
            {secretNote.length ? ` · ${secretNote.join(', ')}` : ''}
          </Text>
        </div>
        {manage && (
          <Group gap="xs">
            <Button size="xs" variant="light" onClick={() => test.mutate()} loading={test.isPending}>
              Send test
            </Button>
            <Button size="xs" variant="default" onClick={onEdit}>
              Edit
            </Button>
            <Button size="xs" variant="default" onClick={() => toggle.mutate()} loading={toggle.isPending}>
              {c.enabled ? 'Disable' : 'Enable'}
            </Button>
            <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(true)}>
              Remove
            </Button>
          </Group>
        )}
      </Group>
      {result && (
        <Alert mt="xs" variant="light" color={result.ok ? 'green' : 'red'} title={result.ok ? 'Test message delivered' : 'Test message failed'}>
          <Text size="xs">
            {result.summary}
            {result.responseCode && !result.summary.includes(result.responseCode) ? ` (answer ${result.responseCode})` : ''}
          </Text>
          {result.error && <Text size="xs">{result.error}</Text>}
        </Alert>
      )}
      {removing && (
        <Modal opened onClose={() => setRemoving(false)} title={`Remove ${c.name}?`}>
          <Stack gap="sm">
            <Text size="sm">Rules stop sending here; messages waiting for this channel are dropped. Its delivery log stays.</Text>
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setRemoving(false)}>
                Cancel
              </Button>
              <Button color="red" loading={remove.isPending} onClick={() => remove.mutate()}>
                Remove
              </Button>
            </Group>
          </Stack>
        </Modal>
      )}
    </Card>
  );
}

const splitList = (s: string) =>
  s
    .split(/[\n,;]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** Add a channel, or change one: secrets left blank keep what is stored. */
function ChannelModal({ existing, onClose, onCreated }: { existing?: Channel; onClose: () => void; onCreated?: (name: string, secret?: string) => void }) {
  const qc = useQueryClient();
  const scopes = useScopes();
  const s = (existing?.settings ?? {}) as Record<string, unknown>;
  const [scope, setScope] = useState(existing ? (existing.clientId ?? MSP_WIDE) : (scopes[0]?.value ?? MSP_WIDE));
  const [name, setName] = useState(existing?.name ?? '');
  const [kind, setKind] = useState<ChannelKind>(existing?.kind ?? 'email');
  // e-mail
  const [host, setHost] = useState(String(s.host ?? ''));
  const [port, setPort] = useState<number | string>(typeof s.port === 'number' ? s.port : '');
  const [secure, setSecure] = useState(s.secure === true);
  const [starttls, setStarttls] = useState<'required' | 'opportunistic' | 'ignore'>((s.starttls as 'required') ?? 'required');
  const [allowSelfSigned, setAllowSelfSigned] = useState(s.allowSelfSigned === true);
  const [username, setUsername] = useState(String(s.username ?? ''));
  const [password, setPassword] = useState('');
  const [from, setFrom] = useState(String(s.from ?? ''));
  const [to, setTo] = useState(Array.isArray(s.to) ? (s.to as string[]).join(', ') : '');
  // webhook, Teams, Slack
  const [url, setUrl] = useState(existing?.kind === 'webhook' ? String(s.url ?? '') : '');
  const [signingSecret, setSigningSecret] = useState('');
  const urlIsSecret = kind === 'teams' || kind === 'slack';

  const settings = (): ChannelPatch => {
    if (kind === 'email')
      return {
        host: host.trim(),
        ...(port !== '' ? { port: Number(port) } : {}),
        secure,
        starttls,
        allowSelfSigned,
        username: username.trim() || null,
        ...(password ? { password } : {}),
        from: from.trim(),
        to: splitList(to),
      };
    return {
      ...(url.trim() || !existing ? { url: url.trim() } : {}),
      ...(kind === 'webhook' && signingSecret ? { signingSecret } : {}),
    };
  };
  const save = useMutation({
    mutationFn: async () => {
      if (existing) {
        await api.patch('/api/v1/notifications/channels/{channelId}', {
          params: { path: { channelId: existing.id } },
          body: { name: name.trim(), ...settings() },
        });
        return undefined;
      }
      const body: NewChannel = { clientId: scope === MSP_WIDE ? null : scope, name: name.trim(), kind, ...settings() };
      return (await api.post('/api/v1/notifications/channels', { body })).signingSecret;
    },
    onSuccess: (secret) => {
      setPassword('');
      setSigningSecret('');
      notifications.show({ color: 'green', message: existing ? `Channel ${name} saved.` : `Channel ${name} added. Use “Send test” to check it.` });
      void qc.invalidateQueries({ queryKey: ['notify-channels'] });
      onCreated?.(name, secret);
      onClose();
    },
    gcTime: 0,
  });
  const keep = existing ? 'Leave blank to keep the stored one.' : undefined;
  return (
    <Modal opened onClose={onClose} title={existing ? `Edit ${existing.name}` : 'Add a channel'} size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <Stack gap="sm">
          {!existing && (
            <Group grow align="flex-start">
              <NativeSelect label="For" value={scope} onChange={(e) => setScope(e.currentTarget.value)} data={scopes} />
              <NativeSelect
                label="Kind"
                value={kind}
                onChange={(e) => setKind(e.currentTarget.value as ChannelKind)}
                data={(Object.keys(KIND_LABEL) as ChannelKind[]).map((k) => ({ value: k, label: KIND_LABEL[k] }))}
              />
            </Group>
          )}
          <TextInput
            label="Channel name"
            placeholder="e.g. Service desk mailbox"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            required
            maxLength={200}
          />
          {kind === 'email' ? (
            <>
              <Group grow align="flex-start">
                <TextInput label="SMTP server" value={host} onChange={(e) => setHost(e.currentTarget.value)} required />
                <NumberInput label="Port" description="Blank: 587, or 465 with TLS" value={port} onChange={setPort} min={1} max={65535} />
              </Group>
              <Switch label="TLS from the first byte (usually port 465)" checked={secure} onChange={(e) => setSecure(e.currentTarget.checked)} />
              {!secure && (
                <NativeSelect
                  label="STARTTLS"
                  value={starttls}
                  onChange={(e) => setStarttls(e.currentTarget.value as 'required')}
                  data={[
                    { value: 'required', label: 'Required: never send in clear' },
                    { value: 'opportunistic', label: 'When the server offers it' },
                    { value: 'ignore', label: 'Never (a relay on this machine only)' },
                  ]}
                />
              )}
              <Checkbox label="Accept a self-signed certificate" checked={allowSelfSigned} onChange={(e) => setAllowSelfSigned(e.currentTarget.checked)} />
              <Group grow align="flex-start">
                <TextInput label="Username" description="Blank: no sign-in" value={username} onChange={(e) => setUsername(e.currentTarget.value)} />
                <PasswordInput
                  label="Password"
                  description={keep ?? 'Stored encrypted; never shown again.'}
                  value={password}
                  onChange={(e) => setPassword(e.currentTarget.value)}
                  autoComplete="new-password"
                />
              </Group>
              <TextInput label="From" placeholder="Keywarden <keywarden@msp.example>" value={from} onChange={(e) => setFrom(e.currentTarget.value)} required />
              <TextInput label="To" description="E-mail addresses, separated by commas" value={to} onChange={(e) => setTo(e.currentTarget.value)} required />
            </>
          ) : (
            <>
              {urlIsSecret ? (
                <PasswordInput
                  label={`${KIND_LABEL[kind]} incoming webhook URL`}
                  description={
                    existing
                      ? `Stored encrypted (${String(s.urlHint ?? '')}). Leave blank to keep it.`
                      : 'It works like a password: stored encrypted, never shown again.'
                  }
                  value={url}
                  onChange={(e) => setUrl(e.currentTarget.value)}
                  required={!existing}
                  autoComplete="off"
                />
              ) : (
                <TextInput
                  label="Webhook URL"
                  description="https:// (http:// only to this machine)"
                  value={url}
                  onChange={(e) => setUrl(e.currentTarget.value)}
                  required
                />
              )}
              {kind === 'webhook' && (
                <PasswordInput
                  label="Signing secret"
                  description={existing ? 'Leave blank to keep the stored one.' : 'At least 16 characters; leave blank to have one generated and shown once.'}
                  value={signingSecret}
                  onChange={(e) => setSigningSecret(e.currentTarget.value)}
                  autoComplete="new-password"
                />
              )}
            </>
          )}
          {save.error && (
            <Alert color="red" role="alert">
              {messageOf(save.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {existing ? 'Save' : 'Add channel'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- rules
function RulesTab() {
  const qc = useQueryClient();
  const { can, me } = useSession();
  const scopeName = useScopeName();
  const scopes = useScopes();
  const rules = useQuery({ queryKey: ['notify-rules'], queryFn: () => api.get('/api/v1/notifications/rules') });
  const channels = useQuery({ queryKey: ['notify-channels'], queryFn: () => api.get('/api/v1/notifications/channels') });
  const [adding, setAdding] = useState(false);
  const toggle = useMutation({
    mutationFn: (r: Rule) => api.patch('/api/v1/notifications/rules/{ruleId}', { params: { path: { ruleId: r.id } }, body: { enabled: !r.enabled } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['notify-rules'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const remove = useMutation({
    mutationFn: (r: Rule) => api.del('/api/v1/notifications/rules/{ruleId}', { params: { path: { ruleId: r.id } } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['notify-rules'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  if (rules.isPending || channels.isPending) return <Loading />;
  if (rules.isError) return <ErrorState error={rules.error} retry={() => void rules.refetch()} />;
  if (channels.isError) return <ErrorState error={channels.error} retry={() => void channels.refetch()} />;
  const channelName = new Map(channels.data.map((c) => [c.id, c.name]));
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          A rule sends chosen events to channels, at once or gathered into a digest. An MSP-wide rule covers every client.
        </Text>
        {scopes.length > 0 && can('client:manage') && (
          <Button leftSection={<IconPlus size={16} />} onClick={() => setAdding(true)} disabled={channels.data.length === 0}>
            Add rule
          </Button>
        )}
      </Group>
      {rules.data.length === 0 ? (
        <Empty title="No rules yet">
          {channels.data.length === 0
            ? 'Add a channel first (Channels tab), then choose “Add rule”.'
            : 'Choose “Add rule” to pick which events go to which channels.'}
        </Empty>
      ) : (
        <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Rules">
          <Table striped fz="sm" verticalSpacing={6} aria-label="Rules">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Rule</Table.Th>
                <Table.Th>For</Table.Th>
                <Table.Th>Events</Table.Th>
                <Table.Th>Channels</Table.Th>
                <Table.Th>When</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rules.data.map((r) => {
                const manage = mayManage(can, me.actor.clients === 'all', r.clientId);
                return (
                  <Table.Tr key={r.id}>
                    <Table.Td>
                      <Text size="sm" fw={600}>
                        {r.name}
                      </Text>
                      {!r.enabled && (
                        <Badge size="xs" color="gray" variant="light">
                          disabled
                        </Badge>
                      )}
                    </Table.Td>
                    <Table.Td>{scopeName(r.clientId)}</Table.Td>
                    <Table.Td>{r.eventTypes.map((e) => EVENT_LABEL[e as EventType] ?? e).join('; ')}</Table.Td>
                    <Table.Td>{r.channelIds.map((c) => channelName.get(c) ?? 'a removed channel').join(', ')}</Table.Td>
                    <Table.Td>{DIGEST_LABEL[r.digest]}</Table.Td>
                    <Table.Td>
                      {manage && (
                        <Group gap={4} wrap="nowrap">
                          <Button
                            size="compact-xs"
                            variant="default"
                            onClick={() => toggle.mutate(r)}
                            aria-label={`${r.enabled ? 'Disable' : 'Enable'} rule ${r.name}`}
                          >
                            {r.enabled ? 'Disable' : 'Enable'}
                          </Button>
                          <Button size="compact-xs" variant="light" color="red" onClick={() => remove.mutate(r)} aria-label={`Remove rule ${r.name}`}>
                            Remove
                          </Button>
                        </Group>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </div>
      )}
      {adding && <RuleModal channels={channels.data} onClose={() => setAdding(false)} />}
    </Stack>
  );
}

function RuleModal({ channels, onClose }: { channels: Channel[]; onClose: () => void }) {
  const qc = useQueryClient();
  const scopes = useScopes();
  const [scope, setScope] = useState(scopes[0]?.value ?? MSP_WIDE);
  const [name, setName] = useState('');
  const [events, setEvents] = useState<string[]>([]);
  const [channelIds, setChannelIds] = useState<string[]>([]);
  const [digest, setDigest] = useState<Digest>('none');
  // An MSP-wide rule uses MSP-wide channels; a client's rule also its own.
  const usable = channels.filter((c) => c.clientId === null || c.clientId === scope);
  const create = useMutation({
    mutationFn: () =>
      api.post('/api/v1/notifications/rules', {
        body: { clientId: scope === MSP_WIDE ? null : scope, name: name.trim(), eventTypes: events as EventType[], channelIds, digest },
      }),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `Rule ${name} added.` });
      void qc.invalidateQueries({ queryKey: ['notify-rules'] });
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title="Add a rule" size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Stack gap="sm">
          <NativeSelect
            label="For"
            value={scope}
            onChange={(e) => {
              setScope(e.currentTarget.value);
              setChannelIds([]);
            }}
            data={scopes}
          />
          <TextInput
            label="Rule name"
            placeholder="e.g. Sync failures to the service desk"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            required
          />
          <Checkbox.Group label="Events" value={events} onChange={setEvents} required>
            <SimpleGrid cols={{ base: 1, sm: 2 }} spacing={6} mt={6}>
              {EVENTS.map((e) => (
                <Checkbox key={e} value={e} label={EVENT_LABEL[e]} />
              ))}
            </SimpleGrid>
          </Checkbox.Group>
          <Checkbox.Group
            label="Channels"
            description={usable.length ? undefined : 'No channel can be used here yet: add one for this client or for all clients.'}
            value={channelIds}
            onChange={setChannelIds}
            required
          >
            <Stack gap={6} mt={6}>
              {usable.map((c) => (
                <Checkbox key={c.id} value={c.id} label={`${c.name} (${KIND_LABEL[c.kind]}${c.clientId === null ? ', all clients' : ''})`} />
              ))}
            </Stack>
          </Checkbox.Group>
          <NativeSelect
            label="Send"
            value={digest}
            onChange={(e) => setDigest(e.currentTarget.value as Digest)}
            data={(Object.keys(DIGEST_LABEL) as Digest[]).map((d) => ({ value: d, label: DIGEST_LABEL[d] }))}
          />
          <FormFooter error={create.error} onCancel={onClose} submitting={create.isPending} submit="Add rule" />
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- delivery log
function DeliveriesTab() {
  const scopeName = useScopeName();
  const [status, setStatus] = useState<DeliveryStatus | ''>('');
  const [open, setOpen] = useState<Delivery | null>(null);
  const deliveries = useQuery({
    queryKey: ['notify-deliveries', status],
    queryFn: () => api.get('/api/v1/notifications/deliveries', { params: { query: { ...(status ? { status } : {}), limit: 200 } } }),
    refetchInterval: 15_000,
  });
  return (
    <Stack gap="sm">
      <Group justify="space-between" align="flex-end">
        <Text size="sm" c="dimmed">
          Every message sent or tried, newest first. Failed sends are retried automatically with growing pauses.
        </Text>
        <NativeSelect
          label="Status"
          value={status}
          onChange={(e) => setStatus(e.currentTarget.value as DeliveryStatus | '')}
          data={[
            { value: '', label: 'Any' },
            { value: 'pending', label: 'Waiting or retrying' },
            { value: 'sent', label: 'Sent' },
            { value: 'failed', label: 'Failed' },
          ]}
          w={200}
        />
      </Group>
      {deliveries.isPending ? (
        <Loading />
      ) : deliveries.isError ? (
        <ErrorState error={deliveries.error} retry={() => void deliveries.refetch()} />
      ) : deliveries.data.length === 0 ? (
        <Empty title="Nothing sent yet">Messages appear here once a rule fires or you use “Send test” on a channel.</Empty>
      ) : (
        <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Delivery log">
          <Table striped fz="sm" verticalSpacing={6} aria-label="Delivery log">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Channel</Table.Th>
                <Table.Th>Message</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Attempts</Table.Th>
                <Table.Th>Problem</Table.Th>
                <Table.Th>Details</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {deliveries.data.map((d) => (
                <Table.Tr key={d.id}>
                  <Table.Td>{fmtAgo(d.createdAt)}</Table.Td>
                  <Table.Td>
                    {d.channel.name}
                    <Text size="xs" c="dimmed">
                      {KIND_LABEL[d.channel.kind as ChannelKind] ?? d.channel.kind} · {scopeName(d.clientId)}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {d.subject}
                    {d.eventCount > 1 && (
                      <Text size="xs" c="dimmed">
                        {d.eventCount} events
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge size="sm" variant="light" color={STATUS_COLOR[d.status] ?? 'gray'}>
                      {d.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {d.attempts} of {d.maxAttempts}
                    {d.status === 'pending' && d.nextAttemptAt && (
                      <Text size="xs" c="dimmed">
                        next {fmtDateTime(d.nextAttemptAt)}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>{d.lastError ?? '—'}</Table.Td>
                  <Table.Td>
                    <Button size="compact-xs" variant="default" onClick={() => setOpen(d)} aria-label={`Attempts of ${d.subject}`}>
                      Attempts
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </div>
      )}
      {open && <AttemptsModal d={open} onClose={() => setOpen(null)} />}
    </Stack>
  );
}

function AttemptsModal({ d, onClose }: { d: Delivery; onClose: () => void }) {
  const one = useQuery({
    queryKey: ['notify-delivery', d.id],
    queryFn: () => api.get('/api/v1/notifications/deliveries/{deliveryId}', { params: { path: { deliveryId: d.id } } }),
  });
  return (
    <Modal opened onClose={onClose} title={d.subject} size="lg">
      {one.isPending ? (
        <Loading />
      ) : one.isError ? (
        <ErrorState error={one.error} />
      ) : one.data.attemptLog.length === 0 ? (
        <Text size="sm">No attempt yet{d.nextAttemptAt ? `; the first is due ${fmtDateTime(d.nextAttemptAt)}` : ''}.</Text>
      ) : (
        <Stack gap="xs">
          {one.data.attemptLog.map((a) => (
            <Card key={a.attempt} withBorder padding="xs">
              <Group gap={6}>
                <Text size="sm" fw={600}>
                  Attempt {a.attempt}
                </Text>
                <Badge size="sm" variant="light" color={a.outcome === 'sent' || a.outcome === 'ok' ? 'green' : 'red'}>
                  {a.outcome}
                </Badge>
                <Text size="xs" c="dimmed">
                  {fmtDateTime(a.at)} · {a.durationMs} ms{a.responseCode ? ` · answer ${a.responseCode}` : ''}
                </Text>
              </Group>
              {a.summary && <Text size="xs">{a.summary}</Text>}
              {a.error && (
                <Text size="xs" c="red">
                  {a.error}
                </Text>
              )}
            </Card>
          ))}
        </Stack>
      )}
    </Modal>
  );
}
