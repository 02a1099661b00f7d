/**
 * etcdserverpb.Watch: one hub stream per gRPC stream. The hub decides what to send; this
 * adapter maps requests in and responses out, and relays back-pressure through a StreamOutput:
 * past its bound (bytes the call holds, or write() false) the hub holds further responses in
 * its own bounded queue, then lets the watchers fall behind and catch up from history, and the
 * stream stops reading requests until the client drains it. A slow client never blocks writers
 * or other watchers, and costs a bounded amount of memory.
 */
import type * as grpc from '@grpc/grpc-js';
import type { WatchCreate } from '../watch/hub.js';
import { bytes, toNumber } from './convert.js';
import { headerFields, type ApiContext } from './context.js';
import { encodeWatchResponse } from './watch-encoding.js';
import { failStream, goErrorText } from './status.js';
import { GRPC_FRAME_BYTES, StreamOutput } from './stream-output.js';
import { callerOf } from './caller.js';
import type { WireWatchCreateRequest, WireWatchRequest } from './wire.js';

function createFromWire(w: WireWatchCreateRequest): WatchCreate {
  const filters: WatchCreate['filters'] = [];
  for (const f of w.filters ?? []) {
    if (f === 0) filters.push('noPut');
    else if (f === 1) filters.push('noDelete');
  }
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    startRevision: toNumber(w.start_revision),
    progressNotify: w.progress_notify === true,
    filters,
    prevKv: w.prev_kv === true,
    watchId: toNumber(w.watch_id),
    fragment: w.fragment === true,
  };
}

/**
 * Why the caller may not watch this range, as etcd words it in cancel_reason ("rpc error: code =
 * PermissionDenied desc = etcdserver: permission denied"), or undefined when it may. The token is
 * checked at each create, as etcd does; a watch keeps running after its token expires.
 */
async function watchRefusal(ctx: ApiContext, call: grpc.ServerDuplexStream<WireWatchRequest, object>, request: WireWatchRequest): Promise<string | undefined> {
  const create = request.create_request;
  if (create === null || create === undefined) return undefined;
  try {
    const user = await callerOf(ctx, call);
    if (user !== undefined) ctx.machine.auth.store.checkRange(user, 'read', bytes(create.key), bytes(create.range_end));
    return undefined;
  } catch (error) {
    return goErrorText(error);
  }
}

export function watchService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, object>) => {
      let open = true;
      const output = new StreamOutput<Uint8Array>(call, { kind: 'watch', tally: ctx.streams });
      const stream = ctx.watchHub.openStream({
        send: (response) => {
          if (!open) return false;
          const bytes = encodeWatchResponse(response, headerFields(ctx));
          return output.write(bytes, GRPC_FRAME_BYTES + bytes.byteLength);
        },
        queued: (bytes) => output.holdUpstream(bytes),
        // The hub gives up on a client that keeps asking but never reads (bounded memory).
        fail: (error) => {
          if (!open) return;
          open = false;
          failStream(call, error);
        },
      });
      output.onDrain(() => stream.drained());
      const handle = (request: WireWatchRequest, refusal: string | undefined): void => {
        if (!open) return;
        if (request.create_request) stream.create({ ...createFromWire(request.create_request), ...(refusal === undefined ? {} : { refusal }) });
        else if (request.cancel_request) stream.cancel(toNumber(request.cancel_request.watch_id));
        else if (request.progress_request) stream.requestProgress();
      };
      // Requests take effect in order. Under auth a create first resolves its caller, which may
      // wait (a token fresh from another member needs a read barrier): later requests queue behind.
      let queue: Promise<void> | undefined;
      call.on('data', (request: WireWatchRequest) => {
        const checked = request.create_request !== null && request.create_request !== undefined && ctx.machine.auth.store.enabled;
        if (queue === undefined && !checked) {
          handle(request, undefined);
          return;
        }
        // Counted as requests in progress: a client flooding creates while auth waits is paused too.
        const answered = output.begin();
        const next: Promise<void> = (queue ?? Promise.resolve())
          .then(async () => handle(request, checked ? await watchRefusal(ctx, call, request) : undefined))
          .catch((error: unknown) => {
            if (!open) return;
            finish();
            failStream(call, error);
          });
        queue = next;
        void next.finally(() => {
          answered();
          if (queue === next) queue = undefined;
        });
      });
      const finish = (): void => {
        if (!open) return;
        open = false;
        stream.close();
      };
      call.on('end', () => {
        finish();
        call.end();
      });
      call.on('cancelled', finish);
      call.on('error', finish);
      call.on('close', finish);
    },
  };
}
