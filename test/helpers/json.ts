/**
 * Lossless JSON for etcdctl output: etcd prints uint64 ids (cluster_id, member_id, lease ids)
 * as bare JSON numbers above 2^53, which JSON.parse would round. Integers that are not safe
 * JavaScript numbers are turned into decimal strings before parsing; compare them with
 * `asBigInt`.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Parses JSON, keeping every integer outside Number.isSafeInteger as its exact decimal string. */
export function parseJsonLossless(text: string): Json {
  let out = '';
  let index = 0;
  while (index < text.length) {
    const char = text[index] as string;
    if (char === '"') {
      const end = endOfString(text, index);
      out += text.slice(index, end);
      index = end;
      continue;
    }
    if (char === '-' || (char >= '0' && char <= '9')) {
      let end = index + 1;
      while (end < text.length && /[0-9eE.+-]/.test(text[end] as string)) end += 1;
      const token = text.slice(index, end);
      const isUnsafeInteger = /^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token));
      out += isUnsafeInteger ? `"${token}"` : token;
      index = end;
      continue;
    }
    out += char;
    index += 1;
  }
  return JSON.parse(out) as Json;
}

function endOfString(text: string, start: number): number {
  let index = start + 1;
  while (index < text.length) {
    const char = text[index];
    if (char === '\\') index += 2;
    else if (char === '"') return index + 1;
    else index += 1;
  }
  throw new Error(`unterminated JSON string at ${start}`);
}

/** Parses each non-empty line of `text` as one JSON document (etcdctl watch -w json prints one per response). */
export function parseJsonLines(text: string): Json[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => parseJsonLossless(line));
}

export function asObject(value: Json | undefined, what = 'value'): { [key: string]: Json } {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} is not a JSON object: ${JSON.stringify(value)}`);
  }
  return value;
}

export function asArray(value: Json | undefined, what = 'value'): Json[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a JSON array: ${JSON.stringify(value)}`);
  return value;
}

/** A uint64/int64 that etcd printed either as a number or (when large) as a string. */
export function asBigInt(value: Json | undefined, what = 'value'): bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  throw new Error(`${what} is not an integer: ${JSON.stringify(value)}`);
}

export function asNumber(value: Json | undefined, what = 'value'): number {
  if (typeof value !== 'number') throw new Error(`${what} is not a number: ${JSON.stringify(value)}`);
  return value;
}

export function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export function unb64(value: Json | undefined): string {
  if (typeof value !== 'string') throw new Error(`not a base64 string: ${JSON.stringify(value)}`);
  return Buffer.from(value, 'base64').toString('utf8');
}
