/**
 * SimClient: one client issuing put / get / cas, one at a time, against any member. A request
 * that times out or is refused is retried (same seq, so the state machine deduplicates it) on
 * the hinted leader or another member. During the fault phase a client may give up on a request
 * after a while: the request is then indeterminate (it may or may not take effect). Each
 * request is recorded for the linearizability checker with invoke and completion stamps taken
 * from one global counter, so real-time order in the history is exact.
 */
import { NONE, assertNever, type NodeId } from '../../server/raft/index.js';
import type { KvOp, Operation, Outcome, RegisterOp } from '../checker/linearizability.js';
import type { EventQueue } from './event-queue.js';
import type { KvRequest } from './kv.js';
import type { NodeRequest, NodeResponse } from './node.js';
import type { Prng } from './prng.js';

export interface ClientEnv {
  readonly queue: EventQueue;
  /** A fresh, strictly increasing stamp for the history. */
  readonly stamp: () => number;
  /** Members a client may talk to. */
  readonly members: () => readonly NodeId[];
  /** Sends a request to a member; `reply` may be called later, once, or never. */
  readonly send: (to: NodeId, request: NodeRequest, reply: (response: NodeResponse) => void) => void;
  readonly trace: ((line: string) => void) | undefined;
  readonly keys: readonly string[];
}

export interface ClientSettings {
  /** Time units to wait for an answer before retrying elsewhere. */
  attemptTimeoutUnits: number;
  /** Give up on a request after this many units (Infinity: never). */
  giveUpUnits: number;
  /** Pause between requests, in units. */
  thinkMaxUnits: number;
  /** Share of reads done through the log instead of ReadIndex. */
  logReadShare: number;
  /** False once the run stops issuing new requests. */
  issuing: boolean;
}

interface InFlight {
  readonly request: KvRequest;
  /** Reads through ReadIndex are not log entries. */
  readonly viaReadIndex: boolean;
  readonly invokeStamp: number;
  readonly invokeTime: number;
  attempt: number;
  /** True if some attempt may have reached the log (any attempt not refused outright). */
  mayHaveApplied: boolean;
}

export class SimClient {
  readonly history: Operation<KvOp>[] = [];
  private seq = 0;
  private current: InFlight | undefined;
  private leaderHint: NodeId = NONE;
  /** The last value this client saw per key: its usual cas expectation. */
  private readonly seen = new Map<string, string | null>();
  completed = 0;
  gaveUp = 0;
  retries = 0;

  constructor(
    readonly id: number,
    private readonly env: ClientEnv,
    private readonly random: Prng,
    readonly settings: ClientSettings,
  ) {}

  start(): void {
    this.env.queue.after(this.random.range(1, this.settings.thinkMaxUnits), () => this.issue());
  }

  get busy(): boolean {
    return this.current !== undefined;
  }

  /** The request in flight, for liveness reports. */
  describeCurrent(): string {
    const c = this.current;
    return c === undefined ? 'idle' : `${describeRequest(c.request, c.viaReadIndex)} since t=${c.invokeTime} (attempt ${c.attempt})`;
  }

  private issue(): void {
    if (!this.settings.issuing || this.current !== undefined) return;
    const seq = ++this.seq;
    const key = this.random.pick(this.env.keys);
    const roll = this.random.float();
    let request: KvRequest;
    let viaReadIndex = false;
    if (roll < 0.35) {
      request = { type: 'put', client: this.id, seq, key, value: `${this.id}.${seq}` };
    } else if (roll < 0.7) {
      request = { type: 'get', client: this.id, seq, key };
      viaReadIndex = !this.random.chance(this.settings.logReadShare);
    } else {
      const expected = this.random.chance(0.8) ? this.seen.get(key) ?? null : `${this.random.int(4)}.${this.random.int(4)}`;
      request = { type: 'cas', client: this.id, seq, key, expected, value: `${this.id}.${seq}` };
    }
    const invokeStamp = this.env.stamp();
    this.current = { request, viaReadIndex, invokeStamp, invokeTime: this.env.queue.now, attempt: 0, mayHaveApplied: false };
    this.env.trace?.(`client ${this.id} invokes ${describeRequest(request, viaReadIndex)}`);
    this.attempt();
  }

