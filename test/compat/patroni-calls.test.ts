// Goal: each HTTP call that Patroni 3.0's etcd3 backend (patroni/dcs/etcd3.py) makes, sent byte for byte as Patroni sends it, gets an answer in the shape Patroni parses, as etcd 3.4 answers it.
// No PostgreSQL needed: this pins down the gateway behaviour the Patroni test (patroni.test.ts) depends on, one call at a time.
import { request, type IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, startMember, stopAllMembers, waitUntil, type Member } from '../helpers/gavel.js';

// What Patroni's urllib3 sends with every call (Etcd3Client._get_headers / _prepare_request).
const PATRONI_HEADERS = {
  'accept-encoding': 'identity',
  'user-agent': 'Patroni/3.0.2 Python/3.11.2 Linux',
  'content-type': 'application/json',
};

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

let member: Member;

beforeAll(async () => {
  member = await startMember({ name: 'patroni-calls' });
});
afterAll(stopAllMembers);

/** One request as Patroni makes it: a JSON body (Patroni sends one even with GET /version), read to the end. */
function call(method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${member.clientUrl}${path}`, { method, headers: { ...PATRONI_HEADERS, ...headers, 'content-length': String(Buffer.byteLength(payload)) }, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The body parsed as Patroni parses a unary answer: json.loads of the whole body (so exactly one JSON value). */
function json(answer: Answer): Record<string, unknown> {
  const parsed: unknown = JSON.parse(answer.text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`not a JSON object: ${answer.text}`);
  return parsed as Record<string, unknown>;
}

/** POST /v3/<rpc> expecting 200 and a JSON object. */
async function rpc(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const answer = await call('POST', `/v3${path}`, body, headers);
  if (answer.status !== 200) throw new Error(`POST /v3${path} ${JSON.stringify(body)} -> ${answer.status} ${answer.text}`);
  return json(answer);
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (text: unknown): string => Buffer.from(String(text), 'base64').toString('utf8');
/** etcd3.py prefix_range_end: the last byte below 0xff, plus one. */
const prefixEnd = (prefix: string): string => b64(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1));
const field = (object: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((value, key) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined), object);
const revisionOf = (answer: Record<string, unknown>): number => Number(field(answer, 'header', 'revision'));

/** A /v3/watch response as Patroni reads it (utils.iter_response_objects): chunked, JSON objects one after another. */
interface WatchStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** Resolves with the first not yet taken object that `matches`, within timeoutMs. */
  next(matches: (message: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  close(): void;
}

function watch(body: unknown): Promise<WatchStream> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${member.clientUrl}/v3/watch`, { method: 'POST', headers: { ...PATRONI_HEADERS, 'content-length': String(Buffer.byteLength(payload)) } }, (res) => {
      let pending = '';
      const messages: Record<string, unknown>[] = [];
      const waiters = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        // Patroni decodes objects from the front of the buffer and keeps an incomplete tail.
        for (;;) {
          const trimmed = pending.trimStart();
          const end = endOfObject(trimmed);
          if (end === undefined) break;
          messages.push(JSON.parse(trimmed.slice(0, end)) as Record<string, unknown>);
          pending = trimmed.slice(end);
        }
        for (const waiter of waiters) waiter();
      });
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        next(matches, timeoutMs = 5_000) {
          return new Promise((found, failed) => {
            const check = (): void => {
              const index = messages.findIndex(matches);
              if (index < 0) return;
              const [message] = messages.splice(0, index + 1).slice(-1);
              finish();
              found(message!);
            };
            const timer = setTimeout(() => {
              finish();
              failed(new Error(`watch: no matching message within ${timeoutMs} ms; unread: ${JSON.stringify(messages)} pending: ${pending}`));
            }, timeoutMs);
            const finish = (): void => {
              clearTimeout(timer);
              waiters.delete(check);
            };
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    // The request body ends here, as Patroni's does; the answer must stay open regardless.
    req.end(payload);
  });
}

