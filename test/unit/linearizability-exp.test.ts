import { it } from 'vitest';
import { checkLinearizable, registerModel, type Operation, type Outcome, type RegisterOp, type RegisterValue } from '../checker/linearizability.js';
type Op = Operation<RegisterOp>;
let nextId = 0;
function op(client: number, invokeTime: number, completeTime: number, body: RegisterOp, outcome: Outcome = 'ok'): Op {
  return { client, invokeTime, completeTime: outcome === 'indeterminate' ? Infinity : completeTime, outcome, op: body, id: nextId++ };
}
const read = (value: RegisterValue | undefined): RegisterOp => ({ type: 'read', value });
const write = (value: RegisterValue): RegisterOp => ({ type: 'write', value });
const cas = (expected: RegisterValue, value: RegisterValue, succeeded?: boolean): RegisterOp => ({ type: 'cas', expected, value, succeeded });
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
 * Also returns a read that could be made provably stale: a value overwritten by an op that
 * completed before that read was invoked.
 */
function randomHistory(random: () => number, count: number, spread: number, values: number) {
  const history: Op[] = [];
  let state: RegisterValue = null;
  const int = (n: number): number => Math.floor(random() * n);
  const lastCompleteOfValue: { value: RegisterValue; overwrittenAt: number }[] = [];
  let staleCandidate: { index: number; value: RegisterValue } | null = null;
  for (let i = 0; i < count; i++) {
    const point = i * 10 + 5;
    const invokeTime = point - 1 - int(spread);
    const completeTime = point + 1 + int(spread);
    const roll = random();
    let body: RegisterOp;
    let outcome: Outcome = 'ok';
    if (roll < 0.4) {
      body = read(state);
      const old = lastCompleteOfValue.find((v) => v.value !== state && v.overwrittenAt < invokeTime);
      if (old !== undefined && i > count / 2 && staleCandidate === null) staleCandidate = { index: history.length, value: old.value };
    } else if (roll < 0.75) {
      const value = String(int(values));
      body = write(value);
      if (random() < 0.05) outcome = 'indeterminate';
      lastCompleteOfValue.unshift({ value: state, overwrittenAt: outcome === 'ok' ? completeTime : Infinity });
      state = value;
    } else {
      const expected = random() < 0.6 ? state : String(int(values));
      const value = String(int(values));
      const succeeded = expected === state;
      body = cas(expected, value, succeeded);
      if (random() < 0.05) outcome = 'indeterminate';
      if (succeeded) {
        lastCompleteOfValue.unshift({ value: state, overwrittenAt: outcome === 'ok' ? completeTime : Infinity });
        state = value;
      }
    }
    history.push(op(int(8), invokeTime, completeTime, body, outcome));
    if (random() < 0.02) {
      // A write that timed out and never took effect; its value is fresh, so never read.
      history.push(op(int(8), invokeTime, 0, write(`lost-${i}`), 'indeterminate'));
    }
    if (lastCompleteOfValue.length > 50) lastCompleteOfValue.length = 50;
  }
  return { history, staleCandidate };
}
it('exp', () => {
  for (const spread of [10, 20]) for (const noIndet of [false, true]) {
    for (let seed = 1; seed <= 1; seed++) {
      const { history, staleCandidate } = randomHistory(mulberry32(seed), 1000, spread, 4);
      let h = history.map((o, i) => (i === staleCandidate!.index ? { ...o, op: read(staleCandidate!.value) } : o));
      if (noIndet) h = h.filter((o) => o.outcome === 'ok');
      const t = performance.now();
      const r = checkLinearizable(registerModel, h, { maxStates: 50_000_000 });
      console.log((globalThis as any).memo, spread, noIndet, seed, r.linearizable, r.exploredStates, Math.round(performance.now() - t), 'ms', staleCandidate!.index);
    }
  }
}, 600000);
