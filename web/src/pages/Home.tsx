import type { ReactNode } from 'react';
import { Link } from 'wouter';
import { useQuery } from '@tanstack/react-query';
import { Alert, Anchor, Badge, Card, Group, SimpleGrid, Stack, Text, ThemeIcon, Title } from '@mantine/core';
import { IconCircleCheck } from '@tabler/icons-react';
import { api, type Answer } from '../api';
import { useSession } from '../session';
import { ErrorState, Loading, PageTitle, messageOf } from '../ui';

type Finding = Answer<'/api/v1/findings', 'get'>[number];
type Connection = Answer<'/api/v1/graph/connections', 'get'>[number] | Answer<'/api/v1/directory/connections', 'get'>[number];
type Item = { key: string; href: string; text: string; count?: number; color?: string };
type Section = { id: string; title: string; items: Item[]; error?: unknown };

/** The findings that mean a stored key is known not to unlock its drive (keys.repo MAY_NOT_UNLOCK_KINDS). */
const NOT_UNLOCKING: Finding['kind'][] = ['mismatch', 'did_not_unlock'];
const APPROVAL_LABEL: Record<string, string> = {
  'destroy-device-keys': "Destroy a device's keys",
  'retention-run': 'Destroy what is past retention',
  'offboard-client': 'Offboard a client',
  'disable-two-owner-approval': 'Switch two-owner approval off',
};
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * What needs attention today, across the clients this person sees (issue 17): open findings by
 * severity and type, keys known not to unlock, non-compliant devices per client, agents that stopped
 * checking in or run an old version, failing agent jobs, requests waiting for a second owner, and
 * syncs that failed. Every line opens the list it counts, already filtered.
 */
