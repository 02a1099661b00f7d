import { describe, expect, it } from 'vitest';
import {
  checkKvHistory,
  checkLinearizable,
  registerModel,
  type KvOp,
  type Operation,
  type Outcome,
  type RegisterOp,
  type RegisterValue,
} from '../checker/linearizability.js';

type Op = Operation<RegisterOp>;

let nextId = 0;
function op(client: number, invokeTime: number, completeTime: number, body: RegisterOp, outcome: Outcome = 'ok'): Op {
  return { client, invokeTime, completeTime: outcome === 'indeterminate' ? Infinity : completeTime, outcome, op: body, id: nextId++ };
}
const read = (value: RegisterValue | undefined): RegisterOp => ({ type: 'read', value });
const write = (value: RegisterValue): RegisterOp => ({ type: 'write', value });
const cas = (expected: RegisterValue, value: RegisterValue, succeeded?: boolean): RegisterOp => ({ type: 'cas', expected, value, succeeded });

function check(history: readonly Op[], maxStates?: number) {
  return checkLinearizable(registerModel, history, maxStates === undefined ? {} : { maxStates });
}

describe('linearizability checker: small known histories', () => {
  it('accepts the empty history and a sequential one', () => {
    // Goal: the trivial histories are linearizable.
    expect(check([]).linearizable).toBe(true);
    expect(check([op(1, 0, 1, write('a')), op(1, 2, 3, read('a')), op(1, 4, 5, read('a'))]).linearizable).toBe(true);
  });

  it('rejects a stale read after a completed write', () => {
    // Goal: a read that starts after a write completed must see that write (or a later one).
    const history = [op(1, 0, 1, write('a')), op(1, 2, 3, write('b')), op(2, 4, 5, read('a'))];
    const result = check(history);
    expect(result.linearizable).toBe(false);
    if (result.linearizable !== false) return;
    expect(result.blocking.op).toEqual(read('a'));
    expect(result.longestPrefix.map((o) => o.op)).toEqual([write('a'), write('b')]);
    expect(result.explanation).toContain('read -> "a"');
  });

  it('accepts a read concurrent with a write seeing either value', () => {
    // Goal: a read overlapping a write may return the old or the new value.
    for (const seen of ['a', 'b']) {
      expect(check([op(1, 0, 1, write('a')), op(1, 2, 6, write('b')), op(2, 3, 4, read(seen))]).linearizable).toBe(true);
    }
  });

  it('rejects a read going back in time once another read saw the new value', () => {
    // Goal: two sequential reads during one write cannot see new-then-old.
    const history = [op(1, 0, 1, write('a')), op(1, 2, 10, write('b')), op(2, 3, 4, read('b')), op(3, 5, 6, read('a'))];
    expect(check(history).linearizable).toBe(false);
  });

  it('rejects a lost write (an acknowledged write that later reads never see)', () => {
    // Goal: an acknowledged write followed by a completed cas on its value, then a read of the old value, is caught.
    const history = [op(1, 0, 1, write('a')), op(2, 2, 3, cas('a', 'b', true)), op(3, 4, 5, read('a'))];
    expect(check(history).linearizable).toBe(false);
    const lostUpdate = [op(1, 0, 1, write('0')), op(1, 2, 5, cas('0', '1', true)), op(2, 2, 5, cas('0', '2', true))];
    expect(check(lostUpdate).linearizable).toBe(false);
  });

  it('accepts concurrent writes in both orders, and rejects a read sequence that sees them in both orders', () => {
    // Goal: concurrent writes may linearize either way, but only one way for everybody.
    for (const [first, second] of [['a', 'b'], ['b', 'a']] as const) {
      const history = [op(1, 0, 5, write('a')), op(2, 0, 5, write('b')), op(3, 6, 7, read(second)), op(3, 8, 9, read(second))];
      expect(check(history).linearizable).toBe(true);
      void first;
    }
    const flipFlop = [
      op(1, 0, 10, write('a')), op(2, 0, 10, write('b')),
      op(3, 1, 2, read('a')), op(3, 3, 4, read('b')), op(3, 5, 6, read('a')),
    ];
    expect(check(flipFlop).linearizable).toBe(false);
  });

  it('handles an indeterminate write that must have happened, and one that may not have', () => {
    // Goal: a timed-out write may take effect at any time after its invocation, or never.
    const happened = [op(1, 0, 1, write('a')), op(2, 2, 0, write('b'), 'indeterminate'), op(3, 50, 51, read('b'))];
    expect(check(happened).linearizable).toBe(true);
    const notHappened = [op(1, 0, 1, write('a')), op(2, 2, 0, write('b'), 'indeterminate'), op(3, 50, 51, read('a'))];
    expect(check(notHappened).linearizable).toBe(true);
    // It cannot take effect before it was invoked...
    const tooEarly = [op(1, 0, 1, write('a')), op(3, 2, 3, read('b')), op(2, 4, 0, write('b'), 'indeterminate')];
    expect(check(tooEarly).linearizable).toBe(false);
    // ...and it takes effect at most once: new-then-old is impossible without another write.
    const undone = [op(1, 0, 1, write('a')), op(2, 2, 0, write('b'), 'indeterminate'), op(3, 5, 6, read('b')), op(3, 7, 8, read('a'))];
    expect(check(undone).linearizable).toBe(false);
  });

  it('drops failed operations: their effect must never be seen', () => {
    // Goal: an op that definitely failed did not take effect.
    const history = [op(1, 0, 1, write('a')), op(2, 2, 3, write('b'), 'fail'), op(3, 4, 5, read('b'))];
    expect(check(history).linearizable).toBe(false);
    expect(check([op(1, 0, 1, write('a')), op(2, 2, 3, write('b'), 'fail'), op(3, 4, 5, read('a'))]).linearizable).toBe(true);
  });

  it('checks cas chains, including mismatches and indeterminate cas', () => {
    // Goal: cas success/mismatch outcomes constrain the order, and an unknown cas may go either way.
    const chain = [
      op(1, 0, 1, write('0')),
      op(1, 2, 3, cas('0', '1', true)),
      op(2, 4, 10, cas('1', '2', true)),
      op(3, 5, 9, cas('1', '3', false)), // overlaps: linearized after client 2's cas
      op(1, 11, 12, read('2')),
    ];
    expect(check(chain).linearizable).toBe(true);
    const impossibleMismatch = [op(1, 0, 1, write('0')), op(2, 2, 3, cas('0', '1', false))];
    expect(check(impossibleMismatch).linearizable).toBe(false);
    const unknownCas = [op(1, 0, 1, write('0')), op(2, 2, 0, cas('0', '1'), 'indeterminate'), op(3, 9, 10, read('1'))];
    expect(check(unknownCas).linearizable).toBe(true);
    const unknownCasMismatch = [op(1, 0, 1, write('0')), op(2, 2, 0, cas('9', '1'), 'indeterminate'), op(3, 9, 10, read('1'))];
    expect(check(unknownCasMismatch).linearizable).toBe(false);
  });

  it('treats equal timestamps as overlapping', () => {
    // Goal: an op completing at t and one invoked at t are concurrent (the order is not known).
    expect(check([op(1, 0, 5, write('a')), op(2, 5, 6, read(null))]).linearizable).toBe(true);
    expect(check([op(1, 0, 4, write('a')), op(2, 5, 6, read(null))]).linearizable).toBe(false);
  });

  it('reports unknown when the budget is exceeded', () => {
    // Goal: the search is bounded and says so instead of guessing.
    const history = randomHistory(mulberry32(7), 300, 20, 3);
    const result = check(history, 10);
    expect(result.linearizable).toBeNull();
    if (result.linearizable === null) expect(result.unknown).toBe('budget exceeded');
  });

  it('checks multi-key histories key by key', () => {
    // Goal: checkKvHistory splits by key, so ops on other keys do not constrain each other.
    const kv = (key: string, o: Op): Operation<KvOp> => ({ ...o, op: { ...o.op, key } });
    const good = [kv('x', op(1, 0, 1, write('a'))), kv('y', op(1, 2, 3, write('b'))), kv('x', op(2, 4, 5, read('a'))), kv('y', op(2, 6, 7, read('b')))];
    expect(checkKvHistory(good).linearizable).toBe(true);
    const bad = [...good, kv('y', op(3, 8, 9, read(null)))];
    const result = checkKvHistory(bad);
    expect(result.linearizable).toBe(false);
    expect([...result.failures.keys()]).toEqual(['y']);
  });

  it('prunes unobserved indeterminate writes only when that proves linearizability', () => {
    // Goal: checkKvHistory's fast path (dropping writes nobody observed) never turns a linearizable history into a violation.
    const kv = (o: Op): Operation<KvOp> => ({ ...o, op: { ...o.op, key: 'k' } });
    // The timed-out write of "b" is the only explanation for the cas mismatch: it must be kept.
    const needed = [op(1, 0, 1, write('a')), op(2, 2, 0, write('b'), 'indeterminate'), op(3, 5, 6, cas('a', 'c', false))].map(kv);
    expect(checkKvHistory(needed).linearizable).toBe(true);
    // Many timed-out writes of values nobody read: the fast path answers at once.
    const noisy: Op[] = [op(1, 0, 1, write('a'))];
    for (let i = 0; i < 60; i++) noisy.push(op(2 + (i % 5), 2 + i, 0, i % 2 === 0 ? write(`w${i}`) : cas('a', `c${i}`), 'indeterminate'));
    noisy.push(op(9, 100, 101, read('a')), op(9, 102, 103, write('z')), op(8, 104, 105, read('z')));
    const result = checkKvHistory(noisy.map(kv));
    expect(result.linearizable).toBe(true);
    expect(result.exploredStates).toBeLessThan(1000);
  });
});

