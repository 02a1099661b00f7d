// Goal: the coordinator queue is replicated state of the state machine: applied from log entries, freed with its lease in the same entry (lock-delay only on an expiry), persisted in level, carried by snapshots and loaded back unchanged.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { Storage } from '../../server/storage/layout.js';
import { loadMachineState } from '../../server/apply/load.js';
import { StateMachine } from '../../server/apply/state-machine.js';
import type { Mutation } from '../../server/apply/request.js';
import { copySnapshot, machineOn as machineUnder, openStorage as openTempStorage, removeTempDirs, type MachineUnderTest } from '../helpers/machine.js';
import { lockKey } from '../../server/coordinator/coordinator.js';

afterAll(removeTempDirs);

const openStorage = (): Promise<Storage> => openTempStorage('gavel-coordinator-apply-');

const clock = new ManualClock();
const options = { minLeaseTtlSeconds: 1, clock };

const machineOn = (storage: Storage): Promise<MachineUnderTest> => machineUnder(storage, options);

const acquire = (name: string, lease: number, extra: { lock_delay_ms?: string; mode?: number; limit?: number } = {}): Mutation => ({
  coordinator: { acquire: { request: { name: Buffer.from(name), lease: String(lease), mode: extra.mode ?? 0, limit: extra.limit ?? 0, wait_ms: '0', lock_delay_ms: extra.lock_delay_ms ?? '0', owner: '', reattach: false }, try_only: false } },
});

function picture(machine: StateMachine): unknown {
  return { lastToken: machine.coordinator.lastToken, locks: ['a', 'd', 's'].map((n) => machine.coordinator.describe(lockKey(Buffer.from(n)))) };
}

describe('the coordinator in the state machine', () => {
  it('applies acquires, frees places with their lease in the same entry, persists, snapshots and reloads', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage);
    const changed: string[] = [];
    machine.onCoordinatorChange((keys) => changed.push(keys === 'all' ? 'all' : [...keys].join(',')));
    for (const lease of [1, 2, 3, 4]) await apply({ lease_grant: { ID: String(lease), TTL: '10' } });
    const first = await apply(acquire('a', 1));
    expect(first).toMatchObject({ type: 'coordinator', outcome: { type: 'granted', token: 5 } });
    expect(await apply(acquire('a', 2))).toMatchObject({ type: 'coordinator', outcome: { type: 'waiting', position: 1 } });
    expect(await apply(acquire('d', 3, { lock_delay_ms: '2000' }))).toMatchObject({ outcome: { type: 'granted' } });
    expect(await apply(acquire('d', 4))).toMatchObject({ outcome: { type: 'waiting' } });
    expect(await apply(acquire('s', 4, { mode: 1, limit: 2 }))).toMatchObject({ outcome: { type: 'granted' } });
    const unknownLease = await apply(acquire('a', 99));
    expect(unknownLease.type === 'error' && unknownLease.error.code).toBe('LeaseNotFound');

    // A revoke frees lease 1's hold and grants lease 2 in the same entry, with that entry's index.
    const revoke = await apply({ lease_revoke: { ID: '1' } });
    expect(revoke.type).toBe('leaseRevoke');
    expect(machine.coordinator.describe(lockKey(Buffer.from('a'))).holders.map((h) => [h.lease, h.token])).toEqual([[2n, machine.appliedIndex]]);
    // An expiry of a holder that asked for a lock-delay leaves its lock delayed, its waiter waiting.
    await apply({ lease_expire: { ID: '3' } });
    const delayed = machine.coordinator.describe(lockKey(Buffer.from('d')));
    expect(delayed).toMatchObject({ holders: [], delayed: true });
    expect(delayed.waiters.map((w) => w.lease)).toEqual([4n]);
    expect(changed).toContain(lockKey(Buffer.from('d')));

    // Restart: the same state from level.
    const reloaded = new StateMachine(await loadMachineState(storage, options));
    expect(picture(reloaded)).toEqual(picture(machine));

    // Snapshot to another member's storage.
    const other = await openStorage();
    await copySnapshot(storage, other);
    const installed = new StateMachine(await loadMachineState(other, options));
    expect(installed.appliedIndex).toBe(machine.appliedIndex);
    expect(picture(installed)).toEqual(picture(machine));

    // The leader ends the delay: the waiter is granted.
    const delayId = machine.appliedIndex;
    const end = await apply({ coordinator: { end_delay: { name: Buffer.from('d'), delay_id: String(delayId) } } });
    expect(end).toMatchObject({ outcome: { type: 'delayEnded', ended: true } });
    expect(machine.coordinator.describe(lockKey(Buffer.from('d'))).holders.map((h) => h.lease)).toEqual([4n]);
    // A machine restored from a newer snapshot tells its coordinator listeners that anything may have changed.
    const behind = new StateMachine(await loadMachineState(other, options));
    const heard: string[] = [];
    behind.onCoordinatorChange((keys) => heard.push(keys === 'all' ? 'all' : 'some'));
    behind.restore(await loadMachineState(storage, options));
    expect(heard).toEqual(['all']);
    expect(picture(behind)).toEqual(picture(machine));
    await Promise.all([storage.close(), other.close()]);
  });
});
