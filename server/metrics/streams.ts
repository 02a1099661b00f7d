/**
 * What the member's long-lived streams hold (server/api/stream-output.ts), by stream kind:
 * open streams, bytes buffered for clients that have not read them yet, the most one stream has
 * held, and how often a stream stopped reading because its client stopped reading. The streams
 * update plain numbers on every write; the gauges read them at scrape time.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { STREAM_KINDS, type StreamKind, type StreamTally } from '../api/stream-output.js';

interface KindFigures {
  open: number;
  bytes: number;
  peakBytes: number;
  paused: number;
}

export class StreamAccounting implements StreamTally {
  private readonly kinds = new Map<StreamKind, KindFigures>();
  private readonly pausedTotal: Counter<'stream'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const kinds = this.kinds;
    /** A gauge with one value per stream kind seen, read from the figures at scrape time. */
    const perKind = (name: string, help: string, read: (figures: KindFigures) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['stream'],
        registers,
        collect() {
          for (const [kind, figures] of kinds) this.set({ stream: kind }, read(figures));
        },
      });
    };
    perKind('gavel_server_streams', 'Open long-lived streams (keep-alive, watch, observe, acquire, peer), by kind.', (f) => f.open);
    perKind('gavel_server_stream_buffered_bytes', 'Bytes written to open streams and not yet taken by their clients (with the watch hub queues), by kind.', (f) => f.bytes);
    perKind('gavel_server_stream_buffered_bytes_peak', 'The most bytes a single stream of this kind has held since the member started.', (f) => f.peakBytes);
    this.pausedTotal = new Counter({
      name: 'gavel_server_stream_paused_total',
      help: "Times a stream's output passed its bound and the member stopped reading its requests (or producing) until the client drained it.",
      labelNames: ['stream'],
      registers,
    });
    // Every kind from the start, at zero: dashboards and alerts see the series before the first stream.
    for (const kind of STREAM_KINDS) {
      this.figures(kind);
      this.pausedTotal.inc({ stream: kind }, 0);
    }
  }

  opened(kind: StreamKind): void {
    this.figures(kind).open++;
  }

  closed(kind: StreamKind): void {
    this.figures(kind).open--;
  }

  buffered(kind: StreamKind, deltaBytes: number, streamBytes: number): void {
    const figures = this.figures(kind);
    figures.bytes += deltaBytes;
    if (streamBytes > figures.peakBytes) figures.peakBytes = streamBytes;
  }

  paused(kind: StreamKind): void {
    this.figures(kind).paused++;
    this.pausedTotal.inc({ stream: kind });
  }

  /** The figures of one kind, for tests and logs. */
  snapshot(kind: StreamKind): Readonly<KindFigures> {
    return { ...this.figures(kind) };
  }

  private figures(kind: StreamKind): KindFigures {
    let figures = this.kinds.get(kind);
    if (figures === undefined) {
      figures = { open: 0, bytes: 0, peakBytes: 0, paused: 0 };
      this.kinds.set(kind, figures);
    }
    return figures;
  }
}
