import { useState, type FormEvent, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { useQueryClient } from '@tanstack/react-query';
import { useLocation } from 'wouter';
import { Alert, Button, Center, Divider, Group, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconKey, IconShieldLock } from '@tabler/icons-react';
import { api, ApiError, csrf, ssoStartUrl, type Answer } from '../api';
import { messageOf } from '../ui';
import { passkeysSupported, secondFactorWithPasskey, signInWithPasskey } from '../passkeys';

type LoginAnswer = Answer<'/api/v1/auth/login', 'post'> | Answer<'/api/v1/setup', 'post'>;

function Frame({ title, sub, children }: { title: string; sub?: ReactNode; children: ReactNode }) {
  return (
    <main>
      <Center mih="100dvh" p="md">
        <Paper withBorder shadow="sm" p="xl" w="100%" maw={400} radius="lg">
          <Stack gap="lg">
            <Group gap={8}>
              <IconShieldLock size={26} aria-hidden />
              <Text fw={700} size="lg">
                Keywarden
              </Text>
            </Group>
            <div>
              <Title order={1} fz={22}>
                {title}
              </Title>
              {sub && (
                <Text c="dimmed" size="sm" mt={4}>
                  {sub}
                </Text>
              )}
            </div>
            {children}
          </Stack>
        </Paper>
      </Center>
    </main>
  );
}

/** After sign-in or setup: keep the CSRF token, forget every cached answer, load who we are. */
function useSignedIn() {
  const qc = useQueryClient();
  const [, navigate] = useLocation();
  return async (r: LoginAnswer) => {
    csrf.set(r.csrfToken);
    qc.clear();
    qc.setQueryData(['session-state'], { needed: false, signedIn: true });
    await qc.fetchQuery({ queryKey: ['me'], queryFn: () => api.get('/api/v1/me') });
    navigate('/');
  };
}

/** Why a single sign-on came back to this page (the server's reason word, never the provider's text). */
const SSO_REASONS: Record<string, string> = {
  'no-account': 'There is no Keywarden account for you yet. Ask an owner to add you.',
  'no-mapping': 'Your account at the sign-in provider is not in a group that has access to Keywarden.',
  'mapping-no-longer-grants-access': 'Your account at the sign-in provider no longer has access to Keywarden. Your sessions have ended.',
  'account-disabled': 'Your Keywarden account is disabled. Ask an owner.',
  'no-verified-e-mail': 'The sign-in provider did not send a verified e-mail address. Ask an owner.',
  'tenant-not-allowed': "Your organisation's tenant is not allowed to sign in here.",
  'state-expired': 'The sign-in took too long. Try again.',
  'provider-unreachable': 'The sign-in provider cannot be reached. Try again later, or ask an owner.',
  'too-many-starts': 'Too many sign-ins were started from your address. Wait a few minutes and try again.',
  'provider-unavailable': 'This sign-in provider is not available.',
  'provider-refused': 'The sign-in provider did not sign you in.',
  'another-person': 'You signed in at the provider as someone else.',
  'no-mfa': 'The sign-in provider did not confirm a multi-factor sign-in.',
};
const ssoReason = () => {
  const r = new URLSearchParams(window.location.search).get('sso');
  return r ? (SSO_REASONS[r] ?? 'The single sign-on did not succeed. Try again.') : null;
};

/** "Sign in with …": one button per enabled provider (a navigation to the provider, not a fetch). */
function SsoButtons() {
  const providers = useQuery({ queryKey: ['sso-providers'], queryFn: () => api.get('/api/v1/auth/sso/providers', { quiet401: true }), staleTime: 60_000 });
  const list = providers.data?.providers ?? [];
  if (!list.length) return null;
  return (
    <>
      <Divider label="or" labelPosition="center" />
      {list.map((p) => (
        <Button key={p.id} component="a" href={ssoStartUrl(p.id)} variant="default" fullWidth>
          Sign in with {p.name}
        </Button>
      ))}
    </>
  );
}

export function LoginPage() {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [step, setStep] = useState<'password' | 'code'>('password');
  // Which second factors the password step said this account has.
  const [factors, setFactors] = useState<{ totp: boolean; passkey: boolean }>({ totp: true, passkey: false });
  const [error, setError] = useState<string | null>(ssoReason);
  const [busy, setBusy] = useState(false);
  const signedIn = useSignedIn();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api.post('/api/v1/auth/login', {
        body: { email, password, ...(step === 'code' ? { code: code.replace(/\s+/g, '') } : {}) },
        quiet401: true,
      });
      setPassword('');
      await signedIn(r);
    } catch (err) {
      if (err instanceof ApiError && err.details?.mfaRequired) {
        setFactors({ totp: err.details.totp !== false, passkey: err.details.passkey === true });
        setStep('code');
        setError(null);
      } else {
        setError(messageOf(err));
        if (step === 'code') setCode('');
      }
    } finally {
      setBusy(false);
    }
  };

  const withPasskey = async (how: () => Promise<LoginAnswer>) => {
    setBusy(true);
    setError(null);
    try {
      const r = await how();
      setPassword('');
      await signedIn(r);
    } catch (err) {
      const name = err instanceof Error ? err.name : '';
      setError(name === 'NotAllowedError' ? 'The passkey request was cancelled or timed out. Try again.' : messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  const passkeyButton = (label: string, how: () => Promise<LoginAnswer>) =>
    passkeysSupported() && (
      <Button variant="light" leftSection={<IconKey size={16} aria-hidden />} loading={busy} fullWidth onClick={() => void withPasskey(how)}>
        {label}
      </Button>
    );

  if (step === 'code' && !factors.totp) {
    return (
      <Frame title="Two-step verification" sub="Confirm with your passkey: your fingerprint, face, device PIN or security key.">
        <Stack>
          {passkeyButton('Use your passkey', () => secondFactorWithPasskey(email, password))}
          {error && (
            <Alert color="red" variant="light" role="alert">
              {error}
            </Alert>
          )}
          <Button
            variant="subtle"
            onClick={() => {
              setStep('password');
              setPassword('');
              setError(null);
            }}
          >
            Use another account
          </Button>
        </Stack>
      </Frame>
    );
  }

  if (step === 'code') {
    return (
      <Frame title="Two-step verification" sub="Enter the 6-digit code from your authenticator app, or one of your recovery codes.">
        <form onSubmit={(e) => void submit(e)}>
          <Stack>
            <TextInput
              label="Authentication code"
              value={code}
              onChange={(e) => setCode(e.currentTarget.value)}
              autoComplete="one-time-code"
              inputMode="text"
              autoFocus
              required
              maxLength={20}
              classNames={{ input: 'kw-mono' }}
            />
            {error && (
              <Alert color="red" variant="light" role="alert">
                {error}
              </Alert>
            )}
            <Button type="submit" loading={busy} fullWidth>
              Verify
            </Button>
            {factors.passkey && passkeyButton('Use your passkey instead', () => secondFactorWithPasskey(email, password))}
            <Button
              variant="subtle"
              onClick={() => {
                setStep('password');
                setCode('');
                setPassword('');
                setError(null);
              }}
            >
              Use another account
            </Button>
          </Stack>
        </form>
      </Frame>
    );
  }

  return (
    <Frame title="Sign in" sub="BitLocker recovery-key vault">
      <form onSubmit={(e) => void submit(e)}>
        <Stack>
          <TextInput
            label="Email"
            type="email"
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
            autoComplete="username"
            autoFocus
            required
            maxLength={254}
          />
          <PasswordInput
            label="Password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            autoComplete="current-password"
            required
            maxLength={256}
          />
          {error && (
            <Alert color="red" variant="light" role="alert">
              {error}
            </Alert>
          )}
          <Button type="submit" loading={busy} fullWidth>
            Sign in
          </Button>
          {passkeyButton('Sign in with a passkey', signInWithPasskey)}
          <SsoButtons />
        </Stack>
      </form>
    </Frame>
  );
}

export function SetupPage() {
  const [setupToken, setSetupToken] = useState('');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const signedIn = useSignedIn();
  const mismatch = confirm.length > 0 && confirm !== password;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== confirm) return setError('The two passwords are not the same.');
    setBusy(true);
    setError(null);
    try {
      const r = await api.post('/api/v1/setup', { body: { setupToken: setupToken.trim(), email, password }, quiet401: true });
      setSetupToken('');
      setPassword('');
      setConfirm('');
      await signedIn(r);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Frame title="Create the owner" sub="Keywarden has no users yet. The first account is the vault's owner: it manages users, settings and every client.">
      <form onSubmit={(e) => void submit(e)}>
        <Stack>
          <PasswordInput
            label="Setup token"
            description="Printed in the terminal where keywarden serve (or keywarden init) runs on the server."
            value={setupToken}
            onChange={(e) => setSetupToken(e.currentTarget.value)}
            autoComplete="off"
            autoFocus
            required
            maxLength={200}
          />
          <TextInput
            label="Email"
            type="email"
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
            autoComplete="username"
            required
            maxLength={254}
          />
          <PasswordInput
            label="Password"
            description="At least 12 characters; a passphrase is best."
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            autoComplete="new-password"
            required
            minLength={12}
            maxLength={256}
          />
          <PasswordInput
            label="Confirm password"
            value={confirm}
            onChange={(e) => setConfirm(e.currentTarget.value)}
            autoComplete="new-password"
            required
            maxLength={256}
            error={mismatch ? 'The two passwords are not the same.' : undefined}
          />
          {error && (
            <Alert color="red" variant="light" role="alert">
              {error}
            </Alert>
          )}
          <Button type="submit" loading={busy} fullWidth>
            Create owner
          </Button>
        </Stack>
      </form>
    </Frame>
  );
}
