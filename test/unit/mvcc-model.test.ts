/** Goal: under seeded random workloads the store agrees with a naive snapshot-per-revision model, also after reload. */
import { describe, expect, it } from 'vitest';
import { changesToBatch, levelReader, loadStore, type KvSource, type MetaSource } from '../../server/mvcc/backend.js';
import { decodeRecordHeader, decodeRevisionKey } from '../../server/mvcc/codec.js';
import { deleteRangeRequest, putRequest, rangeRequest, txnRequest } from '../../server/mvcc/requests.js';
import { MvccStore, type WriteResult } from '../../server/mvcc/store.js';
import { CompareResult, CompareTarget, type KeyValue, type MvccEvent, type RequestOp } from '../../server/mvcc/types.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const t = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
const ALL_FROM_EMPTY = { key: new Uint8Array(0), rangeEnd: Uint8Array.of(0) };
const KEYS = ['', 'a', 'ab', 'b', 'c', 'cc', 'd', 'e'];
const allLeases = (): boolean => true;

/** mulberry32: small, seedable, good enough for choosing operations. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

type Snapshot = Map<string, KeyValue>;

/** The naive model: one full snapshot per revision. */
class Model {
  readonly snapshots: Snapshot[] = [new Map(), new Map()]; // index = revision; revision 1 is empty
  compacted = 0;
  get current(): number {
    return this.snapshots.length - 1;
  }
  latest(): Snapshot {
    return this.snapshots[this.current]!;
  }
  /** Apply writes to a copy of the latest snapshot; commit a revision only if something changed. */
  write(apply: (working: Snapshot, revision: number) => boolean): void {
    const working = new Map(this.latest());
    if (apply(working, this.current + 1)) this.snapshots.push(working);
  }
}

function modelPut(working: Snapshot, revision: number, key: string, value: string): true {
  const previous = working.get(key);
  working.set(key, {
    key: b(key),
    createRevision: previous ? previous.createRevision : revision,
    modRevision: revision,
    version: previous ? previous.version + 1 : 1,
    value: b(value),
    lease: 0n,
  });
  return true;
}

/** An empty range end means the key alone, as etcd. */
function modelDeleteRange(working: Snapshot, from: string, to: string | undefined): boolean {
  if (to === '') to = undefined;
  let changed = false;
  for (const key of [...working.keys()]) {
    if (to === undefined ? key === from : key >= from && key < to) changed = working.delete(key) || changed;
  }
  return changed;
}

interface Fake {
  kv: Map<string, Uint8Array>;
  meta: Map<string, Uint8Array>;
}

/** An in-memory stand-in for the two sublevels, in byte order (hex preserves it). */
function persistFake(fake: Fake, result: WriteResult<unknown>): void {
  for (const op of changesToBatch(result.changes)) {
    const map = op.space === 'kv' ? fake.kv : fake.meta;
    const key = Buffer.from(op.key).toString('hex');
    if (op.type === 'put') map.set(key, op.value);
    else map.delete(key);
  }
}

function fakeSources(fake: Fake): { kv: KvSource; meta: MetaSource } {
  return {
    kv: {
      iterator() {
        const entries = [...fake.kv.keys()].sort().map((key) => [Uint8Array.from(Buffer.from(key, 'hex')), fake.kv.get(key)!] as [Uint8Array, Uint8Array]);
        return { nextv: async (size: number) => entries.splice(0, size), close: async () => undefined };
      },
      getSync: (key) => fake.kv.get(Buffer.from(key).toString('hex')),
    },
    meta: { get: async (key) => fake.meta.get(Buffer.from(key).toString('hex')) },
  };
}

