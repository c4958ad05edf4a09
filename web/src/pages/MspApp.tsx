import { useState, type ReactNode } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Badge, Button, Card, Code, Group, Modal, NativeSelect, PasswordInput, Stack, Text, TextInput, Textarea, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { api, ApiError, type Answer, type Body } from '../api';
import { useSession } from '../session';
import { CopyValue, ErrorState, Loading, fmtDate, fmtDateTime, messageOf } from '../ui';

/**
 * Settings → Connections: the MSP's one multi-tenant Entra ID app (owners set it; the credential is
 * write-only, the certificate's public part can be downloaded), and per client a one-time
 * admin-consent link to send to the client's administrator.
 */
type MspApp = NonNullable<Answer<'/api/v1/graph/msp-app', 'get'>>;
type Cert = NonNullable<MspApp['certificate']>;

/** Thumbprint and expiry, with a warning before the end. */
export function CertificateFacts({ cert }: { cert: Cert }) {
  return (
    <Text size="xs" c={cert.expiringSoon ? 'red' : 'dimmed'}>
      Certificate <span className="kw-mono">{cert.thumbprint}</span> · valid until {fmtDate(cert.notAfter)}
      {cert.expiringSoon &&
        (cert.daysLeft < 0 ? ' · EXPIRED: upload a new certificate' : ` · expires in ${cert.daysLeft} days: set a new certificate and upload it`)}
    </Text>
  );
}

export function PublicCertificate({ pem }: { pem: string }) {
  return (
    <Alert color="blue" variant="light" title="Upload this certificate to the app registration">
      <Stack gap="xs">
        <Text size="sm">In the Entra admin centre: App registrations › your app › Certificates &amp; secrets › Certificates › Upload certificate.</Text>
        <Code block className="kw-code" aria-label="Public certificate">
          {pem}
        </Code>
        <Group gap="xs">
          <CopyValue value={pem} label="public certificate" />
          <Button
            size="xs"
            variant="light"
            component="a"
            href={`data:application/x-pem-file;charset=utf-8,${encodeURIComponent(pem)}`}
            download="keywarden.cer"
          >
            Download .cer
          </Button>
        </Group>
      </Stack>
    </Alert>
  );
}

