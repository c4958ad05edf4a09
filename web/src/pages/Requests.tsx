import { useEffect, useState, type FormEvent } from 'react';
import { Link, useLocation } from 'wouter';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  Alert,
  Badge,
  Button,
  Card,
  Group,
  MultiSelect,
  NativeSelect,
  NumberInput,
  SegmentedControl,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from '@mantine/core';
import { IconAlertTriangle, IconCheck, IconHourglass, IconLock, IconX } from '@tabler/icons-react';
import { api, ApiError, type Answer, type KeySummary } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDateTime, fmtKeyId, messageOf } from '../ui';
import { RevealDialog } from './Reveal';
import { ReasonTicketFields, reasonProblem } from '../reason-fields';

/**
 * Two-person reveal in the console: the panel the reveal dialog shows when a key needs a second
 * person's approval (ask, wait, cancel; an owner may break the glass), the Requests queue and a
 * request's own page (approve / deny with step-up; the requester reveals once after approval), and
 * the client page's policy and device tags. Nothing here ever holds a recovery password: the reveal
 * itself stays in RevealDialog.
 */

export type RevealRequest = Answer<'/api/v1/reveal-requests/{requestId}', 'get'>;
export type KeyApproval = Answer<'/api/v1/keys/{keyRecordId}/approval', 'get'>;
type Policy = Answer<'/api/v1/clients/{clientId}/reveal-policy', 'get'>;

export const STATUS_LABEL: Record<RevealRequest['status'], string> = {
  pending: 'Waiting for approval',
  approved: 'Approved',
  denied: 'Denied',
  cancelled: 'Cancelled',
  used: 'Used',
  expired: 'Expired',
};
const STATUS_COLOR: Record<RevealRequest['status'], string> = {
  pending: 'yellow',
  approved: 'green',
  denied: 'red',
  cancelled: 'gray',
  used: 'gray',
  expired: 'gray',
};

/** Whether this key needs approval, and the person's open requests for it (polled while one waits). */
export function useKeyApproval(keyRecordId: string, enabled = true) {
  return useQuery({
    queryKey: ['key-approval', keyRecordId],
    queryFn: () => api.get('/api/v1/keys/{keyRecordId}/approval', { params: { path: { keyRecordId } } }),
    enabled,
    refetchInterval: (q) => (q.state.data?.requests.some((r) => r.status === 'pending') ? 4000 : false),
  });
}

/** The step-up code field's rule, as in the reveal dialog: a person with an authenticator whose last proof is too old. */
function useStepUp() {
  const qc = useQueryClient();
  const me = useQuery({ queryKey: ['me'], queryFn: () => api.get('/api/v1/me') });
  const [needCode, setNeedCode] = useState(false);
  const mfa = me.data?.user?.mfaEnabled ?? false;
  const fresh = !!me.data?.stepUpValidUntil && Date.parse(me.data.stepUpValidUntil) > Date.now() + 5_000;
  const showCode = mfa && (needCode || !fresh);
  const prove = async (code: string) => {
    if (!showCode) return;
    await api.post('/api/v1/auth/step-up', { body: { code: code.replace(/\s+/g, '') } });
    void qc.invalidateQueries({ queryKey: ['me'] });
  };
  return { showCode, prove, setNeedCode };
}

/**
 * In the reveal dialog, instead of the form, when the key needs a second person: ask for approval
 * (reason, ticket, note), or see the request waiting; an owner may break the glass instead.
 */
