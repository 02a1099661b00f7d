/**
 * A linearizability checker for histories of concurrent operations against a sequential model.
 *
 * The search is Wing & Gong's, in the iterative form of Lowe ("Testing for linearizability",
 * 2017): the history is a linked list of call and return events in time order; the search
 * linearizes a pending call, lifts it (and its return) out of the list, and backtracks when it
 * meets a return whose call it could not linearize. Lowe's memoization prunes every
 * configuration (set of linearized operations, model state) that was seen before.
 *
 * Indeterminate operations stay pending forever, which multiplies configurations; three sound
 * reductions keep that in check (see Search): a configuration is subsumed by one with the same
 * completed ops and state and a subset of the indeterminate ones; an op that overwrites the
 * effect of the indeterminate op just before it is not tried there (that configuration is
 * subsumed); identical pending indeterminate ops are tried only once. Still, a history with
 * many indeterminate writes per key that is NOT linearizable can exhaust the budget: the answer
 * is then `unknown`, never a guess. Keep per-key histories short (a few hundred ops).
 *
 * The checker is generic over a Model and knows nothing of keys: P-compositionality is the
 * caller's job (split a KV history per key with `partitionBy` and check each part; a history
 * is linearizable iff every part is).
 *
 * Operation outcomes:
 * - 'ok': took effect exactly once, between invokeTime and completeTime; its output is known.
 * - 'fail': definitely did not take effect; dropped before the search.
 * - 'indeterminate': may or may not have taken effect (a timeout, a lost connection); it may be
 *   linearized anywhere after its invocation, or not at all. Its completeTime is ignored
 *   (treated as Infinity) and the model sees its output as unknown.
 *
 * Real-time order: A precedes B iff A.completeTime < B.invokeTime. Equal times overlap.
 */

/** A sequential specification. `Op` includes the observed output (if any). */
export interface Model<State, Op> {
  init(): State;
  /** Apply op to state; ok=false when op's observed output is impossible in that state. */
  step(state: State, op: Op): { ok: boolean; state: State };
  equal(a: State, b: State): boolean;
  /** A 32-bit hash consistent with equal(). */
  hash(state: State): number;
  /**
   * Optional: true for an op that never changes the state (a read). An indeterminate read-only op
   * constrains nothing, so the checker drops it instead of exploring it.
   */
  readOnly?(op: Op): boolean;
  /**
   * Optional: equal keys for interchangeable ops (same input and output). Among pending
   * indeterminate ops with one key the search then tries only the first, not each in turn.
   */
  opKey?(op: Op): string;
  describeOp?(op: Op): string;
  describeState?(state: State): string;
}

export type Outcome = 'ok' | 'fail' | 'indeterminate';

export interface Operation<Op> {
  readonly op: Op;
  readonly invokeTime: number;
  /** Infinity when the operation never completed. */
  readonly completeTime: number;
  readonly outcome: Outcome;
  /** For diagnostics only. */
  readonly client?: number | string;
  readonly id?: number | string;
}

export interface CheckOptions {
  /** Upper bound on configurations explored (search steps); beyond it the answer is unknown. */
  readonly maxStates?: number;
}

export type CheckResult<State, Op> =
  | { readonly linearizable: true; readonly exploredStates: number; readonly linearization: readonly Operation<Op>[] }
  | {
      readonly linearizable: false;
      readonly exploredStates: number;
      /** The longest sequence of operations the search managed to linearize. */
      readonly longestPrefix: readonly Operation<Op>[];
      /** The model state after longestPrefix. */
      readonly stateAfterPrefix: State;
      /** The completed operation that could not be placed after longestPrefix. */
      readonly blocking: Operation<Op>;
      /** Operations pending at that point (invoked before blocking completed), none of which fit. */
      readonly pending: readonly Operation<Op>[];
      /** A readable multi-line explanation. */
      readonly explanation: string;
    }
  | { readonly linearizable: null; readonly unknown: 'budget exceeded'; readonly exploredStates: number };

export const DEFAULT_MAX_STATES = 2_000_000;

/** One node of the event list. A call and its return point at each other via `match`. */
interface Event {
  readonly opIndex: number;
  readonly isCall: boolean;
  match: Event | null;
  prev: Event | null;
  next: Event | null;
}

