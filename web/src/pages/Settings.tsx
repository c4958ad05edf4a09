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
  FileInput,
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
  Textarea,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconPlus } from '@tabler/icons-react';
import { api, ApiError, type Answer, type Body, type Role, type User } from '../api';
import { ROLE_LABEL, ROLES, useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, SecretOnce, fmtAgo, fmtDate, fmtDateTime, messageOf, FormFooter } from '../ui';
import { AccountTab } from './Account';
import { PasskeyStepUpButton } from '../passkeys';
import { SsoStepUpButton } from '../sso-step-up';
import { EnrollmentTab } from './Enrollment';
import { InvitationsPanel } from './Invitations';
import { SignInTab } from './SignInSettings';
import { SelfServiceSection } from './SelfServiceSettings';
import { PsaSettingsTab } from './PsaSettings';
import { useStepUp } from './client-confirm';
import { CertificateFacts, ConsentLinkForm, CredentialBadges, CredentialFields, MspAppPanel, PublicCertificate, useCredential } from './MspApp';

type Tab = 'account' | 'users' | 'tokens' | 'enrollment' | 'integrations' | 'psa' | 'branding' | 'security' | 'sign-in';

export function SettingsPage({ tab }: { tab?: string }) {
  const { can, me } = useSession();
  const [, navigate] = useLocation();
  const tabs: { value: Tab; label: string; show: boolean }[] = [
    { value: 'account', label: 'My account', show: true },
    // Admins may invite people (user:invite) without managing users: they see the invitations only.
    { value: 'users', label: 'Users & roles', show: can('user:manage') || can('user:invite') },
    { value: 'tokens', label: 'API tokens', show: can('token:manage') },
    { value: 'enrollment', label: 'Enrollment', show: can('agent:manage') },
    { value: 'integrations', label: 'Connections', show: can('integration:manage') },
    // The PSA serves every client: someone with some clients only sees who sets it up (the server's 403).
    { value: 'psa', label: 'PSA', show: can('integration:manage') },
    { value: 'branding', label: 'Branding', show: can('settings:manage') },
    { value: 'security', label: 'Security', show: can('settings:manage') },
    { value: 'sign-in', label: 'Sign-in', show: can('settings:manage') },
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
        <Tabs.Panel value="users">{current === 'users' && (can('user:manage') ? <UsersTab /> : <InvitationsPanel />)}</Tabs.Panel>
        <Tabs.Panel value="tokens">{current === 'tokens' && <TokensTab />}</Tabs.Panel>
        <Tabs.Panel value="enrollment">{current === 'enrollment' && <EnrollmentTab />}</Tabs.Panel>
        <Tabs.Panel value="integrations">{current === 'integrations' && <IntegrationsTab />}</Tabs.Panel>
        <Tabs.Panel value="psa">{current === 'psa' && <PsaSettingsTab />}</Tabs.Panel>
        <Tabs.Panel value="branding">{current === 'branding' && <BrandingTab />}</Tabs.Panel>
        <Tabs.Panel value="security">{current === 'security' && <SecurityTab />}</Tabs.Panel>
        <Tabs.Panel value="sign-in">
          {current === 'sign-in' && (
            <>
              <SignInTab />
              <SelfServiceSection />
            </>
          )}
        </Tabs.Panel>
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
  const users = useQuery({ queryKey: ['users'], queryFn: () => api.get('/api/v1/users') });
  const [adding, setAdding] = useState(false);
  const [resetFor, setResetFor] = useState<User | null>(null);
  const names = new Map(clients.map((c) => [c.id, c.name]));
  // Managing users needs a fresh second factor: when the server asks for one, the step-up panel
  // appears and the refused change is made again once it is proved.
  const [retry, setRetry] = useState<(() => void) | null>(null);
  const refused = (again: () => void) => (e: unknown) => {
    if (e instanceof ApiError && e.code === 'step_up_required') setRetry(() => again);
    else notifications.show({ color: 'red', message: messageOf(e) });
  };
  const update = useMutation({
    mutationFn: ({ id, patch }: { id: string; patch: Body<'/api/v1/users/{userId}', 'patch'> }) =>
      api.patch('/api/v1/users/{userId}', { params: { path: { userId: id } }, body: patch }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['users'] }),
    onError: (e, v) => refused(() => update.mutate(v))(e),
  });
  const ssoOnly = useMutation({
    mutationFn: ({ id, on }: { id: string; on: boolean }) =>
      api.put('/api/v1/users/{userId}/sso-only', { params: { path: { userId: id } }, body: { ssoOnly: on } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['users'] }),
    onError: (e, v) => refused(() => ssoOnly.mutate(v))(e),
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
      {retry && (
        <StepUp
          onDone={() => {
            setRetry(null);
            retry();
          }}
        />
      )}
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
                    onChange={(e) => update.mutate({ id: u.id, patch: { role: e.currentTarget.value as Role } })}
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
                    <Switch
                      size="xs"
                      label="SSO only"
                      aria-label={`SSO only for ${u.email}`}
                      checked={u.ssoOnly}
                      disabled={u.id === me.actor.id}
                      onChange={(e) => ssoOnly.mutate({ id: u.id, on: e.currentTarget.checked })}
                    />
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </div>
      <InvitationsPanel />
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
  const stepUp = useStepUp('add a user');
  const create = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.post('/api/v1/users', { body: { email, name: name || undefined, password, role, clients: all ? 'all' : ids } });
    },
    onError: (e) => stepUp.caught(e),
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
          {stepUp.field}
          <FormFooter error={create.error} onCancel={onClose} submitting={create.isPending} submit="Add user" />
        </Stack>
      </form>
    </Modal>
  );
}

