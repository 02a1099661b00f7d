/**
 * Workload (a), register: reads, writes and compare-and-sets on a few keys, from every client
 * at once, each op recorded with its invoke and complete times and outcome; checked for
 * linearizability key by key (test/checker/linearizability.ts).
 *
 * Keys rotate: each of `keySlots` slots moves to a fresh key after `opsPerKey` ops, so that
 * every per-key history stays short enough for the search (a few hundred ops), however long
 * the run. Written values are unique (client and sequence), which keeps the search cheap and
 * makes every read attributable to one write.
 */
import { checkKvHistory, describeOperation, registerModel, type KvOp, type Operation, type RegisterValue } from '../checker/linearizability.js';
import { Prng } from '../sim/prng.js';
import { classifyError, errorText, type FaultClient } from './client.js';
import { sleep, type RecordedOp, type RunClock, type Verdict, type Workload, type WorkloadHistory } from './workload.js';

export interface RegisterOptions {
  readonly seed: number;
  readonly clock: RunClock;
  /** Distinguishes this run's keys from any other's. */
  readonly prefix: string;
  readonly clientsPerMember?: number;
  readonly keySlots?: number;
  readonly opsPerKey?: number;
  /** Per-call deadline; default 1500 ms. */
  readonly deadlineMs?: number;
  /** Probability of a read; the rest is split between writes and cas. Default 0.4. */
  readonly readShare?: number;
  /** Bound on the checker's search per key. */
  readonly maxStates?: number;
}

export type RegisterHistory = WorkloadHistory<KvOp>;

interface RegisterSettings {
  readonly clientsPerMember: number;
  readonly keySlots: number;
  readonly opsPerKey: number;
  readonly deadlineMs: number;
  readonly readShare: number;
}

/** etcdserverpb.Compare enums. */
export const COMPARE_EQUAL = 0;
export const TARGET_CREATE = 1;
export const TARGET_VALUE = 3;

interface RangeReply { kvs: { value: Buffer }[] }
interface TxnReply { succeeded: boolean }

/** Hands out keys: slot s is at generation g until opsPerKey ops have used it. */
class KeyRotation {
  private readonly generation: number[];
  private readonly used: number[];

  constructor(private readonly prefix: string, slots: number, private readonly opsPerKey: number) {
    this.generation = new Array<number>(slots).fill(0);
    this.used = new Array<number>(slots).fill(0);
  }

  take(slot: number): string {
    const used = (this.used[slot] ?? 0) + 1;
    let generation = this.generation[slot] ?? 0;
    if (used > this.opsPerKey) {
      generation += 1;
      this.generation[slot] = generation;
      this.used[slot] = 1;
    } else {
      this.used[slot] = used;
    }
    return `${this.prefix}/${slot}/${generation}`;
  }
}

export class RegisterWorkload implements Workload<RegisterHistory> {
  readonly name = 'register';
  readonly clientsPerMember: number;
  private readonly settings: RegisterSettings;

  constructor(private readonly options: RegisterOptions) {
    this.settings = {
      clientsPerMember: options.clientsPerMember ?? 2,
      keySlots: options.keySlots ?? 4,
      opsPerKey: options.opsPerKey ?? 150,
      deadlineMs: options.deadlineMs ?? 1_500,
      readShare: options.readShare ?? 0.4,
    };
    this.clientsPerMember = this.settings.clientsPerMember;
  }

  async start(clients: readonly FaultClient[], signal: AbortSignal): Promise<RegisterHistory> {
    const startedAt = this.options.clock.now();
    const keys = new KeyRotation(this.options.prefix, this.settings.keySlots, this.settings.opsPerKey);
    const root = new Prng(this.options.seed);
    const ops: RecordedOp<KvOp>[] = [];
    await Promise.all(clients.map((client, index) => this.worker(client, index, root.fork(), keys, ops, signal)));
    return { workload: this.name, ops, startedAt, stoppedAt: this.options.clock.now() };
  }

  /** One client: one op at a time until the signal aborts; a short pause after an error. */
  private async worker(client: FaultClient, index: number, prng: Prng, keys: KeyRotation, ops: RecordedOp<KvOp>[], signal: AbortSignal): Promise<void> {
    const lastSeen = new Map<string, RegisterValue>();
    for (let sequence = 0; !signal.aborted; sequence += 1) {
      const key = keys.take(prng.int(this.settings.keySlots));
      const roll = prng.float();
      const value = `c${index}-${sequence}`;
      const op: KvOp = roll < this.settings.readShare
        ? { key, type: 'read' }
        : roll < this.settings.readShare + (1 - this.settings.readShare) / 2
          ? { key, type: 'write', value }
          : { key, type: 'cas', expected: lastSeen.get(key) ?? null, value };
      const recorded = await this.invoke(client, op);
      ops.push(recorded);
      const observed = observedValue(recorded);
      if (observed !== undefined) lastSeen.set(key, observed);
      if (recorded.outcome !== 'ok') await sleep(50 + prng.int(100), signal);
    }
  }

