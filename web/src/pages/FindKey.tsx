import { useEffect, useRef, useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Link } from 'wouter';
import { Alert, Anchor, Badge, Button, Group, Kbd, Loader, Paper, Stack, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconAlertCircle, IconKey, IconSearch, IconSearchOff } from '@tabler/icons-react';
import { api, type Answer, type KeySummary } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, PageTitle, SOURCE_LABEL, STATE_COLOR, fmtDate, fmtKeyId } from '../ui';
import { MayNotUnlock, MayNotUnlockBadge, RevealDialog } from './Reveal';

/**
 * How many key-ID digits were typed, for the "keep typing" hint and to search at once: the server
 * decides what the text means (it forgives spaces and other separators, O for 0, I / l for 1).
 */
export function keyIdDigits(text: string): string | null {
  const s = text
    .trim()
    .replace(/^\{/, '')
    .replace(/\}$/, '')
    .replace(/[\s._:/\\,;'"`\u2010-\u2015\u2212\uFE58\uFE63\uFF0D-]/g, '')
    .replace(/[oO]/g, '0')
    .replace(/[Iil]/g, '1');
  if (!/^[0-9a-f]+$/i.test(s)) return null;
  return s;
}

export function FindKeyPage() {
  const { can } = useSession();
  const [text, setText] = useState('');
  const [settled] = useDebouncedValue(text.trim(), 120);
  // A key ID (8+ hex digits) is searched at once, on every keystroke: it is one indexed range
  // query, and the user on the phone is waiting (bench/console-search.ts measures this). Names,
  // serials and users wait for a pause in typing.
  const typedDigits = keyIdDigits(text.trim());
  const debounced = typedDigits !== null && typedDigits.length >= 8 ? text.trim() : settled;
  const [revealing, setRevealing] = useState<KeySummary | null>(null);
  const input = useRef<HTMLInputElement>(null);
  // People who may list keys search everything; helpdesk (and a client's own staff) by key ID only.
  const browse = can('key:list');
  const digits = keyIdDigits(debounced);
  const isKeyId = digits !== null && digits.length >= 8;
  // A short run of plain hex digits is the start of a key ID: wait for 8 (a name like "lab" is searched at once).
  const shortHex = /^[0-9a-f-]+$/i.test(debounced) && /\d/.test(debounced) && (digits?.length ?? 0) < 8;
  const enabled = browse ? debounced.length >= 2 && !shortHex : isKeyId;

  useEffect(() => input.current?.focus(), []);

  const search = useQuery({
    queryKey: ['find-key', browse, debounced],
    queryFn: async (): Promise<Found> => {
      // A key ID goes to the lookup for every role that may reveal: it ranks several records of one
      // key ID ("try this one first"). An auditor (lists, never reveals) keeps the plain search.
      if (browse && !(isKeyId && can('key:lookup'))) {
        const keys = await api.get('/api/v1/keys', { params: { query: { q: debounced, limit: 51 } } });
        return { matches: keys.length, keys: keys.slice(0, 50), tryFirst: null };
      }
      return api.get('/api/v1/keys/lookup', { params: { query: { keyId: debounced } } });
    },
    enabled,
    placeholderData: keepPreviousData,
    staleTime: 5_000,
  });

  const data = enabled ? search.data : undefined;
  const typing = text.trim() !== debounced || (search.isFetching && enabled);

  return (
    <Stack gap="md" maw={980}>
      <PageTitle
        sub={
          browse
            ? 'Type the first 8 characters of the key ID the user reads from the recovery screen, or a device name, serial number or user.'
            : 'Type the key ID the user reads from the recovery screen: at least its first 8 characters.'
        }
      >
        Find a key
      </PageTitle>
      <TextInput
        id="find-key"
        ref={input}
        type="search"
        label="Find a key"
        description={
          <>
            Key ID (e.g. 4290B6C0){browse ? ', device name, serial or user' : ''}. Press <Kbd>/</Kbd> anywhere to come back here.
          </>
        }
        placeholder={browse ? '4290B6C0 or LAPTOP-042' : '4290B6C0'}
        size="lg"
        value={text}
        onChange={(e) => setText(e.currentTarget.value)}
        leftSection={<IconSearch size={20} aria-hidden />}
        rightSection={typing ? <Loader size="xs" aria-label="Searching" /> : null}
        autoComplete="off"
        spellCheck={false}
        maxLength={100}
        classNames={{ input: 'kw-mono' }}
      />
      <div aria-live="polite">
        <Results
          text={debounced}
          browse={browse}
          isKeyId={isKeyId}
          digits={digits}
          enabled={enabled}
          data={data}
          error={search.error}
          pending={search.isPending && enabled}
          onReveal={setRevealing}
          retry={() => void search.refetch()}
        />
      </div>
      {revealing && <RevealDialog keySummary={revealing} onClose={() => setRevealing(null)} />}
    </Stack>
  );
}

type Found = Answer<'/api/v1/keys/lookup', 'get'>;

function Results(props: {
  text: string;
  browse: boolean;
  isKeyId: boolean;
  digits: string | null;
  enabled: boolean;
  data: Found | undefined;
  error: unknown;
  pending: boolean;
  retry: () => void;
  onReveal: (k: KeySummary) => void;
}) {
  const { text, browse, isKeyId, digits, enabled, data, error, pending, onReveal, retry } = props;
  if (!text) {
    return (
      <Empty title="Ready when the phone rings" icon={<IconKey size={24} />}>
        The recovery screen shows “Recovery key ID: 4290B6C0-…”. Ask the user to read the first 8 characters.
      </Empty>
    );
  }
  if (!enabled) {
    return (
      <Text c="dimmed" size="sm">
        {digits !== null && !browse
          ? `Keep typing: ${digits.length} of at least 8 characters of the key ID.`
          : !browse
            ? 'Type the key ID (hex digits 0-9, A-F), at least its first 8 characters.'
            : `Keep typing: at least 8 characters of a key ID, or 2 of a device name, serial or user.`}
      </Text>
    );
  }
  if (error) return <ErrorState error={error} retry={retry} title="The search failed" />;
  if (pending || !data) return null;
  if (data.matches === 0) {
    return isKeyId ? (
      <Alert color="yellow" variant="light" icon={<IconSearchOff size={18} />} title="No key with that ID">
        <Text size="sm">Check with the user:</Text>
        <ul>
          <li>Read the key ID again: 0 (zero) and O, 8 and B, 1 and I are easy to confuse; key IDs only use 0-9 and A-F.</li>
          <li>The screen may show another drive's key ID (a data drive, a USB stick).</li>
          <li>The key may be with a client you cannot see, or was never escrowed: check the device in its client's list, or ask an admin.</li>
        </ul>
      </Alert>
    ) : (
      <Empty title="Nothing matches" icon={<IconSearchOff size={24} />}>
        No device name, serial number or user contains “{text}”, and it is not a key ID (8+ hex digits).
      </Empty>
    );
  }
  const several = isKeyId && data.matches > 1;
  return (
    <Stack gap="sm">
      {several && (
        <Alert color="orange" variant="light" icon={<IconAlertCircle size={18} />} title="Several keys match">
          {digits?.length === 32 ? (
            <>
              {data.matches} stored keys have this full key ID (a conflict, or several clients). They are listed in the order to try them: reveal the one marked
              “Try this one first”; if it does not unlock, the next.
            </>
          ) : (
            <>
              {data.matches > 50 ? 'More than 50' : data.matches} keys start with {digits?.slice(0, 32).toUpperCase()}: ask for more digits of the key ID
              {data.keys.length ? ', or compare device and user below' : ''}.
            </>
          )}
        </Alert>
      )}
      {!several && !isKeyId && (
        <Text size="sm" c="dimmed">
          {data.matches > 50 ? 'The first 50 keys' : `${data.matches} key${data.matches === 1 ? '' : 's'}`} on devices matching “{text}”.
        </Text>
      )}
      {data.keys.length > 0 && (
        <ul className="kw-results" aria-label="Matching keys">
          {data.keys.map((k) => (
            <ResultItem key={k.id} k={k} onReveal={onReveal} linkDevice={browse} tryFirst={data.tryFirst === k.id} />
          ))}
        </ul>
      )}
    </Stack>
  );
}

function ResultItem({ k, onReveal, linkDevice, tryFirst }: { k: KeySummary; onReveal: (k: KeySummary) => void; linkDevice: boolean; tryFirst: boolean }) {
  const { can } = useSession();
  const sources = [...new Set(k.sources.map((s) => SOURCE_LABEL[s.type] ?? s.type))];
  return (
    <Paper component="li" withBorder p="sm" radius="md">
      <Group justify="space-between" wrap="wrap" gap="sm" align="center">
        <Stack gap={2} miw={0} style={{ flex: '1 1 320px' }}>
          <Group gap="xs" wrap="wrap">
            <Text fw={650} size="md">
              {k.device ? (
                linkDevice ? (
                  <Anchor component={Link} href={`/devices/${k.device.id}`}>
                    {k.device.name}
                  </Anchor>
                ) : (
                  k.device.name
                )
              ) : (
                'Unknown device'
              )}
            </Text>
            <Text size="sm" c="dimmed">
              {k.client.name}
            </Text>
            <Badge color={STATE_COLOR[k.state] ?? 'gray'} variant="light" size="sm">
              {k.state}
            </Badge>
            {k.mayNotUnlock && <MayNotUnlockBadge />}
            {tryFirst && (
              <Badge color="blue" variant="filled" size="sm">
                Try this one first
              </Badge>
            )}
          </Group>
          <Text className="kw-mono" size="sm">
            {fmtKeyId(k.keyId)}
          </Text>
          <Text size="xs" c="dimmed">
            Volume {k.volume?.mountPoint ?? '?'} ({k.volume?.type ?? 'unknown'}) · key from {fmtDate(k.createdAt ?? k.firstSeenAt)} · source
            {sources.length === 1 ? '' : 's'}: {sources.join(', ') || 'none'}
          </Text>
          {k.mayNotUnlock && <MayNotUnlock k={k} />}
        </Stack>
        {/* Helpdesk reveals by key ID (key:lookup) without the browsing permission key:reveal. */}
        {(can('key:reveal', k.client.id) || can('key:lookup', k.client.id)) && (
          <Button onClick={() => onReveal(k)} aria-label="Reveal" leftSection={<IconKey size={16} aria-hidden />}>
            Reveal
          </Button>
        )}
      </Group>
    </Paper>
  );
}
