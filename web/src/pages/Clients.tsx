import { useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Link, useLocation, useSearchParams } from 'wouter';
import {
  ActionIcon,
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  NativeSelect,
  Pagination,
  Progress,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { DonutChart, BarChart } from '@mantine/charts';
import { useDebouncedValue, useMediaQuery } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconArchive, IconArrowDown, IconArrowUp, IconArrowsSort, IconDownload, IconPencil, IconPlayerPlay, IconPlus, IconSearch } from '@tabler/icons-react';
import { api, type Answer, type Query } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtAgo, messageOf } from '../ui';
import { BulkQueueModal } from './Agents';
import { AddClientModal, ArchiveClientModal, RenameClientModal } from './client-admin';
import { ClientLifecycleCard } from './client-lifecycle';
import { RevealPolicyCard } from './Requests';
import { ClientSelfServiceCard } from './SelfServiceSettings';
import { ClientPsaCard } from './PsaSettings';
import { PsaTicketRules } from './PsaTicketRules';

type ClientRow = Answer<'/api/v1/console/clients', 'get'>[number];
/** The server's one definition (src/domain/compliance/summary.ts): the same numbers as the compliance report. */
type ComplianceCounts = NonNullable<ClientRow['compliance']>;
type DeviceQuery = Query<'/api/v1/clients/{clientId}/devices', 'get'>;
type ComplianceStatus = NonNullable<DeviceQuery['compliance']>;
type DeviceRow = Answer<'/api/v1/clients/{clientId}/devices', 'get'>['items'][number];
type Sort = NonNullable<DeviceQuery['sort']>;

/** Below 600 px the lists become cards: nothing scrolls sideways on a phone. */
const PHONE_QUERY = '(max-width: 599.98px)';
const usePhone = () => useMediaQuery(PHONE_QUERY, false, { getInitialValueInEffect: false });

/** Notifications' × is a button: it needs a name (axe). */

/** A value from the URL, kept only when it is one the server knows. */
const oneOf = <T extends string>(v: string | null, allowed: readonly T[]): T | undefined =>
  v && (allowed as readonly string[]).includes(v) ? (v as T) : undefined;

const pct = (n: number, of: number) => (of ? Math.round((n / of) * 100) : 0);

/** Colours of the levels (docs/compliance.md, "Numbers"): 81 % compliant is yellow, not red. */
const LEVEL_COLOR: Record<ComplianceCounts['level'], string> = { all: 'green', most: 'yellow', some: 'orange', few: 'red', unknown: 'gray' };
const STATUS_COLOR: Record<ComplianceStatus, string> = { compliant: 'teal', 'non-compliant': 'red', exempt: 'cyan', unknown: 'gray' };
const COMPLIANCE_ORDER: readonly ComplianceStatus[] = ['compliant', 'exempt', 'non-compliant', 'unknown'];
const ENCRYPTION_VALUES: readonly NonNullable<DeviceQuery['encryption']>[] = ['encrypted', 'not-encrypted', 'unknown'];
const ESCROWED_VALUES: readonly NonNullable<DeviceQuery['escrowed']>[] = ['true', 'false'];
const SEEN_LABEL: Record<NonNullable<DeviceQuery['seen']>, string> = {
  day: 'Within 24 hours',
  week: 'Within 7 days',
  month: 'Within 30 days',
  older: 'Longer ago',
};
const SEEN_VALUES = Object.keys(SEEN_LABEL) as NonNullable<DeviceQuery['seen']>[];
const STATUS_LABEL: Record<ComplianceStatus, string> = { compliant: 'Compliant', 'non-compliant': 'Non-compliant', exempt: 'Exempt', unknown: 'Unknown' };

/** The client page's devices table filtered by one value (the filters live in the URL). */
const devicesHref = (clientId: string, filter: Record<string, string>) => `/clients/${clientId}?${new URLSearchParams(filter).toString()}`;

