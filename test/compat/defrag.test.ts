// Goal: `etcdctl defrag` after a compaction gives the space of the compacted history back, as etcd's does.
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctl, startMember, stopAllMembers } from '../helpers/gavel.js';
import { asArray, asNumber, asObject, parseJsonLossless } from '../helpers/json.js';

afterAll(stopAllMembers);

async function dbSize(endpoint: string): Promise<number> {
  const result = await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json']);
  expect(result.code).toBe(0);
  const [entry] = asArray(parseJsonLossless(result.stdout));
  return asNumber(asObject(asObject(entry)['Status'])['dbSize']);
}

describe('defrag', () => {
  it('shrinks the database after overwrites and a compaction', async () => {
    const member = await startMember({ name: 'defrag' });
    const value = 'x'.repeat(4000);
    let revision = 0;
    for (let i = 0; i < 120; i++) {
      const put = await etcdctl(member.endpoint, ['put', `d/${i % 4}`, value, '-w', 'json']);
      expect(put.code).toBe(0);
      revision = asNumber(asObject(asObject(parseJsonLossless(put.stdout))['header'])['revision']);
    }
    expect((await etcdctl(member.endpoint, ['compaction', '--physical', String(revision)])).code).toBe(0);
    const before = await dbSize(member.endpoint);
    const defrag = await etcdctl(member.endpoint, ['defrag']);
    expect(defrag.code).toBe(0);
    expect(defrag.stdout).toContain('Finished defragmenting etcd member');
    const after = await dbSize(member.endpoint);
    // 120 versions of 4 kB were written; 4 remain live.
    expect(after).toBeLessThan(before);
    expect(after).toBeLessThan(120 * 4000);
    expect((await etcdctl(member.endpoint, ['get', 'd/0', '--print-value-only'])).stdout).toBe(`${value}\n`);
  });
});