/** What compactor.ts does to level: delete every stored version the store no longer holds. */
function compactFake(fake: Fake, store: MvccStore): void {
  let freed = 0;
  for (const [hex, value] of fake.kv) {
    const key = Buffer.from(hex, 'hex');
    const { revision, tombstone } = decodeRevisionKey(key);
    if (revision.main > store.compactedRevision || store.holds(revision, tombstone, decodeRecordHeader(value).key)) continue;
    fake.kv.delete(hex);
    freed += key.byteLength + value.byteLength;
  }
  for (const op of changesToBatch(store.compactionFinished(store.compactedRevision, freed))) fake.meta.set(Buffer.from(op.key).toString('hex'), (op as { value: Uint8Array }).value);
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function sortedKvs(snapshot: Snapshot, from: string, to: string | undefined): KeyValue[] {
  if (to === '') to = undefined;
  return [...snapshot.values()]
    .filter((kv) => (to === undefined ? t(kv.key) === from : t(kv.key) >= from && t(kv.key) < to))
    .sort((x, y) => Buffer.compare(x.key, y.key));
}

/** One random write against both the store and the model. */
function step(random: () => number, store: MvccStore, model: Model): WriteResult<unknown> | undefined {
  const roll = random();
  const key = pick(random, KEYS);
  const value = `v${Math.floor(random() * 1000)}`;
  if (roll < 0.4) {
    model.write((working, revision) => modelPut(working, revision, key, value));
    return store.put(putRequest(b(key), b(value)), allLeases);
  }
  if (roll < 0.55) {
    model.write((working) => modelDeleteRange(working, key, undefined));
    return store.deleteRange(deleteRangeRequest(b(key)));
  }
  if (roll < 0.65) {
    const [from, to] = [key, pick(random, KEYS)].sort() as [string, string];
    model.write((working) => modelDeleteRange(working, from, to));
    return store.deleteRange(deleteRangeRequest(b(from), { rangeEnd: b(to) }));
  }
  if (roll < 0.85) return randomTxn(random, store, model, key, value);
  if (roll < 0.9) {
    const doomed = KEYS.filter(() => random() < 0.3);
    model.write((working) => doomed.map((doomedKey) => working.delete(doomedKey)).some(Boolean));
    return store.deleteKeys(doomed.map(b));
  }
  if (model.current > model.compacted) {
    const revision = model.compacted + 1 + Math.floor(random() * (model.current - model.compacted));
    model.compacted = revision;
    return store.compact(revision);
  }
  return undefined;
}

function randomTxn(random: () => number, store: MvccStore, model: Model, key: string, value: string): WriteResult<unknown> {
  const expectedVersion = random() < 0.5 ? (model.latest().get(key)?.version ?? 0) : 1;
  const succeeded = (model.latest().get(key)?.version ?? 0) === expectedVersion;
  const [first, second, third] = [...KEYS].sort(() => random() - 0.5) as [string, string, string];
  const success: RequestOp[] = [
    { type: 'put', request: putRequest(b(first), b(value)) },
    { type: 'deleteRange', request: deleteRangeRequest(b(second)) },
  ];
  const failure: RequestOp[] = [{ type: 'put', request: putRequest(b(third), b(value)) }];
  model.write((working, revision) =>
    succeeded ? [modelPut(working, revision, first, value), modelDeleteRange(working, second, undefined)].some(Boolean) : modelPut(working, revision, third, value),
  );
  const compare = { key: b(key), rangeEnd: new Uint8Array(0), target: CompareTarget.Version, result: CompareResult.Equal, operand: { kind: 'version' as const, version: expectedVersion } };
  const result = store.txn(txnRequest({ compare: [compare], success, failure }), allLeases);
  expect(result.response.succeeded).toBe(succeeded);
  return result;
}

/** Replaying the events of revision r onto the model's snapshot r-1 must give snapshot r. */
function checkEvents(store: MvccStore, model: Model): void {
  const from = Math.max(model.compacted + 1, 2);
  const events = store.eventsInRange(from, model.current, ALL_FROM_EMPTY);
  const byRevision = new Map<number, MvccEvent[]>();
  for (const event of events) byRevision.set(event.kv.modRevision, [...(byRevision.get(event.kv.modRevision) ?? []), event]);
  for (let revision = from; revision <= model.current; revision++) {
    const replayed = new Map(model.snapshots[revision - 1]!);
    for (const event of byRevision.get(revision) ?? []) {
      const key = t(event.kv.key);
      expect(event.prevKv).toEqual(replayed.get(key));
      if (event.type === 'put') replayed.set(key, event.kv);
      else replayed.delete(key);
    }
    expect(replayed).toEqual(model.snapshots[revision]);
  }
}

function checkRanges(random: () => number, store: MvccStore, model: Model): void {
  expect(store.currentRevision).toBe(model.current);
  expect(store.compactedRevision).toBe(model.compacted);
  for (let revision = Math.max(1, model.compacted); revision <= model.current; revision++) {
    const snapshot = model.snapshots[revision]!;
    expect(store.range(rangeRequest(new Uint8Array(0), { rangeEnd: Uint8Array.of(0), revision })).kvs).toEqual(sortedKvs(snapshot, '', '\u{ffff}'));
    const [from, to] = [pick(random, KEYS), pick(random, KEYS)].sort() as [string, string];
    const single = random() < 0.3;
    const request = rangeRequest(b(from), { rangeEnd: single ? new Uint8Array(0) : b(to), revision });
    expect(store.range(request).kvs).toEqual(sortedKvs(snapshot, from, single ? undefined : to));
  }
}

describe('store against a snapshot model', () => {
  // memory: values kept in the store; level: values read back through the reader, with a cache
  // so small that nearly every read misses, and versions unpinned as soon as they are persisted.
  for (const mode of ['memory', 'level'] as const) {
    for (const seed of [1, 2, 3, 42, 1234, 99991]) {
      it(`agrees with the model and survives reload (${mode}, seed ${seed})`, async () => {
        // Goal: every readable revision, every event and a reload from the persisted changes match the model.
        const random = prng(seed);
        const fake: Fake = { kv: new Map(), meta: new Map() };
        const store = mode === 'memory' ? new MvccStore() : new MvccStore({ reader: levelReader(fakeSources(fake).kv), cacheBytes: 400 });
        const model = new Model();
        for (let index = 0; index < 300; index++) {
          const result = step(random, store, model);
          if (result !== undefined) persistFake(fake, result);
          store.markDurable(store.currentRevision);
          // Half the time the compactor has run, half the time a reload meets its garbage.
          if (result !== undefined && result.events.length === 0 && random() < 0.5) compactFake(fake, store);
          if (index % 25 !== 24) continue;
          checkRanges(random, store, model);
          checkEvents(store, model);
          const sources = fakeSources(fake);
          const reloaded = await loadStore(sources.kv, sources.meta);
          expect(reloaded.hash()).toEqual(store.hash());
          expect(reloaded.sizeBytes).toBe(store.sizeBytes);
          expect(reloaded.eventsInRange(model.compacted, model.current, ALL_FROM_EMPTY)).toEqual(
            store.eventsInRange(model.compacted, model.current, ALL_FROM_EMPTY),
          );
          checkRanges(random, reloaded, model);
        }
      });
    }
  }
});
