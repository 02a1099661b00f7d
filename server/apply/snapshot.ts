/**
 * State-machine snapshots for members too far behind to catch up from the log. A snapshot is the
 * list of level records of the state spaces (kv, kvmeta, lease, coord, auth, alarm, and the members registry) as of
 * the applied index, built from memory so it is consistent. Installing one clears those spaces,
 * writes the records and reloads the state with the same loaders a restart uses: one path.
 */
import { assert } from '../errors.js';
import { changesToBatch } from '../mvcc/backend.js';
import type { StoreChange } from '../mvcc/store-change.js';
import { leaseOps, metaOps, SPACES, type BatchOp, type Space, type Storage } from '../storage/layout.js';
import type { StateMachine } from './state-machine.js';
import { authRecords } from '../auth/records.js';
import { alarmRecords } from '../alarm/alarms.js';

const MAGIC = 0x47565331; // "GVS1"
/** The spaces a snapshot replaces; 'log' and 'raft' belong to Raft, 'meta' holds identity too. */
const STATE_SPACES: readonly Space[] = ['kv', 'kvmeta', 'lease', 'coord', 'auth', 'alarm'];

export function buildSnapshot(machine: StateMachine): Uint8Array {
  const ops: BatchOp[] = [];
  const changes: StoreChange[] = machine.store.persistedVersions().map((v) => ({ type: 'put', revision: v.revision, kv: v.kv, tombstone: v.tombstone }));
  changes.push({ type: 'meta', ...machine.store.meta });
  ops.push(...changesToBatch(changes));
  for (const lease of machine.lessor.snapshot()) ops.push(...leaseOps.put(lease.id, lease.ttlSeconds, lease.remainingTtlSeconds));
  ops.push(...machine.membership.ops());
  ops.push(...machine.coordinator.records());
  ops.push(...authRecords(machine.auth.store));
  ops.push(...alarmRecords(machine.alarms));
  return encodeOps(ops);
}

/** Replaces the state spaces with the snapshot's records and records `index` as applied. Synced. */
export async function installSnapshot(storage: Storage, data: Uint8Array, index: number): Promise<void> {
  const ops = decodeOps(data);
  for (const space of STATE_SPACES) await storage.space(space).clear();
  await storage.write([...ops, metaOps.appliedIndex(index)], true);
}

function encodeOps(ops: readonly BatchOp[]): Uint8Array {
  let size = 8;
  for (const op of ops) if (op.type === 'put') size += 9 + op.key.byteLength + op.value.byteLength;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC);
  let offset = 8;
  let count = 0;
  for (const op of ops) {
    if (op.type !== 'put') continue;
    view.setUint8(offset, SPACES.indexOf(op.space));
    view.setUint32(offset + 1, op.key.byteLength);
    bytes.set(op.key, offset + 5);
    offset += 5 + op.key.byteLength;
    view.setUint32(offset, op.value.byteLength);
    bytes.set(op.value, offset + 4);
    offset += 4 + op.value.byteLength;
    count++;
  }
  view.setUint32(4, count);
  return bytes;
}

function decodeOps(bytes: Uint8Array): BatchOp[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert(bytes.byteLength >= 8 && view.getUint32(0) === MAGIC, 'not a gavel snapshot');
  const count = view.getUint32(4);
  const ops: BatchOp[] = [];
  let offset = 8;
  for (let i = 0; i < count; i++) {
    const space = SPACES[view.getUint8(offset)];
    assert(space !== undefined, 'snapshot record names an unknown space');
    const keyLength = view.getUint32(offset + 1);
    const key = bytes.slice(offset + 5, offset + 5 + keyLength);
    offset += 5 + keyLength;
    const valueLength = view.getUint32(offset);
    const value = bytes.slice(offset + 4, offset + 4 + valueLength);
    offset += 4 + valueLength;
    assert(offset <= bytes.byteLength, 'snapshot is truncated');
    ops.push({ type: 'put', space, key, value });
  }
  return ops;
}
