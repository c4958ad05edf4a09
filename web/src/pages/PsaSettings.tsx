import { useState, type FormEvent, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Checkbox,
  Group,
  List,
  Modal,
  NativeSelect,
  PasswordInput,
  SegmentedControl,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { api, ApiError, type Answer, type Body } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, FormFooter, Loading, fmtDateTime, messageOf } from '../ui';
import { useStepUp } from './client-confirm';

/**
 * The PSA in the console (issue 21): Settings › PSA (the vault's one connection, each client's PSA
 * company, each person's PSA member) and the client page's "PSA" card (the client's company and its
 * ticket policy for reveals). The server decides everything (src/modules/psa/psa.service.ts): the
 * connection is for owners of all clients, company links and policies for whoever manages
 * integrations of the client, members for owners; every change needs a fresh second factor. Secrets
 * are write-only: the server answers which are set, never what they are, and the fields are empty
 * after every save.
 */
type Connection = NonNullable<Answer<'/api/v1/settings/psa', 'get'>['connection']>;
type ConnectionInput = Body<'/api/v1/settings/psa', 'put'>;
type Kind = Connection['kind'];
type ClientPsa = Answer<'/api/v1/clients/{clientId}/psa', 'get'>;
type Member = Answer<'/api/v1/psa/members', 'get'>['members'][number];

const CONNECTION = ['psa-connection'];
const COMPANIES = ['psa-companies'];
const MEMBERS = ['psa-members'];
const clientKey = (clientId: string) => ['client-psa', clientId];

const KIND_LABEL: Record<Kind, string> = { halopsa: 'HaloPSA', connectwise: 'ConnectWise PSA', autotask: 'Autotask' };
/** The secrets' names as the PSA calls them (the server answers field names). */
const SECRET_WORDS: Record<string, string> = {
  clientSecret: 'client secret',
  privateKey: 'private key',
  secret: 'API user secret',
  integrationCode: 'integration code',
};
const STATUS_COLOR: Record<Connection['status'], string> = { ok: 'green', failing: 'red', untested: 'gray' };
const POLICY_WORDS: Record<ClientPsa['ticketPolicy'], string> = {
  off: 'Off: the ticket a technician gives is free text.',
  validate: 'Validate when given: a ticket given must exist, be open and belong to the client’s company.',
  required: 'Required: no reveal without an open ticket of the client’s company.',
};

/** Where each value is found in each PSA (the README's "PSA" section says the same, step by step). */
const HELP: Record<Kind, ReactNode> = {
  halopsa: (
    <List size="sm" spacing={2}>
      <List.Item>
        In HaloPSA: <b>Configuration › Integrations › HaloPSA API</b>. The address is the start of the <i>Resource Server</i> (without /api); hosted Halo also
        shows the <i>Tenant</i>.
      </List.Item>
      <List.Item>
        <b>View Applications › New</b>: authentication method <i>Client ID and Secret (Services)</i>, login type <i>Agent</i> (a dedicated agent: notes appear
        under its name), permissions <i>read:tickets</i>, <i>edit:tickets</i>, <i>read:customers</i>. Copy the client ID and secret before saving.
      </List.Item>
    </List>
  ),
  connectwise: (
    <List size="sm" spacing={2}>
      <List.Item>
        In ConnectWise PSA: <b>System › Members › API Members</b>: a member with a role that may read and edit service tickets and read companies; its{' '}
        <b>API Keys</b> give the public and private key (the private key is shown once).
      </List.Item>
      <List.Item>
        The company ID is the one you sign in with; the clientId is the GUID of your integration at developer.connectwise.com; the API address is your site and
        codebase, e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0.
      </List.Item>
    </List>
  ),
  autotask: (
    <List size="sm" spacing={2}>
      <List.Item>
        In Autotask: <b>Admin › Resources/Users › New API User</b> with security level <i>API User (system) (API-only)</i>; generate its user name and secret.
      </List.Item>
      <List.Item>
        Under <b>API Tracking Identifier</b> choose <i>Custom (Internal Integration)</i>: that is the integration code. Keywarden finds your zone from the user
        name; change the zone lookup address only for a test system.
      </List.Item>
    </List>
  ),
};

