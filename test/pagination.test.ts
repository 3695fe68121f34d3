// Cursor pagination: pages that follow each other without gaps or repeats, one upstream call of
// first + 1 jobs per page, and opaque cursors that are checked before any call.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, expectErrorCode, startStack, type Stack } from './harness.js';

interface Page {
  fineTuneJobsConnection: {
    edges: { cursor: string; node: { id: string; status: string } }[];
    pageInfo: {
      hasNextPage: boolean;
      hasPreviousPage: boolean;
      startCursor: string | null;
      endCursor: string | null;
    };
  };
}

const PAGE = `query Page($first: Int, $after: String, $statuses: [FineTuneJobStatus!]) {
  fineTuneJobsConnection(first: $first, after: $after, statuses: $statuses) {
    edges { cursor node { id status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 11, providerExamples: false } });
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

function acmeJobIds(statuses: string[] | null = null): string[] {
  const acme = stack.simulator.store.organizations[0]!;
  return stack.simulator.store.list(acme, statuses).map((j) => j.id);
}

describe('fineTuneJobsConnection', () => {
  it('walks the whole list page by page, one upstream call of first + 1 per page', async () => {
    const seen: string[] = [];
    const searches: string[] = [];
    let after: string | null = null;
    for (let pageNumber = 0; pageNumber < 10; pageNumber++) {
      stack.simulator.resetRequests();
      const page: Page = expectData(await stack.query<Page>(PAGE, { first: 4, after }));
      const { edges, pageInfo } = page.fineTuneJobsConnection;
      searches.push(...stack.simulator.requestsTo('listJobs').map((r) => r.search));
      expect(stack.simulator.requests).toHaveLength(1);
      expect(pageInfo.hasPreviousPage).toBe(after !== null);
      expect(pageInfo.startCursor).toBe(edges[0]?.cursor ?? null);
      expect(pageInfo.endCursor).toBe(edges.at(-1)?.cursor ?? null);
      seen.push(...edges.map((e) => e.node.id));
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(seen).toEqual(acmeJobIds());
    expect(seen).toHaveLength(11);
    expect(searches).toEqual(['?limit=5&offset=0', '?limit=5&offset=4', '?limit=5&offset=8']);
  });

  it('says there is no next page when the list ends exactly at the page', async () => {
    const first = acmeJobIds().length;
    const page = expectData(await stack.query<Page>(PAGE, { first }));
    expect(page.fineTuneJobsConnection.edges).toHaveLength(first);
    expect(page.fineTuneJobsConnection.pageInfo.hasNextPage).toBe(false);
  });

  it('continues after any edge cursor, not only endCursor', async () => {
    const page = expectData(await stack.query<Page>(PAGE, { first: 3 }));
    const second = page.fineTuneJobsConnection.edges[1]!;
    const next = expectData(await stack.query<Page>(PAGE, { first: 2, after: second.cursor }));
    expect(next.fineTuneJobsConnection.edges.map((e) => e.node.id)).toEqual(acmeJobIds().slice(2, 4));
  });

  it('pushes the status filter down and pages within it', async () => {
    const page = expectData(await stack.query<Page>(PAGE, { first: 2, statuses: ['COMPLETED', 'RUNNING'] }));
    expect(stack.simulator.requestsTo('listJobs').map((r) => r.search)).toEqual([
      '?limit=3&offset=0&statuses=COMPLETED&statuses=RUNNING',
    ]);
    expect(page.fineTuneJobsConnection.edges.map((e) => e.node.id)).toEqual(
      acmeJobIds(['COMPLETED', 'RUNNING']).slice(0, 2),
    );
  });

  it('answers first: 0 with an empty page that still tells whether jobs follow', async () => {
    const page = expectData(await stack.query<Page>(PAGE, { first: 0 }));
    expect(page.fineTuneJobsConnection).toEqual({
      edges: [],
      pageInfo: { hasNextPage: true, hasPreviousPage: false, startCursor: null, endCursor: null },
    });
  });

  it('answers an empty statuses list with an empty page and no upstream call', async () => {
    const page = expectData(await stack.query<Page>(PAGE, { statuses: [] }));
    expect(page.fineTuneJobsConnection.edges).toEqual([]);
    expect(page.fineTuneJobsConnection.pageInfo.hasNextPage).toBe(false);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('uses 20 jobs per page by default', async () => {
    expectData(await stack.query(PAGE));
    expect(stack.simulator.requestsTo('listJobs').map((r) => r.search)).toEqual(['?limit=21&offset=0']);
  });

  it('shares the list loader with fineTuneJobs in one operation', async () => {
    const data = expectData(
      await stack.query<{ fineTuneJobs: { id: string }[] } & Page>(`query {
        fineTuneJobs(limit: 4) { id }
        fineTuneJobsConnection(first: 3) { edges { node { id } } pageInfo { hasNextPage } }
      }`),
    );
    expect(data.fineTuneJobsConnection.edges.map((e) => e.node.id)).toEqual(
      data.fineTuneJobs.slice(0, 3).map((j) => j.id),
    );
    expect(data.fineTuneJobsConnection.pageInfo.hasNextPage).toBe(true);
    // `limit: 4` and `first: 3` are the same upstream page, so it is fetched once.
    expect(stack.simulator.requestsTo('listJobs')).toHaveLength(1);
  });

  it.each([
    ['first', { first: -1 }],
    ['first', { first: 501 }],
    ['after', { after: 'not a cursor' }],
    ['after', { after: Buffer.from('fine-tune-job:-3').toString('base64url') }],
    ['after', { after: Buffer.from('fine-tune-job:0').toString('base64url') }],
    ['after', { after: Buffer.from('something-else:4').toString('base64url') }],
    ['after', { after: '' }],
  ])('refuses a bad %s (%j) with BAD_USER_INPUT before any upstream call', async (argument, variables) => {
    // A small selection, so `first: 501` stays under the cost limit and reaches the argument check.
    const query = `query ($first: Int, $after: String) {
      fineTuneJobsConnection(first: $first, after: $after) { pageInfo { hasNextPage } }
    }`;
    const error = expectErrorCode(await stack.query(query, variables), 'BAD_USER_INPUT');
    expect(error.extensions?.argument).toBe(argument);
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('gives opaque, URL-safe cursors rather than bare offsets', async () => {
    const page = expectData(await stack.query<Page>(PAGE, { first: 2 }));
    const cursors = page.fineTuneJobsConnection.edges.map((e) => e.cursor);
    for (const cursor of cursors) expect(cursor).toMatch(/^[\w-]+$/);
    for (const cursor of cursors) expect(cursor).not.toMatch(/^\d+$/);
    expect(new Set(cursors).size).toBe(2);
  });
});

describe('fineTuneJobsConnection and the cost limit', () => {
  it('counts `first` like `limit`: a large page of nested fields is QUERY_LIMIT_EXCEEDED', async () => {
    const response = await stack.query(
      '{ fineTuneJobsConnection(first: 500) { edges { node { metrics { entries { step loss } } } } } }',
    );
    expect(response.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_LIMIT_EXCEEDED', limit: 'cost' });
    expect(stack.simulator.requests).toHaveLength(0);
  });
});
