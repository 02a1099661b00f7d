/**
 * Applying a committed coordinator entry: wire request → checked core input → Coordinator step.
 * The same checks run at the API edge (to answer early) and here (so that every member reaches
 * the same answer for whatever bytes the log holds).
 */
import { GavelError, assertNever } from '../errors.js';
import { toBigInt, toNumber } from '../api/convert.js';
import type { BatchOp } from '../storage/layout.js';
import { MAX_LOCK_DELAY_MS, lockKey, type AcquireInput, type Coordinator, type CoordinatorOutcome, type LockMode, type ReleaseInput } from './coordinator.js';
import { WIRE_MODE, type WireAcquireRequest, type WireCoordinatorRequest, type WireReleaseRequest } from './wire.js';

export type CoordinatorResult = { readonly type: 'coordinator'; readonly revision: number; readonly outcome: CoordinatorOutcome };

/** Lock names and owners are bounded so that records and messages stay small. */
export const MAX_NAME_BYTES = 4096;
export const MAX_OWNER_BYTES = 256;
/** Semaphore permits; far beyond any sensible use, it keeps the arithmetic in range. */
export const MAX_LIMIT = 1_000_000;

export function modeFromWire(mode: number): LockMode {
  if (mode === WIRE_MODE.EXCLUSIVE) return 'exclusive';
  if (mode === WIRE_MODE.SHARED) return 'shared';
  throw new GavelError('InvalidArgument', `gavel: unknown lock mode ${mode}`);
}

export function modeToWire(mode: LockMode): number {
  return mode === 'exclusive' ? WIRE_MODE.EXCLUSIVE : WIRE_MODE.SHARED;
}

function checkName(name: Buffer | null | undefined): Buffer {
  if (!name || name.byteLength === 0) throw new GavelError('InvalidArgument', 'gavel: lock name is not provided');
  if (name.byteLength > MAX_NAME_BYTES) throw new GavelError('InvalidArgument', `gavel: lock name is longer than ${MAX_NAME_BYTES} bytes`);
  return name;
}

function checkPlace(lease: string, owner: string | undefined): { lease: bigint; owner: string } {
  const id = toBigInt(lease);
  if (id <= 0n) throw new GavelError('InvalidArgument', 'gavel: a lease is required (holders and waiters are bound to leases)');
  const text = owner ?? '';
  if (Buffer.byteLength(text) > MAX_OWNER_BYTES) throw new GavelError('InvalidArgument', `gavel: owner is longer than ${MAX_OWNER_BYTES} bytes`);
  return { lease: id, owner: text };
}

/** Checks an Acquire/TryAcquire request; throws InvalidArgument. */
export function acquireInput(r: WireAcquireRequest, tryOnly: boolean): AcquireInput & { readonly waitMs: number } {
  const name = checkName(r.name);
  const { lease, owner } = checkPlace(r.lease, r.owner);
  const limit = r.limit ?? 0;
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_LIMIT) throw new GavelError('InvalidArgument', `gavel: limit must be between 0 and ${MAX_LIMIT}`);
  const lockDelayMs = toNumber(r.lock_delay_ms);
  if (lockDelayMs < 0 || lockDelayMs > MAX_LOCK_DELAY_MS) throw new GavelError('InvalidArgument', `gavel: lock_delay_ms must be between 0 and ${MAX_LOCK_DELAY_MS}`);
  const waitMs = toNumber(r.wait_ms);
  if (waitMs < 0) throw new GavelError('InvalidArgument', 'gavel: wait_ms must not be negative');
  return { key: lockKey(name), lease, owner, mode: modeFromWire(r.mode ?? 0), limit, lockDelayMs, reattach: r.reattach === true, tryOnly, waitMs };
}

/** Checks a Release request; throws InvalidArgument. */
export function releaseInput(r: WireReleaseRequest, waitingOnly: boolean): ReleaseInput {
  const name = checkName(r.name);
  const { lease, owner } = checkPlace(r.lease, r.owner);
  const token = toNumber(r.token);
  if (token < 0) throw new GavelError('InvalidArgument', 'gavel: token must not be negative');
  return { key: lockKey(name), lease, owner, token, waitingOnly };
}

export function applyCoordinator(
  coordinator: Coordinator,
  index: number,
  request: WireCoordinatorRequest,
  leaseExists: (id: bigint) => boolean,
): { result: Omit<CoordinatorResult, 'revision'>; ops: BatchOp[]; changed: ReadonlySet<string> } {
  const kind = request.request;
  let step: ReturnType<Coordinator['acquire']>;
  switch (kind) {
    case 'acquire': {
      const acquire = required(request.acquire);
      step = coordinator.acquire(index, acquireInput(required(acquire.request), acquire.try_only === true), leaseExists);
      break;
    }
    case 'release': {
      const release = required(request.release);
      step = coordinator.release(index, releaseInput(required(release.request), release.waiting_only === true));
      break;
    }
    case 'end_delay': {
      const end = required(request.end_delay);
      step = coordinator.endDelay(index, lockKey(checkName(end.name)), toNumber(end.delay_id));
      break;
    }
    case undefined:
      throw new GavelError('InvalidArgument', 'empty coordinator request');
    default:
      return assertNever(kind);
  }
  return { result: { type: 'coordinator', outcome: step.outcome }, ops: step.ops, changed: step.changed };
}

function required<T>(value: T | null | undefined): T {
  if (value === null || value === undefined) throw new GavelError('InvalidArgument', 'malformed coordinator request');
  return value;
}
