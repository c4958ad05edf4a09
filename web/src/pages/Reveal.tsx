import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Badge, Button, Group, Modal, Progress, Stack, Text, TextInput, Textarea } from '@mantine/core';
import { IconAlertTriangle, IconCheck, IconCopy, IconEyeOff, IconInfoCircle, IconX } from '@tabler/icons-react';
import { api, ApiError, type Answer, type KeySummary } from '../api';
import { useSession } from '../session';
import { fmtDate, fmtDateTime, fmtKeyId, messageOf, SOURCE_LABEL, STATE_COLOR } from '../ui';
import { PasskeyStepUpButton } from '../passkeys';
import { PasswordGroups } from '../password-groups';
import { SsoStepUpButton } from '../sso-step-up';
import { ReasonTicketFields, reasonProblem } from '../reason-fields';
import { ApprovalPanel, useKeyApproval } from './Requests';

type RevealAnswer = Answer<'/api/v1/keys/{id}/reveal', 'post'>;
type Revealed = { password: string; rotation: Extract<RevealAnswer, { status: 'revealed' }>['rotation']; state: string };
/** What "Did it unlock?" answers: the key now, and every stored record of its key ID, ranked. */
export type UnlockOutcome = Answer<'/api/v1/keys/{keyRecordId}/unlock-outcome', 'post'>;

/** What happens to the key now, in the words the technician reads out. */
function consequence(r: Revealed): string {
  if (r.rotation === 'agent') return "This key will be rotated at the device's next check-in.";
  if (r.rotation === 'intune') return 'This key will be rotated through Intune within minutes.';
  if (r.state === 'disclosed')
    return 'This key is now marked as disclosed. Nothing rotates it automatically on this device: replace it on the device after use (manage-bde -protectors).';
  return 'This reveal is recorded in the audit log.';
}

/**
 * The reveal: reason, ticket, note, step-up when needed, then the password in 8 numbered groups.
 * The password lives only in this component's state: not in the URL, storage, title, console or
 * the query cache (a mutation, reset as soon as its answer is taken); it leaves the DOM on Hide,
 * on the timer, and when the dialog closes.
 */
