/**
 * A backup (node/backup.ts) on a real level database: it waits until level holds the state this
 * member had applied, it never takes the state in the middle of a snapshot install, and its
 * stream is exactly as long as it announced and decodes to the state at its applied index.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../server/clock.js';
import { openBackup, type Backup } from '../../server/node/backup.js';
import { DIGEST_BYTES, SnapshotDecoder, type SnapshotRecord } from '../../server/apply/snapshot-format.js';
import { APPLIED_INDEX_KEY } from '../../server/apply/snapshot.js';
import { metaOps } from '../../server/storage/layout.js';
import { machineOn, openStorage, removeTempDirs } from '../helpers/machine.js';

afterAll(removeTempDirs);

const options = { minLeaseTtlSeconds: 1, clock: new ManualClock() };
const put = (key: string, value: string): object => ({ put: { key: Buffer.from(key), value: Buffer.from(value) } });

async function read(backup: Backup): Promise<{ bytes: number; records: SnapshotRecord[] }> {
  const decoder = new SnapshotDecoder();
  const records: SnapshotRecord[] = [];
  let bytes = 0;
  for await (const chunk of backup.chunks) {
    bytes += chunk.byteLength;
    records.push(...decoder.push(chunk));
  }
  decoder.end();
  await backup.close();
  return { bytes, records };
}

/** Whether the promise settles within a few event-loop turns. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true), () => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  return settled;
}

describe('openBackup', () => {
  it('streams the state at its applied index, exactly as long as announced', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage, options);
    for (let i = 0; i < 50; i++) await apply(put(`k${i % 7}`, `v${i}`));
    machine.markDurable();
    const backup = await openBackup(storage, machine, 256);
    expect(backup.appliedIndex).toBe(machine.appliedIndex);
    const { bytes, records } = await read(backup);
    expect(bytes).toBe(backup.bytesBeforeDigest + DIGEST_BYTES);
    expect(records.filter((r) => r.space === 'kv')).toHaveLength(50);
    const applied = records.find((r) => r.space === 'meta' && Buffer.from(r.key).equals(Buffer.from(APPLIED_INDEX_KEY)));
    expect(Buffer.from(applied!.value).toString()).toBe(String(machine.appliedIndex));
    await storage.close();
  });

  it('waits until level holds what the member had applied when asked', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage, options);
    await apply(put('a', '1'));
    machine.markDurable();
    // Applied in memory; the apply loop has not called markDurable() for it yet.
    await apply(put('a', '2'));
    const opening = openBackup(storage, machine, 1024);
    expect(await settlesSoon(opening)).toBe(false);
    machine.markDurable();
    const backup = await opening;
    expect(backup.appliedIndex).toBe(machine.appliedIndex);
    await read(backup);
    await storage.close();
  });

  it('does not take the state while a snapshot install has removed the applied index, and can be cancelled', async () => {
    const storage = await openStorage();
    const { machine, apply } = await machineOn(storage, options);
    await apply(put('a', '1'));
    machine.markDurable();
    const index = machine.appliedIndex;
    // What installSnapshotFile does first.
    await storage.write([{ type: 'del', space: 'meta', key: APPLIED_INDEX_KEY }], true);
    const cancel = new AbortController();
    const cancelled = openBackup(storage, machine, 1024, cancel.signal);
    expect(await settlesSoon(cancelled)).toBe(false);
    cancel.abort();
    await expect(cancelled).rejects.toThrow(/cancelled/);
    const opening = openBackup(storage, machine, 1024);
    expect(await settlesSoon(opening)).toBe(false);
    await storage.write([metaOps.appliedIndex(index)], true);
    const backup = await opening;
    expect(backup.appliedIndex).toBe(index);
    await read(backup);
    await storage.close();
  });
});
