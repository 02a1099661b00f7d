/**
 * The replicated state machine of the simulator: a string KV map with put / get / cas. Every
 * request carries (client, seq); a client has one request in flight at a time and retries it
 * under the same seq, so the machine keeps, per client, the last seq applied and its result:
 * a retry that commits twice is answered from that table and changes nothing, and an older seq
 * (abandoned by its client) that commits late is ignored.
 */
import { assert, assertNever } from '../../server/raft/index.js';
import type { ConfState, Entry } from '../../server/raft/index.js';

export type KvRequest =
  | { readonly type: 'put'; readonly client: number; readonly seq: number; readonly key: string; readonly value: string }
  | { readonly type: 'cas'; readonly client: number; readonly seq: number; readonly key: string; readonly expected: string | null; readonly value: string }
  /** A read through the log (the alternative to ReadIndex). */
  | { readonly type: 'get'; readonly client: number; readonly seq: number; readonly key: string };

export type KvResult =
  | { readonly type: 'put' }
  | { readonly type: 'get'; readonly value: string | null }
  | { readonly type: 'cas'; readonly succeeded: boolean };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeRequest(request: KvRequest): Uint8Array {
  return encoder.encode(JSON.stringify(request));
}

/** Entries' data arrays are shared between members in the simulator: decode each once. */
const decoded = new WeakMap<Uint8Array, KvRequest>();

export function decodeRequest(data: Uint8Array): KvRequest {
  const cached = decoded.get(data);
  if (cached !== undefined) return cached;
  const request = parseRequest(data);
  decoded.set(data, request);
  return request;
}

function parseRequest(data: Uint8Array): KvRequest {
  const parsed: unknown = JSON.parse(decoder.decode(data));
  assert(typeof parsed === 'object' && parsed !== null && 'type' in parsed && 'client' in parsed && 'seq' in parsed,
    'sim kv: malformed request entry');
  return parsed as KvRequest;
}

interface Session {
  readonly seq: number;
  readonly result: KvResult;
}

export class KvStateMachine {
  applied: number;
  confState: ConfState;
  private readonly kv: Map<string, string>;
  private readonly sessions: Map<number, Session>;

  constructor(applied: number, confState: ConfState, kv = new Map<string, string>(), sessions = new Map<number, Session>()) {
    this.applied = applied;
    this.confState = confState;
    this.kv = kv;
    this.sessions = sessions;
  }

  clone(): KvStateMachine {
    return new KvStateMachine(this.applied, this.confState, new Map(this.kv), new Map(this.sessions));
  }

  get(key: string): string | null {
    return this.kv.get(key) ?? null;
  }

  /**
   * Applies one committed entry (in index order). For a conf change, `confState` is what
   * RawNode.applyConfChange returned. Returns the request and its result for a KV request.
   */
  applyEntry(entry: Entry, confState?: ConfState): { request: KvRequest; result: KvResult } | undefined {
    assert(entry.index === this.applied + 1, `sim kv: applying ${entry.index} after ${this.applied}`);
    this.applied = entry.index;
    if (entry.type === 'confChange') {
      assert(confState !== undefined, 'sim kv: conf change applied without its ConfState');
      this.confState = confState;
      return undefined;
    }
    if (entry.data.byteLength === 0) return undefined; // a leader's no-op
    const request = decodeRequest(entry.data);
    const session = this.sessions.get(request.client);
    if (session !== undefined && request.seq <= session.seq) {
      // A duplicate (retry) is answered from the session; an abandoned older request is a no-op.
      return request.seq === session.seq ? { request, result: session.result } : undefined;
    }
    const result = this.execute(request);
    this.sessions.set(request.client, { seq: request.seq, result });
    return { request, result };
  }

  private execute(request: KvRequest): KvResult {
    switch (request.type) {
      case 'put':
        this.kv.set(request.key, request.value);
        return { type: 'put' };
      case 'get':
        return { type: 'get', value: this.get(request.key) };
      case 'cas': {
        const succeeded = this.get(request.key) === request.expected;
        if (succeeded) this.kv.set(request.key, request.value);
        return { type: 'cas', succeeded };
      }
      default:
        return assertNever(request, 'request');
    }
  }

  serialize(): Uint8Array {
    return encoder.encode(JSON.stringify({
      applied: this.applied,
      voters: this.confState.voters.map(String),
      learners: this.confState.learners.map(String),
      kv: [...this.kv],
      sessions: [...this.sessions],
    }));
  }

  static deserialize(data: Uint8Array): KvStateMachine {
    const parsed = JSON.parse(decoder.decode(data)) as {
      applied: number; voters: string[]; learners: string[]; kv: [string, string][]; sessions: [number, Session][];
    };
    const confState: ConfState = { voters: parsed.voters.map(BigInt), learners: parsed.learners.map(BigInt) };
    return new KvStateMachine(parsed.applied, confState, new Map(parsed.kv), new Map(parsed.sessions));
  }

  /** For the end-of-run convergence check. */
  equals(other: KvStateMachine): boolean {
    if (this.applied !== other.applied || this.kv.size !== other.kv.size) return false;
    for (const [key, value] of this.kv) if (other.kv.get(key) !== value) return false;
    return true;
  }

  describe(): string {
    return `applied ${this.applied} {${[...this.kv].map(([k, v]) => `${k}=${v}`).join(', ')}}`;
  }
}
