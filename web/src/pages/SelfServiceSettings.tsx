import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Anchor, Badge, Button, Card, Code, Group, List, PasswordInput, Stack, Switch, Text, TextInput, Title } from '@mantine/core';
import { Link } from 'wouter';
import { api, type Answer } from '../api';
import { useSession } from '../session';
import { CopyValue, ErrorState, Loading, FormFooter, messageOf } from '../ui';
import { useStepUp } from './client-confirm';

/**
 * Self-service recovery in the console (issue 20): the owner's sign-in app for end users (Settings →
 * Sign-in) and each client's switch (the client page). The end users' own page is /recover
 * (Recover.tsx), not the console. The app's client secret is write-only: the server answers only
 * `hasSecret`, and the field is empty after every save. The server decides everything: settings need
 * settings:manage and a fresh second factor, the client switch client:manage, both audited there.
 */
type App = Answer<'/api/v1/settings/self-service', 'get'>;

export const SELF_SERVICE_ISSUER = 'https://login.microsoftonline.com/organizations/v2.0';
const QUERY = ['self-service-app'];
const clientQuery = (clientId: string) => ['client-self-service', clientId];

/** The addresses an MSP needs: the redirect URI to register at Entra, and the end users' page. */
function addresses() {
  const origin = window.location.origin;
  return { redirectUri: `${origin}/api/v1/recover/callback`, page: `${origin}/recover` };
}

/** Settings → Sign-in: "Self-service recovery for end users". */
export function SelfServiceSection() {
  const app = useQuery({ queryKey: QUERY, queryFn: () => api.get('/api/v1/settings/self-service') });
  const { redirectUri, page } = addresses();
  return (
    <Card withBorder component="section" aria-labelledby="ss-title" mt="lg">
      <Stack gap="sm">
        <Group justify="space-between" align="flex-start">
          <Title order={2} fz="lg" id="ss-title">
            Self-service recovery for end users
          </Title>
          {app.data !== undefined && (
            <Badge variant="light" color={app.data?.enabled ? 'green' : 'gray'}>
              {!app.data ? 'not set up' : app.data.enabled ? 'enabled' : 'disabled'}
            </Badge>
          )}
        </Group>
        <Text size="sm">
          A client's own people get the recovery key of their own computer from their phone: they sign in with their work account (a multi-tenant Microsoft
          Entra ID app you register once), see only the devices they own or use, and type the first 8 characters of the key ID. It stays off for every client
          until you switch it on on the client's page.
        </Text>
        <Stack gap={6}>
          <Text size="sm" fw={600}>
            Redirect URI to register on the app (platform Web)
          </Text>
          <Group gap="xs">
            <Code data-testid="ss-redirect-uri" style={{ wordBreak: 'break-all' }}>
              {redirectUri}
            </Code>
            <CopyValue value={redirectUri} label="the redirect URI" />
          </Group>
          <Text size="sm" fw={600}>
            The end users' page, to hand to your clients
          </Text>
          <Group gap="xs">
            <Code data-testid="ss-page" style={{ wordBreak: 'break-all' }}>
              {page}
            </Code>
            <CopyValue value={page} label="the end users' page address" />
          </Group>
        </Stack>
        {app.isPending ? <Loading /> : app.isError ? <ErrorState error={app.error} retry={() => void app.refetch()} /> : <AppForm app={app.data} />}
        <EnabledClients />
      </Stack>
    </Card>
  );
}

function AppForm({ app }: { app: App }) {
  const qc = useQueryClient();
  const [clientId, setClientId] = useState(app?.clientId ?? '');
  const [issuer, setIssuer] = useState(app?.issuer ?? SELF_SERVICE_ISSUER);
  const [enabled, setEnabled] = useState(app?.enabled ?? true);
  const [replacing, setReplacing] = useState(!app?.hasSecret);
  const [secret, setSecret] = useState('');
  // Who may recover keys is vault control: the server asks for a fresh second factor, proved here.
  const stepUp = useStepUp('change self-service recovery');
  const reset = () => {
    setClientId(app?.clientId ?? '');
    setIssuer(app?.issuer ?? SELF_SERVICE_ISSUER);
    setEnabled(app?.enabled ?? true);
    setReplacing(!app?.hasSecret);
    setSecret('');
    save.reset();
  };
  const save = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.put('/api/v1/settings/self-service', {
        body: { clientId: clientId.trim(), issuer: issuer.trim(), enabled, ...(replacing && secret ? { clientSecret: secret } : {}) },
      });
    },
    onSuccess: (saved) => {
      setSecret('');
      setReplacing(!saved?.hasSecret);
      qc.setQueryData(QUERY, saved);
    },
    onError: (e) => stepUp.caught(e),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form onSubmit={submit} aria-label="Self-service sign-in app">
      <Stack gap="sm">
        <TextInput
          label="Application (client) id"
          description="Of the multi-tenant app registration in your MSP tenant (a GUID)."
          value={clientId}
          onChange={(e) => setClientId(e.currentTarget.value)}
          required
          maxLength={300}
          autoComplete="off"
          classNames={{ input: 'kw-mono' }}
        />
        <TextInput
          label="Issuer"
          description="Entra ID's multi-tenant issuer; change it only for a test provider."
          value={issuer}
          onChange={(e) => setIssuer(e.currentTarget.value)}
          required
          maxLength={500}
        />
        {replacing ? (
          <PasswordInput
            label="Client secret"
            description={
              app?.hasSecret
                ? 'The new secret replaces the stored one. Write-only: it is never shown again.'
                : 'The Value of a client secret of the app. Write-only: it is never shown again.'
            }
            value={secret}
            onChange={(e) => setSecret(e.currentTarget.value)}
            autoComplete="off"
            maxLength={2000}
          />
        ) : (
          <Group gap="xs">
            <Text size="sm">Client secret:</Text>
            <Badge variant="light" color="green">
              stored
            </Badge>
            <Button size="compact-sm" variant="default" onClick={() => setReplacing(true)}>
              Replace secret
            </Button>
          </Group>
        )}
        <Switch
          label="End users may sign in (for the clients where self-service is on)"
          checked={enabled}
          onChange={(e) => setEnabled(e.currentTarget.checked)}
        />
        {save.isSuccess && (
          <Alert color="green" variant="light" role="status">
            Saved.{save.data?.hasSecret ? ' The secret is stored in the vault.' : ' No secret is stored yet: end users cannot sign in without one.'}
          </Alert>
        )}
        {stepUp.field}
        <FormFooter error={save.error} onCancel={reset} submitting={save.isPending} submit="Save sign-in app" />
      </Stack>
    </form>
  );
}

