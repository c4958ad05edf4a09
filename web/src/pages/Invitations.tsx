import { useEffect, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useLocation } from 'wouter';
import {
  Alert,
  Badge,
  Button,
  Center,
  Checkbox,
  Group,
  Modal,
  MultiSelect,
  NativeSelect,
  Paper,
  PasswordInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconMailPlus } from '@tabler/icons-react';
import { api, csrf, type Answer, type Role } from '../api';
import { ROLE_LABEL, ROLES, useSession } from '../session';
import { ErrorState, Loading, SecretOnce, fmtDateTime, messageOf, FormFooter } from '../ui';

/**
 * Invitations (issue 19): on the Users tab, invite someone by e-mail with a role and clients, see
 * the pending invitations (send again, withdraw) and copy a new link once. The invitee's page is
 * opened from the link `/#/invitation/<token>`: the token stays in the fragment (never sent in a URL)
 * and is POSTed to the server.
 */

type Issued = Answer<'/api/v1/invitations', 'post'>;
type Pending = Answer<'/api/v1/invitations', 'get'>[number];

/** The link the inviter copies: the server's when KEYWARDEN_PUBLIC_URL is set, else this console's address. */
const linkOf = (r: Issued) => r.link ?? `${window.location.origin}/#/invitation/${r.token}`;

