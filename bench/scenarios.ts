// The load scenarios: each is one GraphQL query shape against the gateway and the REST
// call that returns the same data, with the pages it cycles through.

export interface Page {
  statuses: string[] | null;
  limit: number;
  offset: number;
}

/** What the gateway must reach in a scenario, against the direct REST call in the same run. */
export interface Target {
  /** Throughput of the gateway divided by that of the direct call, at least. */
  ratio: number;
  /** The gateway's median latency over the direct call's, at most. */
  p50Ratio?: number;
  /** The gateway's peak resident memory during a run, at most. */
  peakRssMb?: number;
}

export interface Scenario {
  name: string;
  /** Every request the same page (shared), or a different page per request (distinct). */
  pages: Page[];
  target: Target;
}

export const JOB_FIELDS = `id name uuid orgUuid status upstreamStatus isTerminal
  config { model datasets { name split fileIds } }
  createdAt updatedAt inferenceConfigPath`;

export const JOBS_QUERY = `query Jobs($statuses: [FineTuneJobStatus!], $limit: Int, $offset: Int) {
  fineTuneJobs(statuses: $statuses, limit: $limit, offset: $offset) { ${JOB_FIELDS} }
}`;

const range = (count: number, step: number) => Array.from({ length: count }, (_, i) => i * step);

// The targets of the issue "One execution path on the product's stack", with every operation
// through Apollo Server's pipeline and every upstream call through ky.
export const SCENARIOS: Scenario[] = [
  {
    name: 'one limit: 50 query from 16 clients',
    pages: [{ statuses: null, limit: 50, offset: 0 }],
    target: { ratio: 1.0 },
  },
  {
    name: 'a filtered page of 20',
    pages: [{ statuses: ['RUNNING'], limit: 20, offset: 0 }],
    target: { ratio: 1.2 },
  },
  {
    name: 'all 2,000 jobs',
    pages: [{ statuses: null, limit: -1, offset: 0 }],
    target: { ratio: 2.0, peakRssMb: 200 },
  },
  {
    name: 'distinct pages of 50 (40 offsets)',
    pages: range(40, 50).map((offset) => ({ statuses: null, limit: 50, offset })),
    target: { ratio: 0.2, p50Ratio: 4 },
  },
  {
    name: 'distinct pages of 500 (150 offsets)',
    pages: range(150, 10).map((offset) => ({ statuses: null, limit: 500, offset })),
    target: { ratio: 0.3 },
  },
];

/** The REST path (under the API base) that returns a page, as the gateway pushes it down. */
export function restPath(page: Page): string {
  const search = new URLSearchParams({ limit: String(page.limit), offset: String(page.offset) });
  for (const status of page.statuses ?? []) search.append('statuses', status);
  return `/fine-tune/jobs?${search}`;
}

export function graphqlBody(page: Page): string {
  return JSON.stringify({ query: JOBS_QUERY, variables: page, operationName: 'Jobs' });
}

interface UpstreamJob {
  id: string;
  name: string;
  uuid: string;
  org_uuid: string;
  status: string;
  config: { model: string; datasets: { name: string; split: string; file_ids: string[] }[] };
  created_at: string;
  updated_at: string;
  inference_config_path?: string | null;
}

const TERMINAL = new Set(['COMPLETED', 'STOPPED', 'CANCELLED', 'FAILED']);

/** What the gateway must answer for a page, computed from the upstream's own answer. */
export function expectedGraphQLJobs(upstream: UpstreamJob[]): unknown[] {
  return upstream.map((job) => ({
    id: job.id,
    name: job.name,
    uuid: job.uuid,
    orgUuid: job.org_uuid,
    status: job.status,
    upstreamStatus: job.status,
    isTerminal: TERMINAL.has(job.status),
    config: {
      model: job.config.model,
      datasets: job.config.datasets.map((d) => ({ name: d.name, split: d.split, fileIds: d.file_ids })),
    },
    createdAt: job.created_at,
    updatedAt: job.updated_at,
    inferenceConfigPath: job.inference_config_path ?? null,
  }));
}