export function RevealDialog({ keySummary, onClose }: { keySummary: KeySummary; onClose: () => void }) {
  const qc = useQueryClient();
  const settings = useQuery({ queryKey: ['console-settings'], queryFn: () => api.get('/api/v1/console/settings'), staleTime: 60_000 });
  const me = useQuery({ queryKey: ['me'], queryFn: () => api.get('/api/v1/me') });
  const [reason, setReason] = useState('');
  const [ticket, setTicket] = useState('');
  const [note, setNote] = useState('');
  const [code, setCode] = useState('');
  const [needCode, setNeedCode] = useState(false);
  const [revealed, setRevealed] = useState<Revealed | null>(null);
  const [hidden, setHidden] = useState(false);
  const [ambiguous, setAmbiguous] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  // The key as it stands after this reveal (disclosed) and its unlock outcome, kept when the password is hidden again.
  const [current, setCurrent] = useState<KeySummary>(keySummary);
  // Set once a reveal succeeded in this dialog: the person may then say whether it unlocked.
  const [revealedTicket, setRevealedTicket] = useState<string | null | undefined>(undefined);
  const form = useRef<HTMLFormElement>(null);
  // Two-person reveal: whether this key needs a second person, and an approval of mine to use once.
  const { can } = useSession();
  const approval = useKeyApproval(keySummary.id, can('key:reveal', keySummary.client.id));
  const approved = approval.data?.requests.find((r) => r.status === 'approved') ?? null;
  // An approval was given for its ticket: the reveal carries the same one (the server refuses another).
  useEffect(() => {
    if (approved?.ticket) setTicket((t) => t || approved.ticket!);
  }, [approved?.id, approved?.ticket]);
  const [breakGlass, setBreakGlass] = useState<string | null>(null);
  const needsApproval = !!approval.data?.required && !approved && breakGlass === null;
  // Ticket-bound reveal: the client's policy, what the server said about the ticket, and whether
  // the PSA is down while this person may break the glass (an owner).
  const ticketPolicy = approval.data?.ticket;
  const [ticketError, setTicketError] = useState<string | null>(null);
  const [psaDownBreakGlass, setPsaDownBreakGlass] = useState(false);

  // Step-up is needed when the person has an authenticator and the last proof is too old.
  const mfa = me.data?.user?.mfaEnabled ?? false;
  const stepUpFresh = !!me.data?.stepUpValidUntil && Date.parse(me.data.stepUpValidUntil) > Date.now() + 5_000;
  // A passkey confirmation just made in this dialog (the /me answer catches up a moment later).
  const [passkeyDone, setPasskeyDone] = useState(false);
  const totp = me.data?.user?.totpEnabled ?? false;
  const showCode = mfa && (needCode || !stepUpFresh) && !passkeyDone;

  const reveal = useMutation({
    gcTime: 0,
    mutationFn: async () => {
      if (showCode) {
        if (!totp) throw new Error('Confirm it is you first: use your passkey.');
        await api.post('/api/v1/auth/step-up', { body: { code: code.replace(/\s+/g, '') } });
        setCode('');
        void qc.invalidateQueries({ queryKey: ['me'] });
      }
      return api.post('/api/v1/keys/{id}/reveal', {
        params: { path: { id: keySummary.id } },
        body: {
          reason,
          ...(ticket.trim() ? { ticket: ticket.trim() } : {}),
          ...(note.trim() ? { note: note.trim() } : {}),
          ...(approved ? { approvalRequestId: approved.id } : {}),
          ...(breakGlass !== null ? { breakGlassReason: breakGlass.trim() } : {}),
        },
      });
    },
    onSuccess: (r) => {
      if (r.status === 'revealed') {
        const { recoveryPassword, ...summary } = r.key;
        setRevealed({ password: recoveryPassword, rotation: r.rotation, state: r.key.state });
        setCurrent(summary);
        setRevealedTicket(ticket.trim() || null);
        setHidden(false);
        // Every list that shows this key's state: the search results and its device page.
        void qc.invalidateQueries({ queryKey: ['find-key'] });
        if (keySummary.device) void qc.invalidateQueries({ queryKey: ['device', keySummary.device.id] });
      } else setAmbiguous(r.matches);
      // Keep nothing in TanStack's mutation cache.
      reveal.reset();
    },
    onError: (e) => {
      if (e instanceof ApiError && e.code === 'step_up_required') {
        setNeedCode(true);
        setPasskeyDone(false);
        setError(totp ? 'Confirm it is you: enter a current code from your authenticator app.' : 'Confirm it is you: use your passkey.');
      } else if (e instanceof ApiError && e.fields?.some((f) => f.field === 'ticket')) {
        // Closed, another company's, unknown, the PSA down …: said next to the ticket field.
        setTicketError(e.message);
        setPsaDownBreakGlass(e.details?.breakGlass === true);
      } else {
        // The policy changed, or the approval expired or was used: ask the server again.
        if (e instanceof ApiError && (e.code === 'approval_required' || e.status === 409)) void approval.refetch();
        setError(messageOf(e));
      }
    },
  });

  const hide = () => {
    setRevealed(null);
    setHidden(true);
  };
  const close = () => {
    setRevealed(null);
    onClose();
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setTicketError(null);
    const problem = reasonProblem(reason, ticket, ticketPolicy);
    if (problem) return setError(problem);
    reveal.mutate();
  };
  // A native select does not submit its form on Enter; on the phone the reason is often all it takes.
  const enterSubmits = (e: KeyboardEvent<HTMLSelectElement>) => {
    if (e.key !== 'Enter') return;
    e.preventDefault();
    form.current?.requestSubmit();
  };

  // Break-glass skips what this reveal lacks: a second person's approval, a checked ticket, or both.
  const without = [approval.data?.required && !approved ? "a second person's approval" : null, psaDownBreakGlass ? 'a checked ticket' : null]
    .filter(Boolean)
    .join(' and ');
  // The reason box opens where it was asked for: on top of the form (approval panel's break-glass), or
  // in place of the PSA break-glass button under the ticket field, focused so the owner types at once.
  const breakGlassBox = breakGlass !== null && (
    <Textarea
      label="Why break the glass?"
      description={`Revealing without ${without || "a second person's approval"} is audited as break-glass and notified. At least 10 characters.`}
      required
      color="red"
      value={breakGlass}
      onChange={(e) => setBreakGlass(e.currentTarget.value)}
      maxLength={500}
      autosize
      minRows={2}
      autoFocus={psaDownBreakGlass}
    />
  );

  return (
    <Modal opened onClose={close} title="Reveal recovery key" size="lg" centered>
      <Stack gap="md">
        <KeyFacts k={current} state={current.state} />
        {current.mayNotUnlock && <MayNotUnlock k={current} />}
        {revealed ? (
          <>
            <PasswordView revealed={revealed} seconds={settings.data?.revealHideSeconds ?? 60} onHide={hide} />
            <DidItUnlock k={current} ticket={revealedTicket ?? null} onRecorded={setCurrent} />
          </>
        ) : hidden ? (
          <Stack gap="sm">
            <Alert color="gray" variant="light" icon={<IconEyeOff size={18} />}>
              The password is hidden. Revealing it again is a new, audited reveal.
            </Alert>
            {revealedTicket !== undefined && <DidItUnlock k={current} ticket={revealedTicket} onRecorded={setCurrent} />}
            <Group justify="flex-end">
              <Button onClick={close}>Close</Button>
            </Group>
          </Stack>
        ) : ambiguous !== null ? (
          <Alert color="orange" title="Several keys match">
            {ambiguous} keys match: ask for more digits of the key ID.
          </Alert>
        ) : needsApproval && approval.data ? (
          <ApprovalPanel k={current} approval={approval.data} onBreakGlass={() => setBreakGlass('')} />
        ) : (
          <form onSubmit={submit} ref={form}>
            <Stack gap="sm">
              {approved && (
                <Alert color="green" variant="light" icon={<IconCheck size={18} />} data-testid="approved-reveal">
                  Approved by {approved.decidedBy}: this reveal uses the approval once (before {fmtDateTime(approved.approvalExpiresAt)}).
                </Alert>
              )}
              {!psaDownBreakGlass && breakGlassBox}
              <ReasonTicketFields
                reason={reason}
                setReason={setReason}
                ticket={ticket}
                setTicket={(t) => {
                  setTicket(t);
                  setTicketError(null);
                }}
                onKeyDown={enterSubmits}
                autoFocus
                ticketPolicy={ticketPolicy}
                ticketError={ticketError}
              />
              {psaDownBreakGlass &&
                (breakGlass === null ? (
                  <Group justify="flex-end">
                    <Button variant="light" color="red" onClick={() => setBreakGlass('')} data-testid="psa-break-glass">
                      Break glass: reveal without a checked ticket
                    </Button>
                  </Group>
                ) : (
                  breakGlassBox
                ))}
              <Textarea
                label="Note"
                description="Optional; goes into the audit log. Never paste a recovery password."
                value={note}
                onChange={(e) => setNote(e.currentTarget.value)}
                maxLength={1000}
                autosize
                minRows={1}
                maxRows={4}
              />
              {showCode && <SsoStepUpButton />}
              {showCode && (
                <PasskeyStepUpButton
                  label="Confirm with a passkey (step-up)"
                  onDone={() => {
                    setPasskeyDone(true);
                    setNeedCode(false);
                    setError(null);
                  }}
                />
              )}
              {showCode && totp && (
                <TextInput
                  label="Authentication code"
                  description="A current code from your authenticator app (step-up before a reveal)"
                  value={code}
                  onChange={(e) => setCode(e.currentTarget.value)}
                  autoComplete="one-time-code"
                  required
                  maxLength={20}
                  classNames={{ input: 'kw-mono' }}
                />
              )}
              {error && (
                <Alert color="red" variant="light" role="alert">
                  {error}
                </Alert>
              )}
              <Group justify="flex-end">
                <Button variant="default" onClick={close}>
                  Cancel
                </Button>
                <Button type="submit" loading={reveal.isPending}>
                  Show password
                </Button>
              </Group>
            </Stack>
          </form>
        )}
      </Stack>
    </Modal>
  );
}