export function ApprovalPanel({ k, approval, onBreakGlass }: { k: KeySummary; approval: KeyApproval; onBreakGlass?: () => void }) {
  const qc = useQueryClient();
  const { can } = useSession();
  const [reason, setReason] = useState('');
  const [ticket, setTicket] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string | null>(null);
  const waiting = approval.requests.find((r) => r.status === 'pending');
  const refresh = () => void qc.invalidateQueries({ queryKey: ['key-approval', k.id] });
  const ask = useMutation({
    mutationFn: () =>
      api.post('/api/v1/reveal-requests', {
        body: { keyRecordId: k.id, reason, ...(ticket.trim() ? { ticket: ticket.trim() } : {}), ...(note.trim() ? { note: note.trim() } : {}) },
      }),
    onSuccess: refresh,
    onError: (e) => setError(messageOf(e)),
  });
  const cancel = useMutation({
    mutationFn: (id: string) => api.post('/api/v1/reveal-requests/{requestId}/cancel', { params: { path: { requestId: id } } }),
    onSuccess: refresh,
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const problem = reasonProblem(reason, ticket);
    if (problem) return setError(problem);
    ask.mutate();
  };
  return (
    <Stack gap="sm" data-testid="approval-panel">
      <Alert color="yellow" variant="light" icon={<IconLock size={18} />} title="A second person must approve this reveal">
        {approval.why ? `${approval.why[0]!.toUpperCase()}${approval.why.slice(1)}.` : 'This client requires a second person’s approval.'} Ask for approval;
        anyone else who may reveal keys of {k.client.name} can approve it in Requests.
      </Alert>
      {waiting ? (
        <Stack gap="xs">
          <Alert color="blue" variant="light" icon={<IconHourglass size={18} />} role="status" title="Waiting for approval">
            Asked {fmtDateTime(waiting.requestedAt)}; the request expires {fmtDateTime(waiting.expiresAt)}. This dialog shows the password form as soon as
            someone approves. <Link href={waiting.path}>Open the request</Link>
          </Alert>
          <Group justify="flex-end">
            <Button variant="default" color="red" loading={cancel.isPending} onClick={() => cancel.mutate(waiting.id)}>
              Cancel the request
            </Button>
          </Group>
        </Stack>
      ) : (
        <form onSubmit={submit}>
          <Stack gap="sm">
            <ReasonTicketFields reason={reason} setReason={setReason} ticket={ticket} setTicket={setTicket} />
            <Textarea
              label="Note for the approver"
              description="Optional. Never paste a recovery password."
              value={note}
              onChange={(e) => setNote(e.currentTarget.value)}
              maxLength={1000}
              autosize
              minRows={1}
              maxRows={4}
            />
            {error && (
              <Alert color="red" variant="light" role="alert">
                {error}
              </Alert>
            )}
            <Group justify="flex-end">
              <Button type="submit" loading={ask.isPending}>
                Request approval
              </Button>
            </Group>
          </Stack>
        </form>
      )}
      {onBreakGlass && can('key:break-glass', k.client.id) && (
        <Group justify="flex-start">
          <Button variant="subtle" color="red" size="compact-sm" leftSection={<IconAlertTriangle size={14} />} onClick={onBreakGlass}>
            Break glass: reveal without approval (owner)
          </Button>
        </Group>
      )}
    </Stack>
  );
}

/** The Requests queue: what waits for a second person in my clients, and my own requests. */
export function RequestsPage() {
  const [view, setView] = useState<'pending' | 'mine' | 'all'>('pending');
  const list = useQuery({
    queryKey: ['reveal-requests', view],
    queryFn: () =>
      api.get('/api/v1/reveal-requests', {
        params: { query: view === 'pending' ? { status: 'pending' } : view === 'mine' ? { mine: 'true' } : {} },
      }),
    refetchInterval: 10_000,
  });
  return (
    <Stack gap="md">
      <PageTitle sub="Reveals that need a second person: approve or deny them here (with your authenticator). Your own requests are listed under Mine.">
        Requests
      </PageTitle>
      <SegmentedControl
        w="fit-content"
        value={view}
        onChange={(v) => setView(v as typeof view)}
        data={[
          { value: 'pending', label: 'Waiting' },
          { value: 'mine', label: 'Mine' },
          { value: 'all', label: 'All' },
        ]}
      />
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => void list.refetch()} />
      ) : list.data.length === 0 ? (
        <Empty title={view === 'pending' ? 'Nothing waits for approval' : 'No requests'} />
      ) : (
        <Table striped highlightOnHover aria-label="Reveal requests">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Device</Table.Th>
              <Table.Th>Client</Table.Th>
              <Table.Th>Key ID</Table.Th>
              <Table.Th>Requested by</Table.Th>
              <Table.Th>Ticket</Table.Th>
              <Table.Th>Asked</Table.Th>
              <Table.Th>Status</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.data.map((r) => (
              <Table.Tr key={r.id} data-testid="request-row">
                <Table.Td>
                  <Link href={r.path}>{r.device?.name ?? 'Unknown device'}</Link>
                </Table.Td>
                <Table.Td>{r.client.name}</Table.Td>
                <Table.Td className="kw-mono">{fmtKeyId(r.keyId).slice(0, 8)}…</Table.Td>
                <Table.Td>
                  {r.requestedBy}
                  {r.mine ? ' (you)' : ''}
                </Table.Td>
                <Table.Td>{r.ticket ?? '—'}</Table.Td>
                <Table.Td>{fmtDateTime(r.requestedAt)}</Table.Td>
                <Table.Td>
                  <Badge color={STATUS_COLOR[r.status]} variant="light">
                    {STATUS_LABEL[r.status]}
                  </Badge>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Stack>
  );
}

/** One request: its facts; approve / deny for a second person; for the requester, the reveal once approved. */
export function RequestPage({ id }: { id: string }) {
  const qc = useQueryClient();
  const r = useQuery({
    queryKey: ['reveal-request', id],
    queryFn: () => api.get('/api/v1/reveal-requests/{requestId}', { params: { path: { requestId: id } } }),
    refetchInterval: (q) => (q.state.data?.status === 'pending' ? 4000 : false),
  });
  const step = useStepUp();
  const [code, setCode] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [revealKey, setRevealKey] = useState<KeySummary | null>(null);
  const decide = useMutation({
    mutationFn: async (decision: 'approve' | 'deny') => {
      await step.prove(code);
      setCode('');
      const path = decision === 'approve' ? '/api/v1/reveal-requests/{requestId}/approve' : '/api/v1/reveal-requests/{requestId}/deny';
      return api.post(path, { params: { path: { requestId: id } }, body: note.trim() ? { note: note.trim() } : {} });
    },
    onSuccess: (next) => {
      qc.setQueryData(['reveal-request', id], next);
      void qc.invalidateQueries({ queryKey: ['reveal-requests'] });
    },
    onError: (e) => {
      if (e instanceof ApiError && e.code === 'step_up_required') {
        step.setNeedCode(true);
        setError('Confirm it is you: enter a current code from your authenticator app.');
      } else setError(messageOf(e));
    },
  });
  const cancel = useMutation({
    mutationFn: () => api.post('/api/v1/reveal-requests/{requestId}/cancel', { params: { path: { requestId: id } } }),
    onSuccess: (next) => qc.setQueryData(['reveal-request', id], next),
    onError: (e) => setError(messageOf(e)),
  });
  const openReveal = useMutation({
    // The key as a lookup shows it (helpdesk may look up but not list keys).
    mutationFn: async (req: RevealRequest) => {
      const found = await api.get('/api/v1/keys/lookup', { params: { query: { keyId: req.keyId ?? req.keyRecordId } } });
      const k = found.keys.find((x) => x.id === req.keyRecordId);
      if (!k) throw new Error('This key cannot be found any more.');
      return k;
    },
    onSuccess: setRevealKey,
    onError: (e) => setError(messageOf(e)),
  });

  if (r.isPending) return <Loading />;
  if (r.isError) return <ErrorState error={r.error} retry={() => void r.refetch()} />;
  const q = r.data;
  return (
    <Stack gap="md" maw={760}>
      <PageTitle
        sub={
          <>
            <Link href="/requests">Requests</Link> · {q.client.name}
          </>
        }
        right={
          <Badge size="lg" color={STATUS_COLOR[q.status]} variant="light" data-testid="request-status">
            {STATUS_LABEL[q.status]}
          </Badge>
        }
      >
        Reveal of {q.device?.name ?? 'a key'}
      </PageTitle>
      <Card withBorder>
        <Table variant="vertical" withRowBorders={false} aria-label="Request">
          <Table.Tbody>
            <Table.Tr>
              <Table.Th w={180}>Key ID</Table.Th>
              <Table.Td className="kw-mono">{fmtKeyId(q.keyId)}</Table.Td>
            </Table.Tr>
            <Table.Tr>
              <Table.Th>Requested by</Table.Th>
              <Table.Td>
                {q.requestedBy}
                {q.requestedByToken ? ' (API token)' : ''}
                {q.mine ? ' — you' : ''}
              </Table.Td>
            </Table.Tr>
            <Table.Tr>
              <Table.Th>Reason · ticket</Table.Th>
              <Table.Td>
                {q.reason} · {q.ticket ?? 'no ticket'}
              </Table.Td>
            </Table.Tr>
            {q.note && (
              <Table.Tr>
                <Table.Th>Note</Table.Th>
                <Table.Td>{q.note}</Table.Td>
              </Table.Tr>
            )}
            <Table.Tr>
              <Table.Th>Asked · expires</Table.Th>
              <Table.Td>
                {fmtDateTime(q.requestedAt)} · {fmtDateTime(q.expiresAt)}
              </Table.Td>
            </Table.Tr>
            {q.decidedBy && (
              <Table.Tr>
                <Table.Th>{q.status === 'denied' ? 'Denied by' : 'Approved by'}</Table.Th>
                <Table.Td>
                  {q.decidedBy} · {fmtDateTime(q.decidedAt)}
                  {q.decisionNote ? ` — ${q.decisionNote}` : ''}
                </Table.Td>
              </Table.Tr>
            )}
            {q.approvalExpiresAt && q.status === 'approved' && (
              <Table.Tr>
                <Table.Th>Reveal before</Table.Th>
                <Table.Td>{fmtDateTime(q.approvalExpiresAt)} (once)</Table.Td>
              </Table.Tr>
            )}
          </Table.Tbody>
        </Table>
      </Card>
      {q.mayDecide && (
        <Card withBorder>
          <Stack gap="sm">
            <Title order={4}>Approve or deny</Title>
            <Text size="sm" c="dimmed">
              Approving lets {q.requestedBy} reveal this one key once, within the approval window. Check the ticket and the caller first.
            </Text>
            <Textarea
              label="Note"
              description="Optional; goes into the audit log."
              value={note}
              onChange={(e) => setNote(e.currentTarget.value)}
              maxLength={1000}
            />
            {step.showCode && (
              <TextInput
                label="Authentication code"
                description="A current code from your authenticator app (step-up before approving)"
                value={code}
                onChange={(e) => setCode(e.currentTarget.value)}
                autoComplete="one-time-code"
                maxLength={20}
                classNames={{ input: 'kw-mono' }}
              />
            )}
            <Group justify="flex-end">
              <Button
                variant="light"
                color="red"
                leftSection={<IconX size={16} />}
                loading={decide.isPending && decide.variables === 'deny'}
                onClick={() => decide.mutate('deny')}
              >
                Deny
              </Button>
              <Button
                leftSection={<IconCheck size={16} />}
                loading={decide.isPending && decide.variables === 'approve'}
                onClick={() => decide.mutate('approve')}
              >
                Approve
              </Button>
            </Group>
          </Stack>
        </Card>
      )}
      {q.mine && q.status === 'approved' && (
        <Alert color="green" variant="light" icon={<IconCheck size={18} />} title="Approved: you may reveal this key once">
          <Group justify="space-between">
            <Text size="sm">Reveal before {fmtDateTime(q.approvalExpiresAt)}.</Text>
            <Button onClick={() => openReveal.mutate(q)} loading={openReveal.isPending}>
              Reveal now
            </Button>
          </Group>
        </Alert>
      )}
      {q.mine && (q.status === 'pending' || q.status === 'approved') && (
        <Group>
          <Button variant="default" color="red" loading={cancel.isPending} onClick={() => cancel.mutate()}>
            Cancel the request
          </Button>
        </Group>
      )}
      {error && (
        <Alert color="red" variant="light" role="alert">
          {error}
        </Alert>
      )}
      {revealKey && (
        <RevealDialog
          keySummary={revealKey}
          onClose={() => {
            setRevealKey(null);
            void r.refetch();
          }}
        />
      )}
    </Stack>
  );
}

const NEXT_KEY = 'kw.after-sign-in';
/** A request link opened while signed out: remembered for this tab, opened after sign-in. */
export function rememberRequestLink(path: string): void {
  if (/^\/requests\/[0-9a-f-]{36}$/i.test(path)) sessionStorage.setItem(NEXT_KEY, path);
}
/** After sign-in: opens the request link that brought the person here, once. */
export function useAfterSignIn(): void {
  const [, navigate] = useLocation();
  useEffect(() => {
    const next = sessionStorage.getItem(NEXT_KEY);
    if (next) {
      sessionStorage.removeItem(NEXT_KEY);
      navigate(next);
    }
  }, [navigate]);
}

/** The client page's card: the two-person reveal policy and the client's tagged devices. */
export function RevealPolicyCard({ clientId }: { clientId: string }) {
  const qc = useQueryClient();
  const { can } = useSession();
  const mayEdit = can('client:manage', clientId);
  const mayTag = mayEdit || can('lifecycle:manage', clientId);
  const policy = useQuery({
    queryKey: ['reveal-policy', clientId],
    queryFn: () => api.get('/api/v1/clients/{clientId}/reveal-policy', { params: { path: { clientId } } }),
  });
  const tagged = useQuery({
    queryKey: ['device-tags', clientId],
    queryFn: () => api.get('/api/v1/clients/{clientId}/device-tags', { params: { path: { clientId } } }),
    enabled: can('device:read', clientId) || mayTag,
  });
  if (policy.isPending) return <Loading />;
  if (policy.isError) return <ErrorState error={policy.error} />;
  return (
    <Card withBorder data-testid="reveal-policy">
      <Stack gap="sm">
        <Title order={4}>Two-person reveal</Title>
        {mayEdit ? (
          <PolicyForm clientId={clientId} policy={policy.data} onSaved={(p) => qc.setQueryData(['reveal-policy', clientId], p)} />
        ) : (
          <Text size="sm">{describePolicy(policy.data)}</Text>
        )}
        {tagged.data && (
          <Stack gap={4}>
            <Text fw={600} size="sm">
              Tagged devices
            </Text>
            {tagged.data.length === 0 ? (
              <Text size="sm" c="dimmed">
                No device has a tag yet.
              </Text>
            ) : (
              tagged.data.map((d) => (
                <Group key={d.deviceId} gap="xs">
                  <Link href={`/devices/${d.deviceId}`}>{d.deviceName}</Link>
                  {d.tags.map((t) => (
                    <Badge key={t} size="sm" variant="light">
                      {t}
                    </Badge>
                  ))}
                </Group>
              ))
            )}
            {mayTag && <TagDeviceForm clientId={clientId} />}
          </Stack>
        )}
      </Stack>
    </Card>
  );
}

function describePolicy(p: Policy): string {
  if (p.mode === 'off') return 'Off: anyone who may reveal keys of this client reveals them alone.';
  const scope = p.mode === 'required' ? 'Every reveal' : `Reveals of keys of devices tagged ${p.tags.join(', ')}`;
  return `${scope} needs a second person's approval (approvals last ${p.approvalMinutes} minutes, requests ${p.requestHours} hours).`;
}

function PolicyForm({ clientId, policy, onSaved }: { clientId: string; policy: Policy; onSaved: (p: Policy) => void }) {
  const step = useStepUp();
  const [mode, setMode] = useState<Policy['mode']>(policy.mode);
  const [tags, setTags] = useState<string[]>(policy.tags);
  const [minutes, setMinutes] = useState<number>(policy.approvalMinutes);
  const [hours, setHours] = useState<number>(policy.requestHours);
  const [code, setCode] = useState('');
  const [error, setError] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: async () => {
      await step.prove(code);
      setCode('');
      return api.put('/api/v1/clients/{clientId}/reveal-policy', {
        params: { path: { clientId } },
        body: { mode, tags: mode === 'tagged' ? tags : [], approvalMinutes: minutes, requestHours: hours },
      });
    },
    onSuccess: (p) => {
      setError(null);
      onSaved(p);
    },
    onError: (e) => {
      if (e instanceof ApiError && e.code === 'step_up_required') step.setNeedCode(true);
      setError(messageOf(e));
    },
  });
  return (
    <Stack gap="xs">
      <Text size="sm" c="dimmed">
        {describePolicy(policy)}
      </Text>
      <SegmentedControl
        aria-label="Reveal approval"
        value={mode}
        onChange={(v) => setMode(v as Policy['mode'])}
        data={[
          { value: 'off', label: 'Off' },
          { value: 'required', label: 'Every reveal' },
          { value: 'tagged', label: 'Tagged devices' },
        ]}
      />
      {mode === 'tagged' && (
        <MultiSelect label="Tags that need approval" data={[...new Set(['server', 'executive', ...tags])]} value={tags} onChange={setTags} searchable />
      )}
      {mode !== 'off' && (
        <Group grow>
          <NumberInput label="Approval lasts (minutes)" min={5} max={240} value={minutes} onChange={(v) => setMinutes(Number(v) || 15)} />
          <NumberInput label="Request waits (hours)" min={1} max={72} value={hours} onChange={(v) => setHours(Number(v) || 4)} />
        </Group>
      )}
      {step.showCode && (
        <TextInput label="Authentication code" value={code} onChange={(e) => setCode(e.currentTarget.value)} autoComplete="one-time-code" maxLength={20} />
      )}
      {error && (
        <Alert color="red" variant="light" role="alert">
          {error}
        </Alert>
      )}
      <Group justify="flex-end">
        <Button size="sm" onClick={() => save.mutate()} loading={save.isPending}>
          Save reveal policy
        </Button>
      </Group>
    </Stack>
  );
}

