// Goal: passwords are stored only as salted scrypt hashes that verify the right password alone, simple tokens live --auth-token-ttl after their last use, for their user only, until invalidated, and the two flags parse as etcd's.
import { describe, expect, it } from 'vitest';
import { hashPassword, parseHash, verifyNothing, verifyPassword } from '../../server/auth/password.js';
import { formatToken, newTokenPrefix, parseToken, prefixDigest, TokenTable } from '../../server/auth/tokens.js';
import { ManualClock } from '../../server/clock.js';
import { helpText, parseArgs, UsageError } from '../../server/config.js';

describe('passwords', () => {
  it('hashes with a fresh salt, never containing the password, and verifies only the right one', async () => {
    const first = await hashPassword('s3cret');
    const second = await hashPassword('s3cret');
    expect(first).not.toBe(second);
    expect(first).not.toContain('s3cret');
    expect(parseHash(first)).toMatchObject({ log2N: 15, r: 8, p: 1 });
    expect(await verifyPassword('s3cret', first)).toBe(true);
    expect(await verifyPassword('s3cret!', first)).toBe(false);
    expect(await verifyPassword('', first)).toBe(false);
    expect(await verifyNothing('s3cret')).toBe(false);
  });

  it('refuses anything that is not one of its hashes', async () => {
    for (const bad of ['', 'plain', 'scrypt$15$8$1$', 'scrypt$40$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5', 'bcrypt$x$y$z$a$b']) {
      expect(parseHash(bad)).toBeUndefined();
      expect(await verifyPassword('x', bad)).toBe(false);
    }
  });
});

describe('simple tokens', () => {
  it('are <prefix>.<index>, and the digest of the prefix names them', () => {
    const prefix = newTokenPrefix();
    expect(prefix).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(newTokenPrefix()).not.toBe(prefix);
    const token = formatToken(prefix, 42);
    expect(parseToken(token)).toEqual({ digest: prefixDigest(prefix), index: 42 });
    for (const bad of ['', 'abc', '.5', 'abc.', 'abc.0', 'abc.-1', 'abc.x']) expect(parseToken(bad)).toBeUndefined();
  });

  it('live the TTL after their last use, each on its own', () => {
    const clock = new ManualClock();
    const table = new TokenTable(clock, 10);
    table.assign('d1', 'alice', 5);
    table.assign('d2', 'bob', 6);
    clock.advance(9_000);
    expect(table.lookup('d1', 5)).toBe('alice'); // refreshed: lives until 19 s
    clock.advance(2_000);
    expect(table.lookup('d2', 6)).toBeUndefined(); // 11 s after its last use
    expect(table.lookup('d1', 5)).toBe('alice');
    expect(table.lookup('d1', 4)).toBeUndefined(); // the index is part of the token
    clock.advance(10_000);
    expect(table.lookup('d1', 5)).toBeUndefined();
  });

  it("forget one user's tokens, or all", () => {
    const table = new TokenTable(new ManualClock(), 300);
    table.assign('d1', 'alice', 1);
    table.assign('d2', 'alice', 2);
    table.assign('d3', 'bob', 3);
    table.invalidateUser('alice');
    expect([table.lookup('d1', 1), table.lookup('d2', 2), table.lookup('d3', 3)]).toEqual([undefined, undefined, 'bob']);
    table.clear();
    expect(table.size).toBe(0);
  });

  it('drop expired tokens as new ones come', () => {
    const clock = new ManualClock();
    const table = new TokenTable(clock, 1);
    for (let i = 1; i <= 100; i++) table.assign(`d${i}`, 'u', i);
    clock.advance(2_000);
    table.assign('fresh', 'u', 101);
    expect(table.size).toBe(1);
  });
});

describe('flags', () => {
  const run = (argv: string[]) => {
    const parsed = parseArgs(argv);
    if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
    return parsed.config;
  };

  it("takes --auth-token simple and --auth-token-ttl, with etcd's defaults", () => {
    expect(run([])).toMatchObject({ authToken: 'simple', authTokenTtlSeconds: 300 });
    expect(run(['--auth-token', 'simple', '--auth-token-ttl=60'])).toMatchObject({ authToken: 'simple', authTokenTtlSeconds: 60 });
    expect(helpText()).toMatch(/--auth-token\n.*simple/);
    expect(helpText()).toMatch(/--auth-token-ttl\n.*\(default: 300\)/);
  });

  it('refuses other token types and a TTL below one second, naming the flag', () => {
    expect(() => run(['--auth-token', 'jwt,pub-key=a.pem,priv-key=b.pem,sign-method=RS256'])).toThrow(UsageError);
    expect(() => run(['--auth-token', 'jwt'])).toThrow(/--auth-token "jwt": jwt tokens are not supported; only 'simple' is/);
    expect(() => run(['--auth-token', 'magic'])).toThrow(/--auth-token "magic": unknown token type/);
    expect(() => run(['--auth-token-ttl', '0'])).toThrow(/--auth-token-ttl/);
  });
});
