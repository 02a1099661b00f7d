/** Reads the coordinator's records back from level: at startup and after installing a snapshot. */
import type { Clock } from '../clock.js';
import type { Storage } from '../storage/layout.js';
import { Coordinator } from './coordinator.js';
import { decodeRecords } from './records.js';

export async function loadCoordinator(storage: Storage, clock: Clock): Promise<Coordinator> {
  const records: [Uint8Array, Uint8Array][] = [];
  for await (const [key, value] of storage.space('coord').iterator()) records.push([key, value]);
  return Coordinator.restore(decodeRecords(records), clock);
}
