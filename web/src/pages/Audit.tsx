import { useMemo, useState } from 'react';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { Alert, Badge, Button, Card, Collapse, Drawer, Group, NativeSelect, SimpleGrid, Stack, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue, useDisclosure, useMediaQuery } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconAdjustmentsHorizontal, IconDownload, IconSearch, IconShieldCheck, IconShieldX } from '@tabler/icons-react';
import { api, type Answer, type AuditEvent } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDateTime, messageOf } from '../ui';

type Verify = Answer<'/api/v1/audit/verify', 'get'>;
/** Below this width events are cards, not a table (no sideways scrolling on a phone). */
const PHONE = '(max-width: 599px)';

/** Outcomes in words (the badge shows the whole word, never a truncated code). */
const OUTCOMES: { value: string; label: string }[] = [
  { value: 'success', label: 'Success' },
  { value: 'denied', label: 'Denied' },
  { value: 'failure', label: 'Failed' },
  { value: 'not_found', label: 'Not found' },
  { value: 'ambiguous', label: 'Several matches' },
  { value: 'rate_limited', label: 'Limit reached' },
  { value: 'locked', label: 'Locked' },
  { value: 'error', label: 'Error' },
];
const OUTCOME_LABEL = new Map(OUTCOMES.map((o) => [o.value, o.label]));
const PAGE = 100;

/** A local date-time (from the input) as an ISO instant; empty stays empty. */
const toIso = (v: string) => (v ? new Date(v).toISOString() : '');

