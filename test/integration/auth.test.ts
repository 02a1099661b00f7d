// Goal: etcd's authentication and role-based access work as in etcd 3.4, through etcdctl and raw gRPC: users, roles and key-range permissions are enforced on KV, Watch, Lease, Lock and Election, errors carry etcd's codes and texts, and the auth state is replicated and survives restarts.
//
// Meant to run unchanged against a real etcd 3.4 (GAVEL_TARGET=etcd) to check the expectations
// themselves; the few places where gavel deliberately differs are gavel-only (see README, Security).
import * as grpc from '@grpc/grpc-js';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGrpc } from '../../server/proto.js';
import { etcdctl, spawnEtcdctl, startMember, stopAllMembers, targetFromEnv, waitUntil, type EtcdctlResult, type Member } from '../helpers/gavel.js';
import { startCluster, stopAllClusters, type Cluster, type ClusterMember } from '../helpers/cluster.js';
import { clientTlsFlags, makeTestCertificates, type TestCertificates } from '../helpers/tls.js';
import { prefixEnd } from '../helpers/grpc.js';

const target = targetFromEnv();
const gavelOnly = target === 'gavel' ? it : it.skip;
const Status = grpc.status;

afterAll(async () => {
  await stopAllClusters();
  await stopAllMembers();
});

// ---- raw gRPC, with a token in the `token` metadata as etcd clients send it ----

type Reply = { ok: true; value: Record<string, unknown> } | { ok: false; code: number; details: string };
type ServiceTree = Record<string, Record<string, grpc.ServiceClientConstructor>>;

class Rpc {
  private readonly clients = new Map<string, grpc.Client>();
  constructor(private readonly endpoint: string) {}

  private client(path: string): grpc.Client {
    let client = this.clients.get(path);
    if (client === undefined) {
      const [pkg = '', service = ''] = path.split('.');
      const ctor = (loadGrpc() as unknown as ServiceTree)[pkg]?.[service];
      if (ctor === undefined) throw new Error(`no service ${path}`);
      client = new ctor(this.endpoint, grpc.credentials.createInsecure());
      this.clients.set(path, client);
    }
    return client;
  }

