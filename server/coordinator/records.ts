/**
 * The coordinator's level records, in the 'coord' space. One record per lock and one per place,
 * so a change writes only what it touched (a grant rewrites one place, a release deletes one):
 *
 *   0x00 "last-token"                        the last fencing token handed out
 *   0x01 <name>                              a lock: {limit, delay}
 *   0x02 <u32 name length> <name> <u64 joinedIndex>   a place: {lease, owner, mode, lockDelayMs, token}
 *
 * Values are JSON text (int64 lease ids as decimal strings). Places sort by joinedIndex under
 * their lock, which is also the waiters' FIFO order.
 */
import { assert } from '../errors.js';
import type { BatchOp } from '../storage/layout.js';
import type { LockDelay, LockMode, Place } from './lock-queue.js';

const LAST_TOKEN = Buffer.concat([Buffer.from([0]), Buffer.from('last-token')]);
const LOCK = 1;
const PLACE = 2;

export interface LockRecord {
  readonly key: string;
  readonly limit: number;
  readonly delay: LockDelay | undefined;
}

export interface PlaceRecord {
  readonly lockKey: string;
  readonly place: Place;
}

export interface CoordinatorRecords {
  readonly lastToken: number;
  readonly locks: readonly LockRecord[];
  readonly places: readonly PlaceRecord[];
}

function nameBytes(lockKey: string): Buffer {
  return Buffer.from(lockKey, 'latin1');
}

function lockRecordKey(lockKey: string): Buffer {
  return Buffer.concat([Buffer.from([LOCK]), nameBytes(lockKey)]);
}

function placeRecordKey(lockKey: string, joinedIndex: number): Buffer {
  const name = nameBytes(lockKey);
  const key = Buffer.alloc(1 + 4 + name.byteLength + 8);
  key.writeUInt8(PLACE, 0);
  key.writeUInt32BE(name.byteLength, 1);
  name.copy(key, 5);
  key.writeBigUInt64BE(BigInt(joinedIndex), 5 + name.byteLength);
  return key;
}

export const coordinatorOps = {
  lastToken(token: number): BatchOp {
    return { type: 'put', space: 'coord', key: LAST_TOKEN, value: Buffer.from(String(token)) };
  },
  putLock(lockKey: string, limit: number, delay: LockDelay | undefined): BatchOp {
    const value = JSON.stringify({ limit, delay: delay === undefined ? null : [delay.id, delay.delayMs] });
    return { type: 'put', space: 'coord', key: lockRecordKey(lockKey), value: Buffer.from(value) };
  },
  delLock(lockKey: string): BatchOp {
    return { type: 'del', space: 'coord', key: lockRecordKey(lockKey) };
  },
  putPlace(lockKey: string, place: Place): BatchOp {
    const value = JSON.stringify({ lease: place.lease.toString(), owner: place.owner, mode: place.mode, lockDelayMs: place.lockDelayMs, token: place.token ?? null });
    return { type: 'put', space: 'coord', key: placeRecordKey(lockKey, place.joinedIndex), value: Buffer.from(value) };
  },
  delPlace(lockKey: string, place: Place): BatchOp {
    return { type: 'del', space: 'coord', key: placeRecordKey(lockKey, place.joinedIndex) };
  },
};

/** Decodes the records of the 'coord' space, in any order. Checked: a bad record is a crash, not a guess. */
export function decodeRecords(records: Iterable<readonly [Uint8Array, Uint8Array]>): CoordinatorRecords {
  let lastToken = 0;
  const locks: LockRecord[] = [];
  const places: PlaceRecord[] = [];
  for (const [rawKey, rawValue] of records) {
    const key = Buffer.from(rawKey.buffer, rawKey.byteOffset, rawKey.byteLength);
    const text = Buffer.from(rawValue.buffer, rawValue.byteOffset, rawValue.byteLength).toString('utf8');
    switch (key[0]) {
      case 0:
        assert(key.equals(LAST_TOKEN), 'unknown coordinator meta record');
        lastToken = Number(text);
        assert(Number.isSafeInteger(lastToken) && lastToken >= 0, `coordinator last token ${text}`);
        break;
      case LOCK:
        locks.push(decodeLock(key.subarray(1).toString('latin1'), text));
        break;
      case PLACE:
        places.push(decodePlace(key, text));
        break;
      default:
        assert(false, `unknown coordinator record type ${key[0]}`);
    }
  }
  return { lastToken, locks, places };
}

function decodeLock(lockKey: string, text: string): LockRecord {
  const value = JSON.parse(text) as { limit?: unknown; delay?: unknown };
  const limit = value.limit;
  assert(typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 0, `lock record limit ${String(limit)}`);
  let delay: LockDelay | undefined;
  if (Array.isArray(value.delay)) {
    const [id, delayMs] = value.delay as unknown[];
    assert(typeof id === 'number' && typeof delayMs === 'number' && Number.isSafeInteger(id) && Number.isSafeInteger(delayMs), 'lock record delay');
    delay = { id, delayMs };
  }
  return { key: lockKey, limit, delay };
}

function decodePlace(key: Buffer, text: string): PlaceRecord {
  assert(key.byteLength >= 13, 'place record key too short');
  const nameLength = key.readUInt32BE(1);
  assert(key.byteLength === 13 + nameLength, 'place record key length');
  const lockKey = key.subarray(5, 5 + nameLength).toString('latin1');
  const joinedIndex = Number(key.readBigUInt64BE(5 + nameLength));
  const value = JSON.parse(text) as { lease?: unknown; owner?: unknown; mode?: unknown; lockDelayMs?: unknown; token?: unknown };
  assert(typeof value.lease === 'string' && /^\d+$/.test(value.lease), 'place record lease');
  assert(typeof value.owner === 'string', 'place record owner');
  assert(value.mode === 'exclusive' || value.mode === 'shared', 'place record mode');
  assert(typeof value.lockDelayMs === 'number' && Number.isSafeInteger(value.lockDelayMs), 'place record lock-delay');
  assert(value.token === null || (typeof value.token === 'number' && Number.isSafeInteger(value.token)), 'place record token');
  const place: Place = {
    lease: BigInt(value.lease),
    owner: value.owner,
    mode: value.mode as LockMode,
    joinedIndex,
    lockDelayMs: value.lockDelayMs,
    token: value.token === null ? undefined : (value.token as number),
  };
  return { lockKey, place };
}