export function HomePage() {
  const { can, clients } = useSession();
  const approver = can('lifecycle:approve');
  const integrations = can('integration:manage');
  const clientName = new Map(clients.map((c) => [c.id, c.name]));

  const findings = useQuery({
    queryKey: ['findings', 'home'],
    queryFn: () => api.get('/api/v1/findings', { params: { query: { open: 'true', limit: 1000 } } }),
  });
  const overview = useQuery({ queryKey: ['console-clients'], queryFn: () => api.get('/api/v1/console/clients') });
  const health = useQuery({ queryKey: ['agent-health', 'home'], queryFn: () => api.get('/api/v1/agent/health', { params: { query: { limit: 5000 } } }) });
  const approvals = useQuery({
    queryKey: ['approvals', 'pending'],
    queryFn: () => api.get('/api/v1/lifecycle/approvals', { params: { query: { status: 'pending' } } }),
    enabled: approver,
  });
  const graph = useQuery({ queryKey: ['graph-connections'], queryFn: () => api.get('/api/v1/graph/connections') });
  const directory = useQuery({ queryKey: ['directory-connections'], queryFn: () => api.get('/api/v1/directory/connections') });
  const all = [findings, overview, health, graph, directory, ...(approver ? [approvals] : [])];

  if (all.some((q) => q.isPending)) return <Loading label="Looking for what needs attention…" />;

  const open = findings.data ?? [];
  const count = (pick: (f: Finding) => boolean) => open.filter(pick).length;
  const sections: Section[] = [];

  // Keys known not to unlock: the call that would dead-end.
  sections.push({
    id: 'not-unlocking',
    title: 'Keys that may not unlock',
    error: findings.error,
    items: NOT_UNLOCKING.map((kind) => ({ kind, n: count((f) => f.kind === kind), title: open.find((f) => f.kind === kind)?.title ?? '' }))
      .filter((x) => x.n > 0)
      .map((x) => ({ key: x.kind, href: `/findings?type=${x.kind}`, count: x.n, color: 'red', text: `${x.title}: ${plural(x.n, 'key', 'keys')}` })),
  });

  // Open findings by severity, then by type.
  const bySeverity = new Map<string, number>();
  const byType = new Map<string, { title: string; n: number }>();
  for (const f of open) {
    bySeverity.set(f.severity, (bySeverity.get(f.severity) ?? 0) + 1);
    const t = byType.get(f.kind) ?? { title: f.title, n: 0 };
    t.n++;
    byType.set(f.kind, t);
  }
  sections.push({
    id: 'findings',
    title: 'Open findings',
    error: findings.error,
    items: [
      ...[...bySeverity.entries()].map(([severity, n]) => ({
        key: `severity-${severity}`,
        href: `/findings?severity=${severity}`,
        count: n,
        color: severity === 'high' ? 'red' : 'yellow',
        text: `${plural(n, `${severity}-severity finding`, `${severity}-severity findings`)}`,
      })),
      ...[...byType.entries()].map(([kind, t]) => ({ key: `type-${kind}`, href: `/findings?type=${kind}`, count: t.n, text: t.title })),
    ],
  });

  // Non-compliant devices, per client.
  sections.push({
    id: 'compliance',
    title: 'Non-compliant devices',
    error: overview.error,
    items: (overview.data ?? [])
      .filter((c) => (c.compliance?.['non-compliant'] ?? 0) > 0)
      .map((c) => {
        const n = c.compliance!['non-compliant'];
        return {
          key: c.id,
          href: `/clients/${c.id}?compliance=non-compliant`,
          count: n,
          color: 'orange',
          text: `${c.name}: ${plural(n, 'non-compliant device', 'non-compliant devices')}`,
        };
      }),
  });

  // Agents: stopped checking in, run an old version, or have failing jobs (per client).
  const agents = new Map<string, { name: string; stale: number; outdated: number; devices: number; failing: number }>();
  for (const d of health.data?.devices ?? []) {
    const a = agents.get(d.client.id) ?? { name: d.client.name, stale: 0, outdated: 0, devices: 0, failing: 0 };
    if (d.stale) a.stale++;
    if (d.outdated) a.outdated++;
    if (d.stale || d.outdated) a.devices++;
    a.failing += d.failingJobs;
    agents.set(d.client.id, a);
  }
  const agentItems: Item[] = [];
  const jobItems: Item[] = [];
  for (const [id, a] of agents) {
    const problems = [
      a.stale && `${plural(a.stale, 'agent', 'agents')} stopped checking in`,
      a.outdated && plural(a.outdated, 'outdated agent', 'outdated agents'),
    ].filter(Boolean);
    if (problems.length)
      agentItems.push({ key: id, href: `/agents?client=${id}`, count: a.devices, color: 'orange', text: `${a.name}: ${problems.join(', ')}` });
    if (a.failing)
      jobItems.push({
        key: id,
        href: `/agents?client=${id}`,
        count: a.failing,
        color: 'red',
        text: `${a.name}: ${plural(a.failing, 'failed agent job', 'failed agent jobs')} this week`,
      });
  }
  sections.push({ id: 'agents', title: 'Agents', error: health.error, items: agentItems });
  sections.push({ id: 'jobs', title: 'Failing agent jobs', error: health.error, items: jobItems });

  // Requests waiting for a second owner (owners only).
  if (approver) {
    sections.push({
      id: 'approvals',
      title: 'Waiting for your approval',
      error: approvals.error,
      items: (approvals.data ?? []).map((a) => ({
        key: a.id,
        href: a.device ? `/devices/${a.device.id}` : a.client ? `/clients/${a.client.id}` : '/settings/security',
        text: `${APPROVAL_LABEL[a.action] ?? a.action.replaceAll('-', ' ')}${a.device ? `: ${a.device.name}` : a.client ? `: ${a.client.name}` : ''} (asked by ${a.requestedBy})`,
      })),
    });
  }

  // Entra ID and Active Directory syncs that failed.
  const failed = (c: Connection) => c.lastError !== null || c.lastStatus === 'failed';
  const where = (clientId: string) => (integrations ? '/settings/integrations' : `/clients/${clientId}`);
  sections.push({
    id: 'syncs',
    title: 'Syncs with errors',
    error: graph.error ?? directory.error,
    items: [
      ...(graph.data ?? []).filter(failed).map((c) => ({ key: c.id, source: 'Entra ID', clientId: c.clientId, error: c.lastError })),
      ...(directory.data ?? []).filter(failed).map((c) => ({ key: c.id, source: 'Active Directory', clientId: c.clientId, error: c.lastError })),
    ].map((c) => ({
      key: c.key,
      href: where(c.clientId),
      color: 'red',
      text: `${c.source} sync of ${clientName.get(c.clientId) ?? 'a client'} failed${c.error ? `: ${c.error}` : ''}`,
    })),
  });

  const shown = sections.filter((s) => s.items.length > 0 || s.error);
  return (
    <Stack gap="md">
      <PageTitle sub="Across every client you can see. Each line opens the list it counts.">What needs attention</PageTitle>
      {shown.length === 0 ? (
        <Card withBorder padding="lg" component="section" aria-labelledby="home-calm">
          <Group gap="sm" wrap="nowrap">
            <ThemeIcon color="green" variant="light" size="lg" radius="xl">
              <IconCircleCheck size={20} />
            </ThemeIcon>
            <div>
              <Title order={2} fz="md" id="home-calm">
                Nothing needs attention
              </Title>
              <Text size="sm" c="dimmed">
                No open findings, every judged device is compliant, the agents check in on time and every sync succeeded.
              </Text>
            </div>
          </Group>
        </Card>
      ) : (
        <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
          {shown.map((s) => (
            <AttentionCard key={s.id} section={s} />
          ))}
        </SimpleGrid>
      )}
    </Stack>
  );
}

function AttentionCard({ section }: { section: Section }): ReactNode {
  const id = `home-${section.id}`;
  return (
    <Card withBorder padding="md" component="section" aria-labelledby={id} style={{ minWidth: 0 }}>
      <Title order={2} fz="md" id={id} mb="xs">
        {section.title}
      </Title>
      {section.error ? (
        section.items.length === 0 ? (
          <ErrorState error={section.error} />
        ) : (
          <Alert color="red">{messageOf(section.error)}</Alert>
        )
      ) : (
        <Stack component="ul" gap={6} m={0} p={0} style={{ listStyle: 'none' }}>
          {section.items.map((item) => (
            <Group component="li" key={item.key} gap="xs" wrap="nowrap" align="flex-start">
              {item.count !== undefined && (
                <Badge color={item.color ?? 'gray'} variant="light" miw={36} style={{ flexShrink: 0 }}>
                  {item.count}
                </Badge>
              )}
              <Anchor component={Link} href={item.href} size="sm" style={{ overflowWrap: 'anywhere', minWidth: 0 }}>
                {item.text}
              </Anchor>
            </Group>
          ))}
        </Stack>
      )}
    </Card>
  );
}
