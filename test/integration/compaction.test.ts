/**
 * Goal: a compaction of hundreds of thousands of revisions, applied through the real apply path
 * of a running member, neither stops the member nor its clients, and the member restarts on the
 * result (issue #17: `etcdctl compaction` after 300,000 writes once crashed every member in a
 * loop, replaying the same entry at every restart).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { appendHistory, historyKey } from '../helpers/history.js';
import { etcdctl, startMember, stopAllMembers, waitUntil } from '../helpers/gavel.js';
import { EtcdGrpcClient } from '../helpers/grpc.js';

const REVISIONS = 300_000;
const KEYS = 1_000;

afterAll(stopAllMembers);

describe('compacting a long history', () => {
  it('compacts 300,000 revisions while serving, deletes them from disk in the background, and restarts on the result', async () => {
    const member = await startMember({ target: 'gavel' });
    await member.stop();
    const history = await appendHistory(member.dataDir, { revisions: REVISIONS, keys: KEYS, valueBytes: 256 });
    await member.restart();
    const client = new EtcdGrpcClient(member.endpoint);
    try {
      const lastKey = historyKey((REVISIONS - 1) % KEYS);
      expect((await client.range(lastKey)).kvs[0]?.mod_revision).toBe(String(history.lastRevision));
      const before = await status(client);

      // A client keeps writing and reading for the whole compaction: every call must succeed.
      let probing = true;
      const probe = (async () => {
        let calls = 0;
        for (let i = 0; probing && i < 100_000; i++) {
          await client.put('probe', String(i));
          expect((await client.range('probe')).kvs[0]?.value.toString()).toBe(String(i));
          calls++;
        }
        return calls;
      })();
      const compactAt = history.lastRevision - 10;
      const compacted = await etcdctl(member.endpoint, ['compaction', String(compactAt)], { timeoutMs: 60_000 });
      expect(compacted.stdout).toContain(`compacted revision ${compactAt}`);
      await waitUntil('the compactor to delete the dropped versions', () => (member.logs().includes('"finished compaction"') ? true : undefined), 240_000, 200);
      probing = false;
      expect(await probe).toBeGreaterThan(0);

      const old = await etcdctl(member.endpoint, ['get', historyKey(0), `--rev=${history.firstRevision}`]);
      expect(old.stderr).toContain('required revision has been compacted');
      // Every key keeps its newest value; the bytes in use shrank to about one version per key.
      expect((await client.range(lastKey)).kvs[0]?.mod_revision).toBe(String(history.lastRevision));
      const after = await status(client);
      expect(after.inUse).toBeLessThan(before.inUse / 50);
      expect(member.logs()).not.toMatch(/cannot apply|raft loop failed/);
    } finally {
      client.close();
    }

    // The member restarts on the compacted state (no replay of the compaction can kill it).
    await member.restart();
    const again = new EtcdGrpcClient(member.endpoint);
    try {
      expect((await again.range(historyKey(0))).kvs[0]?.value.length).toBe(256);
      expect((await again.range('\0', { range_end: Buffer.from([0]), count_only: true })).count).toBe(String(KEYS + 1));
    } finally {
      again.close();
    }
  }, 600_000);
});

async function status(client: EtcdGrpcClient): Promise<{ inUse: number }> {
  const response = await client.unary<{ dbSizeInUse: string }>('Maintenance', 'Status', {});
  return { inUse: Number(response.dbSizeInUse) };
}
