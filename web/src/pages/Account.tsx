import { useEffect, useRef, useState, type FormEvent } from 'react';
import QRCode from 'qrcode';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { Alert, Button, Center, Code, Group, List, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { api, csrf, type Answer, type Me } from '../api';
import { CopyValue, messageOf } from '../ui';
import { PasskeysSection } from '../passkeys';

/**
 * The otpauth URI as a QR code, drawn here in the browser: the URI (it holds the secret) is never
 * sent anywhere to be rendered, never put in an address and never logged.
 */
function OtpQrCode({ uri }: { uri: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!canvas.current) return;
    // Dark on white whatever the theme: scanners want the contrast, and a quiet zone of 4 modules.
    QRCode.toCanvas(canvas.current, uri, { errorCorrectionLevel: 'M', margin: 4, scale: 5, color: { dark: '#000000', light: '#ffffff' } }).catch(() =>
      setFailed(true),
    );
  }, [uri]);
  if (failed) return <Text size="sm">The QR code could not be drawn; type the setup key below instead.</Text>;
  return (
    <canvas
      ref={canvas}
      role="img"
      aria-label="QR code for your authenticator app: scan it with the app, or type the setup key shown below"
      data-testid="mfa-qr"
      style={{ display: 'block', maxWidth: '100%', height: 'auto', imageRendering: 'pixelated' }}
    />
  );
}

/** Setting up an authenticator app: start (secret), confirm with a code, keep the recovery codes. */
export function MfaSetup({ onDone }: { onDone?: () => void }) {
  const qc = useQueryClient();
  const [secret, setSecret] = useState<Answer<'/api/v1/me/mfa', 'post'> | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [code, setCode] = useState('');
  const begin = useMutation({ mutationFn: () => api.post('/api/v1/me/mfa'), onSuccess: setSecret, gcTime: 0 });
  const confirm = useMutation({
    mutationFn: () => api.post('/api/v1/me/mfa/confirm', { body: { code: code.replace(/\s+/g, '') } }),
    onSuccess: (r) => {
      setCodes(r.recoveryCodes);
      setSecret(null);
      setCode('');
    },
    gcTime: 0,
  });

  if (codes) {
    return (
      <Stack>
        <Alert color="green" variant="light" title="Authenticator app set up">
          Keep these one-time recovery codes somewhere safe (a password manager). Each signs you in once if you lose your phone. They are shown only now.
        </Alert>
        <Paper withBorder p="md">
          <List className="kw-mono" spacing={4}>
            {codes.map((c) => (
              <List.Item key={c}>{c}</List.Item>
            ))}
          </List>
        </Paper>
        <Group>
          <Button
            onClick={() => {
              setCodes(null);
              void qc.invalidateQueries({ queryKey: ['me'] });
              onDone?.();
            }}
          >
            I have saved them
          </Button>
        </Group>
      </Stack>
    );
  }
  if (!secret) {
    return (
      <Stack gap="sm">
        <Text size="sm">Use an authenticator app (Microsoft Authenticator, Google Authenticator, 1Password…). Revealing keys asks for a fresh code.</Text>
        {begin.error && (
          <Alert color="red" role="alert">
            {messageOf(begin.error)}
          </Alert>
        )}
        <Group>
          <Button onClick={() => begin.mutate()} loading={begin.isPending}>
            Set up an authenticator app
          </Button>
        </Group>
      </Stack>
    );
  }
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        confirm.mutate();
      }}
    >
      <Stack gap="sm">
        <Text size="sm">
          Scan this QR code with your authenticator app (or type the setup key, or open the link on the phone itself), then type the code it shows.
        </Text>
        <OtpQrCode uri={secret.otpauthUri} />
        <div>
          <Text size="xs" c="dimmed">
            Setup key
          </Text>
          <Code block className="kw-code" data-testid="mfa-setup-key">
            {secret.secret.replace(/(.{4})/g, '$1 ').trim()}
          </Code>
          <Group mt={4}>
            <CopyValue value={secret.secret} label="setup key" />
          </Group>
        </div>
        <Text size="sm">
          <a href={secret.otpauthUri}>Open in an authenticator app on this device</a>
        </Text>
        <TextInput
          label="Authentication code"
          value={code}
          onChange={(e) => setCode(e.currentTarget.value)}
          autoComplete="one-time-code"
          required
          maxLength={20}
          className="kw-mono"
          autoFocus
        />
        {confirm.error && (
          <Alert color="red" role="alert">
            {messageOf(confirm.error)}
          </Alert>
        )}
        <Group>
          <Button type="submit" loading={confirm.isPending}>
            Confirm
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** The owner requires a second factor and this person has none yet: nothing else until it is set up. */
export function MfaEnrolPage({ me }: { me: Me }) {
  const qc = useQueryClient();
  const signOut = async () => {
    await api.post('/api/v1/auth/logout').catch(() => undefined);
    csrf.clear();
    qc.clear();
    qc.setQueryData(['session-state'], { needed: false, signedIn: false });
    qc.setQueryData(['me'], null);
  };
  return (
    <main>
      <Center mih="100dvh" p="md">
        <Paper withBorder p="xl" maw={480} w="100%" radius="lg">
          <Stack>
            <Title order={1} fz={22}>
              Set up two-step verification
            </Title>
            <Text size="sm" c="dimmed">
              The owner of this vault requires a second factor for everyone: an authenticator app or a passkey. Signed in as {me.user?.email ?? me.actor.name}.
            </Text>
            <MfaSetup onDone={() => void qc.invalidateQueries({ queryKey: ['me'] })} />
            <PasskeysSection me={me} />
            <Group>
              <Button variant="subtle" onClick={() => void signOut()}>
                Sign out
              </Button>
            </Group>
          </Stack>
        </Paper>
      </Center>
    </main>
  );
}

