/**
 * TLS with etcd's flags and meaning. An https:// client URL is served with --cert-file and
 * --key-file; with --client-cert-auth the handshake refuses a client without a certificate
 * signed by --trusted-ca-file. Peers likewise with the --peer-* flags, and a member presents its
 * peer certificate when it dials an https:// peer, checking that peer's certificate against
 * --peer-trusted-ca-file (the system's roots when not given). http:// URLs stay plaintext, so
 * both may be mixed in one flag.
 *
 * The files are read once, at start: a missing file, or a key that does not match its
 * certificate, stops the member with a UsageError before it listens anywhere.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { UsageError, type Config } from './config.js';
import { assert } from './errors.js';

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** null: trust the system's roots (to verify a server); requiring client certificates needs a CA. */
  readonly ca: Buffer | null;
  /** Refuse connections without a certificate signed by `ca`. */
  readonly clientCertAuth: boolean;
}

/** undefined where no certificate was given: that side serves http:// only. */
export interface MemberTls {
  readonly client: TlsMaterial | undefined;
  readonly peer: TlsMaterial | undefined;
}

export const NO_TLS: MemberTls = { client: undefined, peer: undefined };

/** Reads and checks the certificate files the flags name. Throws UsageError naming the flag. */
export function loadTls(config: Config): MemberTls {
  return {
    client: loadSide('', config.certFile, config.keyFile, config.trustedCaFile, config.clientCertAuth),
    peer: loadSide('peer-', config.peerCertFile, config.peerKeyFile, config.peerTrustedCaFile, config.peerClientCertAuth),
  };
}

function loadSide(prefix: string, certFile: string, keyFile: string, caFile: string, clientCertAuth: boolean): TlsMaterial | undefined {
  // validate() guarantees these pairings; check again on the way in.
  assert((certFile === '') === (keyFile === ''), `--${prefix}cert-file and --${prefix}key-file go together`);
  assert(!clientCertAuth || caFile !== '', `--${prefix}client-cert-auth needs --${prefix}trusted-ca-file`);
  if (certFile === '') return undefined;
  const material: TlsMaterial = {
    cert: readPem(`${prefix}cert-file`, certFile),
    key: readPem(`${prefix}key-file`, keyFile),
    ca: caFile === '' ? null : readPem(`${prefix}trusted-ca-file`, caFile),
    clientCertAuth,
  };
  try {
    // Node parses everything here and checks that the key belongs to the certificate.
    createSecureContext({ cert: material.cert, key: material.key, ...(material.ca === null ? {} : { ca: material.ca }) });
  } catch (error) {
    throw new UsageError(`--${prefix}cert-file ${certFile} / --${prefix}key-file ${keyFile}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return material;
}

function readPem(flag: string, path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new UsageError(`cannot read --${flag} ${path}: ${typeof code === 'string' ? code : String(error)}`);
  }
  if (!bytes.includes('-----BEGIN ')) throw new UsageError(`--${flag} ${path} is not a PEM file`);
  return bytes;
}

/** What this member dials `url` with: plaintext for http://; for https://, its certificate (if any) and the trusted CA. */
export function channelCredentials(url: string, material: TlsMaterial | undefined): grpc.ChannelCredentials {
  const protocol = new URL(url).protocol;
  if (protocol === 'http:') return grpc.credentials.createInsecure();
  assert(protocol === 'https:', `peer URL ${url}: scheme must be http or https`);
  return grpc.credentials.createSsl(material?.ca ?? null, material?.key ?? null, material?.cert ?? null);
}
