import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { Alert, Anchor, Badge, Button, Card, Group, Menu, Modal, SimpleGrid, Stack, Table, Text, TextInput, Textarea, Title } from '@mantine/core';
import { useMediaQuery } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconAlertTriangle, IconChevronDown, IconLock } from '@tabler/icons-react';
import { api, type Answer, type Body, type JobKind, type KeySummary } from '../api';
import { JOB_HINT, JOB_LABEL, VOLUME_KINDS, jobLabel } from '../agent';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, SOURCE_LABEL, STATE_COLOR, fmtAgo, fmtDate, fmtDateTime, fmtKeyId, messageOf } from '../ui';
import { EnableEncryptionModal, JobRow } from './Agents';
import { MayNotUnlockBadge, RevealDialog } from './Reveal';
import { useStepUp } from './client-confirm';

/** Below this width the device page shows cards instead of tables (issue 17, item 6). */
const PHONE = '(max-width: 599px)';
/** The close button of a notification, named for screen readers. */
/** Jobs about one recovery password (the Recovery keys table's menu). */
const KEY_KINDS: JobKind[] = ['rotate', 'backup', 'backup-to-entra', 'backup-to-ad'];
type QueueInput = Body<'/api/v1/devices/{deviceId}/jobs', 'post'>;
type DeviceDetail = Answer<'/api/v1/devices/{deviceId}', 'get'>;
type ClientLifecycle = Answer<'/api/v1/clients/{clientId}/lifecycle', 'get'>;
type Approval = ClientLifecycle['pendingApprovals'][number];
const COMPLIANCE_COLOR: Record<string, string> = { compliant: 'green', 'non-compliant': 'red', exempt: 'cyan', unknown: 'gray' };

