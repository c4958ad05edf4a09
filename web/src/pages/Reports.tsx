import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Checkbox,
  Group,
  Modal,
  NativeSelect,
  NumberInput,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconCalendarTime, IconDownload, IconMail, IconPlayerPause, IconPlayerPlay, IconPlus, IconSend, IconTrash } from '@tabler/icons-react';
import { api, type Answer, type Body, type Query } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDateTime, messageOf } from '../ui';

/** Notifications' close button, named for screen readers. */

type Report = Answer<'/api/v1/reports', 'get'>[number];
type ReportName = Report['report'];
type Format = Report['formats'][number];
type ReportQuery = Query<'/api/v1/reports/{report}', 'get'>;
type Schedule = Answer<'/api/v1/notifications/report-schedules', 'get'>[number];
type ScheduleInput = Body<'/api/v1/notifications/report-schedules', 'post'>;
type Frequency = NonNullable<ScheduleInput['frequency']>;

type PeriodKind = 'all' | 'this-month' | 'month' | 'range';
const PERIODS: { value: PeriodKind; label: string }[] = [
  { value: 'all', label: 'All time (trend: the last 30 days)' },
  { value: 'this-month', label: 'This month' },
  { value: 'month', label: 'A given month' },
  { value: 'range', label: 'Between two dates' },
];
/** The current month (UTC, as the server counts it), YYYY-MM. */
const thisMonth = () => new Date().toISOString().slice(0, 7);

const FREQUENCY_LABEL: Record<Frequency, string> = { monthly: 'Monthly', weekly: 'Weekly', daily: 'Daily' };
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const pad = (n: number) => String(n).padStart(2, '0');

function cadence(s: Pick<Schedule, 'frequency' | 'day' | 'hour' | 'minute'>): string {
  const at = `at ${pad(s.hour)}:${pad(s.minute)} UTC`;
  if (s.frequency === 'daily') return `Every day ${at}`;
  if (s.frequency === 'weekly') return `Every ${WEEKDAYS[s.day ?? 0]} ${at}`;
  return `Monthly on day ${s.day ?? 1} ${at}`;
}

