/**
 * Reconnect back-off: the base delay doubles per failed attempt up to a cap, and each delay is
 * drawn from [base/2, base) so that members that lost a peer together do not retry in lockstep.
 */
export class Backoff {
  private baseMs: number;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.baseMs = minMs;
  }

  /** The current period: onUnreachable is reported at most once per period. */
  get periodMs(): number {
    return this.baseMs;
  }

  /** The delay before the next attempt; doubles the base for the one after. */
  next(): number {
    const delay = this.baseMs / 2 + (this.random() * this.baseMs) / 2;
    this.baseMs = Math.min(this.maxMs, this.baseMs * 2);
    return delay;
  }

  reset(): void {
    this.baseMs = this.minMs;
  }
}
