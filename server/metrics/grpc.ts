/**
 * go-grpc-prometheus' server metrics (grpc_server_started_total, _handled_total,
 * _handling_seconds) for grpc-js: every method of a service is wrapped, and methods a service
 * does not implement yet answer UNIMPLEMENTED through the same path so they are counted too.
 */
import * as grpc from '@grpc/grpc-js';
import type { MemberMetrics } from './registry.js';
import type { GrpcMethodLabels, GrpcMethodTally, GrpcType } from './grpc-tally.js';

/** grpc-go's code names, the values of the grpc_code label. */
const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(grpc.status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v as number, k.split('_').map((w) => w.charAt(0) + w.slice(1).toLowerCase()).join('').replace(/^Ok$/, 'OK')]),
);

function codeName(code: number | undefined): string {
  return CODE_NAMES[code ?? grpc.status.UNKNOWN] ?? 'Unknown';
}

function grpcType(method: grpc.MethodDefinition<unknown, unknown>): GrpcType {
  if (method.requestStream) return method.responseStream ? 'bidi_stream' : 'client_stream';
  return method.responseStream ? 'server_stream' : 'unary';
}

export function instrumentService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation, metrics: MemberMetrics | undefined): grpc.UntypedServiceImplementation {
  const wrapped: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const [, service = '', methodName = name] = /^\/([^/]+)\/(.+)$/.exec(method.path) ?? [];
    const labels: GrpcMethodLabels = { grpc_type: grpcType(method), grpc_service: service, grpc_method: methodName };
    const handler = implementation[name] ?? unimplemented(labels.grpc_type, methodName);
    wrapped[name] = metrics === undefined ? handler : wrap(handler, labels.grpc_type, metrics.grpc.method(labels));
  }
  return wrapped;
}

function unimplemented(type: GrpcType, method: string): grpc.UntypedHandleCall {
  const error = { code: grpc.status.UNIMPLEMENTED, details: `unknown method ${method}: not served by this gavel version yet` };
  if (type === 'unary' || type === 'client_stream') {
    return ((_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(error as grpc.ServiceError)) as grpc.UntypedHandleCall;
  }
  // An 'error' event makes grpc-js send the status (destroy() would send none).
  return ((call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', Object.assign(new Error(error.details), error))) as grpc.UntypedHandleCall;
}

function wrap(handler: grpc.UntypedHandleCall, type: GrpcType, tally: GrpcMethodTally): grpc.UntypedHandleCall {
  const finish = (started: number, code: number | undefined): void => tally.finish(codeName(code), (performance.now() - started) / 1000);
  if (type === 'unary' || type === 'client_stream') {
    return ((call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      const started = performance.now();
      tally.start();
      (handler as (c: unknown, cb: grpc.sendUnaryData<unknown>) => void)(call, (error, value, ...rest) => {
        finish(started, error ? (error.code ?? grpc.status.UNKNOWN) : grpc.status.OK);
        callback(error, value, ...rest);
      });
    }) as grpc.UntypedHandleCall;
  }
  return ((call: grpc.ServerWritableStream<unknown, unknown>) => {
    const started = performance.now();
    tally.start();
    let code: number | undefined;
    let done = false;
    const once = (c: number): void => {
      if (done) return;
      done = true;
      finish(started, c);
    };
    call.on('error', (error: Error & { code?: number }) => {
      code = error.code ?? grpc.status.UNKNOWN;
    });
    call.on('cancelled', () => once(grpc.status.CANCELLED));
    call.on('finish', () => once(code ?? grpc.status.OK));
    call.on('close', () => once(code ?? grpc.status.OK));
    (handler as (c: unknown) => void)(call);
  }) as grpc.UntypedHandleCall;
}
