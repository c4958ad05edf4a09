import { useState, type ReactNode } from 'react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'wouter';
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  NativeSelect,
  NumberInput,
  SimpleGrid,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconBuildingCommunity, IconPlayerPlay, IconPlus, IconRestore, IconShieldCheck, IconTrash } from '@tabler/icons-react';
import { api, type Answer, type Body } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, Loading, PageTitle, fmtDate, fmtDateTime, messageOf } from '../ui';

/** Notifications' close button, named for screen readers. */

type PolicyView = Answer<'/api/v1/compliance/policy', 'get'>;
type Policy = PolicyView['effective'];
type Field = keyof Policy;
type PolicySet = NonNullable<Body<'/api/v1/compliance/policy', 'patch'>['set']>;
type Source = PolicyView['sources'][Field];
type Exemption = Answer<'/api/v1/compliance/exemptions', 'get'>[number];
type TenantPosture = Answer<'/api/v1/compliance/tenant-posture', 'get'>[number];

const options = <T extends string>(labels: Record<T, string>) => (Object.keys(labels) as T[]).map((value) => ({ value, label: labels[value] }));

const METHOD_LABEL: Record<Policy['minMethodOs'], string> = {
  any: 'Any encryption (drive hardware encryption too)',
  aes_cbc_128: 'AES-CBC 128 or stronger',
  aes_cbc_256: 'AES-CBC 256 or stronger',
  xts_aes_128: 'XTS-AES 128 or stronger (Windows default)',
  xts_aes_256: 'XTS-AES 256',
};
const PROTECTOR_LABEL: Record<Policy['osProtector'], string> = {
  any: 'Any protector',
  tpm: 'TPM (the chip unlocks the drive)',
  tpm_pin: 'TPM and a PIN at start-up',
};
const DIRECTORY_LABEL: Record<Policy['requireDirectoryEscrow'], string> = {
  none: 'Keywarden only',
  ad: 'Also in Active Directory',
  entra: 'Also in Entra ID',
  ad_or_entra: 'Also in Active Directory or Entra ID',
};
const ENFORCED_LABEL: Record<Policy['encryptionMethod'], string> = {
  default: "Windows' default (XTS-AES 128)",
  XtsAes128: 'XTS-AES 128',
  XtsAes256: 'XTS-AES 256',
  Aes128: 'AES-CBC 128',
  Aes256: 'AES-CBC 256',
};

type Meta = { label: string; help: string } & (
  { kind: 'bool' } | { kind: 'choice'; labels: Record<string, string> } | { kind: 'number'; min: number; max: number; unit: string; emptyMeans?: string }
);

