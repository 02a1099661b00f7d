// Goal: as with etcd, each client URL serves gRPC and HTTP/1.1 on one port: three members started with etcd's flags only form a cluster on one host, curl reads /version, /health and /metrics from every client port, and etcdctl works with http:// and https:// endpoint URLs (endpoint status/hashkv/health, defrag, move-leader).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCD_BIN, etcdctl, freePort, removeTempDir, repoRoot, startMember, stopAllMembers, targetFromEnv, trackChildProcess, trackTempDir, waitUntil, type Member } from '../helpers/gavel.js';
import { asArray, asBigInt, asObject, parseJsonLossless } from '../helpers/json.js';
import { clientTlsFlags, makeTestCertificates, type TestCertificates } from '../helpers/tls.js';

const TARGET = targetFromEnv();
const CURL_TIMEOUT_MS = 10_000;
const FORM_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

interface CurlResult {
  readonly status: number;
  readonly body: string;
}

/** `curl -s` as an operator runs it; the status code is printed after the body. */
function curl(url: string, extra: readonly string[] = []): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-m', '5', '-w', '\n%{http_code}', ...extra, url], { timeout: CURL_TIMEOUT_MS }, (error, stdout) => {
      const cut = stdout.lastIndexOf('\n');
      const status = Number(stdout.slice(cut + 1));
      if (cut < 0 || !(status > 0)) {
        reject(new Error(`curl ${url} failed: ${error?.message ?? stdout}`));
        return;
      }
      resolve({ status, body: stdout.slice(0, cut) });
    });
  });
}

/** etcd's /version: the server's version and the cluster's (major.minor.0). */
function expectVersionShape(body: string): void {
  const version = JSON.parse(body) as { etcdserver?: unknown; etcdcluster?: unknown };
  expect(version.etcdserver).toMatch(/^3\.\d+\.\d+$/);
  const [major, minor] = String(version.etcdserver).split('.');
  expect(version.etcdcluster).toBe(`${major}.${minor}.0`);
}

interface PlainMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly child: ChildProcess;
  output: string;
}