  private async invoke(client: FaultClient, op: KvOp): Promise<RecordedOp<KvOp>> {
    const clock = this.options.clock;
    const invokeTime = clock.now();
    const base = { client: client.name, kind: op.type, invokeTime };
    try {
      const done = await this.call(client, op);
      return { ...base, completeTime: clock.now(), outcome: 'ok', wrote: done.type === 'write' || (done.type === 'cas' && done.succeeded === true), detail: done };
    } catch (error) {
      const outcome = classifyError(error);
      const completeTime = outcome === 'indeterminate' ? Infinity : clock.now();
      return { ...base, completeTime, outcome, wrote: false, error: errorText(error), detail: op };
    }
  }

  /** The op with its observed output filled in. */
  private async call(client: FaultClient, op: KvOp): Promise<KvOp> {
    const deadlineMs = this.settings.deadlineMs;
    const key = Buffer.from(op.key);
    switch (op.type) {
      case 'read': {
        const reply = await client.unary<RangeReply>('KV', 'Range', { key }, deadlineMs);
        const found = reply.kvs[0];
        return { ...op, value: found === undefined ? null : found.value.toString('utf8') };
      }
      case 'write':
        await client.unary('KV', 'Put', { key, value: Buffer.from(op.value ?? '') }, deadlineMs);
        return op;
      case 'cas': {
        // A value compare fails on an absent key (etcd), so "expect absent" compares create_revision = 0.
        const compare = op.expected === null
          ? { result: COMPARE_EQUAL, target: TARGET_CREATE, key, create_revision: '0' }
          : { result: COMPARE_EQUAL, target: TARGET_VALUE, key, value: Buffer.from(op.expected) };
        const reply = await client.unary<TxnReply>('KV', 'Txn', { compare: [compare], success: [{ request_put: { key, value: Buffer.from(op.value ?? '') } }], failure: [] }, deadlineMs);
        return { ...op, succeeded: reply.succeeded };
      }
    }
  }

  check(history: RegisterHistory): Verdict[] {
    return [checkRegisterHistory(history.ops, this.options.maxStates)];
  }
}

/** What the client learned about the key's value from an op, if anything. */
function observedValue(recorded: RecordedOp<KvOp>): RegisterValue | undefined {
  if (recorded.outcome !== 'ok') return undefined;
  const op = recorded.detail;
  switch (op.type) {
    case 'read':
      return op.value;
    case 'write':
      return op.value;
    case 'cas':
      return op.succeeded === true ? op.value : undefined;
  }
}

/** Pure: linearizability of each key's history. Register writes never use null values. */
export function checkRegisterHistory(ops: readonly RecordedOp<KvOp>[], maxStates?: number): Verdict {
  const history: Operation<KvOp>[] = ops.map((recorded, id) => ({
    op: recorded.detail,
    invokeTime: recorded.invokeTime,
    completeTime: recorded.completeTime,
    outcome: recorded.outcome,
    client: recorded.client,
    id,
  }));
  const result = checkKvHistory(history, maxStates === undefined ? {} : { maxStates });
  const keys = new Set(history.map((o) => o.op.key)).size;
  const details: string[] = [];
  for (const [key, failure] of result.failures) {
    if (failure.linearizable === false) details.push(`key ${key}: ${failure.explanation}`);
    else details.push(`key ${key}: unknown (search budget exceeded after ${failure.exploredStates} states)`);
  }
  const summary = result.linearizable === true
    ? `linearizable: ${keys} keys, ${history.length} ops, ${result.exploredStates} states explored`
    : result.linearizable === false
      ? `NOT linearizable on ${[...result.failures.values()].filter((f) => f.linearizable === false).length} of ${keys} keys`
      : `unknown on ${result.failures.size} of ${keys} keys (search budget)`;
  return { checker: 'linearizability (register)', valid: result.linearizable, summary, details };
}

/** For reports and debugging: one op as the checker prints it. */
export function describeRegisterOp(recorded: RecordedOp<KvOp>): string {
  return describeOperation(registerModel, { op: recorded.detail, invokeTime: recorded.invokeTime, completeTime: recorded.completeTime, outcome: recorded.outcome, client: recorded.client });
}
