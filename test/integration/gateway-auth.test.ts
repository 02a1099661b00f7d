/**
 * Auth through the JSON gateway: users, roles and permissions set up over HTTP, a token from
 * /v3/auth/authenticate carried in the Authorization header (and in Grpc-Metadata-Token), and
 * etcd's statuses for a missing, wrong or insufficient token. Runs against etcd 3.4 too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64, call, openStream, post, startGatewayEndpoint, type GatewayEndpoint } from '../helpers/gateway.js';
import { stopAllMembers } from '../helpers/gavel.js';

let gw: GatewayEndpoint;

beforeAll(async () => {
  gw = await startGatewayEndpoint('gw-auth');
});

afterAll(async () => {
  await gw?.close();
  await stopAllMembers();
});

describe('JSON gateway: auth', () => {
  it('enables auth, authenticates, and checks the token and permissions of every call', async () => {
    await call(gw.url, '/v3/auth/user/add', { name: 'root', password: 'rootpw' });
    await call(gw.url, '/v3/auth/user/grant', { user: 'root', role: 'root' });
    await call(gw.url, '/v3/auth/role/add', { name: 'app' });
    await call(gw.url, '/v3/auth/role/grant', { name: 'app', perm: { permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') } });
    await call(gw.url, '/v3/auth/user/add', { name: 'app', password: 'apppw' });
    await call(gw.url, '/v3/auth/user/grant', { user: 'app', role: 'app' });
    const role = await call(gw.url, '/v3/auth/role/get', { role: 'app' });
    expect(role['perm']).toEqual([{ permType: 'READWRITE', key: b64('app/'), range_end: b64('app0') }]);
    await call(gw.url, '/v3/auth/enable', {});
    if (gw.target === 'gavel') expect((await call(gw.url, '/v3/auth/status', {}))['enabled']).toBe(true); // etcd 3.5's path

    const anonymous = await post(`${gw.url}/v3/kv/put`, { key: b64('app/x'), value: b64('1') });
    expect([anonymous.status, JSON.parse(anonymous.body)]).toEqual([400, { error: 'etcdserver: user name is empty', message: 'etcdserver: user name is empty', code: 3 }]);

    const wrong = await post(`${gw.url}/v3/auth/authenticate`, { name: 'app', password: 'nope' });
    expect([wrong.status, JSON.parse(wrong.body).message]).toEqual([400, 'etcdserver: authentication failed, invalid user ID or password']);

    const token = String((await call(gw.url, '/v3/auth/authenticate', { name: 'app', password: 'apppw' }))['token']);
    const as = { Authorization: token };
    await call(gw.url, '/v3/kv/put', { key: b64('app/x'), value: b64('1') }, as);
    const read = await call(gw.url, '/v3/kv/range', { key: b64('app/x') }, { 'Grpc-Metadata-Token': token });
    expect(read['count']).toBe('1');

    const denied = await post(`${gw.url}/v3/kv/put`, { key: b64('other/x'), value: b64('1') }, as);
    expect([denied.status, JSON.parse(denied.body)]).toEqual([403, { error: 'etcdserver: permission denied', message: 'etcdserver: permission denied', code: 7 }]);
    const deniedRange = await post(`${gw.url}/v3/kv/range`, { key: b64('other/x') }, as);
    expect(deniedRange.status).toBe(403);

    const invalid = await post(`${gw.url}/v3/kv/range`, { key: b64('app/x') }, { Authorization: 'not-a-token' });
    expect([invalid.status, JSON.parse(invalid.body)]).toEqual([401, { error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 }]);

    // Streams carry the token too.
    const watch = openStream(`${gw.url}/v3/watch`, { create_request: { key: b64('app/x') } }, { headers: as });
    expect(((await watch.next())?.['result'] as Record<string, unknown>)['created']).toBe(true);
    await call(gw.url, '/v3/kv/put', { key: b64('app/x'), value: b64('2') }, as);
    const event = (await watch.next())?.['result'] as Record<string, unknown[]>;
    expect(event['events']?.length).toBe(1);
    watch.close();

    // A stream refused before its first message: the error's status and one error chunk. gavel's
    // Observe runs as its caller and reports recipe errors as Unknown, as etcd 3.4's v3election does.
    if (gw.target === 'gavel') {
      const observe = openStream(`${gw.url}/v3/election/observe`, { name: b64('other/election') }, { headers: as });
      expect(await observe.status).toBe(500);
      expect(await observe.next()).toEqual({ error: { grpc_code: 2, http_code: 500, message: 'etcdserver: permission denied', http_status: 'Internal Server Error' } });
      expect(await observe.next()).toBeUndefined();
    }

    // Only root may list users or turn auth off.
    const list = await post(`${gw.url}/v3/auth/user/list`, {}, as);
    expect(list.status).toBe(403);
    const rootToken = String((await call(gw.url, '/v3/auth/authenticate', { name: 'root', password: 'rootpw' }))['token']);
    expect((await call(gw.url, '/v3/auth/user/list', {}, { Authorization: rootToken }))['users']).toEqual(['app', 'root']);
    await call(gw.url, '/v3/auth/disable', {}, { Authorization: rootToken });
    await call(gw.url, '/v3/kv/put', { key: b64('other/x'), value: b64('1') });
  });
});