export function MspAppPanel({ stepUp }: { stepUp: (onDone: () => void) => ReactNode }) {
  const { can, clients } = useSession();
  const owner = can('settings:manage');
  const [editing, setEditing] = useState(false);
  const [showCert, setShowCert] = useState<string | null>(null);
  const app = useQuery({ queryKey: ['msp-app'], queryFn: () => api.get('/api/v1/graph/msp-app') });
  const cert = useMutation({
    mutationFn: () => api.get('/api/v1/graph/msp-app/certificate'),
    onSuccess: (r) => setShowCert(r.certificatePem),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const linkable = clients.filter((c) => can('integration:manage', c.id));
  return (
    <section aria-labelledby="int-msp-app">
      <Group justify="space-between" mb="xs">
        <Title order={2} fz="md" id="int-msp-app">
          Entra ID app for all clients
        </Title>
        {owner && app.isSuccess && (
          <Button size="xs" onClick={() => setEditing(true)}>
            {app.data ? 'Change the MSP app' : 'Set up the MSP app'}
          </Button>
        )}
      </Group>
      {app.isPending ? (
        <Loading />
      ) : app.isError ? (
        <ErrorState error={app.error} retry={() => void app.refetch()} />
      ) : !app.data ? (
        <Text size="sm" c="dimmed">
          One multi-tenant app registration in your own tenant, consented to once by each client's administrator, replaces an app per client.
          {owner ? ' Choose “Set up the MSP app”.' : ' An owner sets it up.'}
        </Text>
      ) : (
        <Card withBorder padding="sm" component="article" aria-label="MSP app">
          <Stack gap={4}>
            <Text size="sm">
              Application <span className="kw-mono">{app.data.appClientId}</span> · signs in with a{' '}
              {app.data.credentialKind === 'certificate' ? 'certificate' : 'client secret'}
            </Text>
            {app.data.certificate && <CertificateFacts cert={app.data.certificate} />}
            <Text size="xs" c="dimmed">
              Changed {fmtDateTime(app.data.updatedAt)} by {app.data.updatedBy}
            </Text>
            {app.data.certificate && (
              <Group>
                <Button size="xs" variant="default" onClick={() => cert.mutate()} loading={cert.isPending}>
                  Show the public certificate
                </Button>
              </Group>
            )}
            {showCert && <PublicCertificate pem={showCert} />}
          </Stack>
          {linkable.length > 0 && <ConsentLinkForm />}
        </Card>
      )}
      {editing && (
        <MspAppModal
          existing={app.data ?? null}
          stepUp={stepUp}
          onClose={() => setEditing(false)}
          onSaved={(pem) => {
            setShowCert(pem);
            setEditing(false);
          }}
        />
      )}
    </section>
  );
}

/** How an Entra ID app signs in: kept, a certificate Keywarden generates or one uploaded with its key, or a client secret. */
export type CredentialKind = 'generate' | 'upload' | 'secret' | 'keep';

/** The credential fields' state; `body()` is the part of the request that sets the credential. */
export function useCredential(initial: CredentialKind) {
  const [kind, setKind] = useState<CredentialKind>(initial);
  const [certificatePem, setCertificatePem] = useState('');
  const [privateKeyPem, setPrivateKeyPem] = useState('');
  const [secret, setSecret] = useState('');
  return {
    kind,
    setKind,
    certificatePem,
    setCertificatePem,
    privateKeyPem,
    setPrivateKeyPem,
    secret,
    setSecret,
    body: () =>
      kind === 'generate'
        ? { generateCertificate: true as const }
        : kind === 'upload'
          ? { certificatePem, privateKeyPem }
          : kind === 'secret'
            ? { clientSecret: secret }
            : {},
    /** Secrets leave the form's memory once saved. */
    forget: () => {
      setSecret('');
      setPrivateKeyPem('');
    },
  };
}
type Credential = ReturnType<typeof useCredential>;

/** The credential choice and its fields, the same for the MSP app and a client's own app. */
export function CredentialFields({
  cred,
  choices,
  generateNote,
  secretDescription,
}: {
  cred: Credential;
  choices: { value: CredentialKind; label: string }[];
  generateNote?: string;
  secretDescription: string;
}) {
  return (
    <>
      <NativeSelect label="Credential" value={cred.kind} onChange={(e) => cred.setKind(e.currentTarget.value as CredentialKind)} data={choices} />
      {cred.kind === 'generate' && generateNote && (
        <Text size="xs" c="dimmed">
          {generateNote}
        </Text>
      )}
      {cred.kind === 'upload' && (
        <>
          <Textarea
            label="Certificate (PEM)"
            value={cred.certificatePem}
            onChange={(e) => cred.setCertificatePem(e.currentTarget.value)}
            autosize
            minRows={3}
            required
          />
          <Textarea
            label="Private key (PEM, without a passphrase)"
            description="Sealed in the vault at once; never shown again."
            value={cred.privateKeyPem}
            onChange={(e) => cred.setPrivateKeyPem(e.currentTarget.value)}
            autosize
            minRows={3}
            required
            autoComplete="off"
          />
        </>
      )}
      {cred.kind === 'secret' && (
        <PasswordInput
          label="Client secret"
          description={secretDescription}
          value={cred.secret}
          onChange={(e) => cred.setSecret(e.currentTarget.value)}
          required
          autoComplete="off"
        />
      )}
    </>
  );
}

function MspAppModal({
  existing,
  onClose,
  onSaved,
  stepUp,
}: {
  existing: MspApp | null;
  onClose: () => void;
  onSaved: (pem: string | null) => void;
  stepUp: (onDone: () => void) => ReactNode;
}) {
  const qc = useQueryClient();
  const [appClientId, setAppClientId] = useState(existing?.appClientId ?? '');
  const cred = useCredential(existing ? 'keep' : 'generate');
  const [loginUrl, setLoginUrl] = useState(existing?.loginUrl ?? 'https://login.microsoftonline.com');
  const [graphUrl, setGraphUrl] = useState(existing?.graphUrl ?? 'https://graph.microsoft.com');
  const [needStepUp, setNeedStepUp] = useState(false);
  const body = (): Body<'/api/v1/graph/msp-app', 'put'> => ({
    appClientId: appClientId.trim(),
    loginUrl: loginUrl.trim(),
    graphUrl: graphUrl.trim(),
    ...cred.body(),
  });
  const save = useMutation({
    mutationFn: (b: Body<'/api/v1/graph/msp-app', 'put'>) => api.put('/api/v1/graph/msp-app', { body: b }),
    onSuccess: (r) => {
      cred.forget();
      setNeedStepUp(false);
      notifications.show({ color: 'green', message: 'MSP app saved.' });
      void qc.invalidateQueries({ queryKey: ['msp-app'] });
      onSaved(r.certificatePem);
    },
    onError: (e) => {
      if (e instanceof ApiError && e.code === 'step_up_required') setNeedStepUp(true);
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title={existing ? 'Change the MSP app' : 'Set up the MSP app'} size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate(body());
        }}
      >
        <Stack gap="sm">
          <TextInput
            label="Application (client) ID"
            description="Of the multi-tenant app registration in your own tenant"
            value={appClientId}
            onChange={(e) => setAppClientId(e.currentTarget.value)}
            required
            className="kw-mono"
          />
          <CredentialFields
            cred={cred}
            choices={[
              ...(existing ? [{ value: 'keep' as const, label: 'Keep the current credential' }] : []),
              { value: 'generate', label: 'Generate a certificate (recommended)' },
              { value: 'upload', label: 'Upload a certificate and its private key' },
              { value: 'secret', label: 'A client secret' },
            ]}
            generateNote="Keywarden makes an RSA 3072 certificate valid for two years. Its private key stays sealed in the vault; you upload the public certificate to the app registration."
            secretDescription="The secret value, not its ID. Stored encrypted; never shown again."
          />
          <TextInput label="Sign-in URL" description="National clouds differ" value={loginUrl} onChange={(e) => setLoginUrl(e.currentTarget.value)} required />
          <TextInput label="Graph URL" value={graphUrl} onChange={(e) => setGraphUrl(e.currentTarget.value)} required />
          {save.error && !needStepUp && (
            <Alert color="red" role="alert">
              {messageOf(save.error)}
            </Alert>
          )}
          {needStepUp && stepUp(() => save.mutate(body()))}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              Save
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** A one-time admin-consent link for one client, to copy and send to its administrator. */
export function ConsentLinkForm({ clientId: fixed }: { clientId?: string }) {
  const { clients, can } = useSession();
  const qc = useQueryClient();
  const options = clients.filter((c) => can('integration:manage', c.id));
  const [clientId, setClientId] = useState(fixed ?? options[0]?.id ?? '');
  const [tenantId, setTenantId] = useState('');
  const [link, setLink] = useState<{ url: string; expiresAt: string; client: string } | null>(null);
  const make = useMutation({
    mutationFn: () => api.post('/api/v1/graph/consent-links', { body: { clientId, ...(tenantId.trim() ? { tenantId: tenantId.trim() } : {}) } }),
    onSuccess: (r) => {
      setLink({ url: r.url, expiresAt: r.expiresAt, client: options.find((c) => c.id === clientId)?.name ?? '' });
      void qc.invalidateQueries({ queryKey: ['graph-connections'] });
    },
    gcTime: 0,
  });
  return (
    <Stack gap="xs" mt="sm">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          make.mutate();
        }}
      >
        <Group align="flex-end" gap="sm" wrap="wrap">
          {!fixed && (
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => setClientId(e.currentTarget.value)}
              data={options.map((c) => ({ value: c.id, label: c.name }))}
            />
          )}
          <TextInput
            label="Their tenant ID (recommended)"
            description="The link then works for that tenant only. Without it, an administrator of any Microsoft 365 tenant not yet linked in Keywarden can answer it."
            value={tenantId}
            onChange={(e) => setTenantId(e.currentTarget.value)}
            className="kw-mono"
          />
          <Button type="submit" loading={make.isPending}>
            Consent link
          </Button>
        </Group>
      </form>
      {make.error && (
        <Alert color="red" role="alert">
          {messageOf(make.error)}
        </Alert>
      )}
      {link && (
        <Alert color="green" variant="light" title={`Consent link for ${link.client}`}>
          <Stack gap="xs">
            <Text size="sm">
              Send it to an administrator of {link.client}'s Microsoft 365 tenant. It works once, until {fmtDateTime(link.expiresAt)}.
            </Text>
            <TextInput label="Consent link" value={link.url} readOnly className="kw-mono" onFocus={(e) => e.currentTarget.select()} />
            <Group>
              <CopyValue value={link.url} label="consent link" />
            </Group>
          </Stack>
        </Alert>
      )}
    </Stack>
  );
}

/** The connection's sign-in in a badge: its own secret or certificate, or the MSP app; consent lost in red. */
export function CredentialBadges({ kind, consentLostAt }: { kind: string; consentLostAt: string | null }) {
  return (
    <>
      <Badge size="sm" variant="light" color={kind === 'msp_app' ? 'blue' : 'gray'}>
        {kind === 'msp_app' ? 'MSP app' : kind === 'certificate' ? 'certificate' : 'client secret'}
      </Badge>
      {consentLostAt && (
        <Badge size="sm" variant="filled" color="red">
          consent revoked
        </Badge>
      )}
    </>
  );
}
