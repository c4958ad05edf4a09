import { useMemo, useState } from 'react';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { Alert, Badge, Button, Code, Group, NativeSelect, SimpleGrid, Stack, Table, Text, TextInput, Tooltip } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconDownload, IconShieldCheck, IconShieldX } from '@tabler/icons-react';
import { api, qs, type AuditEvent } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDateTime, messageOf } from '../ui';

type Verify = { intact: true; events: number; headSeq: number } | { intact: false; events: number; firstBrokenSeq: number; problem: string };

const ACTIONS = [
  'key.reveal',
  'keys.import',
  'key.conflict',
  'key.superseded',
  'key.rotated',
  'key.used',
  'auth.login',
  'auth.logout',
  'auth.step_up',
  'auth.denied',
  'mfa.enrol',
  'mfa.disable',
  'user.create',
  'user.update',
  'user.role',
  'user.password',
  'token.create',
  'token.revoke',
  'client.create',
  'client.update',
  'settings.update',
  'audit.export',
  'audit.verify',
  'agent.token.create',
  'agent.token.revoke',
  'agent.enroll',
  'agent.enroll.pending',
  'agent.link.approve',
  'agent.revoke',
  'agent.upload',
  'finding.open',
  'finding.resolve',
  'job.create',
  'job.update',
  'graph.connect',
  'graph.disconnect',
  'graph.sync',
  'entra.key_read',
  'ad.connect',
  'ad.sync',
  'ad.invalid_password',
  'vault.init',
];
const OUTCOMES = ['success', 'denied', 'failure', 'not_found', 'ambiguous', 'rate_limited', 'locked', 'error'];
const PAGE = 100;

/** A local date-time (from the input) as an ISO instant; empty stays empty. */
const toIso = (v: string) => (v ? new Date(v).toISOString() : '');

