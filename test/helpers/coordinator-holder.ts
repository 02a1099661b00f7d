/**
 * A separate process that takes a coordinator lock and holds it until killed: the holder that
 * tests kill with SIGKILL. Usage:
 *   node dist/test/helpers/coordinator-holder.js ENDPOINTS NAME TTL_SECONDS [LOCK_DELAY_MS] [MODE]
 * MODE is 'coordinator' (default: gavel.v1.Coordinator directly) or 'auto' (client.mutex()).
 * Prints one JSON line {"locked": true, "token": "...", "lease": "..."} once it holds the lock.
 */
import { Client } from '../../client/index.js';

const [endpoints = '', name = 'lock', ttl = '2', lockDelayMs = '0', mode = 'coordinator'] = process.argv.slice(2);
const client = new Client({ endpoints: endpoints.split(',') });
const session = await client.session({ ttlSeconds: Number(ttl) });
const lock =
  mode === 'auto'
    ? await client.mutex(name, { session, lockDelayMs: Number(lockDelayMs) }).lock()
    : await client.coordinatorMutex(name, { session, lockDelayMs: Number(lockDelayMs) }).lock();
process.stdout.write(`${JSON.stringify({ locked: true, token: String(lock.fencingToken), lease: String(session.leaseId) })}\n`);
// Hold until killed; the session's keep-alives keep the lease (and so the lock) alive.
setInterval(() => undefined, 1_000);
