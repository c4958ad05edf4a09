import { useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Badge, Button, Card, Group, List, Modal, PasswordInput, SegmentedControl, Stack, Text, TextInput, Textarea, Title } from '@mantine/core';
import { IconDownload, IconGavel, IconInfoCircle, IconLock, IconTrash } from '@tabler/icons-react';
import { api, type Answer } from '../api';
import { useSession } from '../session';
import { ErrorState, Loading, fmtDate, fmtDateTime, messageOf } from '../ui';
import { useStepUp, useTypedName } from './client-confirm';

/**
 * A client's lifecycle on its page: retention, legal hold, offboarding (crypto-shred) and the
 * break-glass export. Destructive and break-glass actions ask for a fresh step-up and the client's
 * name typed; with two-owner approval on, the server answers "pending" and the page says so.
 */

type Lifecycle = Answer<'/api/v1/clients/{clientId}/lifecycle', 'get'>;
type Approval = Lifecycle['pendingApprovals'][number];
type Outcome = Answer<'/api/v1/clients/{clientId}/offboard', 'post'>;

const ACTION_WORDS: Record<string, string> = {
  'offboard-client': 'Offboarding this client (destroying its data key)',
  'retention-run': 'Running retention now (destroying keys past retention)',
  'destroy-device-keys': 'Destroying the keys of a retired device',
  'disable-two-owner-approval': 'Switching two-owner approval off',
};

/** A pending approval in words: what, who asked, until when a second owner can approve it. */
export function approvalWords(a: Approval): string {
  const what = ACTION_WORDS[a.action] ?? `“${a.action}”`;
  const device = a.device ? ` (${a.device.name})` : '';
  return `${what}${device} was requested by ${a.requestedBy} on ${fmtDateTime(a.requestedAt)} and waits for a second owner to approve it (until ${fmtDateTime(a.expiresAt)}).`;
}

