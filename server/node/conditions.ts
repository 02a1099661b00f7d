/**
 * Waiting for the node's state to change, without polling (etcd's pkg/wait): a caller waits for
 * a condition with a deadline; the node calls check() whenever the state the conditions read may
 * have changed (a leader change, a role change), and failAll() when it stops. A wait costs a
 * timer and an entry, and ends as soon as the condition holds — not at the next poll.
 */
import { GavelError } from '../errors.js';

interface Waiting {
  readonly holds: () => boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class Conditions {
  private readonly waiting = new Set<Waiting>();

  /**
   * Resolves once holds() is true (at once if it is); rejects with onTimeout() after timeoutMs,
   * or when the signal aborts.
   */
  wait(holds: () => boolean, timeoutMs: number, onTimeout: () => GavelError, signal?: AbortSignal): Promise<void> {
    if (holds()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(onTimeout());
    return new Promise<void>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        this.waiting.delete(entry);
      };
      const entry: Waiting = {
        holds,
        resolve: () => {
          finish();
          resolve();
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      const abort = (): void => entry.reject(onTimeout());
      const timer = setTimeout(abort, timeoutMs);
      signal?.addEventListener('abort', abort, { once: true });
      this.waiting.add(entry);
    });
  }

  /** Releases every waiter whose condition now holds. */
  check(): void {
    for (const entry of [...this.waiting]) if (entry.holds()) entry.resolve();
  }

  failAll(error: GavelError): void {
    for (const entry of [...this.waiting]) entry.reject(error);
  }
}
