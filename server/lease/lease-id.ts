/**
 * Lease ids: etcd's are int64 on the wire and a server-chosen id is a random positive 63-bit
 * number. 0 means "no lease" (and, in a grant request, "pick one for me").
 */
import { randomBytes } from 'node:crypto';
import { assert } from '../errors.js';

export const NO_LEASE = 0n;
export const MAX_LEASE_ID = (1n << 63n) - 1n;

/** A lease id we accept in the replicated state: positive and fits in a signed int64. */
export function isValidLeaseId(id: bigint): boolean {
  return id > NO_LEASE && id <= MAX_LEASE_ID;
}

/**
 * A random positive 63-bit lease id. `random` (e.g. a seeded PRNG in the simulator) may return a
 * bigint or an integer number (both masked to 63 bits) or a fraction in [0, 1) (scaled to 53
 * bits); without it, 8 bytes from node:crypto. Zero draws are retried.
 */
export function randomLeaseId(random?: () => bigint | number): bigint {
  for (let attempt = 0; attempt < 64; attempt++) {
    const raw = random === undefined ? randomBytes(8).readBigUInt64BE(0) : toBigInt(random());
    const id = raw & MAX_LEASE_ID;
    if (id !== NO_LEASE) return id;
  }
  assert(false, 'randomLeaseId: the generator returned 0 (mod 2^63) 64 times in a row');
}

function toBigInt(value: bigint | number): bigint {
  if (typeof value === 'bigint') return value;
  assert(Number.isFinite(value), `randomLeaseId: generator returned ${value}`);
  if (Number.isInteger(value)) return BigInt(value);
  assert(value >= 0 && value < 1, `randomLeaseId: a fractional draw must be in [0, 1), got ${value}`);
  return BigInt(Math.floor(value * 2 ** 53));
}