describe('linearizability checker: random histories', () => {
  it('accepts large random linearizable histories quickly', () => {
    // Goal: histories generated from a sequential execution with random overlaps are accepted within budget and time.
    const started = performance.now();
    for (let seed = 1; seed <= 10; seed++) {
      for (const values of [4, 1e9]) {
        const result = check(randomHistory(mulberry32(seed), 2000, 40, values));
        expect(result.linearizable, `seed ${seed}, ${values} values`).toBe(true);
      }
    }
    expect(performance.now() - started).toBeLessThan(15_000);
  });

  it('rejects a random history with one read made stale', () => {
    // Goal: a single stale read buried in a large history with indeterminate ops is found.
    // With 4 values every value soon has an indeterminate writer, which makes no read provably stale.
    for (const [values, indeterminateRate] of [[4, 0], [1e9, 0.05]] as const) {
      let mutatedHistories = 0;
      for (let seed = 1; seed <= 6; seed++) {
        const history = randomHistory(mulberry32(seed), 500, 20, values, indeterminateRate);
        const stale = staleCandidate(history);
        if (stale === null) continue;
        mutatedHistories++;
        const mutated = history.map((o, i) => (i === stale.index ? { ...o, op: read(stale.value) } : o));
        const result = check(mutated);
        expect(result.linearizable, `seed ${seed}, ${values} values`).toBe(false);
        if (result.linearizable === false) expect(result.explanation).toContain('not linearizable');
      }
      expect(mutatedHistories, `${values} values`).toBeGreaterThanOrEqual(3);
    }
  });
});

