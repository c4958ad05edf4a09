import { useEffect, useState, type FormEvent } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Alert, Badge, Button, Card, Checkbox, Group, NumberInput, SimpleGrid, Stack, Switch, Table, Text, TextInput, Title } from '@mantine/core';
import { Link } from 'wouter';
import { api, type Answer, type Body } from '../api';
import { useSession } from '../session';
import { Empty, ErrorState, FormFooter, Loading, fmtDateTime, messageOf } from '../ui';

/**
 * Findings → PSA tickets on a client's page (issue 21): the rules (which findings open tickets, PSA
 * priority and queue, digest), the tickets Keywarden opened, and "Run now". The server decides:
 * rules and runs need integration:manage for the client, the list client:read.
 */
type Rules = Answer<'/api/v1/clients/{clientId}/psa/ticket-rules', 'get'>;
type Code = Rules['codes'][number];
type RulesBody = Body<'/api/v1/clients/{clientId}/psa/ticket-rules', 'put'>;

/** src/domain/compliance/findings.ts, finding-tickets.ts and tenant-posture.ts titles, in the server's order. */
const CODE_TITLE: Record<Code, string> = {
  os_volume_unprotected: 'Operating-system drive not encrypted',
  data_volume_unprotected: 'Fixed data drive not encrypted',
  removable_volume_unprotected: 'Removable drive not encrypted',
  encryption_in_progress: 'Encryption not finished',
  encryption_method_mismatch: 'Encryption method weaker than required',
  tpm_required: 'TPM protector missing',
  tpm_pin_required: 'Startup PIN missing',
  protection_suspended: 'Protection suspended too long',
  waiting_for_activation: 'Waiting for activation (clear key)',
  recovery_password_missing: 'No recovery password',
  recovery_key_not_escrowed: 'Recovery password not escrowed',
  escrowed_key_mismatch: 'Escrowed password differs from the device',
  key_conflict: 'Conflicting recovery passwords',
  not_in_directory: 'Not escrowed in the directory',
  key_rotation_due: 'Recovery password due for rotation',
  stale: 'Device not seen recently',
  rotation_failed: 'Recovery password rotation failed',
  entra_consent_lost: "Keywarden's access to this Entra ID tenant was withdrawn",
  entra_users_read_own_keys: 'End users can read their own BitLocker keys in Entra ID',
  intune_escrow_not_required: 'Intune encrypts without requiring the recovery key escrowed first',
};
/** Findings about the client's tenant as a whole: one ticket each, with no device (never in a digest). */
const CLIENT_CODES: Code[] = ['entra_consent_lost', 'entra_users_read_own_keys', 'intune_escrow_not_required'];
const CODE_GROUPS: { label: string; codes: Code[] }[] = [
  { label: 'About a device', codes: (Object.keys(CODE_TITLE) as Code[]).filter((c) => !CLIENT_CODES.includes(c)) },
  { label: "About the client's Microsoft 365 tenant", codes: CLIENT_CODES },
];
const STATE: Record<string, { label: string; color: string }> = {
  open: { label: 'open', color: 'orange' },
  closed: { label: 'closed (cleared)', color: 'green' },
  closed_in_psa: { label: 'closed in the PSA', color: 'gray' },
};

