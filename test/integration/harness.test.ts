// Goal: the process harness itself keeps its promises — ready-line parsing, restart on the same data dir and port, bounded waits with the stderr tail, SIGKILL escalation, no leftovers — using a stand-in gavel so it runs before the real server exists.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdctl, freePort, startMember, stopAllMembers, type StartOptions } from '../helpers/gavel.js';
import { asBigInt, asObject, parseJsonLines, parseJsonLossless } from '../helpers/json.js';

/** A stand-in for dist/server/main.js that follows the process contract (and can break it on request). */
const FAKE_MAIN = `
import net from 'node:net';
import fs from 'node:fs';
const args = process.argv.slice(2);
const flag = (name) => { const at = args.indexOf(name); return at >= 0 ? args[at + 1] : undefined; };
const url = new URL(flag('--listen-client-urls'));
fs.mkdirSync(flag('--data-dir'), { recursive: true });
fs.appendFileSync(flag('--data-dir') + '/starts', 'start\\n');
const log = (record) => process.stderr.write(JSON.stringify({ level: 'info', ts: new Date().toISOString(), ...record }) + '\\n');
if (args.includes('--fake-exit-early')) { log({ level: 'error', msg: 'cannot open data dir: permission denied' }); process.exit(3); }
process.on('SIGTERM', () => { if (!args.includes('--fake-ignore-sigterm')) { log({ msg: 'stopping' }); process.exit(0); } });
if (args.includes('--fake-never-ready')) { log({ msg: 'waiting for a leader' }); setInterval(() => {}, 1000); }
else {
  const server = net.createServer((socket) => socket.end());
  server.listen(Number(url.port), '127.0.0.1', () => {
    log({ msg: 'some other line', address: '127.0.0.1:1' });
    log({ msg: 'serving client requests', address: '127.0.0.1:' + server.address().port });
  });
}
`;

let fakeDir: string;
let fake: StartOptions;

beforeAll(() => {
  fakeDir = mkdtempSync(join(tmpdir(), 'gavel-fake-main-'));
  writeFileSync(join(fakeDir, 'main.mjs'), FAKE_MAIN);
  fake = { target: 'gavel', gavelMain: join(fakeDir, 'main.mjs'), readyTimeoutMs: 5_000, stopTimeoutMs: 500 };
});
afterAll(async () => {
  await stopAllMembers();
  rmSync(fakeDir, { recursive: true, force: true });
});

/** Live processes whose command line mentions `text` (zombies excluded). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (cmdline.includes(text) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startMember with the gavel contract', () => {
  it('takes the port from the ready line, restarts on the same data dir and port, and cleans up', async () => {
    const member = await startMember(fake);
    expect(member.port).toBeGreaterThan(0);
    expect(member.endpoint).toBe(`127.0.0.1:${member.port}`);
    expect(member.clientUrl).toBe(`http://127.0.0.1:${member.port}`);
    expect(member.running).toBe(true);
    expect(member.logs()).toContain('--listen-client-urls http://127.0.0.1:0');
    const firstPid = member.pid;

    await member.kill('SIGKILL');
    expect(member.running).toBe(false);
    expect(isAlive(firstPid)).toBe(false);
    await member.restart();
    expect(member.pid).not.toBe(firstPid);
    expect(member.logs()).toContain(`--listen-client-urls http://127.0.0.1:${member.port}`);
    expect(existsSync(join(member.dataDir, 'starts'))).toBe(true);

    const oldPort = member.port;
    await member.restart({ newPort: true });
    expect(member.logs()).toContain('start #3');
    expect(member.port).toBeGreaterThan(0);
    expect(typeof oldPort).toBe('number');

    const exit = await member.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    await member.dispose();
    expect(existsSync(member.dataDir)).toBe(false);
  });

  it('fails fast with the stderr tail when the process exits before it is ready', async () => {
    const started = Date.now();
    await expect(startMember({ ...fake, args: ['--fake-exit-early'] })).rejects.toThrow(/exited before ready \(code=3[\s\S]*cannot open data dir: permission denied/);
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('gives up after readyTimeoutMs with the stderr tail, and kills the process', async () => {
    const token = `--fake-token-${process.pid}-${Date.now()}`;
    // 5 s: the fake must get to print its line first, which takes node more than 800 ms on a loaded machine.
    await expect(startMember({ ...fake, args: ['--fake-never-ready', token], readyTimeoutMs: 5_000 })).rejects.toThrow(/not ready within 5000 ms[\s\S]*waiting for a leader/);
    expect(processesMentioning(token)).toEqual([]);
  });

  it('stop() escalates to SIGKILL when SIGTERM is ignored, and resumes a paused member first', async () => {
    const member = await startMember({ ...fake, args: ['--fake-ignore-sigterm'] });
    expect(await member.kill('SIGSTOP')).toBeNull();
    const exit = await member.stop();
    expect(exit.signal).toBe('SIGKILL');
    expect(member.logs()).toContain('ignored SIGTERM for 500 ms; SIGKILL');
    expect(isAlive(member.pid)).toBe(false);
  });

  it('stopAllMembers() stops everything still running', async () => {
    const one = await startMember(fake);
    const two = await startMember({ ...fake, name: 'm2' });
    const pids = [one.pid, two.pid];
    await stopAllMembers();
    expect(pids.map(isAlive)).toEqual([false, false]);
    expect(existsSync(one.dataDir)).toBe(false);
    expect(processesMentioning(fakeDir)).toEqual([]);
  });
});

describe('etcdctl and helpers', () => {
  it('runs etcdctl with ETCDCTL_API=3 and bounds it with a timeout', async () => {
    const version = await etcdctl('127.0.0.1:1', ['version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^etcdctl version: 3\.4\.\d+\nAPI version: 3\.4\n$/);
    const port = await freePort();
    const hung = await etcdctl(`127.0.0.1:${port}`, ['watch', 'k'], { timeoutMs: 500 });
    expect(hung.timedOut).toBe(true);
    expect(hung.signal).toBe('SIGKILL');
  });

  it('parses etcd JSON without rounding 64-bit ids', () => {
    const parsed = asObject(parseJsonLossless('{"header":{"cluster_id":15118495548433857066,"revision":3},"s":"9007199254740993: not a number","n":-12,"f":1.5}'));
    expect(asBigInt(asObject(parsed['header'])['cluster_id'])).toBe(15118495548433857066n);
    expect(asObject(parsed['header'])['revision']).toBe(3);
    expect(parsed['s']).toBe('9007199254740993: not a number');
    expect(parsed['n']).toBe(-12);
    expect(parsed['f']).toBe(1.5);
    expect(parseJsonLines('{"a":1}\n\n{"a":18446744073709551615}\n')).toEqual([{ a: 1 }, { a: '18446744073709551615' }]);
  });
});
