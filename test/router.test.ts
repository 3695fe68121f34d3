// A real federation router in front of the gateway: the example package in examples/federation/
// (its own install, `npm ci --prefix examples/federation`) composes the gateway's subgraph with
// its teams subgraph using npm packages only (compose.mjs, The Guild's composer), and serves the
// supergraph with Hive Gateway's CLI and the configuration there (gateway.config.ts). Each is a
// process of its own; every hop is HTTP or WebSocket on loopback, and what reached the fine-tune
// API (which key, which calls) is read at the simulator.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_ORGANIZATIONS } from '../src/simulator/seed.js';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { ACME_KEY, GLOBEX_KEY, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';
import { connect } from './live-client.js';
import { postGraphQL, type WireResponse } from './wire.js';
import { compose, EXAMPLE, INSTALLED, printed, run, startRouter, type Child } from './router-process.js';

// A third organization, whose key only the socket-sharing test uses: the router's socket for it
// is then new, not one another test left closing.
const INITECH = { name: 'initech', uuid: 'org_initech', apiKeys: ['sim-initech-key'] };

describe('the router configurations in docs/federation.md', () => {
  it('quote examples/federation/gateway.config.ts as it is, the file the router below runs', async () => {
    const docs = await readFile(new URL('../docs/federation.md', import.meta.url), 'utf8');
    const config = await readFile(path.join(EXAMPLE, 'gateway.config.ts'), 'utf8');
    const quoted = docs.match(
      /`examples\/federation\/gateway\.config\.ts`[^\n]*\n\n```ts\n([\s\S]*?)\n```\n/,
    );
    expect(quoted?.[1]).toBe(config.trimEnd());
  });
});

