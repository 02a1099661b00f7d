/**
 * Cluster membership as replicated state. Voters and learners are decided by Raft conf-change
 * entries; each member's name and client URLs arrive in a later 'member_attributes' entry that
 * the member proposes once it serves (etcd's publish). Ids are derived from peer URLs and the
 * cluster token, as etcd does, so every member of a new cluster computes the same ids from
 * --initial-cluster without talking first.
 */
import { createHash } from 'node:crypto';
import type { MemberInfo } from '../node/consensus.js';
import { metaKey, type BatchOp } from '../storage/layout.js';

/** One member as the registry records it (the same shape `member list` shows). */
export type MemberRecord = MemberInfo;

/** Context carried by a conf-change entry that adds a member. */
export interface AddContext {
  readonly name: string;
  readonly peerUrls: readonly string[];
}

const MEMBERS_KEY = metaKey('members');
const REMOVED_KEY = metaKey('removed-members');

/**
 * etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs, the
 * cluster token and, for a member added at run time, the Unix time in seconds (so re-adding
 * the same URLs gives a new id). Matching etcd keeps ids identical across the two.
 */
export function memberIdFor(peerUrls: readonly string[], clusterToken: string, addedAtMs?: number): bigint {
  let input = [...peerUrls].sort().join('') + clusterToken;
  if (addedAtMs !== undefined) input += String(Math.floor(addedAtMs / 1000));
  return createHash('sha1').update(input).digest().readBigUInt64BE(0);
}

/** etcd's cluster id: the first 8 bytes of SHA-1 over the sorted member ids, each 8 bytes big-endian. */
export function clusterIdFor(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => bytes.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(bytes).digest().readBigUInt64BE(0);
}

/** Parses --initial-cluster "n1=http://a:2380,n1=http://b:2380,n2=..." (a name may repeat for several URLs). */
export function parseInitialCluster(spec: string): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) throw new Error(`--initial-cluster: "${part}" is not name=peerURL`);
    const name = part.slice(0, eq);
    const url = normalizeUrl(part.slice(eq + 1));
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  return byName;
}

export function normalizeUrl(raw: string): string {
  const url = new URL(raw);
  return url.href.endsWith('/') ? url.href.slice(0, -1) : url.href;
}

export class Membership {
  private readonly members = new Map<bigint, MemberRecord>();
  private readonly removed = new Set<bigint>();

  static fromRecords(records: readonly MemberRecord[], removed: readonly bigint[] = []): Membership {
    const membership = new Membership();
    for (const record of records) membership.members.set(record.id, record);
    for (const id of removed) membership.removed.add(id);
    return membership;
  }

  list(): MemberInfo[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): MemberRecord | undefined {
    return this.members.get(id);
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  removedIds(): bigint[] {
    return [...this.removed];
  }

  findByPeerUrls(peerUrls: readonly string[]): MemberRecord | undefined {
    const wanted = new Set(peerUrls.map(normalizeUrl));
    return [...this.members.values()].find((m) => m.peerUrls.some((u) => wanted.has(normalizeUrl(u))));
  }

  /** Applies an addNode/addLearner: a learner promoted keeps its name and URLs. */
  add(id: bigint, context: AddContext | undefined, isLearner: boolean): void {
    const existing = this.members.get(id);
    this.members.set(id, {
      id,
      name: existing?.name ?? context?.name ?? '',
      peerUrls: existing?.peerUrls ?? context?.peerUrls ?? [],
      clientUrls: existing?.clientUrls ?? [],
      isLearner,
    });
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
  }

  setAttributes(id: bigint, name: string, clientUrls: readonly string[]): void {
    const existing = this.members.get(id);
    if (existing === undefined) return; // removed meanwhile
    this.members.set(id, { ...existing, name, clientUrls: [...clientUrls] });
  }

  setPeerUrls(id: bigint, peerUrls: readonly string[]): void {
    const existing = this.members.get(id);
    if (existing === undefined) return;
    this.members.set(id, { ...existing, peerUrls: [...peerUrls] });
  }

  /** The level ops that record the whole registry (it is small: rewritten on every change). */
  ops(): BatchOp[] {
    const members = this.list().map((m) => ({ ...m, id: m.id.toString() }));
    return [
      { type: 'put', space: 'meta', key: MEMBERS_KEY, value: new TextEncoder().encode(JSON.stringify(members)) },
      { type: 'put', space: 'meta', key: REMOVED_KEY, value: new TextEncoder().encode(JSON.stringify(this.removedIds().map(String))) },
    ];
  }

  static decode(membersBytes: Uint8Array | undefined, removedBytes: Uint8Array | undefined): Membership {
    const records = membersBytes
      ? (JSON.parse(new TextDecoder().decode(membersBytes)) as (Omit<MemberRecord, 'id'> & { id: string })[]).map((m) => ({ ...m, id: BigInt(m.id) }))
      : [];
    const removed = removedBytes ? (JSON.parse(new TextDecoder().decode(removedBytes)) as string[]).map(BigInt) : [];
    return Membership.fromRecords(records, removed);
  }

  static keys(): { members: Uint8Array; removed: Uint8Array } {
    return { members: MEMBERS_KEY, removed: REMOVED_KEY };
  }
}

export function encodeAddContext(context: AddContext): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(context));
}

export function decodeAddContext(bytes: Uint8Array): AddContext | undefined {
  if (bytes.byteLength === 0) return undefined;
  try {
    const raw = JSON.parse(new TextDecoder().decode(bytes)) as Partial<AddContext>;
    return { name: String(raw.name ?? ''), peerUrls: Array.isArray(raw.peerUrls) ? raw.peerUrls.map(String) : [] };
  } catch {
    return undefined;
  }
}
