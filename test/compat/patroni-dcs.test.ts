/**
 * Patroni's own etcd3 client (Debian's patroni 3.0, run by /usr/bin/python3) drives the JSON
 * gateway as a Patroni member does in its first loops: /version, range with serializable, put,
 * txn on create/mod revision, lease grant and keep-alive, the long-lived watch behind its cache,
 * deleterange. Runs against etcd 3.4 too (GAVEL_TARGET=etcd); skipped where Patroni is missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayEndpoint, type GatewayEndpoint } from '../helpers/gateway.js';
import { repoRoot, stopAllMembers } from '../helpers/gavel.js';

const PYTHON = '/usr/bin/python3';
const hasPatroni = spawnSync(PYTHON, ['-c', 'import patroni.dcs.etcd3'], { timeout: 20_000 }).status === 0;

let gw: GatewayEndpoint;

beforeAll(async () => {
  if (hasPatroni) gw = await startGatewayEndpoint('gw-patroni');
});

afterAll(async () => {
  await gw?.close();
  await stopAllMembers();
});

describe.skipIf(!hasPatroni)("Patroni's etcd3 DCS over the JSON gateway", () => {
  it('initializes, registers, takes and refreshes the leader key, sees config through its watch, and lets go', async () => {
    const script = join(repoRoot(), 'test', 'compat', 'patroni-dcs.py');
    const host = gw.url.replace('http://', '');
    // Asynchronously: the gavel member answering it runs in this process.
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(PYTHON, [script, host], { timeout: 60_000 });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual([
      'prefix /v3',
      'initialize True',
      'touch_member True',
      'acquire True',
      'acquire again None',
      "cluster pg1 ['pg1'] 6800000000000000001",
      'update_leader True',
      'set_config True',
      "config {'ttl': 30, 'loop_wait': 10}",
      'delete_leader True',
      'leader after delete True',
      'delete_cluster True',
    ]);
    expect(run.code).toBe(0);
  });
});
