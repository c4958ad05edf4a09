import type { Kysely } from 'kysely';

/**
 * Certificate expiry warnings (the MSP app's certificate and per-client apps' certificates): which
 * warning was last sent for which certificate, as `<thumbprint>:<stage>` (stage 30, 7 or expired),
 * so each stage is told once per certificate and a new certificate starts over.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('graph_msp_app').addColumn('certificate_warned', 'text').execute();
  await db.schema.alterTable('graph_connections').addColumn('certificate_warned', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('graph_connections').dropColumn('certificate_warned').execute();
  await db.schema.alterTable('graph_msp_app').dropColumn('certificate_warned').execute();
}