/** Every field of the policy, in product words (docs/compliance.md). */
const FIELDS: Record<Field, Meta> = {
  protectOs: { kind: 'bool', label: 'Operating-system drive must be encrypted', help: 'The drive Windows starts from (usually C:) must have BitLocker on.' },
  protectFixed: {
    kind: 'bool',
    label: 'Fixed data drives must be encrypted',
    help: 'Other internal drives must have BitLocker on. A drive the agent could not classify counts as fixed.',
  },
  protectRemovable: { kind: 'bool', label: 'Removable drives must be encrypted', help: 'USB sticks and external disks must use BitLocker To Go.' },
  minMethodOs: {
    kind: 'choice',
    labels: METHOD_LABEL,
    label: 'Minimum strength, operating-system drive',
    help: 'A weaker method is a finding. XTS ranks above every AES-CBC method; drive hardware encryption only passes "Any".',
  },
  minMethodFixed: { kind: 'choice', labels: METHOD_LABEL, label: 'Minimum strength, fixed data drives', help: 'The same scale for internal data drives.' },
  minMethodRemovable: {
    kind: 'choice',
    labels: METHOD_LABEL,
    label: 'Minimum strength, removable drives',
    help: 'The same scale for USB sticks and external disks.',
  },
  osProtector: {
    kind: 'choice',
    labels: PROTECTOR_LABEL,
    label: 'How the operating-system drive unlocks',
    help: 'TPM accepts any TPM-based protector (TPM, TPM and PIN, TPM and start-up key). TPM and a PIN asks for a PIN at every start.',
  },
  suspendedGraceHours: {
    kind: 'number',
    min: 0,
    max: 720,
    unit: 'hours',
    label: 'Suspended protection allowed for',
    help: 'Windows updates suspend BitLocker for a restart; protection off for longer than this is a finding.',
  },
  requireRecoveryPassword: {
    kind: 'bool',
    label: 'Every encrypted drive needs an escrowed recovery password',
    help: 'A drive without a recovery password, or with one Keywarden does not hold, is a finding.',
  },
  requireDirectoryEscrow: {
    kind: 'choice',
    labels: DIRECTORY_LABEL,
    label: 'Recovery password also stored in',
    help: 'Besides Keywarden, the directory where a sync must have seen the recovery password.',
  },
  maxKeyAgeDays: {
    kind: 'number',
    min: 1,
    max: 3650,
    unit: 'days',
    emptyMeans: 'Leave empty for no maximum.',
    label: 'Rotate recovery passwords older than',
    help: 'An older recovery password is due for rotation. A revealed password is always due until it is replaced.',
  },
  staleAfterDays: {
    kind: 'number',
    min: 1,
    max: 3650,
    unit: 'days',
    label: 'A device is stale after',
    help: 'A device that has not checked in and was not seen by a sync for this long is a finding.',
  },
  enforceEscrow: {
    kind: 'bool',
    label: 'Agent fixes escrow findings',
    help: 'The agent adds a recovery password where a drive has none, and uploads again one Keywarden does not hold.',
  },
  enforceEncryption: {
    kind: 'bool',
    label: 'Agent fixes encryption findings',
    help: 'The agent turns BitLocker on for unencrypted drives (the operating-system drive first) and resumes suspended protection. A recovery password is escrowed first.',
  },
  enforceKeyAge: {
    kind: 'bool',
    label: 'Agent rotates old recovery passwords',
    help: 'The agent replaces recovery passwords older than the maximum age above.',
  },
  encryptionMethod: {
    kind: 'choice',
    labels: ENFORCED_LABEL,
    label: 'Method the agent encrypts with',
    help: 'Used when the agent turns BitLocker on for a drive.',
  },
  directoryBackupAfterRotation: {
    kind: 'bool',
    label: 'Back rotated passwords up to the directory',
    help: 'After the agent rotates a recovery password, it also backs the new one up to Active Directory or Entra ID when the device is joined there.',
  },
};

const GROUPS: { title: string; fields: Field[] }[] = [
  { title: 'Drives that must be encrypted', fields: ['protectOs', 'protectFixed', 'protectRemovable'] },
  { title: 'Encryption strength', fields: ['minMethodOs', 'minMethodFixed', 'minMethodRemovable'] },
  { title: 'Start-up protection', fields: ['osProtector', 'suspendedGraceHours'] },
  { title: 'Recovery passwords', fields: ['requireRecoveryPassword', 'requireDirectoryEscrow', 'maxKeyAgeDays'] },
  { title: 'Devices not seen', fields: ['staleAfterDays'] },
  { title: 'Let the agent fix findings', fields: ['enforceEscrow', 'enforceEncryption', 'enforceKeyAge', 'encryptionMethod', 'directoryBackupAfterRotation'] },
];

function words(f: Field, v: Policy[Field]): string {
  const m = FIELDS[f];
  if (m.kind === 'bool') return v ? 'Yes' : 'No';
  if (m.kind === 'choice') return m.labels[v as string] ?? String(v);
  return v === null ? 'No maximum' : `${String(v)} ${m.unit}`;
}

function sourceBadge(source: Source, scope: 'default' | 'client') {
  if (source === 'client') return { text: 'Set for this client', color: 'blue' };
  if (source === 'default')
    return { text: scope === 'client' ? 'From the MSP default' : 'Set by your MSP default', color: scope === 'client' ? 'gray' : 'blue' };
  return { text: 'Built-in value', color: 'gray' };
}

