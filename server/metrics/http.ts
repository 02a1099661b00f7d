/**
 * The member's HTTP endpoints on --listen-metrics-urls: /metrics (Prometheus text format),
 * /health (etcd's JSON), /livez and /readyz (Kubernetes probes). An https:// URL is served, as
 * etcd does, with the client certificate (--cert-file), requiring client certificates under
 * --client-cert-auth.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { listenHost } from '../config.js';
import { assert } from '../errors.js';
import type { TlsMaterial } from '../tls.js';
import type { MemberMetrics } from './registry.js';

export interface HealthSource {
  /** A leader exists and a linearizable read completes in time. */
  healthy(): Promise<{ ok: boolean; reason: string }>;
  /** The member has a leader and has applied what was committed when it started. */
  ready(): boolean;
}

export async function serveMetrics(urls: readonly URL[], metrics: MemberMetrics, health: HealthSource, tls?: TlsMaterial): Promise<{ servers: Server[]; addresses: string[] }> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (const url of urls) {
    const server = listener(url, tls, (request, response) => {
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

function listener(url: URL, tls: TlsMaterial | undefined, handle: RequestListener): Server {
  if (url.protocol === 'http:') return createServer(handle);
  assert(url.protocol === 'https:' && tls !== undefined, `metrics URL ${url.href} is https but no certificate was loaded (validate() refuses this)`);
  const ca = tls.ca === null ? {} : { ca: tls.ca };
  return createHttpsServer({ cert: tls.cert, key: tls.key, ...ca, requestCert: tls.clientCertAuth, rejectUnauthorized: tls.clientCertAuth }, handle);
}