  private attempt(): void {
    const current = this.current!;
    const attempt = ++current.attempt;
    if (attempt > 1) this.retries++;
    const members = this.env.members();
    const target = this.leaderHint !== NONE && members.includes(this.leaderHint) && this.random.chance(0.8)
      ? this.leaderHint
      : this.random.pick(members);
    const request: NodeRequest = current.viaReadIndex
      ? { kind: 'readIndex', key: current.request.key }
      : { kind: 'propose', request: current.request };
    let answered = false;
    this.env.send(target, request, (response) => {
      answered = true;
      this.onResponse(current, attempt, target, response);
    });
    this.env.queue.after(this.settings.attemptTimeoutUnits, () => {
      if (this.current !== current || answered) return;
      if (!current.viaReadIndex) current.mayHaveApplied = true; // it may still be in some log
      this.leaderHint = NONE;
      if (this.env.queue.now - current.invokeTime >= this.settings.giveUpUnits) this.giveUp(current);
      else this.attempt();
    });
  }

  private onResponse(current: InFlight, attempt: number, from: NodeId, response: NodeResponse): void {
    if (this.current !== current) return; // an answer to a request already finished
    if (response.ok) {
      this.complete(current, 'ok', response);
      this.leaderHint = from;
      return;
    }
    // Refused before reaching the log: retry (soon) where the member says the leader is.
    this.leaderHint = response.leader;
    if (attempt !== current.attempt) return; // an older attempt's refusal; the newer one is pending
    this.env.queue.after(this.random.range(1, 10), () => {
      if (this.current !== current || current.attempt !== attempt) return;
      if (this.env.queue.now - current.invokeTime >= this.settings.giveUpUnits) this.giveUp(current);
      else this.attempt();
    });
  }

  private giveUp(current: InFlight): void {
    this.gaveUp++;
    this.complete(current, current.mayHaveApplied ? 'indeterminate' : 'fail', undefined);
  }

  private complete(current: InFlight, outcome: Outcome, response: NodeResponse | undefined): void {
    const completeStamp = this.env.stamp();
    const request = current.request;
    let op: RegisterOp;
    const result = response?.ok === true ? response.result : undefined;
    switch (request.type) {
      case 'put':
        op = { type: 'write', value: request.value };
        break;
      case 'get':
        op = { type: 'read', value: result?.type === 'get' ? result.value : undefined };
        break;
      case 'cas':
        op = { type: 'cas', expected: request.expected, value: request.value, succeeded: result?.type === 'cas' ? result.succeeded : undefined };
        break;
      default:
        assertNever(request, 'request');
    }
    this.history.push({
      op: { ...op, key: request.key },
      invokeTime: current.invokeStamp,
      completeTime: outcome === 'ok' ? completeStamp : Infinity,
      outcome,
      client: this.id,
      id: `${this.id}.${request.seq}`,
    });
    if (result?.type === 'get') this.seen.set(request.key, result.value);
    if (request.type === 'put' && outcome === 'ok') this.seen.set(request.key, request.value);
    if (request.type === 'cas' && result?.type === 'cas' && result.succeeded) this.seen.set(request.key, request.value);
    this.env.trace?.(`client ${this.id} ${outcome} ${describeRequest(request, current.viaReadIndex)}${result === undefined ? '' : ` -> ${JSON.stringify(result)}`}`);
    this.current = undefined;
    if (outcome === 'ok') this.completed++;
    this.env.queue.after(this.random.range(1, this.settings.thinkMaxUnits), () => this.issue());
  }
}

function describeRequest(request: KvRequest, viaReadIndex: boolean): string {
  switch (request.type) {
    case 'put':
      return `#${request.client}.${request.seq} put ${request.key}=${request.value}`;
    case 'get':
      return `#${request.client}.${request.seq} get ${request.key}${viaReadIndex ? ' (readIndex)' : ' (log)'}`;
    case 'cas':
      return `#${request.client}.${request.seq} cas ${request.key} ${request.expected ?? 'nil'}->${request.value}`;
    default:
      return assertNever(request, 'request');
  }
}
