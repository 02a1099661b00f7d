/** The closed-loop load driver shared by the benchmarks: N workers, each waiting for its previous request. */
import type { EtcdGrpcClient } from '../helpers/grpc.js';

/** In-flight requests get this long after the measurement window before they are abandoned. */
export const IN_FLIGHT_GRACE_MS = 5_000;

export interface LoopResult {
  operations: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

export type Operation = (client: EtcdGrpcClient, worker: number, sequence: number) => Promise<unknown>;

/** Runs `clients` workers over `connections` (shared round-robin) for durationMs, then closes the connections. */
export async function runClosedLoop(connections: readonly EtcdGrpcClient[], clients: number, durationMs: number, operation: Operation): Promise<LoopResult> {
  const result: LoopResult = { operations: 0, errors: 0, seconds: 0, latenciesMs: [] };
  const started = performance.now();
  const deadline = started + durationMs;
  const workers = Array.from({ length: clients }, async (_, worker) => {
    const connection = connections[worker % connections.length] as EtcdGrpcClient;
    for (let sequence = 0; performance.now() < deadline; sequence += 1) {
      const begin = performance.now();
      try {
        await operation(connection, worker, sequence);
        result.operations += 1;
        result.latenciesMs.push(performance.now() - begin);
      } catch {
        result.errors += 1;
      }
    }
  });
  await withGrace(Promise.all(workers), durationMs + IN_FLIGHT_GRACE_MS);
  result.seconds = (performance.now() - started) / 1000;
  for (const connection of connections) connection.close();
  return result;
}

export async function withGrace(promise: Promise<unknown>, boundMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, boundMs)))]);
  clearTimeout(timer);
}