export function ReportsPage() {
  const { clients, can } = useSession();
  const [clientId, setClientId] = useState('');
  const [period, setPeriod] = useState<PeriodKind>('this-month');
  const [month, setMonth] = useState(thisMonth());
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const catalog = useQuery({ queryKey: ['report-catalog'], queryFn: () => api.get('/api/v1/reports'), staleTime: Infinity });
  // Scheduled e-mails are seen by whoever manages a client or reads its audit trail.
  const seesSchedules = can('client:manage') || can('audit:read');

  const query: ReportQuery = { clientId: clientId || undefined };
  if (period === 'this-month') query.month = thisMonth();
  if (period === 'month') query.month = month;
  if (period === 'range') Object.assign(query, { from: from || undefined, to: to || undefined });
  const periodProblem =
    period === 'month' && !/^\d{4}-\d{2}$/.test(month)
      ? 'Choose a month.'
      : period === 'range' && !from && !to
        ? 'Give a first day, a last day, or both.'
        : period === 'range' && from && to && to < from
          ? 'The last day comes before the first day.'
          : null;

  return (
    <>
      <PageTitle sub="Download a report for one client or all of yours, for the period you choose. Every download is recorded in the audit log.">
        Reports
      </PageTitle>
      <Stack gap="md">
        <Card withBorder component="section" aria-labelledby="report-options">
          <Title order={2} size="h3" id="report-options" mb="xs">
            What to include
          </Title>
          <SimpleGrid cols={{ base: 1, sm: 2, lg: 4 }} spacing="sm">
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => setClientId(e.currentTarget.value)}
              data={[{ value: '', label: 'All your clients' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
            />
            <NativeSelect
              label="Period"
              description="Limits the events listed and the compliance trend; counts are as of now"
              value={period}
              onChange={(e) => setPeriod(e.currentTarget.value as PeriodKind)}
              data={PERIODS}
            />
            {period === 'month' && <TextInput type="month" label="Month" value={month} onChange={(e) => setMonth(e.currentTarget.value)} />}
            {period === 'range' && (
              <>
                <TextInput
                  type="date"
                  label="First day"
                  description="Empty: from the beginning"
                  value={from}
                  onChange={(e) => setFrom(e.currentTarget.value)}
                />
                <TextInput type="date" label="Last day" description="Included; empty: up to now" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
              </>
            )}
          </SimpleGrid>
          {periodProblem && (
            <Text size="sm" c="red" mt="xs" role="alert">
              {periodProblem}
            </Text>
          )}
        </Card>

        {catalog.isPending ? (
          <Loading />
        ) : catalog.error ? (
          <ErrorState error={catalog.error} retry={() => void catalog.refetch()} />
        ) : catalog.data.length === 0 ? (
          <Empty title="No report is open to your role">Reports list devices; ask an owner for a role that sees devices.</Empty>
        ) : (
          <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
            {catalog.data.map((r) => (
              <ReportCard key={r.report} report={r} query={query} disabled={Boolean(periodProblem)} />
            ))}
          </SimpleGrid>
        )}

        {seesSchedules && <Schedules catalog={catalog.data ?? []} />}
      </Stack>
    </>
  );
}

function ReportCard({ report, query, disabled }: { report: Report; query: ReportQuery; disabled: boolean }) {
  const [busy, setBusy] = useState<Format | null>(null);
  const download = async (format: Format) => {
    setBusy(format);
    try {
      await api.download(
        '/api/v1/reports/{report}',
        { params: { path: { report: report.report }, query: { ...query, format } } },
        `keywarden-${report.report}.${format}`,
      );
    } catch (e) {
      notifications.show({ color: 'red', title: 'The report could not be made', message: messageOf(e) });
    } finally {
      setBusy(null);
    }
  };
  return (
    <Card withBorder component="article" aria-labelledby={`report-${report.report}`}>
      <Stack gap="xs" h="100%" justify="space-between">
        <div>
          <Title order={3} size="h4" id={`report-${report.report}`}>
            {report.title}
          </Title>
          <Text size="sm" c="dimmed">
            {report.description}
          </Text>
        </div>
        <Group gap="xs">
          {report.formats.map((f) => (
            <Button
              key={f}
              size="xs"
              variant={f === 'pdf' ? 'filled' : 'light'}
              leftSection={<IconDownload size={14} />}
              loading={busy === f}
              disabled={disabled}
              aria-label={`Download ${report.title} as ${f.toUpperCase()}`}
              onClick={() => void download(f)}
            >
              {f.toUpperCase()}
            </Button>
          ))}
        </Group>
      </Stack>
    </Card>
  );
}

// ------------------------------------------------------------------ scheduled e-mails

function Schedules({ catalog }: { catalog: Report[] }) {
  const { can, clients } = useSession();
  const qc = useQueryClient();
  const [adding, setAdding] = useState(false);
  const [deleting, setDeleting] = useState<Schedule | null>(null);
  const list = useQuery({ queryKey: ['report-schedules'], queryFn: () => api.get('/api/v1/notifications/report-schedules') });
  const clientName = new Map(clients.map((c) => [c.id, c.name]));
  const title = new Map(catalog.map((r) => [r.report, r.title]));
  const mayAdd = can('client:manage');
  const refresh = () => void qc.invalidateQueries({ queryKey: ['report-schedules'] });

  const toggle = useMutation({
    mutationFn: (s: Schedule) =>
      api.patch('/api/v1/notifications/report-schedules/{scheduleId}', { params: { path: { scheduleId: s.id } }, body: { enabled: !s.enabled } }),
    onSuccess: (s) => {
      notifications.show({
        color: 'green',
        message: s.enabled ? `"${s.name}" is on again; next e-mail ${fmtDateTime(s.nextRunAt)}.` : `"${s.name}" is paused.`,
      });
      refresh();
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const run = useMutation({
    mutationFn: (s: Schedule) => api.post('/api/v1/notifications/report-schedules/{scheduleId}/run', { params: { path: { scheduleId: s.id } } }),
    onSuccess: (d, s) => {
      notifications.show({
        color: 'green',
        title: 'Sending',
        message: `"${s.name}" is queued for ${d.channel.name}; it goes out within a minute (the delivery log under Notifications shows when).`,
      });
      refresh();
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });

  return (
    <Card withBorder component="section" aria-labelledby="schedules-title">
      <Stack gap="sm">
        <Group justify="space-between" wrap="wrap" gap="xs">
          <div>
            <Title order={2} size="h3" id="schedules-title">
              Scheduled report e-mails
            </Title>
            <Text size="sm" c="dimmed">
              A client's reports, e-mailed as attachments on a schedule (times in UTC).
            </Text>
          </div>
          {mayAdd && (
            <Button leftSection={<IconPlus size={16} />} variant="light" onClick={() => setAdding(true)}>
              Schedule an e-mail
            </Button>
          )}
        </Group>
        {list.isPending ? (
          <Loading />
        ) : list.error ? (
          <ErrorState error={list.error} retry={() => void list.refetch()} />
        ) : list.data.length === 0 ? (
          <Empty title="No report is e-mailed on a schedule" icon={<IconCalendarTime size={24} />}>
            {mayAdd
              ? 'Choose "Schedule an e-mail" to send a client its compliance summary and recovery audit every month, or any report as often as you like.'
              : 'An owner or administrator can schedule report e-mails here.'}
          </Empty>
        ) : (
          <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Scheduled report e-mails">
            <Table striped miw={860}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Client</Table.Th>
                  <Table.Th>Reports</Table.Th>
                  <Table.Th>Recipients</Table.Th>
                  <Table.Th>When</Table.Th>
                  <Table.Th>Status</Table.Th>
                  {mayAdd && <Table.Th>Actions</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.data.map((s) => (
                  <Table.Tr key={s.id}>
                    <Table.Td>{s.name}</Table.Td>
                    <Table.Td>{clientName.get(s.clientId) ?? '—'}</Table.Td>
                    <Table.Td>
                      {s.reports.map((r) => (
                        <Text size="sm" key={`${r.report}-${r.format}`}>
                          {title.get(r.report) ?? r.report} ({r.format.toUpperCase()})
                        </Text>
                      ))}
                    </Table.Td>
                    <Table.Td style={{ overflowWrap: 'anywhere' }}>{s.recipients.join(', ')}</Table.Td>
                    <Table.Td>
                      {cadence(s)}
                      <Text size="xs" c="dimmed">
                        {s.enabled ? `Next: ${fmtDateTime(s.nextRunAt)}` : 'Not sent while paused'}
                        {s.lastRunAt ? ` · last sent ${fmtDateTime(s.lastRunAt)}` : ''}
                      </Text>
                    </Table.Td>
                    <Table.Td miw={150}>
                      <Badge variant="light" color={s.enabled ? 'green' : 'gray'} style={{ overflow: 'visible' }}>
                        {s.enabled ? 'Active' : 'Paused'}
                      </Badge>
                      {s.lastDeliveryId && <LastDelivery id={s.lastDeliveryId} />}
                    </Table.Td>
                    {mayAdd && (
                      <Table.Td>
                        {can('client:manage', s.clientId) && (
                          <Group gap={4} wrap="nowrap">
                            <Button
                              size="xs"
                              variant="light"
                              leftSection={<IconSend size={14} />}
                              aria-label={`Send "${s.name}" now`}
                              loading={run.isPending && run.variables?.id === s.id}
                              onClick={() => run.mutate(s)}
                            >
                              Send now
                            </Button>
                            <Button
                              size="xs"
                              variant="subtle"
                              leftSection={s.enabled ? <IconPlayerPause size={14} /> : <IconPlayerPlay size={14} />}
                              aria-label={`${s.enabled ? 'Pause' : 'Resume'} "${s.name}"`}
                              loading={toggle.isPending && toggle.variables?.id === s.id}
                              onClick={() => toggle.mutate(s)}
                            >
                              {s.enabled ? 'Pause' : 'Resume'}
                            </Button>
                            <Button
                              size="xs"
                              variant="subtle"
                              color="red"
                              leftSection={<IconTrash size={14} />}
                              aria-label={`Delete "${s.name}"`}
                              onClick={() => setDeleting(s)}
                            >
                              Delete
                            </Button>
                          </Group>
                        )}
                      </Table.Td>
                    )}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Stack>
      {adding && <AddScheduleModal catalog={catalog} onClose={() => setAdding(false)} onDone={refresh} />}
      {deleting && <DeleteScheduleModal schedule={deleting} onClose={() => setDeleting(null)} onDone={refresh} />}
    </Card>
  );
}

/** The state of the last e-mail sent for a schedule (queued, sent, failed…), from the delivery log. */
function LastDelivery({ id }: { id: string }) {
  const d = useQuery({
    queryKey: ['delivery', id],
    queryFn: () => api.get('/api/v1/notifications/deliveries/{deliveryId}', { params: { path: { deliveryId: id } } }),
    // Until it went out (or finally failed), look again every few seconds.
    refetchInterval: (q) =>
      q.state.data && (q.state.data.status === 'sent' || (q.state.data.status === 'failed' && !q.state.data.nextAttemptAt)) ? false : 4000,
  });
  if (!d.data) return null;
  const s = d.data.status;
  return (
    <Text size="xs" c={s === 'sent' ? 'green' : s === 'failed' ? 'red' : 'dimmed'} mt={4} data-testid="last-delivery">
      Last e-mail: {s === 'sent' ? `sent ${fmtDateTime(d.data.sentAt)}` : s === 'pending' ? 'waiting to be sent' : 'not sent'}
      {d.data.lastError ? ` (${d.data.lastError})` : ''}
    </Text>
  );
}

function DeleteScheduleModal({ schedule, onClose, onDone }: { schedule: Schedule; onClose: () => void; onDone: () => void }) {
  const del = useMutation({
    mutationFn: () => api.del('/api/v1/notifications/report-schedules/{scheduleId}', { params: { path: { scheduleId: schedule.id } } }),
    onSuccess: () => {
      notifications.show({ color: 'green', message: `"${schedule.name}" is deleted; no more e-mails will be sent for it.` });
      onDone();
      onClose();
    },
  });
  return (
    <Modal opened onClose={onClose} title="Delete the scheduled e-mail?">
      <Stack gap="sm">
        <Text size="sm">
          "{schedule.name}" will no longer be sent to {schedule.recipients.join(', ')}. E-mails already sent stay in the delivery log.
        </Text>
        {del.error && (
          <Alert color="red" role="alert">
            {messageOf(del.error)}
          </Alert>
        )}
        <Group justify="flex-end" gap="sm">
          <Button variant="default" onClick={onClose}>
            Keep it
          </Button>
          <Button color="red" loading={del.isPending} onClick={() => del.mutate()}>
            Delete
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function AddScheduleModal({ catalog, onClose, onDone }: { catalog: Report[]; onClose: () => void; onDone: () => void }) {
  const { clients, can } = useSession();
  const manageable = clients.filter((c) => can('client:manage', c.id));
  const [clientId, setClientId] = useState(manageable[0]?.id ?? '');
  const [name, setName] = useState('Monthly compliance report');
  const [channelId, setChannelId] = useState('');
  const [recipients, setRecipients] = useState('');
  const [picked, setPicked] = useState<Partial<Record<ReportName, Format>>>({ 'compliance-summary': 'pdf', 'recovery-audit': 'pdf' });
  const [frequency, setFrequency] = useState<Frequency>('monthly');
  const [day, setDay] = useState(1);
  const [time, setTime] = useState('07:00');
  const channels = useQuery({ queryKey: ['notification-channels'], queryFn: () => api.get('/api/v1/notifications/channels') });
  // An MSP-wide e-mail channel, or the client's own.
  const email = (channels.data ?? []).filter((c) => c.kind === 'email' && c.enabled && (c.clientId === null || c.clientId === clientId));
  const channel = email.some((c) => c.id === channelId) ? channelId : (email[0]?.id ?? '');
  const list = recipients
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  const reports = catalog.filter((r) => picked[r.report]).map((r) => ({ report: r.report, format: picked[r.report]! }));
  const add = useMutation({
    mutationFn: () =>
      api.post('/api/v1/notifications/report-schedules', {
        body: {
          clientId,
          name: name.trim(),
          channelId: channel,
          recipients: list,
          reports,
          frequency,
          day: frequency === 'daily' ? null : day,
          hour: Number.isFinite(hour) ? hour : 7,
          minute: Number.isFinite(minute) ? minute : 0,
        },
      }),
    onSuccess: (s) => {
      notifications.show({
        color: 'green',
        message: `"${s.name}" is scheduled: ${cadence(s).toLowerCase()}, first on ${fmtDateTime(s.nextRunAt)}.`,
      });
      onDone();
      onClose();
    },
  });

  return (
    <Modal opened onClose={onClose} title="Schedule a report e-mail" size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <Stack gap="sm">
          <TextInput label="Name" required maxLength={200} value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <NativeSelect
            label="Client"
            value={clientId}
            onChange={(e) => setClientId(e.currentTarget.value)}
            data={manageable.map((c) => ({ value: c.id, label: c.name }))}
          />
          {channels.isPending ? (
            <Loading label="Loading e-mail channels…" />
          ) : email.length === 0 ? (
            <Alert color="yellow" variant="light" title="No e-mail channel yet" icon={<IconMail size={18} />}>
              Report e-mails go out through an e-mail channel (your SMTP server).{' '}
              {can('settings:manage') ? (
                <>
                  Add one under{' '}
                  <Anchor component={Link} href="/notifications">
                    Notifications
                  </Anchor>
                  , then come back here.
                </>
              ) : (
                'Ask an owner to add one under Notifications, then come back here.'
              )}
            </Alert>
          ) : (
            <NativeSelect
              label="Send through"
              description="The e-mail channel (SMTP server and sender address) that sends it"
              value={channel}
              onChange={(e) => setChannelId(e.currentTarget.value)}
              data={email.map((c) => ({ value: c.id, label: `${c.name}${c.clientId ? '' : ' (all clients)'}` }))}
            />
          )}
          <Textarea
            label="Recipients"
            description="E-mail addresses, one per line or separated by commas (up to 50)"
            required
            autosize
            minRows={2}
            value={recipients}
            onChange={(e) => setRecipients(e.currentTarget.value)}
          />
          <fieldset style={{ border: 0, padding: 0, margin: 0, minWidth: 0 }}>
            <Text component="legend" size="sm" fw={500}>
              Reports attached
            </Text>
            <Text size="xs" c="dimmed">
              PDF where it is offered; CSV for every report
            </Text>
            <Stack gap={6} mt={6}>
              {catalog.map((r) => (
                <Group key={r.report} gap="sm" wrap="nowrap" align="center">
                  <Checkbox
                    label={r.title}
                    checked={Boolean(picked[r.report])}
                    onChange={(e) => {
                      const on = e.currentTarget.checked;
                      setPicked((p) => ({ ...p, [r.report]: on ? (r.formats.includes('pdf') ? 'pdf' : 'csv') : undefined }));
                    }}
                    style={{ flex: 1 }}
                  />
                  {r.formats.length > 1 && picked[r.report] && (
                    <NativeSelect
                      aria-label={`Format of ${r.title}`}
                      size="xs"
                      value={picked[r.report]}
                      onChange={(e) => setPicked((p) => ({ ...p, [r.report]: e.currentTarget.value as Format }))}
                      data={r.formats.map((f) => ({ value: f, label: f.toUpperCase() }))}
                    />
                  )}
                </Group>
              ))}
            </Stack>
          </fieldset>
          <SimpleGrid cols={{ base: 1, xs: 3 }} spacing="sm">
            <NativeSelect
              label="How often"
              value={frequency}
              onChange={(e) => {
                const f = e.currentTarget.value as Frequency;
                setFrequency(f);
                setDay(f === 'weekly' ? 1 : 1);
              }}
              data={(Object.keys(FREQUENCY_LABEL) as Frequency[]).map((f) => ({ value: f, label: FREQUENCY_LABEL[f] }))}
            />
            {frequency === 'monthly' && (
              <NumberInput
                label="Day of the month"
                description="1 to 28"
                min={1}
                max={28}
                allowDecimal={false}
                value={day}
                onChange={(v) => setDay(Number(v) || 1)}
              />
            )}
            {frequency === 'weekly' && (
              <NativeSelect
                label="Day of the week"
                value={String(day)}
                onChange={(e) => setDay(Number(e.currentTarget.value))}
                data={WEEKDAYS.map((w, i) => ({ value: String(i), label: w }))}
              />
            )}
            <TextInput type="time" label="Time (UTC)" required value={time} onChange={(e) => setTime(e.currentTarget.value)} />
          </SimpleGrid>
          {add.error && (
            <Alert color="red" role="alert">
              {messageOf(add.error)}
            </Alert>
          )}
          <Group justify="flex-end" gap="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={add.isPending} disabled={!clientId || !channel || !list.length || !reports.length || !name.trim()}>
              Schedule
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
