/**
 * Request bodies, bounded. A unary call's body is read whole (up to a limit, so a client cannot
 * make the member buffer without end) and its first JSON value is the request, as grpc-gateway's
 * Decoder takes it; a stream's body is cut into JSON values as they arrive.
 */
import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { JsonSyntaxError, readJsonValue, skipWhitespace, type JsonValue } from './json-reader.js';

/** The body was longer than the limit: reading stopped at `bytes`. */
export class BodyTooLarge extends Error {
  constructor(readonly bytes: number) {
    super(`request body larger than ${bytes} bytes`);
  }
}

/** The client went away before its body ended: there is no one to answer. */
export class ClientGone extends Error {
  constructor() {
    super('client disconnected before the request body ended');
  }
}

/** Reads the whole body; rejects with BodyTooLarge past `limitBytes` (and stops reading), ClientGone on a disconnect. */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer): void => {
      bytes += chunk.byteLength;
      if (bytes > limitBytes) {
        req.removeListener('data', onData);
        req.pause();
        reject(new BodyTooLarge(bytes));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', () => reject(new ClientGone()));
    req.once('close', () => {
      if (!req.complete) reject(new ClientGone());
    });
  });
}

/** The first JSON value of a body, or undefined for an empty one (an empty request, as in etcd). */
export function firstJsonValue(body: Buffer): JsonValue | undefined {
  const text = body.toString('utf8');
  const start = skipWhitespace(text, 0);
  if (start >= text.length) return undefined;
  return readJsonValue(text, start, true).value;
}

export interface ValuesRead {
  readonly values: JsonValue[];
  readonly error?: Error;
}

/**
 * Cuts a stream of bytes into JSON values (whitespace between them optional, as Go's Decoder
 * reads them). Text that is not a complete value yet waits for more, up to `limitChars`.
 */
export class JsonValueStream {
  private readonly decoder = new StringDecoder('utf8');
  private text = '';

  constructor(private readonly limitChars: number) {}

  /** Values completed by this chunk, and the error (JsonSyntaxError, BodyTooLarge) that stops the stream, if any. */
  push(chunk: Buffer): ValuesRead {
    this.text += this.decoder.write(chunk);
    return this.take(false);
  }

  /** Values left at the end of the body; a partial one is an error ("unexpected EOF"). */
  finish(): ValuesRead {
    this.text += this.decoder.end();
    return this.take(true);
  }

  private take(final: boolean): ValuesRead {
    const values: JsonValue[] = [];
    for (;;) {
      const start = skipWhitespace(this.text, 0);
      if (start >= this.text.length) {
        this.text = '';
        return { values };
      }
      try {
        const { value, end } = readJsonValue(this.text, start, final);
        values.push(value);
        this.text = this.text.slice(end);
      } catch (error) {
        if (!(error instanceof JsonSyntaxError) || !error.incomplete || final) return { values, error: error as Error };
        if (this.text.length - start > this.limitChars) return { values, error: new BodyTooLarge(this.text.length - start) };
        this.text = this.text.slice(start);
        return { values };
      }
    }
  }
}
