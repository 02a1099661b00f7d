// Goal: the real `etcdctl` 3.4 binary, unchanged, gets from gavel exactly the outputs (values, revisions, JSON fields, error texts) it gets from etcd 3.4.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, spawnEtcdctl, startMember, stopAllMembers, type EtcdctlResult, type Member } from '../helpers/gavel.js';
import { asArray, asBigInt, asNumber, asObject, b64, parseJsonLines, parseJsonLossless, unb64, type Json } from '../helpers/json.js';

const MAX_TXN_OPS = 4;
const MAX_REQUEST_BYTES = 2048;

let member: Member;

beforeAll(async () => {
  member = await startMember({ args: ['--max-txn-ops', String(MAX_TXN_OPS), '--max-request-bytes', String(MAX_REQUEST_BYTES)] });
});
afterAll(stopAllMembers);

function describeRun(args: readonly string[], result: EtcdctlResult): string {
  return `etcdctl ${args.join(' ')} -> code=${result.code} timedOut=${result.timedOut}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/** Runs etcdctl and requires success; returns stdout. */
async function ctl(args: readonly string[], input?: string): Promise<string> {
  const result = await etcdctl(member.endpoint, args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(describeRun(args, result));
  return result.stdout;
}

/** Runs etcdctl and requires failure; returns the whole result. */
async function ctlFails(args: readonly string[], input?: string): Promise<EtcdctlResult> {
  const result = await etcdctl(member.endpoint, args, input === undefined ? {} : { input });
  if (result.code === 0 || result.timedOut) throw new Error(`expected failure: ${describeRun(args, result)}`);
  return result;
}

async function ctlJson(args: readonly string[], input?: string): Promise<{ [key: string]: Json }> {
  return asObject(parseJsonLossless(await ctl([...args, '-w', 'json'], input)), `etcdctl ${args.join(' ')} -w json`);
}

/** `put -w json` and the revision it created. */
async function put(key: string, value: string, ...extra: string[]): Promise<number> {
  const response = await ctlJson(['put', key, value, ...extra]);
  return asNumber(asObject(response['header'])['revision']);
}

function kvsOf(response: { [key: string]: Json }): { [key: string]: Json }[] {
  return asArray(response['kvs'] ?? [], 'kvs').map((kv) => asObject(kv));
}

function headerRevision(response: { [key: string]: Json }): number {
  return asNumber(asObject(response['header'], 'header')['revision'], 'header.revision');
}

describe('put and get', () => {
  it('prints OK for put and key/value lines for get', async () => {
    expect(await ctl(['put', 'pg/simple', 'hello world'])).toBe('OK\n');
    expect(await ctl(['get', 'pg/simple'])).toBe('pg/simple\nhello world\n');
    expect(await ctl(['get', 'pg/absent'])).toBe('');
  });

  it('reports header.revision, base64 key/value and create/mod revision and version in -w json', async () => {
    const first = await put('pg/json', 'v1');
    const second = await put('pg/json', 'v2');
    expect(second).toBeGreaterThan(first);

    const response = await ctlJson(['get', 'pg/json']);
    const header = asObject(response['header']);
    expect(asNumber(header['revision'])).toBeGreaterThanOrEqual(second);
    expect(asBigInt(header['cluster_id'])).toBeGreaterThan(0n);
    expect(asBigInt(header['member_id'])).toBeGreaterThan(0n);
    expect(asNumber(header['raft_term'])).toBeGreaterThanOrEqual(1);
    expect(response['count']).toBe(1);
    expect(response['more']).toBeUndefined(); // false is omitted
    expect(kvsOf(response)).toEqual([
      { key: b64('pg/json'), create_revision: first, mod_revision: second, version: 2, value: b64('v2') },
    ]);
  });

  it('omits kvs and count for a missing key in -w json', async () => {
    const response = await ctlJson(['get', 'pg/nothing-here']);
    expect(Object.keys(response)).toEqual(['header']);
    expect(headerRevision(response)).toBeGreaterThan(1);
  });

  it('returns the previous pair with put --prev-kv', async () => {
    const first = await put('pg/prev', 'old');
    expect(await ctl(['put', 'pg/prev', 'mid', '--prev-kv'])).toBe('OK\npg/prev\nold\n');
    const response = await ctlJson(['put', 'pg/prev', 'new', '--prev-kv']);
    const prev = asObject(response['prev_kv']);
    expect(prev['key']).toBe(b64('pg/prev'));
    expect(unb64(prev['value'])).toBe('mid');
    expect(prev['create_revision']).toBe(first);
    expect(prev['version']).toBe(2);
  });

  it('starts an empty store at revision 1, so the first write is revision 2', async () => {
    // A fresh member is the only way to see the initial revision; etcd starts at 1.
    const fresh = await startMember();
    try {
      const stdout = await etcdctl(fresh.endpoint, ['get', 'x', '-w', 'json']);
      expect(stdout.code).toBe(0);
      expect(headerRevision(asObject(parseJsonLossless(stdout.stdout)))).toBe(1);
      const putResult = await etcdctl(fresh.endpoint, ['put', 'x', 'y', '-w', 'json']);
      expect(headerRevision(asObject(parseJsonLossless(putResult.stdout)))).toBe(2);
    } finally {
      await fresh.dispose();
    }
  });
});

describe('range options', () => {
  const keys = ['a', 'b', 'c', 'd', 'e'];
  const revisions = new Map<string, number>();
  const created = new Map<string, number>();

  beforeAll(async () => {
    // Written in the order e, d, c, b, a with values in yet another order, so that
    // KEY, CREATE and VALUE orders all differ.
    const values: Record<string, string> = { a: 'v3', b: 'v5', c: 'v1', d: 'v4', e: 'v2' };
    for (const key of [...keys].reverse()) {
      revisions.set(key, await put(`rg/${key}`, values[key] ?? ''));
      created.set(key, revisions.get(key) ?? 0);
    }
    // Bump versions: c gets version 3, a gets version 2.
    revisions.set('c', await put('rg/c', 'v1'));
    revisions.set('c', await put('rg/c', 'v1'));
    revisions.set('a', await put('rg/a', 'v3'));
    // Keys that sort after "~fk/c" are only these three, so --from-key has an exact answer.
    for (const key of ['~fk/a', '~fk/b', '~fk/c', '~fk/d', '~fk/e']) await put(key, `val-${key.slice(-1)}`);
  });

  it('get --prefix lists every key under the prefix in key order', async () => {
    expect(await ctl(['get', 'rg/', '--prefix'])).toBe('rg/a\nv3\nrg/b\nv5\nrg/c\nv1\nrg/d\nv4\nrg/e\nv2\n');
  });

  it('get with an explicit range end is half-open', async () => {
    expect(await ctl(['get', 'rg/b', 'rg/d'])).toBe('rg/b\nv5\nrg/c\nv1\n');
  });

  it('get --from-key lists every key >= the key', async () => {
    expect(await ctl(['get', '~fk/c', '--from-key'])).toBe('~fk/c\nval-c\n~fk/d\nval-d\n~fk/e\nval-e\n');
  });

  it('get --limit returns the first keys, more=true and the full count', async () => {
    const response = await ctlJson(['get', 'rg/', '--prefix', '--limit', '2']);
    expect(kvsOf(response).map((kv) => unb64(kv['key']))).toEqual(['rg/a', 'rg/b']);
    expect(response['more']).toBe(true);
    expect(response['count']).toBe(5);
    const all = await ctlJson(['get', 'rg/', '--prefix', '--limit', '5']);
    expect(all['more']).toBeUndefined();
    expect(all['count']).toBe(5);
  });

  it('get --sort-by orders by KEY, CREATE, MODIFY, VALUE and VERSION, ascending or descending', async () => {
    const order = async (...args: string[]): Promise<string[]> =>
      kvsOf(await ctlJson(['get', 'rg/', '--prefix', ...args])).map((kv) => unb64(kv['key']).slice(3));
    expect(await order('--sort-by=KEY', '--order=DESCEND')).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(await order('--sort-by=CREATE', '--order=ASCEND')).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(await order('--sort-by=CREATE', '--order=DESCEND')).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await order('--sort-by=MODIFY', '--order=DESCEND')).toEqual(['a', 'c', 'b', 'd', 'e']);
    expect(await order('--sort-by=VALUE', '--order=ASCEND')).toEqual(['c', 'e', 'a', 'd', 'b']);
    expect(await order('--sort-by=VALUE', '--order=DESCEND')).toEqual(['b', 'd', 'a', 'e', 'c']);
    expect((await order('--sort-by=VERSION', '--order=DESCEND')).slice(0, 2)).toEqual(['c', 'a']);
    // --order alone sorts by key.
    expect(await order('--order=DESCEND')).toEqual(['e', 'd', 'c', 'b', 'a']);
    // Sorting happens before the limit.
    expect(await order('--sort-by=VALUE', '--order=DESCEND', '--limit', '2')).toEqual(['b', 'd']);
  });

  it('get --keys-only prints each key followed by an empty line and omits values in json', async () => {
    expect(await ctl(['get', 'rg/', '--prefix', '--keys-only', '--limit', '3'])).toBe('rg/a\n\nrg/b\n\nrg/c\n\n');
    const response = await ctlJson(['get', 'rg/a', '--keys-only']);
    expect(kvsOf(response)).toEqual([{ key: b64('rg/a'), create_revision: created.get('a'), mod_revision: revisions.get('a'), version: 2 }]);
  });

  it('counts keys: count in -w json (etcdctl 3.4 has no --count-only flag)', async () => {
    const response = await ctlJson(['get', 'rg/', '--prefix', '--limit', '1']);
    expect(response['count']).toBe(5);
    // The count-only RPC itself is exercised through etcd3 (getAll().count()) in etcd3.test.ts.
    const unsupported = await ctlFails(['get', 'rg/', '--prefix', '--count-only']);
    expect(unsupported.stderr).toContain('Error: unknown flag: --count-only');
  });

  it('get --print-value-only prints only values', async () => {
    expect(await ctl(['get', 'rg/', '--prefix', '--print-value-only', '--limit', '2'])).toBe('v3\nv5\n');
  });

  it('get --rev reads a historical revision', async () => {
    const r1 = await put('rg-hist', 'one');
    const r2 = await put('rg-hist', 'two');
    const r3 = await put('rg-hist', 'three');
    expect(await ctl(['get', 'rg-hist', '--rev', String(r1)])).toBe('rg-hist\none\n');
    expect(await ctl(['get', 'rg-hist', '--rev', String(r2)])).toBe('rg-hist\ntwo\n');
    expect(await ctl(['get', 'rg-hist', '--rev', String(r3)])).toBe('rg-hist\nthree\n');
    expect(await ctl(['get', 'rg-hist', '--rev', String(r1 - 1)])).toBe('');
    const response = await ctlJson(['get', 'rg-hist', '--rev', String(r2)]);
    // The header carries the current revision, not the requested one.
    expect(headerRevision(response)).toBeGreaterThanOrEqual(r3);
    expect(kvsOf(response)).toEqual([{ key: b64('rg-hist'), create_revision: r1, mod_revision: r2, version: 2, value: b64('two') }]);
  });
});

describe('del', () => {
  it('prints the number of deleted keys', async () => {
    await put('dl/one', '1');
    expect(await ctl(['del', 'dl/one'])).toBe('1\n');
    expect(await ctl(['del', 'dl/one'])).toBe('0\n');
    expect(await ctl(['get', 'dl/one'])).toBe('');
  });

  it('deletes a prefix in one revision', async () => {
    for (const key of ['a', 'b', 'c']) await put(`dl/p/${key}`, key);
    await put('dl/q', 'outside the prefix');
    const before = headerRevision(await ctlJson(['get', 'dl/q']));
    const response = await ctlJson(['del', 'dl/p/', '--prefix']);
    expect(response['deleted']).toBe(3);
    expect(headerRevision(response)).toBe(before + 1);
    expect(await ctl(['get', 'dl/', '--prefix', '--keys-only'])).toBe('dl/q\n\n');
  });

  it('returns the deleted pairs with --prev-kv', async () => {
    const created = await put('dl/prev', 'gone');
    expect(await ctl(['del', 'dl/prev', '--prev-kv'])).toBe('1\ndl/prev\ngone\n');
    const second = await put('dl/prev2', 'gone2');
    const response = await ctlJson(['del', 'dl/prev2', '--prev-kv']);
    expect(response['deleted']).toBe(1);
    expect(asArray(response['prev_kvs'])).toEqual([{ key: b64('dl/prev2'), create_revision: second, mod_revision: second, version: 1, value: b64('gone2') }]);
    expect(created).toBeLessThan(second);
  });

  it('resets version and create_revision when a deleted key is written again', async () => {
    const first = await put('dl/again', 'a');
    await ctl(['del', 'dl/again']);
    const recreated = await put('dl/again', 'b');
    const kv = kvsOf(await ctlJson(['get', 'dl/again']))[0];
    expect(kv).toEqual({ key: b64('dl/again'), create_revision: recreated, mod_revision: recreated, version: 1, value: b64('b') });
    expect(recreated).toBeGreaterThan(first + 1);
  });
});

describe('txn from stdin', () => {
  it('runs the success branch when every compare holds', async () => {
    const created = await put('tx/key', 'expected');
    const input = `value("tx/key") = "expected"\nversion("tx/key") = "1"\ncreate("tx/key") = "${created}"\nmod("tx/key") > "0"\n\nput tx/key updated\nget tx/key\n\nput tx/other no\n\n`;
    expect(await ctl(['txn'], input)).toBe('SUCCESS\n\nOK\n\ntx/key\nupdated\n');
    expect(await ctl(['get', 'tx/other'])).toBe('');
  });

  it('runs the failure branch when a compare fails', async () => {
    await put('tx/f', 'actual');
    const input = 'value("tx/f") = "other"\n\nput tx/f wrong\n\nput tx/f-failed yes\nget tx/f\n\n';
    expect(await ctl(['txn'], input)).toBe('FAILURE\n\nOK\n\ntx/f\nactual\n');
    expect(await ctl(['get', 'tx/f-failed', '--print-value-only'])).toBe('yes\n');
    expect(await ctl(['get', 'tx/f', '--print-value-only'])).toBe('actual\n');
  });

  it('prints succeeded and per-op responses (oneof by Go field name, inner header = revision only) in -w json', async () => {
    await put('tx/j', 'x');
    const success = await ctlJson(['txn'], 'value("tx/j") = "x"\n\nput tx/j y\nget tx/j\n\n\n');
    const revision = headerRevision(success);
    expect(success['succeeded']).toBe(true);
    const responses = asArray(success['responses']);
    expect(responses).toHaveLength(2);
    expect(responses[0]).toEqual({ Response: { ResponsePut: { header: { revision } } } });
    expect(responses[1]).toEqual({
      Response: {
        ResponseRange: {
          header: { revision },
          kvs: [{ key: b64('tx/j'), create_revision: expect.any(Number), mod_revision: revision, version: 2, value: b64('y') }],
          count: 1,
        },
      },
    });

    const failure = await ctlJson(['txn'], 'value("tx/j") = "nope"\n\n\ndel tx/j\n\n');
    expect(failure['succeeded']).toBeUndefined(); // false is omitted
    expect(headerRevision(failure)).toBe(revision + 1);
    expect(asArray(failure['responses'])).toEqual([{ Response: { ResponseDeleteRange: { header: { revision: revision + 1 }, deleted: 1 } } }]);
  });

  it('compares a missing key as version 0 and supports < and !=', async () => {
    const input = 'version("tx/missing") = "0"\ncreate("tx/missing") = "0"\nvalue("tx/j2") != "zzz"\n\nput tx/created-by-txn 1\n\n\n';
    await put('tx/j2', 'abc');
    expect(await ctl(['txn'], input)).toBe('SUCCESS\n\nOK\n');
    expect(await ctl(['txn'], 'mod("tx/j2") < "2"\n\n\nput tx/lt-failed 1\n\n')).toBe('FAILURE\n\nOK\n');
  });

  it('a txn without writes does not create a revision', async () => {
    const before = headerRevision(await ctlJson(['get', 'tx/none']));
    const response = await ctlJson(['txn'], '\nget tx/none\n\n\n');
    expect(response['succeeded']).toBe(true);
    expect(headerRevision(response)).toBe(before);
  });
});

describe('leases', () => {
  const grantLine = /^lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n$/;

  async function grant(ttlSeconds: number): Promise<string> {
    const stdout = await ctl(['lease', 'grant', String(ttlSeconds)]);
    const match = grantLine.exec(stdout);
    if (!match) throw new Error(`unexpected lease grant output: ${stdout}`);
    expect(match[2]).toBe(String(ttlSeconds));
    return match[1] as string;
  }

  it('grant prints a 16-digit hex id; -w json carries the id in decimal', async () => {
    const response = await ctlJson(['lease', 'grant', '90']);
    expect(response['TTL']).toBe(90);
    expect(response['Error']).toBe('');
    expect(asBigInt(response['ID'])).toBeGreaterThan(0n);
    expect(asBigInt(response['ID'])).toBeLessThanOrEqual(0x7fffffffffffffffn);
    expect(asNumber(response['revision'])).toBeGreaterThan(1); // the header is flattened into the object
    expect(await grant(60)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('attaches keys, reports them in timetolive --keys, keeps alive once, lists, and revoke deletes the keys', async () => {
    const lease = await grant(100);
    await put('ls/k1', 'v1', `--lease=${lease}`);
    await put('ls/k2', 'v2', `--lease=${lease}`);
    const kv = kvsOf(await ctlJson(['get', 'ls/k1']))[0];
    expect(asBigInt(kv?.['lease'])).toBe(BigInt(`0x${lease}`));

    expect(await ctl(['lease', 'timetolive', lease])).toMatch(new RegExp(`^lease ${lease} granted with TTL\\(100s\\), remaining\\((9\\d|100)s\\)\\n$`));
    expect(await ctl(['lease', 'timetolive', lease, '--keys'])).toMatch(new RegExp(`^lease ${lease} granted with TTL\\(100s\\), remaining\\((9\\d|100)s\\), attached keys\\(\\[(ls/k1 ls/k2|ls/k2 ls/k1)\\]\\)\\n$`)); // etcd lists keys in no particular order
    const ttl = await ctlJson(['lease', 'timetolive', lease, '--keys']);
    expect(asBigInt(ttl['id'])).toBe(BigInt(`0x${lease}`));
    expect(ttl['granted-ttl']).toBe(100);
    expect(asNumber(ttl['ttl'])).toBeGreaterThan(90);
    expect(asNumber(ttl['ttl'])).toBeLessThanOrEqual(100);
    expect([...asArray(ttl['keys'])].sort()).toEqual([b64('ls/k1'), b64('ls/k2')]);

    expect(await ctl(['lease', 'keep-alive', '--once', lease])).toBe(`lease ${lease} keepalived with TTL(100)\n`);
    const kept = await ctlJson(['lease', 'keep-alive', '--once', lease]);
    expect(asBigInt(kept['ID'])).toBe(BigInt(`0x${lease}`));
    expect(kept['TTL']).toBe(100);

    const list = await ctl(['lease', 'list']);
    const lines = list.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^found \d+ leases$/);
    expect(lines.slice(1)).toContain(lease);
    expect(Number(/^found (\d+) leases$/.exec(lines[0] ?? '')?.[1])).toBe(lines.length - 1);
    const listJson = await ctlJson(['lease', 'list']);
    const ids = asArray(listJson['leases']).map((entry) => asBigInt(asObject(entry)['id']));
    expect(ids).toContain(BigInt(`0x${lease}`));

    const before = headerRevision(await ctlJson(['get', 'ls/k1']));
    expect(await ctl(['lease', 'revoke', lease])).toBe(`lease ${lease} revoked\n`);
    expect(await ctl(['get', 'ls/', '--prefix'])).toBe('');
    // Both keys go away in one revision.
    expect(headerRevision(await ctlJson(['get', 'ls/k1']))).toBe(before + 1);
    expect(await ctl(['lease', 'timetolive', lease])).toBe(`lease ${lease} already expired\n`);
    const expired = await ctlJson(['lease', 'timetolive', lease]);
    expect(expired['ttl']).toBe(-1);
    expect(expired['granted-ttl']).toBe(0); // etcdctl's own printer: zero is not omitted here
    expect(expired['keys']).toBeNull();
    expect((await ctl(['lease', 'list'])).split('\n')).not.toContain(lease);
  });

  it('timetolive of a lease that never existed reports already expired', async () => {
    expect(await ctl(['lease', 'timetolive', '2a'])).toBe('lease 000000000000002a already expired\n');
  });

  it('revoke, keep-alive and put with a missing lease fail with etcd texts and exit codes', async () => {
    const revoke = await ctlFails(['lease', 'revoke', '1234abcd']);
    expect(revoke.code).toBe(1);
    expect(revoke.stderr).toContain('code = NotFound desc = etcdserver: requested lease not found');
    expect(revoke.stderr).toContain('Error: failed to revoke lease (etcdserver: requested lease not found)');

    // KeepAlive answers TTL=0 for an unknown lease (not a stream error); etcdctl turns that into this error.
    const keepAlive = await ctlFails(['lease', 'keep-alive', '--once', '1234abcd']);
    expect(keepAlive.code).toBe(2);
    expect(keepAlive.stderr.trim()).toBe('Error: etcdserver: requested lease not found');

    const putWithLease = await ctlFails(['put', '--lease=1234abcd', 'ls/nolease', 'v']);
    expect(putWithLease.code).toBe(1);
    expect(putWithLease.stderr).toContain('code = NotFound desc = etcdserver: requested lease not found');
    expect(putWithLease.stderr).toContain('Error: etcdserver: requested lease not found');
    expect(await ctl(['get', 'ls/nolease'])).toBe('');
  });
});

describe('watch', () => {
  it('watch --rev replays history, then follows live changes', async () => {
    const first = await put('wt/key', 'v1');
    await put('wt/key', 'v2');
    await ctl(['del', 'wt/key']);
    const watch = spawnEtcdctl(member.endpoint, ['watch', `--rev=${first}`, 'wt/key'], { timeoutMs: 20_000 });
    try {
      const history = 'PUT\nwt/key\nv1\nPUT\nwt/key\nv2\nDELETE\nwt/key\n\n';
      await watch.waitFor((stdout) => stdout === history);
      await put('wt/key', 'v3');
      await put('wt/other', 'not watched');
      await watch.waitFor((stdout) => stdout.length > history.length);
      await watch.waitFor((stdout) => stdout === `${history}PUT\nwt/key\nv3\n`);
    } finally {
      await watch.stop();
    }
  });

  it('watch --prefix -w json prints events with kv fields and type only for DELETE', async () => {
    const start = headerRevision(await ctlJson(['get', 'wp/'])) + 1;
    // --rev makes the watch see these even if it starts after they are written.
    const watch = spawnEtcdctl(member.endpoint, ['watch', '--prefix', 'wp/', `--rev=${start}`, '-w', 'json'], { timeoutMs: 20_000 });
    try {
      const r1 = await put('wp/a', '1');
      const r2 = await put('wp/b', '2');
      await ctl(['del', 'wp/a']);
      await put('wpx', 'outside the prefix');
      const events = (): Json[] =>
        parseJsonLines(watch.stdout()).flatMap((response) => asArray(asObject(response)['Events'] ?? []));
      await watch.waitFor(() => events().length >= 3);
      expect(events()).toEqual([
        { kv: { key: b64('wp/a'), create_revision: r1, mod_revision: r1, version: 1, value: b64('1') } },
        { kv: { key: b64('wp/b'), create_revision: r2, mod_revision: r2, version: 1, value: b64('2') } },
        { type: 1, kv: { key: b64('wp/a'), mod_revision: r2 + 1 } },
      ]);
      const response = asObject(parseJsonLines(watch.stdout())[0]);
      expect(response['Canceled']).toBe(false);
      expect(response['CompactRevision']).toBe(0);
      expect(asNumber(asObject(response['Header'])['revision'])).toBeGreaterThanOrEqual(r1);
    } finally {
      await watch.stop();
    }
  });

  it('watch --prev-kv carries the previous value', async () => {
    const start = await put('wpk', 'before');
    const watch = spawnEtcdctl(member.endpoint, ['watch', 'wpk', `--rev=${start + 1}`, '--prev-kv'], { timeoutMs: 20_000 });
    try {
      await put('wpk', 'after');
      await watch.waitFor((stdout) => stdout === 'PUT\nwpk\nbefore\nwpk\nafter\n');
    } finally {
      await watch.stop();
    }
  });
});

describe('compaction', () => {
  let compacting: Member;
  beforeAll(async () => {
    compacting = await startMember({ name: 'compact' });
  });

  async function at(args: string[]): Promise<EtcdctlResult> {
    return await etcdctl(compacting.endpoint, args);
  }

  it('compaction N: reads below N fail, N and above work, future revisions fail, watches below N are canceled', async () => {
    const revisions: number[] = [];
    for (const value of ['c1', 'c2', 'c3', 'c4', 'c5']) {
      const result = await at(['put', 'cp', value, '-w', 'json']);
      revisions.push(headerRevision(asObject(parseJsonLossless(result.stdout))));
    }
    const [r1, r2, r3, , r5] = revisions as [number, number, number, number, number];

    const compact = await at(['compaction', String(r3)]);
    expect(compact.code).toBe(0);
    expect(compact.stdout).toBe(`compacted revision ${r3}\n`);

    const below = await at(['get', 'cp', '--rev', String(r2)]);
    expect(below.code).toBe(1);
    expect(below.stderr).toContain('code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted');
    expect(below.stderr).toContain('Error: etcdserver: mvcc: required revision has been compacted');

    const exact = await at(['get', 'cp', '--rev', String(r3)]);
    expect(exact.stdout).toBe('cp\nc3\n');

    const future = await at(['get', 'cp', '--rev', String(r5 + 1000)]);
    expect(future.code).toBe(1);
    expect(future.stderr).toContain('code = OutOfRange desc = etcdserver: mvcc: required revision is a future revision');
    expect(future.stderr).toContain('Error: etcdserver: mvcc: required revision is a future revision');

    const again = await at(['compaction', String(r2)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('Error: etcdserver: mvcc: required revision has been compacted');
    const same = await at(['compaction', String(r3)]);
    expect(same.code).toBe(1);
    expect(same.stderr).toContain('Error: etcdserver: mvcc: required revision has been compacted');

    const compactFuture = await at(['compaction', String(r5 + 1000)]);
    expect(compactFuture.code).toBe(1);
    expect(compactFuture.stderr).toContain('Error: etcdserver: mvcc: required revision is a future revision');

    const watch = await etcdctl(compacting.endpoint, ['watch', '--rev', String(r1), 'cp'], { timeoutMs: 10_000 });
    expect(watch.timedOut).toBe(false);
    expect(watch.code).toBe(5);
    expect(watch.stdout).toBe('');
    expect(watch.stderr).toBe('watch was canceled (etcdserver: mvcc: required revision has been compacted)\nError: watch is canceled by the server\n');

    const watchJson = await etcdctl(compacting.endpoint, ['watch', '--rev', String(r1), 'cp', '-w', 'json'], { timeoutMs: 10_000 });
    expect(watchJson.code).toBe(5);
    const canceled = asObject(parseJsonLines(watchJson.stdout)[0]);
    expect(canceled['Canceled']).toBe(true);
    expect(canceled['CompactRevision']).toBe(r3);
    expect(canceled['Events']).toEqual([]);

    // etcd keeps the compacted revision itself readable for watchers too: a watch from N
    // replays the version kept at N and then the later ones.
    const fromCompacted = spawnEtcdctl(compacting.endpoint, ['watch', '--rev', String(r3), 'cp'], { timeoutMs: 10_000 });
    await fromCompacted.waitFor((out) => out.includes('c5'));
    const replay = await fromCompacted.stop();
    expect(replay.stdout).toBe('PUT\ncp\nc3\nPUT\ncp\nc4\nPUT\ncp\nc5\n');
  });
});

describe('cluster and maintenance', () => {
  it('endpoint status -w json: the member leads, with term, index, version and db size', async () => {
    const statuses = asArray(parseJsonLossless(await ctl(['endpoint', 'status', '-w', 'json'])));
    expect(statuses).toHaveLength(1);
    const entry = asObject(statuses[0]);
    expect(entry['Endpoint']).toBe(member.endpoint);
    const status = asObject(entry['Status']);
    const header = asObject(status['header']);
    expect(asBigInt(status['leader'])).toBe(asBigInt(header['member_id']));
    expect(asNumber(status['raftTerm'])).toBeGreaterThanOrEqual(1);
    expect(status['raftTerm']).toBe(header['raft_term']);
    expect(asNumber(status['raftIndex'])).toBeGreaterThan(0);
    expect(asNumber(status['raftAppliedIndex'])).toBeGreaterThan(0);
    expect(status['version']).toMatch(/^\d+\.\d+\.\d+/);
    expect(asNumber(status['dbSize'])).toBeGreaterThan(0);
    expect(asNumber(header['revision'])).toBeGreaterThan(1);
    expect(status['isLearner']).toBeUndefined();
  });

  it('endpoint status (table) names the member id in hex and says it is the leader', async () => {
    const line = (await ctl(['endpoint', 'status'])).trimEnd();
    const fields = line.split(', ');
    expect(fields[0]).toBe(member.endpoint);
    expect(fields[1]).toMatch(/^[0-9a-f]+$/);
    expect(fields[4]).toBe('true'); // is leader
    expect(fields[5]).toBe('false'); // is learner
  });

  it('endpoint health reports healthy (on stderr for the simple format) and health:true in json', async () => {
    const result = await etcdctl(member.endpoint, ['endpoint', 'health']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`^${member.endpoint.replace(/\./g, '\\.')} is healthy: successfully committed proposal: took = \\S+\\n$`));
    const json = asArray(parseJsonLossless(await ctl(['endpoint', 'health', '-w', 'json'])));
    expect(json).toEqual([{ endpoint: member.endpoint, health: true, took: expect.any(String) }]);
  });

  it('member list -w json: one member, with its name and client URL, whose ID is the header member_id', async () => {
    const response = await ctlJson(['member', 'list']);
    const members = asArray(response['members']).map((entry) => asObject(entry));
    expect(members).toHaveLength(1);
    const only = members[0] ?? {};
    expect(asBigInt(only['ID'])).toBe(asBigInt(asObject(response['header'])['member_id']));
    expect(only['name']).toBe('m1');
    expect(only['clientURLs']).toEqual([member.clientUrl]);
    expect(asArray(only['peerURLs'])).toHaveLength(1);
    expect(only['isLearner']).toBeUndefined();

    const simple = (await ctl(['member', 'list'])).trimEnd().split(', ');
    expect(simple[0]).toBe(asBigInt(only['ID']).toString(16));
    expect(simple.slice(1, 3)).toEqual(['started', 'm1']);
    expect(simple[4]).toBe(member.clientUrl);
    expect(simple[5]).toBe('false');
  });
});

describe('bad input gets etcd error texts', () => {
  it('an empty key', async () => {
    const result = await ctlFails(['put', '', 'v']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('code = InvalidArgument desc = etcdserver: key is not provided');
    expect(result.stderr).toContain('Error: etcdserver: key is not provided\n');
  });

  it('a txn with more than --max-txn-ops operations', async () => {
    const ops = Array.from({ length: MAX_TXN_OPS + 1 }, (_, index) => `put bad/too-many-${index} v`).join('\n');
    const result = await ctlFails(['txn'], `\n${ops}\n\n\n`);
    expect(result.stderr).toContain('code = InvalidArgument desc = etcdserver: too many operations in txn request');
    expect(result.stderr).toContain('Error: etcdserver: too many operations in txn request\n');
    expect(await ctl(['get', 'bad/too-many-', '--prefix'])).toBe('');
    // Exactly the limit is fine.
    const exactly = Array.from({ length: MAX_TXN_OPS }, (_, index) => `put bad/at-limit-${index} v`).join('\n');
    expect(await ctl(['txn'], `\n${exactly}\n\n\n`)).toBe(`SUCCESS\n${'\nOK\n'.repeat(MAX_TXN_OPS)}`);
  });

  it('a txn writing the same key twice, or a put inside a deleted range', async () => {
    const twice = await ctlFails(['txn'], '\nput bad/dup 1\nput bad/dup 2\n\n\n');
    expect(twice.stderr).toContain('code = InvalidArgument desc = etcdserver: duplicate key given in txn request');
    expect(twice.stderr).toContain('Error: etcdserver: duplicate key given in txn request\n');
    const overlap = await ctlFails(['txn'], '\nput bad/dup/x 1\ndel bad/dup/ --prefix\n\n\n');
    expect(overlap.stderr).toContain('Error: etcdserver: duplicate key given in txn request\n');
    // Reading and writing one key in a txn is allowed.
    expect(await ctl(['txn'], '\nput bad/rw 1\nget bad/rw\n\n\n')).toBe('SUCCESS\n\nOK\n\nbad/rw\n1\n');
  });

  it('a request larger than --max-request-bytes', async () => {
    const result = await ctlFails(['put', 'bad/big', 'x'.repeat(MAX_REQUEST_BYTES + 1000)]);
    expect(result.stderr).toContain('code = InvalidArgument desc = etcdserver: request is too large');
    expect(result.stderr).toContain('Error: etcdserver: request is too large\n');
    expect(await ctl(['get', 'bad/big'])).toBe('');
    expect(await ctl(['put', 'bad/big', 'x'.repeat(MAX_REQUEST_BYTES - 200)])).toBe('OK\n');
  });

  it('sort options are checked by etcdctl itself, before any request', async () => {
    expect((await ctlFails(['get', 'a', '--sort-by=FOO'])).stderr).toContain('Error: bad sort target FOO');
    expect((await ctlFails(['get', 'a', '--order=UP'])).stderr).toContain('Error: bad sort order UP');
  });
});