/** Index just past the JSON object at the start of `text`, or undefined if it is incomplete. */
function endOfObject(text: string): number | undefined {
  if (!text.startsWith('{')) return undefined;
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index];
    if (inString) {
      if (char === '\\') index += 1;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth += 1;
    else if (char === '}' || char === ']') {
      depth -= 1;
      if (depth === 0) return index + 1;
    }
  }
  return undefined;
}

describe('discovery', () => {
  it('GET /version (with a "{}" body) names server and cluster versions that parse as dotted integers, cluster 3.4 or later', async () => {
    const answer = await call('GET', '/version', {});
    expect(answer.status).toBe(200);
    const version = json(answer);
    // _ensure_version_prefix: tuple(int(x) for x in ....split('.')); /v3 is used from cluster 3.4 on.
    const server = String(version['etcdserver']).split('.').map(Number);
    const cluster = String(version['etcdcluster']).split('.').map(Number);
    expect(server.every(Number.isInteger) && server.length === 3).toBe(true);
    expect(cluster.every(Number.isInteger) && cluster.length === 3).toBe(true);
    expect(cluster[0]! * 100 + cluster[1]!).toBeGreaterThanOrEqual(304);
  });

  it('POST /v3/cluster/member/list answers members[].clientURLs with the advertised URL, which Patroni then talks to', async () => {
    const answer = await rpc('/cluster/member/list', {});
    const members = answer['members'] as Array<Record<string, unknown>>;
    expect(members.flatMap((m) => m['clientURLs'] as string[])).toContain(member.clientUrl);
  });
});

describe('lease', () => {
  it('grant {"TTL": 10} answers ID and TTL as int64 strings; keepalive answers one {"result": ...} object with the TTL', async () => {
    const granted = await rpc('/lease/grant', { TTL: 10 });
    expect(granted['ID']).toMatch(/^[1-9]\d*$/);
    expect(granted['TTL']).toBe('10');
    // lease_keepalive: call_rpc parses the whole chunked body with json.loads, then ['result']['TTL'].
    const answer = await call('POST', '/v3/lease/keepalive', { ID: granted['ID'] });
    expect(answer.status).toBe(200);
    const kept = json(answer);
    expect(field(kept, 'result', 'ID')).toBe(granted['ID']);
    expect(field(kept, 'result', 'TTL')).toBe('10');
  });

  it('keepalive of a lease that is gone answers 200 without a TTL, which tells Patroni to grant a new one', async () => {
    const kept = await rpc('/lease/keepalive', { ID: '7587' });
    expect(field(kept, 'result', 'ID')).toBe('7587');
    expect(field(kept, 'result', 'TTL')).toBeUndefined();
  });

  it('put with a lease that is gone answers 404 {"error": "etcdserver: requested lease not found", "code": 5}', async () => {
    const answer = await call('POST', '/v3/kv/put', { key: b64('/service/calls/members/gone'), value: b64('{}'), lease: '7587' });
    expect(answer.status).toBe(404);
    const error = json(answer);
    // _raise_for_data maps the error text first, then the code.
    expect(error['error']).toBe('etcdserver: requested lease not found');
    expect(error['code']).toBe(5);
  });
});

