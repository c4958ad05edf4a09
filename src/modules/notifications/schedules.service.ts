import type { Executor } from '../../db/database.js';
import type { ReportSchedulesTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, notFound } from '../../lib/errors.js';
import { nextReportRun, reportTimingProblem, type ReportFrequency } from '../../domain/notification-timing.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { checkAddresses } from './channels.js';
import type { SchedulesRepo } from './schedules.repo.js';
import type { ChannelsService } from './channels.service.js';
import type { DeliveryService } from './delivery.service.js';
import { mayManage, mayRead } from './access.js';
import {
  changedFields,
  checkName,
  PDF_REPORTS,
  REPORT_NAMES,
  scheduleView,
  type DeliveryView,
  type ScheduleInput,
  type SchedulePatch,
  type ScheduleView,
} from './notification-types.js';

type Deps = {
  tx: Transactions;
  repo: SchedulesRepo;
  channels: Pick<ChannelsService, 'load'>;
  delivery: Pick<DeliveryService, 'queueReport' | 'view'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

function checkReports(list: ScheduleInput['reports']): NonNullable<ScheduleInput['reports']> {
  const reports = list ?? [
    { report: 'compliance-summary', format: 'pdf' },
    { report: 'recovery-audit', format: 'pdf' },
  ];
  if (!reports.length || reports.length > 10) throw badRequest('reports needs 1 to 10 reports.', { field: 'reports' });
  for (const r of reports) {
    if (!(REPORT_NAMES as readonly string[]).includes(r.report)) throw badRequest(`Unknown report ${String(r.report).slice(0, 60)}.`, { field: 'reports' });
    if (r.format === 'pdf' && !PDF_REPORTS.includes(r.report)) throw badRequest(`${r.report} is available as CSV only.`, { field: 'reports' });
  }
  return reports;
}

/** Scheduled report e-mails: a client's reports sent through an e-mail channel on a schedule. */
export function createSchedulesService({ tx, repo, channels, delivery, audit, clock }: Deps) {
  async function load(exec: Executor, actor: Actor, id: string): Promise<ReportSchedulesTable> {
    const s = await repo.findInScope(exec, id, clientScope(actor));
    if (!s) throw notFound(`No report schedule with id ${id.slice(0, 60)}.`);
    return s;
  }

  return {
    async listSchedules(actor: Actor, filter: { clientId?: string } = {}): Promise<ScheduleView[]> {
      mayRead(actor, filter.clientId);
      return (await repo.list(tx.reader, clientScope(actor), filter.clientId)).map(scheduleView);
    },

    async createSchedule(actor: Actor, input: ScheduleInput): Promise<ScheduleView> {
      const name = checkName(input.name, 'Schedule');
      const recipients = checkAddresses(input.recipients, 'recipients');
      const reports = checkReports(input.reports);
      const timing = {
        frequency: input.frequency ?? 'monthly',
        day: input.day ?? (input.frequency === 'daily' ? null : 1),
        hour: input.hour ?? 7,
        minute: input.minute ?? 0,
      };
      if (timing.frequency === 'daily') timing.day = null;
      const problem = reportTimingProblem(timing);
      if (problem) throw badRequest(problem, { field: 'day' });
      return tx.run(async (t) => {
        const clientId = (await mayManage(t, actor, input.clientId))!;
        const channel = await channels.load(t, actor, input.channelId);
        if (channel.kind !== 'email')
          throw badRequest('A report schedule needs an e-mail channel (its SMTP settings send the report).', { field: 'channelId' });
        if (channel.client_id !== null && channel.client_id !== clientId)
          throw badRequest('That e-mail channel belongs to another client.', { field: 'channelId' });
        const now = clock.now();
        const row: ReportSchedulesTable = {
          id: newId(),
          client_id: clientId,
          name,
          channel_id: channel.id,
          recipients: JSON.stringify(recipients),
          reports: JSON.stringify(reports),
          frequency: timing.frequency,
          day: timing.day,
          hour: timing.hour,
          minute: timing.minute,
          enabled: input.enabled === false ? 0 : 1,
          next_run_at: nextReportRun(timing, now),
          last_run_at: null,
          last_delivery_id: null,
          created_by: actor.id,
          created_at: now,
          updated_at: now,
        };
        await repo.insert(t, row);
        await audit.record(t, actor, {
          action: 'report_schedule.create',
          outcome: 'success',
          clientId,
          targetType: 'report_schedule',
          targetId: row.id,
          details: { name, recipients, reports, ...timing },
        });
        return scheduleView(row);
      });
    },

    async updateSchedule(actor: Actor, id: string, patch: SchedulePatch): Promise<ScheduleView> {
      return tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const s = await load(t, actor, id);
        await mayManage(t, actor, s.client_id);
        const frequency = patch.frequency ?? (s.frequency as ReportFrequency);
        const timing = {
          frequency,
          day: frequency === 'daily' ? null : patch.day !== undefined ? patch.day : frequency === s.frequency ? s.day : 1,
          hour: patch.hour ?? s.hour,
          minute: patch.minute ?? s.minute,
        };
        const problem = reportTimingProblem(timing);
        if (problem) throw badRequest(problem, { field: 'day' });
        let channelId = s.channel_id;
        if (patch.channelId) {
          const channel = await channels.load(t, actor, patch.channelId);
          if (channel.kind !== 'email') throw badRequest('A report schedule needs an e-mail channel.', { field: 'channelId' });
          if (channel.client_id !== null && channel.client_id !== s.client_id)
            throw badRequest('That e-mail channel belongs to another client.', { field: 'channelId' });
          channelId = channel.id;
        }
        const now = clock.now();
        const row: ReportSchedulesTable = {
          ...s,
          name: patch.name !== undefined ? checkName(patch.name, 'Schedule') : s.name,
          channel_id: channelId,
          recipients: patch.recipients ? JSON.stringify(checkAddresses(patch.recipients, 'recipients')) : s.recipients,
          reports: patch.reports ? JSON.stringify(checkReports(patch.reports)) : s.reports,
          ...timing,
          enabled: patch.enabled === undefined ? s.enabled : patch.enabled ? 1 : 0,
          next_run_at: nextReportRun(timing, now),
          updated_at: now,
        };
        await repo.update(t, s.id, row);
        await audit.record(t, actor, {
          action: 'report_schedule.update',
          outcome: 'success',
          clientId: s.client_id,
          targetType: 'report_schedule',
          targetId: s.id,
          details: { name: row.name, changed: changedFields(patch) },
        });
        return scheduleView(row);
      });
    },

    async deleteSchedule(actor: Actor, id: string): Promise<void> {
      await tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const s = await load(t, actor, id);
        await mayManage(t, actor, s.client_id);
        await repo.delete(t, s.id);
        await audit.record(t, actor, {
          action: 'report_schedule.delete',
          outcome: 'success',
          clientId: s.client_id,
          targetType: 'report_schedule',
          targetId: s.id,
          details: { name: s.name },
        });
      });
    },

    /** "Send now": queues the schedule's report e-mail at once (the worker renders and sends it). */
    async runScheduleNow(actor: Actor, id: string): Promise<DeliveryView> {
      return tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const s = await load(t, actor, id);
        await mayManage(t, actor, s.client_id);
        const deliveryId = await delivery.queueReport(t, s, clock.now());
        await repo.update(t, s.id, { last_delivery_id: deliveryId });
        await audit.record(t, actor, {
          action: 'report_schedule.run',
          outcome: 'success',
          clientId: s.client_id,
          targetType: 'report_schedule',
          targetId: s.id,
          details: { name: s.name, deliveryId },
        });
        return delivery.view(t, deliveryId);
      });
    },
  };
}
export type SchedulesService = ReturnType<typeof createSchedulesService>;