export function CompliancePage() {
  const { clients, can, me } = useSession();
  const [clientId, setClientId] = useState('');
  const scope = clientId ? 'client' : 'default';
  const clientName = clients.find((c) => c.id === clientId)?.name;
  // The MSP default belongs to an owner or an admin of every client; a client's policy to its admins.
  const mayEdit = clientId ? can('client:manage', clientId) : can('client:manage') && me.actor.clients === 'all';
  const mayEvaluate = can('client:manage', clientId || undefined);

  return (
    <>
      <PageTitle
        sub="What every device must look like. Clients inherit the MSP default and may override any single setting."
        right={mayEvaluate ? <EvaluateButton clientId={clientId} clientName={clientName} /> : undefined}
      >
        Compliance policy
      </PageTitle>
      <Stack gap="md">
        <NativeSelect
          label="Policy for"
          description="Pick a client to see which settings it inherits and which it overrides."
          maw={420}
          value={clientId}
          onChange={(e) => setClientId(e.currentTarget.value)}
          data={[{ value: '', label: 'MSP default (every client inherits it)' }, ...clients.map((c) => ({ value: c.id, label: c.name }))]}
        />
        <PolicyForm key={clientId} clientId={clientId} clientName={clientName} scope={scope} mayEdit={mayEdit} />
        {can('device:read', clientId || undefined) && <TenantPostureCard clientId={clientId} />}
        <Exemptions clientId={clientId} />
      </Stack>
    </>
  );
}