/** Settings › PSA. */
export function PsaSettingsTab() {
  const { can } = useSession();
  const connection = useQuery({ queryKey: CONNECTION, queryFn: () => api.get('/api/v1/settings/psa'), retry: false });
  if (connection.isPending) return <Loading />;
  if (connection.isError) {
    // Someone who manages integrations of some clients only: the connection serves every client.
    if (connection.error instanceof ApiError && connection.error.status === 403)
      return (
        <Alert color="gray" variant="light" title="The PSA is set up by an owner" data-testid="psa-forbidden">
          {messageOf(connection.error)} An owner of all clients connects the PSA here; you set each of your clients' ticket policy on the client's page.
        </Alert>
      );
    return <ErrorState error={connection.error} retry={() => void connection.refetch()} />;
  }
  const c = connection.data.connection;
  return (
    <Stack gap="lg">
      <Text size="sm" maw={820}>
        Connect your PSA (HaloPSA, ConnectWise PSA or Autotask) and a reveal can be tied to an open ticket of the client's company: Keywarden checks the ticket
        the technician gives and posts an internal note on it (never the recovery password). One PSA per vault.
      </Text>
      <ConnectionCard connection={c} mayEdit={can('settings:manage')} />
      {c && <CompanyMapping />}
      {can('user:manage') && <MembersTable psaName={c?.name ?? null} />}
    </Stack>
  );
}

function ConnectionCard({ connection, mayEdit }: { connection: Connection | null; mayEdit: boolean }) {
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [removing, setRemoving] = useState(false);
  const test = useMutation({
    mutationFn: () => api.post('/api/v1/settings/psa/test'),
    onSuccess: (v) => qc.setQueryData(CONNECTION, { connection: v }),
  });
  return (
    <Card withBorder component="section" aria-labelledby="psa-conn">
      <Stack gap="sm">
        <Group justify="space-between" align="flex-start">
          <Title order={2} fz="md" id="psa-conn">
            Connection
          </Title>
          {connection && (
            <Badge variant="light" color={STATUS_COLOR[connection.status]} data-testid="psa-status">
              {connection.status}
            </Badge>
          )}
        </Group>
        {!connection ? (
          <Empty title="No PSA is connected">
            {mayEdit ? 'Choose your PSA below and fill in its API account.' : 'An owner connects the PSA here (or with `keywarden psa set`).'}
          </Empty>
        ) : (
          <Stack gap={4}>
            <Text size="sm">
              <b>{connection.name}</b>
              {typeof connection.settings.url === 'string' || typeof connection.settings.apiUrl === 'string'
                ? ` at ${String(connection.settings.url ?? connection.settings.apiUrl)}`
                : ''}
              {' · '}secrets stored: {connection.secretsSet.map((k) => SECRET_WORDS[k] ?? k).join(', ')} (never shown)
            </Text>
            <Text size="sm" c="dimmed">
              Last checked {fmtDateTime(connection.lastCheckedAt)}; changed by {connection.updatedBy} {fmtDateTime(connection.updatedAt)}.
            </Text>
            {connection.lastError && (
              <Alert color="red" variant="light" role="alert" title={`${connection.name} does not work yet`}>
                {connection.lastError}
              </Alert>
            )}
          </Stack>
        )}
        {test.isError && (
          <Alert color="red" variant="light" role="alert">
            {messageOf(test.error)}
          </Alert>
        )}
        <Group gap="xs">
          {connection && (
            <Button size="xs" variant="default" onClick={() => test.mutate()} loading={test.isPending}>
              Test again
            </Button>
          )}
          {mayEdit && !editing && (
            <Button size="xs" onClick={() => setEditing(true)}>
              {connection ? 'Change connection' : 'Connect a PSA'}
            </Button>
          )}
          {mayEdit && connection && (
            <Button size="xs" color="red" variant="light" onClick={() => setRemoving(true)}>
              Remove
            </Button>
          )}
        </Group>
        {mayEdit && editing && <ConnectionForm existing={connection} onDone={() => setEditing(false)} />}
      </Stack>
      {removing && connection && <RemoveModal name={connection.name} onClose={() => setRemoving(false)} />}
    </Card>
  );
}

