import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Anchor, Badge, Button, Card, Group, NativeSelect, NumberInput, Stack, Table, Tabs, Text, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconDownload } from '@tabler/icons-react';
import { api } from '../api';
import { deploymentRoutes, downloadAll, hashCheck } from '../agent';
import { useSession } from '../session';
import { CopyValue, Empty, ErrorState, Loading, SecretOnce, Snippet, fmtDateTime, messageOf } from '../ui';

/** The files an admin downloads for a rollout, in the order they need them. */
const KIT_ORDER = [
  'Keywarden-Agent.ps1',
  'Install-KeywardenAgent.ps1',
  'Detect-KeywardenCheckin.ps1',
  'Syncro-Keywarden.ps1',
  'Get-KeywardenCertificatePin.ps1',
];
const KIT_PURPOSE: Record<string, string> = {
  'Keywarden-Agent.ps1': 'The agent',
  'Install-KeywardenAgent.ps1': 'Installer: copies the agent, enrolls once, hourly task',
  'Detect-KeywardenCheckin.ps1': 'Detection / monitor script',
  'Syncro-Keywarden.ps1': 'Wrapper for RMMs that prepend variables',
  'Get-KeywardenCertificatePin.ps1': 'Prints the certificate pin',
};
const fmtSize = (n: number) => (n < 1024 ? `${n} bytes` : `${(n / 1024).toFixed(1)} KB`);

