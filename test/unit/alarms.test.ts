// Goal: alarms are replicated state with etcd's semantics — applied from log entries, persisted, carried by snapshots and reloaded — and while NOSPACE is raised every member refuses exactly the writes etcd's capped applier refuses; the quota arithmetic is etcd's.
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Storage } from '../../server/storage/layout.js';
import { loadMachineState } from '../../server/apply/load.js';
import { StateMachine, type ApplyResult } from '../../server/apply/state-machine.js';
import type { Mutation } from '../../server/apply/request.js';
import { copySnapshot, machineOn as machineUnder, openStorage as openTempStorage, removeTempDirs, type MachineUnderTest } from '../helpers/machine.js';
import { AlarmType, alarmText } from '../../server/alarm/alarms.js';
import { AlarmAction } from '../../server/alarm/apply.js';
import { DEFAULT_QUOTA_BYTES, effectiveQuotaBytes, fitsQuota, putCost, txnCost, txnPuts } from '../../server/alarm/quota.js';
import { DiskSizeCache } from '../../server/api/quota.js';
import type { WirePutRequest, WireRequestOp, WireTxnRequest } from '../../server/api/wire.js';

afterAll(removeTempDirs);

const openStorage = (): Promise<Storage> => openTempStorage('gavel-alarms-');

const options = { minLeaseTtlSeconds: 1, clock: new ManualClock() };

const machineOn = (storage: Storage): Promise<MachineUnderTest> => machineUnder(storage, options);

const put = (key: string, value = 'v'): WirePutRequest => ({ key: Buffer.from(key), value: Buffer.from(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false });
const putOp = (key: string, value = 'v'): WireRequestOp => ({ request: 'request_put', request_put: put(key, value) });
const getOp = (key: string): WireRequestOp => ({
  request: 'request_range',
  request_range: { key: Buffer.from(key), range_end: Buffer.alloc(0), limit: '0', revision: '0', sort_order: 0, sort_target: 0, serializable: false, keys_only: false, count_only: false, min_mod_revision: '0', max_mod_revision: '0', min_create_revision: '0', max_create_revision: '0' },
});
const txn = (success: WireRequestOp[], failure: WireRequestOp[] = []): WireTxnRequest => ({ compare: [], success, failure });
const alarm = (action: number, memberID: bigint, type: number): Mutation => ({ alarm: { action, memberID: memberID.toString(), alarm: type } });

function errorCode(result: ApplyResult): string | undefined {
  return result.type === 'error' ? result.error.code : undefined;
}

function alarmsOf(result: ApplyResult): string[] {
  if (result.type !== 'alarm') throw new Error(`expected an alarm result, got ${result.type}`);
  return result.alarms.map(alarmText);
}

describe('alarms in the state machine', () => {
  it('activates, lists, deactivates as etcd does, and persists, snapshots and reloads the list', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage);
    expect(alarmsOf(await apply(alarm(AlarmAction.ACTIVATE, 7n, AlarmType.NOSPACE)))).toEqual(['memberID:7 alarm:NOSPACE ']);
    // Raising it again answers the existing alarm and writes nothing new.
    expect(alarmsOf(await apply(alarm(AlarmAction.ACTIVATE, 7n, AlarmType.NOSPACE)))).toEqual(['memberID:7 alarm:NOSPACE ']);
    await apply(alarm(AlarmAction.ACTIVATE, 3n, AlarmType.CORRUPT));
    await apply(alarm(AlarmAction.ACTIVATE, 2n, AlarmType.NOSPACE));
    // GET of NONE lists all, by type then member; GET of a type filters.
    expect(alarmsOf(await apply(alarm(AlarmAction.GET, 0n, AlarmType.NONE)))).toEqual(['memberID:2 alarm:NOSPACE ', 'memberID:7 alarm:NOSPACE ', 'memberID:3 alarm:CORRUPT ']);
    expect(alarmsOf(await apply(alarm(AlarmAction.GET, 0n, AlarmType.CORRUPT)))).toEqual(['memberID:3 alarm:CORRUPT ']);
    // Deactivating answers what it cleared; clearing what is not raised answers nothing.
    expect(alarmsOf(await apply(alarm(AlarmAction.DEACTIVATE, 2n, AlarmType.NOSPACE)))).toEqual(['memberID:2 alarm:NOSPACE ']);
    expect(alarmsOf(await apply(alarm(AlarmAction.DEACTIVATE, 2n, AlarmType.NOSPACE)))).toEqual([]);
    expect(errorCode(await apply(alarm(AlarmAction.ACTIVATE, 1n, AlarmType.NONE)))).toBe('InvalidArgument');
    expect(errorCode(await apply(alarm(AlarmAction.ACTIVATE, 1n, 9)))).toBe('InvalidArgument');
    const expected = ['memberID:7 alarm:NOSPACE ', 'memberID:3 alarm:CORRUPT '];
    expect(machine.alarms.list().map(alarmText)).toEqual(expected);

    // Reloaded from level.
    const reloaded = new StateMachine(await loadMachineState(storage, options));
    expect(reloaded.alarms.list().map(alarmText)).toEqual(expected);

    // A snapshot carries the list to another member, replacing its own.
    const other = await openStorage();
    const { apply: applyOther } = await machineOn(other);
    await applyOther(alarm(AlarmAction.ACTIVATE, 99n, AlarmType.NOSPACE));
    await copySnapshot(storage, other);
    const installed = await loadMachineState(other, options);
    expect(installed.alarms.list().map(alarmText)).toEqual(expected);
  });

  it('while NOSPACE is raised refuses Put, a Txn that puts in either branch and LeaseGrant; the rest applies', async () => {
    const { machine, apply } = await machineOn(await openStorage());
    await apply({ put: put('a') });
    await apply({ lease_grant: { ID: '5', TTL: '60' } });
    await apply(alarm(AlarmAction.ACTIVATE, 1n, AlarmType.NOSPACE));
    const revision = machine.store.currentRevision;
    expect(errorCode(await apply({ put: put('b') }))).toBe('NoSpace');
    expect(errorCode(await apply({ txn: txn([getOp('a')], [putOp('b')]) }))).toBe('NoSpace');
    expect(errorCode(await apply({ txn: txn([{ request: 'request_txn', request_txn: txn([putOp('b')]) }]) }))).toBe('NoSpace');
    expect(errorCode(await apply({ lease_grant: { ID: '6', TTL: '60' } }))).toBe('NoSpace');
    expect(machine.store.currentRevision).toBe(revision);
    // Reads in a txn, deletes, revokes and compactions still apply.
    expect((await apply({ txn: txn([getOp('a')]) })).type).toBe('txn');
    expect((await apply({ delete_range: { key: Buffer.from('a'), range_end: Buffer.alloc(0), prev_kv: false } })).type).toBe('deleteRange');
    expect((await apply({ lease_revoke: { ID: '5' } })).type).toBe('leaseRevoke');
    expect((await apply({ compaction: { revision: String(machine.store.currentRevision), physical: false } })).type).toBe('compaction');
    // CORRUPT alone restricts nothing in gavel (it runs no corruption check).
    await apply(alarm(AlarmAction.DEACTIVATE, 1n, AlarmType.NOSPACE));
    await apply(alarm(AlarmAction.ACTIVATE, 1n, AlarmType.CORRUPT));
    expect((await apply({ put: put('b') })).type).toBe('put');
  });
});

