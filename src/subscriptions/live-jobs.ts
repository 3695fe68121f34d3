// Live job updates for subscriptions. Pollers are shared per credential identity (a hash of the
// API key, never the key) and resource, so 100 subscribers to one job cost one upstream read per
// interval, and a subscriber only ever shares a poller with holders of the same key. What
// changed is worked out once per poll, beside the snapshot; each subscription turns that into
// its own events (its filter, where it started), so subscribers who join late get correct events
// too, and 20,000 subscribers of one list cost one comparison of it per poll.
//
// With REDIS_URL, one poller per identity and resource serves the whole fleet (src/fleet/
// leased-poller.ts): what a poll reads is worked out from the latest snapshot alone, so an
// instance that takes over carries on from the last one another instance published.
import type { Logger } from 'pino';
import { GraphQLError } from 'graphql';
import type { PollSettings } from '../config.js';
import { ErrorCode, gatewayError, limitError } from '../errors.js';
import type { GatewayTracing, TraceContext } from '../observability/tracing.js';
import { isTerminal } from '../fine-tune-jobs/lifecycle.js';
import type { FineTuneApiClient } from '../upstream/client.js';
import { UpstreamError } from '../upstream/errors.js';
import {
  KNOWN_JOB_STATUSES,
  type FineTuneJobRecord,
  type FineTuneMetricEntryRecord,
} from '../upstream/records.js';
import { EventChannel } from './event-channel.js';
import { LocalPoller, type FleetPolling, type PollEvent, type Poller } from './poller.js';

/** One job that changed between two polls of the list: how it was, how it is (either may be absent). */
interface JobChange {
  before: FineTuneJobRecord | undefined;
  after: FineTuneJobRecord | undefined;
}

/** A poll of the job list, and what changed since the poll before (nothing, on the first). */
interface ListSnapshot {
  jobs: FineTuneJobRecord[];
  changes: JobChange[];
}

/** The jobs that entered, changed (status or updatedAt) or left, in the list's order. */
function changesBetween(previous: Map<string, FineTuneJobRecord>, jobs: FineTuneJobRecord[]): JobChange[] {
  const changes: JobChange[] = [];
  const seen = new Set<string>();
  for (const job of jobs) {
    seen.add(job.id);
    const before = previous.get(job.id);
    if (before === undefined || before.status !== job.status || before.updated_at !== job.updated_at) {
      changes.push({ before, after: job });
    }
  }
  for (const [id, job] of previous) if (!seen.has(id)) changes.push({ before: job, after: undefined });
  return changes;
}

/** One subscription event: the value to resolve, or the error that ends the stream. */
export type LiveEvent<T> = { value: T } | { error: Error };

export type FineTuneJobsChangeKind = 'ENTERED' | 'LEFT' | 'CHANGED';
export interface FineTuneJobsChange {
  change: FineTuneJobsChangeKind;
  job: FineTuneJobRecord;
}

interface MetricsSnapshot {
  job: FineTuneJobRecord | null;
  /** Every entry read so far, oldest first. */
  entries: FineTuneMetricEntryRecord[];
}

const ACTIVE_STATUSES: ReadonlySet<string> = new Set(['STARTING', 'RUNNING', 'FINALIZING']);
const KNOWN: ReadonlySet<string> = new Set(KNOWN_JOB_STATUSES);
// Failures that another poll will not fix: the subscription ends with the error, as it does on
// an upstream 4xx other than RETRIED_4XX. Anything else (the upstream down, slow or rate
// limiting) is logged and the next poll tries again.
const ENDING_CODES: ReadonlySet<string> = new Set([
  ErrorCode.UNAUTHENTICATED,
  ErrorCode.FORBIDDEN,
  ErrorCode.BAD_USER_INPUT,
  ErrorCode.NOT_FOUND,
  ErrorCode.INTERNAL_SERVER_ERROR,
]);

// Of the upstream's other 4xx answers, those another poll may not get again; any other (431 for a
// key too long for its headers, 405, 410…) would come back at every poll, forever.
const RETRIED_4XX: ReadonlySet<number> = new Set([408, 425, 429]);

