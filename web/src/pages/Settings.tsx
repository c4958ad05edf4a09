import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Redirect, useLocation } from 'wouter';
import {
  Alert,
  Badge,
  Button,
  Card,
  Checkbox,
  Code,
  Group,
  Modal,
  MultiSelect,
  NativeSelect,
  NumberInput,
  PasswordInput,
  Stack,
  Switch,
  Table,
  Tabs,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconPlus } from '@tabler/icons-react';
import { api, type Role, type User } from '../api';
import { ROLE_LABEL, ROLES, useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, SecretOnce, fmtAgo, fmtDate, messageOf } from '../ui';
import { AccountTab } from './Account';
import { EnrollmentTab } from './Enrollment';

type Tab = 'account' | 'users' | 'tokens' | 'enrollment' | 'integrations' | 'security';

export function SettingsPage({ tab }: { tab?: string }) {
  const { can, me } = useSession();
  const [, navigate] = useLocation();
  const tabs: { value: Tab; label: string; show: boolean }[] = [
    { value: 'account', label: 'My account', show: true },
    { value: 'users', label: 'Users & roles', show: can('user:manage') },
    { value: 'tokens', label: 'API tokens', show: can('token:manage') },
    { value: 'enrollment', label: 'Enrollment', show: can('agent:manage') },
    { value: 'integrations', label: 'Integrations', show: can('integration:manage') },
    { value: 'security', label: 'Security', show: can('settings:manage') },
  ];
  const visible = tabs.filter((t) => t.show);
  const current = (tab ?? (visible.length > 1 ? visible[1]!.value : 'account')) as Tab;
  if (!visible.some((t) => t.value === current)) return <Redirect to="/settings/account" />;
  return (
    <Stack gap="md">
      <PageTitle>Settings</PageTitle>
      <Tabs value={current} onChange={(v) => v && navigate(`/settings/${v}`)} keepMounted={false}>
        <Tabs.List mb="md">
          {visible.map((t) => (
            <Tabs.Tab key={t.value} value={t.value}>
              {t.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        <Tabs.Panel value="account">
          <AccountTab me={me} />
        </Tabs.Panel>
        <Tabs.Panel value="users">{current === 'users' && <UsersTab />}</Tabs.Panel>
        <Tabs.Panel value="tokens">{current === 'tokens' && <TokensTab />}</Tabs.Panel>
        <Tabs.Panel value="enrollment">{current === 'enrollment' && <EnrollmentTab />}</Tabs.Panel>
        <Tabs.Panel value="integrations">{current === 'integrations' && <IntegrationsTab />}</Tabs.Panel>
        <Tabs.Panel value="security">{current === 'security' && <SecurityTab />}</Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

/** Which clients: all of them, or a list. */
function ClientsPicker({
  all,
  setAll,
  ids,
  setIds,
  label,
}: {
  all: boolean;
  setAll: (v: boolean) => void;
  ids: string[];
  setIds: (v: string[]) => void;
  label: string;
}) {
  const { clients } = useSession();
  return (
    <Stack gap={6}>
      <Checkbox label={`${label}: all clients, present and future`} checked={all} onChange={(e) => setAll(e.currentTarget.checked)} />
      {!all && (
        <MultiSelect
          label="Clients"
          placeholder="Pick clients"
          data={clients.map((c) => ({ value: c.id, label: c.name }))}
          value={ids}
          onChange={setIds}
          searchable
          required
        />
      )}
    </Stack>
  );
}

// ---------------------------------------------------------------- users
function UsersTab() {
  const qc = useQueryClient();
  const { clients, me } = useSession();
  const users = useQuery({ queryKey: ['users'], queryFn: () => api.get<User[]>('/users') });
  const [adding, setAdding] = useState(false);
  const [resetFor, setResetFor] = useState<User | null>(null);
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const update = useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: Record<string, unknown> }) => api.patch<User>(`/users/${id}`, patch),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['users'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  if (users.isPending) return <Loading />;
  if (users.isError) return <ErrorState error={users.error} retry={() => void users.refetch()} />;
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          Owners manage everything; admins manage clients, agents and tokens; technicians find and reveal keys; helpdesk reveals by key ID only; auditors read
          keys' metadata and the audit log; client viewers see their own client.
        </Text>
        <Button leftSection={<IconPlus size={16} />} onClick={() => setAdding(true)}>
          Add user
        </Button>
      </Group>
      <div className="kw-table-wrap" tabIndex={0}>
        <Table striped verticalSpacing={6} fz="sm">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>User</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Clients</Table.Th>
              <Table.Th>Two-step</Table.Th>
              <Table.Th>Last sign-in</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th>Actions</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {users.data.map((u) => (
              <Table.Tr key={u.id}>
                <Table.Td>
                  <Text size="sm" fw={600}>
                    {u.name || u.email}
                  </Text>
                  <Text size="xs" c="dimmed">
                    {u.email}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <NativeSelect
                    aria-label={`Role of ${u.email}`}
                    size="xs"
                    value={u.role}
                    disabled={u.id === me.actor.id}
                    onChange={(e) => update.mutate({ id: u.id, patch: { role: e.currentTarget.value } })}
                    data={ROLES.map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
                  />
                </Table.Td>
                <Table.Td>{u.clients === 'all' ? 'All' : u.clients.map((c) => names.get(c) ?? c.slice(0, 8)).join(', ') || 'none'}</Table.Td>
                <Table.Td>
                  {u.mfaEnabled ? (
                    <Badge color="green" variant="light" size="sm">
                      on
                    </Badge>
                  ) : (
                    <Badge color="gray" variant="light" size="sm">
                      off
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{fmtAgo(u.lastLoginAt)}</Table.Td>
                <Table.Td>
                  <Badge color={u.status === 'active' ? 'green' : 'gray'} variant="light" size="sm">
                    {u.status}
                  </Badge>
                </Table.Td>
                <Table.Td>
                  <Group gap={4} wrap="nowrap">
                    {u.id !== me.actor.id && (
                      <Button
                        size="compact-xs"
                        variant="default"
                        onClick={() => update.mutate({ id: u.id, patch: { status: u.status === 'active' ? 'disabled' : 'active' } })}
                      >
                        {u.status === 'active' ? 'Disable' : 'Enable'}
                      </Button>
                    )}
                    <Button size="compact-xs" variant="default" onClick={() => setResetFor(u)}>
                      Set password
                    </Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </div>
      {adding && <AddUserModal onClose={() => setAdding(false)} />}
      {resetFor && <ResetPasswordModal user={resetFor} onClose={() => setResetFor(null)} />}
    </Stack>
  );
}

function AddUserModal({ onClose }: { onClose: () => void }) {
  const qc = useQueryClient();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<Role>('technician');
  const [all, setAll] = useState(false);
  const [ids, setIds] = useState<string[]>([]);
  const create = useMutation({
    mutationFn: () => api.post<User>('/users', { email, name: name || undefined, password, role, clients: all ? 'all' : ids }),
    onSuccess: (u) => {
      notifications.show({ color: 'green', message: `${u.email} can now sign in.` });
      void qc.invalidateQueries({ queryKey: ['users'] });
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title="Add user">
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Stack gap="sm">
          <TextInput label="Email" type="email" value={email} onChange={(e) => setEmail(e.currentTarget.value)} required autoFocus />
          <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <PasswordInput
            label="Initial password"
            description="At least 12 characters; tell it to them through another channel."
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            required
            autoComplete="new-password"
          />
          <NativeSelect
            label="Role"
            value={role}
            onChange={(e) => setRole(e.currentTarget.value as Role)}
            data={ROLES.map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
          />
          <ClientsPicker all={all} setAll={setAll} ids={ids} setIds={setIds} label="Access" />
          {create.error && (
            <Alert color="red" role="alert">
              {messageOf(create.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Add user
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function ResetPasswordModal({ user, onClose }: { user: User; onClose: () => void }) {
  const [password, setPassword] = useState('');
  const reset = useMutation({
    mutationFn: () => api.post(`/users/${user.id}/password`, { password }),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `New password set for ${user.email}; their sessions ended.` });
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title={`Set a password for ${user.email}`}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          reset.mutate();
        }}
      >
        <Stack gap="sm">
          <PasswordInput
            label="New password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            required
            autoComplete="new-password"
            autoFocus
          />
          {reset.error && (
            <Alert color="red" role="alert">
              {messageOf(reset.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={reset.isPending}>
              Set password
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- API tokens
type Token = {
  id: string;
  name: string;
  prefix: string;
  role: Role;
  clients: 'all' | string[];
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
};

function TokensTab() {
  const qc = useQueryClient();
  const { clients, role: myRole, me } = useSession();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => api.get<Token[]>('/tokens') });
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('helpdesk');
  const [all, setAll] = useState(me.actor.clients === 'all' && myRole === 'owner');
  const [ids, setIds] = useState<string[]>([]);
  const [days, setDays] = useState<number | string>(90);
  const [secret, setSecret] = useState<string | null>(null);
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const create = useMutation({
    mutationFn: () =>
      api.post<{ token: string; apiToken: Token }>('/tokens', { name, role, clients: all ? 'all' : ids, ...(days ? { expiresInDays: Number(days) } : {}) }),
    onSuccess: (r) => {
      setSecret(r.token);
      setName('');
      void qc.invalidateQueries({ queryKey: ['tokens'] });
    },
    gcTime: 0,
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.del(`/tokens/${id}`),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['tokens'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Stack gap="md">
      <Card withBorder component="section" aria-labelledby="tok-new">
        <Title order={2} fz="md" id="tok-new" mb="sm">
          New API token
        </Title>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setSecret(null);
            create.mutate();
          }}
        >
          <Stack gap="sm" maw={560}>
            <TextInput
              label="Token name"
              description="What uses it, e.g. “PSA helpdesk integration”"
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              required
              maxLength={100}
            />
            <Group grow>
              <NativeSelect
                label="Role"
                value={role}
                onChange={(e) => setRole(e.currentTarget.value as Role)}
                data={ROLES.filter((r) => myRole === 'owner' || r !== 'owner').map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
              />
              <NumberInput label="Expires in (days)" value={days} onChange={setDays} min={1} max={3650} />
            </Group>
            <ClientsPicker all={all} setAll={setAll} ids={ids} setIds={setIds} label="Access" />
            {create.error && (
              <Alert color="red" role="alert">
                {messageOf(create.error)}
              </Alert>
            )}
            <Group>
              <Button type="submit" loading={create.isPending}>
                Create token
              </Button>
            </Group>
          </Stack>
        </form>
        {secret && (
          <Stack mt="md">
            <SecretOnce title="API token created" secret={secret}>
              <Text size="sm">
                Send it as <Code>Authorization: Bearer …</Code>.{' '}
                <Button size="compact-xs" variant="subtle" onClick={() => setSecret(null)}>
                  Done
                </Button>
              </Text>
            </SecretOnce>
          </Stack>
        )}
      </Card>
      {tokens.isPending ? (
        <Loading />
      ) : tokens.isError ? (
        <ErrorState error={tokens.error} />
      ) : tokens.data.length === 0 ? (
        <Empty title="No API tokens">Integrations (PSA, RMM, scripts) use tokens with a role and a set of clients.</Empty>
      ) : (
        <div className="kw-table-wrap" tabIndex={0}>
          <Table striped verticalSpacing={6} fz="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Prefix</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Clients</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data.map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td>{t.name}</Table.Td>
                  <Table.Td className="kw-mono">{t.prefix}…</Table.Td>
                  <Table.Td>{ROLE_LABEL[t.role]}</Table.Td>
                  <Table.Td>{t.clients === 'all' ? 'All' : t.clients.map((c) => names.get(c) ?? c.slice(0, 8)).join(', ')}</Table.Td>
                  <Table.Td>{t.expiresAt ? fmtDate(t.expiresAt) : 'never'}</Table.Td>
                  <Table.Td>{fmtAgo(t.lastUsedAt)}</Table.Td>
                  <Table.Td>
                    {t.revokedAt ? (
                      <Badge color="gray" variant="light" size="sm">
                        revoked
                      </Badge>
                    ) : (
                      <Button size="compact-xs" color="red" variant="light" onClick={() => revoke.mutate(t.id)} aria-label={`Revoke token ${t.name}`}>
                        Revoke
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </div>
      )}
    </Stack>
  );
}

// ---------------------------------------------------------------- integrations
type GraphConnection = {
  id: string;
  clientId: string;
  tenantId: string;
  appClientId: string;
  syncIntervalMinutes: number;
  enabled: boolean;
  lastSyncAt: string | null;
  lastStatus: string | null;
  lastError: string | null;
};
type AdConnection = {
  id: string;
  clientId: string;
  hosts: string[];
  port: number;
  tlsMode: string;
  bindDn: string;
  baseDns: string[];
  lastSyncAt: string | null;
  lastStatus: string | null;
  lastError: string | null;
};
type TestResult = { ok: boolean; lines: string[] };

function IntegrationsTab() {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const graph = useQuery({ queryKey: ['graph-connections'], queryFn: () => api.get<GraphConnection[]>('/graph/connections') });
  const ad = useQuery({ queryKey: ['ad-connections'], queryFn: () => api.get<AdConnection[]>('/directory/connections') });
  const [results, setResults] = useState<Record<string, TestResult>>({});
  const [adding, setAdding] = useState(false);
  const test = useMutation({
    mutationFn: async ({ kind, id }: { kind: 'graph' | 'ad'; id: string }): Promise<[string, TestResult]> => {
      if (kind === 'graph') {
        const r = await api.post<{ ok: boolean; checks: { check: string; ok: boolean; detail: string }[] }>(`/graph/connections/${id}/test`);
        return [id, { ok: r.ok, lines: r.checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.check}: ${c.detail}`) }];
      }
      const r = await api.post<{ ok: boolean; detail: string }>(`/directory/connections/${id}/test`);
      return [id, { ok: r.ok, lines: [r.detail] }];
    },
    onSuccess: ([id, r]) => setResults((x) => ({ ...x, [id]: r })),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const sync = useMutation({
    mutationFn: ({ kind, id }: { kind: 'graph' | 'ad'; id: string }) =>
      api.post<{ status: string; errorText: string | null; warnings?: string | null }>(
        kind === 'graph' ? `/graph/connections/${id}/sync` : `/directory/connections/${id}/sync`,
      ),
    onSuccess: (r) => {
      notifications.show({
        color: r.status === 'failed' ? 'red' : r.warnings ? 'yellow' : 'green',
        message: r.status === 'failed' ? `Sync failed: ${r.errorText ?? ''}` : r.warnings ? `Sync succeeded with warnings: ${r.warnings}` : `Sync ${r.status}.`,
      });
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
      void qc.invalidateQueries({ queryKey: ['ad-connections'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });

  const row = (
    kind: 'graph' | 'ad',
    id: string,
    clientId: string,
    what: React.ReactNode,
    c: { lastSyncAt: string | null; lastStatus: string | null; lastError: string | null },
  ) => (
    <Card key={id} withBorder padding="sm">
      <Group justify="space-between" wrap="wrap" gap="sm">
        <div>
          <Text fw={600} size="sm">
            {names.get(clientId) ?? clientId.slice(0, 8)}
          </Text>
          <Text size="xs" c="dimmed" component="div">
            {what}
          </Text>
          <Text size="xs" c={c.lastError ? 'red' : 'dimmed'}>
            Last sync {fmtAgo(c.lastSyncAt)}
            {c.lastStatus ? ` · ${c.lastStatus}` : ''}
            {c.lastError ? ` · ${c.lastError}` : ''}
          </Text>
        </div>
        {can('integration:manage', clientId) && (
          <Group gap="xs">
            <Button size="xs" variant="default" onClick={() => test.mutate({ kind, id })} loading={test.isPending && test.variables?.id === id}>
              Test connection
            </Button>
            <Button size="xs" variant="light" onClick={() => sync.mutate({ kind, id })} loading={sync.isPending && sync.variables?.id === id}>
              Sync now
            </Button>
          </Group>
        )}
      </Group>
      {results[id] && (
        <Alert mt="xs" color={results[id].ok ? 'green' : 'red'} variant="light" title={results[id].ok ? 'Connection works' : 'Connection test failed'}>
          <Stack gap={2}>
            {results[id].lines.map((l, i) => (
              <Text key={i} size="xs">
                {l}
              </Text>
            ))}
          </Stack>
        </Alert>
      )}
    </Card>
  );

  return (
    <Stack gap="lg">
      <section aria-labelledby="int-entra">
        <Group justify="space-between" mb="xs">
          <Title order={2} fz="md" id="int-entra">
            Microsoft Entra ID
          </Title>
          <Button size="xs" leftSection={<IconPlus size={14} />} onClick={() => setAdding(true)}>
            Connect a tenant
          </Button>
        </Group>
        {graph.isPending ? (
          <Loading />
        ) : graph.isError ? (
          <ErrorState error={graph.error} />
        ) : graph.data.length === 0 ? (
          <Empty title="No Entra ID tenant connected">
            Connect a client's tenant to sync the recovery keys Entra ID holds (app registration with BitlockerKey.Read.All and Device.Read.All).
          </Empty>
        ) : (
          <Stack gap="xs">
            {graph.data.map((g) =>
              row(
                'graph',
                g.id,
                g.clientId,
                <span className="kw-mono">
                  tenant {g.tenantId} · every {g.syncIntervalMinutes} min
                </span>,
                g,
              ),
            )}
          </Stack>
        )}
      </section>
      <section aria-labelledby="int-ad">
        <Title order={2} fz="md" id="int-ad" mb="xs">
          Active Directory
        </Title>
        {ad.isPending ? (
          <Loading />
        ) : ad.isError ? (
          <ErrorState error={ad.error} />
        ) : ad.data.length === 0 ? (
          <Empty title="No Active Directory connected">
            Add one on the server with <Code>keywarden ad connect</Code> (it needs the bind password and the domain controller's certificate); it then shows
            here.
          </Empty>
        ) : (
          <Stack gap="xs">{ad.data.map((a) => row('ad', a.id, a.clientId, `${a.hosts.join(', ')}:${a.port} (${a.tlsMode}) · ${a.bindDn}`, a))}</Stack>
        )}
      </section>
      {adding && <GraphConnectModal onClose={() => setAdding(false)} />}
    </Stack>
  );
}

function GraphConnectModal({ onClose }: { onClose: () => void }) {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const options = clients.filter((c) => can('integration:manage', c.id));
  const [clientId, setClientId] = useState(options[0]?.id ?? '');
  const [tenantId, setTenantId] = useState('');
  const [appClientId, setAppClientId] = useState('');
  const [secret, setSecret] = useState('');
  const create = useMutation({
    mutationFn: () => api.post('/graph/connections', { clientId, tenantId: tenantId.trim(), appClientId: appClientId.trim(), clientSecret: secret }),
    onSuccess: () => {
      setSecret('');
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title="Connect an Entra ID tenant">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Stack gap="sm">
          <NativeSelect
            label="Client"
            value={clientId}
            onChange={(e) => setClientId(e.currentTarget.value)}
            data={options.map((c) => ({ value: c.id, label: c.name }))}
            required
          />
          <TextInput label="Tenant ID" value={tenantId} onChange={(e) => setTenantId(e.currentTarget.value)} required className="kw-mono" />
          <TextInput label="Application (client) ID" value={appClientId} onChange={(e) => setAppClientId(e.currentTarget.value)} required />
          <PasswordInput
            label="Client secret"
            description="Stored encrypted; never shown again."
            value={secret}
            onChange={(e) => setSecret(e.currentTarget.value)}
            required
            autoComplete="off"
          />
          {create.error && (
            <Alert color="red" role="alert">
              {messageOf(create.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Connect
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- security
type Security = {
  requireMfa: boolean;
  revealHideSeconds: number;
  stepUpMinutes: number;
  revealLimitPerHour: number;
  sessionIdleMinutes: number;
  sessionMaxHours: number;
  clients: { id: string; name: string; rotateAfterDisclosure: boolean; viewerCanReveal: boolean }[];
};

function SecurityTab() {
  const qc = useQueryClient();
  const sec = useQuery({ queryKey: ['security'], queryFn: () => api.get<Security>('/settings/security') });
  const [hide, setHide] = useState<number | string | null>(null);
  const save = useMutation({
    mutationFn: (patch: Record<string, unknown>) => api.patch<Security>('/settings/security', patch),
    onSuccess: (s) => {
      qc.setQueryData(['security'], s);
      void qc.invalidateQueries({ queryKey: ['console-settings'] });
      notifications.show({ color: 'green', message: 'Saved.' });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const viewer = useMutation({
    mutationFn: ({ id, on }: { id: string; on: boolean }) => api.patch(`/clients/${id}`, { viewerCanReveal: on }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['security'] });
      void qc.invalidateQueries({ queryKey: ['clients'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  if (sec.isPending) return <Loading />;
  if (sec.isError) return <ErrorState error={sec.error} retry={() => void sec.refetch()} />;
  const s = sec.data;
  return (
    <Stack gap="lg" maw={760}>
      <Card withBorder component="section" aria-labelledby="sec-auth">
        <Title order={2} fz="md" id="sec-auth" mb="sm">
          Sign-in and reveals
        </Title>
        <Stack gap="md">
          <Switch
            label="Require two-step verification for everyone"
            description="People without an authenticator app must set one up at their next sign-in."
            checked={s.requireMfa}
            onChange={(e) => save.mutate({ requireMfa: e.currentTarget.checked })}
          />
          <Group align="flex-end" gap="sm">
            <NumberInput label="Hide a revealed password after (seconds)" value={hide ?? s.revealHideSeconds} onChange={setHide} min={10} max={600} w={300} />
            <Button
              variant="default"
              onClick={() => save.mutate({ revealHideSeconds: Number(hide ?? s.revealHideSeconds) })}
              disabled={hide === null || Number(hide) === s.revealHideSeconds}
            >
              Save
            </Button>
          </Group>
          <Table fz="sm" verticalSpacing={4} withRowBorders={false}>
            <Table.Tbody>
              <Table.Tr>
                <Table.Td>Step-up window before a reveal</Table.Td>
                <Table.Td fw={600}>{s.stepUpMinutes} minutes</Table.Td>
                <Table.Td c="dimmed">KEYWARDEN_STEP_UP_MINUTES</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Td>Reveals per person per hour</Table.Td>
                <Table.Td fw={600}>{s.revealLimitPerHour}</Table.Td>
                <Table.Td c="dimmed">KEYWARDEN_REVEAL_LIMIT_PER_HOUR</Table.Td>
              </Table.Tr>
              <Table.Tr>
                <Table.Td>Session idle timeout / maximum</Table.Td>
                <Table.Td fw={600}>
                  {s.sessionIdleMinutes} min / {s.sessionMaxHours} h
                </Table.Td>
                <Table.Td c="dimmed">KEYWARDEN_SESSION_IDLE_MINUTES, _MAX_HOURS</Table.Td>
              </Table.Tr>
            </Table.Tbody>
          </Table>
          <Text size="xs" c="dimmed">
            The last three are set in the server's environment (see README, Configuration) and apply to every process.
          </Text>
        </Stack>
      </Card>
      <Card withBorder component="section" aria-labelledby="sec-clients">
        <Title order={2} fz="md" id="sec-clients" mb="sm">
          Per client
        </Title>
        {s.clients.length === 0 ? (
          <Text size="sm" c="dimmed">
            No clients yet.
          </Text>
        ) : (
          <div className="kw-table-wrap" tabIndex={0}>
            <Table fz="sm" verticalSpacing={6}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Client</Table.Th>
                  <Table.Th>Rotate after disclosure</Table.Th>
                  <Table.Th>Client's own staff may reveal</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {s.clients.map((c) => (
                  <Table.Tr key={c.id}>
                    <Table.Td>{c.name}</Table.Td>
                    <Table.Td>
                      <Switch
                        aria-label={`Rotate after disclosure for ${c.name}`}
                        checked={c.rotateAfterDisclosure}
                        onChange={(e) => save.mutate({ clients: [{ id: c.id, rotateAfterDisclosure: e.currentTarget.checked }] })}
                      />
                    </Table.Td>
                    <Table.Td>
                      <Switch
                        aria-label={`Client viewers of ${c.name} may reveal`}
                        checked={c.viewerCanReveal}
                        onChange={(e) => viewer.mutate({ id: c.id, on: e.currentTarget.checked })}
                      />
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Card>
    </Stack>
  );
}
