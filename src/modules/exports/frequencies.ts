/**
 * How often a scheduled export runs, in minutes. Its own module so `keywarden export schedule add --help`
 * lists the choices without loading the export service (age, the PDF renderer).
 */
export const FREQUENCIES = { daily: 24 * 60, weekly: 7 * 24 * 60 } as const;
export type Frequency = keyof typeof FREQUENCIES;