function Section({ title, children, right }: { title: string; children: React.ReactNode; right?: React.ReactNode }) {
  const id = `sec-${title.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <Card withBorder padding="md" component="section" aria-labelledby={id}>
      <Group justify="space-between" mb="sm">
        <Title order={2} fz="md" id={id}>
          {title}
        </Title>
        {right}
      </Group>
      {children}
    </Card>
  );
}

function Field({ label, value }: { label: string; value: React.ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" component="div" style={{ overflowWrap: 'anywhere' }}>
        {value ?? '—'}
      </Text>
    </div>
  );
}

export function DevicePage({ id }: { id: string }) {
  const { can } = useSession();
  const qc = useQueryClient();
  const phone = useMediaQuery(PHONE) === true;
  const path = { params: { path: { deviceId: id } } };
  const device = useQuery({ queryKey: ['device', id], queryFn: () => api.get('/api/v1/devices/{deviceId}', path) });
  const jobs = useQuery({ queryKey: ['device', id, 'jobs'], queryFn: () => api.get('/api/v1/devices/{deviceId}/jobs', path), enabled: device.isSuccess });
  const findings = useQuery({
    queryKey: ['device', id, 'findings'],
    queryFn: () => api.get('/api/v1/findings', { params: { query: { deviceId: id } } }),
    enabled: device.isSuccess,
  });
  const compliance = useQuery({
    queryKey: ['device', id, 'compliance'],
    queryFn: () => api.get('/api/v1/devices/{deviceId}/compliance', path),
    enabled: device.isSuccess,
    retry: false,
  });
  const history = useQuery({
    queryKey: ['device', id, 'history'],
    queryFn: () => api.get('/api/v1/devices/{deviceId}/volume-history', path),
    enabled: device.isSuccess,
  });
  const clientId = device.data?.client.id;
  const audit = useQuery({
    queryKey: ['device', id, 'audit'],
    queryFn: () => api.get('/api/v1/devices/{deviceId}/audit', { params: { path: { deviceId: id }, query: { limit: 50 } } }),
    enabled: device.isSuccess && can('audit:read', clientId),
  });
  const [revealing, setRevealing] = useState<KeySummary | null>(null);
  const [encrypting, setEncrypting] = useState<string | null>(null);
  const queue = useMutation({
    mutationFn: (b: QueueInput) => api.post('/api/v1/devices/{deviceId}/jobs', { params: { path: { deviceId: id } }, body: b }),
    onSuccess: (j) => {
      notifications.show({
        color: 'green',
        message: `Queued: ${jobLabel(j.kind)}${j.mountPoint ? ` on ${j.mountPoint}` : ''}. The agent picks it up at its next check-in.`,
      });
      setEncrypting(null);
      void qc.invalidateQueries({ queryKey: ['device', id, 'jobs'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  /** The agent menu of one volume or one key: a button that opens a list of job kinds. */
  const agentMenu = (label: string, kinds: JobKind[], pick: (k: JobKind) => void) => (
    <Menu position="bottom-end" width={300} withInitialFocusPlaceholder={false}>
      <Menu.Target>
        <Button size="compact-sm" variant="default" rightSection={<IconChevronDown size={14} />} aria-label={label}>
          Agent
        </Button>
      </Menu.Target>
      <Menu.Dropdown>
        {kinds.map((k) => (
          <Menu.Item key={k} onClick={() => pick(k)}>
            <Text size="sm">
              {JOB_LABEL[k]}
              {k === 'enable-encryption' ? '…' : ''}
            </Text>
            <Text size="xs" c="dimmed">
              {JOB_HINT[k]}
            </Text>
          </Menu.Item>
        ))}
      </Menu.Dropdown>
    </Menu>
  );

  if (device.isPending) return <Loading label="Loading the device…" />;
  if (device.isError) return <ErrorState error={device.error} retry={() => void device.refetch()} title="This device could not be loaded" />;
  const d = device.data;
  const f = d.facts ?? {};
  const fact = (k: string) => (f[k] === undefined || f[k] === null || typeof f[k] === 'object' ? null : String(f[k]));
  const { os, tpm, entra } = f;
  const sources = [...new Set(d.recoveryKeys.flatMap((k) => k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type)))];
  const manage = can('agent:manage', d.client.id);
  const mayReveal = can('key:reveal', d.client.id);

  /** The actions of one key: Reveal first, always in reach; then the agent's menu. */
  const keyActions = (k: KeySummary, full: boolean) => (
    <Group gap={4} wrap="nowrap">
      {mayReveal && (
        <Button size={full ? 'sm' : 'compact-sm'} onClick={() => setRevealing(k)} aria-label={`Reveal key ${fmtKeyId(k.keyId)}`}>
          Reveal
        </Button>
      )}
      {manage &&
        d.lastCheckinAt &&
        k.keyId &&
        k.volume?.mountPoint &&
        (k.state === 'active' || k.state === 'disclosed') &&
        agentMenu(`Agent actions for key ${fmtKeyId(k.keyId)}`, k.mayNotUnlock ? ['re-escrow', ...KEY_KINDS] : KEY_KINDS, (kind) =>
          queue.mutate({ kind, mountPoint: k.volume!.mountPoint!, protectorId: k.keyId! }),
        )}
    </Group>
  );
  const stateBadges = (k: KeySummary) => (
    <Group gap={4} wrap="wrap">
      <Badge variant="light" color={STATE_COLOR[k.state] ?? 'gray'}>
        {k.state}
      </Badge>
      {k.mayNotUnlock && <MayNotUnlockBadge />}
    </Group>
  );

  return (
    <Stack gap="md">
      <div>
        <Anchor component={Link} href={`/clients/${d.client.id}`} size="sm">
          {d.client.name}
        </Anchor>
        <PageTitle
          sub={`Last seen ${fmtAgo(d.lastSeenAt)}${d.lastCheckinAt ? ` · agent check-in ${fmtAgo(d.lastCheckinAt)}` : ' · no agent'}${d.retiredAt ? ' · retired' : ''}`}
        >
          {d.name}
        </PageTitle>
      </div>

      <Section title="Recovery keys">
        {!can('key:list', d.client.id) ? (
          <Text size="sm" c="dimmed">
            Your role does not list keys. {d.keys} key{d.keys === 1 ? '' : 's'} on file.
          </Text>
        ) : d.recoveryKeys.length === 0 ? (
          <Empty title="No recovery key escrowed">
            This device has no key in the vault. If it is encrypted, its key is at risk: enroll the agent (Settings → Enrollment), connect Entra ID or AD, or
            import the key (Imports).
          </Empty>
        ) : phone ? (
          <Stack gap="xs" component="ul" className="kw-results" aria-label="Recovery keys">
            {d.recoveryKeys.map((k) => (
              <Card key={k.id} withBorder padding="sm" component="li" data-testid="key-card">
                <Stack gap={6}>
                  <Text className="kw-mono" size="sm" style={{ overflowWrap: 'anywhere' }}>
                    {fmtKeyId(k.keyId)}
                  </Text>
                  {stateBadges(k)}
                  <Text size="xs" c="dimmed">
                    Volume {k.volume?.mountPoint ?? '?'} · key from {fmtDate(k.createdAt ?? k.firstSeenAt)} ·{' '}
                    {k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type).join(', ') || 'no source'}
                  </Text>
                  {keyActions(k, true)}
                </Stack>
              </Card>
            ))}
          </Stack>
        ) : (
          <div className="kw-table-wrap" tabIndex={0}>
            <Table striped verticalSpacing={6} fz="sm">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Key ID</Table.Th>
                  <Table.Th>Volume</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th>Sources</Table.Th>
                  <Table.Th>Created</Table.Th>
                  <Table.Th>
                    <span className="kw-visually-hidden">Actions</span>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {d.recoveryKeys.map((k) => (
                  <Table.Tr key={k.id}>
                    <Table.Td className="kw-mono">{fmtKeyId(k.keyId)}</Table.Td>
                    <Table.Td>{k.volume?.mountPoint ?? '?'}</Table.Td>
                    <Table.Td>{stateBadges(k)}</Table.Td>
                    <Table.Td>{k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type).join(', ')}</Table.Td>
                    <Table.Td>{fmtDateTime(k.createdAt ?? k.firstSeenAt)}</Table.Td>
                    <Table.Td>{keyActions(k, false)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Section>

      <LifecycleSection device={d} />

      {compliance.data && (
        <Section
          title="Compliance"
          right={
            <Badge color={COMPLIANCE_COLOR[compliance.data.status] ?? 'gray'} variant="light">
              {compliance.data.status} since {fmtDateTime(compliance.data.since)}
            </Badge>
          }
        >
          {compliance.data.findings.length === 0 ? (
            <Text size="sm" c="dimmed">
              {compliance.data.status === 'compliant' ? "Meets its client's policy: encrypted, key escrowed, seen recently." : 'Nothing to fix.'}
            </Text>
          ) : (
            <Stack gap="xs">
              {compliance.data.findings.map((x, i) => (
                <div key={`${x.code}-${i}`}>
                  <Text size="sm" fw={600}>
                    {x.title}
                    {x.mountPoint ? ` (${x.mountPoint})` : ''}
                  </Text>
                  <Text size="xs" c="dimmed">
                    {x.explanation} Fix: {x.fix}
                  </Text>
                </div>
              ))}
            </Stack>
          )}
        </Section>
      )}
      <Section title="Identity">
        <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
          <Field label="Domain" value={d.domain} />
          <Field label="Serial number" value={d.serial} />
          <Field label="Primary user" value={d.primaryUser} />
          <Field label="Entra device ID" value={d.entraDeviceId ? <span className="kw-mono">{d.entraDeviceId}</span> : null} />
          <Field label="Operating system" value={[os?.caption, os?.version].filter(Boolean).join(' ') || null} />
          <Field label="Model" value={[fact('manufacturer'), fact('model')].filter(Boolean).join(' ') || null} />
          <Field
            label="TPM"
            value={
              tpm ? (tpm.present ? `present${tpm.specVersion ? ` (${tpm.specVersion})` : ''}${tpm.ready === false ? ', not ready' : ''}` : 'not present') : null
            }
          />
          <Field label="Secure Boot" value={f.secureBoot === undefined || f.secureBoot === null ? null : f.secureBoot ? 'on' : 'off'} />
          <Field label="Entra join" value={entra?.joinType ?? null} />
          <Field label="Agent version" value={fact('agentVersion')} />
          <Field label="Key sources" value={sources.join(', ') || null} />
          <Field label="First seen" value={fmtDateTime(d.firstSeenAt)} />
          <Field label="Last seen" value={fmtDateTime(d.lastSeenAt)} />
        </SimpleGrid>
      </Section>

      <Section title="Volumes">
        {d.volumes.length === 0 ? (
          <Text size="sm" c="dimmed">
            No volumes known. Volumes and their encryption state come from the Keywarden agent; imports and directories only bring keys.
          </Text>
        ) : phone ? (
          <Stack gap="xs" component="ul" className="kw-results" aria-label="Volumes">
            {d.volumes.map((v) => (
              <Card key={v.id} withBorder padding="sm" component="li">
                <Group justify="space-between" wrap="wrap" gap="xs">
                  <div>
                    <Text className="kw-mono" size="sm">
                      {v.mountPoint ?? v.volumeGuid ?? '?'}
                    </Text>
                    <Text size="xs" c="dimmed">
                      {v.type} · reported {fmtAgo(v.lastReportedAt)}
                    </Text>
                  </div>
                  <EncryptionBadge state={v.encryptionState} />
                </Group>
                {manage && v.mountPoint && d.lastCheckinAt && (
                  <Group mt={6}>
                    {agentMenu(`Agent actions for ${v.mountPoint}`, VOLUME_KINDS, (kind) =>
                      kind === 'enable-encryption' ? setEncrypting(v.mountPoint) : queue.mutate({ kind, mountPoint: v.mountPoint! }),
                    )}
                  </Group>
                )}
              </Card>
            ))}
          </Stack>
        ) : (
          <div className="kw-table-wrap" tabIndex={0}>
            <Table striped highlightOnHover verticalSpacing={6} fz="sm">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Volume</Table.Th>
                  <Table.Th>Type</Table.Th>
                  <Table.Th>Encryption</Table.Th>
                  <Table.Th>Reported</Table.Th>
                  {manage && <Table.Th>Actions</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {d.volumes.map((v) => (
                  <Table.Tr key={v.id}>
                    <Table.Td className="kw-mono">{v.mountPoint ?? v.volumeGuid ?? '?'}</Table.Td>
                    <Table.Td>{v.type}</Table.Td>
                    <Table.Td>
                      <EncryptionBadge state={v.encryptionState} />
                    </Table.Td>
                    <Table.Td>{fmtAgo(v.lastReportedAt)}</Table.Td>
                    {manage && (
                      <Table.Td>
                        {v.mountPoint && d.lastCheckinAt ? (
                          agentMenu(`Agent actions for ${v.mountPoint}`, VOLUME_KINDS, (kind) =>
                            kind === 'enable-encryption' ? setEncrypting(v.mountPoint) : queue.mutate({ kind, mountPoint: v.mountPoint! }),
                          )
                        ) : (
                          <Text size="xs" c="dimmed">
                            no agent
                          </Text>
                        )}
                      </Table.Td>
                    )}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
        {history.data && history.data.length > 0 && (
          <>
            <Title order={3} fz="sm" mt="md" mb={4}>
              Encryption history
            </Title>
            <div className="kw-table-wrap" tabIndex={0}>
              <Table verticalSpacing={4} fz="xs">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>When</Table.Th>
                    <Table.Th>Volume</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Protection</Table.Th>
                    <Table.Th>Method</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {history.data.slice(0, 20).map((h) => (
                    <Table.Tr key={h.id}>
                      <Table.Td>{fmtDateTime(h.recordedAt)}</Table.Td>
                      <Table.Td className="kw-mono">{h.mountPoint ?? '?'}</Table.Td>
                      <Table.Td>
                        {h.volumeStatus ?? '—'}
                        {h.encryptionPercentage !== null && h.encryptionPercentage < 100 ? ` (${h.encryptionPercentage}%)` : ''}
                      </Table.Td>
                      <Table.Td>{h.protectionStatus ?? '—'}</Table.Td>
                      <Table.Td>{h.encryptionMethod ?? '—'}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </div>
          </>
        )}
      </Section>

      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
        <Section title="Findings">
          {findings.isPending ? (
            <Loading />
          ) : findings.isError ? (
            <ErrorState error={findings.error} />
          ) : findings.data.length === 0 ? (
            <Text size="sm" c="dimmed">
              No findings: nothing unescrowed, mismatched or in conflict.
            </Text>
          ) : (
            <Stack gap="xs">
              {findings.data.map((x) => (
                <Group key={x.id} justify="space-between" wrap="nowrap" align="flex-start">
                  <div style={{ minWidth: 0 }}>
                    <Text size="sm" fw={600}>
                      {x.title} {x.mountPoint ? `(${x.mountPoint})` : ''}
                    </Text>
                    <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }}>
                      {x.detail}
                    </Text>
                  </div>
                  <Badge variant="light" color={x.resolvedAt ? 'gray' : 'red'}>
                    {x.resolvedAt ? 'resolved' : 'open'}
                  </Badge>
                </Group>
              ))}
            </Stack>
          )}
        </Section>
        <Section title="Agent jobs">
          {jobs.isPending ? (
            <Loading />
          ) : jobs.isError ? (
            <ErrorState error={jobs.error} />
          ) : jobs.data.length === 0 ? (
            <Text size="sm" c="dimmed">
              No jobs, pending or past.
            </Text>
          ) : (
            <Stack gap="xs" component="ul" className="kw-results" aria-label="Agent jobs">
              {jobs.data.map((j) => (
                <JobRow key={j.id} job={j} />
              ))}
            </Stack>
          )}
        </Section>
      </SimpleGrid>

      {can('audit:read', d.client.id) && (
        <Section title="Audit trail">
          {audit.isPending ? (
            <Loading />
          ) : audit.isError ? (
            <ErrorState error={audit.error} />
          ) : audit.data.length === 0 ? (
            <Text size="sm" c="dimmed">
              Nothing recorded about this device or its keys yet.
            </Text>
          ) : phone ? (
            <Stack gap="xs" component="ul" className="kw-results" aria-label="Audit trail">
              {audit.data.map((e) => (
                <Card key={e.id} withBorder padding="xs" component="li">
                  <Text size="sm" fw={600}>
                    {e.actionLabel}
                    {e.outcome !== 'success' ? ` (${e.outcome})` : ''}
                  </Text>
                  <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }}>
                    {fmtDateTime(e.occurredAt)} · {e.actor}
                    {e.reasonLabel || e.ticket ? ` · ${[e.reasonLabel, e.ticket].filter(Boolean).join(' · ')}` : ''}
                  </Text>
                </Card>
              ))}
            </Stack>
          ) : (
            <div className="kw-table-wrap" tabIndex={0}>
              <Table verticalSpacing={4} fz="sm">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>When</Table.Th>
                    <Table.Th>Who</Table.Th>
                    <Table.Th>Action</Table.Th>
                    <Table.Th>Outcome</Table.Th>
                    <Table.Th>Reason / ticket</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {audit.data.map((e) => (
                    <Table.Tr key={e.id}>
                      <Table.Td>{fmtDateTime(e.occurredAt)}</Table.Td>
                      <Table.Td>{e.actor}</Table.Td>
                      <Table.Td>{e.actionLabel}</Table.Td>
                      <Table.Td>{e.outcome}</Table.Td>
                      <Table.Td>{[e.reasonLabel, e.ticket].filter(Boolean).join(' · ') || '—'}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </div>
          )}
        </Section>
      )}
      {revealing && <RevealDialog keySummary={revealing} onClose={() => setRevealing(null)} />}
      {encrypting && (
        <EnableEncryptionModal
          title={`Turn on encryption for ${encrypting} on ${d.name}`}
          busy={queue.isPending}
          error={queue.error}
          onClose={() => setEncrypting(null)}
          onQueue={(o) => queue.mutate({ kind: 'enable-encryption', mountPoint: encrypting, ...o })}
        />
      )}
    </Stack>
  );
}

function EncryptionBadge({ state }: { state: string | null }) {
  const color = state === 'FullyEncrypted' ? 'green' : state === 'FullyDecrypted' ? 'red' : state ? 'yellow' : 'gray';
  return (
    <Badge variant="light" color={color}>
      {state ?? 'unknown'}
    </Badge>
  );
}

// ------------------------------------------------------------------ lifecycle: retire, reinstate, legal hold, destroy keys

type LifecycleAction = 'retire' | 'reinstate' | 'hold' | 'lift' | 'destroy';
const ACTION_TITLE: Record<LifecycleAction, string> = {
  retire: 'Retire this device',
  reinstate: 'Put this device back in service',
  hold: 'Put this device under legal hold',
  lift: 'Lift the legal hold',
  destroy: "Destroy this device's keys now",
};

/** An approval in words: who asked, when, until when a second owner can approve. */
function approvalWords(a: Approval): string {
  const what =
    a.action === 'destroy-device-keys' ? "Destroying this device's keys" : a.action === 'offboard-client' ? 'Offboarding this client' : 'A retention run';
  return `${what} waits for a second owner's approval: requested by ${a.requestedBy} on ${fmtDateTime(a.requestedAt)}${a.reason ? ` (“${a.reason}”)` : ''}, open until ${fmtDateTime(a.expiresAt)}. Owners approve it in Settings.`;
}