/** Deterministic PRNG for test data. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A sequential execution of random ops on one register (linearization points 10 time units
 * apart), each stretched to a random interval around its point. Some writes and cas time out
 * (indeterminate) after taking effect; some indeterminate writes never take effect at all.
 */
function randomHistory(random: () => number, count: number, spread: number, values: number, indeterminateRate = 0.05): Op[] {
  const history: Op[] = [];
  let state: RegisterValue = null;
  const int = (n: number): number => Math.floor(random() * n);
  for (let i = 0; i < count; i++) {
    const point = i * 10 + 5;
    const invokeTime = point - 1 - int(spread);
    const completeTime = point + 1 + int(spread);
    const roll = random();
    let body: RegisterOp;
    let outcome: Outcome = 'ok';
    if (roll < 0.4) {
      body = read(state);
    } else if (roll < 0.75) {
      const value = String(int(values));
      body = write(value);
      if (random() < indeterminateRate) outcome = 'indeterminate';
      state = value;
    } else {
      const expected: RegisterValue = random() < 0.6 ? state : String(int(values));
      const value = String(int(values));
      body = cas(expected, value, expected === state);
      if (random() < indeterminateRate) outcome = 'indeterminate';
      if (expected === state) state = value;
    }
    history.push(op(int(8), invokeTime, completeTime, body, outcome));
    if (random() < indeterminateRate / 2) {
      // A write that timed out and never took effect; its value is fresh, so never read.
      history.push(op(int(8), invokeTime, 0, write(`lost-${i}`), 'indeterminate'));
    }
  }
  return history;
}

/**
 * Finds an ok read in the second half of the history that can be made provably stale: a value
 * v all of whose writers completed before some completed overwrite W began, W itself completing
 * before the read began. Returns the read's index and v.
 */
function staleCandidate(history: readonly Op[]): { index: number; value: RegisterValue } | null {
  const writes = (o: Op): RegisterValue | undefined =>
    o.op.type === 'write' ? o.op.value : o.op.type === 'cas' && o.op.succeeded !== false ? o.op.value : undefined;
  const values = new Set(history.map(writes).filter((v): v is RegisterValue => v !== undefined));
  for (let index = Math.floor(history.length / 2); index < history.length; index++) {
    const r = history[index]!;
    if (r.op.type !== 'read' || r.outcome !== 'ok') continue;
    for (const v of values) {
      if (v === r.op.value) continue;
      const writers = history.filter((o) => writes(o) === v);
      if (writers.some((o) => o.outcome !== 'ok')) continue;
      const lastWriterEnd = Math.max(...writers.map((o) => o.completeTime));
      const overwrite = history.some((o) => o.outcome === 'ok' && writes(o) !== undefined && writes(o) !== v &&
        o.invokeTime > lastWriterEnd && o.completeTime < r.invokeTime);
      if (overwrite) return { index, value: v };
    }
  }
  return null;
}