describe('the quota arithmetic (etcd quota.go)', () => {
  it('costs 256 bytes plus key and value per put, the costlier branch of a txn, 0 for reads', () => {
    expect(putCost(put('key', 'value'))).toBe(256 + 3 + 5);
    expect(txnCost(txn([putOp('a', 'x'), putOp('b', 'y')], [putOp('c', 'long value')]))).toBe(Math.max(2 * 258, 256 + 1 + 10));
    expect(txnCost(txn([getOp('a')], [getOp('b')]))).toBe(0);
    expect(txnCost(txn([{ request: 'request_txn', request_txn: txn([putOp('a', 'x')]) }]))).toBe(258);
    expect(txnPuts(txn([getOp('a')], [{ request: 'request_txn', request_txn: txn([], [putOp('a')]) }]))).toBe(true);
    expect(txnPuts(txn([getOp('a')]))).toBe(false);
  });

  it('fits strictly below the quota, always fits at cost 0, and reads 0 as 2 GiB and negative as none', () => {
    expect(fitsQuota(900, 99, 1000)).toBe(true);
    expect(fitsQuota(900, 100, 1000)).toBe(false);
    expect(fitsQuota(5000, 0, 1000)).toBe(true);
    expect(effectiveQuotaBytes(0)).toBe(DEFAULT_QUOTA_BYTES);
    expect(DEFAULT_QUOTA_BYTES).toBe(2 * 1024 ** 3);
    expect(effectiveQuotaBytes(12345)).toBe(12345);
    expect(effectiveQuotaBytes(-1)).toBe(Number.POSITIVE_INFINITY);
  });

  it('measures the disk at most every 100 ms, shares one measurement, and measures again after invalidate()', async () => {
    const clock = new ManualClock(0);
    let measurements = 0;
    let size = 1000;
    const cache = new DiskSizeCache(async () => {
      measurements++;
      return size;
    }, clock);
    expect(await Promise.all([cache.current(), cache.current()])).toEqual([1000, 1000]);
    expect(measurements).toBe(1);
    size = 2000;
    clock.advance(99);
    expect(await cache.current()).toBe(1000);
    clock.advance(1);
    expect(await cache.current()).toBe(2000);
    size = 10;
    cache.invalidate();
    expect(await cache.current()).toBe(10);
    expect(measurements).toBe(3);
  });
});
