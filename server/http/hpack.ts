/**
 * Just enough HPACK (RFC 7541) to rewrite a client's request headers on their way to Node's
 * HTTP/2 server: a decoder that follows the client's dynamic table, and an encoder that writes
 * every field as a literal "without indexing" (or "never indexed", as the client marked it).
 *
 * The encoder never adds to the server's dynamic table, so what the server decodes does not
 * depend on the client's indexing decisions: once one header block of a connection is rewritten,
 * every later one must be too (the client refers to entries the server never saw).
 *
 * Names and values are latin1 strings: one character per byte, so binary values survive.
 */
import { HUFFMAN_CODE_BITS, HUFFMAN_CODES, STATIC_TABLE } from './hpack-tables.js';

export interface HeaderField {
  readonly name: string;
  readonly value: string;
  /** Sent as "never indexed" (sensitive): kept so on re-encoding. */
  readonly sensitive: boolean;
}

export class HpackError extends Error {
  constructor(message: string) {
    super(`HPACK: ${message}`);
    this.name = 'HpackError';
  }
}

/** Every entry costs its name and value lengths plus 32 (RFC 7541 section 4.1). */
const ENTRY_OVERHEAD_BYTES = 32;
/** The bound on decoded header bytes per block (same order as Node's maxHeaderListSize defaults). */
const MAX_DECODED_BYTES = 256 * 1024;

export class HpackDecoder {
  /** Newest first: dynamic index 62 is entries[0]. */
  private readonly entries: [string, string][] = [];
  private sizeBytes = 0;
  private limitBytes: number;

  /** maxTableBytes: the SETTINGS_HEADER_TABLE_SIZE the server announced (4096 unless changed). */
  constructor(private readonly maxTableBytes = 4096) {
    this.limitBytes = maxTableBytes;
  }

  decode(block: Buffer): HeaderField[] {
    const fields: HeaderField[] = [];
    const cursor = { block, offset: 0 };
    let decodedBytes = 0;
    while (cursor.offset < block.length) {
      const first = block[cursor.offset]!;
      if (first & 0x80) {
        const [name, value] = this.entry(readInteger(cursor, 7));
        fields.push({ name, value, sensitive: false });
      } else if ((first & 0xe0) === 0x20) {
        this.resize(readInteger(cursor, 5));
        continue;
      } else {
        const indexing = (first & 0xc0) === 0x40;
        const nameIndex = readInteger(cursor, indexing ? 6 : 4);
        const name = nameIndex === 0 ? readString(cursor) : this.entry(nameIndex)[0];
        const value = readString(cursor);
        if (indexing) this.add(name, value);
        fields.push({ name, value, sensitive: (first & 0xf0) === 0x10 });
      }
      const last = fields[fields.length - 1]!;
      decodedBytes += last.name.length + last.value.length;
      if (decodedBytes > MAX_DECODED_BYTES) throw new HpackError(`header block larger than ${MAX_DECODED_BYTES} bytes`);
    }
    return fields;
  }

  private entry(index: number): [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) {
      const [name, value] = STATIC_TABLE[index - 1]!;
      return [name, value];
    }
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`index ${index} beyond the dynamic table`);
    return entry;
  }

  private add(name: string, value: string): void {
    const bytes = name.length + value.length + ENTRY_OVERHEAD_BYTES;
    this.entries.unshift([name, value]);
    this.sizeBytes += bytes;
    this.evict();
  }

  private resize(limitBytes: number): void {
    if (limitBytes > this.maxTableBytes) throw new HpackError(`table size update to ${limitBytes} beyond ${this.maxTableBytes}`);
    this.limitBytes = limitBytes;
    this.evict();
  }

  /** An entry larger than the whole table empties it (section 4.4): the loop handles that too. */
  private evict(): void {
    while (this.sizeBytes > this.limitBytes) {
      const [name, value] = this.entries.pop()!;
      this.sizeBytes -= name.length + value.length + ENTRY_OVERHEAD_BYTES;
    }
  }
}

/** Literal fields only, no Huffman, no indexing: valid for any decoder state. */
export function encodeLiterals(fields: readonly HeaderField[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    parts.push(Buffer.from([field.sensitive ? 0x10 : 0x00]));
    parts.push(encodeString(field.name), encodeString(field.value));
  }
  return Buffer.concat(parts);
}

function encodeString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([encodeInteger(bytes.length, 7, 0x00), bytes]);
}

/** Section 5.1: `prefixBits` low bits of the first byte, then 7 bits a byte, low first. */
export function encodeInteger(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const bytes = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

interface Cursor {
  readonly block: Buffer;
  offset: number;
}

function readInteger(cursor: Cursor, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  let value = cursor.block[cursor.offset++]! & max;
  if (value < max) return value;
  for (let shift = 0; shift <= 28; shift += 7) {
    const byte = cursor.block[cursor.offset++];
    if (byte === undefined) throw new HpackError('integer cut short');
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return value;
  }
  throw new HpackError('integer too large');
}

function readString(cursor: Cursor): string {
  if (cursor.offset >= cursor.block.length) throw new HpackError('string cut short');
  const huffman = (cursor.block[cursor.offset]! & 0x80) !== 0;
  const length = readInteger(cursor, 7);
  const end = cursor.offset + length;
  if (end > cursor.block.length) throw new HpackError('string cut short');
  const bytes = cursor.block.subarray(cursor.offset, end);
  cursor.offset = end;
  return huffman ? huffmanDecode(bytes) : bytes.toString('latin1');
}

/** code length in bits → (code → byte value). Built once, on first use. */
let decodeTable: Map<number, Map<number, number>> | undefined;

function huffmanTable(): Map<number, Map<number, number>> {
  if (decodeTable !== undefined) return decodeTable;
  decodeTable = new Map();
  for (let symbol = 0; symbol < 256; symbol++) {
    const bits = HUFFMAN_CODE_BITS[symbol]!;
    let byLength = decodeTable.get(bits);
    if (byLength === undefined) decodeTable.set(bits, (byLength = new Map()));
    byLength.set(HUFFMAN_CODES[symbol]!, symbol);
  }
  return decodeTable;
}

/**
 * Bit by bit: slow but small, and only rewritten connections come here. The padding must be
 * fewer than 8 one bits, and EOS must not appear (section 5.2).
 */
export function huffmanDecode(bytes: Buffer): string {
  const table = huffmanTable();
  const out: number[] = [];
  let code = 0;
  let bits = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      bits++;
      const symbol = table.get(bits)?.get(code);
      if (symbol !== undefined) {
        out.push(symbol);
        code = 0;
        bits = 0;
      } else if (bits >= 30) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  if (bits >= 8 || code !== 2 ** bits - 1) throw new HpackError('invalid Huffman padding');
  return Buffer.from(out).toString('latin1');
}