/** One text field of the connection form. */
type Field = { key: string; label: string; description?: string; required?: boolean; secret?: boolean; placeholder?: string };
const FIELDS: Record<Kind, Field[]> = {
  halopsa: [
    { key: 'url', label: 'HaloPSA address', description: 'e.g. https://yourmsp.halopsa.com (the Resource Server without /api).', required: true },
    { key: 'clientId', label: 'Client ID', description: 'Of the API application (Client ID and Secret (Services)).', required: true },
    { key: 'clientSecret', label: 'Client secret', secret: true },
    { key: 'tenant', label: 'Tenant', description: 'Hosted HaloPSA only: the tenant name on the HaloPSA API page.' },
    { key: 'closedStatusIds', label: 'Closed statuses', description: 'Status numbers that count as closed, comma-separated (default 9, 10).' },
  ],
  connectwise: [
    { key: 'apiUrl', label: 'API address', description: 'Site and codebase, e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0', required: true },
    { key: 'companyId', label: 'Company ID', description: 'The company ID you sign in with.', required: true },
    { key: 'publicKey', label: 'Public key', description: "The API member's public key.", required: true },
    { key: 'privateKey', label: 'Private key', secret: true },
    { key: 'clientId', label: 'clientId', description: 'Your integration’s clientId from developer.connectwise.com.', required: true },
  ],
  autotask: [
    { key: 'userName', label: 'API user name', description: "The API-only user's user name.", required: true },
    { key: 'secret', label: 'API user secret', secret: true },
    { key: 'integrationCode', label: 'Integration code', description: 'The API tracking identifier.', secret: true },
    { key: 'zoneLookupUrl', label: 'Zone lookup address', description: 'Leave empty for https://webservices.autotask.net/atservicesrest.' },
    { key: 'closedStatusIds', label: 'Closed statuses', description: 'Status numbers that count as closed, comma-separated (default 5, Complete).' },
  ],
};

function initialValues(existing: Connection | null, kind: Kind): Record<string, string> {
  const out: Record<string, string> = {};
  if (existing?.kind !== kind) return out;
  for (const f of FIELDS[kind]) {
    const v = existing.settings[f.key];
    if (f.secret || v === null || v === undefined) continue;
    out[f.key] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

function ConnectionForm({ existing, onDone }: { existing: Connection | null; onDone: () => void }) {
  const qc = useQueryClient();
  const [kind, setKind] = useState<Kind>(existing?.kind ?? 'halopsa');
  const [values, setValues] = useState<Record<string, string>>(() => initialValues(existing, existing?.kind ?? 'halopsa'));
  const stepUp = useStepUp('change the PSA connection');
  const samePsa = existing?.kind === kind;
  const pickKind = (k: Kind) => {
    setKind(k);
    setValues(initialValues(existing, k));
  };
  const set = (key: string, v: string) => setValues((x) => ({ ...x, [key]: v }));
  const save = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.put('/api/v1/settings/psa', { body: bodyOf(kind, values) });
    },
    onSuccess: (v) => {
      setValues(initialValues(v, v.kind));
      qc.setQueryData(CONNECTION, { connection: v });
      void qc.invalidateQueries({ queryKey: COMPANIES });
      void qc.invalidateQueries({ queryKey: ['client-psa'] });
      if (v.status === 'ok') onDone();
    },
    onError: (e) => stepUp.caught(e),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form onSubmit={submit} aria-label="PSA connection">
      <Stack gap="sm">
        <NativeSelect
          label="PSA"
          value={kind}
          onChange={(e) => pickKind(e.currentTarget.value as Kind)}
          data={(Object.keys(KIND_LABEL) as Kind[]).map((k) => ({ value: k, label: KIND_LABEL[k] }))}
        />
        {existing && !samePsa && (
          <Alert color="orange" variant="light">
            Another PSA replaces {existing.name}: every client is unlinked from its {existing.name} company and needs linking again.
          </Alert>
        )}
        <Alert color="blue" variant="light" title={`Where to find these in ${KIND_LABEL[kind]}`}>
          {HELP[kind]}
        </Alert>
        {FIELDS[kind].map((f) =>
          f.secret ? (
            <PasswordInput
              key={`${kind}-${f.key}`}
              label={f.label}
              description={
                samePsa && existing.secretsSet.includes(f.key)
                  ? `Set — leave empty to keep it. Write-only: never shown.${f.description ? ` ${f.description}` : ''}`
                  : `Write-only: never shown again.${f.description ? ` ${f.description}` : ''}`
              }
              value={values[f.key] ?? ''}
              onChange={(e) => set(f.key, e.currentTarget.value)}
              required={!(samePsa && existing.secretsSet.includes(f.key))}
              autoComplete="off"
              maxLength={4000}
            />
          ) : (
            <TextInput
              key={`${kind}-${f.key}`}
              label={f.label}
              description={f.description}
              value={values[f.key] ?? ''}
              onChange={(e) => set(f.key, e.currentTarget.value)}
              required={f.required}
              autoComplete="off"
              maxLength={500}
            />
          ),
        )}
        {save.data && save.data.status !== 'ok' && (
          <Alert color="red" variant="light" role="alert" title="Saved, but the PSA does not answer yet">
            {save.data.lastError}
          </Alert>
        )}
        {stepUp.field}
        <FormFooter error={save.error} onCancel={onDone} submitting={save.isPending} submit="Save and test" />
      </Stack>
    </form>
  );
}

