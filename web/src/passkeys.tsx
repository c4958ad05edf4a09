/**
 * Passkeys (WebAuthn) in the console: the Account page's list (add, rename, remove), signing in
 * with a passkey (password-less, or as the second factor after the password), and step-up with a
 * passkey wherever a code is asked for. The browser part is @simplewebauthn/browser; the options
 * and answers go to /api/v1 as they are, nothing is kept.
 */
import { useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Button, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconKey } from '@tabler/icons-react';
import {
  browserSupportsWebAuthn,
  startAuthentication,
  startRegistration,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import { api, ApiError, type Answer, type Body, type Me } from './api';
import { fmtDate, messageOf } from './ui';

type SignInAnswer = Answer<'/api/v1/auth/passkey', 'post'>;
type AssertionBody = Body<'/api/v1/auth/passkey', 'post'>['response'];
type RegistrationBody = Body<'/api/v1/me/passkeys', 'post'>['response'];

/** The browser's own words when the person cancels or the time runs out, in ours. */
function browserMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  const name = e instanceof Error ? e.name : '';
  if (name === 'NotAllowedError') return 'The passkey request was cancelled or timed out. Try again.';
  if (name === 'InvalidStateError') return 'This passkey is already registered with Keywarden.';
  return messageOf(e);
}

async function answerChallenge(options: unknown): Promise<AssertionBody> {
  const r = await startAuthentication({ optionsJSON: options as PublicKeyCredentialRequestOptionsJSON });
  return r as unknown as AssertionBody;
}

/** Password-less sign-in: any passkey of this Keywarden, with the authenticator's PIN or biometrics. */
export async function signInWithPasskey(): Promise<SignInAnswer> {
  const options = await api.post('/api/v1/auth/passkey/options', { body: {}, quiet401: true });
  return api.post('/api/v1/auth/passkey', { body: { response: await answerChallenge(options) }, quiet401: true });
}

/** The passkey as the second factor, after the password was right (sign-in answered mfaRequired). */
export async function secondFactorWithPasskey(email: string, password: string): Promise<SignInAnswer> {
  const options = await api.post('/api/v1/auth/passkey/options', { body: { email, password }, quiet401: true });
  return api.post('/api/v1/auth/passkey', { body: { response: await answerChallenge(options) }, quiet401: true });
}

/** Step-up with one of your passkeys. */
export async function stepUpWithPasskey(): Promise<void> {
  const options = await api.post('/api/v1/auth/step-up/passkey/options');
  await api.post('/api/v1/auth/step-up/passkey', { body: { response: await answerChallenge(options) } });
}

export const passkeysSupported = () => typeof window !== 'undefined' && browserSupportsWebAuthn();

/** Your passkeys (for people; an API token has none). */
export function useMyPasskeys(enabled = true) {
  return useQuery({ queryKey: ['passkeys'], queryFn: () => api.get('/api/v1/me/passkeys'), enabled, staleTime: 30_000 });
}

/** "Use a passkey" in a step-up: proves it, then calls onDone. Shown only when the person has a passkey. */
export function PasskeyStepUpButton({ onDone, label = 'Confirm with a passkey' }: { onDone: () => void; label?: string }) {
  const qc = useQueryClient();
  const mine = useMyPasskeys();
  const [error, setError] = useState<string | null>(null);
  const prove = useMutation({
    mutationFn: stepUpWithPasskey,
    onSuccess: () => {
      setError(null);
      void qc.invalidateQueries({ queryKey: ['me'] });
      onDone();
    },
    onError: (e) => setError(browserMessage(e)),
  });
  if (!passkeysSupported() || !mine.data?.length) return null;
  return (
    <Stack gap={4}>
      <Group>
        <Button variant="light" leftSection={<IconKey size={16} aria-hidden />} loading={prove.isPending} onClick={() => prove.mutate()}>
          {label}
        </Button>
      </Group>
      {error && (
        <Alert color="red" variant="light" role="alert">
          {error}
        </Alert>
      )}
    </Stack>
  );
}

/** Step-up with the authenticator app's code (for people who have one), next to the passkey button. */
function CodeStepUp({ onDone }: { onDone: () => void }) {
  const [code, setCode] = useState('');
  const qc = useQueryClient();
  const prove = useMutation({
    mutationFn: () => api.post('/api/v1/auth/step-up', { body: { code: code.replace(/\s+/g, '') } }),
    onSuccess: () => {
      setCode('');
      void qc.invalidateQueries({ queryKey: ['me'] });
      onDone();
    },
  });
  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        prove.mutate();
      }}
    >
      <Group align="flex-end" gap="sm">
        <TextInput
          label="Authentication code"
          value={code}
          onChange={(e) => setCode(e.currentTarget.value)}
          autoComplete="one-time-code"
          maxLength={20}
          required
          classNames={{ input: 'kw-mono' }}
          error={prove.error ? messageOf(prove.error) : undefined}
        />
        <Button type="submit" variant="light" loading={prove.isPending}>
          Confirm
        </Button>
      </Group>
    </form>
  );
}

