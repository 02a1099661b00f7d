/** Goal: the chunked key list stays sorted through random inserts, removes and filters, across chunk splits. */
import { describe, expect, it } from 'vitest';
import { SortedKeyList } from '../../server/mvcc/sorted-key-list.js';

interface Item {
  readonly key: string;
  readonly id: number;
}

/** Big-endian bytes as a latin1 image: string order is numeric order. */
function keyOf(n: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(n);
  return bytes.toString('latin1');
}

describe('SortedKeyList', () => {
  it('matches a sorted array under random inserts, removes, retains and scans', () => {
    // Goal: thousands of operations (many chunk splits and merges away) agree with a naive model.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const list = new SortedKeyList<Item>();
    const model = new Map<number, Item>();
    for (let step = 0; step < 6000; step++) {
      const n = Math.floor(random() * 4000);
      if (random() < 0.7) {
        if (!model.has(n)) {
          const item = { key: keyOf(n), id: step };
          list.insert(item);
          model.set(n, item);
        } else {
          expect(() => list.insert({ key: keyOf(n), id: -1 })).toThrow(/already/);
        }
      } else {
        expect(list.remove(keyOf(n))).toBe(model.get(n));
        model.delete(n);
      }
    }
    const sorted = () => [...model.keys()].sort((a, b) => a - b).map((n) => model.get(n));
    expect([...list]).toEqual(sorted());
    expect(list.size).toBe(model.size);
    const from: Item[] = [];
    list.forEachFrom(keyOf(1000), (item) => {
      from.push(item);
      return from.length < 50;
    });
    expect(from).toEqual(sorted().filter((item) => Buffer.from(item!.key, 'latin1').readUInt32BE(0) >= 1000).slice(0, 50));
    list.retain((item) => item.id % 2 === 0);
    for (const [n, item] of model) if (item.id % 2 !== 0) model.delete(n);
    expect([...list]).toEqual(sorted());
    expect(list.size).toBe(model.size);
    expect([...SortedKeyList.fromSorted([...list])]).toEqual([...list]);
  });

  it('scans from a key past the end or in an empty list without visiting anything', () => {
    // Goal: boundary scans are empty, not errors.
    const list = new SortedKeyList<Item>();
    const visited: Item[] = [];
    list.forEachFrom(keyOf(0), (item) => visited.push(item) > 0);
    list.insert({ key: keyOf(5), id: 1 });
    list.forEachFrom(keyOf(6), (item) => visited.push(item) > 0);
    expect(visited).toEqual([]);
    expect(list.remove(keyOf(9))).toBeUndefined();
    expect(() => SortedKeyList.fromSorted([{ key: keyOf(2), id: 0 }, { key: keyOf(1), id: 1 }])).toThrow(/increase/);
  });
});