/** Checks one history (typically one key's) against a model. */
export function checkLinearizable<State, Op>(
  model: Model<State, Op>,
  history: readonly Operation<Op>[],
  options: CheckOptions = {},
): CheckResult<State, Op> {
  const droppable = (o: Operation<Op>): boolean =>
    o.outcome === 'fail' || (o.outcome === 'indeterminate' && model.readOnly?.(o.op) === true);
  const ops = history.filter((o) => !droppable(o));
  for (const o of ops) {
    if (!(o.invokeTime <= o.completeTime) && o.outcome === 'ok') {
      throw new Error(`linearizability: op completes (${o.completeTime}) before it is invoked (${o.invokeTime})`);
    }
  }
  // Two search orders, as a portfolio. Time order finds a linearization fast when there is one;
  // completed-ops-first explores the fewest configurations when it must exhaust them all.
  const maxStates = options.maxStates ?? DEFAULT_MAX_STATES;
  const first = new Search(model, ops, Math.ceil(maxStates / 4), false).run();
  if (first.linearizable !== null) return first;
  const second = new Search(model, ops, maxStates - first.exploredStates, true).run();
  return second.linearizable === null ? { ...second, exploredStates: maxStates } : { ...second, exploredStates: first.exploredStates + second.exploredStates };
}

/** Splits a history into independent sub-histories (P-compositionality, e.g. per key). */
export function partitionBy<Op, K>(history: readonly Operation<Op>[], keyOf: (op: Op) => K): Map<K, Operation<Op>[]> {
  const parts = new Map<K, Operation<Op>[]>();
  for (const o of history) {
    const key = keyOf(o.op);
    let part = parts.get(key);
    if (part === undefined) parts.set(key, (part = []));
    part.push(o);
  }
  return parts;
}

/**
 * Memo entry: a configuration already explored. `words` is the set of linearized completed ops
 * (a bitset compressed by skipping its all-ones prefix); `optional` the set of linearized
 * indeterminate ops.
 */
interface Seen<State> {
  /** Index of the first bitset word that is not all ones; words below it are all ones. */
  readonly base: number;
  readonly words: Uint32Array;
  readonly optional: Uint32Array;
  readonly state: State;
}

class Search<State, Op> {
  private readonly head: Event = { opIndex: -1, isCall: false, match: null, prev: null, next: null };
  /** Per op: its bit in `required` (completed ops) or in `optional` (indeterminate ops). */
  private readonly slot: Int32Array;
  private readonly required: Uint32Array;
  private readonly optional: Uint32Array;
  /** Zobrist hash of the linearized completed ops: XOR of per-op random words. */
  private zobrist = 0;
  private readonly opHash: Uint32Array;
  /** model.opKey of each indeterminate op, when the model has one. */
  private readonly opKeys: readonly (string | undefined)[] | null;
  private readonly seen = new Map<number, Seen<State>[]>();
  private explored = 0;
  /** Completed ('ok') operations not yet linearized: the search succeeds when it reaches 0. */
  private requiredLeft = 0;
  private best: { prefix: number[]; state: State; blocking: number; pending: number[] } | null = null;

  constructor(
    private readonly model: Model<State, Op>,
    private readonly ops: readonly Operation<Op>[],
    private readonly maxStates: number,
    /** Try completed ops before indeterminate ones (see run()). */
    private readonly completedFirst: boolean,
  ) {
    this.slot = new Int32Array(ops.length);
    let requiredCount = 0;
    let optionalCount = 0;
    ops.forEach((o, i) => {
      this.slot[i] = o.outcome === 'ok' ? requiredCount++ : optionalCount++;
    });
    this.required = new Uint32Array(Math.ceil(requiredCount / 32) + 1);
    this.optional = new Uint32Array(Math.ceil(optionalCount / 32));
    const opKey = model.opKey;
    this.opKeys = opKey === undefined ? null : ops.map((o) => (o.outcome === 'ok' ? undefined : opKey(o.op)));
    this.opHash = new Uint32Array(ops.length);
    let seed = 0x9e3779b9;
    for (let i = 0; i < ops.length; i++) {
      seed = (seed + 0x6d2b79f5) | 0;
      this.opHash[i] = mix32(seed);
    }
    this.buildList();
  }

