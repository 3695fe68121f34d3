// What one operation may cost the upstream at run time, whatever its cost estimate said: a list
// of every job with each job's metrics is one call per job, and `limit: -1` returns every job.
// Past either bound the operation gets QUERY_LIMIT_EXCEEDED (one error, however many fields hit
// it), and the calls past it are never sent.
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import { ErrorCode, limitError } from '../errors.js';

export interface BudgetLimits {
  /** Upstream calls (retries not counted) one operation may make (limits.maxUpstreamCalls). */
  maxUpstreamCalls: number;
  /** Jobs one operation may return, all its fields together (limits.maxJobs). */
  maxJobs: number;
}

/** What limits an operation past its budget, as `extensions.limit` says it. */
export type BudgetLimitName = 'upstreamCalls' | 'jobs';

/**
 * What one request has spent so far: its operation, or every operation of its batch together
 * (Apollo Server gives each operation of a batch a shallow copy of the request's context, so
 * they share this object).
 */
export class RequestSpend {
  upstreamCalls = 0;
  jobs = 0;
  /** The estimated cost of the operations checked so far. */
  cost = 0;
  /** The upstream calls a batch's operations may make together, as estimated before they run. */
  estimatedCalls = 0;
  private unchecked = 0;
  private allChecked: { promise: Promise<void>; resolve(): void } | undefined;

  /**
   * An operation of a batch has started: `batchChecked()` waits for it. Call what this returns
   * once it has been checked, with the upstream calls it may make (0: it will not run).
   */
  batchOperationStarted(): (estimatedCalls: number) => void {
    this.unchecked += 1;
    let done = false;
    return (estimatedCalls) => {
      if (done) return;
      done = true;
      this.estimatedCalls += estimatedCalls;
      this.unchecked -= 1;
      if (this.unchecked === 0) this.allChecked?.resolve();
    };
  }

  /** Resolves once every operation of the batch that started has been checked. */
  batchChecked(): Promise<void> {
    if (this.unchecked === 0) return Promise.resolve();
    if (this.allChecked === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((done) => (resolve = done));
      this.allChecked = { promise, resolve };
    }
    return this.allChecked.promise;
  }
}

/** One operation's (or one subscription event's) tally against the limits. */
export class OperationBudget {
  // By the field's response path: an execution that runs again (graphql-jit's errors are
  // redone by graphql-js) counts each field once.
  private readonly jobsByField = new Map<string, number>();

  constructor(
    private readonly limits: BudgetLimits,
    private readonly spend: RequestSpend = new RequestSpend(),
  ) {}

  /** Counts one upstream call about to be sent; throws instead when it would be one too many. */
  takeUpstreamCall(): void {
    if (this.spend.upstreamCalls >= this.limits.maxUpstreamCalls) {
      throw limitError(
        ErrorCode.QUERY_LIMIT_EXCEEDED,
        'upstreamCalls',
        `This operation needs more than ${this.limits.maxUpstreamCalls} calls to the fine-tune API (each job's metrics is one; a batch's operations count together): ask for metrics of fewer jobs (a smaller \`limit\`).`,
        { max: this.limits.maxUpstreamCalls },
      );
    }
    this.spend.upstreamCalls += 1;
  }

  /**
   * Counts the jobs the field at `path` (its response path) returns; throws when the
   * operation's fields return more than allowed, all together.
   */
  takeJobs(path: string, count: number): void {
    this.spend.jobs += count - (this.jobsByField.get(path) ?? 0);
    this.jobsByField.set(path, count);
    if (this.spend.jobs > this.limits.maxJobs) throw this.tooManyJobs();
  }

  /** Jobs the operation may still return: what a list it has not fetched yet may ask for. */
  remainingJobs(): number {
    return this.limits.maxJobs - this.spend.jobs;
  }

  tooManyJobs(): GraphQLError {
    return limitError(
      ErrorCode.QUERY_LIMIT_EXCEEDED,
      'jobs',
      `This operation returns more than ${this.limits.maxJobs} jobs, all its fields together (and a batch's operations together): ask for fewer (a \`limit\`, or fewer aliases).`,
      { max: this.limits.maxJobs },
    );
  }
}

function sameLimit(a: GraphQLFormattedError, b: GraphQLFormattedError): boolean {
  return (
    a.extensions?.code === ErrorCode.QUERY_LIMIT_EXCEEDED &&
    b.extensions?.code === ErrorCode.QUERY_LIMIT_EXCEEDED &&
    a.extensions.limit === b.extensions.limit
  );
}

/**
 * One error per limit: every field past the budget fails the same way (a thousand metrics
 * fields, say), and the response says it once, at the first of them. A document refused for a
 * limit before it ran is answered with the first limit it broke alone, not with what graphql-js
 * found in its parts (a thousand repeated directives are a hundred errors and a line saying it
 * stopped counting).
 */
export function limitErrorsOncePlugin(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response }) {
          if (response.body.kind !== 'single') return;
          const result = response.body.singleResult;
          if (!result.errors || result.errors.length < 2) return;
          if (result.data === undefined) {
            const limit = result.errors.find(
              (error) => error.extensions?.code === ErrorCode.QUERY_LIMIT_EXCEEDED,
            );
            if (limit) result.errors = [limit];
            return;
          }
          const kept: GraphQLFormattedError[] = [];
          for (const error of result.errors) {
            const isBudget =
              error.extensions?.limit === 'upstreamCalls' || error.extensions?.limit === 'jobs';
            if (isBudget && kept.some((seen) => sameLimit(seen, error))) continue;
            kept.push(error);
          }
          result.errors = kept;
        },
      };
    },
  };
}