function KeyFacts({ k, state }: { k: KeySummary; state: string }) {
  return (
    <Stack gap={2}>
      <Group gap="xs">
        <Text fw={650}>{k.device?.name ?? 'Unknown device'}</Text>
        <Text c="dimmed" size="sm">
          {k.client.name}
        </Text>
        <Badge variant="light" size="sm" color={STATE_COLOR[state] ?? 'gray'} data-testid="key-state">
          {state}
        </Badge>
        {k.mayNotUnlock && <MayNotUnlockBadge />}
      </Group>
      <Text className="kw-mono" size="sm">
        Key ID {fmtKeyId(k.keyId)}
      </Text>
      <Text size="xs" c="dimmed">
        Volume {k.volume?.mountPoint ?? '?'} · key from {fmtDate(k.createdAt ?? k.firstSeenAt)} ·{' '}
        {[...new Set(k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type))].join(', ')}
      </Text>
    </Stack>
  );
}

function PasswordView({ revealed, seconds, onHide }: { revealed: Revealed; seconds: number; onHide: () => void }) {
  const [left, setLeft] = useState(seconds);
  const [copied, setCopied] = useState(false);
  // The latest onHide, without restarting the countdown when the parent re-renders.
  const hideRef = useRef(onHide);
  hideRef.current = onHide;

  useEffect(() => {
    const started = Date.now();
    const t = setInterval(() => {
      const remaining = seconds - Math.floor((Date.now() - started) / 1000);
      if (remaining <= 0) {
        clearInterval(t);
        hideRef.current();
      } else setLeft(remaining);
    }, 250);
    return () => clearInterval(t);
  }, [seconds]);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(revealed.password);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  };

  return (
    <Stack gap="sm">
      <PasswordGroups password={revealed.password} />
      <Group justify="space-between" wrap="wrap">
        <Text size="sm" c="dimmed" aria-live="off">
          Hides in {left} s
        </Text>
        <Group gap="xs">
          <Button
            variant="light"
            onClick={() => void copy()}
            leftSection={copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
            color={copied ? 'green' : undefined}
          >
            {copied ? 'Copied' : 'Copy'}
          </Button>
          <Button variant="default" onClick={onHide} leftSection={<IconEyeOff size={16} />}>
            Hide
          </Button>
        </Group>
      </Group>
      <Progress value={(left / seconds) * 100} size="xs" aria-hidden />
      <Alert color="blue" variant="light" icon={<IconInfoCircle size={18} />}>
        {consequence(revealed)}
      </Alert>
    </Stack>
  );
}

