// The bound on what client-keyed caches hold (documents, operation names, kept answers): a pure
// data structure, tested directly; the caches using it are tested over HTTP elsewhere.
import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../src/bounded-map.js';

const byLength = (key: string, value: string) => key.length + value.length;

describe('BoundedMap', () => {
  it('drops the oldest entry past the entry bound', () => {
    const map = new BoundedMap<string, string>(2, 1_000, byLength);
    map.set('a', '1');
    map.set('b', '2');
    map.set('c', '3');
    expect([map.get('a'), map.get('b'), map.get('c')]).toEqual([undefined, '2', '3']);
    expect(map.size).toBe(2);
  });

  it('drops the oldest entries until the new one fits the size bound', () => {
    const map = new BoundedMap<string, string>(100, 10, byLength);
    map.set('a', 'xxxx'); // 5
    map.set('b', 'xxxx'); // 10
    map.set('c', 'xxxxxxx'); // 8: both older entries must go
    expect([map.get('a'), map.get('b'), map.get('c')]).toEqual([undefined, undefined, 'xxxxxxx']);
    expect(map.weight).toBe(8);
  });

  it('never keeps an entry heavier than the whole budget, and keeps the others', () => {
    const map = new BoundedMap<string, string>(100, 10, byLength);
    map.set('a', 'x');
    map.set('huge', 'x'.repeat(50));
    expect(map.get('huge')).toBeUndefined();
    expect(map.get('a')).toBe('x');
    expect(map.weight).toBe(2);
  });

  it('weighs a replaced entry once, and forgets everything on clear', () => {
    const map = new BoundedMap<string, string>(100, 100, byLength);
    map.set('a', 'xx');
    map.set('a', 'xxxx');
    expect(map.weight).toBe(5);
    map.delete('a');
    expect(map.weight).toBe(0);
    map.set('b', 'x');
    map.clear();
    expect([map.size, map.weight, map.get('b')]).toEqual([0, 0, undefined]);
  });
});