/** Saves the token as the one-shot enroll.token file the installer and the agent read. */
function downloadTokenFile(token: string) {
  const url = URL.createObjectURL(new Blob([token], { type: 'text/plain' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'enroll.token';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Settings → Enrollment: the agent rollout screen. Create a token (shown once), download the kit
 * the server serves (with version and SHA-256 to check), and copy the snippets for the tool that
 * deploys it. No snippet carries the token: it goes into enroll.token, an environment variable or
 * the RMM's secure field.
 */
export function EnrollmentTab() {
  const qc = useQueryClient();
  const { clients, can } = useSession();
  const manageable = clients.filter((c) => can('agent:manage', c.id));
  // The client list loads after the page on a direct visit: until someone picks, the first one counts.
  const [picked, setPicked] = useState('');
  const clientId = manageable.some((c) => c.id === picked) ? picked : (manageable[0]?.id ?? '');
  const [days, setDays] = useState<number | string>(30);
  const [maxUses, setMaxUses] = useState<number | string>('');
  const [made, setMade] = useState<{ token: string; client: string } | null>(null);
  const tokens = useQuery({ queryKey: ['enrollment-tokens'], queryFn: () => api.get('/api/v1/agent/enrollment-tokens') });
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const create = useMutation({
    mutationFn: () =>
      api.post('/api/v1/agent/enrollment-tokens', {
        body: { clientId, expiresInDays: Number(days) || 30, maxUses: maxUses === '' ? null : Number(maxUses) },
      }),
    onSuccess: (r) => {
      setMade({ token: r.token, client: names.get(r.enrollmentToken.clientId) ?? '' });
      void qc.invalidateQueries({ queryKey: ['enrollment-tokens'] });
    },
    gcTime: 0,
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.del('/api/v1/agent/enrollment-tokens/{tokenId}', { params: { path: { tokenId: id } } }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['enrollment-tokens'] }),
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Stack gap="md">
      <Card withBorder component="section" aria-labelledby="enr-new">
        <Title order={2} fz="md" id="enr-new" mb="xs">
          Enroll devices
        </Title>
        <Text size="sm" c="dimmed" mb="sm">
          An enrollment token lets the Windows agent register devices of one client. It is needed once per device; keep it short-lived, give it a use limit, and
          revoke it when the rollout is done.
        </Text>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setMade(null);
            create.mutate();
          }}
        >
          <Group align="flex-end" gap="sm" wrap="wrap">
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => setPicked(e.currentTarget.value)}
              data={manageable.map((c) => ({ value: c.id, label: c.name }))}
              required
              w={220}
            />
            <NumberInput label="Valid for (days)" value={days} onChange={setDays} min={1} max={365} w={140} />
            <NumberInput label="Maximum devices" placeholder="No limit" value={maxUses} onChange={setMaxUses} min={1} w={160} />
            <Button type="submit" loading={create.isPending} disabled={!clientId}>
              Create enrollment token
            </Button>
          </Group>
          {create.error && (
            <Alert color="red" mt="sm" role="alert">
              {messageOf(create.error)}
            </Alert>
          )}
        </form>
        {made && (
          <Stack mt="md" gap="sm">
            <SecretOnce title={`Enrollment token for ${made.client}`} secret={made.token}>
              <Text size="sm">
                It never goes on a command line (Windows logs those). Save it as <b>enroll.token</b> for the Intune app, Group Policy or an install by hand, or
                paste it into your RMM's variable, secure field or the wrapper's token line (see Deploy below).
              </Text>
              <Group gap="xs">
                <Button size="xs" variant="light" leftSection={<IconDownload size={14} />} onClick={() => downloadTokenFile(made.token)}>
                  Download enroll.token
                </Button>
                <Button size="xs" variant="subtle" onClick={() => setMade(null)}>
                  Done
                </Button>
              </Group>
            </SecretOnce>
          </Stack>
        )}
      </Card>
      <AgentDownloads />
      <DeployRoutes />
      <Title order={2} fz="md" id="enr-tokens">
        Enrollment tokens
      </Title>
      {tokens.isPending ? (
        <Loading />
      ) : tokens.isError ? (
        <ErrorState error={tokens.error} />
      ) : tokens.data.length === 0 ? (
        <Empty title="No enrollment tokens yet" />
      ) : (
        <div className="kw-table-wrap" tabIndex={0} aria-labelledby="enr-tokens" role="region">
          <Table striped verticalSpacing={6} fz="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Client</Table.Th>
                <Table.Th>Prefix</Table.Th>
                <Table.Th>Uses</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data.map((t) => {
                const expired = Date.parse(t.expiresAt) < Date.now();
                return (
                  <Table.Tr key={t.id}>
                    <Table.Td>{names.get(t.clientId) ?? t.clientId.slice(0, 8)}</Table.Td>
                    <Table.Td className="kw-mono">{t.prefix}…</Table.Td>
                    <Table.Td>
                      {t.uses}
                      {t.maxUses ? ` of ${t.maxUses}` : ''}
                    </Table.Td>
                    <Table.Td>{fmtDateTime(t.expiresAt)}</Table.Td>
                    <Table.Td>
                      {t.revokedAt || expired ? (
                        <Badge color="gray" variant="light" size="sm">
                          {t.revokedAt ? 'revoked' : 'expired'}
                        </Badge>
                      ) : (
                        <Button
                          size="compact-xs"
                          color="red"
                          variant="light"
                          onClick={() => revoke.mutate(t.id)}
                          aria-label={`Revoke enrollment token ${t.prefix}`}
                        >
                          Revoke
                        </Button>
                      )}
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </div>
      )}
    </Stack>
  );
}

/** The rollout kit from GET /agent/files: byte for byte the repository's files, with their SHA-256. */
function AgentDownloads() {
  const files = useQuery({ queryKey: ['agent-files'], queryFn: () => api.get('/api/v1/agent/files'), staleTime: 5 * 60_000 });
  const sorted = [...(files.data?.files ?? [])].sort((a, b) => rank(a.name) - rank(b.name));
  return (
    <Card withBorder component="section" aria-labelledby="enr-kit">
      <Group justify="space-between" mb="xs" wrap="wrap">
        <Title order={2} fz="md" id="enr-kit">
          Agent downloads
        </Title>
        {files.data && (
          <Badge variant="light" data-testid="agent-version">
            version {files.data.version}
          </Badge>
        )}
      </Group>
      {files.isPending ? (
        <Loading />
      ) : files.isError ? (
        <ErrorState error={files.error} retry={() => void files.refetch()} />
      ) : (
        <Stack gap="sm">
          <Text size="sm" c="dimmed">
            The files this server ships. Before you package or paste one, check on Windows that its SHA-256 matches: the line below prints True.
          </Text>
          {sorted.map((f) => (
            <div key={f.name} className="kw-snippet" data-testid="agent-file">
              <Group gap="xs" justify="space-between" wrap="wrap" align="flex-start">
                <div style={{ minWidth: 0 }}>
                  <Anchor href={new URL(f.url, window.location.origin).pathname} download={f.name} fw={600} size="sm">
                    <IconDownload size={14} aria-hidden /> {f.name}
                  </Anchor>
                  <Text size="xs" c="dimmed">
                    {KIT_PURPOSE[f.name] ?? 'Rollout helper'} · {fmtSize(f.size)}
                  </Text>
                  <Text className="kw-hash" c="dimmed">
                    SHA-256 <span data-testid="agent-file-sha256">{f.sha256}</span>
                  </Text>
                </div>
                <CopyValue value={hashCheck(f.name, f.sha256)} label={`hash check for ${f.name}`} text="Copy hash check" />
              </Group>
            </div>
          ))}
          {sorted[0] && <Snippet title={`Check ${sorted[0].name} (PowerShell, in the download folder)`} code={hashCheck(sorted[0].name, sorted[0].sha256)} />}
          <Snippet
            title="Or download and check every file on Windows"
            description="Stops at the first file whose SHA-256 differs from this list."
            code={downloadAll(window.location.origin)}
          />
        </Stack>
      )}
    </Card>
  );
}
const rank = (name: string) => {
  const i = KIT_ORDER.indexOf(name);
  return i < 0 ? KIT_ORDER.length : i;
};

/** One tab per deployment tool, each a few steps with code to copy. */
function DeployRoutes() {
  const routes = deploymentRoutes(window.location.origin);
  const [tab, setTab] = useState<string | null>(routes[0]!.id);
  return (
    <Card withBorder component="section" aria-labelledby="enr-deploy">
      <Title order={2} fz="md" id="enr-deploy" mb="xs">
        Deploy
      </Title>
      {window.location.protocol === 'http:' && (
        <Alert color="orange" variant="light" mb="sm" title="Plain HTTP">
          This console is served over plain HTTP: the agent accepts that only for testing on the same machine (-AllowInsecureHttp). Put Keywarden behind HTTPS
          for real devices.
        </Alert>
      )}
      <Tabs value={tab} onChange={setTab} variant="pills" keepMounted={false}>
        <Tabs.List mb="sm" aria-label="Deployment route">
          {routes.map((r) => (
            <Tabs.Tab key={r.id} value={r.id}>
              {r.label}
            </Tabs.Tab>
          ))}
        </Tabs.List>
        {routes.map((r) => (
          <Tabs.Panel key={r.id} value={r.id}>
            <Stack gap="sm">
              <Text size="sm">{r.intro}</Text>
              {r.steps.map((s, i) =>
                s.code ? (
                  <Snippet key={i} title={s.title} code={s.code} description={s.text} />
                ) : (
                  <div key={i}>
                    <Text size="sm" fw={600}>
                      {s.title}
                    </Text>
                    <Text size="sm" c="dimmed">
                      {s.text}
                    </Text>
                  </div>
                ),
              )}
            </Stack>
          </Tabs.Panel>
        ))}
      </Tabs>
    </Card>
  );
}
