/**
 * gavel.v1.Coordinator: validate, propose, then follow this member's applied state. Grants are
 * decided when entries apply (server/coordinator/), identically on every member, so any member
 * can serve the Acquire stream: it proposes (a follower forwards to the leader), waits for the
 * entry to apply locally, and from then on reports each change of the caller's place as this
 * member applies it. GRANTED is sent only once the granting entry has applied here, i.e. once it
 * is committed. A broken stream leaves the place in the queue; Acquire again re-attaches to it.
 */
import type * as grpc from '@grpc/grpc-js';
import { GavelError } from '../errors.js';
import { callerOf, type CallerSource } from './caller.js';
import type { Access } from '../auth/store.js';
import type { StateMachine } from '../apply/state-machine.js';
import type { Logger } from '../log.js';
import { acquireInput, modeToWire, releaseInput } from '../coordinator/apply.js';
import { HOLDERS_SHOWN, lockKey, type HolderView, type PlaceView } from '../coordinator/coordinator.js';
import type { CoordinatorStats } from '../coordinator/stats.js';
import type { WireAcquireRequest, WireAcquireResponse, WireHolder, WireReleaseRequest } from '../coordinator/wire.js';
import { toNumber } from './convert.js';
import { callSignal, header, unary, type ApiContext } from './context.js';
import { expectResult } from './kv.js';
import { failStream } from './status.js';
import { encodedSize, StreamOutput } from './stream-output.js';

const acquireBytes = encodedSize('gavel.v1.AcquireResponse');

/** Streams waiting on locks, by lock key; told when an applied entry changed their lock. */
class LockSubscriptions {
  private readonly byKey = new Map<string, Set<() => void>>();

  constructor(machine: StateMachine, logger: Logger) {
    // Called while an entry applies: a failing stream must not disturb the apply.
    machine.onCoordinatorChange((changed) => {
      const keys = changed === 'all' ? [...this.byKey.keys()] : [...changed].filter((k) => this.byKey.has(k));
      for (const key of keys) {
        for (const listener of [...(this.byKey.get(key) ?? [])]) {
          try {
            listener();
          } catch (error) {
            logger.warn('coordinator stream update failed', { error });
          }
        }
      }
    });
  }

  add(key: string, listener: () => void): () => void {
    let listeners = this.byKey.get(key);
    if (listeners === undefined) {
      listeners = new Set();
      this.byKey.set(key, listeners);
    }
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      // Only this set: a late call must not drop a newer set made after this one emptied.
      if (listeners.size === 0 && this.byKey.get(key) === listeners) this.byKey.delete(key);
    };
  }
}

function holderToWire(holder: HolderView): WireHolder {
  return { lease: holder.lease.toString(), owner: holder.owner, mode: modeToWire(holder.mode), token: String(holder.token) };
}

export function coordinatorService(ctx: ApiContext, stats: CoordinatorStats): grpc.UntypedServiceImplementation {
  const subscriptions = new LockSubscriptions(ctx.machine, ctx.logger);
  return {
    Acquire: (call: grpc.ServerWritableStream<WireAcquireRequest, WireAcquireResponse>) => {
      // From the start, so a cancel during the auth check is seen.
      const output = new StreamOutput<WireAcquireResponse>(call, { kind: 'coordinator_acquire', tally: ctx.streams });
      authorizeLock(ctx, call, call.request.name, 'write').then(
        () => acquireStream(ctx, subscriptions, call, output),
        (error: unknown) => failStream(call, error),
      );
    },

    TryAcquire: unary(async (r: WireAcquireRequest, call) => {
      const input = acquireInput(r, true);
      await authorizeLock(ctx, call, r.name, 'write', callSignal(call));
      const result = expectResult(await ctx.node.propose({ coordinator: { acquire: { request: r, try_only: true } } }, callSignal(call)), 'coordinator');
      if (result.outcome.type === 'granted') return { header: header(ctx), granted: { token: String(result.outcome.token) } };
      const lock = ctx.machine.coordinator.describe(input.key);
      return { header: header(ctx), busy: { holders: lock.holders.slice(0, HOLDERS_SHOWN).map(holderToWire), holder_count: lock.holders.length, waiters: lock.waiters.length, delayed: lock.delayed } };
    }, ctx),

    Release: unary(async (r: WireReleaseRequest, call) => {
      releaseInput(r, false);
      await authorizeLock(ctx, call, r.name, 'write', callSignal(call));
      const result = expectResult(await ctx.node.propose({ coordinator: { release: { request: r, waiting_only: false } } }, callSignal(call)), 'coordinator');
      return { header: header(ctx), released: result.outcome.type === 'released' && result.outcome.released };
    }, ctx),

    Describe: unary(async (r: { name: Buffer }, call) => {
      const key = checkedKey(r.name);
      await authorizeLock(ctx, call, r.name, 'read', callSignal(call));
      await ctx.node.readBarrier(callSignal(call));
      const lock = ctx.machine.coordinator.describe(key);
      return {
        header: header(ctx),
        holders: lock.holders.map(holderToWire),
        waiters: lock.waiters.map((w) => ({ lease: w.lease.toString(), owner: w.owner, mode: modeToWire(w.mode), position: w.position })),
        limit: lock.limit,
        delayed: lock.delayed,
      };
    }, ctx),

    CheckSequencer: unary(async (r: { name: Buffer; token: string }, call) => {
      const key = checkedKey(r.name);
      const token = toNumber(r.token);
      await authorizeLock(ctx, call, r.name, 'read', callSignal(call));
      await ctx.node.readBarrier(callSignal(call));
      const valid = token > 0 && ctx.machine.coordinator.checkSequencer(key, token);
      if (!valid) {
        stats.countSequencerRejection();
        ctx.lockMetrics.fencingRejections.inc();
      }
      return { header: header(ctx), valid };
    }, ctx),
  };
}

