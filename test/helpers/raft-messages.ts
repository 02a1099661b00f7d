/** One Raft message of each type, with every field away from its default where it can be: for the peer codec tests. */
import type { Entry, Message, MessageType } from '../../server/raft/types.js';

export const MAX_ID = (1n << 64n) - 1n;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export function bytesOf(n: number, seed = 1): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

export function sampleMessages(from: bigint, to: bigint, largeEntryBytes = 2 * 1024 * 1024): Record<MessageType, Message> {
  const entries: Entry[] = [
    { term: 1, index: 1, type: 'normal', data: new Uint8Array(0) },
    { term: MAX_SAFE, index: MAX_SAFE, type: 'confChange', data: bytesOf(3) },
    { term: 7, index: 9, type: 'normal', data: bytesOf(largeEntryBytes) },
  ];
  const base = { from, to, term: 5 };
  return {
    prop: { ...base, term: 0, type: 'prop', entries: [{ term: 0, index: 0, type: 'normal', data: bytesOf(10) }] },
    app: { ...base, type: 'app', logTerm: 4, index: MAX_SAFE - 1, entries, commit: 12 },
    appResp: { ...base, type: 'appResp', index: 40, reject: true, rejectHint: 33, logTerm: 2 },
    vote: { ...base, type: 'vote', logTerm: 4, index: 8, transfer: true },
    preVote: { ...base, type: 'preVote', logTerm: 4, index: 8, transfer: false },
    voteResp: { ...base, type: 'voteResp', reject: false },
    preVoteResp: { ...base, type: 'preVoteResp', reject: true },
    heartbeat: { ...base, type: 'heartbeat', commit: 3, context: bytesOf(16) },
    heartbeatResp: { ...base, type: 'heartbeatResp', context: new Uint8Array(0) },
    snap: {
      ...base,
      type: 'snap',
      snapshot: { metadata: { index: 100, term: 5, confState: { voters: [1n, MAX_ID, 3n], learners: [MAX_ID - 1n] } }, data: bytesOf(5000) },
    },
    timeoutNow: { ...base, type: 'timeoutNow' },
    transferLeader: { ...base, type: 'transferLeader', transferee: MAX_ID },
    readIndex: { ...base, term: 0, type: 'readIndex', context: bytesOf(8, 7) },
    readIndexResp: { ...base, type: 'readIndexResp', index: 77, context: bytesOf(8, 9) },
  };
}

/** Bytes as hex strings, so Buffer vs Uint8Array never matters in a comparison. */
export function normalize(value: unknown): unknown {
  if (value instanceof Uint8Array) return { hex: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex') };
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  return value;
}
