/**
 * The HTTP/1.1 side of a client port (and of a --listen-metrics-urls listener) is a chain of
 * handlers. Each handler answers the requests whose paths it owns and returns true, or returns
 * false without touching the response; the first to return true wins, and a request nobody
 * owns gets 404. The JSON gateway (/v3/...) plugs in ahead of the member's own endpoints.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

export type HttpHandler = (request: IncomingMessage, response: ServerResponse) => boolean;

export function handlerChain(handlers: readonly HttpHandler[]): RequestListener {
  return (request, response) => {
    for (const handler of handlers) {
      if (handler(request, response)) return;
    }
    reply(response, 404, 'text/plain', 'not found\n');
  };
}

/** The path without the query string. */
export function pathOf(request: IncomingMessage): string {
  return (request.url ?? '/').split('?')[0] ?? '/';
}

export function reply(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, { 'content-type': type });
  response.end(body);
}
