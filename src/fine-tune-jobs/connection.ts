// `fineTuneJobsConnection`: a Relay page over the upstream's offset paging. The page is asked
// for with one job more than `first`, through the list loading the caller passes (the request's
// list loader, so it is deduplicated like `fineTuneJobs`); that extra job only answers `hasNextPage`.
import { ErrorCode, gatewayError } from '../errors.js';
import type { FineTuneJobRecord, ListJobsQuery } from '../upstream/records.js';
import { jobCursor, offsetAfter } from './job-cursor.js';

/** The largest page a client may ask for. */
export const MAX_PAGE_SIZE = 500;

export interface FineTuneJobPage {
  edges: { cursor: string; node: FineTuneJobRecord }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

export interface PageRequest {
  /** Sorted and unique (see Query.ts), or null for all statuses. */
  statuses: string[] | null;
  first: number;
  after: string | null | undefined;
}

export async function loadFineTuneJobPage(
  listJobs: (query: ListJobsQuery) => Promise<FineTuneJobRecord[]>,
  { statuses, first, after }: PageRequest,
): Promise<FineTuneJobPage> {
  if (first < 0 || first > MAX_PAGE_SIZE) {
    throw gatewayError(ErrorCode.BAD_USER_INPUT, `first must be 0 to ${MAX_PAGE_SIZE}`, {
      argument: 'first',
    });
  }
  const offset = offsetAfter(after);
  // "One of no statuses" matches nothing; no need to ask the upstream.
  const jobs = statuses?.length === 0 ? [] : await listJobs({ statuses, limit: first + 1, offset });
  const edges = jobs.slice(0, first).map((node, i) => ({ cursor: jobCursor(offset + i), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: jobs.length > first,
      hasPreviousPage: offset > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}