/** The short mark on a key the device's agent proved wrong (search results, device page, dialog). */
export function MayNotUnlockBadge() {
  return (
    <Badge color="red" variant="light" size="sm" leftSection={<IconAlertTriangle size={12} aria-hidden />}>
      May not unlock
    </Badge>
  );
}

/**
 * What to do about a key that may not unlock: the agent reported a different password for it. People
 * who manage agents can ask it to escrow the password the drive really has (a `re-escrow` job).
 */
export function MayNotUnlock({ k }: { k: KeySummary }) {
  const { can } = useSession();
  const qc = useQueryClient();
  const mayQueue = !!(k.device && k.keyId && k.volume?.mountPoint && can('agent:manage', k.client.id));
  const queue = useMutation({
    mutationFn: () =>
      api.post('/api/v1/devices/{deviceId}/jobs', {
        params: { path: { deviceId: k.device!.id } },
        body: { kind: 're-escrow', mountPoint: k.volume!.mountPoint!, protectorId: k.keyId! },
      }),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['device', k.device!.id] }),
  });
  return (
    <Alert color="red" variant="light" icon={<IconAlertTriangle size={18} />} title="May not unlock" p="xs">
      <Stack gap={6}>
        <Text size="sm">
          The device's agent reported a different password for this key, or it failed when someone tried it: the stored one may not unlock the drive. Try it; if
          it fails, look for another key of this device
          {mayQueue ? ', and ask the agent to re-escrow the real one.' : ', and ask an admin to have the agent re-escrow it.'}
        </Text>
        {mayQueue &&
          (queue.isSuccess ? (
            <Text size="sm" role="status">
              Re-escrow queued: the agent sends the drive's password at its next check-in.
            </Text>
          ) : (
            <Group gap="xs">
              <Button size="compact-sm" variant="light" color="red" loading={queue.isPending} onClick={() => queue.mutate()}>
                Ask the agent to re-escrow
              </Button>
              {queue.isError && (
                <Text size="sm" c="red" role="alert">
                  {messageOf(queue.error)}
                </Text>
              )}
            </Group>
          ))}
      </Stack>
    </Alert>
  );
}

