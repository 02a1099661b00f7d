// Goal: a request whose :authority is a URL (what etcd's Go client sends for `--endpoints http://host:port`) is reset by Node's HTTP/2 server as it comes, and answered once it passes admitHttp2; HPACK decoding follows RFC 7541's own examples.
import { createServer as createHttp2Server } from 'node:http2';
import { connect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { admitHttp2, repairedAuthority } from '../../server/http/h2-authority.js';
import { encodeFrame, Flag, FrameSplitter, FrameType, HTTP2_PREFACE, type Frame } from '../../server/http/h2-frames.js';
import { encodeLiterals, HpackDecoder, huffmanDecode } from '../../server/http/hpack.js';
import { createLogger } from '../../server/log.js';

const WAIT_MS = 5_000;

describe('HPACK', () => {
  it('decodes RFC 7541 C.4 (Huffman, dynamic table across two blocks)', () => {
    const decoder = new HpackDecoder();
    const first = decoder.decode(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex'));
    expect(first.map((f) => [f.name, f.value])).toEqual([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
    const second = decoder.decode(Buffer.from('828684be5886a8eb10649cbf', 'hex'));
    expect(second.map((f) => [f.name, f.value])).toEqual([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']]);
  });

  it('refuses a reference beyond the table and bad Huffman padding', () => {
    expect(() => new HpackDecoder().decode(Buffer.from([0xbe]))).toThrow(/beyond the dynamic table/);
    expect(() => huffmanDecode(Buffer.from([0x00]))).toThrow(/padding/);
  });

  it('re-encodes as literals that decode to the same fields', () => {
    const fields = [{ name: ':authority', value: '127.0.0.1:2379', sensitive: false }, { name: 'token', value: 'secret', sensitive: true }];
    expect(new HpackDecoder().decode(encodeLiterals(fields))).toEqual(fields);
  });

  it('repairs URL authorities and leaves host:port alone', () => {
    expect(repairedAuthority('127.0.0.1:2379')).toBeUndefined();
    expect(repairedAuthority('[::1]:2379')).toBeUndefined();
    expect(repairedAuthority('http://127.0.0.1:2379')).toBe('127.0.0.1:2379');
    expect(repairedAuthority('https://[::1]:2379/')).toBe('[::1]:2379');
  });
});

describe('admitHttp2 in front of node:http2', () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) server.close();
  });

  /** A plain TCP listener handing each connection to an http2 server, through admitHttp2 or not. */
  async function listen(admit: boolean, idleMs?: number): Promise<number> {
    const http2 = createHttp2Server((_request, response) => response.end('ok'));
    const server = createNetServer((socket) => {
      sockets.push(socket);
      if (!admit) {
        http2.emit('connection', socket);
        return;
      }
      socket.once('data', (first: Buffer) => admitHttp2(socket, first, (connection) => http2.emit('connection', connection), createLogger('error'), idleMs));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  /** A client as grpc-go behaves: preface and SETTINGS, then, once the server's SETTINGS came, ACK and (after pauseMs) one GET. */
  async function requestWithAuthority(port: number, authority: string, pauseMs = 0): Promise<'answered' | 'reset'> {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.write(Buffer.concat([HTTP2_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0, Buffer.alloc(0))]));
    const splitter = new FrameSplitter();
    let sentRequest = false;
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer to the request')), WAIT_MS);
      socket.on('error', reject);
      socket.on('data', (chunk: Buffer) => {
        for (const frame of splitter.push(chunk)) {
          if (frame.type === FrameType.SETTINGS && (frame.flags & Flag.ACK) === 0) {
            socket.write(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(0)));
            if (!sentRequest) setTimeout(() => socket.write(request(authority)), pauseMs);
            sentRequest = true;
          }
          const outcome = outcomeOf(frame);
          if (outcome !== undefined) {
            clearTimeout(timer);
            resolve(outcome);
          }
        }
      });
    });
  }

  function request(authority: string): Buffer {
    const block = encodeLiterals([
      { name: ':method', value: 'GET', sensitive: false },
      { name: ':scheme', value: 'http', sensitive: false },
      { name: ':path', value: '/', sensitive: false },
      { name: ':authority', value: authority, sensitive: false },
    ]);
    return encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, block);
  }

  function outcomeOf(frame: Frame): 'answered' | 'reset' | undefined {
    if (frame.streamId !== 1) return undefined;
    if (frame.type === FrameType.HEADERS) return 'answered';
    if (frame.type === FrameType.RST_STREAM) return 'reset';
    return undefined;
  }

  it('without it, Node resets a request whose :authority is a URL (the bug etcdctl hit)', async () => {
    const port = await listen(false);
    expect(await requestWithAuthority(port, '127.0.0.1:1')).toBe('answered');
    expect(await requestWithAuthority(port, 'http://127.0.0.1:1')).toBe('reset');
  });

  it('a client that resets the connection during admission leaves the listener serving', async () => {
    const port = await listen(true);
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(HTTP2_PREFACE);
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await requestWithAuthority(port, 'http://127.0.0.1:1')).toBe('answered');
  });

  it('a connection idle past the admission bound goes to Node as it is, and its request is answered', async () => {
    const port = await listen(true, 100);
    expect(await requestWithAuthority(port, '127.0.0.1:1', 300)).toBe('answered');
  });

  it('a connection that never acknowledges our SETTINGS is closed at the admission bound', async () => {
    const port = await listen(true, 100);
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.resume(); // read (and drop) our SETTINGS, so that the server's close is seen
    socket.write(HTTP2_PREFACE);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('still open')), WAIT_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  });

  it('with it, both are answered', async () => {
    const port = await listen(true);
    expect(await requestWithAuthority(port, '127.0.0.1:1')).toBe('answered');
    expect(await requestWithAuthority(port, 'http://127.0.0.1:1')).toBe('answered');
  });
});
