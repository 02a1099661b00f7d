/**
 * Every version the index holds, in revision order: which key each (main, sub) revision changed.
 * Watchers catching up read history in revision order (etcd reads its revision-keyed bucket);
 * this list lets them find the versions of a revision window without visiting every key, while
 * the versions' contents stay in level. Three parallel arrays: a few bytes per version.
 */
import { assert } from '../errors.js';
import { holdsVersion, type KeyEntry } from './key-index.js';

export class RevisionLog {
  #mains: number[] = [];
  /** The sub revision, bitwise-negated for a tombstone (as key-index.ts). */
  #subCodes: number[] = [];
  #entries: KeyEntry[] = [];

  get length(): number {
    return this.#mains.length;
  }

  append(main: number, subCode: number, entry: KeyEntry): void {
    const last = this.#mains.length - 1;
    assert(last < 0 || this.#mains[last]! < main || (this.#mains[last] === main && decode(this.#subCodes[last]!) < decode(subCode)), 'revision log must increase');
    this.#mains.push(main);
    this.#subCodes.push(subCode);
    this.#entries.push(entry);
  }

  mainAt(index: number): number {
    return this.#mains[index]!;
  }

  subAt(index: number): number {
    return decode(this.#subCodes[index]!);
  }

  isTombstoneAt(index: number): boolean {
    return this.#subCodes[index]! < 0;
  }

  entryAt(index: number): KeyEntry {
    return this.#entries[index]!;
  }

  /** The index of the first version with main >= revision (length when none). */
  firstAtOrAbove(revision: number): number {
    let low = 0;
    let high = this.#mains.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#mains[middle]! < revision) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * After the key index compacted at revision: drop every version below it, and those at it that
   * the index dropped (tombstones; a version AT the compacted revision is otherwise its key's
   * newest <= revision and stays).
   */
  compact(revision: number): void {
    const start = this.firstAtOrAbove(revision);
    const mains: number[] = [];
    const subCodes: number[] = [];
    const entries: KeyEntry[] = [];
    for (let index = start; index < this.#mains.length; index++) {
      const main = this.#mains[index]!;
      if (main === revision && !holdsVersion(this.#entries[index]!, { main, sub: decode(this.#subCodes[index]!) }, this.#subCodes[index]! < 0)) continue;
      mains.push(main);
      subCodes.push(this.#subCodes[index]!);
      entries.push(this.#entries[index]!);
    }
    this.#mains = mains;
    this.#subCodes = subCodes;
    this.#entries = entries;
  }
}

function decode(subCode: number): number {
  return subCode < 0 ? ~subCode : subCode;
}
