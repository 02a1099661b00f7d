// Goal: a member killed with SIGKILL in the middle of a stream of concurrent writes loses none of the writes it acknowledged, and its revisions keep rising after the restart.
import { afterAll, describe, expect, it } from 'vitest';
import { startMember, stopAllMembers } from '../helpers/gavel.js';
import { EtcdGrpcClient, prefixEnd, type ResponseHeader } from '../helpers/grpc.js';

const WRITERS = 8;
const WRITE_PHASE_MS = 3_000;
const PUT_DEADLINE_MS = 2_000;

afterAll(stopAllMembers);

interface Acked {
  value: string;
  revision: number;
}

interface WriterState {
  /** Every acknowledged put to a key of its own: key -> value and revision. */
  acked: Map<string, Acked>;
  /** The value of the last acknowledged put to this writer's shared "last" key, and the one possibly in flight after it. */
  lastAcked: number;
  failuresBeforeKill: string[];
}

/** Writes until a put fails after the kill started; writes keep flowing while the kill lands. */
async function runWriter(client: EtcdGrpcClient, writer: number, state: WriterState, killStarted: () => boolean): Promise<void> {
  for (let sequence = 0; ; sequence += 1) {
    const key = `crash/w${writer}/${String(sequence).padStart(6, '0')}`;
    const value = `writer=${writer} seq=${sequence} ${'x'.repeat(sequence % 50)}`;
    try {
      const response = await client.unary<{ header: ResponseHeader }>('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value) }, PUT_DEADLINE_MS);
      state.acked.set(key, { value, revision: Number(response.header.revision) });
      // A key overwritten again and again: after the crash it must hold the last acknowledged
      // value or the one that was in flight, never an older one.
      await client.unary('KV', 'Put', { key: Buffer.from(`crash/last/w${writer}`), value: Buffer.from(String(sequence)) }, PUT_DEADLINE_MS);
      state.lastAcked = sequence;
    } catch (error) {
      if (killStarted()) return;
      state.failuresBeforeKill.push(error instanceof Error ? error.message : String(error));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

describe('kill -9 during writes', () => {
  it('keeps every acknowledged write, with its value and revision, and revisions rise after restart', async () => {
    const member = await startMember({ name: 'crash' });
    const client = new EtcdGrpcClient(member.endpoint);
    const states: WriterState[] = Array.from({ length: WRITERS }, () => ({ acked: new Map(), lastAcked: -1, failuresBeforeKill: [] }));
    let killStarted = false;
    const writers = states.map((state, writer) => runWriter(client, writer, state, () => killStarted));

    await new Promise((resolve) => setTimeout(resolve, WRITE_PHASE_MS));
    killStarted = true;
    const exit = await member.kill('SIGKILL'); // writes are in flight right now
    expect(exit?.signal).toBe('SIGKILL');
    await Promise.all(writers); // bounded: every put has a deadline
    client.close();

    const total = states.reduce((sum, state) => sum + state.acked.size, 0);
    expect(states.flatMap((state) => state.failuresBeforeKill)).toEqual([]);
    expect(total).toBeGreaterThan(WRITERS * 5); // the test must have exercised something

    await member.restart();
    const after = new EtcdGrpcClient(member.endpoint);
    try {
      const range = await after.unary<{ kvs: { key: Buffer; value: Buffer; mod_revision: string }[] }>('KV', 'Range', { key: Buffer.from('crash/w'), range_end: prefixEnd('crash/w') }, 10_000);
      const stored = new Map(range.kvs.map((kv) => [kv.key.toString(), { value: kv.value.toString(), revision: Number(kv.mod_revision) }]));
      const missing: string[] = [];
      const wrong: string[] = [];
      let maxAcked = 0;
      for (const state of states) {
        for (const [key, acked] of state.acked) {
          maxAcked = Math.max(maxAcked, acked.revision);
          const found = stored.get(key);
          if (found === undefined) missing.push(key);
          else if (found.value !== acked.value || found.revision !== acked.revision) wrong.push(`${key}: acked ${JSON.stringify(acked)}, found ${JSON.stringify(found)}`);
        }
      }
      expect(missing).toEqual([]);
      expect(wrong).toEqual([]);

      for (const [writer, state] of states.entries()) {
        if (state.lastAcked < 0) continue;
        const last = await after.unary<{ kvs: { value: Buffer }[] }>('KV', 'Range', { key: Buffer.from(`crash/last/w${writer}`) });
        const value = Number(last.kvs[0]?.value.toString());
        // The last acknowledged value, or the next one whose put was in flight at the kill.
        expect([state.lastAcked, state.lastAcked + 1]).toContain(value);
      }

      const next = await after.unary<{ header: ResponseHeader }>('KV', 'Put', { key: Buffer.from('crash/after'), value: Buffer.from('restart') }, 10_000);
      expect(Number(next.header.revision)).toBeGreaterThan(maxAcked);
      const kvs = (await after.range('crash/after')).kvs;
      expect(kvs.map((kv) => kv.value.toString())).toEqual(['restart']);
    } finally {
      after.close();
    }
  });

  it('a graceful stop (SIGTERM) and a restart keep data, member id and cluster id', async () => {
    const member = await startMember({ name: 'graceful' });
    let client = new EtcdGrpcClient(member.endpoint);
    const put = await client.unary<{ header: ResponseHeader }>('KV', 'Put', { key: Buffer.from('graceful/k'), value: Buffer.from('v') });
    client.close();

    const exit = await member.stop();
    expect(member.logs()).not.toContain('ignored SIGTERM'); // it did stop on SIGTERM alone
    expect(exit.code === 0 || exit.signal === 'SIGTERM').toBe(true);

    await member.restart();
    client = new EtcdGrpcClient(member.endpoint);
    try {
      const range = await client.range('graceful/k');
      expect(range.kvs.map((kv) => [kv.value.toString(), kv.mod_revision])).toEqual([['v', put.header.revision]]);
      expect(range.header.revision).toBe(put.header.revision);
      expect(range.header.member_id).toBe(put.header.member_id);
      expect(range.header.cluster_id).toBe(put.header.cluster_id);
    } finally {
      client.close();
    }
  });
});
