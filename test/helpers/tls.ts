/**
 * Test certificates, made at test time with the `openssl` command line (Debian's `openssl`
 * package; .ci/run installs it) in a temp dir removed when the process exits. Nothing secret is
 * committed. Two unrelated CAs: `ca` signs the certificates the tests trust, `otherCa` signs
 * look-alikes (same names, same addresses) that must be refused.
 *
 * Keys are EC P-256 (fast to make); certificates live one day. The server certificate names
 * 127.0.0.1, ::1 and localhost and may act as client too, as etcd's peer certificates must.
 * A minimal config file is passed with -config so the system's openssl.cnf does not matter.
 * This module does not import vitest.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTempDir, trackTempDir } from './gavel.js';

export const OPENSSL_BIN = process.env['OPENSSL_BIN'] ?? 'openssl';
const OPENSSL_TIMEOUT_MS = 20_000;

/** Paths to PEM files. */
export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestCertificates {
  readonly dir: string;
  /** The CA the members and clients trust. */
  readonly ca: string;
  /** Server and peer certificate (serverAuth and clientAuth), signed by `ca`. */
  readonly server: KeyPair;
  /** Client certificate with CN=root, signed by `ca`. */
  readonly client: KeyPair;
  /** An unrelated CA. */
  readonly otherCa: string;
  /** Same names as `server`, signed by `otherCa`. */
  readonly otherServer: KeyPair;
  /** CN=root, signed by `otherCa`. */
  readonly otherClient: KeyPair;
  /** Removes the temp dir now (it is removed at exit anyway). */
  dispose(): void;
}

const CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** Makes both CAs and their certificates; synchronous, each openssl run bounded. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'gavel-tls-'));
  trackTempDir(dir);
  const config = join(dir, 'openssl.cnf');
  writeFileSync(config, CONFIG);
  const path = (name: string): string => join(dir, name);
  const openssl = (args: string[]): void => {
    try {
      execFileSync(OPENSSL_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: OPENSSL_TIMEOUT_MS });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString('utf8') ?? '';
      throw new Error(`openssl ${args.join(' ')} failed (is Debian's openssl installed?): ${error instanceof Error ? error.message : String(error)}\n${stderr}`);
    }
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string, cn: string): void => {
    openssl(['req', '-config', config, '-x509', ...newKey, '-keyout', path(`${name}-key.pem`), '-out', path(`${name}.pem`), '-days', '1', '-subj', `/CN=${cn}`, '-extensions', 'ca_ext']);
  };
  const makeLeaf = (name: string, cn: string, ca: string, extensions: 'server_ext' | 'client_ext'): KeyPair => {
    const pair = { cert: path(`${name}.pem`), key: path(`${name}-key.pem`) };
    openssl(['req', '-config', config, '-new', ...newKey, '-keyout', pair.key, '-out', path(`${name}.csr`), '-subj', `/CN=${cn}`]);
    openssl([
      'x509', '-req', '-in', path(`${name}.csr`), '-CA', path(`${ca}.pem`), '-CAkey', path(`${ca}-key.pem`),
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', config, '-extensions', extensions, '-out', pair.cert,
    ]);
    return pair;
  };
  makeCa('ca', 'gavel test CA');
  makeCa('other-ca', 'gavel test CA'); // the same name: only the signature tells them apart
  return {
    dir,
    ca: path('ca.pem'),
    server: makeLeaf('server', 'gavel-member', 'ca', 'server_ext'),
    client: makeLeaf('client', 'root', 'ca', 'client_ext'),
    otherCa: path('other-ca.pem'),
    otherServer: makeLeaf('other-server', 'gavel-member', 'other-ca', 'server_ext'),
    otherClient: makeLeaf('other-client', 'root', 'other-ca', 'client_ext'),
    dispose: () => removeTempDir(dir),
  };
}

/** etcd's client flags for a member serving `pair` (and requiring client certificates from `ca` when given). */
export function clientTlsFlags(pair: KeyPair, ca?: string): string[] {
  return ['--cert-file', pair.cert, '--key-file', pair.key, ...(ca === undefined ? [] : ['--trusted-ca-file', ca, '--client-cert-auth'])];
}

/** etcd's peer flags: `pair` served and presented, peers' certificates checked against `ca` and required. */
export function peerTlsFlags(pair: KeyPair, ca: string): string[] {
  return ['--peer-cert-file', pair.cert, '--peer-key-file', pair.key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth'];
}
