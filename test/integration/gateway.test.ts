/**
 * The JSON gateway over HTTP against a real member: etcd 3.4's paths, JSON mapping, error
 * statuses and bodies, and streams, the way Patroni and curl use them. Runs against a real etcd
 * 3.4 too (GAVEL_TARGET=etcd), where it checks the expectations themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64, call, openStream, post, startGatewayEndpoint, unb64, type GatewayEndpoint } from '../helpers/gateway.js';
import { stopAllMembers } from '../helpers/gavel.js';

let gw: GatewayEndpoint;

beforeAll(async () => {
  gw = await startGatewayEndpoint('gw-kv');
});

afterAll(async () => {
  await gw?.close();
  await stopAllMembers();
});

describe('JSON gateway: KV', () => {
  it('puts, reads, compares and deletes keys with etcd 3.4 field names and encodings', async () => {
    const put = await call(gw.url, '/v3/kv/put', { key: b64('gw/a'), value: b64('one') });
    const header = put['header'] as Record<string, string>;
    expect(Object.keys(header)).toEqual(['cluster_id', 'member_id', 'revision', 'raft_term']);
    const revision = header['revision'] ?? '';
    expect(revision).toMatch(/^\d+$/);

    const range = await call(gw.url, '/v3/kv/range', { key: b64('gw/a') });
    expect(range['count']).toBe('1');
    const kvs = range['kvs'] as Record<string, unknown>[];
    // Zero fields (lease 0) are left out; int64s are strings; keys and values base64.
    expect(kvs[0]).toEqual({ key: b64('gw/a'), create_revision: revision, mod_revision: revision, version: '1', value: b64('one') });

    // Patroni's shapes: a prefix range with serializable, an enum by name, camelCase accepted, unknown fields ignored.
    await call(gw.url, '/v3/kv/put', { key: b64('gw/b'), value: b64('two') });
    const prefix = await call(gw.url, '/v3/kv/range', { key: b64('gw/'), range_end: b64('gw0'), serializable: true, sortOrder: 'DESCEND', sort_target: 'KEY', keysOnly: true, whatever: 1 });
    expect((prefix['kvs'] as Record<string, unknown>[]).map((kv) => unb64(kv['key']))).toEqual(['gw/b', 'gw/a']);
    expect((prefix['kvs'] as Record<string, unknown>[])[0]).not.toHaveProperty('value');

    // A txn as Patroni writes it: compare on create/mod revision with the target by name.
    const ok = await call(gw.url, '/v3/kv/txn', {
      compare: [{ target: 'CREATE', key: b64('gw/a'), create_revision: revision }],
      success: [{ request_put: { key: b64('gw/a'), value: b64('three') } }, { request_range: { key: b64('gw/a') } }],
    });
    expect(ok['succeeded']).toBe(true);
    const responses = ok['responses'] as Record<string, Record<string, unknown>>[];
    expect(Object.keys(responses[0] ?? {})).toEqual(['response_put']);
    expect(responses[0]?.['response_put']).toEqual({ header: { revision: (ok['header'] as Record<string, string>)['revision'] } });
    expect(unb64(((responses[1]?.['response_range']?.['kvs'] as Record<string, unknown>[])[0] ?? {})['value'])).toBe('three');

    const failed = await call(gw.url, '/v3/kv/txn', {
      compare: [{ target: 'MOD', key: b64('gw/a'), mod_revision: '1', result: 'EQUAL' }],
      success: [{ request_put: { key: b64('gw/a'), value: b64('no') } }],
      failure: [{ request_delete_range: { key: b64('gw/none') } }],
    });
    expect(failed).not.toHaveProperty('succeeded');
    expect(Object.keys((failed['responses'] as object[])[0] ?? {})).toEqual(['response_delete_range']);

    const deleted = await call(gw.url, '/v3/kv/deleterange', { key: b64('gw/a'), prev_kv: true });
    expect(deleted['deleted']).toBe('1');
    expect(unb64((deleted['prev_kvs'] as Record<string, unknown>[])[0]?.['value'])).toBe('three');
    const none = await call(gw.url, '/v3/kv/range', { key: b64('gw/a') });
    expect(none).not.toHaveProperty('count');
    expect(none).not.toHaveProperty('kvs');
  });

  it('answers under the /v3beta/ alias, and a 404 or 405 as etcd mux does for other paths and methods', async () => {
    await call(gw.url, '/v3beta/kv/put', { key: b64('gw/alias'), value: b64('1') });
    const beta = await call(gw.url, '/v3beta/kv/range', { key: b64('gw/alias') });
    expect(beta['count']).toBe('1');
    const unknown = await post(`${gw.url}/v3/kv/nothing`, {});
    expect([unknown.status, unknown.body]).toEqual([404, 'Not Found\n']);
    const get = await new Promise<number>((resolve, reject) => {
      void fetch(`${gw.url}/v3/kv/range`).then((r) => resolve(r.status), reject);
    });
    expect(get).toBe(405);
    // Browsers' preflight: etcd answers 200 with its CORS headers (--cors defaults to "*").
    const preflight = await fetch(`${gw.url}/v3/kv/range`, { method: 'OPTIONS' });
    expect([preflight.status, preflight.headers.get('access-control-allow-origin'), preflight.headers.get('access-control-allow-headers')]).toEqual([200, '*', 'accept, content-type, authorization']);
  });

  it('answers errors with the gRPC code, etcd message and grpc-gateway HTTP status', async () => {
    const empty = await post(`${gw.url}/v3/kv/put`, { key: '' });
    expect(empty.status).toBe(400);
    expect(empty.body).toBe('{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}');

    const lease = await post(`${gw.url}/v3/lease/revoke`, { ID: '12345' });
    expect(lease.status).toBe(404);
    expect(JSON.parse(lease.body)).toEqual({ error: 'etcdserver: requested lease not found', message: 'etcdserver: requested lease not found', code: 5 });

    const future = await post(`${gw.url}/v3/kv/range`, { key: b64('x'), revision: '100000' });
    expect([future.status, JSON.parse(future.body).code]).toEqual([400, 11]);

    const auth = await post(`${gw.url}/v3/auth/authenticate`, { name: 'a', password: 'b' });
    // FailedPrecondition: 400 in grpc-gateway 1.9.5 (etcd 3.4's), 412 in Debian's build of etcd.
    expect(gw.target === 'etcd' ? [400, 412] : [400]).toContain(auth.status);
    expect(JSON.parse(auth.body).message).toBe('etcdserver: authentication is not enabled');

    const malformed = await post(`${gw.url}/v3/kv/range`, '{bad');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toBe(`{"error":"invalid character 'b' looking for beginning of object key string","message":"invalid character 'b' looking for beginning of object key string","code":3}`);
    const base64 = await post(`${gw.url}/v3/kv/range`, { key: '!!!' });
    expect(JSON.parse(base64.body)).toMatchObject({ code: 3, message: 'illegal base64 data at input byte 0' });
    const noBody = await post(`${gw.url}/v3/kv/range`, '');
    expect(JSON.parse(noBody.body)).toMatchObject({ code: 3, message: 'etcdserver: key is not provided' });
  });

  it('refuses a request over the gRPC size limit as grpc-go does', async () => {
    const big = await post(`${gw.url}/v3/kv/put`, { key: b64('big'), value: Buffer.alloc(2_200_000, 120).toString('base64') });
    expect(big.status).toBe(429);
    expect(JSON.parse(big.body)).toMatchObject({ code: 8, message: 'grpc: received message larger than max (2200010 vs. 2097152)' });
    const tooLarge = await post(`${gw.url}/v3/kv/put`, { key: b64('big'), value: Buffer.alloc(1_600_000, 120).toString('base64') });
    expect([tooLarge.status, JSON.parse(tooLarge.body).message]).toEqual([400, 'etcdserver: request is too large']);
  });
});

describe('JSON gateway: leases', () => {
  it('grants, keeps alive over the stream path, reads the TTL and revokes', async () => {
    const grant = await call(gw.url, '/v3/lease/grant', { TTL: 30 });
    const id = String(grant['ID']);
    expect(grant['TTL']).toBe('30');
    await call(gw.url, '/v3/kv/put', { key: b64('gw/leased'), value: b64('x'), lease: id });

    // Patroni sends one keep-alive per request and reads one {"result": ...} back.
    const keepAlive = await post(`${gw.url}/v3/lease/keepalive`, { ID: id });
    expect(keepAlive.status).toBe(200);
    expect(keepAlive.headers['transfer-encoding']).toBe('chunked');
    const result = JSON.parse(keepAlive.body) as { result: Record<string, unknown> };
    expect(result.result).toMatchObject({ ID: id, TTL: '30' });
    expect(keepAlive.body.endsWith('}\n')).toBe(true);

    // Several in one body: each answered, in order.
    const two = await post(`${gw.url}/v3/lease/keepalive`, `{"ID":"${id}"}{"ID":"1"}`);
    const lines = two.body.trim().split('\n').map((l) => (JSON.parse(l) as { result: Record<string, unknown> }).result);
    expect(lines.map((r) => [r['ID'], r['TTL']])).toEqual([[id, '30'], ['1', undefined]]);

    const ttl = await call(gw.url, '/v3/lease/timetolive', { ID: id, keys: true });
    expect(ttl['grantedTTL']).toBe('30');
    expect((ttl['keys'] as string[]).map(unb64)).toEqual(['gw/leased']);
    const alias = await call(gw.url, '/v3/kv/lease/timetolive', { ID: id });
    expect(alias['ID']).toBe(id);
    const leases = await call(gw.url, '/v3/lease/leases', {});
    expect((leases['leases'] as Record<string, string>[]).map((l) => l['ID'])).toContain(id);

    await call(gw.url, '/v3/lease/revoke', { ID: id });
    const gone = await call(gw.url, '/v3/kv/range', { key: b64('gw/leased') });
    expect(gone).not.toHaveProperty('kvs');
    const expired = await call(gw.url, '/v3/kv/lease/timetolive', { ID: id });
    expect(expired['TTL']).toBe('-1');
  });
});

describe('JSON gateway: watch', () => {
  it('streams created, events with prev_kv and deletes, one JSON object a line, until the client leaves', async () => {
    const watch = openStream(`${gw.url}/v3/watch`, { create_request: { key: b64('gw/w'), prev_kv: true } });
    expect(await watch.status).toBe(200);
    const created = (await watch.next())?.['result'] as Record<string, unknown>;
    expect(created['created']).toBe(true);
    expect(Object.keys(created)).toEqual(['header', 'created']);

    await call(gw.url, '/v3/kv/put', { key: b64('gw/w'), value: b64('1') });
    await call(gw.url, '/v3/kv/put', { key: b64('gw/w'), value: b64('2') });
    await call(gw.url, '/v3/kv/deleterange', { key: b64('gw/w') });
    const events: Record<string, unknown>[] = [];
    while (events.length < 3) {
      const message = (await watch.next())?.['result'] as Record<string, unknown> | undefined;
      if (message === undefined) throw new Error('watch ended');
      events.push(...((message['events'] as Record<string, unknown>[] | undefined) ?? []));
    }
    expect(events[0]).not.toHaveProperty('type');
    expect(events[0]).not.toHaveProperty('prev_kv');
    expect(unb64((events[1]?.['prev_kv'] as Record<string, unknown>)['value'])).toBe('1');
    expect(events[2]?.['type']).toBe('DELETE');
    expect(Object.keys(events[2]?.['kv'] as object)).toEqual(['key', 'mod_revision']);
    watch.close();
  });

  it('fails the call when the first request does not decode, as grpc-gateway does', async () => {
    const bad = await post(`${gw.url}/v3/watch`, { create_request: { key: '!!' } });
    expect(bad.status).toBe(500);
    expect(JSON.parse(bad.body)).toEqual({ error: 'illegal base64 data at input byte 0', message: 'illegal base64 data at input byte 0', code: 2 });
  });

  // gavel reads the body while it answers; etcd's Go HTTP/1.1 server does not answer a Node client before the body ends.
  it.skipIf(process.env['GAVEL_TARGET'] === 'etcd')('takes more requests on an open body: a second watch, then a cancel', async () => {
    const watch = openStream(`${gw.url}/v3/watch`, { create_request: { key: b64('gw/x') } }, { keepOpen: true });
    const first = (await watch.next())?.['result'] as Record<string, unknown>;
    expect(first['created']).toBe(true);
    watch.write({ create_request: { key: b64('gw/y'), watch_id: '7' } });
    const second = (await watch.next())?.['result'] as Record<string, unknown>;
    expect([second['created'], second['watch_id']]).toEqual([true, '7']);
    watch.write({ cancel_request: { watch_id: '7' } });
    const cancelled = (await watch.next())?.['result'] as Record<string, unknown>;
    expect([cancelled['canceled'], cancelled['watch_id']]).toEqual([true, '7']);
    watch.close();
  });
});

describe('JSON gateway: locks and elections', () => {
  it('locks and unlocks; a waiter whose client disconnects gives its place up', async () => {
    const lease = String((await call(gw.url, '/v3/lease/grant', { TTL: 30 }))['ID']);
    const held = await call(gw.url, '/v3/lock/lock', { name: b64('gw-lock'), lease });
    const key = unb64(held['key']);
    expect(key).toBe(`gw-lock/${BigInt(lease).toString(16)}`);

    // A second session waits behind the holder; its HTTP client gives up.
    const other = String((await call(gw.url, '/v3/lease/grant', { TTL: 30 }))['ID']);
    const waiter = openStream(`${gw.url}/v3/lock/lock`, { name: b64('gw-lock'), lease: other });
    const keys = async (): Promise<number> => {
      const range = await call(gw.url, '/v3/kv/range', { key: b64('gw-lock/'), range_end: b64('gw-lock0'), count_only: true });
      return Number(range['count'] ?? 0);
    };
    await until(async () => (await keys()) === 2);
    waiter.close();
    await until(async () => (await keys()) === 1);

    // Grpc-Timeout bounds a call: the waiter's deadline passes (504, grpc-go's words) and it gives its place up too.
    const timedOut = await post(`${gw.url}/v3/lock/lock`, { name: b64('gw-lock'), lease: other }, { 'Grpc-Timeout': '300m' });
    expect([timedOut.status, timedOut.body]).toEqual([504, '{"error":"context deadline exceeded","message":"context deadline exceeded","code":4}']);
    await until(async () => (await keys()) === 1);
    const badTimeout = await post(`${gw.url}/v3/kv/range`, { key: b64('x') }, { 'Grpc-Timeout': 'abc' });
    expect([badTimeout.status, JSON.parse(badTimeout.body).message]).toEqual([400, 'invalid grpc-timeout: abc']);

    await call(gw.url, '/v3/lock/unlock', { key: held['key'] });
    expect(await keys()).toBe(0);
  });

  it('campaigns, proclaims, observes, reads the leader and resigns', async () => {
    const lease = String((await call(gw.url, '/v3/lease/grant', { TTL: 30 }))['ID']);
    const observe = openStream(`${gw.url}/v3/election/observe`, { name: b64('gw-el') });
    const campaign = await call(gw.url, '/v3/election/campaign', { name: b64('gw-el'), lease, value: b64('v1') });
    const leader = campaign['leader'] as Record<string, string>;
    expect(Object.keys(leader)).toEqual(['name', 'key', 'rev', 'lease']);
    expect([unb64(leader['name']), leader['lease']]).toEqual(['gw-el', lease]);

    await call(gw.url, '/v3/election/proclaim', { leader, value: b64('v2') });
    const current = await call(gw.url, '/v3/election/leader', { name: b64('gw-el') });
    expect(unb64((current['kv'] as Record<string, string>)['value'])).toBe('v2');

    const seen: string[] = [];
    while (!seen.includes('v2')) {
      const message = (await observe.next())?.['result'] as Record<string, Record<string, string>> | undefined;
      if (message === undefined) throw new Error('observe ended');
      seen.push(unb64(message['kv']?.['value']));
    }
    expect(seen).toEqual(['v1', 'v2']);
    observe.close();

    await call(gw.url, '/v3/election/resign', { leader });
    const none = await post(`${gw.url}/v3/election/leader`, { name: b64('gw-el') });
    expect([none.status, JSON.parse(none.body)]).toEqual([500, { error: 'election: no leader', message: 'election: no leader', code: 2 }]);
  });
});

describe('JSON gateway: cluster, maintenance and the /v3alpha/ alias', () => {
  it('lists members with their client URLs (Patroni reads clientURLs) and reports status', async () => {
    const list = await call(gw.url, '/v3/cluster/member/list', {});
    const members = list['members'] as Record<string, unknown>[];
    expect(members.length).toBe(1);
    expect(Object.keys(members[0] ?? {})).toEqual(['ID', 'name', 'peerURLs', 'clientURLs']);
    const status = await call(gw.url, '/v3/maintenance/status', {});
    expect(Object.keys(status).slice(0, 3)).toEqual(['header', 'version', 'dbSize']);
  });

  it.skipIf(process.env['GAVEL_TARGET'] === 'etcd')('serves /v3alpha/ as an alias (etcd 3.2 prefix; etcd 3.4 itself answers 404 there)', async () => {
    await call(gw.url, '/v3alpha/kv/put', { key: b64('gw/alpha'), value: b64('1') });
    const alpha = await call(gw.url, '/v3alpha/kv/range', { key: b64('gw/alpha') });
    expect(alpha['count']).toBe('1');
  });
});

describe('JSON gateway: back-pressure', () => {
  it('a watcher that stops reading gets every event, in order, once it reads again', async () => {
    const count = 120;
    const value = Buffer.alloc(100_000, 97).toString('base64');
    const watch = openStream(`${gw.url}/v3/watch`, { create_request: { key: b64('gw/bp') } });
    expect(((await watch.next())?.['result'] as Record<string, unknown>)['created']).toBe(true);
    watch.pause();
    for (let i = 0; i < count; i++) await call(gw.url, '/v3/kv/put', { key: b64('gw/bp'), value });
    watch.resume();
    const versions: string[] = [];
    while (versions.length < count) {
      const message = (await watch.next())?.['result'] as Record<string, unknown> | undefined;
      if (message === undefined) throw new Error('watch ended');
      for (const event of (message['events'] as Record<string, Record<string, string>>[] | undefined) ?? []) versions.push(event['kv']?.['version'] ?? '');
    }
    expect(versions).toEqual(Array.from({ length: count }, (_, i) => String(i + 1)));
    watch.close();
  });
});

async function until(probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('JSON gateway: stream limits', () => {
  // etcd 3.4 answers the same bytes to curl (checked by hand); to this Node client's 3 MB body its Go server does not answer in time.
  it.skipIf(process.env['GAVEL_TARGET'] === 'etcd')('ends a stream whose request is over the gRPC limit with an error chunk', async () => {
    const value = Buffer.alloc(2_200_000, 120).toString('base64');
    const first = `{"create_request":{"key":"${b64('gw/l')}"}}`;
    const watch = openStream(`${gw.url}/v3/watch`, `${first}{"create_request":{"key":"${value}"}}`);
    expect(((await watch.next())?.['result'] as Record<string, unknown>)['created']).toBe(true);
    const end = await watch.next();
    expect(end).toEqual({ error: { grpc_code: 8, http_code: 429, message: 'grpc: received message larger than max (2200010 vs. 2097152)', http_status: 'Too Many Requests' } });
  });
});
