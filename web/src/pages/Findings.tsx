import { useMemo, useState } from 'react';
import { Link, useSearchParams } from 'wouter';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Anchor, Badge, Button, Card, Checkbox, Group, Modal, NativeSelect, Pagination, SimpleGrid, Stack, Table, Text } from '@mantine/core';
import { useMediaQuery } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconRefresh, IconUpload } from '@tabler/icons-react';
import { api, type Answer, type Body, type BulkQueueResult } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDateTime, messageOf } from '../ui';

type Finding = Answer<'/api/v1/findings', 'get'>[number];
type FindingKind = Finding['kind'];
type Severity = Finding['severity'];
type BulkKind = Extract<Body<'/api/v1/clients/{clientId}/agent-jobs', 'post'>['kind'], 'rotate' | 're-escrow'>;

/** The filter's choices; each finding carries its own title from the server. */
const TYPES: Record<FindingKind, string> = {
  mismatch: 'Stored key may not unlock',
  unescrowed_key: 'Recovery password not in the vault',
  no_recovery_password: 'No recovery password on the drive',
  key_conflict: 'Two passwords stored for one key ID',
  did_not_unlock: 'Stored key did not unlock',
};
const SEVERITIES: Record<Severity, { label: string; color: string }> = {
  high: { label: 'High', color: 'red' },
  medium: { label: 'Medium', color: 'yellow' },
};
const ACTIONS: Record<BulkKind, { label: string; done: string }> = {
  rotate: { label: 'Rotate recovery password', done: 'rotation' },
  're-escrow': { label: 'Re-escrow', done: 're-escrow' },
};
/** A server page (the filters narrow it); the table pages through it. */
const FETCH = 1000;
const PAGE = 50;
const PHONE = '(max-width: 599px)';

/**
 * The findings work queue (issue 17): every escrow finding of the clients this person sees, filtered
 * by client, type, severity and state (in the URL, so the home page and others link straight to a
 * list), with bulk "rotate" and "re-escrow" for the devices behind the selected findings: a dry run
 * first (what would be queued, what is skipped and why), then the jobs, per client.
 */