describe('keys', () => {
  const scope = '/service/calls/';

  it('put with a lease, then a serializable prefix range returns base64 keys and values with revisions and lease as strings', async () => {
    const lease = String((await rpc('/lease/grant', { TTL: 10 }))['ID']);
    const put = await rpc('/kv/put', { key: b64(`${scope}members/pg1`), value: b64('{"role":"replica"}'), lease });
    expect(revisionOf(put)).toBeGreaterThan(0);
    await rpc('/kv/put', { key: b64(`${scope}config`), value: b64('{"ttl":10}') });
    const range = await rpc('/kv/range', { key: b64(scope), range_end: prefixEnd(scope), serializable: true });
    const kvs = range['kvs'] as Array<Record<string, unknown>>;
    expect(kvs.map((kv) => unb64(kv['key']))).toEqual([`${scope}config`, `${scope}members/pg1`]);
    const pg1 = kvs[1]!;
    expect(unb64(pg1['value'])).toBe('{"role":"replica"}');
    expect(pg1['lease']).toBe(lease);
    expect(pg1['mod_revision']).toBe(String(revisionOf(put)));
    expect(kvs[0]!['lease']).toBeUndefined();
  });

  it('the initialize and leader txns (CREATE compare on create_revision 0) succeed once; the loser gets 200 without "succeeded"', async () => {
    const key = b64(`${scope}initialize`);
    const txn = { compare: [{ target: 'CREATE', create_revision: 0, key }], success: [{ request_put: { key, value: '' } }] };
    const won = await rpc('/kv/txn', txn);
    expect(won['succeeded']).toBe(true);
    expect(revisionOf(won)).toBeGreaterThan(0);
    const lost = await rpc('/kv/txn', txn);
    expect(lost['succeeded']).toBeUndefined();
    // An empty value is omitted from the kv, and Patroni reads it as ''.
    const range = await rpc('/kv/range', { key, serializable: true });
    expect((range['kvs'] as Array<Record<string, unknown>>)[0]?.['value']).toBeUndefined();
  });

  it('the leader-release txn (MOD compare on a string mod_revision, request_delete_range) deletes only at that revision', async () => {
    const key = b64(`${scope}leader`);
    const put = await rpc('/kv/put', { key, value: b64('pg1') });
    const stale = await rpc('/kv/txn', { compare: [{ target: 'MOD', mod_revision: String(revisionOf(put) - 1), key }], success: [{ request_delete_range: { key } }] });
    expect(stale['succeeded']).toBeUndefined();
    const released = await rpc('/kv/txn', { compare: [{ target: 'MOD', mod_revision: String(revisionOf(put)), key }], success: [{ request_delete_range: { key } }] });
    expect(released['succeeded']).toBe(true);
    expect(field((released['responses'] as unknown[])[0], 'response_delete_range', 'deleted')).toBe('1');
  });

  it('deleterange of a prefix (patronictl remove) answers the count deleted', async () => {
    const prefix = '/service/removed/';
    await rpc('/kv/put', { key: b64(`${prefix}a`), value: b64('1') });
    await rpc('/kv/put', { key: b64(`${prefix}b`), value: b64('2') });
    const deleted = await rpc('/kv/deleterange', { key: b64(prefix), range_end: prefixEnd(prefix) });
    expect(deleted['deleted']).toBe('2');
  });
});

describe('watch', () => {
  it('a prefix watch from a string start_revision answers chunked {"result": ...} objects: created, then history and live events, PUT and DELETE', async () => {
    const prefix = '/service/watched/';
    const first = await rpc('/kv/put', { key: b64(`${prefix}status`), value: b64('{"optime":1}') });
    // KVCache: range the prefix, then watch from that range's header revision (a string, as it came).
    const stream = await watch({ create_request: { key: b64(prefix), range_end: prefixEnd(prefix), start_revision: String(revisionOf(first)), filters: [] } });
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers['transfer-encoding']).toBe('chunked');
      await stream.next((m) => field(m, 'result', 'created') === true);
      const history = await stream.next((m) => Array.isArray(field(m, 'result', 'events')));
      const replayed = (field(history, 'result', 'events') as unknown[])[0];
      expect(unb64(field(replayed, 'kv', 'key'))).toBe(`${prefix}status`);
      expect(field(replayed, 'kv', 'mod_revision')).toBe(String(revisionOf(first)));

      // Live events arrive although the request body ended long ago.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const leader = await rpc('/kv/put', { key: b64(`${prefix}leader`), value: b64('pg2') });
      const put = await stream.next((m) => field(m, 'result', 'header', 'revision') === String(revisionOf(leader)));
      const putEvent = (field(put, 'result', 'events') as unknown[])[0];
      expect(field(putEvent, 'type')).toBeUndefined(); // PUT is the zero value: omitted
      expect(unb64(field(putEvent, 'kv', 'value'))).toBe('pg2');

      const removed = await rpc('/kv/deleterange', { key: b64(`${prefix}leader`) });
      const deleted = await stream.next((m) => field(m, 'result', 'header', 'revision') === String(revisionOf(removed)));
      const deleteEvent = (field(deleted, 'result', 'events') as unknown[])[0];
      expect(field(deleteEvent, 'type')).toBe('DELETE');
      expect(unb64(field(deleteEvent, 'kv', 'key'))).toBe(`${prefix}leader`);
      expect(field(deleteEvent, 'kv', 'mod_revision')).toBe(String(revisionOf(removed)));
    } finally {
      stream.close();
    }
  });
});

