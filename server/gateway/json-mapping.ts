/**
 * proto3 JSON as etcd 3.4's gRPC gateway speaks it (grpc-gateway v1, jsonpb with OrigName and
 * without EmitDefaults), written once from the protobufjs reflection of proto/, never per message.
 *
 * Out (a wire object as proto-loader decodes it → JSON):
 *   - field names as in the .proto (`create_revision`, `raft_term`, `ID`, `clientURLs`),
 *     in declaration order;
 *   - zero scalars, empty bytes and lists, unset messages omitted; the set member of a oneof
 *     is written even when zero (jsonpb does);
 *   - 64-bit integers as decimal strings, 32-bit ones as numbers; bytes in standard base64;
 *     enums by name (a number the .proto does not name stays a number).
 * In (JSON → an object proto-loader's serializer takes):
 *   - a field by its .proto name or its lowerCamelCase JSON name; unknown fields ignored; null
 *     means unset;
 *   - integers as numbers or strings, enums by name or number, bytes as standard base64.
 * A value of the wrong kind is a JsonMappingError carrying Go's wording.
 */
import type protobuf from 'protobufjs';
import { JsonNumber, JsonSyntaxError, readJsonValue, skipWhitespace, type JsonValue } from './json-reader.js';

export class JsonMappingError extends Error {}

const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const FLOAT_TYPES = new Set(['double', 'float']);
/** Go's name of the type a field decodes into, for error texts. */
const GO_TYPES: Record<string, string> = { bytes: '[]uint8', string: 'string', bool: 'bool', double: 'float64', float: 'float32', sint64: 'int64', sfixed64: 'int64', fixed64: 'uint64', sint32: 'int32', sfixed32: 'int32', fixed32: 'uint32' };

/** protoc's json_name: underscores dropped, the letter after each one upper-cased. */
export function jsonName(protoName: string): string {
  return protoName.replace(/_([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase()).replace(/_/g, '');
}

function kindOf(value: JsonValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof JsonNumber) return 'number';
  if (typeof value === 'object') return 'object';
  return typeof value === 'boolean' ? 'bool' : 'string';
}

function mismatch(value: JsonValue, goType: string): JsonMappingError {
  return new JsonMappingError(`json: cannot unmarshal ${kindOf(value)} into Go value of type ${goType}`);
}

function isObject(value: JsonValue): value is { [key: string]: JsonValue } {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof JsonNumber);
}

/** Fields resolved once per type (protobufjs resolves lazily). */
function fieldsOf(type: protobuf.Type): protobuf.Field[] {
  const fields = type.fieldsArray;
  for (const field of fields) field.resolve();
  return fields;
}

// ---------------------------------------------------------------------------------------------
// JSON → message

/** A JSON request body (already parsed) as the object proto-loader's serializer takes. */
export function messageFromJson(type: protobuf.Type, json: JsonValue): Record<string, unknown> {
  if (!isObject(json)) throw mismatch(json, 'map[string]json.RawMessage');
  const result: Record<string, unknown> = {};
  for (const field of fieldsOf(type)) {
    const own = (name: string): boolean => Object.prototype.hasOwnProperty.call(json, name);
    const key = own(field.name) ? field.name : own(jsonName(field.name)) ? jsonName(field.name) : undefined;
    if (key === undefined) continue;
    const value = json[key] ?? null;
    if (value === null) continue;
    if (field.repeated) {
      if (!Array.isArray(value)) throw mismatch(value, `[]${goTypeOf(field)}`);
      result[field.name] = value.map((item) => fieldFromJson(field, item));
    } else {
      result[field.name] = fieldFromJson(field, value);
    }
  }
  return result;
}

function goTypeOf(field: protobuf.Field): string {
  if (field.resolvedType !== null) return field.resolvedType.name;
  return GO_TYPES[field.type] ?? field.type;
}

function fieldFromJson(field: protobuf.Field, value: JsonValue): unknown {
  const resolved = field.resolvedType;
  if (resolved !== null && 'fieldsArray' in resolved) return messageFromJson(resolved, value);
  if (resolved !== null) return enumFromJson(resolved as protobuf.Enum, value);
  if (LONG_TYPES.has(field.type)) return integerFromJson(value, field.type, true);
  if (INT_TYPES.has(field.type)) return Number(integerFromJson(value, field.type, false));
  if (FLOAT_TYPES.has(field.type)) {
    if (value instanceof JsonNumber) return Number(value.text);
    throw mismatch(value, goTypeOf(field));
  }
  if (field.type === 'bool') {
    if (typeof value === 'boolean') return value;
    throw mismatch(value, 'bool');
  }
  if (field.type === 'string') {
    if (typeof value === 'string') return value;
    throw mismatch(value, 'string');
  }
  if (field.type === 'bytes') {
    if (typeof value === 'string') return base64Decode(value);
    throw mismatch(value, '[]uint8');
  }
  throw new JsonMappingError(`unsupported field type ${field.type}`);
}

/**
 * An integer given as a JSON number or a string holding one; kept as decimal text. jsonpb reads
 * the string's contents as JSON, so its errors are the JSON reader's ("unexpected end of JSON input").
 */