/**
 * With auth enabled, a coordinator lock is guarded like the key of the same name: waiting for,
 * holding and releasing it need write permission on that key, Describe and CheckSequencer read.
 * Checked on the member that receives the call, against its applied auth state.
 */
async function authorizeLock(ctx: ApiContext, call: CallerSource, name: Buffer | null | undefined, access: Access, signal?: AbortSignal): Promise<void> {
  const user = await callerOf(ctx, call, signal);
  if (user === undefined) return;
  ctx.machine.auth.store.checkRange(user, access, name ?? Buffer.alloc(0));
}

function checkedKey(name: Buffer | null | undefined): string {
  if (!name || name.byteLength === 0) throw new GavelError('InvalidArgument', 'gavel: lock name is not provided');
  return lockKey(name);
}

/**
 * Acquire: join (or re-attach), then report the caller's place on every change this member
 * applies, until GRANTED; a wait_ms deadline removes a still-waiting place through the log.
 * A WAIT is a picture of the place now: while the client does not read them (the output is past
 * its bound), changes are not written but coalesced, and the latest picture goes out once it
 * drains. GRANTED, the last message, is always written.
 */
function acquireStream(ctx: ApiContext, subscriptions: LockSubscriptions, call: grpc.ServerWritableStream<WireAcquireRequest, WireAcquireResponse>, output: StreamOutput<WireAcquireResponse>): void {
  let input: ReturnType<typeof acquireInput>;
  try {
    input = acquireInput(call.request, false);
  } catch (error) {
    failStream(call, error);
    return;
  }
  const signal = callSignal(call);
  let finished = false;
  let unsubscribe = (): void => undefined;
  let deadline: NodeJS.Timeout | undefined;
  const stop = (): void => {
    finished = true;
    unsubscribe();
    clearTimeout(deadline);
  };
  const finish = (error?: unknown): void => {
    if (finished) return;
    stop();
    if (error === undefined) call.end();
    else failStream(call, error);
  };
  // A cancelled stream leaves the place in the queue: the caller re-attaches or releases.
  signal.addEventListener('abort', stop, { once: true });
  let lastWait = '';
  let givingUp = false;
  const report = (): void => {
    if (finished) return;
    const view = ctx.machine.coordinator.place(input.key, input.lease, input.owner);
    if (view === undefined) {
      // Gone without a grant: our own deadline removed it, its lease ended (same step), or it was released.
      const why = givingUp ? 'LockWaitExpired' : ctx.machine.lessor.exists(input.lease) ? 'LockPlaceNotFound' : 'LeaseNotFound';
      finish(new GavelError(why));
      return;
    }
    if (view.state === 'holder') {
      const granted = { header: header(ctx), granted: { token: String(view.token) } };
      output.write(granted, acquireBytes(granted));
      finish();
      return;
    }
    if (output.congested) return; // reported again on drain
    const text = waitText(view);
    if (text === lastWait) return;
    lastWait = text;
    const wait = { header: header(ctx), wait: { position: view.position, holders: view.holders.map(holderToWire), holder_count: view.holderCount, delayed: view.delayed } };
    output.write(wait, acquireBytes(wait));
  };
  const giveUp = (): void => {
    if (finished) return;
    givingUp = true;
    ctx.node.propose({ coordinator: { release: { request: { name: call.request.name, lease: call.request.lease, owner: input.owner, token: '0' }, waiting_only: true } } }).then(
      (result) => {
        const released = result.type === 'coordinator' && result.outcome.type === 'released' && result.outcome.released;
        if (released) finish(new GavelError('LockWaitExpired'));
        else report(); // granted meanwhile (or gone): say so
      },
      (error: unknown) => finish(error),
    );
  };
  void (async () => {
    try {
      expectResult(await ctx.node.propose({ coordinator: { acquire: { request: call.request, try_only: false } } }, signal), 'coordinator');
    } catch (error) {
      finish(error);
      return;
    }
    if (finished) return;
    unsubscribe = subscriptions.add(input.key, report);
    output.onDrain(report);
    report();
    if (input.waitMs > 0 && !finished) deadline = setTimeout(giveUp, input.waitMs);
  })();
}

function waitText(view: Extract<PlaceView, { state: 'waiter' }>): string {
  return `${view.position}|${view.delayed}|${view.holderCount}|${view.holders.map((h) => `${h.lease}/${h.owner}/${h.token}`).join(',')}`;
}
