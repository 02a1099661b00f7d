/**
 * Workload (d), set: every client adds unique elements with create-if-absent (a Txn comparing
 * create_revision = 0, then a put), and after the heal the whole set is read back from every
 * member with a linearizable read. Checker: every acknowledged add is present, nothing that was
 * never attempted (or that definitely failed) is present; indeterminate adds may be either.
 */
import { Prng } from '../sim/prng.js';
import { prefixEnd } from '../helpers/grpc.js';
import { classifyError, errorText, type FaultClient } from './client.js';
import { COMPARE_EQUAL, TARGET_CREATE } from './register.js';
import { sleep, type RecordedOp, type RunClock, type Verdict, type Workload, type WorkloadHistory } from './workload.js';

export interface SetAdd {
  readonly element: string;
  /** The Txn's `succeeded`: false would mean the unique key existed already. Unknown unless ok. */
  readonly created?: boolean;
}

export interface SetRead {
  readonly member: string;
  /** The elements found, or null when the read never succeeded within its bound. */
  readonly elements: readonly string[] | null;
  readonly error?: string;
}

export interface SetHistory extends WorkloadHistory<SetAdd> {
  readonly finalReads: readonly SetRead[];
}

export interface SetOptions {
  readonly seed: number;
  readonly clock: RunClock;
  readonly prefix: string;
  readonly clientsPerMember?: number;
  readonly deadlineMs?: number;
  /** Bound on the final read of one member (retried until then). Default 20 s. */
  readonly finalReadTimeoutMs?: number;
}

const FINAL_READ_DEADLINE_MS = 5_000;

export class SetWorkload implements Workload<SetHistory> {
  readonly name = 'set';
  readonly clientsPerMember: number;
  private readonly deadlineMs: number;
  private readonly finalReadTimeoutMs: number;

  constructor(private readonly options: SetOptions) {
    this.clientsPerMember = options.clientsPerMember ?? 1;
    this.deadlineMs = options.deadlineMs ?? 1_500;
    this.finalReadTimeoutMs = options.finalReadTimeoutMs ?? 20_000;
  }

  async start(clients: readonly FaultClient[], signal: AbortSignal): Promise<SetHistory> {
    const startedAt = this.options.clock.now();
    const root = new Prng(this.options.seed);
    const ops: RecordedOp<SetAdd>[] = [];
    await Promise.all(clients.map((client, index) => this.worker(client, index, root.fork(), ops, signal)));
    const stoppedAt = this.options.clock.now();
    // One read per member, after every add has come back and the cluster has healed.
    const perMember = new Map<string, FaultClient>();
    for (const client of clients) if (!perMember.has(client.member)) perMember.set(client.member, client);
    const finalReads = await Promise.all([...perMember.values()].map((client) => this.readAll(client)));
    return { workload: this.name, ops, startedAt, stoppedAt, finalReads };
  }

  private async worker(client: FaultClient, index: number, prng: Prng, ops: RecordedOp<SetAdd>[], signal: AbortSignal): Promise<void> {
    for (let sequence = 0; !signal.aborted; sequence += 1) {
      const element = `${index}-${sequence}`;
      const key = Buffer.from(`${this.options.prefix}/${element}`);
      const invokeTime = this.options.clock.now();
      const base = { client: client.name, kind: 'add', invokeTime };
      try {
        const reply = await client.unary<{ succeeded: boolean }>('KV', 'Txn', {
          compare: [{ result: COMPARE_EQUAL, target: TARGET_CREATE, key, create_revision: '0' }],
          success: [{ request_put: { key, value: Buffer.from(element) } }],
          failure: [],
        }, this.deadlineMs);
        ops.push({ ...base, completeTime: this.options.clock.now(), outcome: 'ok', wrote: reply.succeeded, detail: { element, created: reply.succeeded } });
      } catch (error) {
        const outcome = classifyError(error);
        ops.push({ ...base, completeTime: outcome === 'indeterminate' ? Infinity : this.options.clock.now(), outcome, wrote: false, error: errorText(error), detail: { element } });
        await sleep(50 + prng.int(100), signal);
      }
    }
  }

  /** A linearizable range over the prefix, retried (bounded) until it succeeds. */
  private async readAll(client: FaultClient): Promise<SetRead> {
    const deadline = Date.now() + this.finalReadTimeoutMs;
    let lastError = 'no attempt';
    while (Date.now() < deadline) {
      try {
        const key = `${this.options.prefix}/`;
        const reply = await client.unary<{ kvs: { key: Buffer }[] }>('KV', 'Range', { key: Buffer.from(key), range_end: prefixEnd(key), keys_only: true }, FINAL_READ_DEADLINE_MS);
        return { member: client.member, elements: reply.kvs.map((kv) => kv.key.toString('utf8').slice(key.length)) };
      } catch (error) {
        lastError = errorText(error);
        await sleep(250);
      }
    }
    return { member: client.member, elements: null, error: lastError };
  }

  check(history: SetHistory): Verdict[] {
    return [checkSet(history.ops.map((op) => ({ outcome: op.outcome, ...op.detail })), history.finalReads)];
  }
}

export interface SetAttempt extends SetAdd {
  readonly outcome: RecordedOp['outcome'];
}

const SHOW = 10;

/** Pure: the set checker over the adds and the final reads. */
export function checkSet(attempts: readonly SetAttempt[], reads: readonly SetRead[]): Verdict {
  const acknowledged = new Set<string>();
  const maybe = new Set<string>();
  const failed = new Set<string>();
  const problems: string[] = [];
  for (const attempt of attempts) {
    if (attempt.outcome === 'ok') {
      acknowledged.add(attempt.element);
      if (attempt.created === false) problems.push(`add ${attempt.element} found its unique key present already (created=false)`);
    } else if (attempt.outcome === 'indeterminate') maybe.add(attempt.element);
    else failed.add(attempt.element);
  }
  const done = reads.filter((read) => read.elements !== null);
  let maybePresent = 0;
  for (const read of done) {
    const present = new Set(read.elements);
    const lost = [...acknowledged].filter((element) => !present.has(element));
    const unexpected = [...present].filter((element) => !acknowledged.has(element) && !maybe.has(element));
    if (lost.length > 0) problems.push(`${read.member}: ${lost.length} acknowledged adds missing: ${lost.slice(0, SHOW).join(', ')}`);
    const failedPresent = unexpected.filter((element) => failed.has(element));
    const neverAttempted = unexpected.filter((element) => !failed.has(element));
    if (failedPresent.length > 0) problems.push(`${read.member}: ${failedPresent.length} adds that failed are present: ${failedPresent.slice(0, SHOW).join(', ')}`);
    if (neverAttempted.length > 0) problems.push(`${read.member}: ${neverAttempted.length} elements never added are present: ${neverAttempted.slice(0, SHOW).join(', ')}`);
    maybePresent = Math.max(maybePresent, [...maybe].filter((element) => present.has(element)).length);
  }
  const unread = reads.filter((read) => read.elements === null).map((read) => `${read.member}: final read failed: ${read.error ?? 'unknown error'}`);
  const valid = problems.length > 0 ? false : done.length === 0 ? null : true;
  const summary = valid === false
    ? `${problems.length} violation(s)`
    : valid === null
      ? 'no final read succeeded'
      : `${acknowledged.size} acknowledged adds present at ${done.length} member(s); ${maybe.size} indeterminate (${maybePresent} present)`;
  return { checker: 'set (acknowledged adds present, nothing unexpected)', valid, summary, details: [...problems, ...unread] };
}
