// Goal: the `etcd3` npm client, unchanged, works against gavel exactly as against etcd 3.4 — KV, txns, leases, watches, namespaces and its typed errors.
import {
  Etcd3,
  EtcdError,
  EtcdLeaseInvalidError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  type IKeyValue,
  type IResponseOp,
  type Watcher,
} from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, startMember, stopAllMembers, type Member } from '../helpers/gavel.js';
import { asBigInt, asObject, parseJsonLossless } from '../helpers/json.js';

let member: Member;
let client: Etcd3;

beforeAll(async () => {
  member = await startMember({ args: ['--max-txn-ops', '8'] });
  client = new Etcd3({ hosts: member.clientUrl });
});
afterAll(async () => {
  client?.close();
  await stopAllMembers();
});

/** Resolves with the first `count` items pushed to `into`, or rejects after timeoutMs. */
async function collect<T>(into: T[], count: number, timeoutMs = 10_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  while (into.length < count) {
    if (Date.now() > deadline) throw new Error(`only ${into.length} of ${count} items within ${timeoutMs} ms: ${JSON.stringify(into)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return into.slice(0, count);
}

function summarize(kv: IKeyValue): { key: string; value: string; version: string; mod: string } {
  return { key: kv.key.toString(), value: kv.value.toString(), version: kv.version, mod: kv.mod_revision };
}

/** Which op of the oneof answered: etcd3 loads its protos with oneofs, so the field exists at runtime, untyped. */
function kindOf(op: IResponseOp | undefined): unknown {
  return (op as unknown as { response?: unknown } | undefined)?.response;
}

async function revisionOfPut(key: string, value: string): Promise<number> {
  const response = await client.put(key).value(value).exec();
  return Number(response.header.revision);
}

describe('KV', () => {
  it('put, get and delete one key', async () => {
    const response = await client.put('e3/kv/one').value('1').exec();
    const revision = Number(response.header.revision);
    expect(revision).toBeGreaterThan(1);
    expect(await client.get('e3/kv/one').string()).toBe('1');
    expect(await client.get('e3/kv/one').number()).toBe(1);
    expect(await client.get('e3/kv/missing').string()).toBeNull();
    expect(await client.get('e3/kv/missing').exists()).toBe(false);

    const range = await client.get('e3/kv/one').exec();
    expect(range.count).toBe('1');
    expect(range.more).toBe(false);
    expect(range.kvs.map(summarize)).toEqual([{ key: 'e3/kv/one', value: '1', version: '1', mod: String(revision) }]);
    expect(range.kvs[0]?.create_revision).toBe(String(revision));
    expect(range.kvs[0]?.lease).toBe('0');

    const deleted = await client.delete().key('e3/kv/one').exec();
    expect(deleted.deleted).toBe('1');
    expect(Number(deleted.header.revision)).toBe(revision + 1);
    expect(await client.get('e3/kv/one').string()).toBeNull();
  });

  it('json values and previous values round-trip', async () => {
    await client.put('e3/kv/json').value(JSON.stringify({ a: [1, 2] }));
    expect(await client.get('e3/kv/json').json()).toEqual({ a: [1, 2] });
    const previous = await client.put('e3/kv/json').value('replaced').getPrevious();
    expect(previous.value.toString()).toBe(JSON.stringify({ a: [1, 2] }));
    expect(previous.version).toBe('1');
  });

  it('binary keys and values are byte-exact', async () => {
    const key = Buffer.from([0x65, 0x33, 0x2f, 0x00, 0xff, 0x10]);
    const value = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    await client.put(key).value(value);
    expect(await client.get(key).buffer()).toEqual(value);
    expect(await client.getAll().prefix(Buffer.from([0x65, 0x33, 0x2f, 0x00])).keyBuffers()).toEqual([key]);
  });

  it('getAll().prefix() lists, counts, limits and sorts', async () => {
    for (const [key, value] of [['c', '3'], ['a', '1'], ['b', '2']] as const) await client.put(`e3/all/${key}`).value(value);
    await client.put('e3/allx').value('outside');
    expect(await client.getAll().prefix('e3/all/').strings()).toEqual({ 'e3/all/a': '1', 'e3/all/b': '2', 'e3/all/c': '3' });
    expect(await client.getAll().prefix('e3/all/').keys()).toEqual(['e3/all/a', 'e3/all/b', 'e3/all/c']);
    expect(await client.getAll().prefix('e3/all/').count()).toBe(3); // count_only
    const limited = await client.getAll().prefix('e3/all/').limit(2).exec();
    expect(limited.kvs.map((kv) => kv.key.toString())).toEqual(['e3/all/a', 'e3/all/b']);
    expect(limited.more).toBe(true);
    expect(limited.count).toBe('3');
    expect(await client.getAll().prefix('e3/all/').sort('Create', 'Descend').keys()).toEqual(['e3/all/b', 'e3/all/a', 'e3/all/c']);
    expect(await client.getAll().prefix('e3/all/').sort('Value', 'Descend').limit(1).strings()).toEqual({ 'e3/all/c': '3' });
  });

  it('delete().prefix() removes every key under the prefix and returns previous values', async () => {
    for (const key of ['x', 'y']) await client.put(`e3/del/${key}`).value(key);
    const previous = await client.delete().prefix('e3/del/').getPrevious();
    expect(previous.map((kv) => [kv.key.toString(), kv.value.toString()])).toEqual([['e3/del/x', 'x'], ['e3/del/y', 'y']]);
    expect(await client.getAll().prefix('e3/del/').count()).toBe(0);
  });

  it('reads at a past revision', async () => {
    const r1 = await revisionOfPut('e3/hist', 'one');
    await revisionOfPut('e3/hist', 'two');
    expect(await client.get('e3/hist').revision(r1).string()).toBe('one');
    expect(await client.get('e3/hist').string()).toBe('two');
  });
});

describe('transactions', () => {
  it('if().then() runs when the compare holds', async () => {
    await client.put('e3/tx/a').value('old');
    const result = await client.if('e3/tx/a', 'Value', '==', 'old').then(client.put('e3/tx/a').value('new')).else(client.get('e3/tx/a')).commit();
    expect(result.succeeded).toBe(true);
    expect(result.responses).toHaveLength(1);
    expect(kindOf(result.responses[0])).toBe('response_put');
    expect(await client.get('e3/tx/a').string()).toBe('new');
  });

  it('else() runs when it does not, and returns the range result', async () => {
    const result = await client.if('e3/tx/a', 'Value', '==', 'never').then(client.put('e3/tx/a').value('wrong')).else(client.get('e3/tx/a')).commit();
    expect(result.succeeded).toBe(false);
    const range = result.responses[0]?.response_range;
    expect(range?.kvs.map((kv) => kv.value.toString())).toEqual(['new']);
    expect(range?.header.revision).toBe(result.header.revision);
  });

  it('create-if-absent: Create == 0 succeeds once', async () => {
    const attempt = (): Promise<{ succeeded: boolean }> => client.if('e3/tx/lock', 'Create', '==', 0).then(client.put('e3/tx/lock').value('me')).commit();
    expect((await attempt()).succeeded).toBe(true);
    expect((await attempt()).succeeded).toBe(false);
  });

  it('compares on version, mod revision and several keys at once', async () => {
    const revision = await revisionOfPut('e3/tx/v', 'x');
    const result = await client
      .if('e3/tx/v', 'Version', '==', 1)
      .and('e3/tx/v', 'Mod', '==', revision)
      .and('e3/tx/v', 'Mod', '<', revision + 1)
      .and('e3/tx/nothing', 'Version', '==', 0)
      .then(client.put('e3/tx/v').value('y'), client.delete().key('e3/tx/lock'))
      .commit();
    expect(result.succeeded).toBe(true);
    expect(Number(result.header.revision)).toBe(revision + 1);
    expect(result.responses.map(kindOf)).toEqual(['response_put', 'response_delete_range']);
    expect(result.responses[1]?.response_delete_range?.deleted).toBe('1');
  });
});

describe('leases', () => {
  it('grants a lease whose id round-trips exactly through keys, etcdctl and TimeToLive', async () => {
    const lease = client.lease(60, { autoKeepAlive: false });
    const id = await lease.grant();
    expect(id).toMatch(/^\d+$/);
    expect(BigInt(id)).toBeGreaterThan(0n);
    expect(BigInt(id)).toBeLessThan(2n ** 63n);
    await lease.put('e3/lease/k').value('v');
    const kv = (await client.get('e3/lease/k').exec()).kvs[0];
    expect(kv?.lease).toBe(id);

    const hex = BigInt(id).toString(16).padStart(16, '0');
    const timeToLive = await etcdctl(member.endpoint, ['lease', 'timetolive', hex, '--keys', '-w', 'json']);
    expect(timeToLive.code).toBe(0);
    const parsed = asObject(parseJsonLossless(timeToLive.stdout));
    expect(asBigInt(parsed['id'])).toBe(BigInt(id));
    expect(parsed['keys']).toEqual([Buffer.from('e3/lease/k').toString('base64')]);
    await lease.revoke();
  });

  it('keeps a lease alive with keepaliveSucceeded events carrying the granted TTL', async () => {
    const lease = client.lease(3);
    const responses: { ID: string; TTL: string }[] = [];
    lease.on('keepaliveSucceeded', (response) => responses.push({ ID: response.ID, TTL: response.TTL }));
    const id = await lease.grant();
    // The keepalive interval is TTL/3 = 1 s: expect at least two within ~2.5 s.
    const seen = await collect(responses, 2, 5_000);
    expect(seen).toEqual([{ ID: id, TTL: '3' }, { ID: id, TTL: '3' }]);
    expect(lease.revoked()).toBe(false);
    await lease.revoke();
    expect(lease.revoked()).toBe(true);
  });

  it('revoking a lease deletes its keys', async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    await lease.put('e3/lease/r1').value('1');
    await lease.put('e3/lease/r2').value('2');
    expect(await client.getAll().prefix('e3/lease/r').count()).toBe(2);
    await lease.revoke();
    expect(await client.getAll().prefix('e3/lease/r').count()).toBe(0);
  });

  it('keepaliveOnce on a revoked lease fails with EtcdLeaseInvalidError (the server answers TTL 0)', async () => {
    const lease = client.lease(30, { autoKeepAlive: false });
    const id = await lease.grant();
    const hex = BigInt(id).toString(16);
    expect((await etcdctl(member.endpoint, ['lease', 'revoke', hex])).stdout).toBe(`lease ${hex.padStart(16, '0')} revoked\n`);
    const lost = new Promise<unknown>((resolve) => lease.on('lost', resolve));
    await expect(lease.keepaliveOnce()).rejects.toBeInstanceOf(EtcdLeaseInvalidError);
    expect(await lost).toBeInstanceOf(EtcdLeaseInvalidError);
  });

  it('a put with a missing lease fails with EtcdLeaseInvalidError', async () => {
    const error: unknown = await client.put('e3/lease/none').value('v').lease('1311768467139281697').exec().then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(EtcdLeaseInvalidError);
    expect((error as Error).message).toContain('etcdserver: requested lease not found');
    expect(await client.get('e3/lease/none').exists()).toBe(false);
  });
});

describe('watch', () => {
  const watchers: Watcher[] = [];
  afterAll(async () => {
    await Promise.all(watchers.map((watcher) => watcher.cancel()));
  });

  it('a key watcher sees puts and deletes in order, and nothing for other keys', async () => {
    const watcher = await client.watch().key('e3/w/key').create();
    watchers.push(watcher);
    const events: string[] = [];
    watcher.on('put', (kv) => events.push(`put ${kv.key.toString()}=${kv.value.toString()} v${kv.version} @${kv.mod_revision}`));
    watcher.on('delete', (kv) => events.push(`delete ${kv.key.toString()} @${kv.mod_revision}`));
    const r1 = await revisionOfPut('e3/w/key', 'a');
    await client.put('e3/w/other').value('ignored');
    const r2 = await revisionOfPut('e3/w/key', 'b');
    const r3 = Number((await client.delete().key('e3/w/key').exec()).header.revision);
    expect(await collect(events, 3)).toEqual([`put e3/w/key=a v1 @${r1}`, `put e3/w/key=b v2 @${r2}`, `delete e3/w/key @${r3}`]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(events).toHaveLength(3);
  });

  it('a prefix watcher sees every key under the prefix, with previous values on request', async () => {
    const watcher = await client.watch().prefix('e3/wp/').withPreviousKV().create();
    watchers.push(watcher);
    const events: string[] = [];
    watcher.on('put', (kv, previous) => events.push(`put ${kv.key.toString()}=${kv.value.toString()} prev=${previous?.value.toString() ?? '-'}`));
    watcher.on('delete', (kv, previous) => events.push(`delete ${kv.key.toString()} prev=${previous?.value.toString() ?? '-'}`));
    await client.put('e3/wp/a').value('1');
    await client.put('e3/wpx').value('outside');
    await client.put('e3/wp/b').value('2');
    await client.put('e3/wp/a').value('3');
    await client.delete().prefix('e3/wp/');
    expect(await collect(events, 5)).toEqual([
      'put e3/wp/a=1 prev=-',
      'put e3/wp/b=2 prev=-',
      'put e3/wp/a=3 prev=1',
      'delete e3/wp/a prev=3',
      'delete e3/wp/b prev=2',
    ]);
  });

  it('a watcher from a past revision replays history first', async () => {
    const r1 = await revisionOfPut('e3/wh', 'one');
    await revisionOfPut('e3/wh', 'two');
    const watcher = await client.watch().key('e3/wh').startRevision(String(r1)).create();
    watchers.push(watcher);
    const values: string[] = [];
    watcher.on('put', (kv) => values.push(kv.value.toString()));
    await collect(values, 2);
    await client.put('e3/wh').value('three');
    expect(await collect(values, 3)).toEqual(['one', 'two', 'three']);
  });

  it('several watchers on one stream each get their own events', async () => {
    const first = await client.watch().key('e3/wm/1').create();
    const second = await client.watch().key('e3/wm/2').create();
    watchers.push(first, second);
    const one: string[] = [];
    const two: string[] = [];
    first.on('put', (kv) => one.push(kv.value.toString()));
    second.on('put', (kv) => two.push(kv.value.toString()));
    await client.put('e3/wm/2').value('b');
    await client.put('e3/wm/1').value('a');
    expect(await collect(one, 1)).toEqual(['a']);
    expect(await collect(two, 1)).toEqual(['b']);
  });
});

describe('namespaces', () => {
  it('prefixes every operation and strips the prefix from results', async () => {
    const ns = client.namespace('e3/ns/');
    await ns.put('a').value('1');
    await ns.put('b').value('2');
    expect(await client.get('e3/ns/a').string()).toBe('1');
    expect(await ns.get('a').string()).toBe('1');
    expect(await ns.getAll().keys()).toEqual(['a', 'b']);
    expect(await ns.getAll().strings()).toEqual({ a: '1', b: '2' });

    const nested = ns.namespace('inner/');
    await nested.put('c').value('3');
    expect(await client.get('e3/ns/inner/c').string()).toBe('3');
    expect(await ns.getAll().count()).toBe(3);

    const txn = await ns.if('a', 'Value', '==', '1').then(ns.put('a').value('10')).commit();
    expect(txn.succeeded).toBe(true);
    expect(await client.get('e3/ns/a').string()).toBe('10');

    const watcher = await ns.watch().key('b').create();
    const seen: string[] = [];
    watcher.on('put', (kv) => seen.push(kv.key.toString()));
    await client.put('e3/ns/b').value('20');
    expect(await collect(seen, 1)).toEqual(['b']);
    await watcher.cancel();

    const lease = ns.lease(30, { autoKeepAlive: false });
    await lease.put('leased').value('x');
    expect((await client.get('e3/ns/leased').exec()).kvs[0]?.lease).toBe(await lease.grant());
    await lease.revoke();

    await ns.delete().all();
    expect(await client.getAll().prefix('e3/ns/').count()).toBe(0);
  });
});

describe('errors map to etcd3 error classes', () => {
  async function rejection(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      if (error instanceof Error) return error;
      throw new Error(`rejected with a non-Error: ${String(error)}`);
    }
    throw new Error('expected a rejection');
  }

  it('an empty key is GRPCInvalidArgumentError "etcdserver: key is not provided"', async () => {
    const error = await rejection(client.put('').value('v').exec());
    expect(error).toBeInstanceOf(GRPCInvalidArgumentError);
    expect(error.message).toBe('3 INVALID_ARGUMENT: etcdserver: key is not provided');
  });

  it('too many ops in a txn is GRPCInvalidArgumentError', async () => {
    const puts = Array.from({ length: 9 }, (_, index) => client.put(`e3/err/many-${index}`).value('v'));
    const error = await rejection(client.if('e3/err/x', 'Version', '==', 0).then(...puts).commit());
    expect(error).toBeInstanceOf(GRPCInvalidArgumentError);
    expect(error.message).toBe('3 INVALID_ARGUMENT: etcdserver: too many operations in txn request');
  });

  it('a duplicate key in a txn is GRPCInvalidArgumentError', async () => {
    const error = await rejection(client.if('e3/err/x', 'Version', '==', 0).then(client.put('e3/err/d').value('1'), client.put('e3/err/d').value('2')).commit());
    expect(error).toBeInstanceOf(GRPCInvalidArgumentError);
    expect(error.message).toBe('3 INVALID_ARGUMENT: etcdserver: duplicate key given in txn request');
  });

  it('reading a compacted revision is GRPCOutOfRangeError; a future one too', async () => {
    const r1 = await revisionOfPut('e3/err/compact', '1');
    const r2 = await revisionOfPut('e3/err/compact', '2');
    await client.kv.compact({ revision: String(r2) });
    const compacted = await rejection(client.get('e3/err/compact').revision(r1).exec());
    expect(compacted).toBeInstanceOf(GRPCOutOfRangeError);
    expect(compacted.message).toBe('11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted');
    expect(await client.get('e3/err/compact').revision(r2).string()).toBe('2');
    const future = await rejection(client.get('e3/err/compact').revision(r2 + 100_000).exec());
    expect(future).toBeInstanceOf(GRPCOutOfRangeError);
    expect(future.message).toBe('11 OUT_OF_RANGE: etcdserver: mvcc: required revision is a future revision');
  });

  it('a watch from a compacted revision is canceled with an EtcdError', async () => {
    const r1 = await revisionOfPut('e3/err/wc', '1');
    const r2 = await revisionOfPut('e3/err/wc', '2');
    await client.kv.compact({ revision: String(r2) });
    const watcher = client.watch().key('e3/err/wc').startRevision(String(r1)).watcher();
    const error = await new Promise<unknown>((resolve) => {
      watcher.on('error', resolve);
      watcher.on('put', (kv) => resolve(new Error(`unexpected event ${kv.value.toString()}`)));
    });
    expect(error).toBeInstanceOf(EtcdError);
    // etcd sets compact_revision and canceled, with no cancel_reason.
    expect((error as Error).message).toBe('Watcher canceled: ');
  });
});
