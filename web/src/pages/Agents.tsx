import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useSearchParams } from 'wouter';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Checkbox,
  Group,
  Modal,
  Pagination,
  NativeSelect,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconPlayerPlay } from '@tabler/icons-react';
import { api, type BulkQueueResult, type EncryptionMethodChoice, type Job, type JobKind, type Query } from '../api';
import {
  type BulkFinding,
  BULK_KINDS,
  ENCRYPTION_METHODS,
  FINDING_TITLE,
  JOB_HINT,
  JOB_LABEL,
  KIND_FINDINGS,
  JOB_ORIGIN,
  jobActive,
  jobLabel,
  jobState,
} from '../agent';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtAgo, fmtDateTime, fmtKeyId, messageOf } from '../ui';

/** Compares dotted versions numerically (1.10.0 > 1.9.2); anything unparsable sorts first. */
function cmpVersion(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10));
  const pb = b.split('.').map((x) => Number.parseInt(x, 10));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? 0;
    const y = pb[i] ?? 0;
    if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : -1) : 1;
    if (x !== y) return x - y;
  }
  return 0;
}

const PAGE = 50;

/**
 * The agents at a glance (GET /agent/health): which versions run where, devices that stopped
 * checking in or run an old agent, and jobs that failed. Per client, people with agent:manage
 * also queue jobs for many devices at once and follow them.
 */
