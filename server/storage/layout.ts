/**
 * The member's on-disk layout: one level database under <data-dir>/db with named spaces
 * (sublevels). Keys are big-endian so level's byte order is numeric order.
 *
 *   log    raft log entries, key = index (u64)
 *   raft   raft hard state and membership
 *   kv     MVCC history, key = main revision (u64) + sub revision (u64) [+ tombstone mark]
 *   kvmeta MVCC compacted / current revision
 *   lease  leases, key = lease id (u64)
 *   meta   applied index, member id, cluster id
 *   coord  the coordinator's locks, places and last fencing token (server/coordinator/records.ts)
 *   auth   users, roles, whether auth is enabled, auth revision (server/auth/records.ts)
 *   alarm  raised alarms, key = member id (u64) + alarm type (u8), empty value (server/alarm/alarms.ts)
 *
 * Every change is a BatchOp; one writer turns a list of them into one level batch, so a state
 * change and the applied index that records it land together.
 */
import { readdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';

export type Space = 'log' | 'raft' | 'kv' | 'kvmeta' | 'lease' | 'meta' | 'coord' | 'auth' | 'alarm';
/** Snapshots name a record's space by its index here: append new spaces, never reorder. */
export const SPACES: readonly Space[] = ['log', 'raft', 'kv', 'kvmeta', 'lease', 'meta', 'coord', 'auth', 'alarm'];

/**
 * For long scans (load, compaction, snapshots): classic-level stops a nextv() call after 16 KiB by
 * default, so nextv(1000) of 300-byte records returned about 50 and a scan took 20 times the calls.
 */
export const SCAN_OPTIONS = { highWaterMarkBytes: 1024 * 1024 } as const;

export type BatchOp =
  | { readonly type: 'put'; readonly space: Space; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly space: Space; readonly key: Uint8Array };

type Bin = Level<Uint8Array, Uint8Array>;
type Sub = AbstractSublevel<Bin, string | Buffer | Uint8Array, Uint8Array, Uint8Array>;

export class Storage {
  /** Each space's key prefix in the root database (abstract-level's sublevel prefix, '!name!'). */
  private readonly prefixes: ReadonlyMap<Space, Uint8Array>;

  private constructor(
    private readonly directory: string,
    readonly db: Bin,
    private readonly spaces: ReadonlyMap<Space, Sub>,
  ) {
    this.prefixes = new Map([...spaces].map(([space, sub]) => [space, Buffer.from(sub.prefix, 'utf8')]));
  }

  static async open(dataDir: string): Promise<Storage> {
    await mkdir(dataDir, { recursive: true });
    const db = new Level<Uint8Array, Uint8Array>(join(dataDir, 'db'), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    const spaces = new Map<Space, Sub>();
    for (const space of SPACES) spaces.set(space, db.sublevel<Uint8Array, Uint8Array>(space, { keyEncoding: 'view', valueEncoding: 'view' }));
    // A sublevel opens on its own, a tick after its parent; its synchronous get refuses until then.
    for (const sub of spaces.values()) await sub.open();
    return new Storage(join(dataDir, 'db'), db, spaces);
  }

  space(space: Space): Sub {
    const sub = this.spaces.get(space);
    if (sub === undefined) throw new Error(`unknown space ${space}`);
    return sub;
  }

  /**
   * One atomic level batch. sync=true returns only after the write reached the disk. Keys are
   * written on the root database with their space's prefix put in front here: abstract-level's
   * per-operation sublevel option re-encodes and re-prefixes every key on the apply path.
   */
  async write(ops: readonly BatchOp[], sync: boolean): Promise<void> {
    if (ops.length === 0 && !sync) return;
    const batch = this.db.batch();
    for (const op of ops) {
      const key = this.prefixed(op.space, op.key);
      if (op.type === 'put') batch.put(key, op.value);
      else batch.del(key);
    }
    await batch.write({ sync } as never);
  }

  private prefixed(space: Space, key: Uint8Array): Uint8Array {
    const prefix = this.prefixes.get(space);
    if (prefix === undefined) throw new Error(`unknown space ${space}`);
    const bytes = Buffer.allocUnsafe(prefix.byteLength + key.byteLength);
    bytes.set(prefix, 0);
    bytes.set(key, prefix.byteLength);
    return bytes;
  }

  async get(space: Space, key: Uint8Array): Promise<Uint8Array | undefined> {
    const value = await this.space(space).get(key);
    return value ?? undefined;
  }

  /**
   * Maintenance.Defragment: asks leveldb to compact its whole key range, dropping deleted and
   * overwritten records from disk (compacted MVCC history, old log entries).
   */
  async defragment(): Promise<void> {
    // `level` resolves to classic-level on Node, which has compactRange; its browser-neutral type does not say so.
    const db = this.db as unknown as { compactRange(start: Uint8Array, end: Uint8Array): Promise<void> };
    const first = new Uint8Array([0]);
    const last = new Uint8Array(64).fill(0xff);
    await db.compactRange(first, last);
    // LevelDB compacts only down to the deepest level that held files BEFORE it flushed the
    // memtable, and a fresh database's first flush goes straight to level 2: that table, with
    // every overwritten and deleted record in it, would never be rewritten. A put and delete of
    // the range's two ends (outside every space) makes the next flush span all of level 2, so the
    // second pass merges through it and drops what is dead.
    await this.db.batch([
      { type: 'put', key: first, value: new Uint8Array(0) },
      { type: 'put', key: last, value: new Uint8Array(0) },
    ]);
    await this.db.batch([
      { type: 'del', key: first },
      { type: 'del', key: last },
    ]);
    await db.compactRange(first, last);
  }

  /**
   * Asks leveldb to rewrite the files holding [start, end) of one space, dropping the records
   * deleted there: the compactor's deletes only mark records dead, and without this their space
   * came back only when leveldb's own compactions happened to reach them (a member compacted to
   * 100,000 revisions had 3.3 GB on disk after 10 million writes, all of it mapped in memory).
   */
  async compactSpaceRange(space: Space, start: Uint8Array, end: Uint8Array): Promise<void> {
    const db = this.db as unknown as { compactRange(start: Uint8Array, end: Uint8Array): Promise<void> };
    await db.compactRange(this.prefixed(space, start), this.prefixed(space, end));
  }

  /**
   * Sum of the database files' sizes. Synchronous calls on purpose: the quota check asks every
   * 100 ms under write load, and a directory of a few hundred files costs a few hundred
   * microseconds this way, where a thread-pool round trip per file cost more than the writes.
   */
  async diskSizeBytes(): Promise<number> {
    let total = 0;
    for (const name of readdirSync(this.directory)) {
      const info = statSync(join(this.directory, name), { throwIfNoEntry: false });
      if (info?.isFile()) total += info.size;
    }
    return total;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export function u64Key(value: number | bigint): Uint8Array {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigUint64(0, BigInt(value));
  return key;
}

export function readU64(key: Uint8Array): bigint {
  return new DataView(key.buffer, key.byteOffset, key.byteLength).getBigUint64(0);
}

const text = new TextEncoder();
const untext = new TextDecoder();

export function metaKey(name: string): Uint8Array {
  return text.encode(name);
}

export function encodeNumber(value: number | bigint): Uint8Array {
  return text.encode(value.toString());
}

export function decodeNumber(value: Uint8Array | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(untext.decode(value));
  return Number.isSafeInteger(n) ? n : undefined;
}

export function decodeBigInt(value: Uint8Array | undefined): bigint | undefined {
  if (value === undefined) return undefined;
  return BigInt(untext.decode(value));
}

export const metaOps = {
  appliedIndex(index: number): BatchOp {
    return { type: 'put', space: 'meta', key: metaKey('applied-index'), value: encodeNumber(index) };
  },
};

/**
 * A lease record: its granted TTL and the last checkpointed remaining TTL (0 = none), both in
 * seconds. Without a checkpoint a restart grants the full TTL again, as etcd does.
 */
export const leaseOps = {
  put(id: bigint, ttlSeconds: number, remainingTtlSeconds = 0): BatchOp[] {
    return [{ type: 'put', space: 'lease', key: u64Key(id), value: text.encode(`${ttlSeconds}:${remainingTtlSeconds}`) }];
  },
  del(id: bigint): BatchOp[] {
    return [{ type: 'del', space: 'lease', key: u64Key(id) }];
  },
};

export interface LeaseRecord {
  readonly id: bigint;
  readonly ttlSeconds: number;
  readonly remainingTtlSeconds: number;
}

export async function loadLeases(storage: Storage): Promise<LeaseRecord[]> {
  const leases: LeaseRecord[] = [];
  for await (const [key, value] of storage.space('lease').iterator()) {
    const [ttl, remaining] = untext.decode(value).split(':');
    leases.push({ id: readU64(key), ttlSeconds: Number(ttl), remainingTtlSeconds: Number(remaining ?? 0) });
  }
  return leases;
}
