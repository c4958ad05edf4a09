/**
 * How long a device job lives and how often it is tried, for every producer of jobs (the agent's
 * own jobs and Intune rotations requested by the graph module alike).
 */
export const JOB_MAX_ATTEMPTS = 3;
export const JOB_LIFETIME_DAYS = 7;

/** When a job created at `now` expires. */
export const jobExpiresAt = (now: string, days = JOB_LIFETIME_DAYS) => new Date(Date.parse(now) + days * 86_400_000).toISOString();