/** The form's text as the API's body: empty fields left out (a secret left out is kept). */
function bodyOf(kind: Kind, v: Record<string, string>): ConnectionInput {
  const s = (k: string) => (v[k]?.trim() ? v[k]!.trim() : undefined);
  const ids = (k: string) =>
    s(k)
      ?.split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
  switch (kind) {
    case 'halopsa':
      return {
        kind,
        url: s('url') ?? '',
        clientId: s('clientId') ?? '',
        clientSecret: s('clientSecret'),
        tenant: s('tenant') ?? null,
        closedStatusIds: ids('closedStatusIds'),
      };
    case 'connectwise':
      return {
        kind,
        apiUrl: s('apiUrl') ?? '',
        companyId: s('companyId') ?? '',
        publicKey: s('publicKey') ?? '',
        privateKey: s('privateKey'),
        clientId: s('clientId') ?? '',
      };
    case 'autotask':
      return {
        kind,
        userName: s('userName') ?? '',
        secret: s('secret'),
        integrationCode: s('integrationCode'),
        zoneLookupUrl: s('zoneLookupUrl') ?? null,
        closedStatusIds: ids('closedStatusIds'),
      };
  }
}

function RemoveModal({ name, onClose }: { name: string; onClose: () => void }) {
  const qc = useQueryClient();
  const stepUp = useStepUp('remove the PSA connection');
  const remove = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.del('/api/v1/settings/psa');
    },
    onSuccess: () => {
      qc.setQueryData(CONNECTION, { connection: null });
      void qc.invalidateQueries({ queryKey: COMPANIES });
      void qc.invalidateQueries({ queryKey: ['client-psa'] });
      onClose();
    },
    onError: (e) => stepUp.caught(e),
  });
  return (
    <Modal opened onClose={onClose} title={`Remove ${name}?`}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          remove.mutate();
        }}
      >
        <Stack gap="sm">
          <Text size="sm">
            Every client's ticket policy turns off (a ticket becomes free text again) and every client is unlinked from its {name} company. Notes already posted
            stay in {name}.
          </Text>
          {stepUp.field}
          <FormFooter error={remove.error} onCancel={onClose} submitting={remove.isPending} submit="Remove" />
        </Stack>
      </form>
    </Modal>
  );
}

