// Goal: a member started with etcd's auto-compaction flags compacts its history by itself, as etcd 3.4 does: an old revision read with `etcdctl get --rev` becomes "required revision has been compacted", while the newest value stays readable.
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctl, startMember, stopAllMembers, waitUntil, type Member } from '../helpers/gavel.js';
import { asNumber, asObject, parseJsonLossless } from '../helpers/json.js';

afterAll(stopAllMembers);

/**
 * Periodic mode with a 2 s retention samples the revision every 200 ms and compacts every 2 s to
 * the revision of about 2 s before: a put made now is compacted away within two or three
 * compactions. The wait is bounded far above that.
 */
const RETENTION = '2s';
const COMPACTED_WITHIN_MS = 30_000;

async function put(member: Member, key: string, value: string): Promise<number> {
  const result = await etcdctl(member.endpoint, ['put', key, value, '-w', 'json']);
  expect(result.code, result.stderr).toBe(0);
  return asNumber(asObject(asObject(parseJsonLossless(result.stdout))['header'])['revision']);
}

describe('auto-compaction', () => {
  it('periodic mode compacts away a revision older than the retention', async () => {
    const member = await startMember({ name: 'autocompact', args: ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', RETENTION] });
    const first = await put(member, 'ac/key', 'v1');
    const latest = await put(member, 'ac/key', 'v2');
    // (No read of `first` before the wait: on a loaded machine it may already be compacted. Without
    // auto-compaction the wait below never ends, which is what makes this test fail.)
    const refusal = await waitUntil(
      `revision ${first} to be compacted`,
      async () => {
        const result = await etcdctl(member.endpoint, ['get', 'ac/key', '--rev', String(first)]);
        return result.code !== 0 ? result.stderr : undefined;
      },
      COMPACTED_WITHIN_MS,
      200,
    );
    expect(refusal).toContain('etcdserver: mvcc: required revision has been compacted');
    expect((await etcdctl(member.endpoint, ['get', 'ac/key', '--print-value-only'])).stdout).toBe('v2\n');
    expect((await etcdctl(member.endpoint, ['get', 'ac/key', '--rev', String(latest), '--print-value-only'])).stdout).toBe('v2\n');
    if (member.target === 'gavel') expect(member.logs()).toMatch(/"msg":"completed auto compaction","revision":\d+,"mode":"periodic","compactPeriod":"2s"/);
  });

});
