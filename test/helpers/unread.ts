/**
 * Clients that do not read: a raw HTTP/2 stream (node:http2) carrying gRPC frames encoded with
 * our proto/ files, with no 'data' listener, so HTTP/2 flow control is all that can stop the
 * server sending; plus what the back-pressure tests read from a member: its /metrics samples.
 * This module does not import vitest.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { messageCodec } from '../../server/proto.js';
import type { Member } from './gavel.js';

/** One gRPC message frame (flag byte, 4-byte length, the protobuf bytes). */
export function grpcFrame(typeName: string, value: object): Buffer {
  const body = messageCodec<object>(typeName).encode(value);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

export interface FloodResult {
  /** Frames HTTP/2 took from us (their write callbacks ran). */
  readonly sent: number;
  /** The sender ended blocked: write() said no more and no 'drain' came within stallMs. */
  readonly blocked: boolean;
}

/** A call whose responses are never read. */
export class UnreadStream {
  private readonly session: ClientHttp2Session;
  private readonly stream: ClientHttp2Stream;

  /** `path` is the gRPC method ('/etcdserverpb.Lease/LeaseKeepAlive'); `headers` carry metadata. */
  constructor(address: string, path: string, headers: Record<string, string> = {}) {
    this.session = connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.stream = this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    this.stream.on('error', () => undefined);
    // No 'data' listener and paused: received DATA stays unconsumed, so the window closes.
    this.stream.pause();
  }

  /** Writes frames; for a server-streaming call, then half-close (`end`). */
  send(frames: readonly Buffer[], end = false): void {
    const chunk = Buffer.concat(frames);
    if (end) this.stream.end(chunk);
    else this.stream.write(chunk);
  }

  /**
   * Writes `frame` over and over, `perWrite` at a time, until maxFrames were written or the
   * sender stays blocked for stallMs (a bounded wait, not a pass/fail figure).
   */
  async flood(frame: Buffer, options: { maxFrames: number; perWrite?: number; stallMs?: number }): Promise<FloodResult> {
    const perWrite = options.perWrite ?? 100;
    const chunk = Buffer.concat(Array.from({ length: perWrite }, () => frame));
    let sent = 0;
    for (let written = 0; written < options.maxFrames && !this.stream.destroyed; written += perWrite) {
      const room = this.stream.write(chunk, (error) => {
        if (error === null || error === undefined) sent += perWrite;
      });
      if (room) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      if (!(await this.drained(options.stallMs ?? 2_000))) return { sent, blocked: true };
    }
    return { sent, blocked: false };
  }

  /** Cancels the call and closes the connection: the member sees the client go away. */
  close(): void {
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
    this.session.close();
    this.session.destroy();
  }

  private drained(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.stream.removeListener('drain', onDrain);
        resolve(value);
      };
      const onDrain = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.stream.once('drain', onDrain);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The member's own accounting, from /metrics.

/** The member's metrics URL: /metrics on its client port, as etcd serves it. */
export function metricsUrl(member: Member): string {
  return `${member.clientUrl}/metrics`;
}

/** One scrape: the value of a sample by name and labels (undefined when absent). */
export type Scrape = (name: string, labels?: Record<string, string>) => number | undefined;

export async function scrape(url: string): Promise<Scrape> {
  const text = await (await fetch(url)).text();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? []) {
      const eq = pair.indexOf('=');
      labels[pair.slice(0, eq)] = pair.slice(eq + 2, -1);
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return (name, wanted = {}) => samples.find((s) => s.name === name && Object.entries(wanted).every(([k, v]) => s.labels[k] === v))?.value;
}

/** A stream kind's figures: open streams, bytes buffered now, the most one stream held, pauses. */
export interface StreamFigures {
  readonly open: number | undefined;
  readonly bytes: number | undefined;
  readonly peakBytes: number | undefined;
  readonly paused: number | undefined;
}

export async function streamFigures(url: string, kind: string): Promise<StreamFigures> {
  const value = await scrape(url);
  const stream = { stream: kind };
  return {
    open: value('gavel_server_streams', stream),
    bytes: value('gavel_server_stream_buffered_bytes', stream),
    peakBytes: value('gavel_server_stream_buffered_bytes_peak', stream),
    paused: value('gavel_server_stream_paused_total', stream),
  };
}