describe.skipIf(!INSTALLED)(
  INSTALLED
    ? 'behind Hive Gateway (examples/federation)'
    : 'behind Hive Gateway: SKIPPED, examples/federation/node_modules is missing (npm ci --prefix examples/federation)',
  () => {
    let stack: Stack;
    let acme: SimulatedOrganization;
    let globex: SimulatedOrganization;
    let initech: SimulatedOrganization;
    let teams: Child;
    let teamsUrl: string;
    let router: Child;
    let routerUrl: string;
    let workDir: string;
    let supergraphSdl: string;
    const clients: { dispose(): unknown }[] = [];

    const viaRouter = (
      document: string,
      variables?: Record<string, unknown>,
      apiKey: string | null = ACME_KEY,
    ) => postGraphQL(routerUrl, document, variables, apiKey === null ? null : `Bearer ${apiKey}`);

    function dataOf<T>(response: WireResponse): T {
      expect(response.body.errors, response.text).toBeUndefined();
      expect(response.status, response.text).toBe(200);
      return response.body.data as T;
    }

    beforeAll(async () => {
      stack = await startStack({
        simulator: {
          jobsPerOrganization: 6,
          providerExamples: false,
          organizations: [...DEMO_ORGANIZATIONS, INITECH],
        },
        config: {
          federation: { subgraph: true },
          // perConnection low, to show that the router carries one key's subscriptions on one socket.
          subscriptions: { pollMs: 100, activePollMs: 20, perConnection: 2 },
        },
      });
      [acme, globex, initech] = stack.simulator.store.organizations as [
        SimulatedOrganization,
        SimulatedOrganization,
        SimulatedOrganization,
      ];
      teams = run(['teams-subgraph.mjs', '--port', '0', '--host', '127.0.0.1']);
      teamsUrl = (await printed(teams, /teams subgraph at (\S+)/))[1]!;

      workDir = await mkdtemp(path.join(tmpdir(), 'router-test-'));
      const supergraphFile = path.join(workDir, 'supergraph.graphql');
      supergraphSdl = await compose({ 'fine-tune-jobs': stack.gateway.url, teams: teamsUrl }, supergraphFile);

      ({ child: router, url: routerUrl } = await startRouter(supergraphFile));
    }, 120_000);
    afterAll(async () => {
      await Promise.all(clients.splice(0).map((c) => c.dispose()));
      await router?.stop();
      await teams?.stop();
      await stack?.stop();
      if (workDir) await rm(workDir, { recursive: true, force: true });
    });
    beforeEach(() => stack.simulator.resetRequests());

    /** The teams subgraph's own answer for these jobs' owners, asked directly (no router). */
    async function ownersFromTeams(ids: string[]): Promise<{ id: string; name: string }[]> {
      const response = await postGraphQL(
        teamsUrl,
        'query ($r: [_Any!]!) { _entities(representations: $r) { ... on FineTuneJob { owner { id name } } } }',
        { r: ids.map((id) => ({ __typename: 'FineTuneJob', id })) },
        null,
      );
      return dataOf<{ _entities: { owner: { id: string; name: string } }[] }>(response)._entities.map(
        (e) => e.owner,
      );
    }

    it('composes both subgraphs from their _service SDL, each routed at its own URL', () => {
      expect(supergraphSdl).toContain(`@join__graph(name: "fine-tune-jobs", url: "${stack.gateway.url}")`);
      expect(supergraphSdl).toContain(`@join__graph(name: "teams", url: "${teamsUrl}")`);
      expect(supergraphSdl).toMatch(/type FineTuneJob\s[^{]*@join__type\(graph: FINE_TUNE_JOBS, key: "id"\)/);
      expect(supergraphSdl).toMatch(/type FineTuneJob\s[^{]*@join__type\(graph: TEAMS, key: "id"\)/);
      expect(supergraphSdl).toMatch(/type Subscription\s/);
    });

    it("answers a query with the caller's jobs: the client's key reaches the gateway", async () => {
      for (const [apiKey, org] of [
        [ACME_KEY, acme],
        [GLOBEX_KEY, globex],
      ] as const) {
        const data = dataOf<{ fineTuneJobs: { id: string; name: string }[] }>(
          await viaRouter('{ fineTuneJobs(limit: 3) { id name } }', undefined, apiKey),
        );
        const expected = stack.simulator.store.list(org, null).slice(0, 3);
        expect(data.fineTuneJobs).toEqual(expected.map((j) => ({ id: j.id, name: j.name })));
      }
      expect(stack.simulator.requestsTo('listJobs').map((r) => r.organization)).toEqual(['acme', 'globex']);
    });

    it('refuses a caller without a key as the gateway does, without calling the fine-tune API', async () => {
      const response = await viaRouter('{ fineTuneJobs(limit: 1) { id } }', undefined, null);
      expect(response.body.errors?.[0]?.extensions?.code, response.text).toBe('UNAUTHENTICATED');
      expect(stack.simulator.requests).toHaveLength(0);
    });

    it('joins each job with its owner from the teams subgraph (an entity join across the two)', async () => {
      const data = dataOf<{
        fineTuneJobs: { id: string; status: string; owner: { id: string; name: string } }[];
      }>(await viaRouter('{ fineTuneJobs(limit: 5) { id status owner { id name } } }'));
      const expected = stack.simulator.store.list(acme, null).slice(0, 5);
      expect(data.fineTuneJobs.map((j) => j.id)).toEqual(expected.map((j) => j.id));
      expect(data.fineTuneJobs.map((j) => j.owner)).toEqual(await ownersFromTeams(expected.map((j) => j.id)));
      // One list call for the jobs; the owners come from the other subgraph.
      expect(stack.simulator.requests.map((r) => r.route)).toEqual(['listJobs']);
    });

    it("resolves a job by id for the caller's organization only", async () => {
      const job = stack.simulator.store.list(acme, null)[0]!;
      const query = 'query ($id: ID!) { fineTuneJob(id: $id) { id name owner { name } } }';
      const own = dataOf<{ fineTuneJob: { id: string; name: string; owner: { name: string } } | null }>(
        await viaRouter(query, { id: job.id }, ACME_KEY),
      );
      expect(own.fineTuneJob).toEqual({
        id: job.id,
        name: job.name,
        owner: { name: (await ownersFromTeams([job.id]))[0]!.name },
      });
      const other = dataOf<{ fineTuneJob: unknown }>(await viaRouter(query, { id: job.id }, GLOBEX_KEY));
      expect(other.fineTuneJob).toBeNull();
      expect(stack.simulator.requestsTo('getJob').map((r) => r.organization)).toEqual(['acme', 'globex']);
    });

    it('streams a subscription over WebSocket through the router: the job, then each change a mutation makes', async () => {
      const job = jobRecord(acme, { status: 'RUNNING' });
      stack.simulator.store.put(acme, job);
      const [owner] = await ownersFromTeams([job.id]);
      const c = connect(routerUrl, ACME_KEY);
      clients.push(c);
      const live = c.subscribe(
        'subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id status owner { name } } }',
        { id: job.id },
      );
      await live.waitForEvents(1);
      expect(live.events[0]).toEqual({
        data: { fineTuneJobUpdated: { id: job.id, status: 'RUNNING', owner: { name: owner!.name } } },
      });

      // The change comes from a mutation sent through the router, over HTTP.
      const stopped = dataOf<{ stopFineTuneJob: { status: string } }>(
        await viaRouter('mutation ($id: ID!) { stopFineTuneJob(id: $id) { status } }', { id: job.id }),
      );
      expect(stopped.stopFineTuneJob.status).toBe('STOPPING');
      await live.waitForEvents(2);
      stack.simulator.advance();
      await live.finished;
      expect(live.failure).toBeUndefined();
      expect(live.events.map((e) => e.data?.fineTuneJobUpdated)).toEqual(
        ['RUNNING', 'STOPPING', 'STOPPED'].map((status) => ({
          id: job.id,
          status,
          owner: { name: owner!.name },
        })),
      );
      // Every poll of the job and the stop carried the subscriber's key (acme), none another.
      const jobCalls = stack.simulator.requests.filter((r) => r.route === 'getJob' || r.route === 'stopJob');
      expect(jobCalls.length).toBeGreaterThanOrEqual(3);
      expect(new Set(jobCalls.map((r) => r.organization))).toEqual(new Set(['acme']));
    });

    it("ends a subscription to another organization's job with NOT_FOUND through the router", async () => {
      const job = jobRecord(acme, { status: 'RUNNING' });
      stack.simulator.store.put(acme, job);
      const c = connect(routerUrl, GLOBEX_KEY);
      clients.push(c);
      const live = c.subscribe('subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id status } }', {
        id: job.id,
      });
      await live.finished;
      const seen = JSON.stringify({ events: live.events, failure: live.failure });
      expect(seen).toContain('NOT_FOUND');
      expect(seen).not.toContain('"status"');
      expect(stack.simulator.requestsTo('getJob').map((r) => r.organization)).toEqual(['globex']);
    });

    it("carries one key's subscriptions on one socket to the gateway: subscriptions.perConnection bounds them", async () => {
      const subscribe = (id: string) => {
        const c = connect(routerUrl, INITECH.apiKeys[0]!);
        clients.push(c);
        return c.subscribe('subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id } }', { id });
      };
      const ids = [1, 2, 3].map(() => {
        const job = jobRecord(initech, { status: 'RUNNING' });
        stack.simulator.store.put(initech, job);
        return job.id;
      });
      // Three clients of the router, one after the other; the gateway sees a third operation on
      // the router's one socket for this key.
      const first = subscribe(ids[0]!);
      await first.waitForEvents(1);
      const second = subscribe(ids[1]!);
      await second.waitForEvents(1);
      const third = subscribe(ids[2]!);
      await third.finished;
      const seen = JSON.stringify({ events: third.events, failure: third.failure });
      expect(seen).toContain('At most 2 operations at once on one connection');
      expect(first.completed || second.completed).toBe(false);
      expect(new Set(stack.simulator.requestsTo('getJob').map((r) => r.organization))).toEqual(
        new Set(['initech']),
      );
    });
  },
);
