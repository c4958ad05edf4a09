import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { stringify } from 'csv-stringify/sync';
import type { Container } from '../../container.js';
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
        // The first step runs the permission check and audits the export before any byte is sent.
        const first = await events.next();
        const all = first.done ? [] : [first.value];
        for await (const e of events) all.push(e);
        const stamp = new Date().toISOString().slice(0, 10);
        reply.header('content-disposition', `attachment; filename="keywarden-audit-${stamp}.${format}"`);
        if (format === 'csv') {
          reply.type('text/csv; charset=utf-8');
          return stringify(
            all.map((e) => CSV_COLUMNS.map((k) => (k === 'details' ? (e.details ? JSON.stringify(e.details) : '') : (e[k] ?? '')))),
            { header: true, columns: CSV_COLUMNS as string[] },
          );
        }
        reply.type('application/x-ndjson; charset=utf-8');
        return all.map((e) => JSON.stringify(e)).join('\n') + (all.length ? '\n' : '');
      },
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