/** A count that opens the devices it counts. */
function CountLink({ n, href, label }: { n: number; href: string; label: string }) {
  return (
    <Anchor component={Link} href={href} size="xs" aria-label={`${n} ${label}: show these devices`}>
      {n} {label}
    </Anchor>
  );
}

/**
 * Compliance at a glance: per cent compliant of the judged devices (compliant + non-compliant),
 * "unknown" when no device could be judged, and the counts, each a link to its devices.
 */
function Compliance({ row }: { row: ClientRow }) {
  const c = row.compliance;
  if (!row.devices || !c)
    return (
      <Text size="sm" c="dimmed">
        {row.devices ? `${pct(row.escrow.escrowed, row.devices)}% escrowed` : 'No devices yet'}
      </Text>
    );
  const known = c.percentCompliant !== null;
  const parts = (['non-compliant', 'exempt', 'unknown'] as const).filter((s) => c[s] > 0);
  return (
    <Stack gap={2} miw={220}>
      <Group gap={6} wrap="nowrap">
        <Badge color={LEVEL_COLOR[c.level]} variant="light" size="sm">
          {known ? `${c.percentCompliant}% compliant` : 'Compliance unknown'}
        </Badge>
        <Text size="xs" c="dimmed">
          {pct(row.escrow.escrowed, row.devices)}% escrowed
        </Text>
      </Group>
      <Group gap={8} wrap="wrap">
        {c.compliant > 0 && <CountLink n={c.compliant} label="compliant" href={devicesHref(row.id, { compliance: 'compliant' })} />}
        {parts.map((s) => (
          <CountLink key={s} n={c[s]} label={s === 'unknown' ? 'unknown (no agent report)' : s} href={devicesHref(row.id, { compliance: s })} />
        ))}
      </Group>
      {known && (
        <Progress
          value={c.percentCompliant!}
          color={LEVEL_COLOR[c.level]}
          size="sm"
          aria-label={`${c.percentCompliant}% of ${c.judged} judged devices compliant`}
        />
      )}
    </Stack>
  );
}

