/**
 * Joining an existing cluster (--initial-cluster-state existing): the member was added with
 * `member add`, which chose its id. Like etcd, it asks the other members listed in
 * --initial-cluster for the membership and finds itself by its advertised peer URLs.
 */
import * as grpc from '@grpc/grpc-js';
import type { Config } from '../config.js';
import { UsageError } from '../config.js';
import type { Logger } from '../log.js';
import { loadGrpc } from '../proto.js';
import { channelCredentials, type TlsMaterial } from '../tls.js';
import { normalizeUrl, parseInitialCluster } from './membership.js';
import type { Identity } from './bootstrap.js';

interface WireMembersResponse {
  cluster_id: string;
  members: { id: string; name: string; peer_urls: string[] }[];
}

const ATTEMPT_TIMEOUT_MS = 2000;
const TOTAL_TIMEOUT_MS = 30_000;

export interface Discovered {
  readonly identity: Identity;
  /** The other members and their peer URLs: the transport needs them before the snapshot arrives. */
  readonly peers: readonly { id: bigint; peerUrls: readonly string[] }[];
}

/** `peerTls`: the peer certificate, presented to https:// peers (which may require it). */
export async function discoverIdentity(config: Config, logger: Logger, peerTls?: TlsMaterial): Promise<Discovered> {
  const mine = config.initialAdvertisePeerUrls.map((u) => normalizeUrl(u.href));
  const peers = [...parseInitialCluster(config.initialCluster)].filter(([name]) => name !== config.name).flatMap(([, urls]) => urls);
  if (peers.length === 0) throw new UsageError('--initial-cluster-state existing needs the other members in --initial-cluster');
  const deadline = Date.now() + TOTAL_TIMEOUT_MS;
  let lastError = 'no peer answered';
  while (Date.now() < deadline) {
    for (const url of peers) {
      try {
        const response = await fetchMembers(url, peerTls);
        const me = response.members.find((m) => m.peer_urls.some((u) => mine.includes(normalizeUrl(u))));
        if (me === undefined) throw new UsageError(`this member's peer URLs ${mine.join(',')} are not in the cluster's member list: run \`etcdctl member add\` first`);
        const peers = response.members.filter((m) => m !== me).map((m) => ({ id: BigInt(m.id), peerUrls: m.peer_urls }));
        return { identity: { memberId: BigInt(me.id), clusterId: BigInt(response.cluster_id) }, peers };
      } catch (error) {
        if (error instanceof UsageError) throw error;
        lastError = `${url}: ${error instanceof Error ? error.message : String(error)}`;
        // grpc-js reports a refused TLS handshake only as a failed connection: say what to check.
        const hint = url.startsWith('https:') ? { hint: 'if the peer runs, check --peer-cert-file and --peer-trusted-ca-file on both sides' } : {};
        logger.warn('cannot fetch the member list from a peer', { peer: url, error: lastError, ...hint });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`cannot join the cluster: ${lastError}`);
}

function fetchMembers(peerUrl: string, peerTls: TlsMaterial | undefined): Promise<WireMembersResponse> {
  const url = new URL(peerUrl);
  const Peer = (loadGrpc() as unknown as { gavel: { raft: { v1: { Peer: grpc.ServiceClientConstructor } } } }).gavel.raft.v1.Peer;
  const client = new Peer(`${url.hostname}:${url.port}`, channelCredentials(peerUrl, peerTls));
  return new Promise<WireMembersResponse>((resolve, reject) => {
    const deadline = new Date(Date.now() + ATTEMPT_TIMEOUT_MS);
    const method = (client as unknown as Record<string, (req: object, opts: object, cb: (e: Error | null, r: WireMembersResponse) => void) => void>)['Members'];
    if (method === undefined) {
      client.close();
      reject(new Error('the peer service has no Members method'));
      return;
    }
    method.call(client, {}, { deadline }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response);
    });
  });
}
