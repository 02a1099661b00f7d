/**
 * Why this exists: etcd's Go client, given an endpoint URL (`--endpoints http://127.0.0.1:2379`,
 * as etcd's docs write it), dials the target `passthrough:///http://127.0.0.1:2379` and sends
 * that URL, scheme and all, as the request's `:authority`. grpc-go's server does not look at it;
 * Node's HTTP/2 server (nghttp2) checks it against RFC 3986's authority syntax, finds the `/`,
 * and resets the stream with PROTOCOL_ERROR before any of our code runs. etcdctl then prints
 * "stream terminated by RST_STREAM with error code: PROTOCOL_ERROR".
 *
 * So before Node sees an HTTP/2 connection we read the client's first request headers:
 *   - a valid `:authority` (every other client): the socket goes to Node as it is, and nghttp2
 *     reads it natively from then on (no cost after the first request);
 *   - `:authority` holding a URL: the connection runs through a HeaderRewritingStream that
 *     decodes each request's header block, puts `host:port` in `:authority`, and encodes it
 *     again (HPACK state cannot be patched in place: it would change the dynamic table).
 *
 * Reading the first request needs one trick: a grpc-go client sends nothing until it has the
 * server's connection preface (a SETTINGS frame). We send an empty SETTINGS (all defaults)
 * ourselves, and drop the client's ACK of it; Node's own SETTINGS follow once it takes over, and
 * the client applies those too (several SETTINGS frames are normal HTTP/2).
 *
 * Limit: Node wraps a rewritten connection in a socket of its own, so grpc-js finds no client
 * certificate on it, and under --client-cert-auth its calls have no user from the certificate
 * (they are refused, not let through; a token still works). etcdctl does not get here over
 * https://: with TLS it sends host:port, so its connections stay native.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import { encodeFrame, encodeHeaderBlock, Flag, FrameSplitter, FrameType, HeaderBlockCollector, HTTP2_PREFACE, type Frame } from './h2-frames.js';
import { encodeLiterals, HpackDecoder, type HeaderField } from './hpack.js';

/**
 * A client that connects and sends no request for this long goes to Node as it is (an idle
 * gRPC channel must not be cut; whatever it sends later is Node's to judge). One that has not
 * even acknowledged our SETTINGS by then is not speaking HTTP/2 and is dropped.
 */
const ADMISSION_IDLE_MS = 60_000;

const EMPTY_SETTINGS = encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0));

/** The characters nghttp2 accepts in `:authority` (nghttp2_check_authority). */
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

/**
 * The authority to send on instead of `value`, or undefined when `value` is acceptable as it is.
 * A URL gives its host:port; anything else invalid is dropped ('') — gRPC does not route on it.
 */
export function repairedAuthority(value: string): string | undefined {
  if (VALID_AUTHORITY.test(value)) return undefined;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(value);
  const host = scheme?.[1];
  return host !== undefined && VALID_AUTHORITY.test(host) ? host : '';
}

function repairFields(fields: readonly HeaderField[]): HeaderField[] {
  return fields.map((field) => {
    if (field.name !== ':authority' && field.name !== 'host') return field;
    const repaired = repairedAuthority(field.value);
    return repaired === undefined ? field : { ...field, value: repaired };
  });
}

type Http2Socket = Socket | TLSSocket;

/**
 * Takes an HTTP/2 connection whose first bytes (`initial`, starting with the preface) were read
 * from `socket`, and hands Node either the socket itself or a rewriting stream over it.
 */
