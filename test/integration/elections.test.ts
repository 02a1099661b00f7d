/**
 * Elections on one real member: exactly one leader, observers agree on every change in the same
 * order (including "no leader"), proclaim, resign and session loss hand over.
 */
import { describe, expect, it } from 'vitest';
import { Client, ElectionNotLeaderError, type LeaderChange, type Session } from '../../client/index.js';
import { waitUntil } from '../helpers/gavel.js';
import { memberWithClient } from '../helpers/client.js';

const fixture = memberWithClient();

/** Collects what an observer sees until aborted. */
function observe(name: string, signal: AbortSignal): { changes: string[]; done: Promise<void> } {
  const changes: string[] = [];
  const done = (async () => {
    for await (const change of fixture.client.election(name).observe({ signal }) as AsyncIterable<LeaderChange>) {
      changes.push(change.leader === undefined ? '-' : change.leader.value.toString());
    }
  })();
  return { changes, done };
}

describe('election', () => {
  it('elects exactly one leader at a time; resign and session loss hand over in campaign order', async () => {
    const stop = new AbortController();
    const observers = [observe('primary', stop.signal), observe('primary', stop.signal), observe('primary', stop.signal)];
    await waitUntil('observers started', () => (observers.every((o) => o.changes.length === 1) ? true : undefined), 5_000, 10);

    const sessions: Session[] = await Promise.all([0, 1, 2].map(() => fixture.client.session({ ttlSeconds: 5 })));
    const elections = sessions.map((session) => fixture.client.election('primary', { session }));
    const leaders: string[] = [];
    const campaigns: Promise<void>[] = [];
    // Candidates join one after another, so the hand-over order is known.
    for (const [i, election] of elections.entries()) {
      campaigns.push(
        election.campaign(`candidate-${i}`).then(() => {
          leaders.push(`candidate-${i}`);
        }),
      );
      await waitUntil(`candidate ${i} queued`, async () => ((await fixture.client.kv.get('primary/', { prefix: true, countOnly: true })).count === BigInt(i + 1) ? true : undefined), 5_000, 10);
    }
    await waitUntil('first leader', () => (leaders.length === 1 ? true : undefined), 5_000, 10);
    expect(leaders).toEqual(['candidate-0']);
    const first = elections[0]!;
    expect((await first.leader())?.value.toString()).toBe('candidate-0');

    await first.proclaim('candidate-0 v2');
    await first.resign();
    await waitUntil('second leader', () => (leaders.length === 2 ? true : undefined), 5_000, 10);
    expect(leaders).toEqual(['candidate-0', 'candidate-1']);
    // The former leader cannot proclaim any more.
    await expect(first.proclaim('stale')).rejects.toBeInstanceOf(ElectionNotLeaderError);

    // Session loss: the leader's lease is revoked, and leadership passes to the last candidate.
    await fixture.client.lease.revoke(sessions[1]!.leaseId);
    await Promise.all(campaigns);
    expect(leaders).toEqual(['candidate-0', 'candidate-1', 'candidate-2']);
    await expect(elections[1]!.proclaim('stale')).rejects.toBeInstanceOf(ElectionNotLeaderError);

    await elections[2]!.resign();
    const expected = ['-', 'candidate-0', 'candidate-0 v2', 'candidate-1', 'candidate-2', '-'];
    await waitUntil('observers caught up', () => (observers.every((o) => o.changes.length === expected.length) ? true : undefined), 5_000, 10);
    stop.abort();
    await Promise.all(observers.map((o) => o.done));
    for (const o of observers) expect(o.changes).toEqual(expected);
    await Promise.all(sessions.map((s) => s.close().catch(() => undefined)));
  });

  it('campaigning again on the same session re-attaches and proclaims the new value', async () => {
    const session = await fixture.client.session();
    const election = fixture.client.election('reattach', { session });
    const first = await election.campaign('a');
    const second = await fixture.client.election('reattach', { session }).campaign('b');
    expect(second.key.equals(first.key)).toBe(true);
    expect(second.revision).toBe(first.revision);
    expect((await election.leader())?.value.toString()).toBe('b');
    await session.close();
  });

  it('an observer that reconnects after a member restart sees every change once, in order', async () => {
    const stop = new AbortController();
    const observer = observe('restarting', stop.signal);
    await waitUntil('observer started', () => (observer.changes.length === 1 ? true : undefined), 5_000, 10);
    const session = await fixture.client.session({ ttlSeconds: 30 });
    const election = fixture.client.election('restarting', { session });
    await election.campaign('one');
    await waitUntil('observer saw one', () => (observer.changes.length === 2 ? true : undefined), 5_000, 10);
    await fixture.member.restart();
    await election.proclaim('two', { timeoutMs: 15_000 });
    await election.proclaim('three');
    await waitUntil('observer saw three', () => (observer.changes.length === 4 ? true : undefined), 15_000, 10);
    stop.abort();
    await observer.done;
    expect(observer.changes).toEqual(['-', 'one', 'two', 'three']);
    await session.close();
  });
});
