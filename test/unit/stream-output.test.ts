// Goal: a StreamOutput counts what its call holds, stops the reader and the producer past its bound, lets them go on only once the client drains (producer first), and forgets everything when the call ends.
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { StreamOutput } from '../../server/api/stream-output.js';
import { StreamAccounting } from '../../server/metrics/streams.js';

/** A call like grpc-js's: write() says false at `highWater` messages held; take() is the client reading. */
class FakeCall extends EventEmitter {
  readonly held: (() => void)[] = [];
  readerPaused = false;
  cancelled = false;
  readonly log: string[] = [];
  private needDrain = false;

  constructor(private readonly highWater = 16) {
    super();
  }

  write(_message: string, callback: () => void): boolean {
    this.held.push(callback);
    const room = this.held.length < this.highWater;
    if (!room) this.needDrain = true;
    return room;
  }

  /** The client reads `count` messages: their callbacks run, then 'drain' if write() had said false. */
  take(count: number): void {
    for (const callback of this.held.splice(0, count)) callback();
    if (this.needDrain && this.held.length === 0) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  pause(): void {
    this.readerPaused = true;
    this.log.push('pause');
  }

  resume(): void {
    this.readerPaused = false;
    this.log.push('resume');
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(options: { maxBufferedBytes?: number; maxPendingRequests?: number; highWater?: number } = {}) {
  const call = new FakeCall(options.highWater);
  const accounting = new StreamAccounting(new Registry());
  const output = new StreamOutput<string>(call, { kind: 'watch', tally: accounting, ...options });
  return { call, accounting, output, figures: () => accounting.snapshot('watch') };
}

describe('StreamOutput', () => {
  it('counts bytes until the client takes them; past the bound pauses the reader, and drains producer-first', async () => {
    const { call, output, figures } = setup({ maxBufferedBytes: 1000 });
    const order: string[] = [];
    output.onDrain(() => order.push(`drain(paused=${call.readerPaused})`));
    expect(output.write('a', 400)).toBe(true);
    expect(output.write('b', 400)).toBe(true);
    expect(figures()).toMatchObject({ open: 1, bytes: 800, peakBytes: 800, paused: 0 });
    expect(output.write('c', 400)).toBe(false); // 1200 >= 1000
    expect(output.congested).toBe(true);
    expect(call.readerPaused).toBe(true);
    expect(figures()).toMatchObject({ bytes: 1200, peakBytes: 1200, paused: 1 });

    call.take(1); // 800 left, under the bound: room again
    expect(output.congested).toBe(false);
    expect(call.readerPaused).toBe(true); // not yet: the producer goes first
    await settle();
    expect(order).toEqual(['drain(paused=true)']);
    expect(call.readerPaused).toBe(false);
    expect(call.log).toEqual(['pause', 'resume']);
    expect(figures().bytes).toBe(800);
  });

  it('is congested while write() said false, under the byte bound too, until the call drains', async () => {
    const { call, output } = setup({ highWater: 2 });
    let drains = 0;
    output.onDrain(() => drains++);
    expect(output.write('a', 10)).toBe(true);
    expect(output.write('b', 10)).toBe(false);
    call.take(1);
    expect(output.congested).toBe(true); // 'drain' not yet
    call.take(1);
    expect(output.congested).toBe(false);
    await settle();
    expect(drains).toBe(1);
  });

  it('pauses reading while too many requests are being answered', async () => {
    const { call, output } = setup({ maxPendingRequests: 2 });
    const first = output.begin();
    const second = output.begin();
    expect(call.readerPaused).toBe(true);
    first();
    first(); // once only
    await settle();
    expect(call.readerPaused).toBe(false);
    second();
    expect(output.congested).toBe(false);
  });

  it('a room() waiter goes on when the client drains, or when the call goes away', async () => {
    const { call, output } = setup({ maxBufferedBytes: 10 });
    output.write('a', 10);
    let resumed = false;
    const waiting = output.room().then(() => (resumed = true));
    await settle();
    expect(resumed).toBe(false);
    call.take(1);
    await waiting;
    output.write('b', 10);
    const again = output.room();
    call.emit('cancelled');
    await again;
    expect(output.isClosed).toBe(true);
  });

  it('forgets everything on cancel: counts to zero, listeners removed, late callbacks ignored', () => {
    const { call, output, figures } = setup({ maxBufferedBytes: 100 });
    output.holdUpstream(50);
    output.write('a', 80);
    expect(figures()).toMatchObject({ open: 1, bytes: 130, peakBytes: 130 });
    call.emit('cancelled');
    expect(figures()).toMatchObject({ open: 0, bytes: 0, peakBytes: 130 });
    for (const event of ['drain', 'finish', 'close', 'cancelled']) expect(call.listenerCount(event)).toBe(0);
    call.take(1); // the late callback of 'a'
    expect(figures()).toMatchObject({ open: 0, bytes: 0 });
    expect(output.write('b', 10)).toBe(false);
    output.holdUpstream(10);
    expect(figures().bytes).toBe(0);
  });

  it('a call cancelled before it was wrapped is closed at once', () => {
    const call = new FakeCall();
    call.cancelled = true;
    const accounting = new StreamAccounting(new Registry());
    const output = new StreamOutput<string>(call, { kind: 'lease_keepalive', tally: accounting });
    expect(output.isClosed).toBe(true);
    expect(accounting.snapshot('lease_keepalive').open).toBe(0);
  });
});