export function InvitationsPanel() {
  const qc = useQueryClient();
  const { clients } = useSession();
  const names = new Map(clients.map((c) => [c.id, c.name]));
  const list = useQuery({ queryKey: ['invitations'], queryFn: () => api.get('/api/v1/invitations') });
  const [inviting, setInviting] = useState(false);
  const [issued, setIssued] = useState<Issued | null>(null);
  const done = (r: Issued) => {
    setIssued(r);
    void qc.invalidateQueries({ queryKey: ['invitations'] });
  };
  const resend = useMutation({
    mutationFn: (id: string) => api.post('/api/v1/invitations/{invitationId}/resend', { params: { path: { invitationId: id } }, body: {} }),
    onSuccess: done,
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const revoke = useMutation({
    mutationFn: (i: Pending) => api.del('/api/v1/invitations/{invitationId}', { params: { path: { invitationId: i.id } } }),
    onSuccess: (_r, i) => {
      notifications.show({ color: 'green', message: `The invitation for ${i.email} was withdrawn; its link no longer works.` });
      void qc.invalidateQueries({ queryKey: ['invitations'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });

  return (
    <Stack gap="sm" mt="md">
      <Group justify="space-between">
        <Title order={3} fz="md">
          Invitations
        </Title>
        <Button leftSection={<IconMailPlus size={16} />} onClick={() => setInviting(true)}>
          Invite
        </Button>
      </Group>
      {issued && (
        <SecretOnce title={`Invitation link for ${issued.invitation.email}`} secret={linkOf(issued)}>
          <Text size="sm">
            {issued.mail.sent
              ? 'It was also e-mailed to them.'
              : `The e-mail did not go out (${issued.mail.reason ?? 'unknown reason'}): send them this link yourself.`}
            {issued.pendingApprovalId ? ' It works once a second owner approves it (Settings → approvals).' : ''}
          </Text>
          <Group>
            <Button size="xs" variant="default" onClick={() => setIssued(null)}>
              Done
            </Button>
          </Group>
        </SecretOnce>
      )}
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <ErrorState error={list.error} retry={() => void list.refetch()} />
      ) : list.data.length === 0 ? (
        <Text size="sm" c="dimmed">
          No pending invitations.
        </Text>
      ) : (
        <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Pending invitations">
          <Table striped verticalSpacing={6} fz="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>E-mail</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Clients</Table.Th>
                <Table.Th>Invited by</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Actions</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {list.data.map((i) => (
                <Table.Tr key={i.id}>
                  <Table.Td>{i.email}</Table.Td>
                  <Table.Td>{ROLE_LABEL[i.role]}</Table.Td>
                  <Table.Td>{i.clients === 'all' ? 'All' : i.clients.map((c) => names.get(c) ?? c.slice(0, 8)).join(', ')}</Table.Td>
                  <Table.Td>{i.invitedBy}</Table.Td>
                  <Table.Td>{fmtDateTime(i.expiresAt)}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" size="sm" color={i.status === 'pending' ? 'blue' : i.status === 'expired' ? 'gray' : 'yellow'}>
                      {i.status === 'awaiting-approval' ? 'awaiting approval' : i.status}
                    </Badge>
                    {i.mail && i.mail !== 'sent' && (
                      <Text size="xs" c="dimmed">
                        {i.mail}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4} wrap="nowrap">
                      <Button size="compact-xs" variant="default" loading={resend.isPending && resend.variables === i.id} onClick={() => resend.mutate(i.id)}>
                        Send again
                      </Button>
                      <Button size="compact-xs" variant="default" color="red" onClick={() => revoke.mutate(i)}>
                        Withdraw
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </div>
      )}
      {inviting && <InviteModal onClose={() => setInviting(false)} onIssued={done} />}
    </Stack>
  );
}

function InviteModal({ onClose, onIssued }: { onClose: () => void; onIssued: (r: Issued) => void }) {
  const { clients } = useSession();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('technician');
  const [all, setAll] = useState(false);
  const [ids, setIds] = useState<string[]>([]);
  const create = useMutation({
    mutationFn: () => api.post('/api/v1/invitations', { body: { email, role, clients: all ? 'all' : ids } }),
    onSuccess: (r) => {
      onIssued(r);
      onClose();
    },
    gcTime: 0,
  });
  return (
    <Modal opened onClose={onClose} title="Invite someone">
      <form
        onSubmit={(e: FormEvent) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Stack gap="sm">
          <Text size="sm" c="dimmed">
            They get a one-time link by e-mail and choose their own name and password. The role and clients are fixed in the invitation.
          </Text>
          <TextInput label="Email" type="email" value={email} onChange={(e) => setEmail(e.currentTarget.value)} required autoFocus />
          <NativeSelect
            label="Role"
            value={role}
            onChange={(e) => setRole(e.currentTarget.value as Role)}
            data={ROLES.map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
          />
          <Checkbox label="Access: all clients, present and future" checked={all} onChange={(e) => setAll(e.currentTarget.checked)} />
          {!all && (
            <MultiSelect
              label="Clients"
              placeholder="Pick clients"
              data={clients.map((c) => ({ value: c.id, label: c.name }))}
              value={ids}
              onChange={setIds}
              searchable
              required
            />
          )}
          <FormFooter error={create.error} onCancel={onClose} submitting={create.isPending} submit="Send invitation" />
        </Stack>
      </form>
    </Modal>
  );
}

/** The token of an invitation link in this page's fragment (`#/invitation/<token>`), or null. */
export function invitationTokenInHash(): string | null {
  const m = /^#\/invitation\/([A-Za-z0-9_-]{1,200})$/.exec(window.location.hash);
  return m ? m[1]! : null;
}

/** The invitee's page: who invited them, the role and clients; they choose a name and password and are signed in. */
export function AcceptInvitationPage({ token, onDone }: { token: string; onDone: () => void }) {
  const qc = useQueryClient();
  const [, navigate] = useLocation();
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const preview = useQuery({
    queryKey: ['invitation-preview'],
    queryFn: () => api.post('/api/v1/invitations/preview', { body: { token } }),
    retry: false,
    staleTime: Infinity,
    gcTime: 0,
  });
  useEffect(() => {
    // The link is not kept in the address bar or the history once the page has read it.
    window.history.replaceState(null, '', window.location.pathname);
  }, []);
  const accept = useMutation({
    mutationFn: () => {
      if (password !== again) throw new Error('The two passwords are not the same.');
      return api.post('/api/v1/invitations/accept', { body: { token, name: name || undefined, password } });
    },
    onSuccess: async (r) => {
      csrf.set(r.csrfToken);
      qc.clear();
      qc.setQueryData(['session-state'], { needed: false, signedIn: true });
      await qc.fetchQuery({ queryKey: ['me'], queryFn: () => api.get('/api/v1/me') });
      onDone();
      navigate('/');
    },
    gcTime: 0,
  });
  return (
    <main>
      <Center mih="100dvh" p="md">
        <Paper withBorder p="xl" maw={520} w="100%" radius="lg">
          <Stack>
            <Title order={1} fz={22}>
              Join Keywarden
            </Title>
            {preview.isPending ? (
              <Loading label="Checking your invitation…" />
            ) : preview.isError ? (
              <Alert color="red" role="alert" title="This invitation cannot be used">
                {messageOf(preview.error)}
              </Alert>
            ) : (
              <form
                onSubmit={(e: FormEvent) => {
                  e.preventDefault();
                  accept.mutate();
                }}
              >
                <Stack gap="sm">
                  <Text size="sm" data-testid="invitation-offer">
                    {preview.data.invitedBy} invited <b>{preview.data.email}</b> as <b>{ROLE_LABEL[preview.data.role]}</b> for{' '}
                    {preview.data.clients === 'all' ? 'all clients' : preview.data.clients.map((c) => c.name).join(', ')}.
                  </Text>
                  {preview.data.awaitingApproval && (
                    <Alert color="yellow">This invitation waits for a second owner&apos;s approval; you can accept it once it is approved.</Alert>
                  )}
                  <TextInput label="Your name" value={name} onChange={(e) => setName(e.currentTarget.value)} autoComplete="name" />
                  <PasswordInput
                    label="Choose a password"
                    description="At least 12 characters."
                    value={password}
                    onChange={(e) => setPassword(e.currentTarget.value)}
                    required
                    autoComplete="new-password"
                  />
                  <PasswordInput
                    label="The same password again"
                    value={again}
                    onChange={(e) => setAgain(e.currentTarget.value)}
                    required
                    autoComplete="new-password"
                  />
                  {accept.error && (
                    <Alert color="red" role="alert">
                      {messageOf(accept.error)}
                    </Alert>
                  )}
                  <Button type="submit" loading={accept.isPending}>
                    Accept and sign in
                  </Button>
                </Stack>
              </form>
            )}
          </Stack>
        </Paper>
      </Center>
    </main>
  );
}

/** A reminder on every page for an owner without a second factor; dismissed for this browser session. */
export function SecondFactorNag({ missing }: { missing: boolean }) {
  const [dismissed, setDismissed] = useState(() => sessionStorage.getItem('kw-nag-2fa') === '1');
  const [, navigate] = useLocation();
  if (!missing || dismissed) return null;
  return (
    <Alert
      color="yellow"
      variant="light"
      mb="md"
      title="Protect your owner account with a second factor"
      withCloseButton
      closeButtonLabel="Dismiss for this session"
      onClose={() => {
        sessionStorage.setItem('kw-nag-2fa', '1');
        setDismissed(true);
      }}
      data-testid="second-factor-nag"
    >
      <Group justify="space-between" gap="sm">
        <Text size="sm">You manage people and settings without an authenticator app: a stolen password would be enough to take over the vault.</Text>
        <Button size="xs" variant="default" onClick={() => navigate('/settings/account')}>
          Set it up
        </Button>
      </Group>
    </Alert>
  );
}
