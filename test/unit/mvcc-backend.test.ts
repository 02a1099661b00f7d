/** Goal: a store persisted through changesToBatch into a real level DB reloads with the same answers. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { changesToBatch, hashLevel, KV_SUBLEVEL, loadStore, META_SUBLEVEL, SUBLEVEL_OPTIONS, toLevelOps } from '../../server/mvcc/backend.js';
import { deleteRangeRequest, putRequest, rangeRequest, txnRequest } from '../../server/mvcc/requests.js';
import { MvccStore, type WriteResult } from '../../server/mvcc/store.js';
import { Compactor } from '../../server/mvcc/compactor.js';
import { silentLogger } from '../../server/log.js';
import type { MvccStore as StoreType } from '../../server/mvcc/store.js';

const b = (text: string): Uint8Array => new TextEncoder().encode(text);
const ALL = Uint8Array.of(0);
const allLeases = (): boolean => true;

type Db = Level<Uint8Array, Uint8Array>;

function open(path: string) {
  const db: Db = new Level<Uint8Array, Uint8Array>(path, SUBLEVEL_OPTIONS);
  const kv = db.sublevel<Uint8Array, Uint8Array>(KV_SUBLEVEL, SUBLEVEL_OPTIONS);
  const meta = db.sublevel<Uint8Array, Uint8Array>(META_SUBLEVEL, SUBLEVEL_OPTIONS);
  return { db, kv, meta };
}

type Opened = ReturnType<typeof open>;

/** What the apply loop does: write the changes (plus, in real life, the applied index) in one batch. */
async function persist(opened: Opened, result: WriteResult<unknown>): Promise<void> {
  await opened.db.batch(toLevelOps(changesToBatch(result.changes), { kv: opened.kv, kvmeta: opened.meta }));
}

/** Every answer a reader can get, at every readable revision. */
function observe(store: StoreType) {
  const readable: number[] = [];
  for (let revision = Math.max(1, store.compactedRevision); revision <= store.currentRevision; revision++) readable.push(revision);
  return {
    currentRevision: store.currentRevision,
    compactedRevision: store.compactedRevision,
    sizeBytes: store.sizeBytes,
    hash: store.hash(),
    ranges: readable.map((revision) => store.range(rangeRequest(ALL, { rangeEnd: ALL, revision }))),
    events: store.eventsInRange(Math.max(1, store.compactedRevision), store.currentRevision, { key: ALL, rangeEnd: ALL }),
    leased: [...store.keysWithLease()],
  };
}

describe('persistence through level', () => {
  let directory = '';
  let opened: Opened | undefined;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'gavel-mvcc-'));
  });

  afterEach(async () => {
    await opened?.db.close();
    opened = undefined;
    await rm(directory, { recursive: true, force: true });
  });

  /** The member's compactor, run to the end against this database. */
  async function compactLevel(store: StoreType): Promise<void> {
    const compactor = new Compactor({
      kv: opened!.kv,
      write: (ops) => opened!.db.batch(toLevelOps(ops, { kv: opened!.kv, kvmeta: opened!.meta })),
      store: () => store,
      logger: silentLogger,
      batchRecords: 2,
      pauseMs: 0,
    });
    compactor.schedule(store.compactedRevision);
    await compactor.idle();
  }

  async function levelHash(store: StoreType, revision: number): Promise<number> {
    const snapshot = opened!.db.snapshot();
    try {
      return await hashLevel(opened!.kv, snapshot, () => store, revision);
    } finally {
      await snapshot.close();
    }
  }

  async function reopen(): Promise<StoreType> {
    await opened?.db.close();
    opened = open(directory);
    return loadStore(opened.kv, opened.meta);
  }

  it('reloads the same store after writes, deletes, txns and compaction', async () => {
    // Goal: loadStore(changesToBatch(...)) is the identity on everything observable.
    const store = new MvccStore();
    opened = open(directory);
    const writes = [
      () => store.put(putRequest(b('a'), b('1'), { lease: 0x7fffffffffffffffn }), allLeases),
      () => store.put(putRequest(b('b'), b('2')), allLeases),
      () => store.put(putRequest(b('a'), b('3'), { lease: 0x7fffffffffffffffn }), allLeases),
      () => store.deleteRange(deleteRangeRequest(b('b'))),
      () => store.txn(txnRequest({ success: [{ type: 'put', request: putRequest(b('c'), b('4')) }, { type: 'put', request: putRequest(b('b'), b('5')) }] }), allLeases),
      () => store.put(putRequest(new Uint8Array(0), b('empty key')), allLeases),
      () => store.deleteKeys([b('c')]),
    ];
    for (const write of writes) await persist(opened, write());
    const expected = observe(store);
    expect(observe(await reopen())).toEqual(expected);

    await persist(opened!, store.compact(5));
    const compacted = observe(store);
    const reloaded = await reopen();
    expect(observe(reloaded)).toEqual(compacted);
    expect(reloaded.compactedRevision).toBe(5);

    // The dropped versions stay in level until the compactor deletes them; a reload ignores them.
    const count = async (): Promise<number> => {
      let stored = 0;
      for await (const _entry of opened!.kv.iterator()) stored++;
      return stored;
    };
    expect(await count()).toBe(8);
    // A member hashes by scanning level, where the dropped versions still are: same answer.
    expect(await levelHash(store, 0)).toBe(store.hash());
    expect(await levelHash(store, 6)).toBe(store.hash(6));
    await compactLevel(store);
    expect(await levelHash(store, 0)).toBe(store.hash());
    expect(await count()).toBe(5); // a@4, c@6.0, b@6.1, ''@7, c@8
    expect(store.finishedCompactRevision).toBe(5);
    const after = await reopen();
    expect(observe(after)).toEqual(observe(store));
    expect(after.finishedCompactRevision).toBe(5);
  });

  it('remembers the current revision after compacting a fully deleted store', async () => {
    // Goal: the meta sublevel keeps the revision when no version survives compaction.
    const store = new MvccStore();
    opened = open(directory);
    await persist(opened, store.put(putRequest(b('a'), b('1')), allLeases));
    await persist(opened, store.put(putRequest(b('a'), b('2')), allLeases));
    await persist(opened, store.deleteRange(deleteRangeRequest(b('a'))));
    await persist(opened, store.compact(4));
    await compactLevel(store);
    expect(store.sizeBytes).toBe(0);
    const reloaded = await reopen();
    expect(reloaded.currentRevision).toBe(4);
    expect(reloaded.compactedRevision).toBe(4);
    expect(reloaded.sizeBytes).toBe(0);
    expect(reloaded.put(putRequest(b('a'), b('3')), allLeases).revision).toBe(5);
  });

  it('loads an empty database as a new store', async () => {
    // Goal: a fresh data dir starts at revision 1.
    const reloaded = await reopen();
    expect(reloaded.currentRevision).toBe(1);
    expect(reloaded.compactedRevision).toBe(0);
  });

  it('refuses to load a history with a gap in sub revisions', async () => {
    // Goal: invariants are checked after reading, not trusted.
    const store = new MvccStore();
    opened = open(directory);
    const result = store.txn(txnRequest({ success: [{ type: 'put', request: putRequest(b('a'), b('1')) }, { type: 'put', request: putRequest(b('b'), b('2')) }] }), allLeases);
    await persist(opened, { ...result, changes: result.changes.slice(1) });
    await expect(reopen()).rejects.toThrow(/not contiguous/);
  });
});
