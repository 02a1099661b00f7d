/**
 * The member's HTTP endpoints on --listen-metrics-urls: /metrics (Prometheus text format),
 * /health (etcd's JSON), /livez and /readyz (Kubernetes probes).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenHost } from '../config.js';
import type { MemberMetrics } from './registry.js';

export interface HealthSource {
  /** A leader exists and a linearizable read completes in time. */
  healthy(): Promise<{ ok: boolean; reason: string }>;
  /** The member has a leader and has applied what was committed when it started. */
  ready(): boolean;
}

export async function serveMetrics(urls: readonly URL[], metrics: MemberMetrics, health: HealthSource): Promise<{ servers: Server[]; addresses: string[] }> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (const url of urls) {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      const reply = (status: number, type: string, body: string): void => {
        response.writeHead(status, { 'content-type': type });
        response.end(body);
      };
      switch (path) {
        case '/metrics':
          metrics.registry.metrics().then(
            (text) => reply(200, metrics.registry.contentType, text),
            (error: unknown) => reply(500, 'text/plain', String(error)),
          );
          return;
        case '/health':
          health.healthy().then(
            // etcd's body: {"health":"true"} or {"health":"false"} (with a reason since 3.5).
            ({ ok, reason }) => reply(ok ? 200 : 503, 'application/json', JSON.stringify({ health: String(ok), reason })),
            () => reply(503, 'application/json', JSON.stringify({ health: 'false', reason: 'health check failed' })),
          );
          return;
        case '/livez':
          reply(200, 'text/plain', 'ok\n');
          return;
        case '/readyz':
          if (health.ready()) reply(200, 'text/plain', 'ok\n');
          else reply(503, 'text/plain', 'not ready: no leader yet, or still applying the log\n');
          return;
        default:
          reply(404, 'text/plain', 'not found\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(url.port), listenHost(url), () => resolve());
    });
    const address = server.address() as AddressInfo;
    addresses.push(`${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`);
    servers.push(server);
  }
  return { servers, addresses };
}
