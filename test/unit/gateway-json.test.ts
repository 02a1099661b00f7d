/**
 * The gateway's JSON mapping in isolation: proto3 JSON as etcd 3.4's grpc-gateway reads and
 * writes it (names, zero fields, int64 strings, base64, enums, oneofs), and Go's reading of a
 * body (several values, numbers kept exact, Go's error texts).
 */
import { describe, expect, it } from 'vitest';
import type protobuf from 'protobufjs';
import { protobufRoot } from '../../server/proto.js';
import { JsonNumber, JsonSyntaxError, readJsonValue } from '../../server/gateway/json-reader.js';
import { base64Decode, jsonName, JsonMappingError, messageFromJson, messageToJson } from '../../server/gateway/json-mapping.js';
import { JsonValueStream } from '../../server/gateway/request-body.js';
import { errorBody, httpStatusOf, streamErrorChunk } from '../../server/gateway/errors.js';
import { gatewayPath, routeOf } from '../../server/gateway/routes.js';

const type = (name: string): protobuf.Type => protobufRoot().lookupType(name);
const parse = (text: string): ReturnType<typeof readJsonValue>['value'] => readJsonValue(text, 0).value;

describe('gateway JSON reader', () => {
  it('keeps numbers as their text, so 64-bit ids survive', () => {
    const value = parse('{"ID": 7587869521234567890, "TTL": 5}') as Record<string, JsonNumber>;
    expect(value['ID']?.text).toBe('7587869521234567890');
    expect(value['TTL']).toBeInstanceOf(JsonNumber);
  });

  it("words malformed JSON as Go's encoding/json does", () => {
    const message = (text: string): string => {
      try {
        parse(text);
      } catch (error) {
        if (error instanceof JsonSyntaxError) return error.message;
      }
      return 'no error';
    };
    expect(message('{bad')).toBe("invalid character 'b' looking for beginning of object key string");
    expect(message('{"limit":x}')).toBe("invalid character 'x' looking for beginning of value");
    expect(message('{"a" 1}')).toBe("invalid character '1' after object key");
    expect(message('{"a":1 "b":2}')).toBe(`invalid character '"' after object key:value pair`);
    expect(message('[1 2]')).toBe("invalid character '2' after array element");
    expect(message('{"a":tru}')).toBe("invalid character '}' in literal true (expecting 'e')");
    expect(message('{"a":')).toBe('unexpected EOF');
  });

  it('cuts a stream body into values, waiting for the rest of a partial one', () => {
    const stream = new JsonValueStream(1000);
    expect(stream.push(Buffer.from('{"ID":"1"}{"ID"')).values).toEqual([{ ID: '1' }]);
    expect(stream.push(Buffer.from(':"2"}\n {"ID":3')).values).toEqual([{ ID: '2' }]);
    const last = stream.finish();
    expect(last.values.length).toBe(0);
    expect(last.error?.message).toBe('unexpected EOF');
    const values = new JsonValueStream(1000).push(Buffer.from('{"a":1} {oops'));
    expect([values.values.length, values.error?.message]).toEqual([1, "invalid character 'o' looking for beginning of object key string"]);
  });

  it('bounds what a partial value may hold', () => {
    const read = new JsonValueStream(10).push(Buffer.from('{"key":"aaaaaaaaaaaaaaaaaaaa'));
    expect(read.error?.name).toBe('Error');
    expect(read.error?.message).toMatch(/larger than/);
  });
});

