import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeMountPoint, parseVolumeType } from './volume.js';

describe('parseVolumeType', () => {
  it.each([
    [1, 'os'],
    ['1', 'os'],
    ['operatingSystemVolume', 'os'],
    [2, 'fixed'],
    ['2', 'fixed'],
    ['fixedDataVolume', 'fixed'],
    [3, 'removable'],
    ['removableDataVolume', 'removable'],
    [4, 'unknown'],
    ['unknownFutureValue', 'unknown'],
    ['OperatingSystem', 'os'],
    ['Data', 'fixed'],
    ['OS', 'os'],
    ['Operating System', 'os'],
    ['os volume', 'os'],
    ['fixed', 'fixed'],
    ['DATA', 'fixed'],
    ['Removable', 'removable'],
    ['usb', 'removable'],
    ['USB Drive', 'removable'],
    [' 3 ', 'removable'],
    [0, 'unknown'],
    [1.5, 'unknown'],
    ['constructor', 'unknown'],
    ['toString', 'unknown'],
    ['', 'unknown'],
    [null, 'unknown'],
    [undefined, 'unknown'],
    [{}, 'unknown'],
  ])('%j → %s', (input, expected) => {
    expect(parseVolumeType(input)).toBe(expected);
  });

  it('never throws', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        expect(['os', 'fixed', 'removable', 'unknown']).toContain(parseVolumeType(v));
      }),
      { numRuns: 200 },
    );
  });
});

describe('normalizeMountPoint', () => {
  it.each([
    ['c', 'C:'],
    ['C:', 'C:'],
    ['c:\\', 'C:'],
    ['C:/', 'C:'],
    ['  d: ', 'D:'],
    ['\\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\', '\\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\'],
    [' \\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\ ', '\\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\'],
    ['C:\\Mount\\Data', 'C:\\Mount\\Data'],
    ['', null],
    ['   ', null],
  ])('%j → %j', (input, expected) => {
    expect(normalizeMountPoint(input)).toBe(expected);
  });
});
