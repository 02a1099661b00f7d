/**
 * A separate process that takes a lock and holds it until killed: the "holder" that tests kill
 * with SIGKILL. Usage: node dist/test/helpers/lock-holder.js ENDPOINTS NAME TTL_SECONDS
 * Prints one JSON line {"locked": true, "token": "...", "lease": "..."} once it holds the lock.
 */
import { Client } from '../../client/index.js';

const [endpoints = '', name = 'lock', ttl = '2'] = process.argv.slice(2);
const client = new Client({ endpoints: endpoints.split(',') });
const session = await client.session({ ttlSeconds: Number(ttl) });
const mutex = await client.mutex(name, { session }).lock();
process.stdout.write(`${JSON.stringify({ locked: true, token: String(mutex.fencingToken), lease: String(session.leaseId) })}\n`);
// Hold until killed; the session's keep-alives keep the lease (and so the lock) alive.
setInterval(() => undefined, 1_000);
