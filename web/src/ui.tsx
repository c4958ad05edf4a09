import type { ReactNode } from 'react';
import { Alert, Button, Center, Code, CopyButton, Group, Loader, Stack, Text, ThemeIcon, Title } from '@mantine/core';
import { IconAlertTriangle, IconCheck, IconCopy, IconInbox } from '@tabler/icons-react';
import { ApiError } from './api';

/** Loading, empty and error states, the same everywhere. */
export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <Center py="xl" role="status" aria-live="polite">
      <Group gap="sm">
        <Loader size="sm" />
        <Text c="dimmed" size="sm">
          {label}
        </Text>
      </Group>
    </Center>
  );
}

export function Empty({ title, children, icon }: { title: string; children?: ReactNode; icon?: ReactNode }) {
  return (
    <Center py="xl">
      <Stack align="center" gap={6} maw={460} ta="center">
        <ThemeIcon variant="light" size={44} radius="xl" color="gray" aria-hidden>
          {icon ?? <IconInbox size={24} />}
        </ThemeIcon>
        <Text fw={600}>{title}</Text>
        {children && (
          <Text c="dimmed" size="sm" component="div">
            {children}
          </Text>
        )}
      </Stack>
    </Center>
  );
}

export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return 'Something went wrong.';
}

export function ErrorState({ error, retry, title = 'This could not be loaded' }: { error: unknown; retry?: () => void; title?: string }) {
  return (
    <Alert color="red" variant="light" title={title} icon={<IconAlertTriangle size={18} />} role="alert">
      <Stack gap="xs">
        <Text size="sm">{messageOf(error)}</Text>
        {retry && (
          <Group>
            <Button size="xs" variant="light" color="red" onClick={retry}>
              Try again
            </Button>
          </Group>
        )}
      </Stack>
    </Alert>
  );
}

export function PageTitle({ children, right, sub }: { children: ReactNode; right?: ReactNode; sub?: ReactNode }) {
  return (
    <Group justify="space-between" align="flex-end" mb="md" wrap="wrap" gap="sm">
      <div>
        <Title order={1} fz={{ base: 22, sm: 26 }}>
          {children}
        </Title>
        {sub && (
          <Text c="dimmed" size="sm" component="div">
            {sub}
          </Text>
        )}
      </div>
      {right}
    </Group>
  );
}

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const df = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
export const fmtDateTime = (iso: string | null | undefined) => (iso ? dtf.format(new Date(iso)) : '—');
export const fmtDate = (iso: string | null | undefined) => (iso ? df.format(new Date(iso)) : '—');
export function fmtAgo(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 90) return 'just now';
  if (s < 3600 * 1.5) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 1.5) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export const SOURCE_LABEL: Record<string, string> = { import: 'Import', agent: 'Agent', entra: 'Entra ID', ad: 'Active Directory' };
export const STATE_COLOR: Record<string, string> = { active: 'green', disclosed: 'orange', rotated: 'gray', superseded: 'gray', conflict: 'red' };

/** A key ID shown as Windows shows it on the recovery screen. */
export const fmtKeyId = (k: string | null) => (k ? k.toUpperCase() : 'no key ID');

/** A copy button that says "Copied" for a moment; `label` names what it copies for screen readers. */
export function CopyValue({ value, label, text = 'Copy' }: { value: string; label?: string; text?: string }) {
  return (
    <CopyButton value={value}>
      {({ copied, copy }) => (
        <Button
          size="xs"
          variant="light"
          onClick={copy}
          aria-label={label ? `${copied ? 'Copied' : text}: ${label}` : undefined}
          leftSection={copied ? <IconCheck size={14} /> : <IconCopy size={14} />}
        >
          {copied ? 'Copied' : text}
        </Button>
      )}
    </CopyButton>
  );
}

/** A secret shown once (API and enrollment tokens), with a copy button. */
export function SecretOnce({ title, secret, children }: { title: string; secret: string; children?: ReactNode }) {
  return (
    <Alert color="green" variant="light" title={title}>
      <Stack gap="xs">
        <Text size="sm">Copy it now: it is shown only once and Keywarden keeps only a hash.</Text>
        <Group gap="xs" wrap="nowrap" align="flex-start">
          <Code block className="kw-code" style={{ flex: 1 }} data-testid="secret-once">
            {secret}
          </Code>
          <CopyValue value={secret} />
        </Group>
        {children}
      </Stack>
    </Alert>
  );
}

/**
 * Code to paste (a command, a script's first lines): a titled block that scrolls sideways on a
 * phone instead of widening the page, reachable by keyboard, with its own copy button.
 */
export function Snippet({ title, code, description }: { title: string; code: string; description?: ReactNode }) {
  return (
    <div className="kw-snippet">
      <Group justify="space-between" gap="xs" wrap="nowrap" mb={4}>
        <Text size="sm" fw={600}>
          {title}
        </Text>
        <CopyValue value={code} label={title} />
      </Group>
      {description && (
        <Text size="sm" c="dimmed" mb={4}>
          {description}
        </Text>
      )}
      <Code block tabIndex={0} aria-label={title} data-testid="snippet" className="kw-snippet-code">
        {code}
      </Code>
    </div>
  );
}

/**
 * The end of every modal form: what went wrong (in the server's words), then Cancel and the submit
 * button, which shows progress while the request runs.
 */
export function FormFooter({ error, onCancel, submitting, submit }: { error: unknown; onCancel: () => void; submitting: boolean; submit: ReactNode }) {
  return (
    <>
      {!!error && (
        <Alert color="red" role="alert">
          {messageOf(error)}
        </Alert>
      )}
      <Group justify="flex-end">
        <Button variant="default" onClick={onCancel}>
          Cancel
        </Button>
        <Button type="submit" loading={submitting}>
          {submit}
        </Button>
      </Group>
    </>
  );
}
