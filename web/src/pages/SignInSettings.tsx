import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  MultiSelect,
  NativeSelect,
  NumberInput,
  PasswordInput,
  Stack,
  Switch,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import { api, type Answer, type Body, type Role } from '../api';
import { ROLE_LABEL, ROLES, useSession } from '../session';
import { Empty, ErrorState, Loading, messageOf, FormFooter } from '../ui';
import { useStepUp } from './client-confirm';

/**
 * Settings → Sign-in: the single sign-on providers (OpenID Connect). The client secret is
 * write-only: the server answers only whether one is stored. Mapping rules turn a claim of the ID
 * token (a group, a role, a domain) into a role and clients; changes need a fresh step-up.
 */
type Provider = Answer<'/api/v1/settings/sso/providers', 'get'>[number];
type Create = Body<'/api/v1/settings/sso/providers', 'post'>;
type Rule = NonNullable<Create['mappings']>[number];
type Kind = Create['kind'];

const KINDS: { value: Kind; label: string; issuer: string }[] = [
  { value: 'entra', label: 'Microsoft Entra ID', issuer: 'https://login.microsoftonline.com/<tenant id>/v2.0' },
  { value: 'google', label: 'Google Workspace', issuer: 'https://accounts.google.com' },
  { value: 'okta', label: 'Okta', issuer: 'https://<your org>.okta.com' },
  { value: 'oidc', label: 'Other OpenID Connect provider', issuer: 'https://idp.example.com' },
];

export function SignInTab() {
  const providers = useQuery({ queryKey: ['sso-providers-admin'], queryFn: () => api.get('/api/v1/settings/sso/providers') });
  const [editing, setEditing] = useState<Provider | 'new' | null>(null);
  if (providers.isPending) return <Loading />;
  if (providers.isError) return <ErrorState error={providers.error} retry={() => void providers.refetch()} />;
  return (
    <Stack gap="sm">
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          People sign in with their organisation's identity provider. The callback (redirect URI) to register there is{' '}
          <code>{window.location.origin}/api/v1/auth/sso/callback</code>.
        </Text>
        <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')}>
          Add provider
        </Button>
      </Group>
      {providers.data.length === 0 && (
        <Empty title="No sign-in provider">Add Microsoft Entra ID, Google Workspace, Okta or another OpenID Connect provider.</Empty>
      )}
      {providers.data.map((p) => (
        <ProviderCard key={p.id} p={p} onEdit={() => setEditing(p)} />
      ))}
      {editing && <ProviderModal existing={editing === 'new' ? undefined : editing} onClose={() => setEditing(null)} />}
    </Stack>
  );
}

