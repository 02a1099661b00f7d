/**
 * Items kept in byte-wise key order, in chunks of at most CHUNK_MAX_ITEMS (a two-level B+-tree):
 * an insert or remove moves at most one chunk's worth of entries, so building 100k keys in random
 * order stays cheap, while scans remain plain array walks.
 *
 * Keys are latin1 images of the key bytes (one UTF-16 unit per byte, key-range.ts keyString):
 * JavaScript's string order on them IS byte-wise order, and a one-byte string costs far less
 * memory than a Uint8Array, which matters for an index of millions of keys.
 */
import { assert } from '../errors.js';

const CHUNK_MAX_ITEMS = 256;

export class SortedKeyList<T extends { readonly key: string }> {
  /** Never holds an empty chunk; chunks are in key order and do not overlap. */
  #chunks: T[][] = [];
  #size = 0;

  /** Build from items already in strictly increasing key order. */
  static fromSorted<T extends { readonly key: string }>(items: readonly T[]): SortedKeyList<T> {
    const list = new SortedKeyList<T>();
    for (let start = 0; start < items.length; start += CHUNK_MAX_ITEMS / 2) {
      list.#chunks.push(items.slice(start, start + CHUNK_MAX_ITEMS / 2));
    }
    list.#size = items.length;
    list.#check();
    return list;
  }

  get size(): number {
    return this.#size;
  }

  insert(item: T): void {
    if (this.#chunks.length === 0) {
      this.#chunks.push([item]);
      this.#size = 1;
      return;
    }
    const chunkIndex = this.#chunkFor(item.key);
    const chunk = this.#chunks[chunkIndex]!;
    const index = lowerBound(chunk, item.key);
    assert(index === chunk.length || chunk[index]!.key !== item.key, 'key is already in the list');
    chunk.splice(index, 0, item);
    this.#size++;
    if (chunk.length > CHUNK_MAX_ITEMS) this.#chunks.splice(chunkIndex + 1, 0, chunk.splice(CHUNK_MAX_ITEMS / 2));
  }

  /** Remove the item with this key; returns it, or undefined when absent. */
  remove(key: string): T | undefined {
    if (this.#chunks.length === 0) return undefined;
    const chunkIndex = this.#chunkFor(key);
    const chunk = this.#chunks[chunkIndex]!;
    const index = lowerBound(chunk, key);
    const item = chunk[index];
    if (item === undefined || item.key !== key) return undefined;
    chunk.splice(index, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(chunkIndex, 1);
    return item;
  }

  /** Keep only the items the predicate accepts. */
  retain(predicate: (item: T) => boolean): void {
    this.#chunks = this.#chunks.map((chunk) => chunk.filter(predicate)).filter((chunk) => chunk.length > 0);
    this.#size = this.#chunks.reduce((total, chunk) => total + chunk.length, 0);
  }

  /** Visit items in key order from the first key >= key while visit returns true. */
  forEachFrom(key: string, visit: (item: T) => boolean): void {
    if (this.#chunks.length === 0) return;
    let chunkIndex = this.#chunkFor(key);
    let index = lowerBound(this.#chunks[chunkIndex]!, key);
    for (; chunkIndex < this.#chunks.length; chunkIndex++, index = 0) {
      const chunk = this.#chunks[chunkIndex]!;
      for (; index < chunk.length; index++) if (!visit(chunk[index]!)) return;
    }
  }

  *[Symbol.iterator](): Generator<T> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  /** The last chunk whose first key <= key, or the first chunk. */
  #chunkFor(key: string): number {
    let low = 0;
    let high = this.#chunks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#chunks[middle]![0]!.key <= key) low = middle + 1;
      else high = middle;
    }
    return Math.max(0, low - 1);
  }

  #check(): void {
    let previous: string | undefined;
    for (const item of this) {
      assert(previous === undefined || previous < item.key, 'keys must strictly increase');
      previous = item.key;
    }
  }
}

/** The index of the first item with key >= key. */
function lowerBound<T extends { readonly key: string }>(items: readonly T[], key: string): number {
  let low = 0;
  let high = items.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (items[middle]!.key < key) low = middle + 1;
    else high = middle;
  }
  return low;
}
