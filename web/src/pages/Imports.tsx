import { useEffect, useId, useRef, useState, type DragEvent } from 'react';
import { Link, useSearch } from 'wouter';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { ActionIcon, Alert, Anchor, Badge, Button, Group, List, NativeSelect, Paper, SimpleGrid, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { IconAlertTriangle, IconCheck, IconEye, IconFileImport, IconFileText, IconUpload, IconX } from '@tabler/icons-react';
import { api, ApiError, type Answer } from '../api';
import { useSession } from '../session';
import { Empty, PageTitle, messageOf } from '../ui';

/**
 * Import keys from files: pick the client (and a device name for files that do not carry one),
 * drop or choose files, see what a dry run would add, then import. Every rejected line is listed
 * with its file, line and reason; no recovery password is ever shown.
 */

type ImportAnswer = Answer<'/api/v1/imports', 'post'>;
type ImportFormat = NonNullable<ImportAnswer['files'][number]['format']>;

const FORMAT_LABEL: Record<ImportFormat, string> = {
  txt: 'BitLocker recovery key file (.txt)',
  'manage-bde': 'manage-bde output',
  csv: 'CSV',
  json: 'JSON',
};
const FORMATS: { value: ImportFormat | 'auto'; label: string }[] = [
  { value: 'auto', label: 'Recognise each file (recommended)' },
  ...(Object.keys(FORMAT_LABEL) as ImportFormat[]).map((f) => ({ value: f, label: FORMAT_LABEL[f] })),
];

/** The server's multipart limit on the number of files in one upload (src/app.ts). */
const MAX_FILES = 20;
/** Files that are certainly not key files: said at once instead of after an upload. */
const NOT_KEY_FILES = /\.(xlsx?|xlsm|ods|docx?|pdf|zip|7z|rar|gz|png|jpe?g|gif|bmp|exe|msi)$/i;

const sizeOf = (n: number) => (n < 1024 ? `${n} bytes` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`);
/** Belt and braces: the server never puts password digits in a reason; a run of digit groups is masked anyway. */
const safeReason = (r: string) => {
  const masked = r.replace(/\d{6}(?:[-\s]?\d{6})+/g, '••••••-…');
  return masked.charAt(0).toUpperCase() + masked.slice(1);
};

function errorText(e: unknown): string {
  if (e instanceof ApiError && e.status === 413)
    return `A file is larger than this server accepts in one upload, or there are more than ${MAX_FILES} files. Split large exports into smaller files and import them in turns.`;
  return messageOf(e);
}

export function ImportsPage() {
  const { clients, can } = useSession();
  const qc = useQueryClient();
  const search = useSearch();
  const importable = clients.filter((c) => can('key:import', c.id));
  const wanted = new URLSearchParams(search).get('client');
  // ?client=<id> (from a client's page) chooses the client; the list arrives after the first render.
  const [picked, setClientId] = useState<string | null>(null);
  const clientId = picked ?? (wanted && importable.some((c) => c.id === wanted) ? wanted : '');
  const [device, setDevice] = useState('');
  const [format, setFormat] = useState<ImportFormat | 'auto'>('auto');
  const [files, setFiles] = useState<File[]>([]);
  const [problems, setProblems] = useState<string[]>([]);
  const [clientError, setClientError] = useState<string | null>(null);
  const [preview, setPreview] = useState<ImportAnswer | null>(null);
  const [result, setResult] = useState<ImportAnswer | null>(null);
  const [dragging, setDragging] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const checkTitle = useRef<HTMLHeadingElement>(null);
  const dropHelp = useId();

  // A preview appears at the end of the page: bring it into view (and to a screen reader's attention).
  useEffect(() => {
    if (preview) checkTitle.current?.focus();
  }, [preview]);

  const client = importable.find((c) => c.id === clientId);
  const run = useMutation({
    mutationFn: (dryRun: boolean) => {
      const form = new FormData();
      // Fields first: the server reads them before the files.
      form.append('client', clientId);
      if (device.trim()) form.append('device', device.trim());
      form.append('format', format);
      form.append('dryRun', String(dryRun));
      for (const f of files) form.append('file', f, f.name);
      return api.upload('/api/v1/imports', form);
    },
    onSuccess: (answer) => {
      if (answer.dryRun) setPreview(answer);
      else {
        setResult(answer);
        setPreview(null);
        void qc.invalidateQueries();
      }
    },
  });

  /** Any change to what would be sent makes an earlier preview stale. */
  const changed = () => {
    setPreview(null);
    run.reset();
  };

  const addFiles = (list: FileList | File[] | null) => {
    if (!list) return;
    const next = [...files];
    const bad: string[] = [];
    for (const f of Array.from(list)) {
      if (NOT_KEY_FILES.test(f.name)) bad.push(`${f.name} is not a key file Keywarden can read. Save spreadsheets as CSV; use the .txt files Windows saves.`);
      else if (f.size === 0) bad.push(`${f.name} is empty.`);
      else if (!next.some((x) => x.name === f.name && x.size === f.size && x.lastModified === f.lastModified)) next.push(f);
    }
    if (next.length > MAX_FILES) {
      bad.push(`Up to ${MAX_FILES} files can be imported at once; ${next.length - MAX_FILES} were left out. Import the rest afterwards.`);
      next.length = MAX_FILES;
    }
    setFiles(next);
    setProblems(bad);
    setResult(null);
    changed();
  };

  const onDrop = (e: DragEvent<HTMLDivElement>) => {
    e.preventDefault();
    setDragging(false);
    addFiles(e.dataTransfer.files);
  };

  const start = (dryRun: boolean) => {
    if (!clientId) {
      setClientError('Choose the client these keys belong to.');
      return;
    }
    if (files.length === 0) {
      setProblems(['Add at least one key file first.']);
      return;
    }
    run.mutate(dryRun);
  };

  const startOver = () => {
    setFiles([]);
    setProblems([]);
    setPreview(null);
    setResult(null);
    run.reset();
  };

  if (importable.length === 0) {
    return (
      <>
        <PageTitle>Import keys</PageTitle>
        <Empty title="There is no client to import into yet" icon={<IconFileImport size={24} />}>
          Keys always belong to a client.{' '}
          {can('client:manage') ? (
            <>
              Add one on the{' '}
              <Anchor component={Link} href="/clients">
                Clients
              </Anchor>{' '}
              page, then come back here.
            </>
          ) : (
            'Ask an administrator to add the client, then come back here.'
          )}
        </Empty>
      </>
    );
  }

  if (result) return <Results result={result} client={client} onMore={startOver} />;

  return (
    <Stack gap="md">
      <PageTitle sub="Add recovery keys from files. A preview shows what would change; nothing is stored until you press Import.">Import keys</PageTitle>

      <Paper withBorder p="md" component="section" aria-labelledby="import-where">
        <Title order={2} size="h4" id="import-where" mb="sm">
          1. Where the keys go
        </Title>
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="md">
          <NativeSelect
            label="Client"
            required
            value={clientId}
            error={clientError}
            onChange={(e) => {
              setClientId(e.currentTarget.value);
              setClientError(null);
              changed();
            }}
            data={[{ value: '', label: 'Choose a client…' }, ...importable.map((c) => ({ value: c.id, label: c.name }))]}
          />
          <TextInput
            label="Device name"
            description="For files that do not name their device (recovery key .txt files, manage-bde output)."
            placeholder="Optional, e.g. FRONTDESK-01"
            value={device}
            maxLength={200}
            onChange={(e) => {
              setDevice(e.currentTarget.value);
              changed();
            }}
          />
          <NativeSelect
            label="File format"
            value={format}
            onChange={(e) => {
              setFormat(e.currentTarget.value as ImportFormat | 'auto');
              changed();
            }}
            data={FORMATS}
          />
        </SimpleGrid>
      </Paper>

      <Paper withBorder p="md" component="section" aria-labelledby="import-files">
        <Title order={2} size="h4" id="import-files" mb="sm">
          2. Key files
        </Title>
        <div
          role="group"
          aria-label="Drop key files here"
          aria-describedby={dropHelp}
          data-dragging={dragging || undefined}
          onDragEnter={(e) => {
            e.preventDefault();
            setDragging(true);
          }}
          onDragOver={(e) => {
            e.preventDefault();
            e.dataTransfer.dropEffect = 'copy';
          }}
          onDragLeave={(e) => {
            if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setDragging(false);
          }}
          onDrop={onDrop}
          style={{
            border: `2px dashed ${dragging ? 'var(--mantine-color-blue-filled)' : 'var(--mantine-color-default-border)'}`,
            borderRadius: 'var(--mantine-radius-md)',
            background: dragging ? 'var(--mantine-color-blue-light)' : undefined,
            padding: 'var(--mantine-spacing-lg)',
          }}
        >
          <Stack align="center" gap="xs" ta="center">
            <IconUpload size={32} aria-hidden />
            <Text fw={600}>Drag key files here, or</Text>
            <Button variant="light" leftSection={<IconFileText size={16} />} onClick={() => input.current?.click()}>
              Choose files
            </Button>
            <input
              ref={input}
              type="file"
              multiple
              hidden
              accept=".txt,.csv,.json,.log,.out,text/plain,text/csv,application/json"
              onChange={(e) => {
                addFiles(e.currentTarget.files);
                e.currentTarget.value = '';
              }}
            />
            <Text size="sm" c="dimmed" component="div" id={dropHelp} ta="left">
              Keywarden reads:
              <List size="sm" spacing={2} mt={4}>
                <List.Item>BitLocker recovery key files (.txt) as Windows saves them, in any language</List.Item>
                <List.Item>manage-bde -protectors -get output saved as text</List.Item>
                <List.Item>CSV exports with a recovery password column (RMM tools, Intune, spreadsheets saved as CSV)</List.Item>
                <List.Item>JSON exports (Microsoft Graph, Get-BitLockerVolume, Keywarden)</List.Item>
              </List>
              Up to {MAX_FILES} files at once.
            </Text>
          </Stack>
        </div>

        {problems.length > 0 && (
          <Alert color="orange" variant="light" mt="sm" icon={<IconAlertTriangle size={18} />} title="Some files were not added" role="alert">
            <List size="sm">
              {problems.map((p) => (
                <List.Item key={p}>{p}</List.Item>
              ))}
            </List>
          </Alert>
        )}

        {files.length > 0 && (
          <Stack gap={4} mt="sm" component="ul" aria-label="Files to import" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
            {files.map((f) => (
              <Group key={`${f.name}:${f.size}:${f.lastModified}`} component="li" justify="space-between" wrap="nowrap" gap="xs">
                <Group gap={6} wrap="nowrap" style={{ minWidth: 0 }}>
                  <IconFileText size={16} aria-hidden style={{ flex: 'none' }} />
                  <Text size="sm" truncate>
                    {f.name}
                  </Text>
                  <Text size="xs" c="dimmed" style={{ flex: 'none' }}>
                    {sizeOf(f.size)}
                  </Text>
                </Group>
                <ActionIcon
                  variant="subtle"
                  color="gray"
                  aria-label={`Remove ${f.name}`}
                  onClick={() => {
                    setFiles(files.filter((x) => x !== f));
                    changed();
                  }}
                >
                  <IconX size={16} />
                </ActionIcon>
              </Group>
            ))}
          </Stack>
        )}
      </Paper>

      <Paper withBorder p="md" component="section" aria-labelledby="import-check">
        <Title order={2} size="h4" id="import-check" mb="sm" ref={checkTitle} tabIndex={-1}>
          3. Check, then import
        </Title>
        {run.isError && (
          <Alert color="red" variant="light" mb="sm" icon={<IconAlertTriangle size={18} />} title="The files were not imported" role="alert">
            {errorText(run.error)}
          </Alert>
        )}
        {!preview ? (
          <Group>
            <Button leftSection={<IconEye size={16} />} loading={run.isPending} onClick={() => start(true)}>
              Preview import
            </Button>
            <Text size="sm" c="dimmed">
              Reads the files and shows what would be added, already known and rejected. Nothing is stored.
            </Text>
          </Group>
        ) : (
          <Stack gap="sm">
            <Summary answer={preview} />
            <Group>
              <Button
                leftSection={<IconFileImport size={16} />}
                loading={run.isPending}
                disabled={preview.imported + preview.duplicates + preview.conflicts === 0}
                onClick={() => start(false)}
              >
                {preview.imported > 0 ? `Import ${preview.imported} ${preview.imported === 1 ? 'key' : 'keys'}` : 'Import'}
              </Button>
              <Button variant="default" onClick={startOver}>
                Start over
              </Button>
              {preview.imported + preview.duplicates + preview.conflicts === 0 && (
                <Text size="sm" c="dimmed">
                  Nothing in these files can be imported: fix the rejected lines, then add the files again.
                </Text>
              )}
            </Group>
          </Stack>
        )}
      </Paper>
    </Stack>
  );
}

/** Counts, files and rejected lines of a preview or an import. */
function Summary({ answer }: { answer: ImportAnswer }) {
  const dry = answer.dryRun;
  const stats = [
    { label: dry ? 'Would be added' : 'Added', value: answer.imported, color: 'green' },
    { label: 'Already in the vault', value: answer.duplicates, color: 'gray' },
    { label: dry ? 'Conflicts to review' : 'Conflicts, kept and flagged', value: answer.conflicts, color: 'orange' },
    { label: 'Rejected lines', value: answer.rejectedCount, color: 'red' },
  ];
  return (
    <Stack gap="sm">
      <SimpleGrid cols={{ base: 2, sm: 4 }} spacing="sm" role="list" aria-label={dry ? 'What the import would do' : 'What the import did'}>
        {stats.map((s) => (
          <Paper key={s.label} withBorder p="sm" role="listitem" aria-label={`${s.label}: ${s.value}`}>
            <Text fz={24} fw={700} c={s.value > 0 ? `${s.color}.8` : undefined} lh={1.1}>
              {s.value}
            </Text>
            <Text size="sm">{s.label}</Text>
          </Paper>
        ))}
      </SimpleGrid>
      {answer.conflicts > 0 && (
        <Text size="sm" c="dimmed">
          A conflict is a different recovery password under a key ID the vault already has (or the same password under another key ID): both are kept and
          flagged, so the right one can be confirmed at the next call.
        </Text>
      )}

      <Stack gap={4} component="ul" aria-label="Files" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
        {answer.files.map((f, i) => (
          <Group key={`${f.file}:${i}`} component="li" gap="xs" wrap="wrap">
            <Text size="sm" fw={600} style={{ overflowWrap: 'anywhere' }}>
              {f.file}
            </Text>
            {f.format ? (
              <Badge variant="light" size="sm">
                {FORMAT_LABEL[f.format]}
              </Badge>
            ) : (
              <Badge variant="light" color="red" size="sm">
                Not readable
              </Badge>
            )}
            <Text size="sm" c="dimmed">
              {dry ? `${f.imported} would be added` : `${f.imported} added`}, {f.duplicates} already known
              {f.conflicts ? `, ${f.conflicts} conflicts` : ''}, {f.rejected} rejected
            </Text>
          </Group>
        ))}
      </Stack>

      {dry && answer.devices.length > 0 && (
        <Text size="sm">
          Devices:{' '}
          {answer.devices
            .slice(0, 12)
            .map((d) => d.name)
            .join(', ')}
          {answer.devices.length > 12 ? ` and ${answer.devices.length - 12} more` : ''}. New devices are added to the client.
        </Text>
      )}
      {answer.rejectedCount > 0 && <Rejected answer={answer} />}
    </Stack>
  );
}

function Rejected({ answer }: { answer: ImportAnswer }) {
  const captionId = useId();
  return (
    <Stack gap={4}>
      <Title order={3} size="h5" id={captionId}>
        Rejected lines
      </Title>
      <Text size="sm" c="dimmed">
        {answer.dryRun ? 'These lines would be left out.' : 'These lines were left out.'} Fix them in the file and import it again: keys already in the vault
        are recognised, not added twice.
        {answer.rejectedCount > answer.rejected.length && ` The first ${answer.rejected.length} of ${answer.rejectedCount} are listed.`}
      </Text>
      <Table aria-labelledby={captionId} layout="fixed" verticalSpacing={4} fz="sm">
        <Table.Thead>
          <Table.Tr>
            <Table.Th w="35%">File</Table.Th>
            <Table.Th w={64}>Line</Table.Th>
            <Table.Th>Reason</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {answer.rejected.map((r, i) => (
            <Table.Tr key={`${r.file}:${r.line}:${i}`}>
              <Table.Td style={{ overflowWrap: 'anywhere' }}>{r.file}</Table.Td>
              <Table.Td>{r.line === 0 ? 'whole file' : r.line}</Table.Td>
              <Table.Td style={{ overflowWrap: 'anywhere' }}>{safeReason(r.reason)}</Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Stack>
  );
}

function Results({ result, client, onMore }: { result: ImportAnswer; client: { id: string; name: string } | undefined; onMore: () => void }) {
  const { can } = useSession();
  const seeClient = client && can('client:read', client.id) && can('device:read', client.id);
  const stored = result.devices.filter((d): d is { id: string; name: string } => d.id !== null);
  useEffect(() => {
    // A block, not an expression: Chromium's scrollTo may answer a promise, which React must not get.
    window.scrollTo(0, 0);
  }, []);
  return (
    <Stack gap="md">
      <PageTitle sub={client ? `Into ${client.name}` : undefined}>Import finished</PageTitle>
      <Alert color="green" variant="light" icon={<IconCheck size={18} />} title="Keys imported" role="status">
        {result.imported} {result.imported === 1 ? 'key was' : 'keys were'} added
        {client ? ` to ${client.name}` : ''}
        {result.duplicates ? `, ${result.duplicates} ${result.duplicates === 1 ? 'was' : 'were'} already in the vault` : ''}
        {result.rejectedCount ? `; ${result.rejectedCount} ${result.rejectedCount === 1 ? 'line was' : 'lines were'} rejected` : ''}.
      </Alert>
      <Summary answer={result} />
      {stored.length > 0 && (
        <Stack gap={4} component="section" aria-labelledby="import-devices">
          <Title order={3} size="h5" id="import-devices">
            Devices
          </Title>
          <Group gap="xs" component="ul" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
            {stored.map((d) => (
              <li key={d.id}>
                {can('device:read', client?.id) ? (
                  <Anchor component={Link} href={`/devices/${d.id}`} size="sm">
                    {d.name}
                  </Anchor>
                ) : (
                  <Text size="sm">{d.name}</Text>
                )}
              </li>
            ))}
          </Group>
        </Stack>
      )}
      <Group>
        <Button leftSection={<IconFileImport size={16} />} onClick={onMore}>
          Import more files
        </Button>
        {seeClient && (
          <Button component={Link} href={`/clients/${client.id}`} variant="default">
            Open {client.name}
          </Button>
        )}
      </Group>
    </Stack>
  );
}