function EvaluateButton({ clientId, clientName }: { clientId: string; clientName?: string }) {
  const qc = useQueryClient();
  const run = useMutation({
    mutationFn: () => api.post('/api/v1/compliance/evaluate', { body: clientId ? { clientId } : {} }),
    onSuccess: (r) => {
      notifications.show({
        color: 'green',
        title: 'Evaluated',
        message: `${r.evaluated} device${r.evaluated === 1 ? '' : 's'} of ${clientName ?? `${r.clients} client${r.clients === 1 ? '' : 's'}`} checked against the policy; ${r.changed} changed status.`,
      });
      void qc.invalidateQueries();
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  return (
    <Button leftSection={<IconPlayerPlay size={16} />} loading={run.isPending} onClick={() => run.mutate()}>
      Evaluate now
    </Button>
  );
}

function PolicyForm({ clientId, clientName, scope, mayEdit }: { clientId: string; clientName?: string; scope: 'default' | 'client'; mayEdit: boolean }) {
  const qc = useQueryClient();
  const [draft, setDraft] = useState<PolicySet>({});
  const policy = useQuery({
    queryKey: ['compliance-policy', clientId],
    queryFn: () =>
      clientId ? api.get('/api/v1/clients/{clientId}/compliance/policy', { params: { path: { clientId } } }) : api.get('/api/v1/compliance/policy'),
  });
  const save = useMutation({
    mutationFn: (body: Body<'/api/v1/compliance/policy', 'patch'>) =>
      clientId
        ? api.patch('/api/v1/clients/{clientId}/compliance/policy', { params: { path: { clientId } }, body })
        : api.patch('/api/v1/compliance/policy', { body }),
    onSuccess: (view, body) => {
      qc.setQueryData(['compliance-policy', clientId], view);
      // The default feeds every client's policy; a change re-evaluates devices everywhere it applies.
      void qc.invalidateQueries({ queryKey: ['compliance-policy'] });
      void qc.invalidateQueries({ queryKey: ['clients'] });
      setDraft({});
      const n = Object.keys(body.set ?? {}).length + (body.inherit?.length ?? 0);
      notifications.show({
        color: 'green',
        message: `${n} setting${n === 1 ? '' : 's'} saved for ${clientName ?? 'the MSP default'}; devices were evaluated again.`,
      });
    },
  });

  if (policy.isPending) return <Loading />;
  if (policy.error) return <ErrorState error={policy.error} retry={() => void policy.refetch()} />;
  const view = policy.data;
  const value = <F extends Field>(f: F): Policy[F] => (f in draft ? (draft[f] as Policy[F]) : view.effective[f]);
  const set = <F extends Field>(f: F, v: Policy[F]) =>
    setDraft((d) => {
      const next = { ...d };
      if (v === view.effective[f]) delete next[f];
      else (next as Record<string, unknown>)[f] = v;
      return next;
    });
  const changed = Object.keys(draft).length;
  const clear = (f: Field) => save.mutate({ inherit: [f] });
  const overridden = (Object.keys(view.sources) as Field[]).filter((f) => view.sources[f] === (scope === 'client' ? 'client' : 'default'));

  return (
    <Card withBorder component="section" aria-labelledby="policy-title">
      <Stack gap="md">
        <Group justify="space-between" wrap="wrap" gap="xs">
          <div>
            <Title order={2} size="h3" id="policy-title">
              {clientName ? `${clientName}: policy in force` : 'MSP default policy'}
            </Title>
            <Text size="sm" c="dimmed">
              {scope === 'client'
                ? `${overridden.length} of ${Object.keys(FIELDS).length} settings overridden for this client; the rest come from the MSP default or the built-in values.`
                : 'Every client inherits these settings unless it overrides them. Settings never changed keep the built-in value.'}
              {view.updatedAt && ` Last changed ${fmtDateTime(view.updatedAt)}${view.updatedBy ? ` by ${view.updatedBy}` : ''}.`}
            </Text>
          </div>
          {!mayEdit && (
            <Badge variant="light" color="gray">
              Read only
            </Badge>
          )}
        </Group>
        {save.error && (
          <Alert color="red" role="alert" title="Not saved">
            {messageOf(save.error)}
          </Alert>
        )}
        {GROUPS.map((g) => (
          <fieldset key={g.title} className="kw-fieldset" style={{ border: 0, padding: 0, margin: 0, minWidth: 0 }}>
            <Text component="legend" fw={650} mb="xs">
              {g.title}
            </Text>
            <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md" verticalSpacing="md">
              {g.fields.map((f) => (
                <PolicyField
                  key={f}
                  field={f}
                  value={value(f)}
                  source={view.sources[f]}
                  scope={scope}
                  mayEdit={mayEdit}
                  dirty={f in draft}
                  onChange={(v) => set(f, v)}
                  onClear={() => clear(f)}
                  clearing={save.isPending}
                />
              ))}
            </SimpleGrid>
          </fieldset>
        ))}
        {mayEdit && (
          <Group gap="sm">
            <Button disabled={!changed} loading={save.isPending} onClick={() => save.mutate({ set: draft })}>
              {scope === 'client' ? 'Save overrides' : 'Save the default'}
            </Button>
            <Button variant="default" disabled={!changed} onClick={() => setDraft({})}>
              Discard changes
            </Button>
            <Text size="sm" c="dimmed" role="status">
              {changed ? `${changed} unsaved change${changed === 1 ? '' : 's'}` : ''}
            </Text>
          </Group>
        )}
      </Stack>
    </Card>
  );
}

function PolicyField({
  field,
  value,
  source,
  scope,
  mayEdit,
  dirty,
  onChange,
  onClear,
  clearing,
}: {
  field: Field;
  value: Policy[Field];
  source: Source;
  scope: 'default' | 'client';
  mayEdit: boolean;
  dirty: boolean;
  onChange: (v: Policy[Field]) => void;
  onClear: () => void;
  clearing: boolean;
}) {
  const m = FIELDS[field];
  const badge = sourceBadge(source, scope);
  const own = source === (scope === 'client' ? 'client' : 'default');
  const clearLabel = scope === 'client' ? 'Use the MSP default' : 'Back to built-in';
  const footer = (
    <Group gap="xs" mt={4} wrap="wrap">
      <Badge variant="light" color={dirty ? 'orange' : badge.color} size="sm" data-testid={`source-${field}`}>
        {dirty ? 'Changed, not saved' : badge.text}
      </Badge>
      {mayEdit && own && !dirty && (
        <Button
          size="compact-xs"
          variant="subtle"
          leftSection={<IconRestore size={14} />}
          onClick={onClear}
          disabled={clearing}
          aria-label={`${clearLabel}: ${m.label}`}
        >
          {clearLabel}
        </Button>
      )}
    </Group>
  );

  let control: ReactNode;
  if (!mayEdit) {
    control = (
      <div>
        <Text size="sm" fw={500}>
          {m.label}
        </Text>
        <Text size="sm" data-testid={`value-${field}`}>
          {words(field, value)}
        </Text>
        <Text size="xs" c="dimmed">
          {m.help}
        </Text>
      </div>
    );
  } else if (m.kind === 'bool') {
    control = <Switch label={m.label} description={m.help} checked={value as boolean} onChange={(e) => onChange(e.currentTarget.checked)} />;
  } else if (m.kind === 'choice') {
    control = (
      <NativeSelect
        label={m.label}
        description={m.help}
        value={value as string}
        onChange={(e) => onChange(e.currentTarget.value as Policy[Field])}
        data={options(m.labels)}
      />
    );
  } else {
    control = (
      <NumberInput
        label={`${m.label} (${m.unit})`}
        description={m.emptyMeans ? `${m.help} ${m.emptyMeans}` : m.help}
        value={value === null ? '' : (value as number)}
        min={m.min}
        max={m.max}
        allowDecimal={false}
        allowNegative={false}
        maw={320}
        onChange={(v) => onChange((v === '' ? (m.emptyMeans ? null : m.min) : Number(v)) as Policy[Field])}
      />
    );
  }
  return (
    <div data-testid={`field-${field}`}>
      {control}
      {footer}
    </div>
  );
}

// ------------------------------------------------------------------ exemptions

/** Whether an answer is the safe one: end users reading keys is not; Intune requiring escrow is. */
const POSTURE_GOOD: Record<number, TenantPosture['lines'][number]['answer']> = { 0: 'no', 1: 'yes' };
const answerColor = (i: number, a: TenantPosture['lines'][number]['answer']) => (a === 'unknown' ? 'gray' : a === POSTURE_GOOD[i] ? 'green' : 'orange');
const ANSWER_LABEL: Record<TenantPosture['lines'][number]['answer'], string> = { yes: 'Yes', no: 'No', unknown: 'Unknown' };

/** Tenant posture per client (Entra ID and Intune settings the last sync read), with what to do. */
function TenantPostureCard({ clientId }: { clientId: string }) {
  const list = useQuery({
    queryKey: ['tenant-posture', clientId],
    queryFn: () => api.get('/api/v1/compliance/tenant-posture', { params: { query: clientId ? { clientId } : {} } }),
  });
  return (
    <Card withBorder component="section" aria-labelledby="posture-title">
      <Stack gap="sm">
        <div>
          <Title order={2} size="h3" id="posture-title">
            Tenant posture (Entra ID and Intune)
          </Title>
          <Text size="sm" c="dimmed">
            Read from each client&apos;s tenant at every Entra ID sync: who can read BitLocker keys outside Keywarden, and whether Intune waits for an escrowed
            key before it encrypts.
          </Text>
        </div>
        {list.isPending ? (
          <Loading />
        ) : list.error ? (
          <ErrorState error={list.error} retry={() => void list.refetch()} />
        ) : list.data.length === 0 ? (
          <Empty title="No tenant posture yet" icon={<IconBuildingCommunity size={24} />}>
            A client&apos;s posture appears after the first sync of its Entra ID connection (Clients &gt; the client &gt; Entra ID).
          </Empty>
        ) : (
          list.data.map((p) => (
            <Stack key={p.client.id} gap={6} component="article" aria-label={`Tenant posture of ${p.client.name}`}>
              <Group justify="space-between" gap="xs">
                <Text fw={600}>{p.client.name}</Text>
                <Text size="xs" c="dimmed">
                  Read {fmtDateTime(p.checkedAt)}
                </Text>
              </Group>
              {p.lines.map((l, i) => (
                <Group key={l.question} gap="xs" wrap="nowrap" align="flex-start">
                  <Badge variant="light" color={answerColor(i, l.answer)} miw={84}>
                    {ANSWER_LABEL[l.answer]}
                  </Badge>
                  <Text size="sm">
                    {l.question}: {l.text}
                  </Text>
                </Group>
              ))}
              {p.intunePolicies.length > 0 && <IntunePolicies policies={p.intunePolicies} client={p.client.name} />}
              {p.notes.map((n) => (
                <Alert key={n.code} color="orange" variant="light" title={n.title}>
                  <Text size="sm">{n.explanation}</Text>
                  <Text size="sm" mt={4}>
                    <b>What to do:</b> {n.fix}
                  </Text>
                </Alert>
              ))}
            </Stack>
          ))
        )}
      </Stack>
    </Card>
  );
}

/** Whom a policy reaches, in words (the same words as the report's). */
function assignmentText(p: TenantPosture['intunePolicies'][number]): string {
  if (p.assigned === null) return 'assignments not read';
  if (p.assigned) return `Assigned to ${p.assignedTo}`;
  return `${p.assignedTo.startsWith('only excluded') ? `Assigned ${p.assignedTo}` : 'Not assigned to any group'} — applies to no device`;
}

/**
 * The Intune BitLocker policies behind "Intune requires …": only an assigned policy applies to devices,
 * so each says whom it reaches; an unassigned one is flagged, it is why a "No" can name a good policy.
 */
function IntunePolicies({ policies, client }: { policies: TenantPosture['intunePolicies']; client: string }) {
  return (
    <Stack gap={2} component="ul" aria-label={`Intune BitLocker policies of ${client}`} pl="md" my={0}>
      {policies.map((x, i) => (
        <Text key={`${x.name}-${i}`} component="li" size="xs">
          <b>{x.name}</b> ({x.kind}): {x.requiresEscrow ? 'requires' : 'does not require'} recovery information stored first ·{' '}
          <Text span size="xs" c={x.assigned === false ? 'red' : x.assigned === null ? 'dimmed' : undefined} fw={x.assigned === false ? 600 : undefined}>
            {assignmentText(x)}
          </Text>
        </Text>
      ))}
    </Stack>
  );
}

function Exemptions({ clientId }: { clientId: string }) {
  const { can, clients } = useSession();
  const qc = useQueryClient();
  const [adding, setAdding] = useState(false);
  const [showEnded, setShowEnded] = useState(false);
  const list = useQuery({
    queryKey: ['exemptions', clientId],
    queryFn: () => api.get('/api/v1/compliance/exemptions', { params: { query: clientId ? { clientId } : {} } }),
  });
  const remove = useMutation({
    mutationFn: (e: Exemption) => api.del('/api/v1/compliance/exemptions/{exemptionId}', { params: { path: { exemptionId: e.id } } }),
    onSuccess: (_r, e) => {
      notifications.show({
        color: 'green',
        message: `The exemption of ${e.device.name} has ended; the device is judged by the policy again.`,
      });
      void qc.invalidateQueries({ queryKey: ['exemptions'] });
    },
    onError: (e) => notifications.show({ color: 'red', message: messageOf(e) }),
  });
  const mayAdd = can('client:manage', clientId || undefined);
  const clientName = new Map(clients.map((c) => [c.id, c.name]));
  const rows = (list.data ?? []).filter((e) => showEnded || e.active);
  const ended = (list.data ?? []).filter((e) => !e.active).length;

  return (
    <Card withBorder component="section" aria-labelledby="exemptions-title">
      <Stack gap="sm">
        <Group justify="space-between" wrap="wrap" gap="xs">
          <div>
            <Title order={2} size="h3" id="exemptions-title">
              Exemptions
            </Title>
            <Text size="sm" c="dimmed">
              An exempt device is not judged while the exemption lasts; its findings stay visible.
            </Text>
          </div>
          {mayAdd && (
            <Button leftSection={<IconPlus size={16} />} variant="light" onClick={() => setAdding(true)}>
              Add an exemption
            </Button>
          )}
        </Group>
        {ended > 0 && <Switch label={`Show ended exemptions (${ended})`} checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} />}
        {list.isPending ? (
          <Loading />
        ) : list.error ? (
          <ErrorState error={list.error} retry={() => void list.refetch()} />
        ) : rows.length === 0 ? (
          <Empty title="No device is exempt" icon={<IconShieldCheck size={24} />}>
            {mayAdd
              ? 'When a device cannot meet the policy for a while (a lab machine, a drive being replaced), choose "Add an exemption", give the reason and, preferably, when it ends.'
              : 'An owner or administrator can exempt a device here when it cannot meet the policy for a while.'}
          </Empty>
        ) : (
          <div className="kw-table-wrap" tabIndex={0} role="region" aria-label="Exemptions">
            <Table striped miw={720}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Device</Table.Th>
                  {!clientId && <Table.Th>Client</Table.Th>}
                  <Table.Th>Reason</Table.Th>
                  <Table.Th>Ends</Table.Th>
                  <Table.Th>Added by</Table.Th>
                  <Table.Th>Status</Table.Th>
                  {mayAdd && <Table.Th>Action</Table.Th>}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((e) => (
                  <Table.Tr key={e.id}>
                    <Table.Td>
                      <Anchor component={Link} href={`/devices/${e.device.id}`}>
                        {e.device.name}
                      </Anchor>
                    </Table.Td>
                    {!clientId && <Table.Td>{clientName.get(e.clientId) ?? '—'}</Table.Td>}
                    <Table.Td style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere' }}>{e.reason}</Table.Td>
                    <Table.Td>{e.expiresAt ? fmtDateTime(e.expiresAt) : 'No end date'}</Table.Td>
                    <Table.Td>
                      {e.createdBy}
                      <Text size="xs" c="dimmed">
                        {fmtDate(e.createdAt)}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Badge variant="light" color={e.active ? 'violet' : 'gray'}>
                        {e.active ? 'In force' : e.revokedAt ? 'Removed' : 'Expired'}
                      </Badge>
                    </Table.Td>
                    {mayAdd && (
                      <Table.Td>
                        {e.active && can('client:manage', e.clientId) && (
                          <Button
                            size="xs"
                            variant="subtle"
                            color="red"
                            leftSection={<IconTrash size={14} />}
                            aria-label={`Remove the exemption of ${e.device.name}`}
                            loading={remove.isPending && remove.variables?.id === e.id}
                            onClick={() => remove.mutate(e)}
                          >
                            Remove
                          </Button>
                        )}
                      </Table.Td>
                    )}
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </div>
        )}
      </Stack>
      {adding && <AddExemptionModal clientId={clientId} onClose={() => setAdding(false)} />}
    </Card>
  );
}

function AddExemptionModal({ clientId: fixedClient, onClose }: { clientId: string; onClose: () => void }) {
  const { clients, can } = useSession();
  const qc = useQueryClient();
  const manageable = clients.filter((c) => can('client:manage', c.id));
  const [clientId, setClientId] = useState(fixedClient || manageable[0]?.id || '');
  const [q, setQ] = useState('');
  const [deviceId, setDeviceId] = useState('');
  const [reason, setReason] = useState('');
  const [ends, setEnds] = useState('');
  const devices = useQuery({
    queryKey: ['exemption-devices', clientId, q.trim()],
    queryFn: () => api.get('/api/v1/clients/{clientId}/devices', { params: { path: { clientId }, query: { q: q.trim(), limit: 50, sort: 'name' } } }),
    enabled: Boolean(clientId),
    placeholderData: keepPreviousData,
  });
  const items = devices.data?.items ?? [];
  const chosen = items.some((d) => d.id === deviceId) ? deviceId : '';
  const add = useMutation({
    mutationFn: () =>
      api.post('/api/v1/compliance/exemptions', {
        // The end date is the last day of the exemption: it ends at midnight after it (local time).
        body: { deviceId: chosen, reason: reason.trim(), expiresAt: ends ? new Date(`${ends}T23:59:59`).toISOString() : null },
      }),
    onSuccess: (e) => {
      notifications.show({
        color: 'green',
        message: `${e.device.name} is exempt${e.expiresAt ? ` until ${fmtDateTime(e.expiresAt)}` : ''}.`,
      });
      void qc.invalidateQueries({ queryKey: ['exemptions'] });
      onClose();
    },
  });
  return (
    <Modal opened onClose={onClose} title="Add an exemption" size="lg">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          add.mutate();
        }}
      >
        <Stack gap="sm">
          {!fixedClient && (
            <NativeSelect
              label="Client"
              value={clientId}
              onChange={(e) => {
                setClientId(e.currentTarget.value);
                setDeviceId('');
              }}
              data={manageable.map((c) => ({ value: c.id, label: c.name }))}
            />
          )}
          <TextInput label="Find a device" description="Part of its name, serial number or user" value={q} onChange={(e) => setQ(e.currentTarget.value)} />
          <NativeSelect
            label="Device"
            required
            value={chosen}
            onChange={(e) => setDeviceId(e.currentTarget.value)}
            data={[
              { value: '', label: devices.isFetching && !items.length ? 'Loading devices…' : items.length ? 'Choose a device' : 'No device matches' },
              ...items.map((d) => ({ value: d.id, label: `${d.name}${d.serial ? ` (${d.serial})` : ''}` })),
            ]}
          />
          <Textarea
            label="Reason"
            description="Why this device may not meet the policy, for whoever reads it later (3 to 500 characters)"
            required
            minLength={3}
            maxLength={500}
            autosize
            minRows={2}
            value={reason}
            onChange={(e) => setReason(e.currentTarget.value)}
          />
          <TextInput
            type="date"
            label="Last day (optional)"
            description="The exemption ends after this day and the device is judged again. Leave empty to keep it until you remove it."
            value={ends}
            onChange={(e) => setEnds(e.currentTarget.value)}
          />
          {add.error && (
            <Alert color="red" role="alert">
              {messageOf(add.error)}
            </Alert>
          )}
          <Group justify="flex-end" gap="sm">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={add.isPending} disabled={!chosen || reason.trim().length < 3}>
              Exempt the device
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
