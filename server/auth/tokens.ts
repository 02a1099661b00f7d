/**
 * Simple tokens (etcd's --auth-token=simple): `<random prefix>.<raft index>`, valid for
 * --auth-token-ttl seconds after their last use on a member.
 *
 * Why tokens are replicated: etcd 3.4 proposes Authenticate through Raft and every member
 * registers the token when it applies the entry, so a token issued by one member is honoured by
 * all of them. etcdctl and clientv3 depend on that: they authenticate once and then spread calls
 * over every endpoint. gavel does the same, with one change: the log carries the SHA-256 of the
 * random prefix, never the token, so the Raft log and snapshots hold nothing a client could
 * present. The index in the token lets a member that has not yet applied the Authenticate entry
 * wait for it (a read barrier) instead of refusing a fresh token.
 *
 * The table is per member and in memory, as etcd's: each member counts the TTL on its own clock
 * from when it applied the entry or last saw the token. A restart, a snapshot install or
 * `auth disable` forgets every token, and deleting a user or changing a password forgets that
 * user's; clients then authenticate again (etcdctl and clientv3 do so on "invalid auth token").
 */
import { createHash, randomInt } from 'node:crypto';
import type { Clock } from '../clock.js';

const PREFIX_LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
/** 32 letters of 62: about 190 bits (etcd's 16 letters of 52 give about 91). */
const PREFIX_LENGTH = 32;
/** Bound on live tokens per member; the oldest go first beyond it. */
const MAX_TOKENS = 100_000;

export const DEFAULT_TOKEN_TTL_SECONDS = 300;

interface Entry {
  readonly username: string;
  readonly index: number;
  deadlineMs: number;
}

/** A fresh random prefix; the proposer keeps it, the log gets only `prefixDigest(prefix)`. */
export function newTokenPrefix(): string {
  let prefix = '';
  for (let i = 0; i < PREFIX_LENGTH; i++) prefix += PREFIX_LETTERS[randomInt(PREFIX_LETTERS.length)];
  return prefix;
}

export function prefixDigest(prefix: string): string {
  return createHash('sha256').update(prefix).digest('hex');
}

export function formatToken(prefix: string, index: number): string {
  return `${prefix}.${index}`;
}

/** A presented token's parts, or undefined when it cannot be one of ours. */
export function parseToken(token: string): { digest: string; index: number } | undefined {
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const index = Number(token.slice(dot + 1));
  if (!Number.isSafeInteger(index) || index <= 0) return undefined;
  return { digest: prefixDigest(token.slice(0, dot)), index };
}

export class TokenTable {
  /** Insertion order is expiry order for entries not used since: the oldest are first. */
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock,
    readonly ttlSeconds: number = DEFAULT_TOKEN_TTL_SECONDS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Applied Authenticate: the token whose prefix has this digest now stands for `username`. */
  assign(digest: string, username: string, index: number): void {
    this.sweep();
    this.entries.delete(digest);
    this.entries.set(digest, { username, index, deadlineMs: this.clock.now() + this.ttlSeconds * 1000 });
    while (this.entries.size > MAX_TOKENS) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** The user a live token stands for, refreshing its TTL; undefined for an unknown or expired one. */
  lookup(digest: string, index: number): string | undefined {
    const entry = this.entries.get(digest);
    if (entry === undefined || entry.index !== index) return undefined;
    const now = this.clock.now();
    if (entry.deadlineMs <= now) {
      this.entries.delete(digest);
      return undefined;
    }
    entry.deadlineMs = now + this.ttlSeconds * 1000;
    // Move to the back: the map stays ordered by last use.
    this.entries.delete(digest);
    this.entries.set(digest, entry);
    return entry.username;
  }

  invalidateUser(username: string): void {
    for (const [digest, entry] of this.entries) if (entry.username === username) this.entries.delete(digest);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Drops expired tokens from the front (the least recently used). */
  private sweep(): void {
    const now = this.clock.now();
    for (const [digest, entry] of this.entries) {
      if (entry.deadlineMs > now) break;
      this.entries.delete(digest);
    }
  }
}
