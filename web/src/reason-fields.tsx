import type { KeyboardEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { NativeSelect, TextInput } from '@mantine/core';
import { api, type Answer } from './api';

/** A client's ticket policy for reveals (ticket-bound reveal) and its PSA's name. */
export type TicketPolicy = Answer<'/api/v1/keys/{keyRecordId}/approval', 'get'>['ticket'];

/** Why a form asking for a key cannot go yet (reason and ticket), or null. */
export function reasonProblem(reason: string, ticket: string, ticketPolicy?: TicketPolicy): string | null {
  if (!reason) return 'Pick a reason.';
  if (reason === 'other' && !ticket.trim()) return '“Other” needs a ticket reference.';
  if (ticketPolicy?.policy === 'required' && !ticket.trim())
    return `This client requires a ticket: enter the number of an open ${ticketPolicy.psa ?? 'PSA'} ticket.`;
  return null;
}

/** What the ticket field says under it: the client's policy first, then "Other". */
function ticketDescription(reason: string, p?: TicketPolicy): string {
  const psa = p?.psa ?? 'the PSA';
  if (p?.policy === 'required') return `Required: an open ticket of this client in ${psa}, checked before the key is shown`;
  if (p?.policy === 'validate') return `Optional; when given, it is checked in ${psa} and a note is added to it`;
  return reason === 'other' ? 'Required for “Other”' : 'Optional, e.g. T-1234';
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
  ticketPolicy,
  ticketError,
}: {
  reason: string;
  setReason: (v: string) => void;
  ticket: string;
  setTicket: (v: string) => void;
  onKeyDown?: (e: KeyboardEvent<HTMLSelectElement>) => void;
  autoFocus?: boolean;
  /** The client's ticket policy (reveal dialog); absent: the ticket is free text. */
  ticketPolicy?: TicketPolicy;
  /** What the server said is wrong with the ticket (closed, another company's, unknown …). */
  ticketError?: string | null;
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
        description={ticketDescription(reason, ticketPolicy)}
        value={ticket}
        onChange={(e) => setTicket(e.currentTarget.value)}
        maxLength={200}
        required={reason === 'other' || ticketPolicy?.policy === 'required'}
        error={ticketError ?? undefined}
      />
    </>
  );
}