/** Every client with its PSA company, the suggestion by name, and a choice of every company. */
function CompanyMapping() {
  const qc = useQueryClient();
  const data = useQuery({ queryKey: COMPANIES, queryFn: () => api.get('/api/v1/psa/companies'), retry: false });
  const stepUp = useStepUp('change a client’s PSA company');
  const link = useMutation({
    mutationFn: async (v: { clientId: string; companyId: string | null }) => {
      await stepUp.prove();
      return api.put('/api/v1/clients/{clientId}/psa', { params: { path: { clientId: v.clientId } }, body: { companyId: v.companyId } });
    },
    onSuccess: (r) => {
      qc.setQueryData(clientKey(r.clientId), r);
      void qc.invalidateQueries({ queryKey: COMPANIES });
    },
    onError: (e) => stepUp.caught(e),
  });
  const options = (data.data?.companies ?? []).map((c) => ({ value: c.id, label: `${c.name} (${c.id})` }));
  return (
    <Card withBorder component="section" aria-labelledby="psa-companies">
      <Stack gap="sm">
        <Title order={2} fz="md" id="psa-companies">
          Clients and their {data.data?.psa ?? 'PSA'} company
        </Title>
        <Text size="sm">
          A ticket counts for a client only when it belongs to the client's company. Keywarden suggests the company whose name matches; you decide. A company
          belongs to one client.
        </Text>
        {stepUp.field}
        {link.isError && (
          <Alert color="red" variant="light" role="alert">
            {messageOf(link.error)}
          </Alert>
        )}
        {data.isPending ? (
          <Loading label="Reading the companies from the PSA…" />
        ) : data.isError ? (
          <ErrorState error={data.error} retry={() => void data.refetch()} />
        ) : data.data.clients.length === 0 ? (
          <Empty title="No clients yet" />
        ) : (
          <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Clients and their PSA company">
            <Table aria-label="Clients and their PSA company" verticalSpacing={6}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Client</Table.Th>
                  <Table.Th>PSA company</Table.Th>
                  <Table.Th>Change</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {data.data.clients.map((c) => {
                  const busy = link.isPending && link.variables?.clientId === c.clientId;
                  return (
                    <Table.Tr key={c.clientId} data-testid={`psa-client-${c.clientName}`}>
                      <Table.Td>
                        <Anchor component={Link} href={`/clients/${c.clientId}`}>
                          {c.clientName}
                        </Anchor>
                      </Table.Td>
                      <Table.Td>
                        {c.companyId ? (
                          <Text size="sm">
                            {c.companyName}{' '}
                            <Text span c="dimmed" size="xs">
                              ({c.companyId})
                            </Text>
                          </Text>
                        ) : c.suggestion ? (
                          <Group gap="xs" wrap="nowrap">
                            <Text size="sm">Suggested: {c.suggestion.name}</Text>
                            <Button
                              size="compact-xs"
                              onClick={() => link.mutate({ clientId: c.clientId, companyId: c.suggestion!.id })}
                              loading={busy}
                              aria-label={`Accept ${c.suggestion.name} for ${c.clientName}`}
                            >
                              Accept
                            </Button>
                          </Group>
                        ) : (
                          <Text size="sm" c="dimmed">
                            not linked
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Group gap="xs" wrap="nowrap">
                          <Select
                            aria-label={`PSA company for ${c.clientName}`}
                            placeholder="Pick a company"
                            data={options}
                            value={c.companyId}
                            onChange={(v) => v && v !== c.companyId && link.mutate({ clientId: c.clientId, companyId: v })}
                            searchable
                            limit={50}
                            nothingFoundMessage="No company by that name"
                            disabled={busy}
                            size="xs"
                            w={260}
                          />
                          {c.companyId && (
                            <Button size="compact-xs" variant="default" onClick={() => link.mutate({ clientId: c.clientId, companyId: null })} disabled={busy}>
                              Unlink
                            </Button>
                          )}
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  );
                })}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Stack>
    </Card>
  );
}

/** People ↔ PSA members (owners): whom "assigned to the technician" compares a ticket's assignees with. */
function MembersTable({ psaName }: { psaName: string | null }) {
  const members = useQuery({ queryKey: MEMBERS, queryFn: () => api.get('/api/v1/psa/members'), retry: false });
  const stepUp = useStepUp('link people to PSA members');
  return (
    <Card withBorder component="section" aria-labelledby="psa-members">
      <Stack gap="sm">
        <Title order={2} fz="md" id="psa-members">
          People and their {psaName ?? 'PSA'} identity
        </Title>
        <Text size="sm">
          Where a client's policy asks for the ticket to be assigned to the technician, Keywarden compares the ticket's assignee with the identity here: the
          HaloPSA agent id or name, the ConnectWise member identifier, the Autotask resource id or name.
        </Text>
        {stepUp.field}
        {members.isPending ? (
          <Loading />
        ) : members.isError ? (
          <ErrorState error={members.error} retry={() => void members.refetch()} />
        ) : (
          <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="People and their PSA identity">
            <Table aria-label="People and their PSA identity" verticalSpacing={6}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Person</Table.Th>
                  <Table.Th>Role</Table.Th>
                  <Table.Th>PSA member</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {members.data.members.map((m) => (
                  <MemberRow key={m.userId} m={m} stepUp={stepUp} />
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Stack>
    </Card>
  );
}

function MemberRow({ m, stepUp }: { m: Member; stepUp: ReturnType<typeof useStepUp> }) {
  const qc = useQueryClient();
  const [value, setValue] = useState(m.member ?? '');
  const save = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.put('/api/v1/psa/members/{userId}', { params: { path: { userId: m.userId } }, body: { member: value.trim() || null } });
    },
    onSuccess: (r) => {
      setValue(r.member ?? '');
      qc.setQueryData(MEMBERS, (old: { members: Member[] } | undefined) => old && { members: old.members.map((x) => (x.userId === r.userId ? r : x)) });
    },
    onError: (e) => stepUp.caught(e),
  });
  const changed = value.trim() !== (m.member ?? '');
  return (
    <Table.Tr>
      <Table.Td>
        <Text size="sm">{m.name || m.email}</Text>
        <Text size="xs" c="dimmed">
          {m.email}
          {!m.active && ' · disabled'}
        </Text>
      </Table.Td>
      <Table.Td>{m.role}</Table.Td>
      <Table.Td>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate();
          }}
        >
          <Group gap="xs" wrap="nowrap">
            <TextInput
              aria-label={`PSA member for ${m.email}`}
              value={value}
              onChange={(e) => setValue(e.currentTarget.value)}
              placeholder="not linked"
              maxLength={200}
              size="xs"
              w={220}
              error={save.isError ? messageOf(save.error) : undefined}
            />
            <Button type="submit" size="compact-xs" disabled={!changed} loading={save.isPending}>
              Save
            </Button>
          </Group>
        </form>
      </Table.Td>
    </Table.Tr>
  );
}

/** The client page: the client's PSA company and its ticket policy for reveals. */
export function ClientPsaCard({ clientId, clientName }: { clientId: string; clientName: string }) {
  const { can } = useSession();
  const setting = useQuery({
    queryKey: clientKey(clientId),
    queryFn: () => api.get('/api/v1/clients/{clientId}/psa', { params: { path: { clientId } } }),
  });
  const mayEdit = can('integration:manage', clientId);
  return (
    <Card withBorder component="section" aria-labelledby="psa-client-title" data-testid="client-psa">
      <Stack gap="sm">
        <Title order={2} fz="md" id="psa-client-title">
          PSA
        </Title>
        {setting.isPending ? (
          <Loading />
        ) : setting.isError ? (
          <ErrorState error={setting.error} retry={() => void setting.refetch()} />
        ) : (
          <>
            <Text size="sm">
              {setting.data.companyId ? (
                <>
                  {clientName} is <b>{setting.data.companyName}</b> ({setting.data.companyId}) in the PSA.
                </>
              ) : (
                <>
                  {clientName} is not linked to a PSA company.{' '}
                  {can('integration:manage') && (
                    <Anchor component={Link} href="/settings/psa" inherit underline="always">
                      Link it in Settings › PSA
                    </Anchor>
                  )}
                </>
              )}
            </Text>
            {mayEdit ? (
              <PolicyForm s={setting.data} />
            ) : (
              <Text size="sm" data-testid="client-psa-policy">
                {POLICY_WORDS[setting.data.ticketPolicy]}
                {setting.data.ticketPolicy !== 'off' && setting.data.requireAssignee && ' The ticket must be assigned to the technician.'}
              </Text>
            )}
          </>
        )}
      </Stack>
    </Card>
  );
}

function PolicyForm({ s }: { s: ClientPsa }) {
  const qc = useQueryClient();
  const [policy, setPolicy] = useState(s.ticketPolicy);
  const [assignee, setAssignee] = useState(s.requireAssignee);
  const stepUp = useStepUp('change the ticket policy');
  const save = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.put('/api/v1/clients/{clientId}/psa', {
        params: { path: { clientId: s.clientId } },
        body: { ticketPolicy: policy, requireAssignee: assignee },
      });
    },
    onSuccess: (r) => {
      qc.setQueryData(clientKey(s.clientId), r);
      void qc.invalidateQueries({ queryKey: COMPANIES });
    },
    onError: (e) => stepUp.caught(e),
  });
  const changed = policy !== s.ticketPolicy || assignee !== s.requireAssignee;
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
      aria-label="Ticket policy"
    >
      <Stack gap="xs">
        <Text size="sm" fw={600}>
          Ticket for reveals
        </Text>
        <SegmentedControl
          aria-label="Ticket policy"
          value={policy}
          onChange={(v) => setPolicy(v as ClientPsa['ticketPolicy'])}
          data={[
            { value: 'off', label: 'Off' },
            { value: 'validate', label: 'Validate when given' },
            { value: 'required', label: 'Required' },
          ]}
        />
        <Text size="sm" c="dimmed">
          {POLICY_WORDS[policy]}
        </Text>
        <Checkbox
          label="The ticket must be assigned to the technician (their PSA member, Settings › PSA)"
          checked={assignee}
          disabled={policy === 'off'}
          onChange={(e) => setAssignee(e.currentTarget.checked)}
        />
        {save.isSuccess && !changed && (
          <Alert color="green" variant="light" role="status">
            Saved.
          </Alert>
        )}
        {stepUp.field}
        {!!save.error && (
          <Alert color="red" role="alert">
            {messageOf(save.error)}
          </Alert>
        )}
        <Group>
          <Button type="submit" size="xs" disabled={!changed} loading={save.isPending}>
            Save ticket policy
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