  call(path: string, method: string, request: object, token?: string, timeoutMs = 10_000): Promise<Reply> {
    const client = this.client(path);
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('token', token);
    return new Promise((resolve) => {
      const fn = (client as unknown as Record<string, (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: unknown) => void) => void>)[method];
      if (fn === undefined) throw new Error(`no method ${path}.${method}`);
      fn.call(client, request, metadata, { deadline: Date.now() + timeoutMs }, (error, value) =>
        resolve(error ? { ok: false, code: error.code, details: error.details } : { ok: true, value: value as Record<string, unknown> }),
      );
    });
  }

  async ok(path: string, method: string, request: object, token?: string): Promise<Record<string, unknown>> {
    const reply = await this.call(path, method, request, token);
    if (!reply.ok) throw new Error(`${path}.${method} failed: ${reply.code} ${reply.details}`);
    return reply.value;
  }

  async token(name: string, password: string): Promise<string> {
    const token = (await this.ok('etcdserverpb.Auth', 'Authenticate', { name, password }))['token'];
    if (typeof token !== 'string' || token === '') throw new Error('no token');
    return token;
  }

  /** The first response of a Watch stream that creates a watcher on `key`. */
  firstWatchResponse(key: string, token?: string): Promise<Record<string, unknown>> {
    const metadata = new grpc.Metadata();
    if (token !== undefined) metadata.set('token', token);
    const stream = (this.client('etcdserverpb.Watch') as unknown as { Watch(m: grpc.Metadata): grpc.ClientDuplexStream<object, Record<string, unknown>> }).Watch(metadata);
    return new Promise((resolve, reject) => {
      stream.on('error', (error: grpc.ServiceError) => {
        if (error.code !== Status.CANCELLED) reject(error);
      });
      stream.once('data', (response: Record<string, unknown>) => {
        resolve(response);
        stream.cancel();
      });
      stream.write({ create_request: { key: Buffer.from(key) } });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
  }
}

function failure(reply: Reply): { code: number; details: string } {
  if (reply.ok) throw new Error(`expected a failure, got ${JSON.stringify(reply.value)}`);
  return { code: reply.code, details: reply.details };
}

// ---- etcdctl ----

function describeRun(args: readonly string[], result: EtcdctlResult): string {
  return `etcdctl ${args.join(' ')} -> code=${result.code} timedOut=${result.timedOut}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

/** etcdctl's last line on stderr ("Error: ..."), without clientv3's retry warnings. */
function errorLine(result: EtcdctlResult): string {
  return result.stderr.split('\n').filter((line) => line.startsWith('Error:')).join('\n');
}

function ctlOn(endpoint: () => string, globalFlags: readonly string[] = []): { ctl: (args: readonly string[], user?: string) => Promise<string>; fails: (args: readonly string[], user?: string) => Promise<string> } {
  const run = (args: readonly string[], user?: string): Promise<EtcdctlResult> =>
    etcdctl(endpoint(), [...(user === undefined ? [] : ['--user', user]), ...args], { globalFlags });
  return {
    async ctl(args, user) {
      const result = await run(args, user);
      if (result.code !== 0) throw new Error(describeRun(args, result));
      return result.stdout;
    },
    async fails(args, user) {
      const result = await run(args, user);
      if (result.code === 0 || result.timedOut) throw new Error(`expected failure: ${describeRun(args, result)}`);
      return errorLine(result);
    },
  };
}

const ROOT = 'root:rootpw';
const READER = 'reader:readerpw';
const LOCKER = 'locker:lockerpw';

describe('one member: etcdctl sets auth up, and permissions hold', () => {
  let member: Member;
  let rpc: Rpc;
  const { ctl, fails } = ctlOn(() => member.endpoint);

  beforeAll(async () => {
    member = await startMember({ name: 'auth' });
    rpc = new Rpc(member.endpoint);
  });
  afterAll(() => rpc?.close());

  it('user add, role add, role grant-permission --prefix, user grant-role and auth enable work; enable needs root first', async () => {
    expect(await fails(['auth', 'enable'])).toBe('Error: etcdserver: root user does not exist');
    expect(await ctl(['user', 'add', ROOT])).toBe('User root created\n');
    expect(await ctl(['role', 'add', 'reader'])).toBe('Role reader created\n');
    expect(await ctl(['role', 'grant-permission', 'reader', 'read', '/a/', '--prefix'])).toBe('Role reader updated\n');
    expect(await ctl(['user', 'add', READER])).toBe('User reader created\n');
    expect(await ctl(['user', 'grant-role', 'reader', 'reader'])).toBe('Role reader is granted to user reader\n');
    expect(await ctl(['role', 'add', 'locker'])).toBe('Role locker created\n');
    expect(await ctl(['role', 'grant-permission', 'locker', 'readwrite', '/locks/', '--prefix'])).toBe('Role locker updated\n');
    expect(await ctl(['user', 'add', LOCKER])).toBe('User locker created\n');
    expect(await ctl(['user', 'grant-role', 'locker', 'locker'])).toBe('Role locker is granted to user locker\n');
    // etcdctl answers "root user does not have root role" by adding the root role and granting it.
    expect(await ctl(['auth', 'enable'])).toBe('Authentication Enabled\n');
    expect(await ctl(['user', 'get', 'root'], ROOT)).toBe('User: root\nRoles: root\n');
    expect(await ctl(['role', 'get', 'reader'], ROOT)).toBe('Role reader\nKV Read:\n\t[/a/, /a0) (prefix /a/)\nKV Write:\n');
    expect(await ctl(['user', 'list'], ROOT)).toBe('locker\nreader\nroot\n');
    expect(await ctl(['role', 'list'], ROOT)).toBe('locker\nreader\nroot\n');
  });

  it('a user with READ on /a/ reads /a/x, and cannot write /a/x nor read /b/x', async () => {
    expect(await ctl(['put', '/a/x', 'ax'], ROOT)).toBe('OK\n');
    expect(await ctl(['put', '/b/x', 'bx'], ROOT)).toBe('OK\n');
    expect(await ctl(['get', '/a/x'], READER)).toBe('/a/x\nax\n');
    expect(await ctl(['get', '/a/', '--prefix', '--keys-only'], READER)).toBe('/a/x\n\n');
    expect(await fails(['put', '/a/x', 'nope'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await fails(['get', '/b/x'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await fails(['get', '/a', '--prefix'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await fails(['del', '/a/x'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await fails(['user', 'list'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await ctl(['user', 'get', 'reader'], READER)).toBe('User: reader\nRoles: reader\n');
    expect(await ctl(['get', '/a/x', '--print-value-only'], ROOT)).toBe('ax\n');
  });

  it('refuses a wrong password, an unknown user, and requests without credentials', async () => {
    expect(await fails(['get', '/a/x'], 'reader:wrong')).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    expect(await fails(['get', '/a/x'], 'nobody:pw')).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    expect(await fails(['get', '/a/x'])).toBe('Error: etcdserver: user name is empty');
    expect(await fails(['put', '/a/x', 'anon'])).toBe('Error: etcdserver: user name is empty');
  });

  it("answers raw gRPC with etcd's status codes and texts", async () => {
    const root = await rpc.token('root', 'rootpw');
    const reader = await rpc.token('reader', 'readerpw');
    const kv = 'etcdserverpb.KV';
    const auth = 'etcdserverpb.Auth';
    expect(failure(await rpc.call(auth, 'Authenticate', { name: 'reader', password: 'x' }))).toEqual({ code: Status.INVALID_ARGUMENT, details: 'etcdserver: authentication failed, invalid user ID or password' });
    expect(failure(await rpc.call(kv, 'Range', { key: Buffer.from('/a/x') }))).toEqual({ code: Status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' });
    expect(failure(await rpc.call(kv, 'Range', { key: Buffer.from('/a/x') }, 'bogus.1'))).toEqual({ code: Status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    expect(failure(await rpc.call(kv, 'Put', { key: Buffer.from('/a/x'), value: Buffer.from('v') }, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call(auth, 'UserAdd', { name: 'reader', password: 'p' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: user name already exists' });
    expect(failure(await rpc.call(auth, 'RoleAdd', { name: 'reader' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: role name already exists' });
    expect(failure(await rpc.call(auth, 'UserGet', { name: 'ghost' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: user name not found' });
    expect(failure(await rpc.call(auth, 'RoleGet', { role: 'ghost' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: role name not found' });
    expect(failure(await rpc.call(auth, 'UserGrantRole', { user: 'reader', role: 'ghost' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: role name not found' });
    expect(failure(await rpc.call(auth, 'UserRevokeRole', { name: 'reader', role: 'locker' }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: role is not granted to the user' });
    expect(failure(await rpc.call(auth, 'RoleRevokePermission', { role: 'reader', key: Buffer.from('/zz') }, root))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: permission is not granted to the role' });
    expect(failure(await rpc.call(auth, 'UserDelete', { name: 'root' }, root))).toEqual({ code: Status.INVALID_ARGUMENT, details: 'etcdserver: invalid auth management' });
    expect(failure(await rpc.call(auth, 'UserList', {}, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call(auth, 'UserGet', { name: 'root' }, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call('etcdserverpb.Cluster', 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'] }, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    // Compare and both branches are checked, whatever the compare decides.
    const put = (key: string): object => ({ request_put: { key: Buffer.from(key), value: Buffer.from('v') } });
    expect(failure(await rpc.call(kv, 'Txn', { compare: [], success: [], failure: [put('/b/z')] }, reader)).code).toBe(Status.PERMISSION_DENIED);
    const compare = { key: Buffer.from('/b/x'), target: 0, result: 0, version: 0 };
    expect(failure(await rpc.call(kv, 'Txn', { compare: [compare], success: [] }, reader)).code).toBe(Status.PERMISSION_DENIED);
    // Status and MemberList are anyone's.
    expect((await rpc.ok('etcdserverpb.Maintenance', 'Status', {}, reader))['version']).toBeTruthy();
  });

  gavelOnly('checks nested txns (etcd 3.4.23 lets them through), and answers hashes with PermissionDenied (3.4: Unknown "auth: permission denied")', async () => {
    const reader = await rpc.token('reader', 'readerpw');
    const nested = { request_txn: { success: [{ request_put: { key: Buffer.from('/b/nested'), value: Buffer.from('v') } }] } };
    expect(failure(await rpc.call('etcdserverpb.KV', 'Txn', { success: [nested] }, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(await ctl(['get', '/b/nested'], ROOT)).toBe('');
    expect(failure(await rpc.call('etcdserverpb.Maintenance', 'HashKV', {}, reader))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call('etcdserverpb.Maintenance', 'Defragment', {}))).toEqual({ code: Status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' });
  });

  gavelOnly('AuthStatus (etcd 3.5) reports enabled and a rising auth revision', async () => {
    const before = await rpc.ok('etcdserverpb.Auth', 'AuthStatus', {});
    expect(before['enabled']).toBe(true);
    await ctl(['role', 'add', 'status-probe'], ROOT);
    const after = await rpc.ok('etcdserverpb.Auth', 'AuthStatus', {});
    expect(BigInt(after['authRevision'] as string)).toBeGreaterThan(BigInt(before['authRevision'] as string));
  });

  it('refuses a watch on a range the user may not read, with the reason in cancel_reason', async () => {
    const reader = await rpc.token('reader', 'readerpw');
    const denied = await rpc.firstWatchResponse('/b/x', reader);
    expect(denied).toMatchObject({ created: true, canceled: true, watch_id: '-1', cancel_reason: 'rpc error: code = PermissionDenied desc = etcdserver: permission denied' });
    const anonymous = await rpc.firstWatchResponse('/a/x');
    expect(anonymous).toMatchObject({ canceled: true, cancel_reason: 'rpc error: code = InvalidArgument desc = etcdserver: user name is empty' });
    const allowed = await rpc.firstWatchResponse('/a/x', reader);
    expect(allowed).toMatchObject({ created: true, canceled: false });
  });

  it('a lease with keys the user may not write cannot be revoked, nor attached to, by that user', async () => {
    const root = await rpc.token('root', 'rootpw');
    const locker = await rpc.token('locker', 'lockerpw');
    const lease = (await rpc.ok('etcdserverpb.Lease', 'LeaseGrant', { TTL: 60 }, locker))['ID'] as string;
    await rpc.ok('etcdserverpb.KV', 'Put', { key: Buffer.from('/b/leased'), value: Buffer.from('v'), lease }, root);
    expect(failure(await rpc.call('etcdserverpb.Lease', 'LeaseRevoke', { ID: lease }, locker))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call('etcdserverpb.KV', 'Put', { key: Buffer.from('/locks/mine'), value: Buffer.from('v'), lease }, locker))).toEqual({ code: Status.PERMISSION_DENIED, details: 'etcdserver: permission denied' });
    await rpc.ok('etcdserverpb.Lease', 'LeaseRevoke', { ID: lease }, root);
    expect(await ctl(['get', '/b/leased'], ROOT)).toBe('');
  });

  gavelOnly('LeaseTimeToLive needs READ on the attached keys (as etcd 3.4.26; 3.4.23 shows them to anyone)', async () => {
    const root = await rpc.token('root', 'rootpw');
    const reader = await rpc.token('reader', 'readerpw');
    const lease = (await rpc.ok('etcdserverpb.Lease', 'LeaseGrant', { TTL: 60 }, root))['ID'] as string;
    await rpc.ok('etcdserverpb.KV', 'Put', { key: Buffer.from('/b/secret-name'), value: Buffer.from('v'), lease }, root);
    expect(failure(await rpc.call('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: lease, keys: true }, reader)).code).toBe(Status.PERMISSION_DENIED);
    expect((await rpc.ok('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: lease, keys: true }, root))['keys']).toEqual([Buffer.from('/b/secret-name')]);
    await rpc.ok('etcdserverpb.Lease', 'LeaseRevoke', { ID: lease }, root);
  });

  it('locks: a user with READWRITE on /locks/ locks with etcdctl and over v3lock with a token; others are refused', async () => {
    expect(await ctl(['lock', '/locks/x', '--', 'echo', 'ok'], LOCKER)).toBe('ok\n');
    expect(await fails(['lock', '/locks/x', '--', 'echo', 'ok'], READER)).toBe('Error: etcdserver: permission denied');
    const locker = await rpc.token('locker', 'lockerpw');
    const reader = await rpc.token('reader', 'readerpw');
    const lease = (await rpc.ok('etcdserverpb.Lease', 'LeaseGrant', { TTL: 30 }, locker))['ID'] as string;
    const granted = await rpc.ok('v3lockpb.Lock', 'Lock', { name: Buffer.from('/locks/grpc'), lease }, locker);
    expect((granted['key'] as Buffer).toString()).toBe(`/locks/grpc/${BigInt(lease).toString(16)}`);
    await rpc.ok('v3lockpb.Lock', 'Unlock', { key: granted['key'] }, locker);
    // etcd 3.4's v3lock answers with status Unknown and the KV error's text.
    expect(failure(await rpc.call('v3lockpb.Lock', 'Lock', { name: Buffer.from('/locks/grpc'), lease }, reader))).toEqual({ code: Status.UNKNOWN, details: 'etcdserver: permission denied' });
    expect(failure(await rpc.call('v3lockpb.Lock', 'Lock', { name: Buffer.from('/locks/grpc'), lease }))).toEqual({ code: Status.UNKNOWN, details: 'etcdserver: user name is empty' });
    expect(failure(await rpc.call('v3lockpb.Lock', 'Lock', { name: Buffer.from('/b/lock'), lease }, locker))).toEqual({ code: Status.UNKNOWN, details: 'etcdserver: permission denied' });
    await rpc.ok('etcdserverpb.Lease', 'LeaseRevoke', { ID: lease }, locker);
  });

  it('elections: a permitted user campaigns with etcdctl and over v3election; others are refused', async () => {
    const elect = spawnEtcdctl(member.endpoint, ['--user', LOCKER, 'elect', '/locks/election', 'candidate-1']);
    try {
      await elect.waitFor((out) => out.includes('candidate-1'), 10_000);
      expect(elect.stdout()).toMatch(/^\/locks\/election\/[0-9a-f]+\ncandidate-1\n$/);
    } finally {
      await elect.stop();
    }
    expect(await fails(['elect', '/locks/election', 'intruder'], READER)).toBe('Error: etcdserver: permission denied');
    const locker = await rpc.token('locker', 'lockerpw');
    const reader = await rpc.token('reader', 'readerpw');
    const lease = (await rpc.ok('etcdserverpb.Lease', 'LeaseGrant', { TTL: 30 }, locker))['ID'] as string;
    const campaign = await rpc.ok('v3electionpb.Election', 'Campaign', { name: Buffer.from('/locks/grpc-election'), lease, value: Buffer.from('me') }, locker);
    const leader = campaign['leader'] as { key: Buffer };
    expect(leader.key.toString()).toBe(`/locks/grpc-election/${BigInt(lease).toString(16)}`);
    const seen = await rpc.ok('v3electionpb.Election', 'Leader', { name: Buffer.from('/locks/grpc-election') }, locker);
    expect((seen['kv'] as { value: Buffer }).value.toString()).toBe('me');
    expect(failure(await rpc.call('v3electionpb.Election', 'Leader', { name: Buffer.from('/locks/grpc-election') }, reader))).toEqual({ code: Status.UNKNOWN, details: 'etcdserver: permission denied' });
    await rpc.ok('v3electionpb.Election', 'Resign', { leader }, locker);
    await rpc.ok('etcdserverpb.Lease', 'LeaseRevoke', { ID: lease }, locker);
  });

  it('keeps users, roles, permissions and "enabled" across a restart', async () => {
    await member.restart();
    expect(await fails(['get', '/a/x'])).toBe('Error: etcdserver: user name is empty');
    expect(await ctl(['get', '/a/x', '--print-value-only'], READER)).toBe('ax\n');
    expect(await fails(['get', '/b/x'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await fails(['get', '/a/x'], 'reader:wrong')).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    expect(await ctl(['user', 'list'], ROOT)).toBe('locker\nreader\nroot\n');
  });

  gavelOnly('writes no password and no token in clear to the data dir (Raft log, state, snapshots)', async () => {
    const token = await rpc.token('reader', 'readerpw');
    await ctl(['put', '/b/flush', 'x'], ROOT); // one more entry after the login
    const prefix = token.slice(0, token.lastIndexOf('.'));
    const secrets = ['rootpw', 'readerpw', 'lockerpw', prefix].map((secret) => Buffer.from(secret));
    const files = readdirSync(member.dataDir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const bytes = readFileSync(join(file.parentPath, file.name));
      for (const secret of secrets) expect(bytes.includes(secret), `${file.name} holds ${secret.toString()}`).toBe(false);
    }
  });

  it('a password change or a user deletion ends that user\'s tokens', async () => {
    const before = await rpc.token('locker', 'lockerpw');
    await rpc.ok('etcdserverpb.KV', 'Range', { key: Buffer.from('/locks/a') }, before);
    await rpc.ok('etcdserverpb.Auth', 'UserChangePassword', { name: 'locker', password: 'newpw' }, await rpc.token('root', 'rootpw'));
    expect(failure(await rpc.call('etcdserverpb.KV', 'Range', { key: Buffer.from('/locks/a') }, before))).toEqual({ code: Status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    expect(await fails(['get', '/locks/a'], LOCKER)).toBe('Error: etcdserver: authentication failed, invalid user ID or password');
    expect(await ctl(['get', '/locks/a'], 'locker:newpw')).toBe('');
    await ctl(['user', 'add', 'temp:temppw'], ROOT);
    await ctl(['user', 'grant-role', 'temp', 'reader'], ROOT);
    const temp = await rpc.token('temp', 'temppw');
    await rpc.ok('etcdserverpb.KV', 'Range', { key: Buffer.from('/a/x') }, temp);
    expect(await ctl(['user', 'delete', 'temp'], ROOT)).toBe('User temp deleted\n');
    expect(failure(await rpc.call('etcdserverpb.KV', 'Range', { key: Buffer.from('/a/x') }, temp))).toEqual({ code: Status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
  });

  it('root disables auth; then requests need no credentials, and etcdctl --user still works', async () => {
    expect(await fails(['auth', 'disable'], READER)).toBe('Error: etcdserver: permission denied');
    expect(await ctl(['auth', 'disable'], ROOT)).toBe('Authentication Disabled\n');
    expect(await ctl(['put', '/b/open', 'yes'])).toBe('OK\n');
    expect(await ctl(['get', '/b/open', '--print-value-only'], READER)).toBe('yes\n');
    expect(failure(await rpc.call('etcdserverpb.Auth', 'Authenticate', { name: 'root', password: 'rootpw' }))).toEqual({ code: Status.FAILED_PRECONDITION, details: 'etcdserver: authentication is not enabled' });
  });
});

describe('a 3-member cluster', () => {
  let cluster: Cluster;
  let members: ClusterMember[];

  beforeAll(async () => {
    cluster = await startCluster({ members: 3 });
    members = [...cluster.members];
  });

  const via = (index: number): ClusterMember => {
    const member = members[index];
    if (member === undefined) throw new Error(`no member ${index}`);
    return member;
  };

  it('a user added through one member logs in on another; a token from one member works on all', async () => {
    await cluster.ctl(['user', 'add', ROOT], { via: via(0) });
    await cluster.ctl(['auth', 'enable'], { via: via(0) });
    await cluster.ctl(['--user', ROOT, 'user', 'add', 'worker:workerpw'], { via: via(1) });
    await cluster.ctl(['--user', ROOT, 'role', 'add', 'worker'], { via: via(1) });
    await cluster.ctl(['--user', ROOT, 'role', 'grant-permission', 'worker', 'readwrite', 'jobs/', '--prefix'], { via: via(1) });
    await cluster.ctl(['--user', ROOT, 'user', 'grant-role', 'worker', 'worker'], { via: via(1) });
    expect(await cluster.ctl(['--user', 'worker:workerpw', 'put', 'jobs/1', 'queued'], { via: via(2) })).toBe('OK\n');
    expect(await cluster.ctl(['--user', 'worker:workerpw', 'get', 'jobs/1', '--print-value-only'], { via: via(0) })).toBe('queued\n');
    const denied = await cluster.etcdctl(['--user', 'worker:workerpw', 'put', 'other', 'x'], { via: via(2) });
    expect(errorLine(denied)).toBe('Error: etcdserver: permission denied');
    // All endpoints at once: etcdctl authenticates once and spreads its calls over the members.
    for (let i = 0; i < 3; i++) expect(await cluster.ctl(['--user', 'worker:workerpw', 'put', `jobs/all-${i}`, 'x'])).toBe('OK\n');

    const rpcs = members.map((m) => new Rpc(m.endpoint));
    try {
      const token = await (rpcs[0] as Rpc).token('worker', 'workerpw');
      // Used at once on the others, which may not have applied the login yet.
      for (const rpc of rpcs.slice(1)) {
        const got = await rpc.ok('etcdserverpb.KV', 'Range', { key: Buffer.from('jobs/'), range_end: prefixEnd('jobs/'), count_only: true }, token);
        expect(Number(got['count'])).toBeGreaterThanOrEqual(4);
      }
    } finally {
      for (const rpc of rpcs) rpc.close();
    }
  });

  it('a member restarted after auth changes has them all', async () => {
    const leader = await cluster.waitForLeader();
    const restarted = members.find((m) => m !== leader) ?? via(2);
    await cluster.kill(restarted);
    await cluster.ctl(['--user', ROOT, 'user', 'add', 'late:latepw'], { via: leader });
    await cluster.ctl(['--user', ROOT, 'role', 'revoke-permission', 'worker', 'jobs/', '--prefix'], { via: leader });
    await cluster.restart(restarted);
    await waitUntil('the restarted member to know the new user', async () => {
      const result = await cluster.etcdctl(['--user', 'late:latepw', 'user', 'get', 'late'], { via: restarted });
      return result.code === 0 ? true : undefined;
    }, 20_000, 200);
    const denied = await cluster.etcdctl(['--user', 'worker:workerpw', 'get', 'jobs/1'], { via: restarted });
    expect(errorLine(denied)).toBe('Error: etcdserver: permission denied');
  });
});

describe('with --client-cert-auth, the certificate common name is the user', () => {
  let certs: TestCertificates;
  let member: Member;

  beforeAll(async () => {
    certs = makeTestCertificates();
    member = await startMember({ name: 'auth-tls', clientScheme: 'https', args: clientTlsFlags(certs.server, certs.ca) });
  });
  afterAll(async () => {
    await member?.dispose();
    certs?.dispose();
  });

  it('CN=root acts as root without a password; a token, when given, wins over the certificate', async () => {
    const { ctl, fails } = ctlOn(() => member.clientUrl, ['--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key]);
    await ctl(['user', 'add', ROOT]);
    await ctl(['user', 'add', 'plain:plainpw']);
    await ctl(['auth', 'enable']);
    // No --user: the certificate's CN (root) is the user.
    expect(await ctl(['user', 'list'])).toBe('plain\nroot\n');
    expect(await ctl(['put', 'k', 'v'])).toBe('OK\n');
    // --user logs in: the token's user counts, not the certificate's.
    expect(await fails(['user', 'list'], 'plain:plainpw')).toBe('Error: etcdserver: permission denied');
    expect(await fails(['get', 'k'], 'plain:plainpw')).toBe('Error: etcdserver: permission denied');
  });
});

describe('--auth-token-ttl', () => {
  it('a token unused for longer than the TTL is refused as an invalid auth token', async () => {
    const member = await startMember({ name: 'auth-ttl', args: ['--auth-token-ttl', '1'] });
    const rpc = new Rpc(member.endpoint);
    try {
      await etcdctl(member.endpoint, ['user', 'add', ROOT]);
      await etcdctl(member.endpoint, ['auth', 'enable']);
      const token = await rpc.token('root', 'rootpw');
      await rpc.ok('etcdserverpb.KV', 'Range', { key: Buffer.from('k') }, token);
      // Every use renews the token, so stay away for longer than the TTL (etcd checks once a second).
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(failure(await rpc.call('etcdserverpb.KV', 'Range', { key: Buffer.from('k') }, token))).toEqual({ code: Status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    } finally {
      rpc.close();
      await member.dispose();
    }
  });
});
