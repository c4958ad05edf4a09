import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Readable, pipeline } from 'node:stream';
import type { Container } from '../../container.js';
import { csvWriter } from '../../lib/csv.js';
import type { AuditEvent } from '../../modules/audit/audit.types.js';
import { actorOf } from '../plugins/auth.js';
import { AuditEventSchema, Id, IsoTime, errors } from '../schemas.js';

const Filter = {
  action: z.string().max(60).optional(),
  outcome: z.string().max(30).optional(),
  clientId: Id.optional(),
  actorId: z.string().max(200).optional(),
  targetId: z.string().max(200).optional(),
  from: IsoTime.optional(),
  to: IsoTime.optional(),
  keyId: z.string().max(200).optional().describe('A full key ID or its first 8+ digits; braces, dashes, spaces and case do not matter'),
  device: z.string().max(200).optional().describe('A device name or its beginning'),
  ticket: z.string().max(200).optional().describe('Part of a ticket reference'),
  search: z.string().max(200).optional().describe('One box: events whose key ID, device or ticket matches'),
};

const CSV_COLUMNS: (keyof AuditEvent)[] = [
  'seq',
  'occurredAt',
  'actorType',
  'actorId',
  'actorName',
  'action',
  'outcome',
  'clientId',
  'targetType',
  'targetId',
  'reasonCode',
  'ticket',
  'ip',
  'userAgent',
  'details',
  // Added later, at the end, so tools reading the columns above by position keep working.
  'actor',
  'actionLabel',
  'device',
  'keyId',
  'reasonLabel',
];

export const auditRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/audit',
      {
        schema: {
          tags: ['audit'],
          summary: 'Audit events, newest first; page with beforeSeq',
          querystring: z.strictObject({
            ...Filter,
            limit: z.coerce.number().int().min(1).max(1000).optional(),
            beforeSeq: z.coerce.number().int().min(1).optional(),
          }),
          response: { 200: z.array(AuditEventSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.audit.list(actorOf(request), request.query),
    );
    app.get(
      '/audit/export',
      {
        schema: {
          tags: ['audit'],
          summary: 'Export matching audit events, oldest first, as CSV or JSON lines (the export is itself audited)',
          querystring: z.strictObject({ ...Filter, format: z.enum(['csv', 'jsonl']).default('jsonl') }),
          produces: ['text/csv', 'application/x-ndjson'],
        },
      },
      async (request, reply) => {
        const { format, ...filter } = request.query;
        const events = c.audit.export(actorOf(request), filter);
        // The first step runs the permission check and audits the export before any byte is sent;
        // then the events stream out a page at a time (a large log never sits in memory).
        const first = await events.next();
        async function* all(): AsyncGenerator<AuditEvent> {
          if (first.done) return;
          yield first.value;
          yield* events;
        }
        const stamp = new Date().toISOString().slice(0, 10);
        reply.header('content-disposition', `attachment; filename="keywarden-audit-${stamp}.${format}"`);
        const failed = (err: Error | null) => {
          if (err) request.log.error({ err: { type: err.name, message: err.message } }, 'audit export stopped');
        };
        if (format === 'csv') {
          reply.type('text/csv; charset=utf-8');
          const rows = Readable.from(
            (async function* () {
              for await (const e of all())
                yield CSV_COLUMNS.map((k) => (k === 'details' ? (e.details ? JSON.stringify(e.details) : '') : (e[k] ?? '')) as string | number);
            })(),
          );
          return reply.send(pipeline(rows, csvWriter(CSV_COLUMNS as string[]), failed));
        }
        reply.type('application/x-ndjson; charset=utf-8');
        const lines = Readable.from(
          (async function* () {
            for await (const e of all()) yield JSON.stringify(e) + '\n';
          })(),
          { objectMode: false },
        );
        return reply.send(lines);
      },
    );
    app.get(
      '/audit/actions',
      {
        schema: {
          tags: ['audit'],
          summary: 'Every action the audit log records, with its label (for filters)',
          response: { 200: z.array(z.object({ action: z.string(), label: z.string() })), ...errors(401, 403) },
        },
      },
      async (request) => [...c.audit.actions(actorOf(request))],
    );
    app.get(
      '/audit/verify',
      {
        schema: {
          tags: ['audit'],
          summary: 'Walk the hash chain: intact, or the first changed, missing or reordered event',
          response: {
            200: z.union([
              z.object({ intact: z.literal(true), events: z.number(), headSeq: z.number() }),
              z.object({ intact: z.literal(false), events: z.number(), firstBrokenSeq: z.number(), problem: z.string() }),
            ]),
            ...errors(401, 403),
          },
        },
      },
      async (request) => c.audit.verify(actorOf(request)),
    );
  };
