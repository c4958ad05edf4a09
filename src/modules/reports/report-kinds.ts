/**
 * The reports and which of them exist as PDF. Its own module so `keywarden report … --help` describes
 * them without loading the reports service (CSV writer, PDF renderer, compliance code).
 */
export const REPORT_KINDS = ['compliance-summary', 'devices', 'escrow-coverage', 'recovery-audit', 'recovery-boots'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
export const PDF_REPORTS: readonly ReportKind[] = ['compliance-summary', 'recovery-audit'];