/** The upstream's status for a failed poll: its error, or that error as the fleet relays it. */
function upstreamStatus(error: unknown): number | undefined {
  if (error instanceof UpstreamError) return error.kind === 'http' ? error.details.status : undefined;
  if (!(error instanceof GraphQLError)) return undefined;
  const status = (error.extensions.upstream as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' ? status : undefined;
}

function isActive(status: string | undefined): boolean {
  return status !== undefined && ACTIVE_STATUSES.has(status);
}

function codeOf(error: unknown): string {
  if (error instanceof UpstreamError) return error.describe().extensions.code;
  if (error instanceof GraphQLError && typeof error.extensions.code === 'string')
    return error.extensions.code;
  return ErrorCode.INTERNAL_SERVER_ERROR;
}

function notFound(id: string): Error {
  return gatewayError(ErrorCode.NOT_FOUND, `No fine-tune job ${id} in this organization`, { jobId: id });
}

/** What the pollers report to /metrics. */
export interface SubscriptionMetrics {
  listChanges(count: number): void;
  /** One poll of a resource (`job`, `jobs`, `metrics`) done, its subscribers told. */
  subscriptionPolled(resource: string): void;
  /** How many pollers run, read when metrics are scraped. */
  watchPollers(count: () => number): void;
}

/**
 * The gateway's pollers of live jobs, one per credential identity and resource (local, or leased
 * with REDIS_URL), and the count of each key's open subscriptions.
 */
export class LiveJobPollers {
  private readonly pollers = new Map<string, Poller<unknown>>();
  /** Open subscriptions by credential identity, against `perKey`. */
  private readonly openByIdentity = new Map<string, number>();

  constructor(
    readonly settings: PollSettings,
    private readonly logger: Logger,
    private readonly metrics?: SubscriptionMetrics,
    /** Spans of each poll and delivery, when tracing is on. */
    private readonly tracing?: GatewayTracing,
    /** REDIS_URL: one poller per identity and resource for the whole fleet. */
    private readonly fleet?: FleetPolling,
  ) {
    metrics?.watchPollers(() => this.pollers.size);
  }

  /** Counts a subscription opening for `identity`; throws past the key's cap. */
  open(identity: string): () => void {
    const open = this.openByIdentity.get(identity) ?? 0;
    if (open >= this.settings.perKey) {
      throw limitError(
        ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
        'perKey',
        `This key has ${this.settings.perKey} subscriptions open already (subscriptions.perKey): end some first.`,
        { max: this.settings.perKey },
      );
    }
    this.openByIdentity.set(identity, open + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.openByIdentity.get(identity) ?? 1) - 1;
      if (left === 0) this.openByIdentity.delete(identity);
      else this.openByIdentity.set(identity, left);
    };
  }

  /** Counts the changes one poll of a list found (once per poll, whoever listens). */
  countChanges(count: number): void {
    this.metrics?.listChanges(count);
  }

  /** How many pollers are running (each one upstream read per interval). */
  get size(): number {
    return this.pollers.size;
  }

  /** The live view for one API key, by its identity (see context.ts), for one operation's span. */
  forKey(api: FineTuneApiClient, identity: string, operation?: TraceContext): LiveJobs {
    return new LiveJobs(this, api, identity, operation);
  }

  /** Stops every poller (server shutdown). */
  stopAll(): void {
    for (const poller of [...this.pollers.values()]) poller.stop();
  }

  shared<T>(
    key: string,
    fetch: (latest: T | undefined) => Promise<T>,
    activeWhen: (latest: T) => boolean,
  ): Poller<T> {
    const existing = this.pollers.get(key);
    if (existing) return existing as Poller<T>;
    const options = {
      fetch: async (latest: T | undefined) => {
        try {
          return await fetch(latest);
        } catch (error) {
          // Logged here, once per poll, not once per subscriber.
          if (!this.ends(error)) {
            this.logger.warn(
              { code: codeOf(error), resource: key.slice(key.indexOf(':') + 1) },
              'a subscription poll failed; trying again at the next interval',
            );
          }
          throw error;
        }
      },
      intervalMs: (latest: T | undefined) =>
        latest !== undefined && activeWhen(latest) ? this.settings.activePollMs : this.settings.pollMs,
      onStop: () => {
        if (this.pollers.get(key) === poller) this.pollers.delete(key);
      },
      // `<identity>:job:<id>` → `job`: the kind of resource, never the key's identity or an id.
      onPolled: () => this.metrics?.subscriptionPolled(key.split(':')[1] ?? 'unknown'),
      logger: this.logger,
      ...(this.tracing && {
        tracing: { tracing: this.tracing, resource: key.split(':')[1] ?? 'unknown', errorType: codeOf },
      }),
    };
    const poller: Poller<T> = this.fleet
      ? this.fleet.poller<T>({ ...options, key, errors: this.errorCodec })
      : new LocalPoller<T>(options);
    this.pollers.set(key, poller as Poller<unknown>);
    return poller;
  }

  /** A failure that ends subscriptions, as it travels to the fleet's other instances. */
  private readonly errorCodec = {
    encode: (error: unknown): unknown => {
      if (!this.ends(error)) return undefined;
      const described =
        error instanceof UpstreamError
          ? error.describe()
          : error instanceof GraphQLError
            ? { message: error.message, extensions: error.extensions }
            : { message: 'Internal server error.', extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
      return { message: described.message, extensions: described.extensions };
    },
    decode: (encoded: unknown): Error => {
      const { message, extensions } = encoded as { message: string; extensions: Record<string, unknown> };
      return new GraphQLError(message, { extensions });
    },
  };

  /** True when a failed poll should end its subscriptions; otherwise the next poll tries again. */
  ends(error: unknown): boolean {
    if (ENDING_CODES.has(codeOf(error))) return true;
    const status = upstreamStatus(error);
    return status !== undefined && status >= 400 && status < 500 && !RETRIED_4XX.has(status);
  }
}

/** One credential identity's three live streams, built on the gateway's pollers. */
export class LiveJobs {
  constructor(
    private readonly pollers: LiveJobPollers,
    private readonly api: FineTuneApiClient,
    private readonly identity: string,
    /** The subscribing operation's span, which its polls and deliveries link to. */
    private readonly operation?: TraceContext,
  ) {}

  /** The job now, then whenever its status or updatedAt changes; ends after a terminal status. */
  jobUpdates(id: string): AsyncIterableIterator<LiveEvent<FineTuneJobRecord>> {
    const poller = this.pollers.shared(
      `${this.identity}:job:${id}`,
      () => this.api.getJob(id),
      (job) => isActive(job?.status),
    );
    let last: FineTuneJobRecord | undefined;
    return this.stream(poller, (job, emit, end) => {
      if (job === null) return end(notFound(id));
      if (last === undefined || job.status !== last.status || job.updated_at !== last.updated_at) {
        emit(job);
        last = job;
      }
      if (isTerminal(job.status)) end();
    });
  }

  /**
   * Changes within the set of jobs whose status is in `statuses` (all jobs when null). One poller
   * per identity reads the whole list, whatever the filters: a job that leaves a filtered set is
   * still in it, so the event shows where it went.
   */
  listChanges(statuses: readonly string[] | null): AsyncIterableIterator<LiveEvent<FineTuneJobsChange>> {
    // The poller works out once per poll what changed since the last list.
    const poller = this.pollers.shared<ListSnapshot>(
      `${this.identity}:jobs`,
      async (latest) => {
        const jobs = await this.api.listJobs({ statuses: null, limit: -1, offset: 0 });
        const changes =
          latest === undefined ? [] : changesBetween(new Map(latest.jobs.map((job) => [job.id, job])), jobs);
        this.pollers.countChanges(changes.length);
        return { jobs, changes };
      },
      ({ jobs }) => jobs.some((job) => isActive(job.status)),
    );
    const wanted = statuses === null ? null : new Set(statuses);
    const inSet = (job: FineTuneJobRecord) =>
      wanted === null || wanted.has(KNOWN.has(job.status) ? job.status : 'UNKNOWN');
    let started = false;
    return this.stream(poller, ({ changes }, emit) => {
      // The first snapshot this subscriber hears is where it starts: only what changes after it is news.
      if (!started) {
        started = true;
        return;
      }
      for (const { before, after } of changes) {
        const was = before !== undefined && inSet(before);
        // Gone from the list altogether: shown as it was last seen.
        if (after === undefined) {
          if (was) emit({ change: 'LEFT', job: before });
          continue;
        }
        const is = inSet(after);
        if (is && !was) emit({ change: 'ENTERED', job: after });
        else if (!is && was) emit({ change: 'LEFT', job: after });
        else if (is) emit({ change: 'CHANGED', job: after });
      }
    });
  }

  /**
   * New metric entries while the job runs: after `afterStep` when given (so a client can resume),
   * else from the moment of subscribing. Ends once the job is terminal and its last entries sent.
   */
  metricsAppended(
    id: string,
    afterStep: number | null,
  ): AsyncIterableIterator<LiveEvent<FineTuneMetricEntryRecord[]>> {
    const poller = this.pollers.shared<MetricsSnapshot>(
      `${this.identity}:metrics:${id}`,
      async (latest) => {
        const entries = latest?.entries ?? [];
        // The job first: metrics read after it include every entry of a job it shows finished.
        const job = await this.api.getJob(id);
        if (job === null) return { job, entries };
        // Only the entries not read yet: the upstream pages, so a poll reads what is new.
        const page = await this.api.getJobMetrics(id, { limit: -1, offset: entries.length });
        return { job, entries: page.metrics.length === 0 ? entries : [...entries, ...page.metrics] };
      },
      ({ job }) => isActive(job?.status),
    );
    let sent: number | undefined;
    return this.stream(poller, ({ job, entries: all }, emit, end) => {
      if (job === null) return end(notFound(id));
      if (sent === undefined) {
        sent = all.length;
        if (afterStep !== null) {
          const missed = all.filter((entry) => typeof entry.step === 'number' && entry.step > afterStep);
          if (missed.length > 0) emit(missed);
        }
      } else if (all.length > sent) {
        emit(all.slice(sent));
        sent = all.length;
      }
      if (isTerminal(job.status)) end();
    });
  }

  /** Subscribes a channel to a poller; `react` turns each snapshot into this subscriber's events. */
  private stream<T, E>(
    poller: Poller<T>,
    react: (value: T, emit: (event: E) => void, end: (error?: Error) => void) => void,
  ): EventChannel<LiveEvent<E>> {
    const closeSlot = this.pollers.open(this.identity);
    const { backlog } = this.pollers.settings;
    // A consumer that falls this far behind (a slow socket) is told so and let go: its queue is
    // bounded, whoever else listens.
    const channel = new EventChannel<LiveEvent<E>>(backlog, () => ({
      error: limitError(
        ErrorCode.SUBSCRIPTION_LIMIT_EXCEEDED,
        'backlog',
        `This subscription fell more than ${backlog} events behind: subscribe again.`,
        { max: backlog },
      ),
    }));
    const end = (error?: Error) => {
      if (error) channel.push({ error });
      channel.end();
    };
    // Returns the events passed on, for the delivery's span.
    const onEvent = (event: PollEvent<T>): number => {
      let pushed = 0;
      // One poll's changes are one batch: however many, they reach a consumer that keeps up.
      channel.beginBatch();
      if ('value' in event) {
        const emit = (value: E) => {
          channel.push({ value });
          pushed += 1;
        };
        react(event.value, emit, end);
      } else if (this.pollers.ends(event.error)) {
        end(event.error instanceof Error ? event.error : new Error(String(event.error)));
      }
      return pushed;
    };
    const unsubscribe = poller.subscribe(onEvent, this.operation);
    channel.onEnd(() => {
      unsubscribe();
      closeSlot();
    });
    return channel;
  }
}