describe('authentication', () => {
  it('authenticate while auth is off answers code 9 "etcdserver: authentication is not enabled" (Patroni then goes on without a token)', async () => {
    // Patroni reads the text and the code, not the HTTP status, which differs between builds for
    // FailedPrecondition: Debian's etcd 3.4.23 answers 412, later grpc-gateway v1 releases 400.
    const answer = await call('POST', '/v3/auth/authenticate', { name: 'patroni', password: 'secret' });
    expect([400, 412]).toContain(answer.status);
    expect(json(answer)['error']).toBe('etcdserver: authentication is not enabled');
    expect(json(answer)['code']).toBe(9);
  });

  it('with auth on, the token from authenticate goes in a bare "authorization" header; no token or a stale one answer the errors Patroni re-authenticates on', async () => {
    const ctl = async (args: string[], user?: string): Promise<void> => {
      // bcrypt makes user and auth calls slow on a loaded machine: etcdctl's 5 s default is too tight.
      const globalFlags = ['--command-timeout=12s', ...(user === undefined ? [] : ['--user', user])];
      const result = await etcdctl(member.endpoint, args, { globalFlags, timeoutMs: 20_000 });
      if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${result.stderr}`);
    };
    await ctl(['user', 'add', 'root:rootpw']);
    await ctl(['user', 'add', 'patroni:secret']);
    await ctl(['role', 'add', 'patroni']);
    await ctl(['role', 'grant-permission', 'patroni', '--prefix=true', 'readwrite', '/service/']);
    await ctl(['user', 'grant-role', 'patroni', 'patroni']);
    await ctl(['auth', 'enable']);
    try {
      const token = await waitUntil('a token for patroni', async () => {
        const answer = await call('POST', '/v3/auth/authenticate', { name: 'patroni', password: 'secret' });
        return answer.status === 200 ? String(json(answer)['token']) : undefined;
      }, 5_000, 100);
      const scope = b64('/service/auth/');
      const range = await rpc('/kv/range', { key: scope, range_end: prefixEnd('/service/auth/'), serializable: true }, { authorization: token });
      expect(revisionOf(range)).toBeGreaterThan(0);

      // _handle_auth_errors: UserEmpty (no token) and InvalidAuthToken (stale token) make Patroni authenticate again.
      const anonymous = await call('POST', '/v3/kv/range', { key: scope, serializable: true });
      expect(anonymous.status).toBe(400);
      expect(json(anonymous)['error']).toBe('etcdserver: user name is empty');
      expect(json(anonymous)['code']).toBe(3);
      const stale = await call('POST', '/v3/kv/range', { key: scope, serializable: true }, { authorization: 'not-a-token.1' });
      expect(stale.status).toBe(401);
      expect(json(stale)['error']).toBe('etcdserver: invalid auth token');
      expect(json(stale)['code']).toBe(16);
      const wrongPassword = await call('POST', '/v3/auth/authenticate', { name: 'patroni', password: 'wrong' });
      expect(wrongPassword.status).toBe(400);
      expect(json(wrongPassword)['error']).toBe('etcdserver: authentication failed, invalid user ID or password');
    } finally {
      await ctl(['auth', 'disable'], 'root:rootpw');
    }
  });
});