/**
 * Where the device is in its life, in words, and what may be done about it: retire / reinstate and
 * legal hold (lifecycle:manage), lifting a hold and destroying the keys now (owners, lifecycle:destroy,
 * with a fresh second factor). What a hold blocks is shown disabled, with why.
 */
function LifecycleSection({ device: d }: { device: DeviceDetail }) {
  const { can } = useSession();
  const status = useQuery({
    queryKey: ['device', d.id, 'lifecycle'],
    queryFn: () => api.get('/api/v1/devices/{deviceId}/lifecycle', { params: { path: { deviceId: d.id } } }),
  });
  const client = useQuery({
    queryKey: ['device', d.id, 'client-lifecycle'],
    queryFn: () => api.get('/api/v1/clients/{clientId}/lifecycle', { params: { path: { clientId: d.client.id } } }),
  });
  const [action, setAction] = useState<LifecycleAction | null>(null);
  const manage = can('lifecycle:manage', d.client.id);
  const destroy = can('lifecycle:destroy', d.client.id);

  if (status.isPending) return null;
  if (status.isError)
    return (
      <Section title="Lifecycle">
        <ErrorState error={status.error} retry={() => void status.refetch()} />
      </Section>
    );
  const s = status.data;
  const clientHold = client.data?.legalHold ?? null;
  const pending = (client.data?.pendingApprovals ?? []).filter((a) => a.device?.id === d.id);
  const destroyed = !!s.keysDestroyedAt;
  const destroyBlocked = s.legalHold
    ? `The device is under legal hold since ${fmtDate(s.legalHold.at)}: its keys cannot be destroyed until the hold is lifted.`
    : clientHold
      ? `${d.client.name} is under legal hold since ${fmtDate(clientHold.at)}: nothing of it can be destroyed until that hold is lifted.`
      : !s.retiredAt
        ? 'Keys are only destroyed after the device is retired.'
        : destroyed
          ? `Its keys were already destroyed on ${fmtDate(s.keysDestroyedAt)}.`
          : pending.some((a) => a.action === 'destroy-device-keys')
            ? 'A request to destroy them already waits for a second owner.'
            : null;

  return (
    <Section
      title="Lifecycle"
      right={
        <Group gap={4}>
          <Badge variant="light" color={s.retiredAt ? 'gray' : 'green'}>
            {s.retiredAt ? 'Retired' : 'In service'}
          </Badge>
          {(s.legalHold || clientHold) && (
            <Badge variant="light" color="violet" leftSection={<IconLock size={12} aria-hidden />}>
              Legal hold
            </Badge>
          )}
        </Group>
      }
    >
      <Stack gap="xs">
        <Text size="sm" data-testid="lifecycle-status">
          {s.retiredAt
            ? `Retired on ${fmtDate(s.retiredAt)}${s.retiredBy ? ` by ${s.retiredBy}` : ''}: ${s.status}.`
            : 'In service: its keys are kept while the device is in use.'}
        </Text>
        {s.legalHold && (
          <Text size="sm" data-testid="legal-hold">
            Under legal hold since {fmtDate(s.legalHold.at)} (set by {s.legalHold.by}): “{s.legalHold.reason}”. None of its keys is destroyed while the hold
            stands.
          </Text>
        )}
        {clientHold && (
          <Text size="sm">
            {d.client.name} is under legal hold since {fmtDate(clientHold.at)}: “{clientHold.reason}”.
          </Text>
        )}
        {pending.map((a) => (
          <Alert key={a.id} color="yellow" variant="light" icon={<IconAlertTriangle size={18} />} p="xs" data-testid="pending-approval">
            {approvalWords(a)}
          </Alert>
        ))}
        {(manage || destroy) && (
          <Group gap="xs" wrap="wrap">
            {manage && !s.retiredAt && (
              <Button size="sm" variant="default" onClick={() => setAction('retire')}>
                Retire…
              </Button>
            )}
            {manage && s.retiredAt && (
              <Button size="sm" variant="default" disabled={destroyed} onClick={() => setAction('reinstate')}>
                Reinstate…
              </Button>
            )}
            {manage && !s.legalHold && (
              <Button size="sm" variant="default" onClick={() => setAction('hold')}>
                Set legal hold…
              </Button>
            )}
            {destroy && s.legalHold && (
              <Button size="sm" variant="default" onClick={() => setAction('lift')}>
                Lift legal hold…
              </Button>
            )}
            {destroy && (
              <Button size="sm" color="red" variant="light" disabled={!!destroyBlocked} onClick={() => setAction('destroy')} aria-describedby="destroy-why">
                Destroy keys now…
              </Button>
            )}
          </Group>
        )}
        {destroy && destroyBlocked && (
          <Text size="xs" c="dimmed" id="destroy-why">
            Destroy keys now is not available: {destroyBlocked}
          </Text>
        )}
        {manage && destroyed && s.retiredAt && (
          <Text size="xs" c="dimmed">
            It cannot be reinstated: its keys were destroyed on {fmtDate(s.keysDestroyedAt)}.
          </Text>
        )}
      </Stack>
      {action && <LifecycleModal action={action} device={d} onClose={() => setAction(null)} />}
    </Section>
  );
}

