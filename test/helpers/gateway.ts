/**
 * A JSON-gateway endpoint for tests: a gavel member started in this process with its gateway
 * handler mounted on a plain HTTP server on port 0 (until the client port serves it), or, with
 * GAVEL_TARGET=etcd, a real etcd 3.4 whose client port serves its own gateway. Plus a small
 * HTTP client: POST a JSON body, read a unary answer or a stream of JSON values, all bounded.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Member as GavelMember } from '../../server/server.js';
import { parseArgs } from '../../server/config.js';
import { silentLogger } from '../../server/log.js';
import { freePort, removeTempDir, startMember, targetFromEnv, type Target } from './gavel.js';

export interface GatewayEndpoint {
  readonly target: Target;
  /** http://127.0.0.1:PORT, where /v3/... is served. */
  readonly url: string;
  /** host:port of the member's gRPC API (for etcdctl). */
  readonly grpcEndpoint: string;
  close(): Promise<void>;
}

export async function startGatewayEndpoint(name: string, args: string[] = []): Promise<GatewayEndpoint> {
  const target = targetFromEnv();
  if (target === 'etcd') {
    const member = await startMember({ name, args });
    return { target, url: member.clientUrl, grpcEndpoint: member.endpoint, close: () => member.dispose() };
  }
  const dataDir = mkdtempSync(join(tmpdir(), `gavel-gw-${name}-`));
  const peerPort = await freePort();
  const parsed = parseArgs([
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', 'http://127.0.0.1:0',
    '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
    '--initial-cluster', `${name}=http://127.0.0.1:${peerPort}`,
    // Its own metrics port (0): the default 127.0.0.1:2381 is shared by every member on the host.
    '--listen-metrics-urls', 'http://127.0.0.1:0',
    ...args,
  ]);
  if (parsed.kind !== 'run') throw new Error('unexpected parse result');
  const member = await GavelMember.start(parsed.config, silentLogger);
  const server: Server = createServer((req, res) => {
    if (member.gatewayHandler(req, res)) return;
    // Stands in for the client port's /version (served there by the port's HTTP side): Patroni reads it first.
    if (req.url === '/version') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"etcdserver":"3.4.0","etcdcluster":"3.4.0"}');
    else res.writeHead(404).end('404 page not found\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    target,
    url: `http://127.0.0.1:${address.port}`,
    grpcEndpoint: member.clientAddresses[0] ?? '',
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await member.close();
      removeTempDir(dataDir);
    },
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

const CALL_TIMEOUT_MS = 10_000;

/** POSTs `body` (an object is sent as JSON) and reads the whole answer, within a bound. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = CALL_TIMEOUT_MS): Promise<HttpAnswer> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(text);
  });
}

/** POSTs and parses a JSON answer; throws with the body when the status is not 200. */
export async function call(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const answer = await post(`${base}${path}`, body, headers);
  if (answer.status !== 200) throw new Error(`${path}: ${answer.status} ${answer.body}`);
  return JSON.parse(answer.body) as Record<string, unknown>;
}

/** A streaming answer: its status, and its JSON values as they arrive. */
export interface JsonStream {
  readonly status: Promise<number>;
  /** The next value, or undefined when the answer ended; rejects after timeoutMs. */
  next(timeoutMs?: number): Promise<Record<string, unknown> | undefined>;
  /** Sends more of the request body (for bidi streams opened with `keepOpen`). */
  write(value: unknown): void;
  /** Stops reading the answer (a slow client: TCP fills up, the server sees write() false) and starts again. */
  pause(): void;
  resume(): void;
  /** Drops the connection (the client disconnects). */
  close(): void;
}

/** Opens a streaming call; the body is `first` and, with keepOpen, stays open for write(). */
export function openStream(url: string, first: unknown, options: { keepOpen?: boolean; headers?: Record<string, string> } = {}): JsonStream {
  const values: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let ended = false;
  let failure: Error | undefined;
  let buffer = '';
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  let response: IncomingMessage | undefined;
  let resolveStatus: (n: number) => void = () => undefined;
  const status = new Promise<number>((resolve) => (resolveStatus = resolve));
  const req = httpRequest(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...options.headers } }, (res) => {
    response = res;
    resolveStatus(res.statusCode ?? 0);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (line !== '') values.push(JSON.parse(line) as Record<string, unknown>);
      }
      wake();
    });
    res.on('end', () => {
      // An error chunk is not followed by a newline.
      if (buffer.trim() !== '') values.push(JSON.parse(buffer) as Record<string, unknown>);
      ended = true;
      wake();
    });
    res.on('error', () => undefined);
  });
  req.on('error', (error) => {
    failure = error;
    resolveStatus(0);
    wake();
  });
  req.write(typeof first === 'string' ? first : JSON.stringify(first));
  if (options.keepOpen !== true) req.end();
  return {
    status,
    async next(timeoutMs = CALL_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      while (values.length === 0 && !ended && failure === undefined) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('no stream message in time');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      if (values.length > 0) return values.shift();
      if (failure !== undefined) throw failure;
      return undefined;
    },
    write(value) {
      req.write(typeof value === 'string' ? value : JSON.stringify(value));
    },
    pause() {
      response?.pause();
    },
    resume() {
      response?.resume();
    },
    close() {
      req.destroy();
    },
  };
}

export const b64 = (text: string): string => Buffer.from(text).toString('base64');
export const unb64 = (text: unknown): string => Buffer.from(String(text), 'base64').toString();
