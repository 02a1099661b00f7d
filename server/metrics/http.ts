/**
 * The member's own HTTP endpoints, served on every client port and on each --listen-metrics-urls
 * listener: /version (etcd's JSON), /metrics (Prometheus text format), /health (etcd's JSON),
 * /livez and /readyz (Kubernetes probes). An https:// metrics URL is served, as etcd does, with
 * the client certificate (--cert-file), requiring client certificates under --client-cert-auth.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { listenHost } from '../config.js';
import { assert } from '../errors.js';
import { pathOf, reply, type HttpHandler } from '../http/handlers.js';
import type { TlsMaterial } from '../tls.js';
import type { MemberMetrics } from './registry.js';

export interface HealthSource {
  /** A leader exists and a linearizable read completes in time. */
  healthy(): Promise<{ ok: boolean; reason: string }>;
  /** The member has a leader and has applied what was committed when it started. */
  ready(): boolean;
}

const PATHS = new Set(['/version', '/metrics', '/health', '/livez', '/readyz']);

/**
 * etcd's /version body: the server version and the cluster version (major.minor.0), e.g.
 * {"etcdserver":"3.4.23","etcdcluster":"3.4.0"} from etcd 3.4.23. gavel gives the version it
 * reports in Maintenance.Status, so clients that gate features on it see one answer.
 */
export function versionBody(serverVersion: string): string {
  const [major = '0', minor = '0'] = serverVersion.split('.');
  return JSON.stringify({ etcdserver: serverVersion, etcdcluster: `${major}.${minor}.0` });
}

export function memberEndpoints(metrics: MemberMetrics, health: HealthSource, serverVersion: string): HttpHandler {
  const version = versionBody(serverVersion);
  return (request, response) => {
    const path = pathOf(request);
    if (!PATHS.has(path)) return false;
    // etcd answers 405 to anything but GET (and HEAD) on these paths.
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      reply(response, 405, 'text/plain', 'Method Not Allowed\n');
      return true;
    }
    switch (path) {
      case '/version':
        reply(response, 200, 'application/json', version);
        break;
      case '/metrics':
        metrics.registry.metrics().then(
          (text) => reply(response, 200, metrics.registry.contentType, text),
          (error: unknown) => reply(response, 500, 'text/plain', String(error)),
        );
        break;
      case '/health':
        health.healthy().then(
          // etcd's body: {"health":"true"} or {"health":"false"} (with a reason since 3.5).
          ({ ok, reason }) => reply(response, ok ? 200 : 503, 'application/json', JSON.stringify({ health: String(ok), reason })),
          () => reply(response, 503, 'application/json', JSON.stringify({ health: 'false', reason: 'health check failed' })),
        );
        break;
      case '/livez':
        reply(response, 200, 'text/plain', 'ok\n');
        break;
      default:
        if (health.ready()) reply(response, 200, 'text/plain', 'ok\n');
        else reply(response, 503, 'text/plain', 'not ready: no leader yet, or still applying the log\n');
    }
    return true;
  };
}

/** The extra listeners of --listen-metrics-urls (none by default): plain HTTP/1.1 servers. */
export async function serveMetrics(urls: readonly URL[], handle: RequestListener, tls?: TlsMaterial): Promise<{ servers: Server[]; addresses: string[] }> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (const url of urls) {
    const server = listener(url, tls, handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`cannot listen on ${url.href} (--listen-metrics-urls): ${error.message}`)));
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
