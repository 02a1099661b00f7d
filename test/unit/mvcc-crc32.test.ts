/** Goal: the native CRC-32 the store hash uses gives exactly the table-driven reference's values, incrementally too. */
import { describe, expect, it } from 'vitest';
import { crc32, crc32Table } from '../../server/mvcc/crc32.js';

describe('crc32', () => {
  it('matches the reference on known vectors and on random chunks fed incrementally', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32Table(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    let seed = 12345;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648);
    let fast = 0;
    let reference = 0;
    for (let chunk = 0; chunk < 200; chunk++) {
      const bytes = Uint8Array.from({ length: next() % 700 }, () => next() & 0xff);
      fast = crc32(bytes, fast);
      reference = crc32Table(bytes, reference);
      expect(fast).toBe(reference);
    }
  });
});