function LifecycleModal({ action, device: d, onClose }: { action: LifecycleAction; device: DeviceDetail; onClose: () => void }) {
  const qc = useQueryClient();
  const [reason, setReason] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<string | null>(null);
  const sensitive = action === 'lift' || action === 'destroy';
  // Lifting a hold and destroying keys need a fresh second factor: a code, a passkey or the sign-in provider.
  const stepUp = useStepUp(action === 'lift' ? 'lift the legal hold' : 'destroy these keys');
  const reasonRequired = action === 'hold' || action === 'lift';
  const deviceId = d.id;
  const path = { params: { path: { deviceId } } };

  const run = useMutation({
    mutationFn: async (): Promise<string> => {
      if (sensitive) await stepUp.prove();
      const why = reason.trim();
      if (action === 'retire') {
        const r = await api.post('/api/v1/devices/{deviceId}/retire', { ...path, body: why ? { reason: why } : {} });
        return `${d.name} is retired: ${r.status}.`;
      }
      if (action === 'reinstate') {
        await api.post('/api/v1/devices/{deviceId}/reinstate', path);
        return `${d.name} is back in service.`;
      }
      if (action === 'hold' || action === 'lift') {
        await api.put('/api/v1/devices/{deviceId}/legal-hold', { ...path, body: { hold: action === 'hold', reason: why } });
        return action === 'hold' ? `${d.name} is under legal hold.` : `The legal hold on ${d.name} is lifted.`;
      }
      const r = await api.post('/api/v1/devices/{deviceId}/destroy-keys', { ...path, body: { confirm, ...(why ? { reason: why } : {}) } });
      return r.status === 'pending'
        ? "Requested: destroying the keys waits for a second owner's approval."
        : `The keys of ${d.name} are destroyed (${String(r.result.keys ?? 0)}).`;
    },
    onSuccess: (message) => {
      notifications.show({ color: 'green', message });
      void qc.invalidateQueries({ queryKey: ['device', deviceId] });
      onClose();
    },
    onError: (e) => {
      stepUp.caught(e);
      setError(messageOf(e));
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (reasonRequired && !reason.trim()) return setError('Give a reason: it goes into the audit log.');
    if (action === 'destroy' && confirm.trim() !== d.client.name) return setError(`Type the client's name exactly: ${d.client.name}`);
    run.mutate();
  };
  const explain: Record<LifecycleAction, string> = {
    retire: `${d.name} leaves service. Its keys stay in the vault for the client's retention period and can still be revealed; then they are destroyed unless a legal hold stands. You can reinstate it until then.`,
    reinstate: `${d.name} comes back into service; its keys are kept as long as it is in use.`,
    hold: `While the hold stands, none of the keys of ${d.name} is destroyed, not even after its retention period. Lifting it takes an owner.`,
    lift: `Its keys can be destroyed again once their retention period has passed.`,
    destroy: `The recovery passwords of ${d.name} are wiped from the vault for good; nobody can reveal them afterwards. The key IDs and the audit trail stay.`,
  };
  return (
    <Modal opened onClose={onClose} title={ACTION_TITLE[action]} centered>
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Text size="sm">{explain[action]}</Text>
          {action !== 'reinstate' && (
            <Textarea
              label="Reason"
              description={reasonRequired ? 'Required; goes into the audit log' : 'Optional; goes into the audit log'}
              value={reason}
              onChange={(e) => setReason(e.currentTarget.value)}
              maxLength={500}
              required={reasonRequired}
              autosize
              minRows={2}
              data-autofocus
            />
          )}
          {action === 'destroy' && (
            <TextInput
              label={`Type the client's name to confirm: ${d.client.name}`}
              value={confirm}
              onChange={(e) => setConfirm(e.currentTarget.value)}
              required
              maxLength={300}
              autoComplete="off"
            />
          )}
          {sensitive && stepUp.field}
          {error && (
            <Alert color="red" variant="light" role="alert">
              {error}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button
              type="submit"
              color={action === 'destroy' ? 'red' : undefined}
              loading={run.isPending}
              data-autofocus={action === 'reinstate' ? true : undefined}
            >
              {action === 'retire'
                ? 'Retire'
                : action === 'reinstate'
                  ? 'Reinstate'
                  : action === 'hold'
                    ? 'Set legal hold'
                    : action === 'lift'
                      ? 'Lift legal hold'
                      : 'Destroy keys'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