function ProviderCard({ p, onEdit }: { p: Provider; onEdit: () => void }) {
  const qc = useQueryClient();
  const test = useMutation({ mutationFn: () => api.post('/api/v1/settings/sso/providers/{id}/test', { params: { path: { id: p.id } } }) });
  const remove = useMutation({
    mutationFn: () => api.del('/api/v1/settings/sso/providers/{id}', { params: { path: { id: p.id } } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['sso-providers-admin'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Card withBorder>
      <Group justify="space-between" align="flex-start">
        <div>
          <Title order={3} fz="md">
            {p.name}{' '}
            <Badge variant="light" color={p.enabled ? 'green' : 'gray'} size="sm">
              {p.enabled ? 'enabled' : 'disabled'}
            </Badge>
          </Title>
          <Text size="sm" c="dimmed">
            {KINDS.find((k) => k.value === p.kind)?.label} · {p.issuer}
          </Text>
          <Text size="sm">
            {p.mappings.length} mapping rule{p.mappings.length === 1 ? '' : 's'} ({p.mappingMode === 'first' ? 'first match' : 'most privileged match'}) ·{' '}
            {p.jit ? 'new people are added on first sign-in' : 'only existing people'} ·{' '}
            {p.idpMfa ? "the provider's MFA counts for step-up" : 'step-up as usual'}
          </Text>
        </div>
        <Group gap={4}>
          <Button size="compact-sm" variant="default" loading={test.isPending} onClick={() => test.mutate()}>
            Test discovery
          </Button>
          <Button size="compact-sm" variant="default" onClick={onEdit}>
            Edit
          </Button>
          <Button size="compact-sm" variant="default" color="red" loading={remove.isPending} onClick={() => remove.mutate()} aria-label={`Remove ${p.name}`}>
            <IconTrash size={14} />
          </Button>
        </Group>
      </Group>
      {test.data && (
        <Alert mt="sm" color={test.data.ok ? 'green' : 'red'} variant="light" role="status">
          {test.data.message}
        </Alert>
      )}
      {test.error && (
        <Alert mt="sm" color="red" variant="light" role="alert">
          {messageOf(test.error)}
        </Alert>
      )}
    </Card>
  );
}

function ProviderModal({ existing, onClose }: { existing?: Provider; onClose: () => void }) {
  const qc = useQueryClient();
  const { clients } = useSession();
  const [kind, setKind] = useState<Kind>(existing?.kind ?? 'entra');
  const [name, setName] = useState(existing?.name ?? '');
  const [issuer, setIssuer] = useState(existing?.issuer ?? '');
  const [tenants, setTenants] = useState((existing?.allowedTenants ?? []).join(', '));
  const [clientId, setClientId] = useState(existing?.clientId ?? '');
  const [secret, setSecret] = useState('');
  const [scopes, setScopes] = useState((existing?.scopes ?? []).join(' '));
  const [enabled, setEnabled] = useState(existing?.enabled ?? true);
  const [jit, setJit] = useState(existing?.jit ?? false);
  const [idpMfa, setIdpMfa] = useState(existing?.idpMfa ?? false);
  const [mode, setMode] = useState<'first' | 'most'>(existing?.mappingMode ?? 'first');
  const [revalidate, setRevalidate] = useState<number>(existing?.revalidateMinutes ?? 60);
  const [rules, setRules] = useState<Rule[]>(existing?.mappings ?? []);
  const body = (): Create => ({
    kind,
    name,
    issuer,
    clientId,
    ...(secret ? { clientSecret: secret } : {}),
    allowedTenants: tenants.trim() ? tenants.split(/[\s,]+/).filter(Boolean) : null,
    ...(scopes.trim() ? { scopes: scopes.split(/\s+/).filter(Boolean) } : {}),
    enabled,
    jit,
    idpMfa,
    mappingMode: mode,
    mappings: rules,
    revalidateMinutes: revalidate,
  });
  // Who may sign in is vault control: the server asks for a fresh second factor, proved here.
  const stepUp = useStepUp('change how people sign in');
  const save = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      if (!existing) return api.post('/api/v1/settings/sso/providers', { body: body() });
      const { kind: _kind, ...patch } = body();
      return api.patch('/api/v1/settings/sso/providers/{id}', { params: { path: { id: existing.id } }, body: patch });
    },
    onSuccess: () => {
      setSecret('');
      void qc.invalidateQueries({ queryKey: ['sso-providers-admin'] });
      onClose();
    },
    onError: (e) => stepUp.caught(e),
  });
  const setRule = (i: number, r: Partial<Rule>) => setRules(rules.map((x, j) => (j === i ? { ...x, ...r } : x)));
  return (
    <Modal opened onClose={onClose} title={existing ? `Edit ${existing.name}` : 'Add a sign-in provider'} size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        <Stack gap="sm">
          <NativeSelect
            label="Kind"
            value={kind}
            disabled={!!existing}
            onChange={(e) => setKind(e.currentTarget.value as Kind)}
            data={KINDS.map((k) => ({ value: k.value, label: k.label }))}
          />
          <TextInput label="Name on the sign-in button" value={name} onChange={(e) => setName(e.currentTarget.value)} required maxLength={100} />
          <TextInput
            label="Issuer URL"
            placeholder={KINDS.find((k) => k.value === kind)?.issuer}
            value={issuer}
            onChange={(e) => setIssuer(e.currentTarget.value)}
            required
          />
          {kind === 'entra' && (
            <TextInput
              label="Allowed tenant ids (multi-tenant app only)"
              description="With the issuer https://login.microsoftonline.com/organizations/v2.0: the tenant ids (GUIDs) allowed to sign in."
              value={tenants}
              onChange={(e) => setTenants(e.currentTarget.value)}
            />
          )}
          <TextInput label="Client id" value={clientId} onChange={(e) => setClientId(e.currentTarget.value)} required />
          <PasswordInput
            label="Client secret"
            description={
              existing?.hasClientSecret ? 'A secret is stored. Leave empty to keep it; it is never shown again.' : 'Write-only: it is never shown again.'
            }
            value={secret}
            onChange={(e) => setSecret(e.currentTarget.value)}
            autoComplete="off"
          />
          <TextInput label="Scopes" description="Empty: the usual ones for this kind." value={scopes} onChange={(e) => setScopes(e.currentTarget.value)} />
          <Switch label="Enabled" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
          <Switch label="Add new people on their first sign-in (when a rule grants access)" checked={jit} onChange={(e) => setJit(e.currentTarget.checked)} />
          <Switch label="The provider's multi-factor sign-in satisfies step-up" checked={idpMfa} onChange={(e) => setIdpMfa(e.currentTarget.checked)} />
          <NumberInput
            label="Confirm sessions at the provider every (minutes)"
            min={5}
            max={1440}
            value={revalidate}
            onChange={(v) => setRevalidate(Number(v) || 60)}
          />
          <NativeSelect
            label="When several rules match"
            value={mode}
            onChange={(e) => setMode(e.currentTarget.value as 'first' | 'most')}
            data={[
              { value: 'first', label: 'The first matching rule wins' },
              { value: 'most', label: 'The most privileged matching rule wins' },
            ]}
          />
          <Text fw={600} size="sm">
            Mapping rules
          </Text>
          <Text size="xs" c="dimmed">
            No rules: people keep the role set in Keywarden. With rules: each sign-in sets the role and clients of the matching rule; no match ends the person's
            access.
          </Text>
          {rules.map((r, i) => (
            <Group key={i} align="flex-end" gap="xs" wrap="nowrap">
              <TextInput label="Claim" value={r.claim} onChange={(e) => setRule(i, { claim: e.currentTarget.value })} w={110} required />
              <TextInput label="Value" value={r.value} onChange={(e) => setRule(i, { value: e.currentTarget.value })} required />
              <NativeSelect
                label="Role"
                value={r.role}
                onChange={(e) => setRule(i, { role: e.currentTarget.value as Role })}
                data={ROLES.map((x) => ({ value: x, label: ROLE_LABEL[x] }))}
              />
              <MultiSelect
                label="Clients"
                placeholder={r.clients === 'all' ? 'All clients' : 'Pick clients'}
                data={[{ value: 'all', label: 'All clients' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
                value={r.clients === 'all' ? ['all'] : r.clients}
                onChange={(v) => setRule(i, { clients: v.includes('all') && r.clients !== 'all' ? 'all' : v.filter((x) => x !== 'all') })}
                w={200}
              />
              <Button variant="default" aria-label={`Remove rule ${i + 1}`} onClick={() => setRules(rules.filter((_, j) => j !== i))}>
                <IconTrash size={14} />
              </Button>
            </Group>
          ))}
          <Button
            variant="default"
            leftSection={<IconPlus size={14} />}
            onClick={() => setRules([...rules, { claim: 'groups', value: '', role: 'technician', clients: [] }])}
          >
            Add rule
          </Button>
          {stepUp.field}
          <FormFooter error={save.error} onCancel={onClose} submitting={save.isPending} submit="Save" />
        </Stack>
      </form>
    </Modal>
  );
}