export function ClientLifecycleCard({ clientId, clientName }: { clientId: string; clientName: string }) {
  const { can, me } = useSession();
  const qc = useQueryClient();
  const status = useQuery({
    queryKey: ['client-lifecycle', clientId],
    queryFn: () => api.get('/api/v1/clients/{clientId}/lifecycle', { params: { path: { clientId } } }),
  });
  const [open, setOpen] = useState<'hold' | 'lift' | 'offboard' | 'export' | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [approving, setApproving] = useState<Approval | null>(null);
  const cancel = useMutation({
    mutationFn: (a: Approval) => api.post('/api/v1/lifecycle/approvals/{approvalId}/cancel', { params: { path: { approvalId: a.id } } }),
    onSuccess: () => {
      setDone('The request was cancelled: nothing was destroyed.');
      void qc.invalidateQueries({ queryKey: ['client-lifecycle', clientId] });
    },
    onError: (e) => setDone(messageOf(e)),
  });

  const mayHold = can('lifecycle:manage', clientId);
  const mayDestroy = can('lifecycle:destroy', clientId);
  const mayExport = can('key:export', clientId) && can('key:reveal', clientId);
  const mayApprove = can('lifecycle:approve', clientId);

  if (status.isPending) return <Loading label="Loading lifecycle…" />;
  if (status.isError) return <ErrorState error={status.error} retry={() => void status.refetch()} title="The client's lifecycle could not be loaded" />;
  const s = status.data;
  const offboarded = !!s.offboardedAt;

  return (
    <Card withBorder component="section" aria-labelledby="lc-h">
      <Title order={2} fz="md" id="lc-h" mb="xs">
        Retention, legal hold and offboarding
      </Title>
      <Stack gap="sm">
        {offboarded ? (
          <Alert color="gray" variant="light" icon={<IconLock size={18} />} title="Offboarded">
            Offboarded on {fmtDate(s.offboardedAt)}
            {s.offboardedBy ? ` by ${s.offboardedBy}` : ''}: its data key was destroyed, so its recovery keys can no longer be read. Devices and the audit trail
            are kept.
          </Alert>
        ) : null}
        <Text size="sm">
          Keys of retired devices are kept <strong>{s.retentionDays === 0 ? 'forever' : `${s.retentionDays} days`}</strong>
          {s.retiredDevices.length ? ` · ${s.retiredDevices.length} retired device${s.retiredDevices.length === 1 ? '' : 's'}` : ' · no retired devices'}.
        </Text>
        <Group gap="xs" wrap="wrap">
          <Text size="sm" fw={600}>
            Legal hold:
          </Text>
          {s.legalHold ? (
            <>
              <Badge color="orange" variant="light" leftSection={<IconGavel size={12} aria-hidden />}>
                On hold
              </Badge>
              <Text size="sm">
                since {fmtDate(s.legalHold.at)} by {s.legalHold.by}: “{s.legalHold.reason}”. Nothing of this client is destroyed while it holds.
              </Text>
            </>
          ) : (
            <Text size="sm">none</Text>
          )}
        </Group>
        {s.pendingApprovals.length > 0 && (
          <Alert color="yellow" variant="light" icon={<IconInfoCircle size={18} />} title="Waiting for a second owner">
            <Stack gap="xs">
              {s.pendingApprovals.map((a) => {
                const mine = a.requestedBy === me.actor.name;
                return (
                  <Stack key={a.id} gap={4}>
                    <Text size="sm">{approvalWords(a)}</Text>
                    <Text size="sm" fs="italic">
                      {mine
                        ? 'You asked for it: another owner approves it on this page, typing the client’s name again.'
                        : 'As a second owner, approve it to run it now, or cancel it.'}
                    </Text>
                    {mayApprove && (
                      <Group gap="xs">
                        {!mine && (
                          <Button size="xs" color="red" variant="light" onClick={() => setApproving(a)}>
                            Approve…
                          </Button>
                        )}
                        <Button size="xs" variant="default" loading={cancel.isPending} onClick={() => cancel.mutate(a)}>
                          Cancel request
                        </Button>
                      </Group>
                    )}
                  </Stack>
                );
              })}
            </Stack>
          </Alert>
        )}
        {done && (
          <Alert color="teal" variant="light" role="status">
            {done}
          </Alert>
        )}
        {!offboarded && (mayHold || mayDestroy || mayExport) && (
          <Group gap="sm" wrap="wrap">
            {!s.legalHold && mayHold && (
              <Button variant="default" leftSection={<IconGavel size={16} />} onClick={() => setOpen('hold')}>
                Set legal hold
              </Button>
            )}
            {s.legalHold && mayDestroy && (
              <Button variant="default" leftSection={<IconGavel size={16} />} onClick={() => setOpen('lift')}>
                Lift legal hold
              </Button>
            )}
            {mayExport && (
              <Button variant="default" leftSection={<IconDownload size={16} />} onClick={() => setOpen('export')}>
                Break-glass export
              </Button>
            )}
            {mayDestroy && (
              <Button color="red" variant="light" leftSection={<IconTrash size={16} />} onClick={() => setOpen('offboard')}>
                Offboard client
              </Button>
            )}
          </Group>
        )}
      </Stack>
      {open === 'hold' && <HoldModal clientId={clientId} clientName={clientName} hold onClose={() => setOpen(null)} onDone={setDone} />}
      {open === 'lift' && <HoldModal clientId={clientId} clientName={clientName} hold={false} onClose={() => setOpen(null)} onDone={setDone} />}
      {open === 'offboard' && <OffboardModal clientId={clientId} clientName={clientName} onClose={() => setOpen(null)} onDone={setDone} />}
      {approving && <ApproveModal approval={approving} clientId={clientId} clientName={clientName} onClose={() => setApproving(null)} onDone={setDone} />}
      {open === 'export' && <ExportModal clientId={clientId} clientName={clientName} onClose={() => setOpen(null)} onDone={setDone} />}
    </Card>
  );
}

type ModalProps = { clientId: string; clientName: string; onClose: () => void; onDone: (words: string) => void };

function ErrorLine({ error }: { error: string | null }) {
  return error ? (
    <Alert color="red" variant="light" role="alert">
      {error}
    </Alert>
  ) : null;
}