function ResetPasswordModal({ user, onClose }: { user: User; onClose: () => void }) {
  const [password, setPassword] = useState('');
  const stepUp = useStepUp('set their password');
  const reset = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.post('/api/v1/users/{userId}/password', { params: { path: { userId: user.id } }, body: { password } });
    },
    onError: (e) => stepUp.caught(e),
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
          {stepUp.field}
          <FormFooter error={reset.error} onCancel={onClose} submitting={reset.isPending} submit="Set password" />
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- API tokens

function TokensTab() {
  const qc = useQueryClient();
  const { clients, role: myRole, me } = useSession();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: () => api.get('/api/v1/tokens') });
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('helpdesk');
  const [all, setAll] = useState(me.actor.clients === 'all' && myRole === 'owner');
  const [ids, setIds] = useState<string[]>([]);
  const [days, setDays] = useState<number | string>(90);
  const [secret, setSecret] = useState<string | null>(null);
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const create = useMutation({
    mutationFn: () => api.post('/api/v1/tokens', { body: { name, role, clients: all ? 'all' : ids, ...(days ? { expiresInDays: Number(days) } : {}) } }),
    onSuccess: (r) => {
      setSecret(r.token);
      setName('');
      void qc.invalidateQueries({ queryKey: ['tokens'] });
    },
    gcTime: 0,
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.del('/api/v1/tokens/{tokenId}', { params: { path: { tokenId: id } } }),
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

// ---------------------------------------------------------------- connections (Entra ID, Active Directory)
type GraphConnection = Answer<'/api/v1/graph/connections', 'get'>[number];
type AdConnection = Answer<'/api/v1/directory/connections', 'get'>[number];
type TestResult = Answer<'/api/v1/graph/connections/{connectionId}/test', 'post'> | Answer<'/api/v1/directory/connections/{connectionId}/test', 'post'>;
type LastSync = Pick<GraphConnection | AdConnection, 'lastSyncAt' | 'lastStatus' | 'lastError'>;

const STATUS_COLOR: Record<string, string> = { succeeded: 'green', failed: 'red', running: 'blue' };

/** Last sync in words: when, how it went, and the error when it failed. */
function Health({ c }: { c: LastSync }) {
  return (
    <Text size="xs" c={c.lastError ? 'red' : 'dimmed'}>
      {c.lastSyncAt ? `Last sync ${fmtAgo(c.lastSyncAt)}` : 'Never synced'}
      {c.lastStatus ? ` · ${c.lastStatus}` : ''}
      {c.lastError ? ` · ${c.lastError}` : ''}
    </Text>
  );
}

function TestOutcome({ r, label }: { r: TestResult; label: string }) {
  return (
    <Alert mt="xs" color={r.ok ? 'green' : 'red'} variant="light" title={r.ok ? `Connection works: ${label}` : `Connection test failed: ${label}`}>
      <Stack gap={2}>
        {r.checks.map((c, i) => (
          <Text key={i} size="xs">
            {c.ok ? '✓' : '✗'} <strong>{c.check}</strong>: {c.detail}
          </Text>
        ))}
      </Stack>
    </Alert>
  );
}

function IntegrationsTab() {
  const { can } = useSession();
  const manage = can('integration:manage');
  const [addingGraph, setAddingGraph] = useState(false);
  const [addingAd, setAddingAd] = useState(false);
  const graph = useQuery({ queryKey: ['graph-connections'], queryFn: () => api.get('/api/v1/graph/connections') });
  const ad = useQuery({ queryKey: ['ad-connections'], queryFn: () => api.get('/api/v1/directory/connections') });
  return (
    <Stack gap="lg">
      <MspAppPanel stepUp={(onDone) => <StepUp onDone={onDone} />} />
      <section aria-labelledby="int-entra">
        <Group justify="space-between" mb="xs">
          <Title order={2} fz="md" id="int-entra">
            Microsoft Entra ID
          </Title>
          {manage && (
            <Button size="xs" leftSection={<IconPlus size={14} />} onClick={() => setAddingGraph(true)}>
              Connect a tenant
            </Button>
          )}
        </Group>
        {graph.isPending ? (
          <Loading />
        ) : graph.isError ? (
          <ErrorState error={graph.error} retry={() => void graph.refetch()} />
        ) : graph.data.length === 0 ? (
          <Empty title="No Entra ID tenant connected">
            Choose “Connect a tenant” to sync the recovery keys a client's Entra ID holds (an app registration with BitlockerKey.Read.All and Device.Read.All).
          </Empty>
        ) : (
          <Stack gap="xs">
            {graph.data.map((g) => (
              <GraphCard key={g.id} g={g} />
            ))}
          </Stack>
        )}
      </section>
      <section aria-labelledby="int-ad">
        <Group justify="space-between" mb="xs">
          <Title order={2} fz="md" id="int-ad">
            Active Directory
          </Title>
          {manage && (
            <Button size="xs" leftSection={<IconPlus size={14} />} onClick={() => setAddingAd(true)}>
              Connect Active Directory
            </Button>
          )}
        </Group>
        {ad.isPending ? (
          <Loading />
        ) : ad.isError ? (
          <ErrorState error={ad.error} retry={() => void ad.refetch()} />
        ) : ad.data.length === 0 ? (
          <Empty title="No Active Directory connected">
            Choose “Connect Active Directory” to sync the recovery passwords a client's domain keeps (a read-only account with access to
            msFVE-RecoveryInformation).
          </Empty>
        ) : (
          <Stack gap="xs">
            {ad.data.map((a) => (
              <AdCard key={a.id} a={a} />
            ))}
          </Stack>
        )}
      </section>
      {addingGraph && <GraphConnectModal onClose={() => setAddingGraph(false)} />}
      {addingAd && <AdConnectionModal onClose={() => setAddingAd(false)} />}
    </Stack>
  );
}

/** Sync history: the last runs with their counts and errors. */
function RunsTable({ rows, label }: { rows: { id: string; status: string; at: string; counts: string; error: string | null }[]; label: string }) {
  if (!rows.length)
    return (
      <Text size="xs" c="dimmed" mt="xs">
        No sync has run yet.
      </Text>
    );
  return (
    <div className="kw-table-wrap" tabIndex={0} role="region" aria-label={label}>
      <Table fz="xs" verticalSpacing={4} mt="xs" aria-label={label}>
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Started</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th>Counts</Table.Th>
            <Table.Th>Error</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((r) => (
            <Table.Tr key={r.id}>
              <Table.Td>{fmtDateTime(r.at)}</Table.Td>
              <Table.Td>
                <Badge size="sm" variant="light" color={STATUS_COLOR[r.status] ?? 'gray'}>
                  {r.status}
                </Badge>
              </Table.Td>
              <Table.Td>{r.counts}</Table.Td>
              <Table.Td>{r.error ?? '—'}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </div>
  );
}

function ConfirmRemove({ what, onConfirm, onClose, pending }: { what: string; onConfirm: () => void; onClose: () => void; pending: boolean }) {
  return (
    <Modal opened onClose={onClose} title={`Remove ${what}?`}>
      <Stack gap="sm">
        <Text size="sm">Syncing stops and its history is removed. Recovery keys it already synced stay in the vault.</Text>
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="red" onClick={onConfirm} loading={pending}>
            Remove
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function GraphCard({ g }: { g: GraphConnection }) {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const name = clients.find((c) => c.id === g.clientId)?.name ?? g.clientId.slice(0, 8);
  const manage = can('integration:manage', g.clientId);
  const [result, setResult] = useState<TestResult | null>(null);
  const [history, setHistory] = useState(false);
  const [removing, setRemoving] = useState(false);
  const runs = useQuery({
    queryKey: ['graph-runs', g.id],
    queryFn: () => api.get('/api/v1/graph/connections/{connectionId}/runs', { params: { path: { connectionId: g.id } } }),
    enabled: history,
  });
  const path = { params: { path: { connectionId: g.id } } };
  const test = useMutation({
    mutationFn: () => api.post('/api/v1/graph/connections/{connectionId}/test', path),
    onSuccess: (r) => setResult({ ok: r.ok, checks: r.checks }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const sync = useMutation({
    mutationFn: () => api.post('/api/v1/graph/connections/{connectionId}/sync', path),
    onSuccess: (r) => {
      notifications.show({
        color: r.status === 'failed' ? 'red' : r.warnings ? 'yellow' : 'green',
        message:
          r.status === 'failed'
            ? `Sync of ${name} failed: ${r.errorText ?? ''}`
            : `Sync of ${name} ${r.status}: ${r.newKeys} new keys, ${r.unchanged} unchanged${r.warnings ? ` (warning: ${r.warnings})` : ''}.`,
      });
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
      void qc.invalidateQueries({ queryKey: ['graph-runs', g.id] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const remove = useMutation({
    mutationFn: () => api.del('/api/v1/graph/connections/{connectionId}', path),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `Entra ID of ${name} disconnected.` });
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Card withBorder padding="sm" component="article" aria-label={`Entra ID of ${name}`}>
      <Group justify="space-between" wrap="wrap" gap="sm" align="flex-start">
        <div>
          <Group gap={6}>
            <Text fw={600} size="sm">
              {name}
            </Text>
            {!g.enabled && (
              <Badge size="sm" color="gray" variant="light">
                disabled
              </Badge>
            )}
            <CredentialBadges kind={g.credentialKind} consentLostAt={g.consentLostAt} />
          </Group>
          <Text size="xs" c="dimmed" className="kw-mono">
            tenant {g.tenantId} · app {g.appClientId} · every {g.syncIntervalMinutes} min
          </Text>
          {g.certificate && <CertificateFacts cert={g.certificate} />}
          <Health c={g} />
        </div>
        <Group gap="xs">
          {manage && (
            <>
              <Button size="xs" variant="default" onClick={() => test.mutate()} loading={test.isPending}>
                Test connection
              </Button>
              <Button size="xs" variant="light" onClick={() => sync.mutate()} loading={sync.isPending}>
                Sync now
              </Button>
            </>
          )}
          <Button size="xs" variant="subtle" onClick={() => setHistory((h) => !h)} aria-expanded={history}>
            {history ? 'Hide history' : 'Sync history'}
          </Button>
          {manage && (
            <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(true)}>
              Remove
            </Button>
          )}
        </Group>
      </Group>
      {manage && g.consentLostAt && <ConsentLinkForm clientId={g.clientId} />}
      {result && <TestOutcome r={result} label={`Entra ID of ${name}`} />}
      {history &&
        (runs.isPending ? (
          <Loading />
        ) : runs.isError ? (
          <ErrorState error={runs.error} />
        ) : (
          <RunsTable
            label={`Sync history of Entra ID of ${name}`}
            rows={runs.data.map((r) => ({
              id: r.id,
              status: r.status,
              at: r.startedAt,
              counts: `${r.keysListed} listed, ${r.newKeys} new, ${r.unchanged} unchanged, ${r.removed} removed`,
              error: r.errorText ?? r.warnings,
            }))}
          />
        ))}
      {removing && (
        <ConfirmRemove
          what={`the Entra ID connection of ${name}`}
          pending={remove.isPending}
          onClose={() => setRemoving(false)}
          onConfirm={() => remove.mutate()}
        />
      )}
    </Card>
  );
}

function AdCard({ a }: { a: AdConnection }) {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const name = clients.find((c) => c.id === a.clientId)?.name ?? a.clientId.slice(0, 8);
  const manage = can('integration:manage', a.clientId);
  const [result, setResult] = useState<TestResult | null>(null);
  const [history, setHistory] = useState(false);
  const [editing, setEditing] = useState(false);
  const [removing, setRemoving] = useState(false);
  const path = { params: { path: { connectionId: a.id } } };
  const runs = useQuery({ queryKey: ['ad-runs', a.id], queryFn: () => api.get('/api/v1/directory/connections/{connectionId}/runs', path), enabled: history });
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['ad-connections'] });
    void qc.invalidateQueries({ queryKey: ['ad-runs', a.id] });
  };
  const test = useMutation({
    mutationFn: () => api.post('/api/v1/directory/connections/{connectionId}/test', path),
    onSuccess: (r) => setResult({ ok: r.ok, checks: r.checks }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const sync = useMutation({
    mutationFn: () => api.post('/api/v1/directory/connections/{connectionId}/sync', path),
    onSuccess: (r) => {
      notifications.show({
        color: r.status === 'failed' ? 'red' : 'green',
        message:
          r.status === 'failed'
            ? `Sync of ${name} failed: ${r.errorText ?? ''}`
            : `Sync of ${name} ${r.status} (${r.mode}): ${r.objectsRead} objects read, ${r.newKeys} new keys.`,
      });
      refresh();
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const toggle = useMutation({
    mutationFn: (enabled: boolean) => api.patch('/api/v1/directory/connections/{connectionId}', { ...path, body: { enabled } }),
    onSuccess: (c) => {
      notifications.show({ color: 'green', message: `Active Directory of ${name} ${c.enabled ? 'enabled' : 'disabled'}.` });
      refresh();
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const remove = useMutation({
    mutationFn: () => api.del('/api/v1/directory/connections/{connectionId}', path),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `Active Directory of ${name} disconnected.` });
      void qc.invalidateQueries({ queryKey: ['ad-connections'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Card withBorder padding="sm" component="article" aria-label={`Active Directory of ${name}`}>
      <Group justify="space-between" wrap="wrap" gap="sm" align="flex-start">
        <div style={{ minWidth: 0 }}>
          <Group gap={6}>
            <Text fw={600} size="sm">
              {name}
            </Text>
            <Badge size="sm" color={a.enabled ? 'green' : 'gray'} variant="light">
              {a.enabled ? 'enabled' : 'disabled'}
            </Badge>
          </Group>
          <Text size="xs" c="dimmed" className="kw-mono" style={{ overflowWrap: 'anywhere' }}>
            {a.hosts.join(', ')}:{a.port} ({a.tlsMode === 'ldaps' ? 'LDAPS' : 'StartTLS'}) · {a.bindDn} · every {a.syncIntervalMinutes} min
          </Text>
          <Health c={a} />
        </div>
        <Group gap="xs">
          {manage && (
            <>
              <Button size="xs" variant="default" onClick={() => test.mutate()} loading={test.isPending}>
                Test connection
              </Button>
              <Button size="xs" variant="light" onClick={() => sync.mutate()} loading={sync.isPending} disabled={!a.enabled}>
                Sync now
              </Button>
              <Button size="xs" variant="default" onClick={() => setEditing(true)}>
                Edit
              </Button>
              <Button size="xs" variant="default" onClick={() => toggle.mutate(!a.enabled)} loading={toggle.isPending}>
                {a.enabled ? 'Disable' : 'Enable'}
              </Button>
            </>
          )}
          <Button size="xs" variant="subtle" onClick={() => setHistory((h) => !h)} aria-expanded={history}>
            {history ? 'Hide history' : 'Sync history'}
          </Button>
          {manage && (
            <Button size="xs" variant="subtle" color="red" onClick={() => setRemoving(true)}>
              Remove
            </Button>
          )}
        </Group>
      </Group>
      {result && <TestOutcome r={result} label={`Active Directory of ${name}`} />}
      {history &&
        (runs.isPending ? (
          <Loading />
        ) : runs.isError ? (
          <ErrorState error={runs.error} />
        ) : (
          <RunsTable
            label={`Sync history of Active Directory of ${name}`}
            rows={runs.data.map((r) => ({
              id: r.id,
              status: r.status,
              at: r.startedAt,
              counts: `${r.mode}${r.dc ? ` from ${r.dc}` : ''}: ${r.objectsRead} read, ${r.newKeys} new, ${r.unchanged} unchanged, ${r.removed} removed, ${r.invalid} invalid`,
              error: r.errorText,
            }))}
          />
        ))}
      {editing && <AdConnectionModal existing={a} onClose={() => setEditing(false)} />}
      {removing && (
        <ConfirmRemove
          what={`the Active Directory connection of ${name}`}
          pending={remove.isPending}
          onClose={() => setRemoving(false)}
          onConfirm={() => remove.mutate()}
        />
      )}
    </Card>
  );
}

type Trust = 'ca' | 'pin' | 'any';
const lines = (s: string) =>
  s
    .split(/[\n,;]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** Connect a client's Active Directory, or change a connection (the password: blank keeps it). */
function AdConnectionModal({ existing, onClose }: { existing?: AdConnection; onClose: () => void }) {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const options = clients.filter((c) => can('integration:manage', c.id));
  const [clientId, setClientId] = useState(existing?.clientId ?? options[0]?.id ?? '');
  const [hosts, setHosts] = useState(existing?.hosts.join('\n') ?? '');
  const [tlsMode, setTlsMode] = useState<'ldaps' | 'starttls'>(existing?.tlsMode ?? 'ldaps');
  const [port, setPort] = useState<number | string>(existing?.port ?? '');
  const [trust, setTrust] = useState<Trust>(existing ? (existing.pinnedSha256 ? 'pin' : existing.hasCaCert ? 'ca' : 'any') : 'ca');
  const [caCert, setCaCert] = useState('');
  const [pin, setPin] = useState(existing?.pinnedSha256 ?? '');
  const [bindDn, setBindDn] = useState(existing?.bindDn ?? '');
  const [password, setPassword] = useState('');
  const [baseDns, setBaseDns] = useState(existing?.baseDns.join('\n') ?? '');
  const [interval, setInterval] = useState<number | string>(existing?.syncIntervalMinutes ?? 60);
  const settings = () => ({
    hosts: lines(hosts),
    tlsMode,
    ...(port !== '' ? { port: Number(port) } : {}),
    // The certificate check chosen; a stored CA certificate is kept when none is pasted.
    ...(trust === 'ca'
      ? { ...(caCert.trim() || !existing?.hasCaCert ? { caCert: caCert.trim() || null } : {}), pinnedSha256: null, allowUntrusted: false }
      : trust === 'pin'
        ? { pinnedSha256: pin.trim() || null, caCert: null, allowUntrusted: false }
        : { allowUntrusted: true, pinnedSha256: null, caCert: null }),
    bindDn: bindDn.trim(),
    baseDns: baseDns
      .split('\n')
      .map((x) => x.trim())
      .filter(Boolean),
    syncIntervalMinutes: Number(interval) || 60,
  });
  const save = useMutation({
    mutationFn: () =>
      existing
        ? api.patch('/api/v1/directory/connections/{connectionId}', {
            params: { path: { connectionId: existing.id } },
            body: { ...settings(), ...(password ? { password } : {}) },
          })
        : api.post('/api/v1/directory/connections', { body: { clientId, ...settings(), password } }),
    onSuccess: () => {
      setPassword('');
      notifications.show({ color: 'green', message: existing ? 'Connection saved.' : 'Active Directory connected. Use “Test connection” to check it.' });
      void qc.invalidateQueries({ queryKey: ['ad-connections'] });
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal
      opened
      onClose={onClose}

      title={existing ? 'Edit the Active Directory connection' : 'Connect Active Directory'}
      size="lg"
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <Stack gap="sm">
          {!existing && (
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => setClientId(e.currentTarget.value)}
              data={options.map((c) => ({ value: c.id, label: c.name }))}
              required
            />
          )}
          <Textarea
            label="Domain controllers"
            description="Host names, one per line, tried in order."
            value={hosts}
            onChange={(e) => setHosts(e.currentTarget.value)}
            required
            autosize
            minRows={2}
          />
          <Group grow align="flex-start">
            <NativeSelect
              label="Encryption"
              value={tlsMode}
              onChange={(e) => setTlsMode(e.currentTarget.value as 'ldaps' | 'starttls')}
              data={[
                { value: 'ldaps', label: 'LDAPS (port 636)' },
                { value: 'starttls', label: 'StartTLS (port 389)' },
              ]}
            />
            <NumberInput label="Port" description="Blank: the usual one" value={port} onChange={setPort} min={1} max={65535} />
          </Group>
          <NativeSelect
            label="Trust the domain controller's certificate by"
            value={trust}
            onChange={(e) => setTrust(e.currentTarget.value as Trust)}
            data={[
              { value: 'ca', label: 'The domain CA certificate' },
              { value: 'pin', label: 'Its SHA-256 fingerprint' },
              { value: 'any', label: 'Accepting any certificate (not recommended)' },
            ]}
          />
          {trust === 'ca' && (
            <Textarea
              label="Domain CA certificate (PEM)"
              description={existing?.hasCaCert ? 'A certificate is stored; paste a new one to replace it, or leave blank to keep it.' : undefined}
              placeholder="-----BEGIN CERTIFICATE-----"
              value={caCert}
              onChange={(e) => setCaCert(e.currentTarget.value)}
              autosize
              minRows={3}
              maxRows={8}
              className="kw-mono"
            />
          )}
          {trust === 'pin' && (
            <TextInput label="SHA-256 fingerprint of the DC certificate" value={pin} onChange={(e) => setPin(e.currentTarget.value)} className="kw-mono" />
          )}
          {trust === 'any' && (
            <Alert color="yellow" variant="light">
              Anyone who can intercept the connection could read the bind password and the recovery keys. This choice is recorded in the audit log.
            </Alert>
          )}
          <TextInput
            label="Bind account (DN)"
            placeholder="CN=keywarden,OU=Service Accounts,DC=corp,DC=example"
            value={bindDn}
            onChange={(e) => setBindDn(e.currentTarget.value)}
            required
          />
          <PasswordInput
            label="Bind password"
            description={existing ? 'Stored encrypted and never shown. Leave blank to keep the current password.' : 'Stored encrypted; never shown again.'}
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            required={!existing}
            autoComplete="new-password"
          />
          <Textarea
            label="Search under (base DNs)"
            description="One per line, e.g. OU=Contoso,DC=corp,DC=example"
            value={baseDns}
            onChange={(e) => setBaseDns(e.currentTarget.value)}
            required
            autosize
            minRows={2}
          />
          <NumberInput label="Sync every (minutes)" value={interval} onChange={setInterval} min={5} max={10080} w={220} />
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
              {existing ? 'Save' : 'Connect'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function GraphConnectModal({ onClose }: { onClose: () => void }) {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const options = clients.filter((c) => can('integration:manage', c.id));
  const [clientId, setClientId] = useState(options[0]?.id ?? '');
  const [tenantId, setTenantId] = useState('');
  const [appClientId, setAppClientId] = useState('');
  // A certificate Keywarden generates shows its public part once saved.
  const cred = useCredential('secret');
  const [generated, setGenerated] = useState<string | null>(null);
  const [loginUrl, setLoginUrl] = useState('https://login.microsoftonline.com');
  const [graphUrl, setGraphUrl] = useState('https://graph.microsoft.com');
  const create = useMutation({
    mutationFn: () =>
      api.post('/api/v1/graph/connections', {
        body: {
          clientId,
          tenantId: tenantId.trim(),
          appClientId: appClientId.trim(),
          loginUrl: loginUrl.trim(),
          graphUrl: graphUrl.trim(),
          ...cred.body(),
        },
      }),
    onSuccess: (r) => {
      cred.forget();
      notifications.show({ color: 'green', message: 'Tenant connected. Use “Test connection” to check its permissions.' });
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
      if (r.certificatePem) setGenerated(r.certificatePem);
      else onClose();
    },
    gcTime: 0,
  });
  if (generated)
    return (
      <Modal opened onClose={onClose} title="Connect an Entra ID tenant" size="lg">
        <Stack gap="sm">
          <PublicCertificate pem={generated} />
          <Group justify="flex-end">
            <Button onClick={onClose}>Done</Button>
          </Group>
        </Stack>
      </Modal>
    );
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
          <CredentialFields
            cred={cred}
            choices={[
              { value: 'secret', label: 'A client secret' },
              { value: 'generate', label: 'Generate a certificate' },
              { value: 'upload', label: 'Upload a certificate and its private key' },
            ]}
            secretDescription="Stored encrypted; never shown again."
          />
          <TextInput label="Sign-in URL" description="National clouds differ" value={loginUrl} onChange={(e) => setLoginUrl(e.currentTarget.value)} required />
          <TextInput label="Graph URL" value={graphUrl} onChange={(e) => setGraphUrl(e.currentTarget.value)} required />
          <FormFooter error={create.error} onCancel={onClose} submitting={create.isPending} submit="Connect" />
        </Stack>
      </form>
    </Modal>
  );
}

// ---------------------------------------------------------------- branding on reports
type Branding = Answer<'/api/v1/settings/branding', 'get'>;

/** A fresh code from the authenticator app, when the server asks for one before a change. */
function StepUp({ onDone }: { onDone: () => void }) {
  const [code, setCode] = useState('');
  const verify = useMutation({
    mutationFn: () => api.post('/api/v1/auth/step-up', { body: { code: code.replace(/\s+/g, '') } }),
    onSuccess: () => {
      setCode('');
      onDone();
    },
    gcTime: 0,
  });
  return (
    <Alert color="yellow" variant="light" title="Confirm it is you">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          verify.mutate();
        }}
      >
        <Group align="flex-end" gap="sm">
          <TextInput
            label="Authentication code"
            description="From your authenticator app"
            value={code}
            onChange={(e) => setCode(e.currentTarget.value)}
            inputMode="numeric"
            autoComplete="one-time-code"
            required
          />
          <Button type="submit" loading={verify.isPending}>
            Verify and save
          </Button>
        </Group>
        {verify.error && (
          <Text size="sm" c="red" role="alert" mt="xs">
            {messageOf(verify.error)}
          </Text>
        )}
      </form>
      <PasskeyStepUpButton onDone={onDone} label="Confirm with a passkey and save" />
      <SsoStepUpButton />
    </Alert>
  );
}

function BrandingTab() {
  const qc = useQueryClient();
  const branding = useQuery({ queryKey: ['branding'], queryFn: () => api.get('/api/v1/settings/branding') });
  const [name, setName] = useState<string | null>(null);
  const [logo, setLogo] = useState<{ base64: string; url: string; bytes: number } | null>(null);
  const [logoError, setLogoError] = useState<string | null>(null);
  const [needStepUp, setNeedStepUp] = useState(false);
  const save = useMutation({
    mutationFn: (body: Body<'/api/v1/settings/branding', 'patch'>) => api.patch('/api/v1/settings/branding', { body }),
    onSuccess: (b: Branding) => {
      qc.setQueryData(['branding'], b);
      setName(null);
      setNeedStepUp(false);
      notifications.show({ color: 'green', message: 'Branding saved: reports carry it from now on.' });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.code === 'step_up_required') setNeedStepUp(true);
    },
  });
  if (branding.isPending) return <Loading />;
  if (branding.isError) return <ErrorState error={branding.error} retry={() => void branding.refetch()} />;
  const b = branding.data;
  const shownName = name ?? b.mspName;
  const pending = (): Body<'/api/v1/settings/branding', 'patch'> => ({
    ...(name !== null && name.trim() !== b.mspName ? { mspName: name.trim() } : {}),
    ...(logo ? { logoPngBase64: logo.base64 } : {}),
  });
  const changed = Object.keys(pending()).length > 0;
  const pick = (file: File | null) => {
    setLogoError(null);
    setLogo(null);
    if (!file) return;
    if (file.type !== 'image/png') return setLogoError('The logo must be a PNG image.');
    if (file.size > 256 * 1024) return setLogoError(`The logo must be at most 256 KB; this one is ${Math.ceil(file.size / 1024)} KB.`);
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      setLogo({ url, base64: url.slice(url.indexOf(',') + 1), bytes: file.size });
    };
    reader.readAsDataURL(file);
  };
  return (
    <Stack gap="lg" maw={760}>
      <Card withBorder component="section" aria-labelledby="brand-form">
        <Title order={2} fz="md" id="brand-form" mb="sm">
          Your name and logo on reports
        </Title>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate(pending());
          }}
        >
          <Stack gap="sm">
            <TextInput
              label="MSP name"
              description="Printed at the top of every report you send a client."
              value={shownName}
              onChange={(e) => setName(e.currentTarget.value)}
              maxLength={100}
              required
            />
            <FileInput
              label="Logo"
              description={
                b.hasLogo ? `A logo is stored (${Math.ceil((b.logoBytes ?? 0) / 1024)} KB). Choose a new PNG to replace it.` : 'A PNG of at most 256 KB.'
              }
              accept="image/png"
              onChange={pick}
              clearable
              clearButtonProps={{ 'aria-label': 'Clear the chosen logo' }}
              error={logoError}
            />
            {save.error && !needStepUp && (
              <Alert color="red" role="alert">
                {messageOf(save.error)}
              </Alert>
            )}
            {needStepUp && <StepUp onDone={() => save.mutate(pending())} />}
            <Group>
              <Button type="submit" loading={save.isPending} disabled={!changed}>
                Save branding
              </Button>
              {b.hasLogo && (
                <Button variant="default" color="red" onClick={() => save.mutate({ logoPngBase64: null })}>
                  Remove logo
                </Button>
              )}
            </Group>
          </Stack>
        </form>
      </Card>
      <Card withBorder component="section" aria-labelledby="brand-preview">
        <Title order={2} fz="md" id="brand-preview" mb="sm">
          Preview
        </Title>
        <div
          className="kw-report-preview"
          data-testid="branding-preview"
          style={{ border: '1px solid var(--mantine-color-default-border)', padding: 16, borderRadius: 4 }}
        >
          <Group justify="space-between" wrap="nowrap" align="center">
            <div>
              <Text fw={700} size="lg">
                {shownName || '—'}
              </Text>
              <Text size="sm" c="dimmed">
                BitLocker compliance summary · Example client · {fmtDate(new Date().toISOString())}
              </Text>
            </div>
            {logo ? (
              <img src={logo.url} alt={`Logo of ${shownName}`} style={{ maxHeight: 48, maxWidth: 160 }} />
            ) : b.hasLogo ? (
              <Badge variant="light">Your stored logo</Badge>
            ) : (
              <Text size="xs" c="dimmed">
                No logo
              </Text>
            )}
          </Group>
        </div>
        <Text size="xs" c="dimmed" mt="xs">
          {changed ? 'Not saved yet: this is how reports will look once you save.' : 'This is how reports look now.'}
        </Text>
      </Card>
    </Stack>
  );
}

// ---------------------------------------------------------------- security
function SecurityTab() {
  const qc = useQueryClient();
  const sec = useQuery({ queryKey: ['security'], queryFn: () => api.get('/api/v1/settings/security') });
  const [hide, setHide] = useState<number | string | null>(null);
  const save = useMutation({
    mutationFn: (patch: Body<'/api/v1/settings/security', 'patch'>) => api.patch('/api/v1/settings/security', { body: patch }),
    onSuccess: (s) => {
      qc.setQueryData(['security'], s);
      void qc.invalidateQueries({ queryKey: ['console-settings'] });
      notifications.show({ color: 'green', message: 'Saved.' });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const viewer = useMutation({
    mutationFn: ({ id, on }: { id: string; on: boolean }) =>
      api.patch('/api/v1/clients/{clientId}', { params: { path: { clientId: id } }, body: { viewerCanReveal: on } }),
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
