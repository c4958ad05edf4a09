import { describe, expect, it } from 'vitest';
import { daysLeft, expiryStage, stageToWarn } from './certificate-expiry.js';

const NOW = '2026-12-07T12:00:00.000Z';
const inDays = (d: number) => new Date(Date.parse(NOW) + d * 86_400_000).toISOString();

describe('certificate expiry warnings', () => {
  it('puts a certificate in a stage by the days it has left', () => {
    expect(expiryStage(inDays(45), NOW)).toBeNull();
    expect(expiryStage(inDays(30), NOW)).toBe('30');
    expect(expiryStage(inDays(8), NOW)).toBe('30');
    expect(expiryStage(inDays(7), NOW)).toBe('7');
    expect(expiryStage(inDays(0.5), NOW)).toBe('7');
    expect(expiryStage(inDays(0), NOW)).toBe('expired');
    expect(expiryStage(inDays(-3), NOW)).toBe('expired');
    expect(expiryStage('not a date', NOW)).toBeNull();
    expect(daysLeft(inDays(5.5), NOW)).toBe(5);
  });

  it('tells each stage once per certificate, never an earlier stage again, and starts over for a new certificate', () => {
    expect(stageToWarn('AA', inDays(20), NOW, null)).toBe('30');
    expect(stageToWarn('AA', inDays(20), NOW, 'AA:30')).toBeNull();
    expect(stageToWarn('AA', inDays(5), NOW, 'AA:30')).toBe('7');
    expect(stageToWarn('AA', inDays(5), NOW, 'AA:7')).toBeNull();
    expect(stageToWarn('AA', inDays(-1), NOW, 'AA:7')).toBe('expired');
    expect(stageToWarn('AA', inDays(-1), NOW, 'AA:expired')).toBeNull();
    // First seen with 5 days left: one warning (7), not 30 then 7.
    expect(stageToWarn('BB', inDays(5), NOW, null)).toBe('7');
    // A new certificate (another thumbprint) starts over.
    expect(stageToWarn('CC', inDays(20), NOW, 'AA:expired')).toBe('30');
    expect(stageToWarn('CC', inDays(400), NOW, 'AA:expired')).toBeNull();
  });
});