export function AccountTab({ me }: { me: Me }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [disableCode, setDisableCode] = useState('');
  const qc = useQueryClient();
  const change = useMutation({
    mutationFn: () => api.post('/api/v1/me/password', { body: { currentPassword: current, newPassword: next } }),
    onSuccess: () => {
      notifications.show({ color: 'green', message: 'Password changed. Sign in again with the new one.' });
      csrf.clear();
      qc.clear();
      qc.setQueryData(['session-state'], { needed: false, signedIn: false });
      qc.setQueryData(['me'], null);
    },
    gcTime: 0,
  });
  const disable = useMutation({
    mutationFn: () => api.del('/api/v1/me/mfa', { body: { code: disableCode.replace(/\s+/g, '') } }),
    onSuccess: () => {
      setDisableCode('');
      notifications.show({ message: 'Authenticator app removed.' });
      void qc.invalidateQueries({ queryKey: ['me'] });
    },
  });
  if (me.actor.type !== 'user') return <Text>Signed in with an API token: no account settings.</Text>;
  return (
    <Stack gap="xl" maw={520}>
      <section aria-labelledby="acc-mfa">
        <Title order={2} fz="lg" id="acc-mfa" mb="xs">
          Two-step verification
        </Title>
        {me.user?.totpEnabled ? (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              disable.mutate();
            }}
          >
            <Stack gap="sm">
              <Text size="sm">An authenticator app is set up for your account.</Text>
              <TextInput
                label="Authentication code"
                description="A current code, to remove the app"
                value={disableCode}
                onChange={(e) => setDisableCode(e.currentTarget.value)}
                maxLength={20}
              />
              {disable.error && (
                <Alert color="red" role="alert">
                  {messageOf(disable.error)}
                </Alert>
              )}
              <Group>
                <Button type="submit" variant="light" color="red" loading={disable.isPending} disabled={!disableCode}>
                  Remove authenticator app
                </Button>
              </Group>
            </Stack>
          </form>
        ) : (
          <MfaSetup />
        )}
      </section>
      <PasskeysSection me={me} />
      <section aria-labelledby="acc-pw">
        <Title order={2} fz="lg" id="acc-pw" mb="xs">
          Change password
        </Title>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            change.mutate();
          }}
        >
          <Stack gap="sm">
            {/* Lets password managers file the new password under the right account. */}
            <input type="email" name="username" autoComplete="username" value={me.user?.email ?? ''} readOnly hidden />
            <PasswordInput
              label="Current password"
              value={current}
              onChange={(e) => setCurrent(e.currentTarget.value)}
              autoComplete="current-password"
              required
            />
            <PasswordInput
              label="New password"
              description="At least 12 characters. Every session ends, this one too."
              value={next}
              onChange={(e) => setNext(e.currentTarget.value)}
              autoComplete="new-password"
              required
              minLength={12}
            />
            {change.error && (
              <Alert color="red" role="alert">
                {messageOf(change.error)}
              </Alert>
            )}
            <Group>
              <Button type="submit" loading={change.isPending}>
                Change password
              </Button>
            </Group>
          </Stack>
        </form>
      </section>
    </Stack>
  );
}