  /** Call events sorted by invoke time, returns by complete time; calls first at equal times. */
  private buildList(): void {
    type Point = { time: number; isCall: boolean; opIndex: number };
    const points: Point[] = [];
    this.ops.forEach((o, opIndex) => {
      points.push({ time: o.invokeTime, isCall: true, opIndex });
      if (o.outcome === 'ok') {
        points.push({ time: o.completeTime, isCall: false, opIndex });
        this.requiredLeft++;
      }
    });
    points.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.opIndex - b.opIndex : a.isCall ? -1 : 1));
    const calls = new Map<number, Event>();
    let tail = this.head;
    for (const p of points) {
      const event: Event = { opIndex: p.opIndex, isCall: p.isCall, match: null, prev: tail, next: null };
      if (p.isCall) calls.set(p.opIndex, event);
      else {
        const call = calls.get(p.opIndex)!;
        call.match = event;
        event.match = call;
      }
      tail.next = event;
      tail = event;
    }
  }

  /**
   * The search. Candidates for the next linearization point are the calls before the first
   * return in the list. They are tried in time order, or (completedFirst) in two passes:
   * completed ops first, then indeterminate ones, so that configurations with few indeterminate
   * ops are explored (and memoized) first and subsume the rest.
   */
  run(): CheckResult<State, Op> {
    let state = this.model.init();
    const stack: { call: Event; state: State; optionalPass: boolean }[] = [];
    let entry = this.head.next;
    let optionalPass = false;
    while (this.requiredLeft > 0) {
      if (entry === null) throw new Error('linearizability: event list ended with required operations left');
      if (++this.explored > this.maxStates) {
        return { linearizable: null, unknown: 'budget exceeded', exploredStates: this.explored };
      }
      if (entry.isCall) {
        const isOptional = this.ops[entry.opIndex]!.outcome !== 'ok';
        if ((this.completedFirst && isOptional !== optionalPass) || (isOptional && this.hasTwinBefore(entry))) {
          entry = entry.next;
          continue;
        }
        const op = this.ops[entry.opIndex]!.op;
        const stepped = this.model.step(state, op);
        if (stepped.ok && !this.absorbs(stack[stack.length - 1], op, stepped.state) && this.remember(entry.opIndex, stepped.state)) {
          stack.push({ call: entry, state, optionalPass });
          state = stepped.state;
          this.lift(entry);
          entry = this.head.next;
          optionalPass = false;
        } else {
          entry = entry.next;
        }
        continue;
      }
      if (this.completedFirst && !optionalPass) {
        optionalPass = true;
        entry = this.head.next;
        continue;
      }
      // A return whose call is not linearized: the current prefix cannot be extended.
      this.noteFailure(stack, state, entry);
      const top = stack.pop();
      if (top === undefined) return this.failure();
      state = top.state;
      this.unlift(top.call);
      entry = top.call.next;
      optionalPass = top.optionalPass;
    }
    return { linearizable: true, exploredStates: this.explored, linearization: stack.map((s) => this.ops[s.call.opIndex]!) };
  }

  /**
   * True when `op`, placed right after an indeterminate op X, leaves the same state as it would
   * without X: then X changed nothing observable, and the configuration is subsumed by the one
   * that linearizes op without X (explored from X's parent, where op was a candidate as well).
   * This stops chains of unobserved indeterminate writes from enumerating every subset.
   */
  private absorbs(top: { call: Event; state: State } | undefined, op: Op, after: State): boolean {
    if (top === undefined || this.ops[top.call.opIndex]!.outcome === 'ok') return false;
    const without = this.model.step(top.state, op);
    return without.ok && this.model.equal(without.state, after);
  }

  /** True when a pending indeterminate op with the same opKey precedes `call` (symmetry). */
  private hasTwinBefore(call: Event): boolean {
    const key = this.opKeys?.[call.opIndex];
    if (key === undefined) return false;
    for (let e = call.prev; e !== null && e !== this.head; e = e.prev) {
      if (e.isCall && this.ops[e.opIndex]!.outcome !== 'ok' && this.opKeys![e.opIndex] === key) return true;
    }
    return false;
  }

  /**
   * Marks opIndex as linearized; false (and unmarked) if an equivalent or stronger configuration
   * was explored before. Lowe's memo, plus subsumption: (required set R, optional set I1, state)
   * subsumes (R, I2, state) when I1 is a subset of I2, since every continuation of the latter
   * is open to the former (the extra indeterminate ops may simply never take effect).
   */
  private remember(opIndex: number, state: State): boolean {
    this.toggle(opIndex);
    const key = (this.zobrist ^ this.model.hash(state)) >>> 0;
    let bucket = this.seen.get(key);
    const bits = this.required;
    let base = 0;
    while (base < bits.length && bits[base] === 0xffffffff) base++;
    let end = bits.length;
    while (end > base && bits[end - 1] === 0) end--;
    if (bucket !== undefined) {
      for (const s of bucket) {
        if (s.base === base && s.words.length === end - base && this.requiredEqual(s.words, base) &&
            this.optionalSubset(s.optional) && this.model.equal(s.state, state)) {
          this.toggle(opIndex);
          return false;
        }
      }
    } else {
      this.seen.set(key, (bucket = []));
    }
    bucket.push({ base, words: bits.slice(base, end), optional: this.optional.slice(), state });
    return true;
  }

  private requiredEqual(words: Uint32Array, base: number): boolean {
    for (let i = 0; i < words.length; i++) if (words[i] !== this.required[base + i]) return false;
    return true;
  }

  /** True when `seen` is a subset of the currently linearized optional ops. */
  private optionalSubset(seen: Uint32Array): boolean {
    for (let i = 0; i < seen.length; i++) if ((seen[i]! & ~this.optional[i]!) !== 0) return false;
    return true;
  }

  private toggle(opIndex: number): void {
    const slot = this.slot[opIndex]!;
    if (this.ops[opIndex]!.outcome === 'ok') {
      this.required[slot >>> 5]! ^= 1 << (slot & 31);
      this.zobrist ^= this.opHash[opIndex]!;
    } else {
      this.optional[slot >>> 5]! ^= 1 << (slot & 31);
    }
  }

  /** Removes a call (and its return, if any) from the list. */
  private lift(call: Event): void {
    unlink(call);
    if (call.match !== null) unlink(call.match);
    if (this.ops[call.opIndex]!.outcome === 'ok') this.requiredLeft--;
  }

  /** Undoes lift(): events keep their prev/next pointers, so relinking restores the list. */
  private unlift(call: Event): void {
    if (call.match !== null) relink(call.match);
    relink(call);
    this.toggle(call.opIndex);
    if (this.ops[call.opIndex]!.outcome === 'ok') this.requiredLeft++;
  }

  private noteFailure(stack: readonly { call: Event }[], state: State, blocking: Event): void {
    if (this.best !== null && this.best.prefix.length >= stack.length) return;
    const pending: number[] = [];
    for (let e = this.head.next; e !== null && e !== blocking; e = e.next) if (e.isCall) pending.push(e.opIndex);
    this.best = { prefix: stack.map((s) => s.call.opIndex), state, blocking: blocking.opIndex, pending };
  }

  private failure(): CheckResult<State, Op> {
    const best = this.best!;
    const longestPrefix = best.prefix.map((i) => this.ops[i]!);
    const blocking = this.ops[best.blocking]!;
    const pending = best.pending.map((i) => this.ops[i]!);
    return {
      linearizable: false,
      exploredStates: this.explored,
      longestPrefix,
      stateAfterPrefix: best.state,
      blocking,
      pending,
      explanation: this.explain(longestPrefix, best.state, blocking, pending),
    };
  }

  private explain(prefix: readonly Operation<Op>[], state: State, blocking: Operation<Op>, pending: readonly Operation<Op>[]): string {
    const show = (o: Operation<Op>): string => describeOperation(this.model, o);
    const tail = prefix.slice(-10);
    const lines = [
      `not linearizable: ${show(blocking)} cannot be linearized`,
      `  after the longest linearizable prefix (${prefix.length} ops${prefix.length > tail.length ? ', last 10 shown' : ''}):`,
      ...tail.map((o) => `    ${show(o)}`),
      `  model state there: ${this.model.describeState?.(state) ?? safeJson(state)}`,
      `  none of the ${pending.length} pending ops fits there:`,
      ...pending.slice(0, 20).map((o) => `    ${show(o)}`),
    ];
    return lines.join('\n');
  }
}

