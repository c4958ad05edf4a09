/** Timestamps are stored as ISO-8601 UTC text on both engines, so they sort and compare as text. */
export type Clock = { now(): string };
export const systemClock: Clock = { now: () => new Date().toISOString() };
