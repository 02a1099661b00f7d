/**
 * A state machine on a real level database in a temp dir, for apply-level tests: apply()
 * applies one mutation as the next log entry and writes its batch with the applied index, as
 * the node does; copySnapshot() carries the state to another storage through a snapshot file.
 * Temp dirs are removed by removeTempDirs() (call it in afterAll).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Storage, metaOps } from '../../server/storage/layout.js';
import { loadMachineState, type LoadOptions } from '../../server/apply/load.js';
import { StateMachine, type ApplyResult } from '../../server/apply/state-machine.js';
import { encodeRequest, type Mutation } from '../../server/apply/request.js';
import { installSnapshotFile, saveSnapshot } from '../../server/apply/snapshot.js';

const dirs: string[] = [];

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

export async function openStorage(prefix = 'gavel-machine-'): Promise<Storage> {
  return Storage.open(tempDir(prefix));
}

export interface MachineUnderTest {
  readonly machine: StateMachine;
  apply(mutation: Mutation): Promise<ApplyResult>;
}

/** A machine loaded from storage; apply() applies one mutation as the next entry and writes its batch. */
export async function machineOn(storage: Storage, options: LoadOptions): Promise<MachineUnderTest> {
  const machine = new StateMachine(await loadMachineState(storage, options));
  let id = 0n;
  return {
    machine,
    apply: async (mutation) => {
      const index = machine.appliedIndex + 1;
      const applied = machine.apply(index, encodeRequest(++id, mutation));
      if (applied === undefined) throw new Error('nothing applied');
      await storage.write([...applied.ops, metaOps.appliedIndex(index)], true);
      return applied.result;
    },
  };
}

/** The state of `from` as a snapshot file, installed into `to` (what a lagging follower gets). */
export async function copySnapshot(from: Storage, to: Storage): Promise<void> {
  const file = join(tempDir('gavel-snapshot-'), 'state.gvsnap');
  await saveSnapshot(from, file);
  await installSnapshotFile(to, file);
}
