// Goal: password hashing is admitted fairly and within bounds: at most `concurrency` at once, a
// connection over its share refused at once with etcd's "too many requests", waiting work started
// round-robin across connections (a flooding connection cannot push a newcomer to the back of its
// queue), a cancelled wait gives its place up, and the member-wide waiting bound holds.
import { describe, expect, it } from 'vitest';
import { PasswordGate } from '../../server/auth/password-gate.js';

/** Work the test finishes by hand, recording the order it started in. */
function works(started: string[]): { work: (name: string) => () => Promise<string>; finish: (name: string) => void } {
  const pending = new Map<string, () => void>();
  return {
    work: (name) => () =>
      new Promise<string>((resolve) => {
        started.push(name);
        pending.set(name, () => resolve(name));
      }),
    finish: (name) => {
      const done = pending.get(name);
      if (done === undefined) throw new Error(`${name} has not started`);
      pending.delete(name);
      done();
    },
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('PasswordGate', () => {
  it('runs at most `concurrency` at once and starts the next as one ends', async () => {
    const gate = new PasswordGate({ concurrency: 2, perConnection: 10, maxWaiting: 10 });
    const started: string[] = [];
    const { work, finish } = works(started);
    const results = ['a1', 'a2', 'a3'].map((name) => gate.run('a', work(name)));
    expect(started).toEqual(['a1', 'a2']);
    expect(gate.load).toEqual({ running: 2, waiting: 1 });
    finish('a1');
    await expect(results[0]).resolves.toBe('a1');
    await turn();
    expect(started).toEqual(['a1', 'a2', 'a3']);
    finish('a2');
    finish('a3');
    await expect(Promise.all(results)).resolves.toEqual(['a1', 'a2', 'a3']);
    expect(gate.load).toEqual({ running: 0, waiting: 0 });
  });

  it('refuses a connection over its share at once, and only that connection', async () => {
    const gate = new PasswordGate({ concurrency: 1, perConnection: 2, maxWaiting: 10 });
    const started: string[] = [];
    const { work, finish } = works(started);
    const a = [gate.run('a', work('a1')), gate.run('a', work('a2'))];
    await expect(gate.run('a', work('a3'))).rejects.toMatchObject({ code: 'TooManyRequests' });
    const b = gate.run('b', work('b1'));
    finish('a1');
    await turn();
    finish(started.at(-1)!);
    await turn();
    finish(started.at(-1)!);
    await expect(Promise.all([...a, b])).resolves.toEqual(['a1', 'a2', 'b1']);
    expect(started).not.toContain('a3');
    // The share is given back as work ends.
    const again = gate.run('a', work('a4'));
    await turn();
    finish('a4');
    await expect(again).resolves.toBe('a4');
  });

  it('starts waiting work round-robin across connections', async () => {
    const gate = new PasswordGate({ concurrency: 1, perConnection: 10, maxWaiting: 20 });
    const started: string[] = [];
    const { work, finish } = works(started);
    const all = ['a1', 'a2', 'a3', 'a4'].map((name) => gate.run('a', work(name)));
    all.push(gate.run('b', work('b1')), gate.run('b', work('b2')), gate.run('c', work('c1')));
    for (let i = 0; i < 7; i++) {
      finish(started.at(-1)!);
      await turn();
    }
    await Promise.all(all);
    // a1 was running when the others arrived; then each connection in turn.
    expect(started).toEqual(['a1', 'a2', 'b1', 'c1', 'a3', 'b2', 'a4']);
  });

  it('a cancelled wait gives its place up and rejects with the reason', async () => {
    const gate = new PasswordGate({ concurrency: 1, perConnection: 2, maxWaiting: 10 });
    const started: string[] = [];
    const { work, finish } = works(started);
    const first = gate.run('a', work('a1'));
    const controller = new AbortController();
    const waiting = gate.run('a', work('a2'), controller.signal);
    controller.abort(new Error('cancelled by client'));
    await expect(waiting).rejects.toThrow('cancelled by client');
    expect(gate.load).toEqual({ running: 1, waiting: 0 });
    // Its share is free again: a third call on the connection is admitted.
    const third = gate.run('a', work('a3'));
    finish('a1');
    await turn();
    finish('a3');
    await expect(Promise.all([first, third])).resolves.toEqual(['a1', 'a3']);
    expect(started).toEqual(['a1', 'a3']);
  });

  it('refuses anyone once the member-wide waiting bound is reached', async () => {
    const gate = new PasswordGate({ concurrency: 1, perConnection: 10, maxWaiting: 2 });
    const started: string[] = [];
    const { work, finish } = works(started);
    const admitted = [gate.run('a', work('a1')), gate.run('b', work('b1')), gate.run('c', work('c1'))];
    await expect(gate.run('d', work('d1'))).rejects.toMatchObject({ code: 'TooManyRequests' });
    for (let i = 0; i < 3; i++) {
      finish(started.at(-1)!);
      await turn();
    }
    await expect(Promise.all(admitted)).resolves.toEqual(['a1', 'b1', 'c1']);
  });
});