/** One member with etcd's flags and nothing else: no metrics URL, no token, default timings. */
function spawnWithEtcdFlags(root: string, name: string, clientPort: number, peerPort: number, initialCluster: string): PlainMember {
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const flags = [
    '--name', name,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', initialCluster,
    '--data-dir', join(root, name),
  ];
  const [command, args] = TARGET === 'etcd' ? [ETCD_BIN, flags] : [process.execPath, [join(repoRoot(), 'dist', 'server', 'main.js'), ...flags]];
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: root });
  trackChildProcess(child);
  const member: PlainMember = { name, clientUrl, child, output: '' };
  const record = (chunk: Buffer): void => {
    member.output = (member.output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', record);
  child.stderr?.on('data', record);
  return member;
}

async function stopPlain(member: PlainMember): Promise<void> {
  if (member.child.exitCode !== null || member.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => member.child.once('exit', () => resolve()));
  member.child.kill('SIGTERM');
  const timer = setTimeout(() => member.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function statusEntries(stdout: string): { endpoint: string; memberId: bigint; leader: bigint }[] {
  return asArray(parseJsonLossless(stdout)).map((entry) => {
    const object = asObject(entry);
    const status = asObject(object['Status']);
    return { endpoint: String(object['Endpoint']), memberId: asBigInt(asObject(status['header'])['member_id']), leader: asBigInt(status['leader']) };
  });
}

describe("three members with etcd's flags only, on one host", () => {
  let root: string;
  const members: PlainMember[] = [];
  let endpoints: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), `gavel-client-port-${TARGET}-`));
    trackTempDir(root);
    const ports: number[] = [];
    while (ports.length < 6) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const names = ['p1', 'p2', 'p3'];
    const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
    names.forEach((name, i) => members.push(spawnWithEtcdFlags(root, name, ports[2 * i]!, ports[2 * i + 1]!, initialCluster)));
    endpoints = members.map((m) => m.clientUrl).join(',');
    // Formed: every member answers /health with 200 (a leader, and a linearizable read).
    for (const member of members) {
      await waitUntil(
        `${member.name} healthy on ${member.clientUrl}/health; output:\n${member.output}`,
        async () => (member.child.exitCode === null && (await curl(`${member.clientUrl}/health`).catch(() => undefined))?.status === 200 ? true : undefined),
        FORM_TIMEOUT_MS,
        200,
      );
    }
  }, FORM_TIMEOUT_MS * 4);

  afterAll(async () => {
    await Promise.all(members.map(stopPlain));
    if (root !== undefined) removeTempDir(root);
  });

  it('all three stay up (no port clash) and list each other', async () => {
    for (const member of members) expect(member.child.exitCode, member.output).toBeNull();
    const list = await etcdctl(members[0]!.clientUrl, ['member', 'list']);
    expect(list.code, list.stderr).toBe(0);
    for (const member of members) expect(list.stdout).toContain(`, started, ${member.name}, `);
  });

  it('answers curl on every client port: /version in etcd\'s shape, /health, /metrics', async () => {
    for (const member of members) {
      const version = await curl(`${member.clientUrl}/version`);
      expect(version.status).toBe(200);
      expectVersionShape(version.body);
      const health = await curl(`${member.clientUrl}/health`);
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toMatchObject({ health: 'true' });
      const metrics = await curl(`${member.clientUrl}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^etcd_server_has_leader 1$/m);
      expect((await curl(`${member.clientUrl}/no-such-path`)).status).toBe(404);
    }
  });

  it('etcdctl endpoint status, hashkv and health with http:// endpoints', async () => {
    const put = await etcdctl(endpoints, ['put', 'port/k', 'v']);
    expect(put.code, put.stderr).toBe(0);
    const status = await etcdctl(endpoints, ['endpoint', 'status', '-w', 'json']);
    expect(status.code, status.stderr).toBe(0);
    const entries = statusEntries(status.stdout);
    expect(entries.map((e) => e.endpoint).sort()).toEqual(members.map((m) => m.clientUrl).sort());
    expect(new Set(entries.map((e) => e.leader)).size).toBe(1);
    const hashkv = await etcdctl(endpoints, ['endpoint', 'hashkv']);
    expect(hashkv.code, hashkv.stderr).toBe(0);
    expect(hashkv.stdout.trim().split('\n')).toHaveLength(3);
    const health = await etcdctl(endpoints, ['endpoint', 'health']);
    expect(health.code, health.stderr).toBe(0);
    // etcdctl 3.4 prints health lines on stderr.
    expect(`${health.stdout}${health.stderr}`.match(/is healthy/g)).toHaveLength(3);
  });

  it('etcdctl defrag and move-leader with http:// endpoints', async () => {
    const defrag = await etcdctl(endpoints, ['defrag']);
    expect(defrag.code, defrag.stderr).toBe(0);
    expect(defrag.stdout.match(/Finished defragmenting etcd member/g)).toHaveLength(3);
    const before = statusEntries((await etcdctl(endpoints, ['endpoint', 'status', '-w', 'json'])).stdout);
    const leader = before.find((e) => e.memberId === e.leader);
    const follower = before.find((e) => e.memberId !== e.leader);
    expect(leader).toBeDefined();
    expect(follower).toBeDefined();
    const move = await etcdctl(leader!.endpoint, ['move-leader', follower!.memberId.toString(16)]);
    expect(move.code, move.stderr).toBe(0);
    expect(move.stdout).toContain('Leadership transferred');
    await waitUntil('the new leader reported by every member', async () => {
      const after = statusEntries((await etcdctl(endpoints, ['endpoint', 'status', '-w', 'json'])).stdout);
      return after.every((e) => e.leader === follower!.memberId) ? true : undefined;
    }, 10_000, 200);
  });
});

describe('https:// client URL with --cert-file and --key-file', () => {
  let certs: TestCertificates;
  let member: Member;

  beforeAll(async () => {
    certs = makeTestCertificates();
    member = await startMember({ name: 'port-tls', clientScheme: 'https', args: ['--cert-file', certs.server.cert, '--key-file', certs.server.key] });
  });
  afterAll(async () => {
    await stopAllMembers();
    certs?.dispose();
  });

  it('etcdctl --cacert with an https:// endpoint: put, get, endpoint status/hashkv/health, defrag', async () => {
    const ctl = (args: string[]) => etcdctl(member.clientUrl, ['--cacert', certs.ca, ...args]);
    expect((await ctl(['put', 'tls/k', 'v'])).stdout).toBe('OK\n');
    expect((await ctl(['get', 'tls/k', '--print-value-only'])).stdout).toBe('v\n');
    for (const args of [['endpoint', 'status'], ['endpoint', 'hashkv'], ['endpoint', 'health'], ['defrag']]) {
      const result = await ctl(args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(`${result.stdout}${result.stderr}`).toContain(member.clientUrl);
    }
  });

  it('answers curl --cacert on the same port: /version, /health, /metrics', async () => {
    const version = await curl(`${member.clientUrl}/version`, ['--cacert', certs.ca]);
    expect(version.status).toBe(200);
    expectVersionShape(version.body);
    const health = await curl(`${member.clientUrl}/health`, ['--cacert', certs.ca]);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ health: 'true' });
    expect((await curl(`${member.clientUrl}/metrics`, ['--cacert', certs.ca])).body).toMatch(/^etcd_server_has_leader 1$/m);
    // Without the CA, curl refuses the certificate: nothing is served in the clear by mistake.
    await expect(curl(`${member.clientUrl}/health`)).rejects.toThrow();
  });
});

describe('https:// client URL with --client-cert-auth and auth enabled: the certificate common name is the user', () => {
  let certs: TestCertificates;
  let member: Member;

  beforeAll(async () => {
    certs = makeTestCertificates();
    member = await startMember({ name: 'port-cn', clientScheme: 'https', args: clientTlsFlags(certs.server, certs.ca) });
  });
  afterAll(async () => {
    await stopAllMembers();
    certs?.dispose();
  });

  it('CN=root may run the admin commands (hashkv, defrag) with an https:// endpoint URL, without --user', async () => {
    const withCert = (args: string[]) => etcdctl(member.clientUrl, ['--cacert', certs.ca, '--cert', certs.client.cert, '--key', certs.client.key, ...args]);
    expect((await withCert(['user', 'add', 'root:rootpw'])).code).toBe(0);
    expect((await withCert(['auth', 'enable'])).code).toBe(0);
    // Admin-only calls on a connection per endpoint URL: the common name must reach the auth
    // code through the client port's TLS (grpc-js is handed the TLSSocket itself).
    for (const args of [['endpoint', 'hashkv'], ['defrag'], ['endpoint', 'status']]) {
      const result = await withCert(args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    const put = await withCert(['put', 'cn/k', 'v']);
    expect(put.stdout, put.stderr).toBe('OK\n');
  });
});