function integerFromJson(value: JsonValue, protoType: string, long: boolean): string {
  const goType = GO_TYPES[protoType] ?? protoType;
  const number = typeof value === 'string' ? numberInString(value, goType) : value;
  if (!(number instanceof JsonNumber)) throw mismatch(value, goType);
  const text = number.text;
  if (!/^-?\d+$/.test(text)) throw new JsonMappingError(`json: cannot unmarshal number ${text} into Go value of type ${goType}`);
  const unsigned = protoType.startsWith('u') || protoType.startsWith('fixed');
  const bits = long ? 64n : 32n;
  const n = BigInt(text);
  const min = unsigned ? 0n : -(1n << (bits - 1n));
  const max = unsigned ? (1n << bits) - 1n : (1n << (bits - 1n)) - 1n;
  if (n < min || n > max) throw new JsonMappingError(`json: cannot unmarshal number ${text} into Go value of type ${goType}`);
  return n.toString();
}

function enumFromJson(type: protobuf.Enum, value: JsonValue): number {
  if (typeof value === 'string') {
    const number = type.values[value];
    if (number === undefined) throw new JsonMappingError(`unknown value ${JSON.stringify(value)} for enum ${goEnumName(type)}`);
    return number;
  }
  if (value instanceof JsonNumber && /^-?\d+$/.test(value.text)) return Number(integerFromJson(value, 'int32', false));
  throw mismatch(value, type.name);
}

function numberInString(text: string, goType: string): JsonValue {
  if (skipWhitespace(text, 0) >= text.length) throw new JsonMappingError('unexpected end of JSON input');
  try {
    const { value, end } = readJsonValue(text, 0, true);
    if (skipWhitespace(text, end) < text.length) throw new JsonMappingError(`invalid character ${JSON.stringify(text.charAt(skipWhitespace(text, end))).replace(/^"|"$/g, "'")} after top-level value`);
    return value;
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new JsonMappingError(error.message === 'unexpected EOF' ? 'unexpected end of JSON input' : error.message);
    if (error instanceof JsonMappingError) throw error;
    throw new JsonMappingError(`json: cannot unmarshal string into Go value of type ${goType}`);
  }
}

/** Go's name of an enum type: nested ones are Parent_Enum (etcdserverpb.Compare_CompareTarget). */
function goEnumName(type: protobuf.Enum): string {
  const parent = type.parent;
  if (parent !== null && 'fieldsArray' in parent) {
    return `${goEnumName(parent as unknown as protobuf.Enum)}_${type.name}`;
  }
  return type.fullName.replace(/^\./, '');
}

/** Standard base64 with padding, as Go's encoding/json reads []byte (line breaks skipped). */
export function base64Decode(text: string): Buffer {
  const clean = text.replace(/[\r\n]/g, '');
  const bad = clean.search(/[^A-Za-z0-9+/=]/);
  if (bad >= 0) throw new JsonMappingError(`illegal base64 data at input byte ${bad}`);
  const padding = clean.indexOf('=');
  const body = padding < 0 ? clean : clean.slice(0, padding);
  const tail = padding < 0 ? '' : clean.slice(padding);
  if (clean.length % 4 !== 0 || !/^={0,2}$/.test(tail) || (tail.length > 0 && (body.length + tail.length) % 4 !== 0)) {
    const at = padding >= 0 && !/^={0,2}$/.test(tail) ? padding : clean.length - (clean.length % 4 === 0 ? 4 : clean.length % 4);
    throw new JsonMappingError(`illegal base64 data at input byte ${Math.max(0, at)}`);
  }
  return Buffer.from(clean, 'base64');
}

// ---------------------------------------------------------------------------------------------
// message → JSON

/** A decoded wire object (proto-loader's WIRE_OPTIONS form) as etcd's gateway writes it. */
export function messageToJson(type: protobuf.Type, wire: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const field of fieldsOf(type)) {
    const value = wire[field.name];
    if (value === undefined || value === null) continue;
    const oneof = field.partOf;
    if (oneof !== null) {
      // The discriminator names the member that is set; that one is written even when zero.
      if (wire[oneof.name] !== field.name) continue;
      result[field.name] = fieldToJson(field, value);
      continue;
    }
    if (field.repeated) {
      const list = value as unknown[];
      if (list.length > 0) result[field.name] = list.map((item) => fieldToJson(field, item));
      continue;
    }
    if (isZero(field, value)) continue;
    result[field.name] = fieldToJson(field, value);
  }
  return result;
}

function isZero(field: protobuf.Field, value: unknown): boolean {
  if (field.resolvedType !== null && 'fieldsArray' in field.resolvedType) return false;
  if (value instanceof Uint8Array) return value.byteLength === 0;
  return value === 0 || value === '0' || value === '' || value === false;
}

function fieldToJson(field: protobuf.Field, value: unknown): unknown {
  const resolved = field.resolvedType;
  if (resolved !== null && 'fieldsArray' in resolved) return messageToJson(resolved, value as Record<string, unknown>);
  if (resolved !== null) return (resolved as protobuf.Enum).valuesById[value as number] ?? value;
  if (LONG_TYPES.has(field.type)) return String(value);
  if (field.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64');
  return value;
}