export function AuditPage() {
  const { clients, me, role } = useSession();
  const [actorId, setActorId] = useState('');
  const [clientId, setClientId] = useState('');
  const [action, setAction] = useState('');
  const [targetId, setTargetId] = useState('');
  const [outcome, setOutcome] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const filter = { actorId: actorId.trim(), clientId, action, targetId: targetId.trim(), outcome, from: toIso(from), to: toIso(to) };
  const clientName = useMemo(() => new Map(clients.map((c) => [c.id, c.name])), [clients]);
  // Walking the whole chain spans every client: an owner's view.
  const mayVerify = role === 'owner' && me.actor.clients === 'all';

  const events = useInfiniteQuery({
    queryKey: ['audit', filter],
    queryFn: ({ pageParam }) => api.get<AuditEvent[]>(`/audit${qs({ ...filter, limit: PAGE, beforeSeq: pageParam })}`),
    initialPageParam: undefined as number | undefined,
    getNextPageParam: (last) => (last.length === PAGE ? last[last.length - 1]!.seq : undefined),
  });
  const verify = useQuery({ queryKey: ['audit-verify'], queryFn: () => api.get<Verify>('/audit/verify'), enabled: mayVerify, staleTime: 30_000 });
  const [exporting, setExporting] = useState(false);
  const rows = useMemo(() => events.data?.pages.flat() ?? [], [events.data]);
  const actors = useMemo(() => {
    const m = new Map<string, string>();
    for (const e of rows) m.set(e.actorId, e.actorName);
    if (actorId) m.set(actorId, m.get(actorId) ?? actorId);
    return [...m.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  }, [rows, actorId]);

  const exportCsv = async () => {
    setExporting(true);
    try {
      await api.download(`/audit/export${qs({ ...filter, format: 'csv' })}`, 'keywarden-audit.csv');
    } catch (e) {
      notifications.show({ color: 'red', message: messageOf(e) });
    } finally {
      setExporting(false);
    }
  };

  return (
    <Stack gap="md">
      <PageTitle
        right={
          <Button variant="default" leftSection={<IconDownload size={16} />} onClick={() => void exportCsv()} loading={exporting}>
            Export CSV
          </Button>
        }
      >
        Audit log
      </PageTitle>
      <ChainStatus mayVerify={mayVerify} verify={verify} />
      <SimpleGrid cols={{ base: 1, xs: 2, md: 4, lg: 7 }} spacing="sm">
        <NativeSelect
          label="Actor"
          value={actorId}
          onChange={(e) => setActorId(e.currentTarget.value)}
          data={[{ value: '', label: 'Anyone' }, ...actors.map(([id, name]) => ({ value: id, label: name }))]}
        />
        <NativeSelect
          label="Client"
          value={clientId}
          onChange={(e) => setClientId(e.currentTarget.value)}
          data={[{ value: '', label: 'All clients' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
        />
        <NativeSelect
          label="Action"
          value={action}
          onChange={(e) => setAction(e.currentTarget.value)}
          data={[{ value: '', label: 'Any action' }, ...ACTIONS]}
        />
        <TextInput label="Key or target" placeholder="Record id" value={targetId} onChange={(e) => setTargetId(e.currentTarget.value)} maxLength={200} />
        <NativeSelect
          label="Outcome"
          value={outcome}
          onChange={(e) => setOutcome(e.currentTarget.value)}
          data={[{ value: '', label: 'Any outcome' }, ...OUTCOMES]}
        />
        <TextInput label="From" type="datetime-local" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
        <TextInput label="To" type="datetime-local" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
      </SimpleGrid>
      {events.isPending ? (
        <Loading label="Loading events…" />
      ) : events.isError ? (
        <ErrorState error={events.error} retry={() => void events.refetch()} />
      ) : rows.length === 0 ? (
        <Empty title="No events match">Widen the time range or clear a filter.</Empty>
      ) : (
        <>
          <div className="kw-table-wrap" tabIndex={0}>
            <Table striped highlightOnHover verticalSpacing={4} fz="sm">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>#</Table.Th>
                  <Table.Th>When</Table.Th>
                  <Table.Th>Actor</Table.Th>
                  <Table.Th>Action</Table.Th>
                  <Table.Th>Outcome</Table.Th>
                  <Table.Th>Client</Table.Th>
                  <Table.Th>Reason / ticket</Table.Th>
                  <Table.Th>Details</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((e) => (
                  <Table.Tr key={e.id}>
                    <Table.Td className="kw-mono">{e.seq}</Table.Td>
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>{fmtDateTime(e.occurredAt)}</Table.Td>
                    <Table.Td>
                      <Tooltip label={`${e.actorType} ${e.actorId}${e.ip ? ` · ${e.ip}` : ''}`}>
                        <span>{e.actorName}</span>
                      </Tooltip>
                    </Table.Td>
                    <Table.Td className="kw-mono">{e.action}</Table.Td>
                    <Table.Td>
                      <Badge
                        size="sm"
                        variant="light"
                        color={e.outcome === 'success' ? 'green' : e.outcome === 'denied' || e.outcome === 'error' ? 'red' : 'yellow'}
                      >
                        {e.outcome}
                      </Badge>
                    </Table.Td>
                    <Table.Td>{e.clientId ? (clientName.get(e.clientId) ?? e.clientId.slice(0, 8)) : '—'}</Table.Td>
                    <Table.Td>{[e.reasonCode, e.ticket].filter(Boolean).join(' · ') || '—'}</Table.Td>
                    <Table.Td>
                      {e.details ? (
                        <Code className="kw-code" fz="xs">
                          {JSON.stringify(e.details).slice(0, 160)}
                        </Code>
                      ) : (
                        '—'
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
          {events.hasNextPage && (
            <Group justify="center">
              <Button variant="default" onClick={() => void events.fetchNextPage()} loading={events.isFetchingNextPage}>
                Load older events
              </Button>
            </Group>
          )}
        </>
      )}
    </Stack>
  );
}

function ChainStatus({ mayVerify, verify }: { mayVerify: boolean; verify: { isPending: boolean; isError: boolean; error: unknown; data?: Verify } }) {
  if (!mayVerify) {
    return (
      <Alert color="gray" variant="light" icon={<IconShieldCheck size={18} />}>
        Chain status: the hash chain spans every client, so only an owner of all clients can verify it.
      </Alert>
    );
  }
  if (verify.isPending) return <Loading label="Verifying the hash chain…" />;
  if (verify.isError || !verify.data) return <ErrorState error={verify.error} title="The chain could not be verified" />;
  const v = verify.data;
  return v.intact ? (
    <Alert color="green" variant="light" icon={<IconShieldCheck size={18} />} title={`Chain verified: ${v.events} events`}>
      <Text size="sm">Every event links to the one before it, up to event #{v.headSeq}; nothing was changed, removed or reordered.</Text>
    </Alert>
  ) : (
    <Alert color="red" variant="light" icon={<IconShieldX size={18} />} title={`Chain broken at event #${v.firstBrokenSeq}`} role="alert">
      <Text size="sm">{v.problem}. Keep a copy of the database and investigate: the log may have been altered.</Text>
    </Alert>
  );
}