export function FindingsPage() {
  const { clients, can } = useSession();
  const [params, setParams] = useSearchParams();
  const clientId = params.get('client') ?? '';
  const type = (params.get('type') ?? '') as FindingKind | '';
  const severity = (params.get('severity') ?? '') as Severity | '';
  const state = params.get('state') === 'resolved' ? 'resolved' : 'open';
  const setFilter = (name: 'client' | 'type' | 'severity' | 'state', value: string) => {
    const next = new URLSearchParams(params);
    if (value && !(name === 'state' && value === 'open')) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
    setPage(1);
    setSelected(new Set());
  };
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [action, setAction] = useState<BulkKind | null>(null);
  const phone = useMediaQuery(PHONE) === true;

  const query = {
    clientId: clientId || undefined,
    kind: type || undefined,
    severity: severity || undefined,
    open: state === 'open' ? 'true' : 'false',
    limit: FETCH,
  } as const;
  const findings = useQuery({ queryKey: ['findings', query], queryFn: () => api.get('/api/v1/findings', { params: { query } }) });
  const rows = useMemo(() => findings.data ?? [], [findings.data]);
  const pages = Math.max(1, Math.ceil(rows.length / PAGE));
  const shown = rows.slice((Math.min(page, pages) - 1) * PAGE, Math.min(page, pages) * PAGE);
  const chosen = rows.filter((f) => selected.has(f.id));
  // Jobs only where this person may queue them (the server checks again, per client).
  const mayAct = state === 'open' && rows.some((f) => can('agent:manage', f.client.id));
  const allShown = shown.length > 0 && shown.every((f) => selected.has(f.id));
  const someShown = shown.some((f) => selected.has(f.id));
  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  const togglePage = () =>
    setSelected((s) => {
      const n = new Set(s);
      for (const f of shown) {
        if (allShown) n.delete(f.id);
        else n.add(f.id);
      }
      return n;
    });
  const filtered = Boolean(clientId || type || severity || state !== 'open');

  return (
    <Stack gap="md">
      <PageTitle sub="Escrow findings the agents reported, across your clients: select some, then queue the fix on their devices.">Findings</PageTitle>
      <SimpleGrid cols={{ base: 1, xs: 2, md: 4 }} spacing="sm">
        <NativeSelect
          label="Client"
          value={clientId}
          onChange={(e) => setFilter('client', e.currentTarget.value)}
          data={[{ value: '', label: 'All clients' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
        />
        <NativeSelect
          label="Type"
          value={type}
          onChange={(e) => setFilter('type', e.currentTarget.value)}
          data={[{ value: '', label: 'Any type' }, ...Object.entries(TYPES).map(([value, label]) => ({ value, label }))]}
        />
        <NativeSelect
          label="Severity"
          value={severity}
          onChange={(e) => setFilter('severity', e.currentTarget.value)}
          data={[{ value: '', label: 'Any severity' }, ...Object.entries(SEVERITIES).map(([value, s]) => ({ value, label: s.label }))]}
        />
        <NativeSelect
          label="State"
          value={state}
          onChange={(e) => setFilter('state', e.currentTarget.value)}
          data={[
            { value: 'open', label: 'Open' },
            { value: 'resolved', label: 'Resolved' },
          ]}
        />
      </SimpleGrid>

      {findings.isPending ? (
        <Loading label="Loading findings…" />
      ) : findings.isError ? (
        <ErrorState error={findings.error} retry={() => void findings.refetch()} />
      ) : rows.length === 0 ? (
        <Empty title={filtered ? 'No findings match' : 'No open findings'}>
          {filtered
            ? 'Clear a filter to see more.'
            : 'Every recovery password the agents reported is in the vault and matches. Devices without an agent report no findings: enrol them under Settings → Enrollment.'}
        </Empty>
      ) : (
        <>
          <Group justify="space-between" gap="xs">
            <Text size="sm" aria-live="polite">
              {rows.length >= FETCH ? `The newest ${FETCH} findings` : `${rows.length} ${rows.length === 1 ? 'finding' : 'findings'}`}
              {chosen.length > 0 && ` · ${chosen.length} selected`}
            </Text>
            {mayAct && (
              <Group gap="xs">
                {chosen.length < rows.length && (
                  <Button variant="subtle" size="compact-sm" onClick={() => setSelected(new Set(rows.map((f) => f.id)))}>
                    Select all {rows.length}
                  </Button>
                )}
                {chosen.length > 0 && (
                  <Button variant="subtle" size="compact-sm" onClick={() => setSelected(new Set())}>
                    Clear selection
                  </Button>
                )}
              </Group>
            )}
          </Group>
          {mayAct && (
            <Group gap="xs">
              <Button leftSection={<IconRefresh size={16} />} disabled={chosen.length === 0} onClick={() => setAction('rotate')}>
                {ACTIONS.rotate.label}
              </Button>
              <Button variant="default" leftSection={<IconUpload size={16} />} disabled={chosen.length === 0} onClick={() => setAction('re-escrow')}>
                {ACTIONS['re-escrow'].label}
              </Button>
            </Group>
          )}
          {phone ? (
            <ul className="kw-results" aria-label="Findings">
              {shown.map((f) => (
                <Card key={f.id} component="li" withBorder padding="sm" data-testid="finding-row" style={{ minWidth: 0 }}>
                  <Group gap="xs" wrap="nowrap" align="flex-start">
                    {mayAct && (
                      <Checkbox aria-label={`Select ${f.title} on ${f.device.name}`} checked={selected.has(f.id)} onChange={() => toggle(f.id)} mt={2} />
                    )}
                    <Stack gap={2} style={{ minWidth: 0 }}>
                      <Group gap={6}>
                        <SeverityBadge severity={f.severity} />
                        <Text fw={600} size="sm">
                          {f.title}
                        </Text>
                      </Group>
                      <Text size="sm">
                        <Anchor component={Link} href={`/devices/${f.device.id}`} underline="always">
                          {f.device.name}
                        </Anchor>
                        {f.mountPoint ? ` · ${f.mountPoint}` : ''} · {f.client.name}
                      </Text>
                      <Text size="xs" c="dimmed" style={{ overflowWrap: 'anywhere' }}>
                        {f.detail}
                      </Text>
                      <Text size="xs" c="dimmed">
                        {f.resolvedAt ? `Resolved ${fmtDateTime(f.resolvedAt)}` : `Open since ${fmtDateTime(f.openedAt)}`}
                      </Text>
                    </Stack>
                  </Group>
                </Card>
              ))}
            </ul>
          ) : (
            <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Findings">
              <Table striped highlightOnHover verticalSpacing={6} fz="sm">
                <Table.Thead>
                  <Table.Tr>
                    {mayAct && (
                      <Table.Th w={40}>
                        <Checkbox
                          aria-label="Select the findings on this page"
                          checked={allShown}
                          indeterminate={someShown && !allShown}
                          onChange={togglePage}
                        />
                      </Table.Th>
                    )}
                    <Table.Th>Severity</Table.Th>
                    <Table.Th>Type</Table.Th>
                    <Table.Th>Client</Table.Th>
                    <Table.Th>Device</Table.Th>
                    <Table.Th>Drive</Table.Th>
                    <Table.Th>Detail</Table.Th>
                    <Table.Th>{state === 'open' ? 'Open since' : 'Resolved'}</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {shown.map((f) => (
                    <Table.Tr key={f.id} data-testid="finding-row">
                      {mayAct && (
                        <Table.Td>
                          <Checkbox aria-label={`Select ${f.title} on ${f.device.name}`} checked={selected.has(f.id)} onChange={() => toggle(f.id)} />
                        </Table.Td>
                      )}
                      <Table.Td>
                        <SeverityBadge severity={f.severity} />
                      </Table.Td>
                      <Table.Td>{f.title}</Table.Td>
                      <Table.Td>{f.client.name}</Table.Td>
                      <Table.Td>
                        <Anchor component={Link} href={`/devices/${f.device.id}`}>
                          {f.device.name}
                        </Anchor>
                      </Table.Td>
                      <Table.Td>{f.mountPoint ?? '—'}</Table.Td>
                      <Table.Td maw={420} style={{ overflowWrap: 'anywhere' }}>
                        {f.detail}
                      </Table.Td>
                      <Table.Td style={{ whiteSpace: 'nowrap' }}>{fmtDateTime(f.resolvedAt ?? f.openedAt)}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </div>
          )}
          {pages > 1 && (
            <Group justify="center">
              <Pagination total={pages} value={Math.min(page, pages)} onChange={setPage} size="sm" getControlProps={(c) => ({ 'aria-label': `Page ${c}` })} />
            </Group>
          )}
        </>
      )}
      {action && <BulkDialog kind={action} findings={chosen} onClose={() => setAction(null)} onDone={() => setSelected(new Set())} />}
    </Stack>
  );
}

function SeverityBadge({ severity }: { severity: Severity }) {
  const s = SEVERITIES[severity];
  return (
    <Badge size="sm" variant="light" color={s.color} tt="none">
      {s.label}
    </Badge>
  );
}

/** One request of the bulk queue: a client's devices on one drive (the API takes one volume a call). */
type QueueGroup = { client: { id: string; name: string }; mountPoint: string | null; deviceIds: string[] };
type Outcome = { group: QueueGroup; result: BulkQueueResult };
type Left = { device: string; client: string; why: string };

/** What the selected findings become: groups the server can queue, and findings left out (with why). */
function plan(kind: BulkKind, findings: Finding[], may: (clientId: string) => boolean): { groups: QueueGroup[]; left: Left[] } {
  const groups = new Map<string, QueueGroup>();
  const left: Left[] = [];
  for (const f of findings) {
    if (!may(f.client.id)) {
      left.push({ device: f.device.name, client: f.client.name, why: 'you may not queue agent jobs for this client' });
      continue;
    }
    if (f.kind === 'no_recovery_password') {
      left.push({
        device: f.device.name,
        client: f.client.name,
        why: `the drive has no recovery password to ${kind === 'rotate' ? 'rotate' : 'escrow'}: add one on the device page`,
      });
      continue;
    }
    const key = `${f.client.id}|${f.mountPoint ?? ''}`;
    const g = groups.get(key) ?? groups.set(key, { client: f.client, mountPoint: f.mountPoint, deviceIds: [] }).get(key)!;
    if (!g.deviceIds.includes(f.device.id)) g.deviceIds.push(f.device.id);
  }
  return { groups: [...groups.values()], left };
}

function BulkDialog({ kind, findings, onClose, onDone }: { kind: BulkKind; findings: Finding[]; onClose: () => void; onDone: () => void }) {
  const { can } = useSession();
  const qc = useQueryClient();
  const { groups, left } = useMemo(() => plan(kind, findings, (id) => can('agent:manage', id)), [kind, findings, can]);
  const send = (dryRun: boolean) =>
    Promise.all(
      groups.map(async (group): Promise<Outcome> => {
        const body = { kind, deviceIds: group.deviceIds, dryRun, ...(group.mountPoint ? { mountPoint: group.mountPoint } : {}) };
        return { group, result: await api.post('/api/v1/clients/{clientId}/agent-jobs', { params: { path: { clientId: group.client.id } }, body }) };
      }),
    );
  const preview = useQuery({
    queryKey: ['findings-bulk-preview', kind, groups],
    queryFn: () => send(true),
    enabled: groups.length > 0,
    gcTime: 0,
    staleTime: Infinity,
  });
  const queue = useMutation({
    mutationFn: () => send(false),
    onSuccess: (outcomes) => {
      const n = outcomes.reduce((a, o) => a + o.result.queued, 0);
      notifications.show({
        color: 'green',
        message: `${n} ${ACTIONS[kind].done} ${n === 1 ? 'job' : 'jobs'} queued: each runs at the device's next check-in.`,
      });
      void qc.invalidateQueries({ queryKey: ['agent-health'] });
      onDone();
      onClose();
    },
  });
  const outcomes = preview.data ?? [];
  const jobs = outcomes.flatMap((o) => o.result.jobs.map((j) => ({ ...j, client: o.group.client.name })));
  const skipped = [
    ...outcomes.flatMap((o) => o.result.skipped.map((s) => ({ device: s.device ?? 'A device', client: o.group.client.name, why: s.why }))),
    ...left,
  ];
  const title = `${ACTIONS[kind].label}: what would be queued`;

  return (
    <Modal opened onClose={onClose} title={title} size="lg" closeButtonProps={{ 'aria-label': 'Close without queuing' }}>
      <Stack gap="sm">
        <Text size="sm">
          {findings.length} selected {findings.length === 1 ? 'finding' : 'findings'}. Nothing is queued until you confirm; each job runs when the device's
          agent next checks in.
        </Text>
        {groups.length > 0 && preview.isPending ? (
          <Loading label="Checking what can be queued…" />
        ) : preview.isError ? (
          <ErrorState error={preview.error} retry={() => void preview.refetch()} title="The preview could not be made" />
        ) : (
          <>
            <section aria-labelledby="bulk-queued">
              <Text fw={600} size="sm" id="bulk-queued">
                Would be queued ({jobs.length})
              </Text>
              {jobs.length === 0 ? (
                <Text size="sm" c="dimmed">
                  Nothing: see why below.
                </Text>
              ) : (
                <ul aria-label="Jobs that would be queued" style={{ margin: 0, paddingLeft: 20 }}>
                  {jobs.map((j, i) => (
                    <li key={i}>
                      <Text size="sm">
                        {j.device} ({j.client}){j.mountPoint ? ` · ${j.mountPoint}` : ''}
                        {j.protectorId ? ` · ${j.protectorId}` : ''}
                      </Text>
                    </li>
                  ))}
                </ul>
              )}
            </section>
            {skipped.length > 0 && (
              <section aria-labelledby="bulk-skipped">
                <Text fw={600} size="sm" id="bulk-skipped">
                  Skipped ({skipped.length})
                </Text>
                <ul aria-label="Skipped devices" style={{ margin: 0, paddingLeft: 20 }}>
                  {skipped.map((s, i) => (
                    <li key={i}>
                      <Text size="sm">
                        {s.device} ({s.client}): {s.why}
                      </Text>
                    </li>
                  ))}
                </ul>
              </section>
            )}
          </>
        )}
        {queue.isError && (
          <Alert color="red" role="alert">
            {messageOf(queue.error)}
          </Alert>
        )}
        <Group justify="flex-end" gap="xs">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button onClick={() => queue.mutate()} loading={queue.isPending} disabled={!preview.data || jobs.length === 0}>
            Queue {jobs.length} {jobs.length === 1 ? 'job' : 'jobs'}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
