import type { Notifier } from './notifier.js';
import type { ChannelsService } from './channels.service.js';
import type { RulesService } from './rules.service.js';
import type { DeliveryService } from './delivery.service.js';
import type { SchedulesService } from './schedules.service.js';

export * from './notification-types.js';

type Parts = {
  channels: ChannelsService;
  rules: RulesService;
  delivery: DeliveryService;
  schedules: SchedulesService;
  /** The producers' side (the outbox), for callers that hold only this service. */
  notifier: Notifier;
};

/**
 * Notifications as the routes, the scheduler and the tests see them: channels, rules, the
 * delivery worker and log, and scheduled report e-mails, each its own factory (wired in the
 * container); this is only their common face.
 */
export function createNotificationsService({ channels, rules, delivery, schedules, notifier }: Parts) {
  return {
    notifier,

    /** The reports module's renderer, plugged in by the container when it exists. */
    useReportRenderer: delivery.useReportRenderer,
    /** One pass of the delivery worker (the 'notifications' scheduler task; tests call it step by step). */
    runOnce: delivery.runOnce,

    listChannels: channels.listChannels,
    createChannel: channels.createChannel,
    updateChannel: channels.updateChannel,
    deleteChannel: channels.deleteChannel,
    testChannel: channels.testChannel,

    listRules: rules.listRules,
    createRule: rules.createRule,
    updateRule: rules.updateRule,
    deleteRule: rules.deleteRule,

    listDeliveries: delivery.listDeliveries,
    getDelivery: delivery.getDelivery,

    listSchedules: schedules.listSchedules,
    createSchedule: schedules.createSchedule,
    updateSchedule: schedules.updateSchedule,
    deleteSchedule: schedules.deleteSchedule,
    runScheduleNow: schedules.runScheduleNow,
  };
}
export type NotificationsService = ReturnType<typeof createNotificationsService>;
