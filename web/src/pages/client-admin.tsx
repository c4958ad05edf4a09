import { useState, type FormEvent } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { Alert, Button, Group, List, Modal, Stack, Text, TextInput } from '@mantine/core';
import { IconArchive, IconInfoCircle } from '@tabler/icons-react';
import { api, ApiError, type Answer } from '../api';
import { messageOf } from '../ui';
import { useTypedName } from './client-confirm';

/**
 * Adding, renaming and archiving a client (`client:manage`). The server answers a duplicate or a
 * look-alike name with its own words; they are shown at the name field.
 */

type Created = Answer<'/api/v1/clients', 'post'>;

/** Every query that lists or names clients. */
function refreshClients(qc: ReturnType<typeof useQueryClient>) {
  void qc.invalidateQueries({ queryKey: ['console-clients'] });
  void qc.invalidateQueries({ queryKey: ['clients'] });
}

/** The server's message for the name field (duplicate, look-alike, empty, too long). */
function nameError(e: unknown): { field: string | null; other: string | null } {
  if (e instanceof ApiError && (e.status === 400 || e.status === 409)) {
    const f = e.fields?.find((x) => x.field === 'name' || x.field.endsWith('.name'));
    return { field: f?.message ?? e.message, other: null };
  }
  return { field: null, other: e ? messageOf(e) : null };
}

function NameForm({
  title,
  initial,
  submitLabel,
  description,
  onSave,
  onClose,
}: {
  title: string;
  initial: string;
  submitLabel: string;
  description?: string;
  onSave: (name: string) => Promise<unknown>;
  onClose: () => void;
}) {
  const [name, setName] = useState(initial);
  const save = useMutation({ mutationFn: () => onSave(name.trim()), onSuccess: onClose });
  const err = nameError(save.error);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    save.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={title} centered>
      <form onSubmit={submit}>
        <Stack gap="sm">
          <TextInput
            label="Client name"
            description={description}
            data-autofocus
            required
            maxLength={200}
            value={name}
            onChange={(e) => {
              setName(e.currentTarget.value);
              if (save.isError) save.reset();
            }}
            error={err.field}
          />
          {err.other && (
            <Alert color="red" variant="light" role="alert">
              {err.other}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending} disabled={!name.trim() || name.trim() === initial}>
              {submitLabel}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function AddClientModal({ onClose, onAdded }: { onClose: () => void; onAdded?: (c: Created) => void }) {
  const qc = useQueryClient();
  return (
    <NameForm
      title="Add client"
      initial=""
      submitLabel="Add client"
      description="The company as your team calls it. It gets its own data key."
      onClose={onClose}
      onSave={async (name) => {
        const c = await api.post('/api/v1/clients', { body: { name } });
        refreshClients(qc);
        onAdded?.(c);
      }}
    />
  );
}

export function RenameClientModal({ client, onClose }: { client: { id: string; name: string }; onClose: () => void }) {
  const qc = useQueryClient();
  return (
    <NameForm
      title={`Rename ${client.name}`}
      initial={client.name}
      submitLabel="Rename"
      description="Reports, the audit log and search show the new name from now on."
      onClose={onClose}
      onSave={async (name) => {
        await api.patch('/api/v1/clients/{clientId}', { params: { path: { clientId: client.id } }, body: { name } });
        refreshClients(qc);
        void qc.invalidateQueries({ queryKey: ['client-overview', client.id] });
      }}
    />
  );
}

export function ArchiveClientModal({ client, onClose, onArchived }: { client: { id: string; name: string }; onClose: () => void; onArchived?: () => void }) {
  const qc = useQueryClient();
  const confirm = useTypedName(client.name);
  const archive = useMutation({
    mutationFn: () => api.del('/api/v1/clients/{clientId}', { params: { path: { clientId: client.id } } }),
    onSuccess: () => {
      // Gone from every list at once, before the lists are fetched again.
      qc.setQueryData<Answer<'/api/v1/console/clients', 'get'>>(['console-clients'], (rows) => rows?.filter((c) => c.id !== client.id));
      qc.setQueryData<Answer<'/api/v1/clients', 'get'>>(['clients'], (rows) => rows?.filter((c) => c.id !== client.id));
      refreshClients(qc);
      onArchived?.();
      onClose();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (confirm.matches) archive.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`Archive ${client.name}`} centered>
      <form onSubmit={submit}>
        <Stack gap="sm">
          <Alert color="blue" variant="light" icon={<IconInfoCircle size={18} />} title="What archiving does">
            <List size="sm" spacing={2}>
              <List.Item>The client disappears from lists, search and the overview.</List.Item>
              <List.Item>Its recovery keys stay encrypted in the vault: nothing is destroyed.</List.Item>
              <List.Item>Its audit trail is kept in full.</List.Item>
            </List>
          </Alert>
          <Text size="sm">To destroy a client&apos;s keys for good, an owner offboards it from the client page instead.</Text>
          {confirm.field}
          {archive.isError && (
            <Alert color="red" variant="light" role="alert">
              {messageOf(archive.error)}
            </Alert>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" color="red" leftSection={<IconArchive size={16} />} loading={archive.isPending} disabled={!confirm.matches}>
              Archive client
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