export function AgentsPage() {
  const { clients, can } = useSession();
  const [params, setParams] = useSearchParams();
  const clientId = params.get('client') ?? '';
  const client = clients.find((c) => c.id === clientId);
  const [show, setShow] = useState<'attention' | 'all'>('attention');
  const [page, setPage] = useState(1);
  const [bulk, setBulk] = useState(false);
  const health = useQuery({ queryKey: ['agent-health', clientId], queryFn: () => api.get('/api/v1/agent/health', { params: { query: { clientId } } }) });
  const manage = !!clientId && can('agent:manage', clientId);

  const pick = (id: string) => {
    setParams(id ? { client: id } : {}, { replace: true });
    setPage(1);
  };
  const h = health.data;
  const attention = h ? h.devices.filter((d) => d.outdated || d.stale || d.failingJobs > 0) : [];
  const rows = h ? (show === 'all' ? h.devices : attention) : [];
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  const shown = rows.slice((Math.min(page, pages) - 1) * PAGE, Math.min(page, pages) * PAGE);
  const total = h?.versions.reduce((a, v) => a + v.devices, 0) ?? 0;

  return (
    <Stack gap="md">
      <PageTitle
        sub={h ? `This server ships agent ${h.current} · ${total} devices with an agent · ${attention.length} need attention` : undefined}
        right={
          <Group gap="sm" align="flex-end" wrap="wrap">
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => pick(e.currentTarget.value)}
              data={[{ value: '', label: 'All clients' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
              w={220}
            />
            {manage && (
              <Button leftSection={<IconPlayerPlay size={16} />} onClick={() => setBulk(true)}>
                Queue agent jobs
              </Button>
            )}
          </Group>
        }
      >
        Agents
      </PageTitle>
      {health.isPending ? (
        <Loading label="Loading agent health…" />
      ) : health.isError ? (
        <ErrorState error={health.error} retry={() => void health.refetch()} />
      ) : (
        <>
          <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
            <Card withBorder component="section" aria-labelledby="ag-versions">
              <Title order={2} fz="md" id="ag-versions" mb="sm">
                Versions
              </Title>
              {h!.versions.length === 0 ? (
                <Text size="sm" c="dimmed">
                  No device has checked in with the agent yet. Settings → Enrollment has the downloads and the snippets for your deployment tool.
                </Text>
              ) : (
                <Table fz="sm" verticalSpacing={4} aria-labelledby="ag-versions">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Agent version</Table.Th>
                      <Table.Th ta="right">Devices</Table.Th>
                      <Table.Th>Status</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {[...h!.versions]
                      .sort((a, b) => cmpVersion(b.version ?? '', a.version ?? ''))
                      .map((v) => {
                        const c = v.version === null ? -1 : cmpVersion(v.version, h!.current);
                        return (
                          <Table.Tr key={v.version ?? 'unknown'}>
                            <Table.Td className="kw-mono">{v.version || 'unknown'}</Table.Td>
                            <Table.Td ta="right">{v.devices}</Table.Td>
                            <Table.Td>
                              <Badge variant="light" size="sm" color={c === 0 ? 'green' : c < 0 ? 'orange' : 'blue'}>
                                {c === 0 ? 'current' : c < 0 ? 'outdated' : 'newer than this server'}
                              </Badge>
                            </Table.Td>
                          </Table.Tr>
                        );
                      })}
                  </Table.Tbody>
                </Table>
              )}
            </Card>
            <Card withBorder component="section" aria-labelledby="ag-failing">
              <Title order={2} fz="md" id="ag-failing" mb="sm">
                Failing jobs
              </Title>
              {h!.failingJobs.length === 0 ? (
                <Text size="sm" c="dimmed">
                  No job failed recently.
                </Text>
              ) : (
                <Stack gap="xs" component="ul" className="kw-results" aria-label="Failing jobs">
                  {h!.failingJobs.map((j) => (
                    <li key={j.id}>
                      <Text size="sm" fw={600}>
                        {jobLabel(j.kind)} ·{' '}
                        <Anchor component={Link} href={`/devices/${j.device.id}`} size="sm">
                          {j.device.name}
                        </Anchor>
                      </Text>
                      <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }}>
                        {j.state === 'expired' ? 'expired' : 'failed'} {fmtDateTime(j.finishedAt)} · {j.detail ?? 'no detail reported'}
                      </Text>
                    </li>
                  ))}
                </Stack>
              )}
            </Card>
          </SimpleGrid>

          <Card withBorder component="section" aria-labelledby="ag-devices">
            <Group justify="space-between" mb="sm" wrap="wrap">
              <Title order={2} fz="md" id="ag-devices">
                Devices with an agent
              </Title>
              <SegmentedControl
                size="xs"
                value={show}
                onChange={(v) => {
                  setShow(v as 'attention' | 'all');
                  setPage(1);
                }}
                data={[
                  { value: 'attention', label: `Need attention (${attention.length})` },
                  { value: 'all', label: `All (${h!.devices.length})` },
                ]}
                aria-label="Which devices"
              />
            </Group>
            {rows.length === 0 ? (
              <Empty title={show === 'attention' ? 'Every agent is current and checking in' : 'No device has an agent'}>
                {show === 'attention' ? 'No device runs an old agent, stopped checking in, or has a failing job.' : undefined}
              </Empty>
            ) : (
              <div className="kw-table-wrap" tabIndex={0} role="region" aria-labelledby="ag-devices">
                <Table striped highlightOnHover verticalSpacing={5} fz="sm">
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Device</Table.Th>
                      {!clientId && <Table.Th>Client</Table.Th>}
                      <Table.Th>Agent version</Table.Th>
                      <Table.Th>Last check-in</Table.Th>
                      <Table.Th ta="right">Failing jobs</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {shown.map((d) => (
                      <Table.Tr key={d.id}>
                        <Table.Td>
                          <Anchor component={Link} href={`/devices/${d.id}`} fw={600} size="sm">
                            {d.name}
                          </Anchor>
                        </Table.Td>
                        {!clientId && <Table.Td>{d.client.name}</Table.Td>}
                        <Table.Td>
                          <Group gap={6} wrap="nowrap">
                            <span className="kw-mono">{d.agentVersion ?? 'unknown'}</span>
                            {d.outdated && (
                              <Badge variant="light" size="sm" color="orange">
                                outdated
                              </Badge>
                            )}
                          </Group>
                        </Table.Td>
                        <Table.Td>
                          <Group gap={6} wrap="nowrap">
                            {fmtAgo(d.lastCheckinAt)}
                            {d.stale && (
                              <Badge variant="light" size="sm" color="red">
                                stale
                              </Badge>
                            )}
                          </Group>
                        </Table.Td>
                        <Table.Td ta="right">
                          {d.failingJobs ? (
                            <Badge variant="light" color="red">
                              {d.failingJobs}
                            </Badge>
                          ) : (
                            '—'
                          )}
                        </Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </div>
            )}
            {pages > 1 && (
              <Group justify="space-between" mt="sm" wrap="wrap">
                <Text size="sm" c="dimmed">
                  {(Math.min(page, pages) - 1) * PAGE + 1}–{Math.min(Math.min(page, pages) * PAGE, rows.length)} of {rows.length}
                </Text>
                <Pagination
                  total={pages}
                  value={Math.min(page, pages)}
                  onChange={setPage}
                  size="sm"
                  getControlProps={(c) => ({
                    'aria-label': c === 'previous' ? 'Previous page' : c === 'next' ? 'Next page' : c === 'first' ? 'First page' : 'Last page',
                  })}
                />
              </Group>
            )}
          </Card>
        </>
      )}
      {clientId && can('device:read', clientId) && <ClientJobs clientId={clientId} />}
      {bulk && client && <BulkQueueModal clientId={client.id} clientName={client.name} onClose={() => setBulk(false)} />}
    </Stack>
  );
}

/** '' shows every state. */
type JobStateFilter = NonNullable<Query<'/api/v1/clients/{clientId}/agent-jobs', 'get'>['state']> | '';
const JOB_FILTERS: { value: JobStateFilter; label: string }[] = [
  { value: 'active', label: 'Waiting or running' },
  { value: 'failed', label: 'Failed' },
  { value: 'succeeded', label: 'Done' },
  { value: '', label: 'All' },
];

/** A client's agent jobs (GET /clients/{id}/agent-jobs), newest first. */
function ClientJobs({ clientId }: { clientId: string }) {
  const [state, setState] = useState<JobStateFilter>('active');
  const jobs = useQuery({
    queryKey: ['client-jobs', clientId, state],
    queryFn: () => api.get('/api/v1/clients/{clientId}/agent-jobs', { params: { path: { clientId }, query: { state: state || undefined } } }),
  });
  return (
    <Card withBorder component="section" aria-labelledby="ag-jobs">
      <Group justify="space-between" mb="sm" wrap="wrap" align="flex-end">
        <Title order={2} fz="md" id="ag-jobs">
          Agent jobs of this client
        </Title>
        <NativeSelect label="Show" size="xs" value={state} onChange={(e) => setState(e.currentTarget.value as JobStateFilter)} data={JOB_FILTERS} />
      </Group>
      {jobs.isPending ? (
        <Loading />
      ) : jobs.isError ? (
        <ErrorState error={jobs.error} retry={() => void jobs.refetch()} />
      ) : jobs.data.length === 0 ? (
        <Text size="sm" c="dimmed">
          No jobs here.
        </Text>
      ) : (
        <Stack gap="xs" component="ul" className="kw-results" aria-label="Agent jobs of this client">
          {jobs.data.slice(0, 200).map((j) => (
            <JobRow key={j.id} job={j} device={j.device} />
          ))}
        </Stack>
      )}
    </Card>
  );
}

/**
 * Queues one kind of job for every device of a client with an agent, or only those with a given
 * finding. A preview (dry run) comes first: what would be queued, and why the rest would not.
 */
export function BulkQueueModal({ clientId, clientName, onClose }: { clientId: string; clientName: string; onClose: () => void }) {
  const qc = useQueryClient();
  const [kind, setKind] = useState<JobKind>(BULK_KINDS[0]!);
  const [finding, setFinding] = useState<BulkFinding | ''>(KIND_FINDINGS[BULK_KINDS[0]!][0] ?? '');
  const [preview, setPreview] = useState<BulkQueueResult | null>(null);
  const [done, setDone] = useState<BulkQueueResult | null>(null);
  const run = useMutation({
    mutationFn: (dryRun: boolean) =>
      api
        .post('/api/v1/clients/{clientId}/agent-jobs', { params: { path: { clientId } }, body: { kind, ...(finding ? { finding } : {}), dryRun } })
        .then((r) => ({ r, dryRun })),
    onSuccess: ({ r, dryRun }) => {
      if (dryRun) {
        setPreview(r);
        return;
      }
      setDone(r);
      setPreview(null);
      notifications.show({ color: 'green', message: `Queued ${r.queued} job${r.queued === 1 ? '' : 's'} (${JOB_LABEL[kind]}) for ${clientName}.` });
      void qc.invalidateQueries({ queryKey: ['client-jobs', clientId] });
      void qc.invalidateQueries({ queryKey: ['agent-health'] });
    },
  });
  const change = (k: JobKind, f: BulkFinding | '') => {
    setKind(k);
    setFinding(f);
    setPreview(null);
    setDone(null);
    run.reset();
  };
  const result = done ?? preview;
  return (
    <Modal opened onClose={onClose} title={`Queue agent jobs for ${clientName}`} size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run.mutate(true);
        }}
      >
        <Stack gap="sm">
          <NativeSelect
            label="Job"
            description={JOB_HINT[kind]}
            value={kind}
            onChange={(e) => {
              const k = e.currentTarget.value as JobKind;
              change(k, KIND_FINDINGS[k][0] ?? '');
            }}
            data={BULK_KINDS.map((k) => ({ value: k, label: JOB_LABEL[k] }))}
          />
          <NativeSelect
            label="Devices"
            description="Only devices with this finding, or every device with an agent"
            value={finding}
            onChange={(e) => change(kind, e.currentTarget.value as BulkFinding | '')}
            data={[
              ...KIND_FINDINGS[kind].map((f) => ({ value: f, label: FINDING_TITLE[f] ?? f })),
              { value: '', label: 'Every device with an agent (operating-system drive)' },
            ]}
          />
          {kind === 'enable-encryption' && (
            <Text size="xs" c="dimmed">
              The encryption method is the one the client's compliance policy names. Each device escrows a recovery password first; encryption starts only once
              Keywarden has stored it.
            </Text>
          )}
          {run.error && (
            <Alert color="red" role="alert">
              {messageOf(run.error)}
            </Alert>
          )}
          {result && (
            <Alert color={done ? 'green' : 'blue'} variant="light" title={done ? 'Queued' : 'Preview: nothing queued yet'} data-testid="bulk-result">
              <Stack gap={6}>
                <Text size="sm">
                  {done ? 'Queued' : 'Would queue'} <b>{result.queued}</b> job{result.queued === 1 ? '' : 's'}
                  {result.skipped.length ? `; ${result.skipped.length} skipped.` : '.'}
                </Text>
                {result.jobs.length > 0 && (
                  <div className="kw-table-wrap" tabIndex={0} role="region" aria-label={done ? 'Queued jobs' : 'Jobs that would be queued'}>
                    <Table fz="xs" verticalSpacing={2}>
                      <Table.Thead>
                        <Table.Tr>
                          <Table.Th>{done ? 'Queued for' : 'Would queue for'}</Table.Th>
                          <Table.Th>Drive or key</Table.Th>
                        </Table.Tr>
                      </Table.Thead>
                      <Table.Tbody>
                        {result.jobs.slice(0, 50).map((j, i) => (
                          <Table.Tr key={`${j.deviceId}-${i}`}>
                            <Table.Td>{j.device}</Table.Td>
                            <Table.Td className="kw-mono">{[j.mountPoint, j.protectorId].filter(Boolean).join(' ') || '—'}</Table.Td>
                          </Table.Tr>
                        ))}
                      </Table.Tbody>
                    </Table>
                    {result.jobs.length > 50 && (
                      <Text size="xs" c="dimmed">
                        and {result.jobs.length - 50} more.
                      </Text>
                    )}
                  </div>
                )}
                {result.skipped.length > 0 && (
                  <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Skipped devices">
                    <Table fz="xs" verticalSpacing={2}>
                      <Table.Thead>
                        <Table.Tr>
                          <Table.Th>Skipped device</Table.Th>
                          <Table.Th>Why</Table.Th>
                        </Table.Tr>
                      </Table.Thead>
                      <Table.Tbody>
                        {result.skipped.slice(0, 100).map((s) => (
                          <Table.Tr key={s.deviceId}>
                            <Table.Td>
                              {s.device ? (
                                <Anchor component={Link} href={`/devices/${s.deviceId}`} size="xs" onClick={onClose}>
                                  {s.device}
                                </Anchor>
                              ) : (
                                <span className="kw-mono">{s.deviceId}</span>
                              )}
                            </Table.Td>
                            <Table.Td>{s.why}</Table.Td>
                          </Table.Tr>
                        ))}
                      </Table.Tbody>
                    </Table>
                    {result.skipped.length > 100 && (
                      <Text size="xs" c="dimmed">
                        and {result.skipped.length - 100} more.
                      </Text>
                    )}
                  </div>
                )}
              </Stack>
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              {done ? 'Close' : 'Cancel'}
            </Button>
            {!done && (
              <Button type="submit" variant={preview ? 'default' : 'filled'} loading={run.isPending && run.variables === true}>
                Preview
              </Button>
            )}
            {preview && !done && (
              <Button onClick={() => run.mutate(false)} loading={run.isPending && run.variables === false} disabled={preview.queued === 0}>
                Queue {preview.queued} job{preview.queued === 1 ? '' : 's'}
              </Button>
            )}
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** The options of one enable-encryption job: method and how much of the drive. */
export function EnableEncryptionModal({
  title,
  busy,
  error,
  onClose,
  onQueue,
}: {
  title: string;
  busy: boolean;
  error: unknown;
  onClose: () => void;
  onQueue: (o: { encryptionMethod: EncryptionMethodChoice; usedSpaceOnly: boolean }) => void;
}) {
  const [method, setMethod] = useState<EncryptionMethodChoice>('default');
  const [usedSpaceOnly, setUsedSpaceOnly] = useState(true);
  return (
    <Modal opened onClose={onClose} title={title}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onQueue({ encryptionMethod: method, usedSpaceOnly });
        }}
      >
        <Stack gap="sm">
          <Text size="sm">
            The agent first adds a recovery password and escrows it; only once Keywarden has stored it does it start BitLocker (with the TPM for the
            operating-system drive). A data drive needs the operating-system drive encrypted first.
          </Text>
          <NativeSelect
            label="Encryption method"
            value={method}
            onChange={(e) => setMethod(e.currentTarget.value as EncryptionMethodChoice)}
            data={ENCRYPTION_METHODS}
          />
          <Checkbox
            label="Encrypt used space only (faster; right for new or wiped drives)"
            checked={usedSpaceOnly}
            onChange={(e) => setUsedSpaceOnly(e.currentTarget.checked)}
          />
          {!!error && (
            <Alert color="red" role="alert">
              {messageOf(error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              Queue
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** One job: what, on which drive, where it stands, and what the agent reported. */
export function JobRow({ job: j, device }: { job: Job; device?: { id: string; name: string } }) {
  const st = jobState(j.state);
  const active = jobActive(j.state);
  return (
    <Group component="li" justify="space-between" wrap="nowrap" align="flex-start" data-testid="agent-job">
      <div style={{ minWidth: 0 }}>
        <Text size="sm" fw={600}>
          {jobLabel(j.kind)}
          {j.mountPoint ? ` (${j.mountPoint})` : ''}
          {device && (
            <>
              {' · '}
              <Anchor component={Link} href={`/devices/${device.id}`} size="sm">
                {device.name}
              </Anchor>
            </>
          )}
        </Text>
        <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }}>
          {j.origin && JOB_ORIGIN[j.origin] ? `${JOB_ORIGIN[j.origin]} ` : 'queued '}
          {fmtDateTime(j.createdAt)}
          {j.finishedAt ? ` · finished ${fmtDateTime(j.finishedAt)}` : ''}
          {active && j.attempts > 0 ? ` · attempt ${j.attempts} of ${j.maxAttempts}` : ''}
          {j.protectorId ? ` · key ${fmtKeyId(j.protectorId.replace(/[{}]/g, ''))}` : ''}
          {j.kind === 'enable-encryption'
            ? ` · ${j.encryptionMethod ?? "Windows' default method"}${j.usedSpaceOnly === false ? ', whole drive' : j.usedSpaceOnly ? ', used space only' : ''}`
            : ''}
        </Text>
        {j.detail && (
          <Text size="xs" c={j.state === 'failed' ? 'red' : undefined} style={{ overflowWrap: 'anywhere' }}>
            {j.detail}
          </Text>
        )}
        {j.newProtectorId && (
          <Text size="xs" style={{ overflowWrap: 'anywhere' }}>
            New recovery password escrowed: <span className="kw-mono">{fmtKeyId(j.newProtectorId.replace(/[{}]/g, ''))}</span>
          </Text>
        )}
      </div>
      <Badge variant="light" color={st.color} style={{ flexShrink: 0 }}>
        {st.label}
      </Badge>
    </Group>
  );
}
