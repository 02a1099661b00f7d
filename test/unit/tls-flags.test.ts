// Goal: the TLS flags parse with etcd's names and forms, and a configuration that could not serve what it asks for is refused at start with a message naming the flag.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helpText, parseArgs, UsageError } from '../../server/config.js';
import { loadTls } from '../../server/tls.js';
import { makeTestCertificates, type TestCertificates } from '../helpers/tls.js';

function run(argv: string[]) {
  const parsed = parseArgs(argv);
  if (parsed.kind !== 'run') throw new Error(`expected a run, got ${parsed.kind}`);
  return parsed.config;
}

describe('TLS flags', () => {
  it('are off by default and listed in --help', () => {
    const config = run([]);
    expect([config.certFile, config.keyFile, config.trustedCaFile, config.peerCertFile, config.peerKeyFile, config.peerTrustedCaFile]).toEqual(['', '', '', '', '', '']);
    expect([config.clientCertAuth, config.peerClientCertAuth]).toEqual([false, false]);
    const text = helpText();
    for (const flag of ['--cert-file', '--key-file', '--trusted-ca-file', '--client-cert-auth', '--peer-cert-file', '--peer-key-file', '--peer-trusted-ca-file', '--peer-client-cert-auth']) {
      expect(text).toContain(flag);
    }
  });

  it('take https URLs with a certificate, mixed with http ones as etcd allows', () => {
    const config = run([
      '--listen-client-urls', 'https://127.0.0.1:2379,http://127.0.0.1:22379',
      '--listen-peer-urls', 'https://127.0.0.1:2380',
      '--initial-cluster', 'default=https://127.0.0.1:2380',
      '--cert-file', 'c.pem', '--key-file', 'k.pem', '--trusted-ca-file', 'ca.pem', '--client-cert-auth',
      '--peer-cert-file=pc.pem', '--peer-key-file=pk.pem', '--peer-trusted-ca-file=pca.pem', '--peer-client-cert-auth=true',
    ]);
    expect(config.listenClientUrls.map((url) => url.protocol)).toEqual(['https:', 'http:']);
    expect(config.advertiseClientUrls.map(String)).toEqual(['https://127.0.0.1:2379/', 'http://127.0.0.1:22379/']);
    expect(config.initialAdvertisePeerUrls.map(String)).toEqual(['https://127.0.0.1:2380/']);
    expect(config).toMatchObject({ certFile: 'c.pem', keyFile: 'k.pem', trustedCaFile: 'ca.pem', clientCertAuth: true });
    expect(config).toMatchObject({ peerCertFile: 'pc.pem', peerKeyFile: 'pk.pem', peerTrustedCaFile: 'pca.pem', peerClientCertAuth: true });
  });

  it('parse booleans as Go does: alone is true, =false is false, and the next argument is never taken', () => {
    const config = run(['--client-cert-auth', '--trusted-ca-file', 'ca.pem', '--peer-client-cert-auth=false']);
    expect(config.clientCertAuth).toBe(true);
    expect(config.trustedCaFile).toBe('ca.pem');
    expect(config.peerClientCertAuth).toBe(false);
    expect(() => run(['--client-cert-auth=maybe'])).toThrow(/invalid value "maybe" for --client-cert-auth: expected true or false/);
    expect(() => run(['--client-cert-auth', 'true'])).toThrow(/unexpected argument 'true'/);
  });

  it('refuse an https listener without a certificate, half a key pair, and client certificates without a CA', () => {
    const refusals: [string[], RegExp][] = [
      [['--listen-client-urls', 'http://127.0.0.1:2379,https://127.0.0.1:2479'], /--listen-client-urls https:\/\/127\.0\.0\.1:2479\/ is https: give --cert-file and --key-file/],
      [['--listen-metrics-urls', 'https://127.0.0.1:2381'], /--listen-metrics-urls .* is https: give --cert-file and --key-file/],
      [['--listen-peer-urls', 'https://127.0.0.1:2380'], /--listen-peer-urls .* is https: give --peer-cert-file and --peer-key-file/],
      [['--listen-peer-urls', 'https://127.0.0.1:2380', '--cert-file', 'c', '--key-file', 'k'], /give --peer-cert-file and --peer-key-file/],
      [['--cert-file', 'c.pem'], /--cert-file and --key-file must be given together/],
      [['--peer-key-file', 'k.pem'], /--peer-cert-file and --peer-key-file must be given together/],
      [['--client-cert-auth'], /--client-cert-auth needs --trusted-ca-file/],
      [['--peer-client-cert-auth', '--peer-cert-file', 'c', '--peer-key-file', 'k'], /--peer-client-cert-auth needs --peer-trusted-ca-file/],
    ];
    for (const [argv, message] of refusals) {
      expect(() => run(argv), argv.join(' ')).toThrow(UsageError);
      expect(() => run(argv), argv.join(' ')).toThrow(message);
    }
  });
});

describe('loading the certificate files', () => {
  let certs: TestCertificates;
  beforeAll(() => {
    certs = makeTestCertificates();
  });
  afterAll(() => certs?.dispose());

  it('reads the files the flags name', () => {
    const tls = loadTls(run(['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca, '--client-cert-auth']));
    expect(tls.client?.clientCertAuth).toBe(true);
    expect(tls.client?.ca?.toString()).toContain('-----BEGIN CERTIFICATE-----');
    expect(tls.peer).toBeUndefined();
    const peerOnly = loadTls(run(['--peer-cert-file', certs.server.cert, '--peer-key-file', certs.server.key]));
    expect(peerOnly.client).toBeUndefined();
    expect(peerOnly.peer?.ca).toBeNull();
  });

  it('refuses a missing file, a file that is not PEM and a key that is not the certificate’s', () => {
    const notPem = join(certs.dir, 'not-pem.txt');
    writeFileSync(notPem, 'hello\n');
    expect(() => loadTls(run(['--cert-file', join(certs.dir, 'missing.pem'), '--key-file', certs.server.key]))).toThrow(/cannot read --cert-file .*missing\.pem: ENOENT/);
    expect(() => loadTls(run(['--peer-cert-file', certs.server.cert, '--peer-key-file', notPem]))).toThrow(/--peer-key-file .*not-pem\.txt is not a PEM file/);
    expect(() => loadTls(run(['--cert-file', certs.server.cert, '--key-file', certs.client.key]))).toThrow(UsageError);
    expect(() => loadTls(run(['--cert-file', certs.server.cert, '--key-file', certs.client.key]))).toThrow(/--cert-file .* \/ --key-file .*: .*key values mismatch/);
  });
});
