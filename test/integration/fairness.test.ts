// Goal: one client cannot starve the others (#18). A connection flooding the member with
// wrong-password logins gets its fair share of the password hashing and is refused past it with
// etcd's "etcdserver: too many requests"; another client's login and put, started during the
// flood, are answered while the flood is still being worked through. Checked by order (how many
// flood logins were answered before the other client's put), not by time.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGrpc } from '../../server/proto.js';
import { etcdctl, startMember, stopAllMembers, type Member } from '../helpers/gavel.js';

type ServiceTree = Record<string, Record<string, grpc.ServiceClientConstructor>>;
type Unary = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, value: Record<string, unknown>) => void) => void;

/** A client on a connection of its own (grpc-js would otherwise share one subchannel per target). */
function connect(endpoint: string, service: 'Auth' | 'KV'): grpc.Client {
  const ctor = (loadGrpc() as unknown as ServiceTree)['etcdserverpb']![service]!;
  return new ctor(endpoint, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function call(client: grpc.Client, method: string, request: object, token?: string): Promise<Record<string, unknown>> {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('token', token);
  const fn = (client as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) => fn.call(client, request, metadata, { deadline: Date.now() + 60_000 }, (error, value) => (error ? reject(error) : resolve(value))));
}

const FLOOD = 200;

describe('a login flood from one connection', () => {
  let member: Member;
  const clients: grpc.Client[] = [];

  beforeAll(async () => {
    member = await startMember({ name: 'fairness' });
    const ctl = async (args: string[], user?: string): Promise<void> => {
      const result = await etcdctl(member.endpoint, user === undefined ? args : ['--user', user, ...args]);
      if (result.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${result.stderr}`);
    };
    await ctl(['user', 'add', 'root:rootpw']);
    await ctl(['user', 'add', 'alice:alicepw']);
    await ctl(['auth', 'enable']);
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await stopAllMembers();
  });

  it("is refused past its share, and another client's login and put are answered during it", async () => {
    const flooder = connect(member.endpoint, 'Auth');
    const probeAuth = connect(member.endpoint, 'Auth');
    const probeKv = connect(member.endpoint, 'KV');
    clients.push(flooder, probeAuth, probeKv);
    // Connections up first, so the flood and the probe start together.
    await Promise.all([flooder, probeAuth, probeKv].map((client) => new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())))));

    let answered = 0;
    const refusals: string[] = [];
    const flood = Array.from({ length: FLOOD }, () =>
      call(flooder, 'authenticate', { name: 'alice', password: 'wrong' }).then(
        () => {
          throw new Error('a wrong password was accepted');
        },
        (error: grpc.ServiceError) => {
          if (error.code === grpc.status.RESOURCE_EXHAUSTED) refusals.push(error.details);
          else if (error.code === grpc.status.INVALID_ARGUMENT && error.details === 'etcdserver: authentication failed, invalid user ID or password') answered++;
          else throw error;
        },
      ),
    );

    const { token } = await call(probeAuth, 'authenticate', { name: 'root', password: 'rootpw' });
    await call(probeKv, 'put', { key: Buffer.from('probe'), value: Buffer.from('ok') }, token as string);
    const answeredBeforeProbe = answered;
    await Promise.all(flood);

    // The flood's share: the logins it may have running or waiting, checked fairly with the probe's.
    expect(answeredBeforeProbe).toBeLessThanOrEqual(8);
    expect(refusals.length).toBeGreaterThanOrEqual(FLOOD / 2);
    expect(new Set(refusals)).toEqual(new Set(['etcdserver: too many requests']));
    expect(answered + refusals.length).toBe(FLOOD);
  });
});