export function describeOperation<State, Op>(model: Model<State, Op>, o: Operation<Op>): string {
  const who = o.client === undefined ? '' : `client ${o.client} `;
  const id = o.id === undefined ? '' : `#${o.id} `;
  const end = o.outcome === 'indeterminate' ? '?' : String(o.completeTime);
  return `${id}${who}[${o.invokeTime}, ${end}] ${o.outcome} ${model.describeOp?.(o.op) ?? safeJson(o.op)}`;
}

function unlink(e: Event): void {
  e.prev!.next = e.next;
  if (e.next !== null) e.next.prev = e.prev;
}

function relink(e: Event): void {
  e.prev!.next = e;
  if (e.next !== null) e.next.prev = e;
}

/** A 32-bit avalanche (murmur3 finalizer). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A 32-bit FNV-1a hash of a string. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function safeJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(value);
}

// ---------------------------------------------------------------------------------------------
// A register model (one key of a KV store): read, write and compare-and-set.

/** A register's value; null means absent (never written, or deleted). */
export type RegisterValue = string | null;

export type RegisterOp =
  /** value: what the read returned; undefined when unknown (an indeterminate read). */
  | { readonly type: 'read'; readonly value?: RegisterValue }
  | { readonly type: 'write'; readonly value: RegisterValue }
  /** succeeded: whether the compare matched; undefined when unknown. */
  | { readonly type: 'cas'; readonly expected: RegisterValue; readonly value: RegisterValue; readonly succeeded?: boolean };

