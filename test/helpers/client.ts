/** One member and a gavel Client connected to it, for a test file: started before, stopped after. */
import { afterAll, beforeAll } from 'vitest';
import { Client } from '../../client/index.js';
import { startMember, stopAllMembers, type Member, type StartOptions } from './gavel.js';

export interface MemberWithClient {
  readonly member: Member;
  readonly client: Client;
}

/** Registers beforeAll/afterAll hooks; read the fields inside tests (they are set by then). */
export function memberWithClient(options: StartOptions = {}): MemberWithClient {
  const state: { member?: Member; client?: Client } = {};
  beforeAll(async () => {
    state.member = await startMember(options);
    state.client = new Client({ endpoints: [state.member.endpoint] });
  });
  afterAll(async () => {
    state.client?.close();
    await stopAllMembers();
  });
  return {
    get member(): Member {
      if (state.member === undefined) throw new Error('the member starts in beforeAll');
      return state.member;
    },
    get client(): Client {
      if (state.client === undefined) throw new Error('the client connects in beforeAll');
      return state.client;
    },
  };
}

/** A client of a cluster whose endpoint list starts at member `i % n`, so clients spread over members (and fail over to the rest). */
export function clusterClient(members: readonly { endpoint: string }[], i: number): Client {
  const endpoints = members.map((m) => m.endpoint);
  const start = i % endpoints.length;
  return new Client({ endpoints: [...endpoints.slice(start), ...endpoints.slice(0, start)] });
}