/** The Account page's "Passkeys" section: add (with a name), rename, remove. */
export function PasskeysSection({ me }: { me: Me }) {
  const qc = useQueryClient();
  const list = useMyPasskeys(me.actor.type === 'user');
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [needStepUp, setNeedStepUp] = useState<null | { retry: () => void }>(null);
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const refresh = () => {
    void qc.invalidateQueries({ queryKey: ['passkeys'] });
    void qc.invalidateQueries({ queryKey: ['me'] });
  };
  const failed = (e: unknown, retry: () => void) => {
    if (e instanceof ApiError && e.code === 'step_up_required') {
      setError('Confirm it is you first (step-up), then try again.');
      setNeedStepUp({ retry });
    } else setError(browserMessage(e));
  };

  const add = useMutation({
    mutationFn: async () => {
      const options = await api.post('/api/v1/me/passkeys/options');
      const response = await startRegistration({ optionsJSON: options as unknown as PublicKeyCredentialCreationOptionsJSON });
      return api.post('/api/v1/me/passkeys', { body: { ...(name.trim() ? { name: name.trim() } : {}), response: response as unknown as RegistrationBody } });
    },
    onSuccess: (p) => {
      setName('');
      setError(null);
      notifications.show({ color: 'green', message: `Passkey “${p.name}” added.` });
      refresh();
    },
    onError: (e) => failed(e, () => add.mutate()),
  });
  const rename = useMutation({
    mutationFn: (r: { id: string; name: string }) =>
      api.patch('/api/v1/me/passkeys/{passkeyId}', { params: { path: { passkeyId: r.id } }, body: { name: r.name } }),
    onSuccess: () => {
      setRenaming(null);
      setError(null);
      refresh();
    },
    onError: (e) => setError(browserMessage(e)),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api.del('/api/v1/me/passkeys/{passkeyId}', { params: { path: { passkeyId: id } } }),
    onSuccess: () => {
      setError(null);
      notifications.show({ message: 'Passkey removed.' });
      refresh();
    },
    onError: (e, id) => failed(e, () => remove.mutate(id)),
  });

  const afterStepUp = () => {
    const retry = needStepUp?.retry;
    setNeedStepUp(null);
    setError(null);
    retry?.();
  };

  if (me.actor.type !== 'user') return null;
  const rows = list.data ?? [];
  return (
    <section aria-labelledby="acc-passkeys">
      <Title order={2} fz="lg" id="acc-passkeys" mb="xs">
        Passkeys
      </Title>
      <Stack gap="sm">
        <Text size="sm" c="dimmed">
          Sign in with your fingerprint, face or a security key instead of a password, and confirm sensitive actions with it. A passkey is also a second factor.
        </Text>
        {rows.length > 0 && (
          <Table aria-label="Your passkeys" verticalSpacing={6}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Added</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>
                  <span className="kw-visually-hidden">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((p) => (
                <Table.Tr key={p.id}>
                  <Table.Td>
                    {renaming?.id === p.id ? (
                      <form
                        onSubmit={(e) => {
                          e.preventDefault();
                          rename.mutate(renaming);
                        }}
                      >
                        <Group gap={6} wrap="nowrap">
                          <TextInput
                            aria-label={`New name for ${p.name}`}
                            value={renaming.name}
                            onChange={(e) => setRenaming({ id: p.id, name: e.currentTarget.value })}
                            maxLength={100}
                            required
                            size="xs"
                          />
                          <Button type="submit" size="xs" loading={rename.isPending}>
                            Save
                          </Button>
                        </Group>
                      </form>
                    ) : (
                      p.name
                    )}
                  </Table.Td>
                  <Table.Td>{fmtDate(p.createdAt)}</Table.Td>
                  <Table.Td>{p.lastUsedAt ? fmtDate(p.lastUsedAt) : 'never'}</Table.Td>
                  <Table.Td>
                    <Group gap={6} justify="flex-end" wrap="nowrap">
                      <Button size="xs" variant="subtle" aria-label={`Rename ${p.name}`} onClick={() => setRenaming({ id: p.id, name: p.name })}>
                        Rename
                      </Button>
                      <Button
                        size="xs"
                        variant="light"
                        color="red"
                        aria-label={`Remove ${p.name}`}
                        loading={remove.isPending}
                        onClick={() => remove.mutate(p.id)}
                      >
                        Remove
                      </Button>
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
        {passkeysSupported() ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setError(null);
              add.mutate();
            }}
          >
            <Group align="flex-end" gap="sm">
              <TextInput
                label="Passkey name"
                description="So you can tell them apart, e.g. “Work laptop”"
                value={name}
                onChange={(e) => setName(e.currentTarget.value)}
                maxLength={100}
              />
              <Button type="submit" leftSection={<IconKey size={16} aria-hidden />} loading={add.isPending}>
                Add a passkey
              </Button>
            </Group>
          </form>
        ) : (
          <Text size="sm">This browser cannot use passkeys.</Text>
        )}
        {error && (
          <Alert color="red" variant="light" role="alert">
            {error}
          </Alert>
        )}
        {needStepUp && (
          <Stack gap="xs">
            <PasskeyStepUpButton onDone={afterStepUp} />
            {me.user?.totpEnabled && <CodeStepUp onDone={afterStepUp} />}
          </Stack>
        )}
      </Stack>
    </section>
  );
}
