import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import { Anchor, Badge, Button, Card, Group, SimpleGrid, Stack, Table, Text, Title, Menu } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconChevronDown } from '@tabler/icons-react';
import { api, qs, type AuditEvent, type Job, type JobKind, type KeySummary } from '../api';
import { JOB_HINT, JOB_LABEL, VOLUME_KINDS, jobLabel } from '../agent';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, SOURCE_LABEL, STATE_COLOR, fmtAgo, fmtDateTime, fmtKeyId, messageOf } from '../ui';
import { EnableEncryptionModal, JobRow } from './Agents';
import { MayNotUnlockBadge, RevealDialog } from './Reveal';

/** Jobs about one recovery password (the Recovery keys table's menu). */
const KEY_KINDS: JobKind[] = ['rotate', 'backup', 'backup-to-entra', 'backup-to-ad'];
type QueueInput = { kind: JobKind; mountPoint: string; protectorId?: string; encryptionMethod?: string; usedSpaceOnly?: boolean };

type DeviceDetail = {
  id: string;
  client: { id: string; name: string };
  name: string;
  domain: string | null;
  serial: string | null;
  entraDeviceId: string | null;
  primaryUser: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  retiredAt: string | null;
  keys: number;
  facts: Record<string, unknown> | null;
  lastCheckinAt: string | null;
  volumes: { id: string; mountPoint: string | null; type: string; volumeGuid: string | null; encryptionState: string | null; lastReportedAt: string | null }[];
  recoveryKeys: KeySummary[];
};
type Finding = { id: string; kind: string; detail: string; protectorId: string | null; mountPoint: string | null; openedAt: string; resolvedAt: string | null };
type DeviceCompliance = {
  status: 'compliant' | 'non-compliant' | 'exempt' | 'unknown';
  since: string;
  findings: { code: string; mountPoint: string | null; title: string; explanation: string; fix: string }[];
};
const COMPLIANCE_COLOR: Record<string, string> = { compliant: 'green', 'non-compliant': 'red', exempt: 'cyan', unknown: 'gray' };
type VolumeState = {
  id: string;
  recordedAt: string;
  mountPoint: string | null;
  volumeStatus: string | null;
  protectionStatus: string | null;
  encryptionMethod: string | null;
  encryptionPercentage: number | null;
};

const FINDING_LABEL: Record<string, string> = {
  unescrowed_key: 'Key not escrowed',
  mismatch: 'Key differs from the vault',
  no_recovery_password: 'Encrypted without a recovery password',
  key_conflict: 'Key ID held by another device',
};

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
  const device = useQuery({ queryKey: ['device', id], queryFn: () => api.get<DeviceDetail>(`/devices/${id}`) });
  const jobs = useQuery({ queryKey: ['device', id, 'jobs'], queryFn: () => api.get<Job[]>(`/devices/${id}/jobs`), enabled: device.isSuccess });
  const findings = useQuery({
    queryKey: ['device', id, 'findings'],
    queryFn: () => api.get<Finding[]>(`/findings${qs({ deviceId: id })}`),
    enabled: device.isSuccess,
  });
  const compliance = useQuery({
    queryKey: ['device', id, 'compliance'],
    queryFn: () => api.get<DeviceCompliance>(`/devices/${id}/compliance`),
    enabled: device.isSuccess,
    retry: false,
  });
  const history = useQuery({
    queryKey: ['device', id, 'history'],
    queryFn: () => api.get<VolumeState[]>(`/devices/${id}/volume-history`),
    enabled: device.isSuccess,
  });
  const clientId = device.data?.client.id;
  const audit = useQuery({
    queryKey: ['device', id, 'audit'],
    queryFn: () => api.get<AuditEvent[]>(`/devices/${id}/audit${qs({ limit: 50 })}`),
    enabled: device.isSuccess && can('audit:read', clientId),
  });
  const [revealing, setRevealing] = useState<KeySummary | null>(null);
  const [encrypting, setEncrypting] = useState<string | null>(null);
  const queue = useMutation({
    mutationFn: (b: QueueInput) => api.post<Job>(`/devices/${id}/jobs`, b),
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
  const f = (d.facts ?? {}) as Record<string, unknown>;
  const fact = (k: string) => (f[k] === undefined || f[k] === null || typeof f[k] === 'object' ? null : String(f[k]));
  const os = f.os as { caption?: string | null; version?: string | null } | null | undefined;
  const tpm = f.tpm as { present?: boolean | null; ready?: boolean | null; specVersion?: string | null } | null | undefined;
  const entra = f.entra as { joinType?: string | null } | null | undefined;
  const sources = [...new Set(d.recoveryKeys.flatMap((k) => k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type)))];
  const manage = can('agent:manage', d.client.id);

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
                      <Badge
                        variant="light"
                        color={
                          v.encryptionState === 'FullyEncrypted'
                            ? 'green'
                            : v.encryptionState === 'FullyDecrypted'
                              ? 'red'
                              : v.encryptionState
                                ? 'yellow'
                                : 'gray'
                        }
                      >
                        {v.encryptionState ?? 'unknown'}
                      </Badge>
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

      <Section title="Recovery keys">
        {!can('key:list', d.client.id) ? (
          <Text size="sm" c="dimmed">
            Your role does not list keys. {d.keys} key{d.keys === 1 ? '' : 's'} on file.
          </Text>
        ) : d.recoveryKeys.length === 0 ? (
          <Empty title="No recovery key escrowed">
            This device has no key in the vault. If it is encrypted, its key is at risk: enroll the agent, connect Entra ID or AD, or import the key.
          </Empty>
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
                    <Table.Td>
                      <Group gap={4} wrap="nowrap">
                        <Badge variant="light" color={STATE_COLOR[k.state] ?? 'gray'}>
                          {k.state}
                        </Badge>
                        {k.mayNotUnlock && <MayNotUnlockBadge />}
                      </Group>
                    </Table.Td>
                    <Table.Td>{k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type).join(', ')}</Table.Td>
                    <Table.Td>{fmtDateTime(k.createdAt ?? k.firstSeenAt)}</Table.Td>
                    <Table.Td>
                      <Group gap={4} wrap="nowrap">
                        {can('key:reveal', d.client.id) && (
                          <Button size="compact-sm" onClick={() => setRevealing(k)}>
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
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
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
                  <div>
                    <Text size="sm" fw={600}>
                      {FINDING_LABEL[x.kind] ?? x.kind} {x.mountPoint ? `(${x.mountPoint})` : ''}
                    </Text>
                    <Text size="xs" c="dimmed">
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
                      <Table.Td>{e.actorName}</Table.Td>
                      <Table.Td className="kw-mono">{e.action}</Table.Td>
                      <Table.Td>{e.outcome}</Table.Td>
                      <Table.Td>{[e.reasonCode, e.ticket].filter(Boolean).join(' · ') || '—'}</Table.Td>
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