describe('gateway JSON mapping', () => {
  it('reads proto names and camelCase names, enums by name or number, integers as numbers or strings', () => {
    const request = messageFromJson(type('etcdserverpb.RangeRequest'), parse('{"key":"Zm9v","rangeEnd":"Zm9w","limit":5,"revision":"7","sort_order":"DESCEND","sortTarget":2,"keys_only":true,"extra":{"x":1}}'));
    expect(request).toEqual({ key: Buffer.from('foo'), range_end: Buffer.from('fop'), limit: '5', revision: '7', sort_order: 2, sort_target: 2, keys_only: true });
    expect(jsonName('create_revision')).toBe('createRevision');
    expect(jsonName('ID')).toBe('ID');
  });

  it('reads nested messages, repeated fields and oneofs (a Patroni txn)', () => {
    const txn = messageFromJson(
      type('etcdserverpb.TxnRequest'),
      parse('{"compare":[{"target":"CREATE","create_revision":"0","key":"Zm9v"}],"success":[{"request_put":{"key":"Zm9v","value":"YQ==","lease":"42"}}]}'),
    );
    expect(txn).toEqual({
      compare: [{ target: 1, create_revision: '0', key: Buffer.from('foo') }],
      success: [{ request_put: { key: Buffer.from('foo'), value: Buffer.from('a'), lease: '42' } }],
    });
  });

  it('refuses values of the wrong kind with Go-style messages', () => {
    const fails = (json: string): string => {
      try {
        messageFromJson(type('etcdserverpb.PutRequest'), parse(json));
      } catch (error) {
        if (error instanceof JsonMappingError) return error.message;
      }
      return 'no error';
    };
    expect(fails('{"key":5}')).toBe('json: cannot unmarshal number into Go value of type []uint8');
    expect(fails('{"key":"!!"}')).toBe('illegal base64 data at input byte 0');
    // Checked against etcd 3.4.23's answers.
    expect(fails('{"lease":"x"}')).toBe("invalid character 'x' looking for beginning of value");
    expect(fails('{"lease":""}')).toBe('unexpected end of JSON input');
    expect(fails('{"lease":"1.5"}')).toBe('json: cannot unmarshal number 1.5 into Go value of type int64');
    expect(fails('{"lease":1.5}')).toBe('json: cannot unmarshal number 1.5 into Go value of type int64');
    expect(fails('5')).toBe('json: cannot unmarshal number into Go value of type map[string]json.RawMessage');
    expect(fails('{"prev_kv":"yes"}')).toBe('json: cannot unmarshal string into Go value of type bool');
    expect(fails('[1]')).toBe('json: cannot unmarshal array into Go value of type map[string]json.RawMessage');
    expect(fails('{"lease":"9223372036854775808"}')).toBe('json: cannot unmarshal number 9223372036854775808 into Go value of type int64');
    expect(() => messageFromJson(type('etcdserverpb.Compare'), parse('{"target":"BOGUS"}'))).toThrow('unknown value "BOGUS" for enum etcdserverpb.Compare_CompareTarget');
    expect(() => messageFromJson(type('etcdserverpb.AlarmRequest'), parse('{"alarm":"BOGUS"}'))).toThrow('unknown value "BOGUS" for enum etcdserverpb.AlarmType');
    expect(() => base64Decode('Zm9')).toThrow(JsonMappingError);
    expect(base64Decode('Zm9v\n').toString()).toBe('foo');
  });

  it('writes proto names in declaration order, omits zero fields, int64 as strings, enums by name', () => {
    const wire = {
      header: { cluster_id: '1', member_id: '2', revision: '9', raft_term: '3' },
      watch_id: '0',
      created: false,
      canceled: false,
      compact_revision: '0',
      cancel_reason: '',
      fragment: false,
      events: [
        { type: 0, kv: { key: Buffer.from('a'), create_revision: '5', mod_revision: '5', version: '1', value: Buffer.from('v'), lease: '0' }, prev_kv: null },
        { type: 1, kv: { key: Buffer.from('a'), create_revision: '0', mod_revision: '9', version: '0', value: Buffer.alloc(0), lease: '0' }, prev_kv: null },
      ],
    };
    expect(JSON.stringify(messageToJson(type('etcdserverpb.WatchResponse'), wire))).toBe(
      '{"header":{"cluster_id":"1","member_id":"2","revision":"9","raft_term":"3"},"events":[{"kv":{"key":"YQ==","create_revision":"5","mod_revision":"5","version":"1","value":"dg=="}},{"type":"DELETE","kv":{"key":"YQ==","mod_revision":"9"}}]}',
    );
  });

  it('writes the set member of a oneof, and an empty message as {}', () => {
    const wire = { header: { revision: '4', cluster_id: '0', member_id: '0', raft_term: '0' }, succeeded: false, responses: [{ response: 'response_put', response_put: { header: { revision: '4', cluster_id: '0', member_id: '0', raft_term: '0' }, prev_kv: null } }] };
    expect(JSON.stringify(messageToJson(type('etcdserverpb.TxnResponse'), wire))).toBe('{"header":{"revision":"4"},"responses":[{"response_put":{"header":{"revision":"4"}}}]}');
    const compare = { result: 0, target: 0, key: Buffer.from('k'), target_union: 'version', version: '0', range_end: Buffer.alloc(0) };
    expect(messageToJson(type('etcdserverpb.Compare'), compare)).toEqual({ key: 'aw==', version: '0' });
    expect(messageToJson(type('etcdserverpb.AlarmResponse'), { header: null, alarms: [] })).toEqual({});
  });

  it('writes 32-bit integers as numbers (Hash)', () => {
    expect(messageToJson(type('etcdserverpb.HashResponse'), { header: null, hash: 1832441731 })).toEqual({ hash: 1832441731 });
  });
});

describe('gateway errors and routes', () => {
  it("maps gRPC codes to grpc-gateway 1.9.5's HTTP statuses and bodies", () => {
    expect([3, 5, 7, 9, 11, 14, 16, 2, 8, 12, 1, 4].map(httpStatusOf)).toEqual([400, 404, 403, 400, 400, 503, 401, 500, 429, 501, 408, 504]);
    expect(errorBody({ code: 3, message: 'etcdserver: key is not provided' })).toBe('{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}');
    expect(streamErrorChunk({ code: 5, message: 'etcdserver: requested lease not found' })).toBe(
      '{"error":{"grpc_code":5,"http_code":404,"message":"etcdserver: requested lease not found","http_status":"Not Found"}}',
    );
  });

  it("knows etcd 3.4's paths and aliases", () => {
    expect(gatewayPath('/v3beta/kv/range')).toBe('kv/range');
    expect(gatewayPath('/v3alpha/watch')).toBe('watch');
    expect(gatewayPath('/version')).toBeUndefined();
    expect(routeOf('kv/lease/revoke')).toEqual({ service: 'etcdserverpb.Lease', method: 'LeaseRevoke', kind: 'unary' });
    expect(routeOf('maintenance/hash')?.method).toBe('Hash');
    expect(routeOf('election/observe')?.kind).toBe('server');
    expect(routeOf('lease/keepalive')?.kind).toBe('bidi');
  });
});
