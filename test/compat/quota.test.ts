// Goal: past --quota-backend-bytes, `etcdctl` meets etcd 3.4's behaviour: the NOSPACE alarm in `alarm list` and `endpoint status`, writes refused with etcd's message while reads, deletes and compaction work, and compaction + defrag + `alarm disarm` restoring writes (or the alarm coming back on the next write while still over quota).
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctl, startMember, stopAllMembers, type EtcdctlResult, type Member } from '../helpers/gavel.js';
import { asArray, asBigInt, asNumber, asObject, parseJsonLossless } from '../helpers/json.js';

/**
 * Small enough to fill in a few dozen puts on either target (etcd's fresh bbolt file is ~20 kB,
 * gavel's level directory ~1 kB), far below LevelDB's 4 MB write buffer, so the whole history
 * sits in gavel's write-ahead log until a defragmentation rewrites it.
 */
const QUOTA_BYTES = 400_000;
/** Random (incompressible) 8000 bytes, base64: ~10.7 kB a put, ~40 puts of history to reach the quota at most. */
const VALUE_BYTES = 8000;
/** A bound on the fill, well above what either target needs. */
const MAX_FILL_PUTS = 120;
const NO_SPACE = 'etcdserver: mvcc: database space exceeded';
/** Keeps the Raft log short (gavel keeps it in the same database). Both targets accept it. */
const ARGS = ['--quota-backend-bytes', String(QUOTA_BYTES), '--snapshot-count', '10'];

afterAll(stopAllMembers);

function describeRun(args: readonly string[], result: EtcdctlResult): string {
  return `etcdctl ${args.join(' ')} -> code=${result.code} timedOut=${result.timedOut}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

async function ctl(member: Member, args: readonly string[], input?: string): Promise<string> {
  const result = await etcdctl(member.endpoint, args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(describeRun(args, result));
  return result.stdout;
}

async function ctlFails(member: Member, args: readonly string[], input?: string): Promise<string> {
  const result = await etcdctl(member.endpoint, args, input === undefined ? {} : { input });
  if (result.code === 0 || result.timedOut) throw new Error(`expected failure: ${describeRun(args, result)}`);
  return result.stderr;
}

function randomValue(): string {
  return randomBytes(VALUE_BYTES).toString('base64');
}

/** Puts ever new versions of one key until a put is refused; returns how many succeeded and the refusal. */
async function fillUntilRefused(member: Member): Promise<{ puts: number; stderr: string }> {
  for (let puts = 0; puts < MAX_FILL_PUTS; puts++) {
    const result = await etcdctl(member.endpoint, ['put', 'fill/key', randomValue()]);
    if (result.code !== 0) return { puts, stderr: result.stderr };
  }
  throw new Error(`${MAX_FILL_PUTS} puts of ${VALUE_BYTES} random bytes never reached a ${QUOTA_BYTES}-byte quota`);
}

async function status(member: Member): Promise<{ memberId: bigint; revision: number; dbSize: number; errors: string[] }> {
  const [entry] = asArray(parseJsonLossless(await ctl(member, ['endpoint', 'status', '-w', 'json'])));
  const s = asObject(asObject(entry)['Status']);
  const header = asObject(s['header']);
  const errors = asArray(s['errors'] ?? []).map(String);
  return { memberId: asBigInt(header['member_id']), revision: asNumber(header['revision']), dbSize: asNumber(s['dbSize']), errors };
}

/** etcd and gavel both serve /metrics on the client URL. */
function metricsUrl(member: Member): string {
  return `${member.clientUrl}/metrics`;
}

async function metric(member: Member, name: string): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl(member))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('space quota and the NOSPACE alarm', () => {
  it('raises NOSPACE, refuses writes only, and clears after compaction, defrag and alarm disarm', async () => {
    const member = await startMember({ name: 'quota', args: ARGS });
    expect(await metric(member, 'etcd_server_quota_backend_bytes')).toBe(QUOTA_BYTES);
    expect(await ctl(member, ['put', 'keep/a', 'small'])).toBe('OK\n');
    expect(await ctl(member, ['alarm', 'list'])).toBe('');

    const fill = await fillUntilRefused(member);
    expect(fill.puts).toBeGreaterThan(5);
    expect(fill.stderr).toContain(`Error: ${NO_SPACE}`);
    expect(fill.stderr).toContain('code = ResourceExhausted');

    const { memberId, revision, dbSize, errors } = await status(member);
    expect(await ctl(member, ['alarm', 'list'])).toBe(`memberID:${memberId} alarm:NOSPACE \n`);
    expect(errors).toEqual([`memberID:${memberId} alarm:NOSPACE `]);
    expect(dbSize).toBeGreaterThanOrEqual(QUOTA_BYTES - VALUE_BYTES * 2);
    expect(await metric(member, 'etcd_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);

    // Writes that add data are refused, whatever their size.
    expect(await ctlFails(member, ['put', 'other', 'x'])).toContain(NO_SPACE);
    expect(await ctlFails(member, ['lease', 'grant', '60'])).toContain(`failed to grant lease (${NO_SPACE})`);
    expect(await ctlFails(member, ['txn'], 'value("keep/a") = "nope"\n\nget keep/a\n\nput other x\n\n')).toContain(NO_SPACE);
    // Reads (a read-only txn too), deletes and compaction still work.
    expect(await ctl(member, ['get', 'keep/a', '--print-value-only'])).toBe('small\n');
    expect(await ctl(member, ['txn'], 'value("keep/a") = "small"\n\nget keep/a\n\n\n')).toBe('SUCCESS\n\nkeep/a\nsmall\n');
    expect(await ctl(member, ['del', 'keep/a'])).toBe('1\n');
    expect(await ctl(member, ['compaction', String(revision)])).toBe(`compacted revision ${revision}\n`);
    expect(await ctl(member, ['defrag'])).toContain('Finished defragmenting etcd member');
    expect((await status(member)).dbSize).toBeLessThan(QUOTA_BYTES);
    // Back under the quota, but the alarm still stands until an operator disarms it.
    expect(await ctlFails(member, ['put', 'other', 'x'])).toContain(NO_SPACE);

    expect(await ctl(member, ['alarm', 'disarm'])).toBe(`memberID:${memberId} alarm:NOSPACE \n`);
    expect(await ctl(member, ['alarm', 'list'])).toBe('');
    expect((await status(member)).errors).toEqual([]);
    expect(await ctl(member, ['put', 'other', 'x'])).toBe('OK\n');
    expect(await ctl(member, ['lease', 'grant', '60'])).toMatch(/^lease [0-9a-f]+ granted with TTL\(60s\)\n$/);
  });

  it('raises the alarm again on the next write when disarmed while still over the quota', async () => {
    const member = await startMember({ name: 'rearm', args: ARGS });
    await fillUntilRefused(member);
    const { memberId } = await status(member);
    expect(await ctl(member, ['alarm', 'disarm'])).toBe(`memberID:${memberId} alarm:NOSPACE \n`);
    expect(await ctl(member, ['alarm', 'list'])).toBe('');
    // A write as large as the one refused (a tiny one may still fit below the quota, in etcd too).
    expect(await ctlFails(member, ['put', 'fill/key', randomValue()])).toContain(NO_SPACE);
    expect(await ctl(member, ['alarm', 'list'])).toBe(`memberID:${memberId} alarm:NOSPACE \n`);
  });
});
