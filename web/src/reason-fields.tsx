import type { KeyboardEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { NativeSelect, TextInput } from '@mantine/core';
import { api } from './api';

/** Why a form asking for a key cannot go yet (reason and ticket), or null. */
export function reasonProblem(reason: string, ticket: string): string | null {
  if (!reason) return 'Pick a reason.';
  if (reason === 'other' && !ticket.trim()) return '“Other” needs a ticket reference.';
  return null;
}

/**
 * The reason (from the vault's reason list) and the ticket reference: the same two fields wherever a
 * key is asked for, whether revealed now or requested for approval. "Other" needs a ticket.
 */
export function ReasonTicketFields({
  reason,
  setReason,
  ticket,
  setTicket,
  onKeyDown,
  autoFocus,
}: {
  reason: string;
  setReason: (v: string) => void;
  ticket: string;
  setTicket: (v: string) => void;
  onKeyDown?: (e: KeyboardEvent<HTMLSelectElement>) => void;
  autoFocus?: boolean;
}) {
  const reasons = useQuery({ queryKey: ['reasons'], queryFn: () => api.get('/api/v1/keys/reasons'), staleTime: Infinity });
  return (
    <>
      <NativeSelect
        label="Reason"
        required
        {...(autoFocus ? { 'data-autofocus': true } : {})}
        value={reason}
        onChange={(e) => setReason(e.currentTarget.value)}
        onKeyDown={onKeyDown}
        data={[
          { value: '', label: reasons.isPending ? 'Loading…' : 'Pick the reason the user gives' },
          ...(reasons.data ?? []).map((r) => ({ value: r.code, label: r.label })),
        ]}
      />
      <TextInput
        label="Ticket reference"
        description={reason === 'other' ? 'Required for “Other”' : 'Optional, e.g. T-1234'}
        value={ticket}
        onChange={(e) => setTicket(e.currentTarget.value)}
        maxLength={200}
        required={reason === 'other'}
      />
    </>
  );
}