export function PsaTicketRules({ clientId }: { clientId: string }) {
  const { can } = useSession();
  const mayManage = can('integration:manage', clientId);
  const qc = useQueryClient();
  const rulesKey = ['psa-ticket-rules', clientId];
  const ticketsKey = ['psa-finding-tickets', clientId];
  const rules = useQuery({
    queryKey: rulesKey,
    enabled: mayManage,
    queryFn: () => api.get('/api/v1/clients/{clientId}/psa/ticket-rules', { params: { path: { clientId } } }),
  });
  const tickets = useQuery({
    queryKey: ticketsKey,
    queryFn: () => api.get('/api/v1/clients/{clientId}/psa/finding-tickets', { params: { path: { clientId } } }),
  });
  const run = useMutation({
    mutationFn: () => api.post('/api/v1/clients/{clientId}/psa/finding-tickets/run', { params: { path: { clientId } } }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ticketsKey });
      void qc.invalidateQueries({ queryKey: rulesKey });
    },
  });

  return (
    <Card withBorder component="section" aria-labelledby="psa-tickets-title" mt="lg">
      <Stack gap="sm">
        <Group justify="space-between" align="flex-start">
          <Title order={2} fz="lg" id="psa-tickets-title">
            Findings as PSA tickets
          </Title>
          {mayManage && (
            <Button size="xs" variant="light" loading={run.isPending} onClick={() => run.mutate()}>
              Run now
            </Button>
          )}
        </Group>
        <Text size="sm">
          Keywarden opens a ticket in your PSA for each device and finding chosen below (and one for each finding about the client&apos;s Microsoft 365 tenant),
          updates it when the finding or the rule&apos;s priority changes and closes it with a note once the finding clears. The client must be linked to a PSA
          company.
        </Text>
        {run.data && (
          <Alert color={run.data.status === 'failed' ? 'red' : run.data.status === 'done' ? 'green' : 'gray'} data-testid="psa-run-result">
            {run.data.message}
          </Alert>
        )}
        {run.error && <Alert color="red">{messageOf(run.error)}</Alert>}
        {mayManage &&
          (rules.isPending ? (
            <Loading />
          ) : rules.error ? (
            <ErrorState error={rules.error} retry={() => void rules.refetch()} />
          ) : (
            <RulesForm clientId={clientId} rules={rules.data} />
          ))}
        <Title order={3} fz="md" mt="sm">
          Tickets Keywarden opened
        </Title>
        {tickets.isPending ? (
          <Loading />
        ) : tickets.error ? (
          <ErrorState error={tickets.error} retry={() => void tickets.refetch()} />
        ) : tickets.data.length === 0 ? (
          <Empty title="No tickets yet">Tickets appear here after a run that found something the rules cover.</Empty>
        ) : (
          <Table striped withTableBorder>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Ticket</Table.Th>
                <Table.Th>Device</Table.Th>
                <Table.Th>Finding</Table.Th>
                <Table.Th>State</Table.Th>
                <Table.Th>Opened</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tickets.data.map((t) => (
                <Table.Tr key={t.id}>
                  <Table.Td>
                    {t.ticketNumber}
                    {t.digest && (
                      <Badge ml={6} size="xs" variant="light">
                        digest
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td>
                    {t.device ? (
                      <Link href={`/devices/${t.device.id}`}>{t.device.name}</Link>
                    ) : (
                      <Text span size="sm" c="dimmed">
                        The client&apos;s Microsoft 365 tenant
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>{t.finding}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={STATE[t.state]?.color ?? 'gray'}>
                      {STATE[t.state]?.label ?? t.state}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{fmtDateTime(t.openedAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Stack>
    </Card>
  );
}

function RulesForm({ clientId, rules }: { clientId: string; rules: Rules }) {
  const qc = useQueryClient();
  const [form, setForm] = useState(() => toForm(rules));
  useEffect(() => setForm(toForm(rules)), [rules]);
  const save = useMutation({
    mutationFn: (body: RulesBody) => api.put('/api/v1/clients/{clientId}/psa/ticket-rules', { params: { path: { clientId } }, body }),
    onSuccess: (r) => qc.setQueryData(['psa-ticket-rules', clientId], r),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate({
      enabled: form.enabled,
      codes: form.codes,
      priority: form.priority || null,
      queue: form.queue || null,
      digest: form.digest,
      digestThreshold: form.threshold,
    });
  };
  return (
    <form onSubmit={submit} aria-label="Ticket rules">
      <Stack gap="sm">
        {rules.failingSince && (
          <Alert color="red" title={`Runs fail since ${fmtDateTime(rules.failingSince)}`}>
            {rules.lastError}
          </Alert>
        )}
        <Switch
          label="Open PSA tickets for this client's findings"
          checked={form.enabled}
          onChange={(e) => setForm({ ...form, enabled: e.currentTarget.checked })}
        />
        <Checkbox.Group label="Findings that open a ticket" value={form.codes} onChange={(v) => setForm({ ...form, codes: v as Code[] })}>
          {CODE_GROUPS.map((g) => (
            <div key={g.label} role="group" aria-label={g.label}>
              <Text size="sm" fw={500} mt={8}>
                {g.label}
              </Text>
              <SimpleGrid cols={{ base: 1, sm: 2 }} spacing={6} mt={4}>
                {g.codes.map((c) => (
                  <Checkbox key={c} value={c} label={CODE_TITLE[c]} />
                ))}
              </SimpleGrid>
            </div>
          ))}
        </Checkbox.Group>
        <Group grow align="flex-start">
          <TextInput
            label="Priority"
            description="The PSA's priority id; empty: its default. A change reaches open tickets at the next run"
            value={form.priority}
            maxLength={64}
            onChange={(e) => setForm({ ...form, priority: e.currentTarget.value })}
          />
          <TextInput
            label="Board / queue"
            description="HaloPSA team, ConnectWise board, Autotask queue id"
            value={form.queue}
            maxLength={64}
            onChange={(e) => setForm({ ...form, queue: e.currentTarget.value })}
          />
        </Group>
        <Group grow align="flex-start">
          <Switch
            label="Digest: one ticket per run listing every new finding"
            checked={form.digest}
            onChange={(e) => setForm({ ...form, digest: e.currentTarget.checked })}
          />
          <NumberInput
            label="Digest above"
            description="More new tickets than this in one run become one digest ticket"
            min={1}
            max={500}
            value={form.threshold}
            onChange={(v) => setForm({ ...form, threshold: typeof v === 'number' ? v : form.threshold })}
          />
        </Group>
        {rules.updatedAt && (
          <Text size="xs" c="dimmed">
            Changed {fmtDateTime(rules.updatedAt)} by {rules.updatedBy}
            {rules.lastRunAt ? `; last run ${fmtDateTime(rules.lastRunAt)}` : ''}
          </Text>
        )}
        <FormFooter error={save.error} onCancel={() => setForm(toForm(rules))} submitting={save.isPending} submit="Save rules" />
      </Stack>
    </form>
  );
}

function toForm(r: Rules) {
  return { enabled: r.enabled, codes: r.codes, priority: r.priority ?? '', queue: r.queue ?? '', digest: r.digest, threshold: r.digestThreshold };
}
