// Singleflight: identical queries in flight at once for one credential make one upstream call
// and share one response; different credentials, different operations and later requests never
// share. Counted at the simulator.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACME_KEY, GLOBEX_KEY, expectData, sentTogether, startStack, type Stack } from './harness.js';

const JOBS = 'query Jobs($limit: Int) { fineTuneJobs(limit: $limit) { id orgUuid status } }';

interface Jobs {
  fineTuneJobs: { id: string; orgUuid: string; status: string }[];
}

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.stop());
beforeEach(() => {
  stack.simulator.resetRequests();
  stack.simulator.faults.clear();
});

/** Sends the requests together, the upstream's list answers held until all of them arrived. */
function together<T>(requests: (() => Promise<T>)[], upstreamCalls = 1): Promise<T[]> {
  return sentTogether(stack, 'listJobs', requests, upstreamCalls);
}

describe('identical queries in flight', () => {
  it('share one upstream call and one answer', async () => {
    const responses = await together(
      Array.from({ length: 6 }, () => () => stack.query<Jobs>(JOBS, { limit: 5 })),
    );
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    const first = expectData(responses[0]!);
    expect(first.fineTuneJobs).toHaveLength(5);
    for (const response of responses) expect(expectData(response)).toEqual(first);
  });

  it('are counted in /metrics as joins', async () => {
    const joins = async () => {
      const text = await (await fetch(stack.gateway.metricsUrl)).text();
      return Number(/^gateway_graphql_shared_operation_joins_total (\d+)/m.exec(text)?.[1]);
    };
    const before = await joins();
    await together(Array.from({ length: 4 }, () => () => stack.query<Jobs>(JOBS, { limit: 3 })));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect((await joins()) - before).toBe(3);
  });

  it('keep their own request ids', async () => {
    const ids = ['shared-a', 'shared-b', 'shared-c'];
    const responses = await together(
      ids.map((id) => () => stack.query<Jobs>(JOBS, { limit: 2 }, { headers: { 'x-request-id': id } })),
    );
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    expect(responses.map((r) => r.headers.get('x-request-id'))).toEqual(ids);
  });
});

describe('tenant isolation', () => {
  it("never gives one organization's answer to another's key, even when fired together", async () => {
    const keys = [ACME_KEY, GLOBEX_KEY, ACME_KEY, GLOBEX_KEY, ACME_KEY, GLOBEX_KEY];
    const responses = await together(
      keys.map((apiKey) => () => stack.query<Jobs>(JOBS, { limit: 4 }, { apiKey })),
      2,
    );
    const calls = stack.simulator.requestsTo('listJobs');
    expect(calls.map((c) => c.organization).sort()).toEqual(['acme', 'globex']);

    const [acme, globex] = stack.simulator.store.organizations;
    responses.forEach((response, i) => {
      const expected = keys[i] === ACME_KEY ? acme! : globex!;
      const jobs = expectData(response).fineTuneJobs;
      expect(jobs.map((j) => j.id)).toEqual(
        stack.simulator.store
          .list(expected, null)
          .slice(0, 4)
          .map((j) => j.id),
      );
      for (const job of jobs) expect(job.orgUuid).toBe(expected.uuid);
    });
  });

  it('does not share between a key and no key', async () => {
    const responses = await together([
      () => stack.query<Jobs>(JOBS, { limit: 1 }),
      () => stack.query<Jobs>(JOBS, { limit: 1 }, { apiKey: null }),
    ]);
    expect(expectData(responses[0]!).fineTuneJobs).toHaveLength(1);
    expect(responses[1]!.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });
});

describe('what is never shared', () => {
  it('different variables run on their own', async () => {
    const [two, three] = await together(
      [() => stack.query<Jobs>(JOBS, { limit: 2 }), () => stack.query<Jobs>(JOBS, { limit: 3 })],
      2,
    );
    expect(expectData(two!).fineTuneJobs).toHaveLength(2);
    expect(expectData(three!).fineTuneJobs).toHaveLength(3);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('identical mutations fired together each reach the upstream', async () => {
    const running = stack.simulator.store
      .list(stack.simulator.store.organizations[0]!, ['RUNNING'])
      .map((j) => j.id)[0]!;
    const stop = 'mutation Stop($id: ID!) { stopFineTuneJob(id: $id) { id } }';
    await sentTogether(
      stack,
      'stopJob',
      [() => stack.query(stop, { id: running }), () => stack.query(stop, { id: running })],
      2,
    );
    expect(stack.simulator.requestsTo('stopJob')).toHaveLength(2);
  });

  it('a request that arrives after a write never joins a flight that began before it', async () => {
    const acme = stack.simulator.store.organizations[0]!;
    const job = stack.simulator.store.list(acme, ['RUNNING'])[0]!;
    const statusOf = (jobs: Jobs) => jobs.fineTuneJobs.find((j) => j.id === job.id)?.status;
    // The upstream reads its jobs at once but answers only once released: this flight holds
    // the state before the stop.
    let release!: () => void;
    let handled!: () => void;
    const answerUntil = new Promise<void>((resolve) => (release = resolve));
    const read = new Promise<void>((resolve) => (handled = resolve));
    stack.simulator.faults.set('listJobs', { answerUntil, onHandled: handled, times: 1 });
    const before = stack.query<Jobs>(JOBS, { limit: -1 });
    await read;
    expectData(await stack.query('mutation ($id: ID!) { stopFineTuneJob(id: $id) { id } }', { id: job.id }));
    // Once the request after the stop has reached its execution (or joined), the old flight lands.
    const arrived = stack.untilOperationsResolved(stack.operationsResolved + 1);
    const pendingAfter = stack.query<Jobs>(JOBS, { limit: -1 });
    await arrived;
    release();
    const after = expectData(await pendingAfter);
    expect(statusOf(after)).toBe('STOPPING');
    expect(statusOf(expectData(await before))).toBe('RUNNING');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('in a document with a query and a mutation, only the query is shared', async () => {
    const running = stack.simulator.store
      .list(stack.simulator.store.organizations[0]!, ['RUNNING'])
      .map((j) => j.id)
      .slice(0, 1)[0]!;
    const document = `query List { fineTuneJobs(limit: 2) { id } }
      mutation Cancel { cancelFineTuneJob(id: "${running}") { id } }`;
    const run = (operationName: string) => () =>
      fetch(stack.gateway.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${ACME_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ query: document, operationName }),
      }).then((r) => r.json());
    await together([run('List'), run('List'), run('List')]);
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    await sentTogether(stack, 'cancelJob', [run('Cancel'), run('Cancel')], 2);
    expect(stack.simulator.requestsTo('cancelJob')).toHaveLength(2);
  });

  it('nothing is served after the operation completes (no cache)', async () => {
    expectData(await stack.query(JOBS, { limit: 2 }));
    expectData(await stack.query(JOBS, { limit: 2 }));
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(2);
  });

  it('a failure is shared by the requests that joined it, and the next request tries again', async () => {
    let release!: () => void;
    const until = new Promise<void>((resolve) => (release = resolve));
    stack.simulator.faults.set('listJobs', { until, status: 400, times: 1 });
    const arrived = stack.untilOperationsResolved(stack.operationsResolved + 2);
    const pending = Promise.all([stack.query(JOBS, { limit: 2 }), stack.query(JOBS, { limit: 2 })]);
    await arrived;
    release();
    const responses = await pending;
    for (const response of responses) expect(response.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
    expectData(await stack.query(JOBS, { limit: 2 }));
  });
});