function TagDeviceForm({ clientId }: { clientId: string }) {
  const qc = useQueryClient();
  const devices = useQuery({ queryKey: ['devices-of', clientId], queryFn: () => api.get('/api/v1/devices', { params: { query: { clientId, limit: 1000 } } }) });
  const [deviceId, setDeviceId] = useState('');
  const [tags, setTags] = useState('');
  const [error, setError] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: () =>
      api.put('/api/v1/devices/{deviceId}/tags', {
        params: { path: { deviceId } },
        body: {
          tags: tags
            .split(/[\s,]+/)
            .map((t) => t.trim())
            .filter(Boolean),
        },
      }),
    onSuccess: () => {
      setError(null);
      setTags('');
      void qc.invalidateQueries({ queryKey: ['device-tags', clientId] });
    },
    onError: (e) => setError(messageOf(e)),
  });
  return (
    <Group align="flex-end" gap="xs">
      <NativeSelect
        label="Device"
        value={deviceId}
        onChange={(e) => setDeviceId(e.currentTarget.value)}
        data={[{ value: '', label: 'Pick a device' }, ...(devices.data ?? []).map((d) => ({ value: d.id, label: d.name }))]}
      />
      <TextInput label="Tags" placeholder="server, executive" value={tags} onChange={(e) => setTags(e.currentTarget.value)} />
      <Button size="sm" variant="light" disabled={!deviceId} loading={save.isPending} onClick={() => save.mutate()}>
        Set tags
      </Button>
      {error && (
        <Text size="sm" c="red" role="alert">
          {error}
        </Text>
      )}
    </Group>
  );
}
