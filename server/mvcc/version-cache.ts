/**
 * Decoded versions kept in memory in front of level, by revision.
 *
 * Two parts with different rules:
 * - pinned: versions written by applied entries whose level batch has not been written yet. They
 *   cannot be read back from level, so they stay until markDurable() says their batch landed.
 *   In memory-only use (no level behind the store: unit tests, the central coordinator) nothing
 *   is ever made durable and everything stays pinned.
 * - recent: versions read or written lately, bounded by bytes; a miss costs one level read. Hot
 *   keys (lock keys, election keys) are answered from here. It is two generations of maps (a hit
 *   in the old one moves the version to the young one; when the young one is full the old one is
 *   dropped whole): least-recently-used in effect, at O(1) per operation, and without walking a
 *   Map from its front, which in V8 passes over every deleted slot and turned eviction quadratic.
 */
import { assert } from '../errors.js';
import type { KeyValue } from './types.js';

/** Rough per-version cost beyond key and value bytes (objects, map slots). */
const ENTRY_OVERHEAD_BYTES = 160;
/** Sub revisions below this share a numeric cache key with their main revision. */
const SUB_SPAN = 65_536;
const MAX_NUMERIC_MAIN = Math.floor(Number.MAX_SAFE_INTEGER / SUB_SPAN);

export type CacheKey = number | string;

export function cacheKey(main: number, sub: number): CacheKey {
  return sub < SUB_SPAN && main <= MAX_NUMERIC_MAIN ? main * SUB_SPAN + sub : `${main}.${sub}`;
}

interface Pinned {
  readonly key: CacheKey;
  readonly main: number;
  readonly kv: KeyValue;
}

export class VersionCache {
  /** In revision order (pins arrive in revision order); the live part starts at #head. */
  #pinQueue: Pinned[] = [];
  #head = 0;
  readonly #pinned = new Map<CacheKey, KeyValue>();
  #young = new Map<CacheKey, KeyValue>();
  #old = new Map<CacheKey, KeyValue>();
  #youngBytes = 0;
  #oldBytes = 0;

  constructor(private readonly maxBytes: number) {
    assert(Number.isSafeInteger(maxBytes) && maxBytes >= 0, `cache size ${maxBytes} is not a non-negative integer`);
  }

  get pinnedCount(): number {
    return this.#pinned.size;
  }

  get recentBytes(): number {
    return this.#youngBytes + this.#oldBytes;
  }

  get(key: CacheKey): KeyValue | undefined {
    const pinned = this.#pinned.get(key);
    if (pinned !== undefined) return pinned;
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    if (old !== undefined) {
      this.#old.delete(key);
      this.#oldBytes -= costOf(old);
      this.#addYoung(key, old);
    }
    return old;
  }

  /** A version level does not hold yet. Pins arrive in revision order. */
  pin(key: CacheKey, main: number, kv: KeyValue): void {
    assert(!this.#pinned.has(key), 'a version pinned twice');
    const last = this.#pinQueue.at(-1);
    assert(this.#pinQueue.length === this.#head || last === undefined || last.main <= main, 'versions must be pinned in revision order');
    this.#pinQueue.push({ key, main, kv });
    this.#pinned.set(key, kv);
  }

  /** A failed write's version goes away again: always the newest pin. */
  unpinDiscard(key: CacheKey): void {
    const last = this.#pinQueue.at(-1);
    assert(this.#pinQueue.length > this.#head && last?.key === key, 'discarding a version that is not the newest pin');
    this.#pinQueue.pop();
    this.#pinned.delete(key);
  }

  /** Versions up to main are in level now: they become ordinary cache entries. */
  markDurable(main: number): void {
    const queue = this.#pinQueue;
    while (this.#head < queue.length && queue[this.#head]!.main <= main) {
      const pinned = queue[this.#head++]!;
      this.#pinned.delete(pinned.key);
      this.remember(pinned.key, pinned.kv);
    }
    if (this.#head === queue.length) {
      this.#pinQueue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > queue.length) {
      this.#pinQueue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** A version just read from level, or just made durable. */
  remember(key: CacheKey, kv: KeyValue): void {
    if (this.maxBytes === 0 || this.#young.has(key) || this.#old.has(key)) return;
    this.#addYoung(key, kv);
  }

  #addYoung(key: CacheKey, kv: KeyValue): void {
    this.#young.set(key, kv);
    this.#youngBytes += costOf(kv);
    if (this.#youngBytes <= this.maxBytes / 2) return;
    // The young generation is full: it becomes the old one, and the old one is dropped.
    this.#old = this.#young;
    this.#oldBytes = this.#youngBytes;
    this.#young = new Map();
    this.#youngBytes = 0;
  }
}

function costOf(kv: KeyValue): number {
  return kv.key.byteLength + kv.value.byteLength + ENTRY_OVERHEAD_BYTES;
}