export function AuditPage() {
  const { clients, me, role } = useSession();
  const [actorId, setActorId] = useState('');
  const [clientId, setClientId] = useState('');
  const [action, setAction] = useState('');
  const [search, setSearch] = useState('');
  const [outcome, setOutcome] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [open, setOpen] = useState<AuditEvent | null>(null);
  const [settled] = useDebouncedValue(search.trim(), 250);
  const filter = { actorId, clientId, action, search: settled, outcome, from: toIso(from), to: toIso(to) };
  const clientName = useMemo(() => new Map(clients.map((c) => [c.id, c.name])), [clients]);
  // Walking the whole chain spans every client: an owner's view.
  const mayVerify = role === 'owner' && me.actor.clients === 'all';

  const events = useInfiniteQuery({
    queryKey: ['audit', filter],
    queryFn: ({ pageParam }) => api.get('/api/v1/audit', { params: { query: { ...filter, limit: PAGE, beforeSeq: pageParam } } }),
    initialPageParam: undefined as number | undefined,
    getNextPageParam: (last) => (last.length === PAGE ? last[last.length - 1]!.seq : undefined),
  });
  const actions = useQuery({
    queryKey: ['audit-actions'],
    queryFn: () => api.get('/api/v1/audit/actions'),
    staleTime: Infinity,
  });
  const verify = useQuery({ queryKey: ['audit-verify'], queryFn: () => api.get('/api/v1/audit/verify'), enabled: mayVerify, staleTime: 30_000 });
  const [exporting, setExporting] = useState(false);
  const rows = useMemo(() => events.data?.pages.flat() ?? [], [events.data]);
  // One entry per name: the select is for people, who do not care which internal id an actor has.
  const actors = useMemo(() => {
    const byName = new Map<string, string>();
    for (const e of rows) if (![...byName.values()].includes(e.actor)) byName.set(e.actorId, e.actor);
    if (actorId && !byName.has(actorId)) byName.set(actorId, rows.find((e) => e.actorId === actorId)?.actor ?? 'The chosen actor');
    return [...byName.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  }, [rows, actorId]);
  const filtered = Boolean(actorId || clientId || action || settled || outcome || from || to);
  const phone = useMediaQuery(PHONE) === true;
  // On a phone the filters fold away under one button (the search box stays): results come first.
  const [filtersOpen, { toggle: toggleFilters }] = useDisclosure(false);
  const chosenFilters = [actorId, clientId, action, outcome, from, to].filter(Boolean).length;
  const clientLabel = (e: AuditEvent) => (e.clientId ? (clientName.get(e.clientId) ?? 'another client') : '—');

  const exportCsv = async () => {
    setExporting(true);
    try {
      await api.download('/api/v1/audit/export', { params: { query: { ...filter, format: 'csv' } } }, 'keywarden-audit.csv');
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
      <TextInput
        label="Search"
        description="A key ID (the first 8 characters are enough), a device name or a ticket"
        placeholder="e.g. 35D132DC, CD-LT-0002 or T-1234"
        leftSection={<IconSearch size={16} />}
        value={search}
        onChange={(e) => setSearch(e.currentTarget.value)}
        maxLength={200}
        type="search"
      />
      {phone && (
        <Button
          variant="default"
          leftSection={<IconAdjustmentsHorizontal size={16} />}
          onClick={toggleFilters}
          aria-expanded={filtersOpen}
          aria-controls="audit-filters"
          w="fit-content"
        >
          {filtersOpen ? 'Hide filters' : chosenFilters ? `Filters (${chosenFilters})` : 'Filters'}
        </Button>
      )}
      <Collapse expanded={!phone || filtersOpen} id="audit-filters">
        <SimpleGrid cols={{ base: 1, xs: 2, md: 3, lg: 6 }} spacing="sm">
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
            data={[{ value: '', label: 'Any action' }, ...(actions.data ?? []).map((a) => ({ value: a.action, label: a.label }))]}
          />
          <NativeSelect
            label="Outcome"
            value={outcome}
            onChange={(e) => setOutcome(e.currentTarget.value)}
            data={[{ value: '', label: 'Any outcome' }, ...OUTCOMES]}
          />
          <TextInput label="From" type="datetime-local" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
          <TextInput label="To" type="datetime-local" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
        </SimpleGrid>
      </Collapse>
      {events.isPending ? (
        <Loading label="Loading events…" />
      ) : events.isError ? (
        <ErrorState error={events.error} retry={() => void events.refetch()} />
      ) : rows.length === 0 ? (
        <Empty title="No events match">{filtered ? 'Check the search text, or clear a filter.' : 'Nothing has been recorded yet.'}</Empty>
      ) : (
        <>
          {phone ? (
            <ul className="kw-results" aria-label="Audit events">
              {rows.map((e) => (
                <EventCard key={e.id} e={e} client={clientLabel(e)} onDetails={() => setOpen(e)} />
              ))}
            </ul>
          ) : (
            <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Audit events">
              <Table striped highlightOnHover verticalSpacing={4} fz="sm">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Time</Table.Th>
                    <Table.Th>Actor</Table.Th>
                    <Table.Th>Action</Table.Th>
                    <Table.Th>Client</Table.Th>
                    <Table.Th>Device</Table.Th>
                    <Table.Th>Key ID</Table.Th>
                    <Table.Th>Ticket</Table.Th>
                    <Table.Th>Reason</Table.Th>
                    <Table.Th>Outcome</Table.Th>
                    <Table.Th>Details</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {rows.map((e) => {
                    const shown = e.detailFields.filter((f) => !f.internal);
                    return (
                      <Table.Tr key={e.id} data-testid="audit-row">
                        <Table.Td style={{ whiteSpace: 'nowrap' }}>{fmtDateTime(e.occurredAt)}</Table.Td>
                        <Table.Td>{e.actor}</Table.Td>
                        <Table.Td>{e.actionLabel}</Table.Td>
                        <Table.Td>{clientLabel(e)}</Table.Td>
                        <Table.Td>{e.device ?? '—'}</Table.Td>
                        <Table.Td className="kw-mono" style={{ whiteSpace: 'nowrap' }}>
                          {e.keyId ?? '—'}
                        </Table.Td>
                        <Table.Td>{e.ticket ?? '—'}</Table.Td>
                        <Table.Td>{e.reasonLabel ?? '—'}</Table.Td>
                        <Table.Td>
                          <OutcomeBadge outcome={e.outcome} />
                        </Table.Td>
                        <Table.Td>
                          <Stack gap={0}>
                            {shown.slice(0, 3).map((f, i) => (
                              <Text key={i} size="xs">
                                <Text span size="xs" c="dimmed">
                                  {f.label}:
                                </Text>{' '}
                                {f.value.length > 80 ? `${f.value.slice(0, 80)}…` : f.value}
                              </Text>
                            ))}
                            <Button variant="subtle" size="compact-xs" onClick={() => setOpen(e)} aria-label={`All details of event ${e.seq}`} w="fit-content">
                              All details
                            </Button>
                          </Stack>
                        </Table.Td>
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </div>
          )}
          {events.hasNextPage && (
            <Group justify="center">
              <Button variant="default" onClick={() => void events.fetchNextPage()} loading={events.isFetchingNextPage}>
                Load older events
              </Button>
            </Group>
          )}
        </>
      )}
      <Drawer
        opened={open !== null}
        onClose={() => setOpen(null)}
        position="right"
        title="Event details"
        size="md"
        closeButtonProps={{ 'aria-label': 'Close the details' }}
      >
        {open && <EventDetails e={open} clientName={open.clientId ? (clientName.get(open.clientId) ?? null) : null} />}
      </Drawer>
    </Stack>
  );
}

function OutcomeBadge({ outcome }: { outcome: string }) {
  return (
    <Badge
      size="sm"
      variant="light"
      tt="none"
      styles={{ root: { maxWidth: 'none' }, label: { overflow: 'visible' } }}
      color={outcome === 'success' ? 'green' : outcome === 'denied' || outcome === 'error' ? 'red' : 'yellow'}
    >
      {OUTCOME_LABEL.get(outcome) ?? outcome}
    </Badge>
  );
}

/** One event on a phone: what happened, by whom, to what, and why; every detail one tap away. */
function EventCard({ e, client, onDetails }: { e: AuditEvent; client: string; onDetails: () => void }) {
  const facts: [string, string | null][] = [
    ['Actor', e.actor],
    ['Client', client === '—' ? null : client],
    ['Device', e.device],
    ['Key ID', e.keyId],
    ['Ticket', e.ticket],
    ['Reason', e.reasonLabel],
  ];
  return (
    <Card component="li" withBorder padding="sm" data-testid="audit-row" style={{ minWidth: 0 }}>
      <Group justify="space-between" gap="xs" wrap="nowrap" align="flex-start">
        <Text fw={600} size="sm" style={{ overflowWrap: 'anywhere', minWidth: 0 }}>
          {e.actionLabel}
        </Text>
        <OutcomeBadge outcome={e.outcome} />
      </Group>
      <Text size="xs" c="dimmed" mb={4}>
        {fmtDateTime(e.occurredAt)}
      </Text>
      <dl className="kw-dl" style={{ margin: 0 }}>
        {facts
          .filter(([, v]) => v)
          .map(([k, v]) => (
            <Group key={k} gap={6} wrap="nowrap" align="baseline">
              <Text component="dt" size="xs" c="dimmed" w={56} style={{ flexShrink: 0 }}>
                {k}
              </Text>
              <Text component="dd" size="sm" m={0} className={k === 'Key ID' ? 'kw-mono' : undefined} style={{ overflowWrap: 'anywhere', minWidth: 0 }}>
                {v}
              </Text>
            </Group>
          ))}
      </dl>
      <Button variant="subtle" size="compact-sm" onClick={onDetails} aria-label={`All details of event ${e.seq}`} w="fit-content" mt={4} px={0}>
        All details
      </Button>
    </Card>
  );
}

/** Every fact of one event as labelled fields, the record IDs included (for matching with the export or the database). */
function EventDetails({ e, clientName }: { e: AuditEvent; clientName: string | null }) {
  const fields: [string, string | null][] = [
    ['Time', fmtDateTime(e.occurredAt)],
    ['Actor', e.actor],
    ['Action', e.actionLabel],
    ['Outcome', OUTCOME_LABEL.get(e.outcome) ?? e.outcome],
    ['Client', clientName],
    ['Device', e.device],
    ['Key ID', e.keyId],
    ['Ticket', e.ticket],
    ['Reason', e.reasonLabel],
    ...e.detailFields.filter((f) => !f.internal).map((f): [string, string] => [f.label, f.value]),
    ['IP address', e.ip],
    ['Browser or client', e.userAgent],
  ];
  const internal: [string, string | null][] = [
    ['Event number', String(e.seq)],
    ['Event ID', e.id],
    ['Action code', e.action],
    ['Actor ID', `${e.actorType} ${e.actorId}`],
    ['Client ID', e.clientId],
    ['Target', e.targetId ? `${e.targetType ?? ''} ${e.targetId}`.trim() : null],
    ...e.detailFields.filter((f) => f.internal).map((f): [string, string] => [f.label, f.value]),
  ];
  const list = (items: [string, string | null][]) => (
    <dl className="kw-dl">
      {items
        .filter(([, v]) => v !== null && v !== '')
        .map(([k, v]) => (
          <div key={k}>
            <Text component="dt" size="xs" c="dimmed">
              {k}
            </Text>
            <Text component="dd" size="sm" m={0} mb="xs" style={{ overflowWrap: 'anywhere' }}>
              {v}
            </Text>
          </div>
        ))}
    </dl>
  );
  return (
    <Stack gap="sm">
      {list(fields)}
      <Text size="sm" fw={600}>
        Record IDs
      </Text>
      {list(internal)}
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
