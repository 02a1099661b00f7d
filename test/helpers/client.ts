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
