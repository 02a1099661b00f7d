/**
 * go-grpc-prometheus' server metrics (grpc_server_started_total, grpc_server_handled_total,
 * grpc_server_handling_seconds), counted per method in plain numbers and handed to prom-client
 * when Prometheus scrapes. Every client call passes here twice; prom-client's labelled inc() and
 * observe() validate and hash the label set on each call (about 2.5 us and a few objects per
 * call, a few percent of a busy leader's CPU), where a method's tally is found once, when the
 * service is wrapped.
 */
import { Counter, type Registry } from 'prom-client';

export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

export interface GrpcMethodLabels {
  readonly grpc_type: GrpcType;
  readonly grpc_service: string;
  readonly grpc_method: string;
}

/** go-grpc-prometheus' default buckets, seconds. */
export const GRPC_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One method's calls: started, finished by code, and the handling-time histogram. */
export class GrpcMethodTally {
  started = 0;
  /** Finished calls by grpc-go code name. */
  readonly handled = new Map<string, number>();
  /** Calls per bucket (not cumulative); the last slot is above every bound (+Inf). */
  readonly buckets = new Float64Array(GRPC_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(readonly labels: GrpcMethodLabels) {}

  start(): void {
    this.started++;
  }

  finish(code: string, seconds: number): void {
    this.handled.set(code, (this.handled.get(code) ?? 0) + 1);
    let slot = 0;
    while (slot < GRPC_BUCKETS.length && seconds > GRPC_BUCKETS[slot]!) slot++;
    this.buckets[slot]!++;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.started = 0;
    this.handled.clear();
    this.buckets.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** The three metrics, fed from the tallies of every wrapped method. */
export class GrpcServerMetrics {
  private readonly tallies: GrpcMethodTally[] = [];

  constructor(registry: Registry) {
    const tallies = this.tallies;
    const labelNames = ['grpc_type', 'grpc_service', 'grpc_method'] as const;
    new Counter({
      name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames, registers: [registry],
      collect() {
        this.reset();
        for (const tally of tallies) if (tally.started > 0) this.inc({ ...tally.labels }, tally.started);
      },
    });
    new Counter({
      name: 'grpc_server_handled_total', help: 'Total number of RPCs completed on the server, regardless of success or failure.', labelNames: [...labelNames, 'grpc_code'], registers: [registry],
      collect() {
        this.reset();
        for (const tally of tallies) for (const [code, n] of tally.handled) this.inc({ ...tally.labels, grpc_code: code }, n);
      },
    });
    registry.registerMetric(new TallyHistogram('grpc_server_handling_seconds', 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.', tallies) as never);
  }

  /** The tally of one method; call once per method, when its handler is wrapped. */
  method(labels: GrpcMethodLabels): GrpcMethodTally {
    const tally = new GrpcMethodTally(labels);
    this.tallies.push(tally);
    return tally;
  }
}

interface MetricValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName: string;
}

/**
 * A histogram read from the tallies, in the form prom-client's Registry prints (its own
 * Histogram's get(): cumulative _bucket lines with le, then _sum and _count).
 */
class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(readonly name: string, readonly help: string, private readonly tallies: readonly GrpcMethodTally[]) {}

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const tally of this.tallies) {
      if (tally.count === 0) continue;
      let cumulative = 0;
      for (const [slot, bound] of GRPC_BUCKETS.entries()) {
        cumulative += tally.buckets[slot]!;
        values.push({ value: cumulative, labels: { ...tally.labels, le: bound }, metricName: `${this.name}_bucket` });
      }
      values.push({ value: tally.count, labels: { ...tally.labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: tally.sum, labels: { ...tally.labels }, metricName: `${this.name}_sum` });
      values.push({ value: tally.count, labels: { ...tally.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const tally of this.tallies) tally.reset();
  }
}
