/**
 * A backup (Maintenance.Snapshot, `etcdctl snapshot save`): the same consistent state a Raft
 * snapshot carries (apply/snapshot.ts), read through ONE explicit level snapshot.
 *
 * Why any level snapshot is consistent: every batch the apply loop writes carries the applied
 * index of its last entry together with the state changes of its entries, so level always holds
 * the state at exactly the applied index it records. The one exception is a snapshot install from
 * the leader, which rewrites the state in several batches; it deletes the applied index first and
 * writes it last, so a level snapshot taken meanwhile records none, and is taken again later.
 *
 * Why it is fresh: before taking it, the backup waits until level holds the state at the index
 * this member had applied when the backup was asked for (StateMachine.whenIndexDurable), so it
 * holds at least every write the caller could have seen on this member.
 *
 * The level snapshot pins old level files while the backup streams; close() releases it.
 */
import type { AbstractSnapshot } from 'abstract-level';
import { GavelError } from '../errors.js';
import type { StateMachine } from '../apply/state-machine.js';
import { appliedIndexOf, measureSnapshot, streamSnapshot } from '../apply/snapshot.js';
import type { Storage } from '../storage/layout.js';

/** A snapshot install in progress: look again this often, this many times at most. */
const INSTALL_RETRY_MS = 50;
const INSTALL_RETRIES = 600;

export interface Backup {
  /** The applied index of the state it holds. */
  readonly appliedIndex: number;
  /** The exact number of bytes `chunks` yields, without the 32-byte SHA-256 trailer. */
  readonly bytesBeforeDigest: number;
  /** The stream (format of apply/snapshot-format.ts), ending with the SHA-256 trailer. */
  readonly chunks: AsyncGenerator<Uint8Array>;
  /** Releases the level snapshot; idempotent. */
  close(): Promise<void>;
}

export async function openBackup(storage: Storage, machine: StateMachine, chunkBytes: number, signal?: AbortSignal): Promise<Backup> {
  await abortable(machine.whenIndexDurable(machine.appliedIndex), signal);
  for (let attempt = 0; ; attempt++) {
    const snapshot = storage.db.snapshot();
    const appliedIndex = await appliedIndexOf(storage, snapshot).catch(async (error: unknown) => {
      await snapshot.close();
      throw error;
    });
    if (appliedIndex !== undefined) return ready(storage, snapshot, appliedIndex, chunkBytes);
    await snapshot.close();
    if (attempt >= INSTALL_RETRIES) throw new GavelError('Timeout', 'gavel: a snapshot install did not finish: no consistent state to back up');
    await abortable(new Promise((resolve) => setTimeout(resolve, INSTALL_RETRY_MS)), signal);
  }
}

async function ready(storage: Storage, snapshot: AbstractSnapshot, appliedIndex: number, chunkBytes: number): Promise<Backup> {
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await snapshot.close();
  };
  try {
    // Aligned: etcdctl accepts only a file of 512-byte pages plus the digest (snapshot-format.ts).
    const bytesBeforeDigest = await measureSnapshot(storage, snapshot, true);
    return { appliedIndex, bytesBeforeDigest, chunks: streamSnapshot(storage, snapshot, chunkBytes, true), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Rejects when the caller gives up (the client cancelled) instead of waiting on. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(new GavelError('Stopped', 'gavel: the client cancelled the snapshot'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new GavelError('Stopped', 'gavel: the client cancelled the snapshot'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
