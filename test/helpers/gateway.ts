/**
 * A JSON-gateway endpoint for tests: a gavel member (or, with GAVEL_TARGET=etcd, a real etcd 3.4)
 * whose client port serves the gateway beside gRPC. Plus a small
 * HTTP client: POST a JSON body, read a unary answer or a stream of JSON values, all bounded.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { startMember, targetFromEnv, type Target } from './gavel.js';

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
  // Both serve the gateway on their client port, beside gRPC.
  const member = await startMember({ name, args });
  return { target, url: member.clientUrl, grpcEndpoint: member.endpoint, close: () => member.dispose() };
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