/**
 * "Did it unlock?" after a reveal: only the person who revealed the key answers (the server checks).
 * Yes settles a key ID with several stored passwords (the others are superseded, the conflict
 * resolved); no marks the key "may not unlock" and offers a re-escrow.
 */
function DidItUnlock({ k, ticket, onRecorded }: { k: KeySummary; ticket: string | null; onRecorded: (k: KeySummary) => void }) {
  const qc = useQueryClient();
  const [answer, setAnswer] = useState<UnlockOutcome | null>(null);
  const record = useMutation({
    mutationFn: (unlocked: boolean) =>
      api.post('/api/v1/keys/{keyRecordId}/unlock-outcome', { params: { path: { keyRecordId: k.id } }, body: { unlocked, ...(ticket ? { ticket } : {}) } }),
    onSuccess: (r) => {
      setAnswer(r);
      onRecorded(r.key);
      // Search results, the device page and lookups show the new state and ranking.
      void qc.invalidateQueries({ queryKey: ['find-key'] });
      for (const c of r.candidates) if (c.device) void qc.invalidateQueries({ queryKey: ['device', c.device.id] });
    },
  });
  if (answer?.unlocked)
    return (
      <Alert color="green" variant="light" icon={<IconCheck size={18} />} role="status" title="Recorded: it unlocked">
        {answer.superseded > 0
          ? `This is the password of key ID ${fmtKeyId(k.keyId)}. The other stored password${answer.superseded === 1 ? ' is' : 's are'} now marked superseded${answer.resolvedFindings ? ' and the conflict is resolved' : ''}.`
          : 'Thank you: the audit log records that this key unlocked the drive.'}
      </Alert>
    );
  if (answer && !answer.unlocked)
    return (
      <Alert color="orange" variant="light" icon={<IconX size={18} />} role="status" title="Recorded: it did not unlock">
        {answer.key.mayNotUnlock
          ? 'This key is now marked “may not unlock” in search, on the device page and here.'
          : 'The audit log records that this key did not unlock the drive (it has no device to mark).'}
        {answer.tryFirst && answer.tryFirst !== k.id ? ' Another stored password of this key ID is now the one to try first: search the key ID again.' : ''}
      </Alert>
    );
  return (
    <Group gap="xs" justify="space-between" wrap="wrap" role="group" aria-labelledby={`unlock-q-${k.id}`}>
      <Text fw={600} size="sm" id={`unlock-q-${k.id}`}>
        Did it unlock?
      </Text>
      <Group gap="xs">
        <Button
          size="sm"
          color="green"
          variant="light"
          leftSection={<IconCheck size={16} />}
          loading={record.isPending && record.variables}
          disabled={record.isPending}
          onClick={() => record.mutate(true)}
        >
          Yes, it unlocked
        </Button>
        <Button
          size="sm"
          color="red"
          variant="light"
          leftSection={<IconX size={16} />}
          loading={record.isPending && !record.variables}
          disabled={record.isPending}
          onClick={() => record.mutate(false)}
        >
          No
        </Button>
      </Group>
      {record.isError && (
        <Text size="sm" c="red" role="alert" w="100%">
          {messageOf(record.error)}
        </Text>
      )}
    </Group>
  );
}