/** Which clients have self-service on (one request, whatever the number of clients). */
function EnabledClients() {
  const { clients } = useSession();
  const enabled = useQuery({ queryKey: ['self-service-clients'], queryFn: () => api.get('/api/v1/settings/self-service/clients') });
  const pending = enabled.isPending;
  const failed = enabled.isError ? enabled : undefined;
  const ids = new Set(enabled.data?.clients ?? []);
  const on = clients.filter((c) => ids.has(c.id));
  return (
    <Stack gap={4} data-testid="ss-clients">
      <Text size="sm" fw={600}>
        Clients with self-service on
      </Text>
      {pending ? (
        <Loading />
      ) : failed ? (
        <Alert color="red" variant="light" role="alert">
          {messageOf(failed.error)}
        </Alert>
      ) : on.length === 0 ? (
        <Text size="sm" c="dimmed">
          None yet. Switch it on on a client's page (Clients → the client → Self-service recovery).
        </Text>
      ) : (
        <List size="sm">
          {on.map((c) => (
            <List.Item key={c.id}>
              <Anchor component={Link} href={`/clients/${c.id}`}>
                {c.name}
              </Anchor>
            </List.Item>
          ))}
        </List>
      )}
    </Stack>
  );
}

/** The client page: whether the client's end users may recover their own keys. */
export function ClientSelfServiceCard({ clientId, clientName }: { clientId: string; clientName: string }) {
  const qc = useQueryClient();
  const { can } = useSession();
  const mayEdit = can('client:manage', clientId);
  const setting = useQuery({
    queryKey: clientQuery(clientId),
    queryFn: () => api.get('/api/v1/clients/{id}/self-service', { params: { path: { id: clientId } } }),
  });
  const change = useMutation({
    mutationFn: (enabled: boolean) => api.put('/api/v1/clients/{id}/self-service', { params: { path: { id: clientId } }, body: { enabled } }),
    onSuccess: (r) => {
      qc.setQueryData(clientQuery(clientId), r);
      void qc.invalidateQueries({ queryKey: ['self-service-clients'] });
    },
  });
  return (
    <Card withBorder component="section" aria-labelledby="ss-client-title" data-testid="client-self-service">
      <Stack gap="sm">
        <Title order={2} fz="md" id="ss-client-title">
          Self-service recovery
        </Title>
        <Text size="sm">
          When on, {clientName}'s people sign in at the self-service page with their work account (multi-factor required), see only the devices they own or use,
          and reveal a key by the first 8 characters of its key ID and a reason, within limits per person; the key is rotated after use and you are notified.
          Every step is audited.
        </Text>
        {setting.isPending ? (
          <Loading />
        ) : setting.isError ? (
          <ErrorState error={setting.error} retry={() => void setting.refetch()} />
        ) : mayEdit ? (
          <Switch
            label={`Self-service recovery for ${clientName}`}
            checked={change.isPending ? !!change.variables : setting.data.enabled}
            disabled={change.isPending}
            onChange={(e) => change.mutate(e.currentTarget.checked)}
          />
        ) : (
          <Group gap="xs">
            <Text size="sm">Self-service recovery for {clientName}:</Text>
            <Badge variant="light" color={setting.data.enabled ? 'green' : 'gray'} data-testid="client-self-service-state">
              {setting.data.enabled ? 'on' : 'off'}
            </Badge>
          </Group>
        )}
        {change.isError && (
          <Alert color="red" variant="light" role="alert">
            {messageOf(change.error)}
          </Alert>
        )}
      </Stack>
    </Card>
  );
}
