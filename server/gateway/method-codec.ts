/**
 * One gateway route's conversions, from the method's types in proto/: a JSON request to the
 * object the in-process channel sends, its encoded size (gRPC's receive limit counts those
 * bytes), and an answer back to JSON text.
 */
import type * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { protobufRoot, serviceDefinition } from '../proto.js';
import type { JsonValue } from './json-reader.js';
import { messageFromJson, messageToJson } from './json-mapping.js';
import type { Route } from './routes.js';

export interface MethodCodec {
  /** The request of a JSON value (undefined: an empty body, the empty request). Throws JsonMappingError. */
  request(json: JsonValue | undefined): Record<string, unknown>;
  /** Bytes the request takes in protobuf, as gRPC's max-receive check counts them. */
  requestBytes(request: Record<string, unknown>): number;
  /** An answer (a wire object) as the JSON text etcd's gateway writes. */
  response(wire: unknown): string;
}

const cache = new Map<string, MethodCodec>();

export function methodCodec(route: Route): MethodCodec {
  const key = `${route.service}/${route.method}`;
  let codec = cache.get(key);
  if (codec === undefined) {
    codec = buildCodec(route);
    cache.set(key, codec);
  }
  return codec;
}

function buildCodec(route: Route): MethodCodec {
  const method = protobufRoot().lookupService(route.service).methods[route.method];
  if (method === undefined) throw new Error(`no method ${route.service}.${route.method} in proto/`);
  method.resolve();
  const requestType = method.resolvedRequestType as protobuf.Type;
  const responseType = method.resolvedResponseType as protobuf.Type;
  const definition = serviceDefinition(route.service)[route.method] as grpc.MethodDefinition<unknown, unknown> | undefined;
  if (definition === undefined) throw new Error(`no gRPC method ${route.service}.${route.method}`);
  return {
    request: (json) => (json === undefined ? {} : messageFromJson(requestType, json)),
    requestBytes: (request) => definition.requestSerialize(request).byteLength,
    response: (wire) => JSON.stringify(messageToJson(responseType, wire as Record<string, unknown>)),
  };
}