export const registerModel: Model<RegisterValue, RegisterOp> = {
  init: () => null,
  step(state, op) {
    switch (op.type) {
      case 'read':
        return { ok: op.value === undefined || op.value === state, state };
      case 'write':
        return { ok: true, state: op.value };
      case 'cas': {
        const matches = state === op.expected;
        // Unknown outcome: linearizing a non-matching cas is the same as leaving it out.
        if (op.succeeded === undefined) return { ok: true, state: matches ? op.value : state };
        if (op.succeeded !== matches) return { ok: false, state };
        return { ok: true, state: matches ? op.value : state };
      }
    }
  },
  equal: (a, b) => a === b,
  readOnly: (op) => op.type === 'read',
  opKey: (op) => JSON.stringify(op),
  hash: (s) => (s === null ? 0x5bd1e995 : hashString(s)),
  describeOp(op) {
    const show = (v: RegisterValue | undefined): string => (v === undefined ? '?' : v === null ? 'nil' : JSON.stringify(v));
    switch (op.type) {
      case 'read':
        return `read -> ${show(op.value)}`;
      case 'write':
        return `write ${show(op.value)}`;
      case 'cas':
        return `cas ${show(op.expected)} -> ${show(op.value)} : ${op.succeeded === undefined ? '?' : op.succeeded ? 'ok' : 'mismatch'}`;
    }
  },
  describeState: (s) => (s === null ? 'nil' : JSON.stringify(s)),
};

/** A keyed register op, for histories over many keys. */
export type KvOp = RegisterOp & { readonly key: string };

export interface KvCheckResult {
  readonly linearizable: boolean | null;
  /** Per key that is not linearizable (or unknown), the checker's answer. */
  readonly failures: ReadonlyMap<string, CheckResult<RegisterValue, RegisterOp>>;
  readonly exploredStates: number;
}

/** Checks a multi-key register history key by key (P-compositionality). */
export function checkKvHistory(history: readonly Operation<KvOp>[], options: CheckOptions = {}): KvCheckResult {
  const failures = new Map<string, CheckResult<RegisterValue, RegisterOp>>();
  let explored = 0;
  let verdict: boolean | null = true;
  for (const [key, part] of partitionBy(history, (op) => op.key)) {
    // Fast path: without the indeterminate writes nobody observed. If that sub-history is
    // linearizable, so is the whole (those writes may simply not have taken effect); if not,
    // they might be needed (to explain a cas mismatch), so the whole history is checked.
    const pruned = withoutUnobservedWrites(part);
    if (pruned.length < part.length) {
      const fast = checkLinearizable<RegisterValue, RegisterOp>(registerModel, pruned, options);
      explored += fast.exploredStates;
      if (fast.linearizable === true) continue;
    }
    const result = checkLinearizable<RegisterValue, RegisterOp>(registerModel, part, options);
    explored += result.exploredStates;
    if (result.linearizable === true) continue;
    failures.set(key, result);
    if (result.linearizable === false) verdict = false;
    else if (verdict === true) verdict = null;
  }
  return { linearizable: verdict, failures, exploredStates: explored };
}

/**
 * Drops indeterminate writes and cas whose written value no other op observes (no read returns
 * it, no cas expects it). Sound only in one direction: see checkKvHistory.
 */
export function withoutUnobservedWrites<O extends RegisterOp>(history: readonly Operation<O>[]): Operation<O>[] {
  const observed = new Set<RegisterValue>();
  for (const o of history) {
    if (o.op.type === 'read' && o.op.value !== undefined) observed.add(o.op.value);
    if (o.op.type === 'cas') observed.add(o.op.expected);
  }
  return history.filter((o) => o.outcome !== 'indeterminate' || o.op.type === 'read' || observed.has(o.op.value));
}