export function admitHttp2(socket: Http2Socket, initial: Buffer, deliver: (connection: Duplex) => void, logger: Logger, idleMs = ADMISSION_IDLE_MS): void {
  const splitter = new FrameSplitter();
  const collector = new HeaderBlockCollector();
  const kept: Buffer[] = [HTTP2_PREFACE];
  let acknowledged = false;
  let verdict: 'native' | 'rewrite' | undefined;

  const onFrame = (frame: Frame): void => {
    if (frame.type === FrameType.SETTINGS && (frame.flags & Flag.ACK) !== 0 && !acknowledged) {
      acknowledged = true; // the ACK of our SETTINGS: Node never sent it, so it must not see it
      return;
    }
    if (frame.type === FrameType.PING && (frame.flags & Flag.ACK) === 0 && verdict === undefined) {
      socket.write(encodeFrame(FrameType.PING, Flag.ACK, 0, frame.payload));
      return;
    }
    kept.push(frame.raw);
    if (verdict !== undefined) return;
    if (frame.type === FrameType.HEADERS || frame.type === FrameType.CONTINUATION) {
      const header = collector.add(frame);
      if (header === undefined) return;
      const fields = new HpackDecoder().decode(header.block);
      verdict = fields.some((f) => (f.name === ':authority' || f.name === 'host') && repairedAuthority(f.value) !== undefined) ? 'rewrite' : 'native';
    } else if (frame.type !== FrameType.SETTINGS && frame.type !== FrameType.WINDOW_UPDATE && frame.type !== FrameType.PRIORITY) {
      verdict = 'native'; // no request first: nothing to repair, and Node answers whatever it is
    }
  };

  const onData = (chunk: Buffer): void => {
    try {
      for (const frame of splitter.push(chunk)) onFrame(frame);
    } catch (error) {
      logger.debug('dropping an HTTP/2 connection with unreadable frames', { error: String(error) });
      socket.destroy();
      return;
    }
    if (verdict !== undefined && acknowledged) handOver(verdict);
  };

  const handOver = (how: 'native' | 'rewrite'): void => {
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    // Our idle timer must not fire once Node's session owns the socket (it sets timers of its own).
    socket.removeListener('timeout', onIdle);
    socket.setTimeout(0);
    const replay = Buffer.concat([...kept, splitter.remainder()]);
    if (how === 'native') {
      socket.pause();
      socket.unshift(replay);
      deliver(socket);
    } else {
      logger.debug('rewriting :authority on an HTTP/2 connection', { remote: `${socket.remoteAddress}:${socket.remotePort}` });
      deliver(new HeaderRewritingStream(socket, replay, logger));
    }
  };

  // Until Node's session owns the socket, a reset by the client is ours to absorb.
  const onError = (): void => {
    socket.destroy();
  };
  const onIdle = (): void => {
    if (acknowledged) handOver('native');
    else socket.destroy();
  };
  socket.on('error', onError);
  socket.on('timeout', onIdle);
  socket.setTimeout(idleMs);
  socket.write(EMPTY_SETTINGS);
  socket.on('data', onData);
  onData(initial.subarray(HTTP2_PREFACE.length));
}

/**
 * The connection as Node's HTTP/2 server reads it, with every request header block re-encoded
 * and `:authority` repaired. Bytes towards the client pass untouched. Forwards the socket's
 * addresses and socket options, which Node's HTTP/2 session asks for.
 */
export class HeaderRewritingStream extends Duplex {
  private readonly splitter = new FrameSplitter();
  private readonly collector = new HeaderBlockCollector();
  private readonly decoder = new HpackDecoder();
  private prefaceBytes = HTTP2_PREFACE.length;

  constructor(
    private readonly socket: Http2Socket,
    replay: Buffer,
    private readonly logger: Logger,
  ) {
    super();
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    socket.pause();
    this.receive(replay);
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }
  get localPort(): number | undefined {
    return this.socket.localPort;
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setTimeout(ms: number, callback?: () => void): this {
    this.socket.setTimeout(ms, callback);
    return this;
  }

  private receive(chunk: Buffer): void {
    let out: Buffer;
    try {
      out = this.rewrite(chunk);
    } catch (error) {
      this.logger.debug('dropping a rewritten HTTP/2 connection', { error: String(error) });
      this.destroy();
      return;
    }
    if (out.length > 0 && !this.push(out)) this.socket.pause();
  }

  private rewrite(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (this.prefaceBytes > 0) {
      const preface = chunk.subarray(0, this.prefaceBytes);
      parts.push(preface);
      this.prefaceBytes -= preface.length;
      chunk = chunk.subarray(preface.length);
    }
    for (const frame of this.splitter.push(chunk)) {
      if (frame.type !== FrameType.HEADERS && frame.type !== FrameType.CONTINUATION && !this.collector.collecting) {
        parts.push(frame.raw);
        continue;
      }
      const header = this.collector.add(frame);
      if (header === undefined) continue;
      const fields = repairFields(this.decoder.decode(header.block));
      parts.push(encodeHeaderBlock({ ...header, block: encodeLiterals(fields) }));
    }
    return Buffer.concat(parts);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(error);
  }
}
