import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from '@tanstack/react-query';
import { Alert, Anchor, Badge, Button, Card, Container, Group, List, Stack, Text, TextInput, Textarea, Title } from '@mantine/core';
import { IconInfoCircle, IconKey, IconLogin } from '@tabler/icons-react';
import { api, ApiError, recoverCsrf, recoverStartUrl, type Answer } from '../api';
import { PasswordGroups } from '../password-groups';
import { messageOf } from '../ui';

type Me = Answer<'/api/v1/recover/me', 'get'>;
type RevealAnswer = Answer<'/api/v1/recover/reveal', 'post'>;

/** Why a sign-in came back refused (the reason word in ?error=), in the end user's words. */
const REFUSALS: Record<string, string> = {
  'no-mfa': 'Your sign-in did not use multi-factor authentication. Sign in again with your authenticator app.',
  'tenant-not-enabled': 'Self-service recovery is not available for your organisation. Call your IT provider.',
  'not-configured': 'Self-service recovery is not set up yet. Call your IT provider.',
  'not-a-work-account': 'Sign in with your work account.',
  'too-many-starts': 'Too many sign-ins were started from your address. Wait a few minutes, then try again.',
};

/**
 * Self-service recovery for end users (/recover): a page of its own, phone first, without the
 * console's navigation. Sign in with the work account, see the devices you own or use, type the
 * first 8 characters of the key ID from the blue screen and a reason, get the key.
 */
export function RecoverPage() {
  const error = new URLSearchParams(window.location.search).get('error');
  const me = useQuery({
    queryKey: ['recover-me'],
    queryFn: async (): Promise<Me | null> => {
      try {
        return await api.get('/api/v1/recover/me', { quiet401: true });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return null;
        throw e;
      }
    },
    retry: false,
  });

  return (
    <Container size={520} px="md" py="lg">
      <Stack gap="md">
        <Group gap="xs">
          <IconKey size={28} aria-hidden />
          <Title order={1} size="h2">
            Recover your BitLocker key
          </Title>
        </Group>
        {me.isPending ? (
          <Text>Loading…</Text>
        ) : me.data ? (
          <SignedIn me={me.data} />
        ) : (
          <Stack gap="sm">
            {error && (
              <Alert color="red" title="You could not be signed in">
                {REFUSALS[error] ?? 'The sign-in did not work. Start again, or call your IT provider.'}
              </Alert>
            )}
            <Text>Your computer asks for a BitLocker recovery key? Sign in with your work account to get the key of your own device.</Text>
            <Button component="a" href={recoverStartUrl} size="lg" leftSection={<IconLogin size={20} />}>
              Sign in with your work account
            </Button>
          </Stack>
        )}
      </Stack>
    </Container>
  );
}

function SignedIn({ me }: { me: Me }) {
  const [keyId, setKeyId] = useState('');
  const [reason, setReason] = useState('');
  const [answer, setAnswer] = useState<RevealAnswer | null>(null);
  const compact = keyId.replace(/[\s-]/g, '');
  const keyIdError = compact && !/^[0-9a-fA-F]{0,8}$/.test(compact) ? 'Only 0-9 and A-F, 8 characters.' : null;
  const reveal = useMutation({
    mutationFn: () => api.post('/api/v1/recover/reveal', { body: { keyId: compact, reason: reason.trim() }, quiet401: true }),
    onSuccess: (r) => setAnswer(r),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (compact.length === 8 && !keyIdError && reason.trim().length >= 3) reveal.mutate();
  };

  return (
    <Stack gap="md">
      <Text size="sm" c="dimmed">
        Signed in as {me.upn}
      </Text>
      <Card withBorder padding="sm">
        <Text fw={600} mb={4}>
          Your devices
        </Text>
        {me.devices.length ? (
          <List spacing={4}>
            {me.devices.map((d) => (
              <List.Item key={d.id}>
                {d.name}{' '}
                <Badge variant="light" size="sm">
                  {d.why === 'owner' ? 'yours' : 'you use it'}
                </Badge>
              </List.Item>
            ))}
          </List>
        ) : (
          <Text size="sm">No device of yours is known here. Call your IT provider.</Text>
        )}
        {!me.entraRead && (
          <Alert color="yellow" mt="xs" title="Your devices from Microsoft Entra could not be read">
            Only devices you are the primary user of are listed. Sign out and in again later, or call your IT provider.
          </Alert>
        )}
      </Card>
      {answer?.status === 'revealed' ? (
        <Stack gap="sm">
          <Text fw={600}>Recovery key{answer.key.device ? ` of ${answer.key.device}` : ''}</Text>
          <PasswordGroups password={answer.key.recoveryPassword} />
          <Alert color="blue" icon={<IconInfoCircle size={18} />}>
            This key will be changed after use. Your IT provider has been told that you used it.
          </Alert>
          <Button variant="default" onClick={() => setAnswer(null)}>
            Hide the key
          </Button>
        </Stack>
      ) : (
        <form onSubmit={submit}>
          <Stack gap="sm">
            <TextInput
              label="Key ID (first 8 characters)"
              description="As shown on the blue recovery screen, e.g. 4290B6C0"
              value={keyId}
              onChange={(e) => setKeyId(e.currentTarget.value)}
              error={keyIdError}
              maxLength={12}
              autoComplete="off"
              autoCapitalize="characters"
              size="lg"
              styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)', letterSpacing: '0.1em' } }}
            />
            <Textarea label="Why do you need the key?" value={reason} onChange={(e) => setReason(e.currentTarget.value)} minRows={2} maxLength={300} />
            {answer?.status === 'not_found' && (
              <Alert color="yellow" title="No key for that ID on your devices">
                Check the key ID on the screen, or call your IT provider.
              </Alert>
            )}
            {reveal.isError && <Alert color="red">{messageOf(reveal.error)}</Alert>}
            <Button type="submit" size="lg" loading={reveal.isPending} disabled={compact.length !== 8 || !!keyIdError || reason.trim().length < 3}>
              Show my key
            </Button>
            <Text size="xs" c="dimmed">
              You can try {me.limits.attemptsPerHour} key IDs an hour and get {me.limits.revealsPerDay} keys a day.{' '}
              <Anchor
                component="button"
                type="button"
                size="xs"
                onClick={() =>
                  void api.post('/api/v1/recover/sign-out', { quiet401: true }).finally(() => {
                    recoverCsrf.clear();
                    window.location.assign('/recover');
                  })
                }
              >
                Sign out
              </Anchor>
            </Text>
          </Stack>
        </form>
      )}
    </Stack>
  );
}