export function ClientsPage() {
  const { can, me } = useSession();
  const phone = usePhone();
  const list = useQuery({ queryKey: ['console-clients'], queryFn: () => api.get('/api/v1/console/clients') });
  const [filter, setFilter] = useState('');
  const [adding, setAdding] = useState(false);
  const [renaming, setRenaming] = useState<ClientRow | null>(null);
  const [archiving, setArchiving] = useState<ClientRow | null>(null);
  // Renaming and archiving: whoever manages clients.
  const manage = can('client:manage');
  // A client is added by someone who manages every client (the server refuses a client-limited admin).
  const mayAdd = manage && me.actor.clients === 'all';
  const rows = (list.data ?? []).filter((c) => c.name.toLowerCase().includes(filter.trim().toLowerCase()));
  const total = (list.data ?? []).reduce((a, c) => ({ devices: a.devices + c.devices, escrowed: a.escrowed + c.escrow.escrowed }), { devices: 0, escrowed: 0 });
  const actions = (c: ClientRow) =>
    manage ? (
      <Group gap={4} wrap="nowrap" justify="flex-end">
        <ActionIcon variant="subtle" color="gray" aria-label={`Rename ${c.name}`} title="Rename" onClick={() => setRenaming(c)}>
          <IconPencil size={18} />
        </ActionIcon>
        <ActionIcon variant="subtle" color="red" aria-label={`Archive ${c.name}`} title="Archive" onClick={() => setArchiving(c)}>
          <IconArchive size={18} />
        </ActionIcon>
      </Group>
    ) : null;
  const nonCompliant = (c: ClientRow) =>
    c.compliance && c.compliance['non-compliant'] ? (
      <Anchor
        component={Link}
        href={devicesHref(c.id, { compliance: 'non-compliant' })}
        aria-label={`${c.compliance['non-compliant']} non-compliant devices of ${c.name}: show them`}
      >
        <Badge color="red" variant="light" style={{ cursor: 'pointer' }}>
          {c.compliance['non-compliant']}
        </Badge>
      </Anchor>
    ) : c.compliance ? (
      '0'
    ) : (
      '—'
    );
  return (
    <Stack gap="md">
      <PageTitle
        sub={list.data ? `${list.data.length} clients · ${total.devices} devices · ${pct(total.escrowed, total.devices)}% with their key escrowed` : undefined}
        right={
          mayAdd && list.data?.length ? (
            <Button leftSection={<IconPlus size={16} />} onClick={() => setAdding(true)}>
              Add client
            </Button>
          ) : undefined
        }
      >
        Clients
      </PageTitle>
      {adding && <AddClientModal onClose={() => setAdding(false)} onAdded={(c) => notifications.show({ color: 'teal', message: `${c.name} was added.` })} />}
      {renaming && <RenameClientModal client={renaming} onClose={() => setRenaming(null)} />}
      {archiving && (
        <ArchiveClientModal
          client={archiving}
          onClose={() => setArchiving(null)}
          onArchived={() => notifications.show({ color: 'teal', message: `${archiving.name} was archived. Its keys and audit trail are kept.` })}
        />
      )}
      {!!list.data?.length && (
        <TextInput
          label="Filter clients"
          placeholder="Client name"
          value={filter}
          onChange={(e) => setFilter(e.currentTarget.value)}
          maw={320}
          leftSection={<IconSearch size={16} aria-hidden />}
        />
      )}
      {list.isPending ? (
        <Loading label="Loading clients…" />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => void list.refetch()} />
      ) : rows.length === 0 ? (
        list.data.length ? (
          <Empty title="No client matches">Try another name.</Empty>
        ) : (
          <Empty title="No clients yet">
            {mayAdd ? (
              <Stack gap="sm" align="center">
                <span>Add your first client here. Then import its keys, enroll agents, or connect its Entra ID or Active Directory.</span>
                <Button leftSection={<IconPlus size={16} />} onClick={() => setAdding(true)}>
                  Add your first client
                </Button>
              </Stack>
            ) : (
              'An owner or admin adds clients on this page. Ask them to add yours.'
            )}
          </Empty>
        )
      ) : phone ? (
        <ul className="kw-results" aria-label="Clients">
          {rows.map((c) => (
            <li key={c.id}>
              <Card withBorder padding="sm">
                <Group justify="space-between" wrap="nowrap" align="flex-start" gap="xs">
                  <Anchor component={Link} href={`/clients/${c.id}`} fw={600} style={{ overflowWrap: 'anywhere' }}>
                    {c.name}
                  </Anchor>
                  {actions(c)}
                </Group>
                <Text size="sm" c="dimmed" mb={4}>
                  {c.devices} devices · {c.keys} keys
                </Text>
                <Compliance row={c} />
                <Group gap={6} mt={4}>
                  <Text size="sm">Non-compliant devices:</Text>
                  {nonCompliant(c)}
                </Group>
              </Card>
            </li>
          ))}
        </ul>
      ) : (
        <div className="kw-table-wrap" tabIndex={0}>
          <Table striped highlightOnHover verticalSpacing={8}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Client</Table.Th>
                <Table.Th ta="right">Devices</Table.Th>
                <Table.Th ta="right">Keys</Table.Th>
                <Table.Th>Compliance</Table.Th>
                <Table.Th ta="right">Non-compliant devices</Table.Th>
                {manage && (
                  <Table.Th>
                    <span className="kw-visually-hidden">Actions</span>
                  </Table.Th>
                )}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((c) => (
                <Table.Tr key={c.id}>
                  <Table.Td>
                    <Anchor component={Link} href={`/clients/${c.id}`} fw={600}>
                      {c.name}
                    </Anchor>
                  </Table.Td>
                  <Table.Td ta="right">{c.devices}</Table.Td>
                  <Table.Td ta="right">{c.keys}</Table.Td>
                  <Table.Td>
                    <Compliance row={c} />
                  </Table.Td>
                  <Table.Td ta="right">{nonCompliant(c)}</Table.Td>
                  {manage && <Table.Td ta="right">{actions(c)}</Table.Td>}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </div>
      )}
    </Stack>
  );
}

const PAGE = 25;

export function ClientPage({ id }: { id: string }) {
  const { can } = useSession();
  const phone = usePhone();
  const overview = useQuery({
    queryKey: ['client-overview', id],
    queryFn: () => api.get('/api/v1/clients/{clientId}/overview', { params: { path: { clientId: id } } }),
  });
  const [q, setQ] = useState('');
  const [dq] = useDebouncedValue(q.trim(), 200);
  // The filters live in the URL, so every count and chart segment can link to its devices.
  const [params, setParams] = useSearchParams();
  const [, navigate] = useLocation();
  const encryption = oneOf(params.get('encryption'), ENCRYPTION_VALUES);
  const escrowed = oneOf(params.get('escrowed'), ESCROWED_VALUES);
  const compliance = oneOf(params.get('compliance'), COMPLIANCE_ORDER);
  const seen = oneOf(params.get('seen'), SEEN_VALUES);
  const setFilter = (name: 'encryption' | 'escrowed' | 'compliance' | 'seen', value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
    setPage(1);
  };
  const [sort, setSort] = useState<Sort>('name');
  const [dir, setDir] = useState<'asc' | 'desc'>('asc');
  const [page, setPage] = useState(1);
  const filters = { q: dq, encryption, escrowed, compliance, seen, sort, dir };
  const devices = useQuery({
    queryKey: ['client-devices', id, filters, page],
    queryFn: () =>
      api.get('/api/v1/clients/{clientId}/devices', {
        params: { path: { clientId: id }, query: { ...filters, limit: PAGE, offset: (page - 1) * PAGE } },
      }),
    placeholderData: keepPreviousData,
    enabled: overview.isSuccess,
  });
  const [exporting, setExporting] = useState(false);
  const [bulk, setBulk] = useState(false);
  const [admin, setAdmin] = useState<'rename' | 'archive' | null>(null);

  if (overview.isPending) return <Loading label="Loading the client…" />;
  if (overview.isError) return <ErrorState error={overview.error} retry={() => void overview.refetch()} title="This client could not be loaded" />;
  const o = overview.data;

  const sortBy = (s: Sort) => {
    if (s === sort) setDir(dir === 'asc' ? 'desc' : 'asc');
    else {
      setSort(s);
      setDir(s === 'name' ? 'asc' : 'desc');
    }
    setPage(1);
  };
  const th = (s: Sort, label: string, align?: 'right') => (
    <Table.Th ta={align} aria-sort={sort === s ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <button type="button" className="kw-sort" onClick={() => sortBy(s)}>
        {label}
        {sort === s ? (
          dir === 'asc' ? (
            <IconArrowUp size={14} aria-hidden />
          ) : (
            <IconArrowDown size={14} aria-hidden />
          )
        ) : (
          <IconArrowsSort size={14} aria-hidden opacity={0.5} />
        )}
      </button>
    </Table.Th>
  );
  const exportCsv = async () => {
    setExporting(true);
    try {
      await api.download('/api/v1/clients/{clientId}/devices/export', { params: { path: { clientId: id }, query: filters } }, 'devices.csv');
    } catch (e) {
      notifications.show({ color: 'red', message: messageOf(e) });
    } finally {
      setExporting(false);
    }
  };
  const total = devices.data?.total ?? 0;

  return (
    <Stack gap="md">
      <div>
        <Anchor component={Link} href="/clients" size="sm">
          Clients
        </Anchor>
        <PageTitle
          sub={
            <>
              {o.devices} devices · {o.keys} keys ·{' '}
              <Anchor component={Link} href={devicesHref(id, { compliance: 'non-compliant' })} inherit underline="always">
                {o.compliance['non-compliant']} non-compliant
              </Anchor>{' '}
              · {o.openFindings} open key-escrow findings
            </>
          }
          right={
            <Group gap="sm" wrap="wrap">
              <Anchor component={Link} href={`/agents?client=${id}`} size="sm">
                Agent health
              </Anchor>
              {can('agent:manage', id) && (
                <Button variant="default" leftSection={<IconPlayerPlay size={16} />} onClick={() => setBulk(true)}>
                  Queue agent jobs
                </Button>
              )}
              {can('client:manage', id) && (
                <>
                  <Button variant="default" leftSection={<IconPencil size={16} />} onClick={() => setAdmin('rename')}>
                    Rename
                  </Button>
                  <Button variant="default" color="red" leftSection={<IconArchive size={16} />} onClick={() => setAdmin('archive')}>
                    Archive
                  </Button>
                </>
              )}
            </Group>
          }
        >
          {o.client.name}
        </PageTitle>
      </div>
      {bulk && <BulkQueueModal clientId={id} clientName={o.client.name} onClose={() => setBulk(false)} />}
      {admin === 'rename' && <RenameClientModal client={o.client} onClose={() => setAdmin(null)} />}
      {admin === 'archive' && (
        <ArchiveClientModal
          client={o.client}
          onClose={() => setAdmin(null)}
          onArchived={() => {
            notifications.show({ color: 'teal', message: `${o.client.name} was archived. Its keys and audit trail are kept.` });
            navigate('/clients');
          }}
        />
      )}
      <SimpleGrid cols={{ base: 1, sm: 2, lg: 4 }} spacing="md">
        <Card withBorder component="section" aria-labelledby="ch-comp">
          <Title order={2} fz="sm" id="ch-comp" mb="xs">
            Compliance
          </Title>
          <DonutChart
            size={130}
            thickness={22}
            withTooltip
            chartLabel={o.compliance.percentCompliant === null ? 'unknown' : `${o.compliance.percentCompliant}%`}
            data={COMPLIANCE_ORDER.map((s) => ({ name: STATUS_LABEL[s], value: o.compliance[s], color: `${STATUS_COLOR[s]}.${s === 'exempt' ? 4 : 6}` }))}
            mx="auto"
            aria-hidden
            accessibilityLayer={false}
            // A segment opens its devices, like the legend's links (which keyboard and screen-reader users get).
            pieProps={{
              rootTabIndex: -1,
              style: { cursor: 'pointer' },
              onClick: (_: unknown, i: number) => navigate(devicesHref(id, { compliance: COMPLIANCE_ORDER[i]! })),
            }}
          />
          <Legend
            items={COMPLIANCE_ORDER.map((s) => [
              s === 'unknown' ? 'Unknown (no agent report)' : STATUS_LABEL[s],
              o.compliance[s],
              devicesHref(id, { compliance: s }),
            ])}
          />
          <Text size="xs" c="dimmed" mt={4}>
            {o.compliance.percentCompliant === null
              ? 'No device can be judged yet: no agent has reported its drives.'
              : `${o.compliance.percentCompliant}% of ${o.compliance.judged} judged devices (exempt and unknown are not judged).`}
          </Text>
        </Card>
        <Card withBorder component="section" aria-labelledby="ch-enc">
          <Title order={2} fz="sm" id="ch-enc" mb="xs">
            Encryption
          </Title>
          <DonutChart
            size={130}
            thickness={22}
            withLabelsLine={false}
            withTooltip
            chartLabel={`${pct(o.encryption.encrypted, o.devices)}%`}
            data={[
              { name: 'Encrypted', value: o.encryption.encrypted, color: 'teal.6' },
              { name: 'Not encrypted', value: o.encryption['not-encrypted'], color: 'red.6' },
              { name: 'Unknown', value: o.encryption.unknown, color: 'gray.5' },
            ]}
            mx="auto"
            aria-hidden
            accessibilityLayer={false}
            pieProps={{ rootTabIndex: -1 }}
          />
          <Legend
            items={[
              ['Encrypted', o.encryption.encrypted, devicesHref(id, { encryption: 'encrypted' })],
              ['Not encrypted', o.encryption['not-encrypted'], devicesHref(id, { encryption: 'not-encrypted' })],
              ['Unknown (no agent report)', o.encryption.unknown, devicesHref(id, { encryption: 'unknown' })],
            ]}
          />
        </Card>
        <Card withBorder component="section" aria-labelledby="ch-esc">
          <Title order={2} fz="sm" id="ch-esc" mb="xs">
            Key escrow
          </Title>
          <DonutChart
            size={130}
            thickness={22}
            withTooltip
            chartLabel={`${pct(o.escrow.escrowed, o.devices)}%`}
            data={[
              { name: 'Escrowed', value: o.escrow.escrowed, color: 'blue.6' },
              { name: 'Not escrowed', value: o.escrow.notEscrowed, color: 'orange.6' },
            ]}
            mx="auto"
            aria-hidden
            accessibilityLayer={false}
            pieProps={{ rootTabIndex: -1 }}
          />
          <Legend
            items={[
              ['Key escrowed', o.escrow.escrowed, devicesHref(id, { escrowed: 'true' })],
              ['Not escrowed or finding open', o.escrow.notEscrowed, devicesHref(id, { escrowed: 'false' })],
            ]}
          />
        </Card>
        <Card withBorder component="section" aria-labelledby="ch-seen">
          <Title order={2} fz="sm" id="ch-seen" mb="xs">
            Last seen
          </Title>
          <BarChart
            h={130}
            dataKey="when"
            withTooltip
            gridAxis="none"
            withYAxis={false}
            data={[
              { when: '24 h', devices: o.lastSeen.day },
              { when: '7 d', devices: o.lastSeen.week },
              { when: '30 d', devices: o.lastSeen.month },
              { when: 'older', devices: o.lastSeen.older },
            ]}
            series={[{ name: 'devices', color: 'indigo.6' }]}
            aria-hidden
            accessibilityLayer={false}
          />
          <Legend items={[...SEEN_VALUES.map((b): [string, number, string] => [SEEN_LABEL[b], o.lastSeen[b], devicesHref(id, { seen: b })])]} />
        </Card>
      </SimpleGrid>

      <Card withBorder component="section" aria-labelledby="dev-h">
        <Group justify="space-between" mb="sm" wrap="wrap">
          <Title order={2} fz="md" id="dev-h">
            Devices
          </Title>
          <Button variant="default" leftSection={<IconDownload size={16} />} onClick={() => void exportCsv()} loading={exporting}>
            Export CSV
          </Button>
        </Group>
        <Group gap="sm" mb="sm" wrap="wrap" align="flex-end">
          <TextInput
            label="Search devices"
            placeholder="Name, serial or user"
            value={q}
            onChange={(e) => {
              setQ(e.currentTarget.value);
              setPage(1);
            }}
            leftSection={<IconSearch size={16} aria-hidden />}
            w={240}
          />
          {phone && (
            <NativeSelect
              label="Sort by"
              value={`${sort}:${dir}`}
              onChange={(e) => {
                const [s, d] = e.currentTarget.value.split(':') as [Sort, 'asc' | 'desc'];
                setSort(s);
                setDir(d);
                setPage(1);
              }}
              data={SORT_CHOICES}
            />
          )}
          <NativeSelect
            label="Compliance"
            value={compliance ?? ''}
            onChange={(e) => setFilter('compliance', e.currentTarget.value)}
            data={[{ value: '', label: 'Any' }, ...COMPLIANCE_ORDER.map((s) => ({ value: s, label: STATUS_LABEL[s] }))]}
          />
          <NativeSelect
            label="Encryption"
            value={encryption ?? ''}
            onChange={(e) => setFilter('encryption', e.currentTarget.value)}
            data={[
              { value: '', label: 'Any' },
              { value: 'encrypted', label: 'Encrypted' },
              { value: 'not-encrypted', label: 'Not encrypted' },
              { value: 'unknown', label: 'Unknown' },
            ]}
          />
          <NativeSelect
            label="Key escrow"
            value={escrowed ?? ''}
            onChange={(e) => setFilter('escrowed', e.currentTarget.value)}
            data={[
              { value: '', label: 'Any' },
              { value: 'true', label: 'Escrowed' },
              { value: 'false', label: 'Not escrowed' },
            ]}
          />
          <NativeSelect
            label="Last seen"
            value={seen ?? ''}
            onChange={(e) => setFilter('seen', e.currentTarget.value)}
            data={[{ value: '', label: 'Any time' }, ...SEEN_VALUES.map((b) => ({ value: b, label: SEEN_LABEL[b] }))]}
          />
        </Group>
        {devices.isError ? (
          <ErrorState error={devices.error} retry={() => void devices.refetch()} />
        ) : !devices.data ? (
          <Loading label="Loading devices…" />
        ) : devices.data.items.length === 0 ? (
          <Empty title={o.devices ? 'No device matches these filters' : 'No devices yet'}>
            {o.devices ? 'Clear the search or the filters.' : 'Devices appear when keys are imported, agents enroll, or Entra ID / AD syncs.'}
          </Empty>
        ) : (
          <>
            {phone ? (
              <ul className="kw-results" aria-label="Devices">
                {devices.data.items.map((d) => (
                  <li key={d.id}>
                    <DeviceCard d={d} link={can('device:read', id)} />
                  </li>
                ))}
              </ul>
            ) : (
              <div className="kw-table-wrap" tabIndex={0}>
                <Table striped highlightOnHover verticalSpacing={5} fz="sm">
                  <Table.Thead>
                    <Table.Tr>
                      {th('name', 'Device')}
                      <Table.Th>Serial</Table.Th>
                      <Table.Th>User</Table.Th>
                      {th('compliance', 'Compliance')}
                      {th('encryption', 'Encryption')}
                      {th('escrowed', 'Key escrowed')}
                      {th('keys', 'Keys', 'right')}
                      {th('openFindings', 'Escrow findings', 'right')}
                      {th('lastSeenAt', 'Last seen')}
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {devices.data.items.map((d) => (
                      <Table.Tr key={d.id}>
                        <Table.Td>
                          {can('device:read', id) ? (
                            <Anchor component={Link} href={`/devices/${d.id}`} fw={600} size="sm">
                              {d.name}
                            </Anchor>
                          ) : (
                            d.name
                          )}
                        </Table.Td>
                        <Table.Td className="kw-mono">{d.serial ?? '—'}</Table.Td>
                        <Table.Td>{d.primaryUser ?? '—'}</Table.Td>
                        <Table.Td>
                          <Badge variant="light" size="sm" color={STATUS_COLOR[d.compliance]}>
                            {STATUS_LABEL[d.compliance]}
                          </Badge>
                        </Table.Td>
                        <Table.Td>
                          <Badge variant="light" size="sm" color={d.encryption === 'encrypted' ? 'teal' : d.encryption === 'not-encrypted' ? 'red' : 'gray'}>
                            {d.encryption === 'not-encrypted' ? 'not encrypted' : d.encryption}
                          </Badge>
                        </Table.Td>
                        <Table.Td>
                          <Badge variant="light" size="sm" color={d.escrowed ? 'blue' : 'orange'}>
                            {d.escrowed ? 'yes' : 'no'}
                          </Badge>
                        </Table.Td>
                        <Table.Td ta="right">{d.keys}</Table.Td>
                        <Table.Td ta="right">{d.openFindings || '—'}</Table.Td>
                        <Table.Td>{fmtAgo(d.lastSeenAt)}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
              </div>
            )}
            <Group justify="space-between" mt="sm" wrap="wrap">
              <Text size="sm" c="dimmed">
                {(page - 1) * PAGE + 1}–{Math.min(page * PAGE, total)} of {total}
              </Text>
              <Pagination
                total={Math.max(1, Math.ceil(total / PAGE))}
                value={page}
                onChange={setPage}
                size="sm"
                getControlProps={(c) => ({
                  'aria-label': c === 'previous' ? 'Previous page' : c === 'next' ? 'Next page' : c === 'first' ? 'First page' : 'Last page',
                })}
              />
            </Group>
          </>
        )}
      </Card>
      {can('device:read', id) && <ClientLifecycleCard clientId={id} clientName={o.client.name} />}
      <RevealPolicyCard clientId={id} />
      <ClientSelfServiceCard clientId={id} clientName={o.client.name} />
      <ClientPsaCard clientId={id} clientName={o.client.name} />
      <PsaTicketRules clientId={id} />
    </Stack>
  );
}

const SORT_CHOICES: { value: `${Sort}:${'asc' | 'desc'}`; label: string }[] = [
  { value: 'name:asc', label: 'Device name' },
  { value: 'lastSeenAt:desc', label: 'Last seen, newest first' },
  { value: 'compliance:desc', label: 'Compliance' },
  { value: 'openFindings:desc', label: 'Most escrow findings' },
  { value: 'keys:desc', label: 'Most keys' },
];

/** One device on a phone: the table's columns as a card, nothing wider than the screen. */
function DeviceCard({ d, link }: { d: DeviceRow; link: boolean }) {
  return (
    <Card withBorder padding="sm">
      {link ? (
        <Anchor component={Link} href={`/devices/${d.id}`} fw={600} style={{ overflowWrap: 'anywhere' }}>
          {d.name}
        </Anchor>
      ) : (
        <Text fw={600} style={{ overflowWrap: 'anywhere' }}>
          {d.name}
        </Text>
      )}
      <Group gap={6} mt={4} wrap="wrap">
        <Badge variant="light" size="sm" color={STATUS_COLOR[d.compliance]}>
          {STATUS_LABEL[d.compliance]}
        </Badge>
        <Badge variant="light" size="sm" color={d.encryption === 'encrypted' ? 'teal' : d.encryption === 'not-encrypted' ? 'red' : 'gray'}>
          {d.encryption === 'not-encrypted' ? 'not encrypted' : d.encryption}
        </Badge>
        <Badge variant="light" size="sm" color={d.escrowed ? 'blue' : 'orange'}>
          {d.escrowed ? 'key escrowed' : 'key not escrowed'}
        </Badge>
      </Group>
      <Text size="sm" c="dimmed" mt={4} style={{ overflowWrap: 'anywhere' }}>
        {[d.primaryUser, d.serial ? `serial ${d.serial}` : null].filter(Boolean).join(' · ') || 'No user or serial known'}
      </Text>
      <Text size="sm" c="dimmed">
        {d.keys} key{d.keys === 1 ? '' : 's'}
        {d.openFindings ? ` · ${d.openFindings} escrow finding${d.openFindings === 1 ? '' : 's'}` : ''} · seen {fmtAgo(d.lastSeenAt)}
      </Text>
    </Card>
  );
}

/** A chart's legend; an entry with a link opens the devices it counts. */
function Legend({ items }: { items: [string, number, string?][] }) {
  return (
    <Stack gap={2} mt="xs">
      {items.map(([label, n, href]) => (
        <Group key={label} justify="space-between" gap="xs">
          {href ? (
            <Anchor component={Link} href={href} size="xs" aria-label={`${label}: ${n} devices, show them`}>
              {label}
            </Anchor>
          ) : (
            <Text size="xs">{label}</Text>
          )}
          <Text size="xs" fw={600}>
            {n}
          </Text>
        </Group>
      ))}
    </Stack>
  );
}
