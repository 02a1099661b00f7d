/**
 * Password hashing with scrypt (node:crypto), in place of etcd's bcrypt. A hash is computed once,
 * by the member that receives UserAdd or UserChangePassword, and only the hash enters the Raft
 * log and the store: a password is never stored, logged or replicated in clear.
 *
 * Format: `scrypt$<log2 N>$<r>$<p>$<salt, base64>$<key, base64>`, so the parameters can be raised
 * later without invalidating stored hashes. scrypt runs on libuv's thread pool, not on the event
 * loop; N = 2^15, r = 8 costs about 32 MiB and 85 ms on the CI machine (etcd's bcrypt cost 10 is
 * in the same range).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const LOG2_N = 15;
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Enough for the parameters above (128 · N · r bytes) and for any hash this module accepts. */
const MAX_MEMORY_BYTES = 128 * 1024 * 1024;
const MAX_LOG2_N = 20;

interface Parsed {
  readonly log2N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function derive(password: string, salt: Buffer, log2N: number, r: number, p: number, length: number): Promise<Buffer> {
  const options: ScryptOptions = { N: 2 ** log2N, r, p, maxmem: MAX_MEMORY_BYTES };
  return new Promise((resolve, reject) => scrypt(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, LOG2_N, BLOCK_SIZE, PARALLELISM, KEY_BYTES);
  return ['scrypt', LOG2_N, BLOCK_SIZE, PARALLELISM, salt.toString('base64'), key.toString('base64')].join('$');
}

/** The parts of a hash this module wrote, or undefined for anything else. */
export function parseHash(hash: string): Parsed | undefined {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [log2N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![log2N, r, p].every((n) => Number.isSafeInteger(n) && n >= 1) || log2N > MAX_LOG2_N || r > 32 || p > 16) return undefined;
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (salt.length < 8 || key.length < 16) return undefined;
  return { log2N, r, p, salt, key };
}

/** Whether `password` matches `hash`, in time independent of where they differ. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (parsed === undefined) return false;
  const key = await derive(password, parsed.salt, parsed.log2N, parsed.r, parsed.p, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the time of one verification for a user that does not exist (or has no password), so
 * the answer's timing does not tell which user names exist.
 */
export async function verifyNothing(password: string): Promise<false> {
  dummyHash ??= hashPassword('gavel: no such user');
  await verifyPassword(password, await dummyHash);
  return false;
}