/** Setting a hold protects (reason only); lifting one is an owner's step-up action with the name typed. */
function HoldModal({ clientId, clientName, hold, onClose, onDone }: ModalProps & { hold: boolean }) {
  const qc = useQueryClient();
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const stepUp = useStepUp('lift a legal hold');
  const confirm = useTypedName(clientName);
  const save = useMutation({
    mutationFn: async () => {
      if (!hold) await stepUp.prove();
      return api.put('/api/v1/clients/{clientId}/legal-hold', { params: { path: { clientId } }, body: { hold, reason: reason.trim() } });
    },
    onSuccess: (s) => {
      qc.setQueryData(['client-lifecycle', clientId], s);
      onDone(hold ? `${clientName} is under legal hold: nothing of it is destroyed until the hold is lifted.` : `The legal hold on ${clientName} was lifted.`);
      onClose();
    },
    onError: (e) => setError(stepUp.caught(e) ? 'Confirm it is you: enter a current code from your authenticator app.' : messageOf(e)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!reason.trim()) return setError('Give a reason (a case or ticket reference helps auditors).');
    if (!hold && !confirm.matches) return setError(`Type the client's name exactly as shown: “${clientName}”.`);
    save.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={hold ? `Set legal hold on ${clientName}` : `Lift legal hold on ${clientName}`} centered>
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Text size="sm">
            {hold
              ? 'While a client is on legal hold, none of its keys is destroyed: retention waits and the client cannot be offboarded.'
              : 'Once lifted, retention destroys the keys of retired devices past their retention period again, and the client can be offboarded.'}
          </Text>
          <Textarea
            label="Reason"
            description="Goes into the audit log, e.g. a case reference."
            required
            data-autofocus
            maxLength={500}
            value={reason}
            onChange={(e) => setReason(e.currentTarget.value)}
            autosize
            minRows={2}
          />
          {!hold && confirm.field}
          {!hold && stepUp.field}
          <ErrorLine error={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending} disabled={!hold && !confirm.matches}>
              {hold ? 'Set legal hold' : 'Lift legal hold'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** A second owner approves a pending request: the action runs at once. */
function ApproveModal({ approval, clientId, clientName, onClose, onDone }: ModalProps & { approval: Approval }) {
  const qc = useQueryClient();
  const [error, setError] = useState<string | null>(null);
  const stepUp = useStepUp('approve a destructive action');
  const confirm = useTypedName(clientName);
  const run = useMutation({
    mutationFn: async () => {
      await stepUp.prove();
      return api.post('/api/v1/lifecycle/approvals/{approvalId}/approve', { params: { path: { approvalId: approval.id } }, body: { confirm: confirm.typed } });
    },
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['client-lifecycle', clientId] });
      void qc.invalidateQueries({ queryKey: ['client-overview', clientId] });
      void qc.invalidateQueries({ queryKey: ['console-clients'] });
      onDone(`Approved: ${(ACTION_WORDS[approval.action] ?? approval.action).toLowerCase()} ran now. The approval is in the audit log.`);
      onClose();
    },
    onError: (e) => setError(stepUp.caught(e) ? 'Confirm it is you: enter a current code from your authenticator app.' : messageOf(e)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!confirm.matches) return setError(`Type the client's name exactly as shown: “${clientName}”.`);
    run.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`Approve a request for ${clientName}`} centered size="lg">
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Alert color="red" variant="light" title="This runs at once and cannot be undone">
            {approvalWords(approval)}
            {approval.reason ? ` Reason given: “${approval.reason}”.` : ''}
          </Alert>
          {confirm.field}
          {stepUp.field}
          <ErrorLine error={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" color="red" loading={run.isPending} disabled={!confirm.matches}>
              Approve and run
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function OffboardModal({ clientId, clientName, onClose, onDone }: ModalProps) {
  const qc = useQueryClient();
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const stepUp = useStepUp('offboard a client');
  const confirm = useTypedName(clientName);
  const run = useMutation({
    mutationFn: async (): Promise<Outcome> => {
      await stepUp.prove();
      return api.post('/api/v1/clients/{clientId}/offboard', {
        params: { path: { clientId } },
        body: { confirm: confirm.typed, ...(reason.trim() ? { reason: reason.trim() } : {}) },
      });
    },
    onSuccess: (r) => {
      void qc.invalidateQueries({ queryKey: ['client-lifecycle', clientId] });
      void qc.invalidateQueries({ queryKey: ['client-overview', clientId] });
      void qc.invalidateQueries({ queryKey: ['console-clients'] });
      onDone(
        r.status === 'pending'
          ? `Offboarding ${clientName} waits for a second owner: two-owner approval is on. Nothing has been destroyed yet; another owner approves it on this page before ${fmtDateTime(r.approval.expiresAt)}.`
          : `${clientName} was offboarded: its data key was destroyed. Its recovery keys can no longer be read; devices and the audit trail are kept.`,
      );
      onClose();
    },
    onError: (e) => setError(stepUp.caught(e) ? 'Confirm it is you: enter a current code from your authenticator app.' : messageOf(e)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!confirm.matches) return setError(`Type the client's name exactly as shown: “${clientName}”.`);
    run.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`Offboard ${clientName}`} centered size="lg">
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Alert color="red" variant="light" title="This cannot be undone">
            <List size="sm" spacing={2}>
              <List.Item>The client&apos;s data key is destroyed (crypto-shred): none of its recovery keys can be read again, by anyone.</List.Item>
              <List.Item>Its Entra ID and AD connections are switched off and its agents stop.</List.Item>
              <List.Item>Devices, key IDs and the audit trail are kept.</List.Item>
            </List>
          </Alert>
          <Text size="sm">Take a break-glass export first if the client may need its keys later.</Text>
          <TextInput
            label="Reason"
            description="Optional; goes into the audit log."
            maxLength={500}
            value={reason}
            onChange={(e) => setReason(e.currentTarget.value)}
            data-autofocus
          />
          {confirm.field}
          {stepUp.field}
          <ErrorLine error={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" color="red" loading={run.isPending} disabled={!confirm.matches}>
              Offboard client
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function ExportModal({ clientId, clientName, onClose, onDone }: ModalProps) {
  const [mode, setMode] = useState<'passphrase' | 'recipient'>('passphrase');
  const [passphrase, setPassphrase] = useState('');
  const [again, setAgain] = useState('');
  const [recipient, setRecipient] = useState('');
  const [error, setError] = useState<string | null>(null);
  const stepUp = useStepUp('export recovery keys');
  const confirm = useTypedName(clientName);
  const run = useMutation({
    gcTime: 0,
    mutationFn: async () => {
      await stepUp.prove();
      return api.downloadPost(
        '/api/v1/clients/{clientId}/export',
        { params: { path: { clientId } }, body: mode === 'passphrase' ? { passphrase } : { recipient: recipient.trim() } },
        'keywarden-export.age',
      );
    },
    onSuccess: (r) => {
      setPassphrase('');
      setAgain('');
      onDone(`The encrypted bundle of ${clientName} was downloaded as ${r.name} (${r.bytes.toLocaleString()} bytes). The export is in the audit log.`);
      run.reset();
      onClose();
    },
    onError: (e) => setError(stepUp.caught(e) ? 'Confirm it is you: enter a current code from your authenticator app.' : messageOf(e)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (mode === 'passphrase' && passphrase !== again) return setError('The two passphrases differ: type the same passphrase twice.');
    if (mode === 'recipient' && !recipient.trim().startsWith('age1')) return setError('A recipient public key starts with “age1”.');
    if (!confirm.matches) return setError(`Type the client's name exactly as shown: “${clientName}”.`);
    run.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`Break-glass export of ${clientName}`} centered size="lg">
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Text size="sm">
            Downloads an encrypted file (age format) with every active recovery key of this client, to open offline when Keywarden is not reachable. The export
            is recorded in the audit log.
          </Text>
          {!stepUp.mfa && (
            <Alert color="yellow" variant="light">
              An export needs an authenticator app to confirm it is you. Set one up under Account first.
            </Alert>
          )}
          <SegmentedControl
            aria-label="Protect the file with"
            fullWidth
            value={mode}
            onChange={(v) => setMode(v as 'passphrase' | 'recipient')}
            data={[
              { value: 'passphrase', label: 'Passphrase' },
              { value: 'recipient', label: 'Recipient key' },
            ]}
          />
          {mode === 'passphrase' ? (
            <>
              <PasswordInput
                label="Passphrase"
                description="At least 12 characters; four or more random words are best. Keep it apart from the file."
                required
                maxLength={1024}
                value={passphrase}
                onChange={(e) => setPassphrase(e.currentTarget.value)}
                autoComplete="new-password"
              />
              <PasswordInput
                label="Passphrase again"
                required
                maxLength={1024}
                value={again}
                onChange={(e) => setAgain(e.currentTarget.value)}
                autoComplete="new-password"
              />
            </>
          ) : (
            <TextInput
              label="Recipient public key"
              description="The age public key of whoever opens the file (age1…)."
              required
              maxLength={100}
              value={recipient}
              onChange={(e) => setRecipient(e.currentTarget.value)}
              classNames={{ input: 'kw-mono' }}
              spellCheck={false}
              autoComplete="off"
            />
          )}
          {confirm.field}
          {stepUp.field}
          <ErrorLine error={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" leftSection={<IconDownload size={16} />} loading={run.isPending} disabled={!confirm.matches}>
              Download encrypted export
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
