/**
 * Reads JSON values from text the way the gateway's clients expect etcd's (Go's encoding/json
 * Decoder) to: one value at a time from a body that may hold several (a watch or keep-alive
 * request stream), numbers kept as their source text (int64 ids and revisions must not pass
 * through a double), and Go's error texts ("invalid character 'b' looking for beginning of
 * object key string", "unexpected EOF"), which etcd returns in its 400 answers.
 *
 * Pure: no I/O, no state between calls.
 */

/** A JSON number as written: the mapping decides whether it is an int64, an int32 or an enum. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

/** Malformed JSON, with Go's message. `incomplete` when more text could still make it valid. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly incomplete: boolean,
  ) {
    super(message);
  }
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

/** Go's quoteChar: how encoding/json names an unexpected character. */
function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return `'"'`;
  const quoted = JSON.stringify(c);
  return `'${quoted.slice(1, -1)}'`;
}

function invalid(c: string, context: string): JsonSyntaxError {
  return new JsonSyntaxError(`invalid character ${quoteChar(c)} ${context}`, false);
}

const EOF = (): JsonSyntaxError => new JsonSyntaxError('unexpected EOF', true);

/** Index of the first non-whitespace character at or after `from` (text.length if none). */
export function skipWhitespace(text: string, from: number): number {
  let i = from;
  while (i < text.length && WHITESPACE.has(text.charAt(i))) i++;
  return i;
}

/**
 * Parses the one JSON value starting at `start` (after whitespace). Returns it and the index
 * just past it; throws JsonSyntaxError. A number that ends the text is incomplete unless
 * `final` (the body is over), as Go's Decoder waits for the character after it.
 */
export function readJsonValue(text: string, start: number, final = true): { value: JsonValue; end: number } {
  const reader = new Reader(text, final);
  const value = reader.value(skipWhitespace(text, start), 'looking for beginning of value');
  return { value, end: reader.position };
}

class Reader {
  position = 0;
  constructor(
    private readonly text: string,
    private readonly final: boolean,
  ) {}

  private at(i: number): string {
    if (i >= this.text.length) throw EOF();
    return this.text.charAt(i);
  }

  value(i: number, context: string): JsonValue {
    const c = this.at(i);
    if (c === '{') return this.object(i + 1);
    if (c === '[') return this.array(i + 1);
    if (c === '"') return this.string(i + 1);
    if (c === 't') return this.literal(i, 'true', true);
    if (c === 'f') return this.literal(i, 'false', false);
    if (c === 'n') return this.literal(i, 'null', null);
    if (c === '-' || (c >= '0' && c <= '9')) return this.number(i);
    throw invalid(c, context);
  }

  private object(from: number): JsonValue {
    const result: { [key: string]: JsonValue } = {};
    let i = skipWhitespace(this.text, from);
    if (this.at(i) === '}') {
      this.position = i + 1;
      return result;
    }
    for (;;) {
      const c = this.at(i);
      if (c !== '"') throw invalid(c, 'looking for beginning of object key string');
      const key = this.string(i + 1);
      i = skipWhitespace(this.text, this.position);
      const colon = this.at(i);
      if (colon !== ':') throw invalid(colon, 'after object key');
      const value = this.value(skipWhitespace(this.text, i + 1), 'looking for beginning of value');
      // Later duplicates win, as in Go; a key named like an Object.prototype member is just a key.
      Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
      i = skipWhitespace(this.text, this.position);
      const next = this.at(i);
      if (next === '}') {
        this.position = i + 1;
        return result;
      }
      if (next !== ',') throw invalid(next, 'after object key:value pair');
      i = skipWhitespace(this.text, i + 1);
    }
  }

  private array(from: number): JsonValue {
    const result: JsonValue[] = [];
    let i = skipWhitespace(this.text, from);
    if (this.at(i) === ']') {
      this.position = i + 1;
      return result;
    }
    for (;;) {
      result.push(this.value(i, 'looking for beginning of value'));
      i = skipWhitespace(this.text, this.position);
      const next = this.at(i);
      if (next === ']') {
        this.position = i + 1;
        return result;
      }
      if (next !== ',') throw invalid(next, 'after array element');
      i = skipWhitespace(this.text, i + 1);
    }
  }

  /** From just after the opening quote; JSON.parse does the unescaping once the extent is known. */
  private string(from: number): string {
    let i = from;
    for (;;) {
      const c = this.at(i);
      if (c === '"') break;
      if (c < ' ') throw invalid(c, 'in string literal');
      if (c === '\\') {
        const e = this.at(i + 1);
        if (e === 'u') {
          for (let k = 2; k < 6; k++) {
            const h = this.at(i + k);
            if (!/[0-9a-fA-F]/.test(h)) throw invalid(h, 'in \\u hexadecimal character escape');
          }
          i += 6;
          continue;
        }
        if (!'"\\/bfnrt'.includes(e)) throw invalid(e, 'in string escape code');
        i += 2;
        continue;
      }
      i++;
    }
    this.position = i + 1;
    return JSON.parse(this.text.slice(from - 1, i + 1)) as string;
  }

  private literal<T extends JsonValue>(from: number, word: string, value: T): T {
    for (let k = 1; k < word.length; k++) {
      const c = this.at(from + k);
      if (c !== word.charAt(k)) throw invalid(c, `in literal ${word} (expecting ${quoteChar(word.charAt(k))})`);
    }
    this.position = from + word.length;
    return value;
  }

  private number(from: number): JsonNumber {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(from));
    const text = match?.[0] ?? '';
    const end = from + text.length;
    if (text === '' || text === '-') {
      const c = this.at(from + text.length);
      throw invalid(c, 'in numeric literal');
    }
    // "12" at the end of a chunk may be the start of "123": wait for more unless the body is over.
    if (end >= this.text.length && !this.final) throw EOF();
    const next = this.text.charAt(end);
    if (next === '.' || next === 'e' || next === 'E') {
      if (end + 1 >= this.text.length) throw EOF();
      throw invalid(this.text.charAt(end + 1), next === '.' ? 'after decimal point in numeric literal' : 'in exponent of numeric literal');
    }
    this.position = end;
    return new JsonNumber(text);
  }
}
