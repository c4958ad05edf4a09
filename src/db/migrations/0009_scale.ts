import type { Kysely } from 'kysely';

/**
 * Scale and metrics: /metrics reports the agent jobs still waiting for their device
 * (`keywarden_agent_jobs_pending`) at every scrape; the jobs table keeps every finished job, so
 * counting by state needs an index of its own (jobs_device_idx starts with device_id).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('jobs_state_idx').on('jobs').columns(['state']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('jobs_state_idx').execute();
}
