// The DateTime scalar's quick acceptance of plain timestamps (src/resolvers/DateTime.ts) must
// accept exactly what the full check (RFC 3339 pattern and `Date.parse`) accepts. Property-based.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isDateTime } from '../src/resolvers/DateTime.js';

// The check as it was before the quick path: the reference, kept here on purpose.
const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const fullCheck = (value: string) => RFC_3339.test(value) && !Number.isNaN(Date.parse(value));

const digits = (length: number, max: number) =>
  fc.integer({ min: 0, max }).map((n) => String(n).padStart(length, '0'));
/** Timestamps near the edges: every field may leave its range, the separators may change. */
const timestamp = fc
  .tuple(
    digits(4, 9999),
    digits(2, 14),
    digits(2, 33),
    fc.constantFrom('T', 't', ' ', 'X'),
    digits(2, 25),
    digits(2, 61),
    digits(2, 61),
    fc.option(fc.stringMatching(/^\.\d{0,12}$/), { nil: '' }),
    fc.oneof(
      fc.constantFrom('Z', 'z', '', 'UTC'),
      fc.tuple(fc.constantFrom('+', '-'), digits(2, 25), digits(2, 61)).map(([s, h, m]) => `${s}${h}:${m}`),
    ),
  )
  .map(
    ([y, mo, d, sep, h, mi, s, fraction, zone]) => `${y}-${mo}-${d}${sep}${h}:${mi}:${s}${fraction}${zone}`,
  );

describe('DateTime check', () => {
  it('accepts exactly what the RFC 3339 pattern and Date.parse accept', () => {
    fc.assert(
      fc.property(timestamp, (value) => {
        expect(isDateTime(value)).toBe(fullCheck(value));
      }),
      { numRuns: 20_000 },
    );
  });

  it('accepts the upstream form and refuses what is not a timestamp', () => {
    expect(isDateTime('2024-05-01T12:00:00.421000Z')).toBe(true);
    expect(isDateTime('2024-02-29T23:59:59+05:30')).toBe(true);
    expect(isDateTime('2024-13-01T00:00:00Z')).toBe(false);
    expect(isDateTime('2024-01-01T00:00:60Z')).toBe(false);
    expect(isDateTime('yesterday')).toBe(false);
    expect(isDateTime(1714564800000)).toBe(false);
  });
});
